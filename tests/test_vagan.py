"""Image VA-GAN: the DAE-score regularizer (VA §3.1), generator losses, loss × schedule runs, the CLI.

The DAE score of a known 2-D Gaussian and the GAN loss pairs at known logits are covered in
``tests/test_gan.py`` (``test_dae_score_matches_gaussian_score``, ``test_generator_losses_known_values``,
``test_wgan_losses``); they are not repeated here.
"""

import json
import math

import pytest
import torch

from softq_ugan.data.images import dequantize, load_images
from softq_ugan.gan.score import DAE, dae_score
from softq_ugan.vagan import (
    LOSSES,
    VAGAN,
    VAGAN_SCHEDULES,
    Discriminator,
    Generator,
    VAGANConfig,
    likelihood_regularizer,
    main,
    vagan_generator_loss,
)


def _nonzero_dae(features: int) -> DAE:
    torch.manual_seed(1)
    dae = DAE(features, hidden_features=16)
    torch.nn.init.normal_(dae.mlp[-1].weight, std=0.5)  # not the identity, so the score is nonzero
    return dae


def test_regularizer_gradient_is_analytic_and_skips_the_denoiser():
    torch.manual_seed(0)
    dae, sigma = _nonzero_dae(3), 0.5
    A = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(64, 2, dtype=torch.float64)
    x = z @ A.T + b  # toy generator G(z) = A z + b
    dae = dae.double()
    score = dae_score(dae, x, sigma)  # computed with gradients on, to check the stop-gradient
    reg = likelihood_regularizer(x, score)
    reg.backward()
    s = score.detach()
    # ∇θ E[log μ(G)] = E[(∇θ G)ᵀ s(G)]: ∂/∂A = E[s zᵀ], ∂/∂b = E[s] (VA §3.1)
    torch.testing.assert_close(A.grad, s.T @ z / len(z))
    torch.testing.assert_close(b.grad, s.mean(0))
    assert all(p.grad is None for p in dae.parameters())


def test_generator_loss_at_known_logits():
    logits, reg = torch.tensor([0.0, 2.0]), torch.tensor(3.0)
    assert vagan_generator_loss("rkl", logits, None, 1.0).item() == pytest.approx(-1.0)
    assert vagan_generator_loss("rkl", logits, reg, 0.5).item() == pytest.approx(-1.0 - 1.5)
    assert vagan_generator_loss("wgan-gp", logits, reg, -0.5).item() == pytest.approx(-1.0 + 1.5)
    jsd = (math.log(2) + math.log1p(math.exp(-2.0))) / 2
    assert vagan_generator_loss("jsd", logits, reg, 0.0).item() == pytest.approx(jsd)


@pytest.mark.parametrize("shape", [(8, 8), (28, 28)])
def test_network_shapes(shape):
    g, d = Generator(shape, latent_dim=8, width=4), Discriminator(shape, width=4)
    x = g(torch.randn(5, 8))
    assert x.shape == (5, 1, *shape) and 0 <= x.min() and x.max() <= 1
    assert d(x).shape == (5,) and d.features(x).shape == (5, d.num_features)
    with pytest.raises(ValueError, match="divisible by 4"):
        Generator((10, 10))


def test_update_logs_lambda_and_regularizer():
    torch.manual_seed(0)
    gan = VAGAN(VAGANConfig(shape=(8, 8), loss="jsd", schedule="pma", lambda0=1.0, total_steps=4, latent_dim=8,
                            gen_width=4, disc_width=4, dae_hidden=8))
    real = torch.rand(16, 64)
    lams = [gan.update(real)["lambda"] for _ in range(2)]
    stats = gan.update(real)
    assert lams == [1.0, 0.75] and stats["lambda"] == 0.5 and gan.num_updates == 3
    assert math.isfinite(stats["generator/regularizer"]) and stats["dae/loss"] > 0


@pytest.mark.parametrize("loss", LOSSES)
def test_each_schedule_trains_on_digits(loss):
    torch.manual_seed(0)
    d = load_images("digits")
    g = torch.Generator().manual_seed(0)
    for schedule in VAGAN_SCHEDULES:
        gan = VAGAN(VAGANConfig(shape=d.shape, loss=loss, schedule=schedule, lambda0=1.0, total_steps=4,
                                latent_dim=8, gen_width=4, disc_width=4, dae_hidden=16))
        for _ in range(3):
            stats = gan.update(dequantize(d.train[torch.randint(len(d.train), (16,), generator=g)], d.levels, generator=g).float())
        assert all(math.isfinite(v) for v in stats.values()), (loss, schedule, stats)
        assert (gan.denoiser is None) == (schedule == "none")
        assert gan.sample(5).shape == (5, 64)


def test_config_validation():
    with pytest.raises(ValueError, match="jsd, rkl, wgan-gp"):
        VAGANConfig(shape=(8, 8), loss="hinge")
    with pytest.raises(ValueError, match="oa-linear"):
        VAGANConfig(shape=(8, 8), schedule="geo")
    with pytest.raises(ValueError, match="sigma"):
        VAGANConfig(shape=(8, 8), sigma=0.0)


def test_cli_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", "digits", "--loss", "rkl", "--schedule", "oa", "--eval-every", "2", "--eval-samples", "50",
            "--ckpt-every", "2", "--gen-width", "4", "--disc-width", "4", "--batch-size", "16", "--out", str(out), "--quiet"]
    main(args + ["--iters", "3"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["iters"] == 3 and math.isfinite(m["final"]["fd"]) and [e["step"] for e in m["evals"]] == [2, 3]
    assert (out / "samples.png").exists() and (out / "checkpoint.pt").exists()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    main(args + ["--iters", "5", "--resume"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["iters"] == 5 and [e["step"] for e in m["evals"]] == [2, 3, 4, 5]
    for bad in (["--loss", "hinge"], ["--schedule", "geo"], ["--data", "cifar"], ["--iters", "0"]):
        with pytest.raises(SystemExit) as e:
            main(bad + ["--out", str(tmp_path / "bad")])
        assert e.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1
