"""Tests of softq_ugan.metrics (MMD², mode statistics, ESS, entropy from samples, evaluate_samples) and
softq_ugan.plots."""

import math

import numpy as np
import pytest
import torch

from softq_ugan.metrics import (classifier_kl, ess, evaluate_samples, gaussian_entropy_bound, knn_entropy, mmd2,
                                mode_stats)
from softq_ugan.targets import make_target


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- MMD²
def test_mmd2_same_distribution_near_zero_and_shift_positive():
    g = _gen(0)
    x, y = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert abs(mmd2(x, y)) < 0.002
    shifted = torch.randn(1000, 2, generator=g) + torch.tensor([0.5, 0.0])
    assert mmd2(x, shifted) > 0.01
    assert isinstance(mmd2(x, y), float)


def test_mmd2_matches_naive_unbiased_estimator():
    g = _gen(1)
    x, y = torch.randn(40, 3, generator=g), torch.randn(30, 3, generator=g) * 1.5
    h = 2.7
    xn, yn = x.double().numpy(), y.double().numpy()

    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / h)

    kxx, kyy = k(xn, xn), k(yn, yn)
    ref = (
        (kxx.sum() - np.trace(kxx)) / (40 * 39)
        + (kyy.sum() - np.trace(kyy)) / (30 * 29)
        - 2 * k(xn, yn).mean()
    )
    assert abs(mmd2(x, y, bandwidth=h) - ref) < 1e-12
    # median bandwidth: h = median pooled pairwise squared distance (i < j), times scale
    z = np.concatenate([xn, yn])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)[np.triu_indices(70, 1)]
    med = float(torch.tensor(d2).median())
    assert abs(mmd2(x, y) - mmd2(x, y, bandwidth=med)) < 1e-12
    assert abs(mmd2(x, y, scale=0.2) - mmd2(x, y, bandwidth=0.2 * med)) < 1e-12


def test_mmd2_validates_input():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="same d"):
        mmd2(x, torch.randn(10, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd2(x, torch.randn(1, 2))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        mmd2(torch.randn(10), x)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(x, x, bandwidth=-1.0)


def test_mmd2_detects_dropped_ring8_mode():
    t = make_target("ring8")
    xs = t.sample(4000, generator=_gen(2))
    dropped = xs[t.nearest_mode(xs) != 0][:2000]
    good = t.sample(2000, generator=_gen(3))
    bad_stats = evaluate_samples(dropped, t, seed=10)
    good_stats = evaluate_samples(good, t, seed=10)
    assert bad_stats["mmd2"] > good_stats["mmd2"]
    assert bad_stats["mmd2_fine"] > good_stats["mmd2_fine"]
    assert bad_stats["modes_covered"] == 7 and good_stats["modes_covered"] == 8
    assert bad_stats["mode_mass"][0] == 0.0


# --------------------------------------------------------------------------- mode statistics
def test_mode_stats_ground_truth_grid25():
    t = make_target("grid25")
    n = 20_000
    st = mode_stats(t.sample(n, generator=_gen(4)), t)
    assert st["modes_covered"] == 25
    assert len(st["mode_mass"]) == 25 and abs(sum(st["mode_mass"]) - 1) < 1e-9
    se = math.sqrt(0.04 * 0.96 / n)
    assert max(abs(m - 0.04) for m in st["mode_mass"]) < 5 * se
    assert abs(st["hq_fraction"] - (1 - math.exp(-4.5))) < 0.01


def test_mode_stats_collapsed_and_nonfinite():
    t = make_target("grid25")
    xs = t.sample(3000, generator=_gen(5))
    keep = torch.isin(t.nearest_mode(xs), torch.tensor([0, 7, 24]))
    collapsed = xs[keep]
    assert mode_stats(collapsed, t)["modes_covered"] == 3
    # a far-away (non-HQ) sample assigns mass but covers no mode
    far = torch.cat([collapsed, torch.tensor([[4.9, -4.9]])])
    st = mode_stats(far, t)
    assert st["modes_covered"] == 3 and st["mode_mass"][20] > 0
    # non-finite rows: not HQ, no mode; mass sums to < 1
    bad = torch.cat([collapsed, torch.full((10, 2), float("nan")), torch.tensor([[math.inf, 0.0]])])
    st = mode_stats(bad, t)
    n = bad.shape[0]
    assert st["modes_covered"] == 3
    assert abs(sum(st["mode_mass"]) - (n - 11) / n) < 1e-9
    assert st["hq_fraction"] <= (n - 11) / n
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        mode_stats(torch.zeros(5, 3), t)


def test_evaluate_samples_nonfinite():
    t = make_target("kidney")
    xs = t.sample(500, generator=_gen(6))
    xs[:7] = float("nan")
    out = evaluate_samples(xs, t, n_ref=500, repeats=2)
    assert out["nonfinite"] == 7 and out["num_modes"] == 2
    assert math.isfinite(out["mmd2"]) and math.isfinite(out["mmd2_fine"])
    assert set(out) == {"mmd2", "mmd2_fine", "modes_covered", "hq_fraction", "mode_mass", "num_modes", "nonfinite"}
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_samples(torch.full((5, 2), float("inf")), t)


# --------------------------------------------------------------------------- ESS
def test_ess():
    n = 50
    assert torch.allclose(ess(torch.zeros(n)), torch.tensor(1.0))
    assert torch.allclose(ess(torch.full((n,), 123.0)), torch.tensor(1.0))  # scale-free
    lw = torch.zeros(n)
    lw[3] = 1000.0
    assert abs(ess(lw).item() - 1 / n) < 1e-6
    lw = torch.randn(4, 7, n, generator=_gen(7), dtype=torch.float64) * 2
    w = np.exp(lw.numpy())
    ref = w.sum(-1) ** 2 / (n * (w**2).sum(-1))
    out = ess(lw)
    assert out.shape == (4, 7) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(ess(lw.transpose(1, 2), dim=1).numpy(), ref, rtol=1e-10)
    assert ((out > 0) & (out <= 1)).all()


# --------------------------------------------------------------------------- plots
def test_plots_write_pngs(tmp_path):
    from softq_ugan.plots import plot_curves, plot_samples, plot_snapshots

    for name in ["kidney", "ring8"]:
        t = make_target(name)
        x = t.sample(300, generator=_gen(8))
        p = plot_samples(t, x, tmp_path / "sub" / f"{name}.png", title=name)
        assert (tmp_path / "sub" / f"{name}.png").stat().st_size > 1000 and str(p).endswith(".png")
    t = make_target("banana")
    snaps = [(s, t.sample(200, generator=_gen(s))) for s in (0, 100, 200)]
    plot_snapshots(t, snaps, tmp_path / "snaps.png", ncols=2)
    assert (tmp_path / "snaps.png").stat().st_size > 1000
    hist = {"mmd2": [(0, 0.5), (10, 0.01), (20, 1e-4)], "loss": [(0, 1.0), (10, -0.5), (20, 0.2)]}
    plot_curves(hist, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_plots_reject_non_2d(tmp_path):
    from softq_ugan.plots import plot_samples, plot_snapshots

    class Fake3D:
        dim = 3
        name = "fake"

    with pytest.raises(ValueError, match="2-D"):
        plot_samples(Fake3D(), torch.zeros(5, 3), tmp_path / "a.png")
    with pytest.raises(ValueError, match="2-D"):
        plot_snapshots(Fake3D(), [(0, torch.zeros(5, 3))], tmp_path / "b.png")


def test_entropy_from_samples_matches_closed_forms():
    """Kozachenko-Leonenko against a thin correlated Gaussian (½ log det(2πe Σ)) and the unit square (0), batched;
    the Gaussian bound is exact for the Gaussian and above the square's entropy (its own: ½ log((2πe/12)²))."""
    torch.manual_seed(0)
    scale = torch.tensor([[0.5, 0.0], [0.3, 0.05]])  # x = L z: Σ = L Lᵀ, log det Σ = 2 log |det L|
    x = torch.randn(3, 4000, 2) @ scale.T
    exact = math.log(2 * math.pi * math.e) + math.log(0.5 * 0.05)
    assert knn_entropy(x).shape == (3,)
    assert torch.allclose(knn_entropy(x), torch.full((3,), exact, dtype=torch.float64), atol=0.05)
    assert torch.allclose(gaussian_entropy_bound(x), torch.full((3,), exact, dtype=torch.float64), atol=0.05)
    square = torch.rand(2000, 2)
    assert abs(knn_entropy(square).item()) < 0.08  # the estimator's boundary bias on a box is small but positive
    assert gaussian_entropy_bound(square).item() == pytest.approx(math.log(2 * math.pi * math.e / 12), abs=0.05)
    assert knn_entropy(torch.zeros(10, 2)).item() == -math.inf  # a point mass: degenerate
    with pytest.raises(ValueError, match="k must be in"):
        knn_entropy(square[:5], k=5)
    with pytest.raises(ValueError, match="expected samples of shape"):
        knn_entropy(torch.zeros(5))


def test_classifier_kl_matches_closed_form_and_reads_zero_for_one_law():
    """KL(p‖q) and KL(q‖p) of N(0, I₂) and N(0, 4 I₂) from a logistic classifier: closed forms
    2(log 2 + 1/8 − 1/2) = 0.636 and 2(−log 2 + 2 − 1/2) = 1.614; one law against itself reads about 0."""
    torch.manual_seed(0)
    r = classifier_kl(lambda n: torch.randn(n, 2), lambda n: 2 * torch.randn(n, 2), steps=1500, hidden=(64, 64))
    assert r["kl_pq"] == pytest.approx(2 * (math.log(2) + 1 / 8 - 1 / 2), abs=0.15), r
    assert r["kl_qp"] == pytest.approx(2 * (-math.log(2) + 2 - 1 / 2), abs=0.3), r
    same = classifier_kl(lambda n: torch.randn(n, 2), lambda n: torch.randn(n, 2), steps=300, hidden=(64, 64))
    assert abs(same["kl_pq"]) < 0.05 and abs(same["kl_qp"]) < 0.05, same
    with pytest.raises(ValueError, match="steps and batch must be >= 1"):
        classifier_kl(lambda n: torch.randn(n, 2), lambda n: torch.randn(n, 2), steps=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        classifier_kl(lambda n: torch.full((n, 2), math.nan), lambda n: torch.randn(n, 2), steps=1)
    with pytest.raises(ValueError, match=r"must return \(n, d\)"):
        classifier_kl(lambda n: torch.randn(n), lambda n: torch.randn(n), steps=1)
