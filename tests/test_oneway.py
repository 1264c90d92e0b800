"""One-way flows (OW): log|det J| exact and by jvp (eq. 8-9), eq. 10 densities, log ζ (eq. 2-3), trainer, CLI."""

import json
import math

import pytest
import torch
from torch import nn

from softq_ugan.flows import OneWayGenerator, exact_logabsdet, jvp_logabsdet, log_partition
from softq_ugan.oneway_gan import OneWayGAN, OneWayGANConfig, main, oneway_discriminator_loss, oneway_generator_loss


def test_jvp_estimate_is_exact_on_scaled_orthogonal_maps():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    fn = lambda u: 1.7 * u @ q.T  # noqa: E731
    u = torch.randn(20, 5, dtype=torch.float64)
    est = jvp_logabsdet(fn, u)
    assert torch.allclose(est, torch.full((20,), 5 * math.log(1.7), dtype=torch.float64), atol=1e-10)
    assert torch.allclose(exact_logabsdet(fn, u), est, atol=1e-10)


def test_jvp_estimate_brackets_the_exact_value_on_a_random_network():
    torch.manual_seed(1)
    n = 3
    net = nn.Sequential(nn.Linear(n, 8), nn.Tanh(), nn.Linear(8, n)).double()
    scale = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    fn = lambda u: u * scale + 0.3 * net(u)  # noqa: E731  anisotropic but well-conditioned
    u = torch.randn(1, n, dtype=torch.float64).expand(40000, n).clone()
    exact = exact_logabsdet(fn, u[:1]).item()
    jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], u[0])
    assert exact == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-10)
    est = jvp_logabsdet(fn, u)  # n log‖Jv‖, one v per row
    assert est.std() > 0.05  # J is not a scaled rotation: single estimates vary
    assert est.mean().item() > exact + 0.1  # Jensen: E[n log‖Jv‖] ≥ log|det J|
    # OW eq. 8: |det J|⁻¹ = E_v ‖Jv‖⁻ⁿ, so −log mean exp(−est) recovers log|det J|
    eq8 = -(torch.logsumexp(-est, 0) - math.log(len(est))).item()
    assert eq8 == pytest.approx(exact, abs=0.02)


def test_generator_density_is_eq10_for_a_linear_generator():
    torch.manual_seed(2)
    g = OneWayGenerator(2, 3, hidden=(4,), activation=nn.Identity, residual=False).double()  # x = A u + b
    with torch.no_grad():
        a = g.mlp[2].weight @ g.mlp[0].weight
        b = g.mlp[2].weight @ g.mlp[0].bias + g.mlp[2].bias
    ref = torch.distributions.MultivariateNormal(b, a @ a.T)
    for exact in (True,):
        x, lp = g.rsample_and_log_prob(50, exact=exact)
        assert torch.allclose(lp, ref.log_prob(x), atol=1e-8)


def test_generator_shapes_context_and_errors():
    torch.manual_seed(3)
    g = OneWayGenerator(2, 4, context_features=3, hidden=(8, 8)).double()
    c = torch.randn(5, 3, dtype=torch.float64)
    for exact in (True, False):
        x, lp = g.rsample_and_log_prob(7, c, exact=exact)
        assert x.shape == (5, 7, 4) and lp.shape == (5, 7) and torch.isfinite(lp).all()
    assert g.rsample(6, c).shape == (5, 6, 4)
    assert g(torch.randn(9, 2, dtype=torch.float64), c[:1].expand(9, 3)).shape == (9, 4)  # fresh noise r
    x, lp = OneWayGenerator(2, 2, hidden=(8,)).rsample_and_log_prob(11)
    assert x.shape == (11, 2) and lp.shape == (11,)
    lp.sum().backward()  # differentiable through slogdet
    with pytest.raises(ValueError, match="hidden widths must be >= features"):
        OneWayGenerator(2, 4, hidden=(3,))
    with pytest.raises(ValueError, match="latent_features \\+ noise_features"):
        OneWayGenerator(3, 4, noise_features=2)
    with pytest.raises(ValueError, match="context"):
        g.rsample(3)


def test_importance_sampled_log_zeta_against_closed_form():
    torch.manual_seed(4)
    n, S, w = 2, 200000, 2.0
    q = torch.distributions.MultivariateNormal(torch.zeros(n), 1.5**2 * torch.eye(n))
    y = q.sample((S,))
    d = -w * 0.5 * (y**2).sum(-1)  # D/w = −|y|²/2: ζ = (2π)^(n/2)
    est = log_partition(d / w, q.log_prob(y)).item()
    assert est == pytest.approx(0.5 * n * math.log(2 * math.pi), abs=0.02)
    # unbiased in ζ (not in log ζ): one-sample estimates average to ζ
    small = torch.exp(d / w - q.log_prob(y)).reshape(-1, 1)
    assert small.mean().item() == pytest.approx((2 * math.pi) ** (n / 2), rel=0.03)
    # the discriminator loss is −E[D(x)/w] + log ζ̂ (OW eq. 16) and the generator's is E[w log P_G − D] (eq. 17)
    x = torch.randn(10, n)
    dx = -w * 0.5 * (x**2).sum(-1)
    loss = oneway_discriminator_loss(dx, d, q.log_prob(y), w)
    assert loss.item() == pytest.approx((-dx.mean() / w).item() + est, abs=1e-5)
    assert oneway_generator_loss(d[:5], q.log_prob(y[:5]), w).item() == pytest.approx(
        (w * q.log_prob(y[:5]) - d[:5]).mean().item(), abs=1e-6)


def test_trainer_covers_several_ring8_modes_quickly():
    from softq_ugan.metrics import mode_stats
    from softq_ugan.targets import make_target

    torch.manual_seed(0)
    target = make_target("ring8")
    g = torch.Generator().manual_seed(0)
    scale = 0.7071
    gan = OneWayGAN(OneWayGANConfig(features=2, num_samples=256, batch_size=256, lr_discriminator=1e-3, lr_generator=1e-3))
    for _ in range(400):
        stats = gan.update(lambda: target.sample(256, generator=g) / scale)
    assert gan.exact and math.isfinite(stats["generator/entropy"])
    m = mode_stats(gan.sample(2500) * scale, target)
    assert m["modes_covered"] >= 6, m


def test_lr_decay_reaches_zero_and_then_freezes_both_networks():
    torch.manual_seed(0)
    gan = OneWayGAN(OneWayGANConfig(features=2, generator_hidden=(8,), discriminator_hidden=(8,), num_samples=16,
                                    batch_size=16, lr_generator=1e-3, lr_discriminator=2e-3, lr_decay_steps=4))
    real = lambda: torch.randn(16, 2)  # noqa: E731
    for t in range(4):
        gan.update(real)
        assert gan.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - t / 4))
        assert gan.opt_d.param_groups[0]["lr"] == pytest.approx(2e-3 * (1 - t / 4))
    before = [p.clone() for p in (*gan.generator.parameters(), *gan.discriminator.parameters())]
    gan.update(real)  # past the horizon the rate stays 0
    after = list((*gan.generator.parameters(), *gan.discriminator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    with pytest.raises(ValueError, match="lr_decay_steps must be >= 1"):
        OneWayGANConfig(features=2, lr_decay_steps=0)


def test_cli_toy_and_images(tmp_path, tmp_path_factory, monkeypatch, capsys):
    monkeypatch.setenv("SOFTQ_UGAN_CACHE", str(tmp_path_factory.getbasetemp() / "softq_cache"))  # one training per session
    main(["--data", "ring8", "--steps", "3", "--hidden", "16", "--eval-samples", "200", "--quiet", "--out", str(tmp_path / "r")])
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["steps"] == 3 and m["exact_logdet"] and "modes_covered" in m and math.isfinite(m["log_zeta_grid"])
    assert (tmp_path / "r" / "samples.png").exists() and list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
    main(["--data", "digits", "--steps", "2", "--hidden", "64", "--max-train", "100", "--eval-samples", "50",
          "--quiet", "--out", str(tmp_path / "d")])
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert not m["exact_logdet"] and {"mode", "fd"} <= set(m)  # n = 64 > 16: the jvp estimate
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["--data", "cifar"])
    assert e.value.code == 2 and "choose one of" in capsys.readouterr().err
