"""Tests of softq_ugan.targets: closed forms, normalizers, exact samplers, modes and %HQ."""

import math

import numpy as np
import pytest
import torch

from softq_ugan.targets import TARGETS, Target, make_target

N_SAMPLES = 50_000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _grid(box, n):
    """Midpoint grid over box = ((a0, b0), (a1, b1)): points (n*n, 2) and the cell area."""
    (a0, b0), (a1, b1) = box
    h0, h1 = (b0 - a0) / n, (b1 - a1) / n
    g0 = a0 + h0 * (torch.arange(n, dtype=torch.float64) + 0.5)
    g1 = a1 + h1 * (torch.arange(n, dtype=torch.float64) + 0.5)
    X0, X1 = torch.meshgrid(g0, g1, indexing="ij")
    return torch.stack([X0.reshape(-1), X1.reshape(-1)], -1), h0 * h1


def _banana_np(x):
    """Independent float64 banana formula (VA suppl. G)."""
    x1, x2 = x[:, 0], x[:, 1]
    return -0.5 * (x2**2 / 4 + (x1 - x2**2 / 4) ** 2)


def _kidney_np(x):
    """Independent float64 kidney formula (SPEC §3)."""
    r = np.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
    a = np.exp(-0.5 * ((x[:, 0] - 2) / 0.6) ** 2)
    b = np.exp(-0.5 * ((x[:, 0] + 2) / 0.6) ** 2)
    return -0.5 * ((r - 2) / 0.4) ** 2 + np.log(a + b)


# --------------------------------------------------------------------------- banana / kidney
@pytest.mark.parametrize("name,ref", [("banana", _banana_np), ("kidney", _kidney_np)])
def test_log_prob_matches_closed_form(name, ref):
    t = make_target(name)
    x = torch.randn(500, 2, generator=_gen(1), dtype=torch.float64) * 3.0
    lp = t.log_prob(x)
    assert lp.dtype == torch.float64 and lp.shape == (500,)
    np.testing.assert_allclose(lp.numpy(), ref(x.numpy()), rtol=1e-10, atol=1e-9)
    lp32 = t.log_prob(x.float())
    assert lp32.dtype == torch.float32
    np.testing.assert_allclose(lp32.double().numpy(), ref(x.numpy()), rtol=1e-4, atol=1e-4)


def test_banana_normalizer_is_4pi():
    t = make_target("banana")
    pts, area = _grid(t.bounds, 1500)
    z = t.log_prob(pts).exp().sum().item() * area
    # ∫exp(-x2²/8)dx2 · ∫exp(-(x1-m)²/2)dx1 = sqrt(8π)·sqrt(2π) = 4π
    assert abs(z / (4 * math.pi) - 1) < 1e-3


@pytest.mark.parametrize("name", ["banana", "kidney"])
def test_bounds_hold_the_mass(name):
    t = make_target(name)
    wide = {"banana": ((-8.0, 40.0), (-13.0, 13.0)), "kidney": ((-5.0, 5.0), (-5.0, 5.0))}[name]
    pts, area = _grid(wide, 1600)
    u = t.log_prob(pts).exp()
    (a0, b0), (a1, b1) = t.bounds
    inside = (pts[:, 0] > a0) & (pts[:, 0] < b0) & (pts[:, 1] > a1) & (pts[:, 1] < b1)
    assert u[inside].sum() / u.sum() > 0.999


@pytest.mark.parametrize("name", ["banana", "kidney"])
def test_sampler_matches_grid_density(name):
    """Grid-quadrature moments vs. 50k exact samples, within 4 standard errors."""
    t = make_target(name)
    wide = {"banana": ((-8.0, 40.0), (-13.0, 13.0)), "kidney": ((-4.5, 4.5), (-4.5, 4.5))}[name]
    pts, _ = _grid(wide, 1600)
    w = t.log_prob(pts).exp()
    w = w / w.sum()
    xs = t.sample(N_SAMPLES, generator=_gen(2))
    assert xs.shape == (N_SAMPLES, 2) and xs.dtype == torch.float32
    xs = xs.double()
    feats = {
        "x1": lambda x: x[:, 0],
        "x2": lambda x: x[:, 1],
        "|x1|": lambda x: x[:, 0].abs(),
        "x2^2": lambda x: x[:, 1] ** 2,
        "P(x1>0)": lambda x: (x[:, 0] > 0).double(),
        "P(x2>1)": lambda x: (x[:, 1] > 1).double(),
    }
    for key, f in feats.items():
        grid_mean = (w * f(pts)).sum().item()
        fs = f(xs)
        se = fs.std().item() / math.sqrt(N_SAMPLES)
        assert abs(fs.mean().item() - grid_mean) < 4 * se + 1e-6, (name, key)


def test_banana_exact_moments():
    xs = make_target("banana").sample(N_SAMPLES, generator=_gen(3)).double()
    # E x1 = E x2²/4 = 1, Var x1 = Var(x2²)/16 + 1 = 3, E x2 = 0, Var x2 = 4
    assert abs(xs[:, 0].mean() - 1.0) < 4 * math.sqrt(3 / N_SAMPLES)
    assert abs(xs[:, 1].mean()) < 4 * math.sqrt(4 / N_SAMPLES)
    assert abs(xs[:, 1].var() - 4.0) < 0.1


@pytest.mark.parametrize("name", ["banana", "kidney"])
def test_hq_region_is_997(name):
    t = make_target(name)
    xs = t.sample(N_SAMPLES, generator=_gen(4))
    frac = t.is_high_quality(xs).double().mean().item()
    assert abs(frac - 0.997) < 4 * math.sqrt(0.003 * 0.997 / N_SAMPLES) + 1e-4
    assert t.is_high_quality(torch.tensor([[30.0, 30.0]])).tolist() == [False]


def test_kidney_nearest_mode_is_sign_of_x1():
    t = make_target("kidney")
    x = torch.randn(1000, 2, generator=_gen(5)) * 2
    x = x[x[:, 0].abs() > 1e-3]
    assert torch.equal(t.nearest_mode(x), (x[:, 0] > 0).long())
    xs = t.sample(20_000, generator=_gen(6))
    assert abs((xs[:, 0] > 0).float().mean().item() - 0.5) < 0.015


# --------------------------------------------------------------------------- mixtures
@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_integrates_to_one(name):
    t = make_target(name)
    s = t.mode_std
    total = 0.0
    for mu in t.modes.tolist():  # modes are ≫ 16 std apart: integrate a box around each
        box = ((mu[0] - 8 * s, mu[0] + 8 * s), (mu[1] - 8 * s, mu[1] + 8 * s))
        pts, area = _grid(box, 81)  # midpoint rule, h≈0.2σ: error ≪ 1e-9
        total += t.log_prob(pts).exp().sum().item() * area
    assert abs(total - 1.0) < 1e-6


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_samples_per_mode_and_hq(name):
    t = make_target(name)
    m = t.modes.shape[0]
    xs = t.sample(N_SAMPLES, generator=_gen(7))
    frac = torch.bincount(t.nearest_mode(xs), minlength=m).double() / N_SAMPLES
    se = math.sqrt((1 / m) * (1 - 1 / m) / N_SAMPLES)
    assert (frac - 1 / m).abs().max() < 5 * se
    hq = t.is_high_quality(xs)
    p = 1 - math.exp(-4.5)  # chi² with 2 dof: P(r <= 3σ) = 0.98889
    assert abs(hq.double().mean().item() - p) < 0.005
    assert torch.unique(t.nearest_mode(xs[hq])).numel() == m  # every mode HQ-covered
    # HQ definition: within 3 std of the nearest mode
    mu = t.modes[0].float()
    inside = mu + torch.tensor([2.9 * t.mode_std, 0.0])
    outside = mu + torch.tensor([0.0, 3.1 * t.mode_std])
    assert t.is_high_quality(torch.stack([inside, outside])).tolist() == [True, False]


def test_mixture_geometry():
    ring = make_target("ring8")
    assert ring.modes.shape == (8, 2) and ring.mode_std == 0.01
    np.testing.assert_allclose(ring.modes.norm(dim=1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(ring.modes[2].numpy(), [0.0, 1.0], atol=1e-12)
    grid = make_target("grid25")
    assert grid.modes.shape == (25, 2) and grid.mode_std == 0.05
    assert sorted(set(grid.modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    # log_prob at a mode: log N(0; 0, σ²I) - log M (other components negligible)
    lp = grid.log_prob(grid.modes[:1]).item()
    assert abs(lp - (-math.log(2 * math.pi * 0.05**2) - math.log(25))) < 1e-9
    assert ring.nearest_mode(torch.tensor([[0.0, 0.9], [-1.2, 0.05]])).tolist() == [2, 4]


# --------------------------------------------------------------------------- API contract
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shapes_dtypes_context_and_errors(name):
    t = make_target(name)
    assert isinstance(t, Target) and t.name == name and t.dim == 2
    assert len(t.bounds) == 2 and t.modes.ndim == 2 and t.modes.shape[1] == 2
    x = torch.randn(4, 3, 2, generator=_gen(8))
    lp = t.log_prob(x)
    assert lp.shape == (4, 3) and lp.dtype == torch.float32
    assert torch.allclose(lp.reshape(-1), t.log_prob(x.reshape(-1, 2)))
    assert torch.equal(t.log_prob(x, context=torch.ones(4, 5)), lp)
    assert t.log_prob([[0.0, 0.5]]).shape == (1,)  # non-tensor input converted
    assert t.nearest_mode(x).shape == (4, 3) and t.nearest_mode(x).dtype == torch.long
    assert t.is_high_quality(x).shape == (4, 3) and t.is_high_quality(x).dtype == torch.bool
    for bad in [torch.zeros(5, 3), torch.tensor(1.0), torch.zeros(2, 1)]:
        with pytest.raises(ValueError, match=rf"{name}: expected x of shape \(\.\.\., 2\)"):
            t.log_prob(bad)
    with pytest.raises(ValueError, match=r"got \(5, 3\)"):
        t.log_prob(torch.zeros(5, 3))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_sampler_reproducible(name):
    t = make_target(name)
    a, b = t.sample(100, generator=_gen(9)), t.sample(100, generator=_gen(9))
    assert a.shape == (100, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, t.sample(100, generator=_gen(10)))


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite(name, dtype):
    t = make_target(name)
    x = torch.tensor(
        [[0.0, 0.0], [1e3, 0.0], [-600.0, 800.0], [1e3, 1e3], [0.3, -0.2]], dtype=dtype
    ).requires_grad_(True)
    lp = t.log_prob(x)
    assert lp.dtype == dtype and torch.isfinite(lp).all()
    (g,) = torch.autograd.grad(lp.sum(), x)
    assert torch.isfinite(g).all()


def test_make_target_unknown():
    with pytest.raises(ValueError, match="unknown target 'nope'; choose one of: banana, grid25, kidney, ring8"):
        make_target("nope")
