"""Sample-quality metrics for the toy targets (SPEC §3-§4).

* :func:`mmd2` -- unbiased RBF-kernel MMD² with the median (or a scaled median) bandwidth,
* :func:`mode_stats` -- per-mode mass, modes covered and %HQ (VEEGAN / OW Table 1 definitions),
* :func:`ess` -- normalized effective sample size of importance weights, from log-weights,
* :func:`knn_entropy` -- Kozachenko-Leonenko k-nearest-neighbour entropy from samples alone (no density),
* :func:`gaussian_entropy_bound` -- the entropy of the Gaussian with the samples' covariance (an upper bound),
* :func:`classifier_kl` -- KL(p‖q) and KL(q‖p) from a logistic classifier of fresh draws of p against q,
* :func:`evaluate_samples` -- all of the above against fresh ground-truth draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["mmd2", "median_bandwidth", "mode_stats", "ess", "knn_entropy", "gaussian_entropy_bound", "classifier_kl",
           "evaluate_samples"]

_MEDIAN_MAX_POINTS = 1000  # pooled points used to estimate the median bandwidth
_MEDIAN_SEED = 0
_MMD_MAX_POINTS = 2000  # evaluate_samples subsamples x to this many rows for MMD


def _as_2d(name: str, x) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a tensor of shape (N, d), got {tuple(x.shape)}")
    return x


def _sqdist(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances (N, M), clamped at 0."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d2.clamp_min_(0.0)


def median_bandwidth(x: Tensor, y: Tensor) -> float:
    """Median of the pairwise squared distances (i < j) of the pooled sample.

    Uses a fixed-seed random subset of at most 1000 pooled points.
    """
    z = torch.cat([x, y]).to(torch.float64)
    if z.shape[0] > _MEDIAN_MAX_POINTS:
        g = torch.Generator().manual_seed(_MEDIAN_SEED)
        z = z[torch.randperm(z.shape[0], generator=g)[:_MEDIAN_MAX_POINTS]]
    d2 = _sqdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1)
    return float(d2[iu[0], iu[1]].median())


def mmd2(x, y, bandwidth: str | float = "median", scale: float = 1.0) -> float:
    """Unbiased (U-statistic) MMD² between samples x (N, d) and y (M, d), float64.

    Kernel k(a, b) = exp(-|a-b|^2 / h) with h = median pairwise squared distance of the
    pooled sample times ``scale`` (``bandwidth="median"``), or h = ``bandwidth`` if a number.
    ``scale=1/5`` gives the "fine" MMD of SPEC §4.
    """
    x = _as_2d("mmd2", x).to(torch.float64)
    y = _as_2d("mmd2", y).to(torch.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2: x and y must have the same d, got {x.shape[1]} and {y.shape[1]}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd2: need at least 2 rows in x and y, got {n} and {m}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("mmd2: x and y must be finite")
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"mmd2: bandwidth must be 'median' or a positive float, got {bandwidth!r}")
        if not scale > 0:
            raise ValueError(f"mmd2: scale must be positive, got {scale}")
        h = median_bandwidth(x, y) * scale
        if h <= 0:  # degenerate pooled sample (more than half the pairs coincide)
            h = 1.0
    else:
        h = float(bandwidth)
        if not (h > 0 and math.isfinite(h)):
            raise ValueError(f"mmd2: bandwidth must be positive, got {bandwidth!r}")

    def ksum(a: Tensor, b: Tensor, same: bool) -> float:
        d2 = _sqdist(a, b)
        if same:
            d2.fill_diagonal_(0.0)
        s = torch.exp_(d2.div_(-h)).sum()
        return float(s - a.shape[0]) if same else float(s)  # drop the k(a_i, a_i) = 1 terms

    kxx = ksum(x, x, True) / (n * (n - 1))
    kyy = ksum(y, y, True) / (m * (m - 1))
    kxy = ksum(x, y, False) / (n * m)
    return kxx + kyy - 2.0 * kxy  # unbiased MMD² (Gretton et al. 2012, eq. 3)


def mode_stats(x, target) -> dict:
    """Per-mode mass, modes covered and high-quality fraction (SPEC §3).

    Returns ``mode_mass`` (fraction of all samples whose nearest mode is k), ``modes_covered``
    (modes that are the nearest mode of at least one high-quality sample) and ``hq_fraction``.
    Non-finite rows are not HQ and belong to no mode.
    """
    x = torch.as_tensor(x)
    if x.ndim == 0 or x.shape[-1] != target.dim:
        raise ValueError(
            f"mode_stats: expected x of shape (N, {target.dim}), got {tuple(x.shape)}"
        )
    x = x.detach().reshape(-1, target.dim)
    n = x.shape[0]
    if n == 0:
        raise ValueError("mode_stats: x has no rows")
    num_modes = target.modes.shape[0]
    finite = torch.isfinite(x).all(-1)
    xf = x[finite]
    if xf.shape[0] > 0:
        idx = target.nearest_mode(xf)
        hq = target.is_high_quality(xf)
    else:
        idx = torch.zeros(0, dtype=torch.long)
        hq = torch.zeros(0, dtype=torch.bool)
    counts = torch.bincount(idx, minlength=num_modes).double()
    covered = int(torch.unique(idx[hq]).numel())
    return {
        "mode_mass": (counts / n).tolist(),
        "modes_covered": covered,
        "hq_fraction": float(hq.sum()) / n,
    }


def ess(log_weights, dim: int = -1) -> Tensor:
    """Normalized effective sample size (Σw)² / (n Σw²) ∈ (0, 1] along ``dim``, from log-weights.

    Computed as exp(2 logsumexp(lw) - logsumexp(2 lw) - log n), stable for any scale of lw.
    """
    lw = torch.as_tensor(log_weights)
    if not torch.is_floating_point(lw):
        lw = lw.to(torch.get_default_dtype())
    if lw.ndim == 0:
        raise ValueError("ess: log_weights must have at least one dimension")
    n = lw.shape[dim]
    if n == 0:
        raise ValueError("ess: log_weights is empty along dim")
    top = lw.amax(dim=dim, keepdim=True)
    lw = lw - torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # shift: no cancellation
    log_ess = 2.0 * torch.logsumexp(lw, dim=dim) - torch.logsumexp(2.0 * lw, dim=dim)
    return torch.exp(log_ess - math.log(n))  # Kish ESS / n


def _as_batched_samples(name: str, x) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2 or x.shape[-2] < 2:
        raise ValueError(f"{name}: expected samples of shape (..., N, d) with N >= 2, got {tuple(x.shape)}")
    return x.double()  # distances of nearby points and log-determinants of thin covariances need the precision


def knn_entropy(x, k: int = 5) -> Tensor:
    """Kozachenko-Leonenko estimate of the differential entropy (nats) of the law of ``x`` (..., N, d), one per
    leading index: H ≈ ψ(N) − ψ(k) + log V_d + (d/N) Σ_i log ε_i, with ε_i the distance from x_i to its k-th nearest
    neighbour and V_d the volume of the unit d-ball. It needs samples only, so it checks a density estimate;
    repeated points give −inf (a degenerate law). Leading indices are taken one at a time (N × N distances each)."""
    x = _as_batched_samples("knn_entropy", x)
    n, d = x.shape[-2:]
    if not 1 <= k < n:
        raise ValueError(f"knn_entropy: k must be in [1, N), got k={k} with N={n}")

    def mean_log_eps(rows: Tensor) -> Tensor:
        dist = torch.cdist(rows, rows)
        dist.fill_diagonal_(float("inf"))
        return dist.topk(k, dim=-1, largest=False).values[:, -1].log().mean()

    flat = x.reshape(-1, n, d)
    log_eps = torch.stack([mean_log_eps(rows) for rows in flat]).reshape(x.shape[:-2])
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    digamma = torch.special.digamma
    return (digamma(torch.tensor(float(n), dtype=x.dtype)) - digamma(torch.tensor(float(k), dtype=x.dtype))
            + log_unit_ball + d * log_eps)


def gaussian_entropy_bound(x) -> Tensor:
    """½ log det(2πe Σ̂) for the sample covariance Σ̂ of ``x`` (..., N, d): the entropy of a Gaussian with that
    covariance, which no law with that covariance exceeds."""
    x = _as_batched_samples("gaussian_entropy_bound", x)
    centred = x - x.mean(-2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / (x.shape[-2] - 1)
    d = x.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(cov))


def classifier_kl(draw_p: Callable[[int], Tensor], draw_q: Callable[[int], Tensor], steps: int = 2000,
                  batch: int = 512, hidden: tuple[int, ...] = (128, 128), lr: float = 1e-3, eval_samples: int = 4000,
                  seed: int = 0) -> dict[str, float]:
    """KL(p‖q) and KL(q‖p) of two laws known by samples only, from a fresh logistic classifier D of p (label 1)
    against q (label 0) trained ``steps`` Adam steps on ``batch`` fresh draws of each: its logit tends to log p/q, so
    E_p[D] → KL(p‖q) and −E_q[D] → KL(q‖p) (each an underestimate while D is short of the optimum), read on
    ``eval_samples`` fresh draws. ``draw_p(n)``, ``draw_q(n)`` return ``(n, d)``; inputs are standardized by a pilot
    draw of both. The U-GAN's critic estimates the same log ρ/ν for every context at once (VA §3.2); this fits one
    context, a check of it."""
    from softq_ugan.gan.losses import logistic_critic_loss
    from softq_ugan.nets import MLP

    if steps < 1 or batch < 1 or eval_samples < 2:
        raise ValueError(f"classifier_kl: steps and batch must be >= 1 and eval_samples >= 2, got {steps}, {batch}, "
                         f"{eval_samples}")
    with torch.no_grad():
        pilot = torch.cat([draw_p(batch), draw_q(batch)]).float()
    if pilot.ndim != 2:
        raise ValueError(f"classifier_kl: draw_p(n) and draw_q(n) must return (n, d), got {pilot.ndim} dims")
    if not torch.isfinite(pilot).all():
        raise ValueError("classifier_kl: the draws hold NaN or inf")
    mean, std = pilot.mean(0), pilot.std(0).clamp_min(1e-12)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = MLP(pilot.shape[1], 1, hidden)
    opt = torch.optim.Adam(net.parameters(), lr)

    def logit(x: Tensor) -> Tensor:
        return net((x.float() - mean) / std).squeeze(-1)

    for _ in range(steps):
        with torch.no_grad():
            x_p, x_q = draw_p(batch), draw_q(batch)
        loss = logistic_critic_loss(logit(x_p), logit(x_q))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return dict(kl_pq=logit(draw_p(eval_samples)).mean().item(), kl_qp=-logit(draw_q(eval_samples)).mean().item())


def evaluate_samples(x, target, n_ref: int = 2000, repeats: int = 3, seed: int = 0) -> dict:
    """All toy-target metrics of samples x (N, dim) against ``repeats`` ground-truth draws.

    Returns ``mmd2`` (median bandwidth) and ``mmd2_fine`` (median/5), each averaged over
    ``repeats`` draws of ``n_ref`` ground-truth samples (SPEC §4), plus ``modes_covered``,
    ``hq_fraction``, ``mode_mass``, ``num_modes`` and ``nonfinite`` (non-finite rows, dropped
    before MMD). At most the first 2000 finite rows of x enter the MMD.
    """
    x = torch.as_tensor(x).detach()
    if x.ndim != 2 or x.shape[1] != target.dim:
        raise ValueError(
            f"evaluate_samples: expected x of shape (N, {target.dim}), got {tuple(x.shape)}"
        )
    if n_ref < 2 or repeats < 1:
        raise ValueError(f"evaluate_samples: need n_ref >= 2 and repeats >= 1, got {n_ref}, {repeats}")
    finite = torch.isfinite(x).all(-1)
    nonfinite = int((~finite).sum())
    if nonfinite == x.shape[0]:
        raise ValueError(f"evaluate_samples: all {x.shape[0]} sample rows are non-finite")
    xm = x[finite][:_MMD_MAX_POINTS].to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    coarse, fine = [], []
    for _ in range(repeats):
        ref = target.sample(n_ref, generator=g).to(torch.float64)
        coarse.append(mmd2(xm, ref))
        fine.append(mmd2(xm, ref, scale=0.2))  # fine bandwidth: median / 5 (SPEC §4)
    stats = mode_stats(x, target)
    return {
        "mmd2": sum(coarse) / repeats,
        "mmd2_fine": sum(fine) / repeats,
        "modes_covered": stats["modes_covered"],
        "hq_fraction": stats["hq_fraction"],
        "mode_mass": stats["mode_mass"],
        "num_modes": int(target.modes.shape[0]),
        "nonfinite": nonfinite,
    }
