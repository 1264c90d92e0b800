"""Unnormalized target log-densities for the toy sampling benchmarks (SPEC §3).

Every target is a plain Python object with

* ``name``, ``dim``, ``bounds`` (a plotting box per dimension holding essentially all mass),
* ``modes`` (M, dim) mode centres and ``mode_std`` (component std of a mixture, else ``None``),
* ``log_prob(x, context=None)`` -- unnormalized log-density, differentiable in ``x``,
* ``sample(n, generator=None)`` -- exact ground-truth samples (float32),
* ``is_high_quality(x)`` and ``nearest_mode(x)`` -- used by the mode metrics.

All functions are pure functions of tensors; ``x`` may have any leading shape ``(..., dim)``.
New targets register themselves in :data:`TARGETS` (see :func:`make_target`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "Target",
    "Banana",
    "Kidney",
    "GaussianMixture2D",
    "Ring8",
    "Grid25",
    "BayesianLogisticRegression",
    "TARGETS",
    "make_target",
]

# Seed and size of the ground-truth draw used for the highest-density-region threshold.
_HQ_SEED = 12345
_HQ_NUM_SAMPLES = 200_000
_HQ_TAIL = 0.003  # is_high_quality = 99.7% highest-density region (banana, kidney)


class Target:
    """Base class of an unnormalized target density u(x) on R^dim.

    Subclasses implement :meth:`_log_prob` (on a validated floating tensor) and :meth:`sample`.
    """

    name: str = "target"
    dim: int = 2
    bounds: tuple[tuple[float, float], ...] = ()
    mode_std: float | None = None

    def __init__(self) -> None:
        self.modes: Tensor = torch.zeros(1, self.dim)
        self._hq_threshold: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"

    # ------------------------------------------------------------------ validation
    def _check_x(self, x) -> Tensor:
        """Convert ``x`` to a floating tensor of shape (..., dim) or raise ValueError."""
        x = torch.as_tensor(x)
        if not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{self.name}: expected x of shape (..., {self.dim}), got {tuple(x.shape)}"
            )
        return x

    # ------------------------------------------------------------------ density
    def log_prob(self, x, context=None) -> Tensor:
        """Unnormalized log u(x) of shape (...) for x of shape (..., dim); ``context`` is ignored."""
        del context  # toy targets are unconditional
        return self._log_prob(self._check_x(x))

    def _log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact ground-truth samples of shape (n, dim), float32."""
        raise NotImplementedError(f"{self.name}: no exact sampler")

    @staticmethod
    def _check_n(name: str, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name}: n must be a non-negative int, got {n!r}")
        return n

    # ------------------------------------------------------------------ modes / quality
    def nearest_mode(self, x) -> Tensor:
        """Index (...) of the nearest row of ``modes`` (Euclidean) for x of shape (..., dim)."""
        x = self._check_x(x)
        modes = self.modes.to(dtype=x.dtype, device=x.device)
        d2 = ((x.unsqueeze(-2) - modes) ** 2).sum(-1)  # (..., M)
        return d2.argmin(-1)

    def hq_threshold(self) -> float:
        """0.003-quantile of log u over 200k fixed-seed ground-truth samples (cached)."""
        if self._hq_threshold is None:
            g = torch.Generator().manual_seed(_HQ_SEED)
            xs = self.sample(_HQ_NUM_SAMPLES, generator=g).double()
            lp = self.log_prob(xs)
            self._hq_threshold = float(torch.quantile(lp, _HQ_TAIL))
        return self._hq_threshold

    def is_high_quality(self, x) -> Tensor:
        """Bool (...): x lies in the 99.7% highest-density region (SPEC §3 "%HQ")."""
        x = self._check_x(x)
        with torch.no_grad():
            lp = self.log_prob(x.detach())
        return lp >= self.hq_threshold()  # NaN compares False


def _safe_norm(x: Tensor) -> Tensor:
    """|x| with a finite gradient at 0: sqrt(sum x^2 + 1e-12)."""
    return torch.sqrt((x * x).sum(-1) + 1e-12)


class Banana(Target):
    """Banana (VA suppl. G): log u(x) = -1/2 (x2^2/4 + (x1 - x2^2/4)^2).

    Exact law: x2 ~ N(0, 2^2), x1 | x2 ~ N(x2^2/4, 1); normalizer 4π.
    """

    name = "banana"
    dim = 2
    bounds = ((-3.5, 14.0), (-7.5, 7.5))  # holds ~99.97% of the mass

    def __init__(self) -> None:
        super().__init__()
        self.modes = torch.zeros(1, 2)

    def _log_prob(self, x: Tensor) -> Tensor:
        x1, x2 = x[..., 0], x[..., 1]
        q = x2 * x2 / 4.0
        return -0.5 * (q + (x1 - q) ** 2)  # VA suppl. G

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_n(self.name, n)
        x2 = 2.0 * torch.randn(n, generator=generator)
        x1 = x2 * x2 / 4.0 + torch.randn(n, generator=generator)
        return torch.stack([x1, x2], dim=-1)


class Kidney(Target):
    """Kidney / two-mode ring (VA suppl. J.2, SPEC §3 sign convention):

    log u(x) = -1/2 ((|x|-2)/0.4)^2 + log(exp(-1/2((x1-2)/0.6)^2) + exp(-1/2((x1+2)/0.6)^2)).

    Exact sampling by rejection from the uniform box [-4, 4]^2 (mass outside ~1e-8).
    """

    name = "kidney"
    dim = 2
    bounds = ((-3.5, 3.5), (-3.5, 3.5))  # holds all but ~5e-6 of the mass
    _box = 4.0  # rejection box half-width

    def __init__(self) -> None:
        super().__init__()
        self.modes = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
        self._log_envelope: float | None = None

    def _log_prob(self, x: Tensor) -> Tensor:
        r = _safe_norm(x)
        x1 = x[..., 0]
        ring = -0.5 * ((r - 2.0) / 0.4) ** 2  # radial term
        sides = torch.logaddexp(-0.5 * ((x1 - 2.0) / 0.6) ** 2, -0.5 * ((x1 + 2.0) / 0.6) ** 2)
        return ring + sides  # SPEC §3 kidney

    def log_envelope(self) -> float:
        """log sup u on the box: radial factor <= 1 times the sup of the 1-D two-bump term."""
        if self._log_envelope is None:
            t = torch.linspace(0.0, self._box, 400_001, dtype=torch.float64)
            bump = torch.logaddexp(-0.5 * ((t - 2.0) / 0.6) ** 2, -0.5 * ((t + 2.0) / 0.6) ** 2)
            # grid max plus a margin covering the grid's discretisation error (bump'' is O(3))
            self._log_envelope = float(bump.max()) + 1e-9
        return self._log_envelope

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_n(self.name, n)
        log_m = self.log_envelope()
        out: list[Tensor] = []
        have = 0
        while have < n:
            m = max(1024, int(1.3 * (n - have) / 0.1))  # acceptance rate ~ 6.54/64 ≈ 0.10
            prop = (torch.rand(m, 2, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * self._box
            u = torch.rand(m, generator=generator, dtype=torch.float64)
            keep = torch.log(u) + log_m <= self._log_prob(prop)  # accept w.p. u(x)/sup u
            acc = prop[keep]
            out.append(acc)
            have += acc.shape[0]
        return torch.cat(out)[:n].float()


class GaussianMixture2D(Target):
    """Equal-weight mixture of isotropic Gaussians; log_prob is the normalized log-density.

    log p(x) = logsumexp_k [-|x-μ_k|^2/(2σ^2) - (d/2) log(2πσ^2)] - log M.
    """

    def __init__(self, means: Tensor, std: float) -> None:
        super().__init__()
        if means.ndim != 2 or means.shape[1] != self.dim:
            raise ValueError(f"{self.name}: means must have shape (M, {self.dim})")
        if not std > 0:
            raise ValueError(f"{self.name}: std must be positive, got {std}")
        self.modes = means.to(torch.float64).clone()
        self.mode_std = float(std)

    def _log_prob(self, x: Tensor) -> Tensor:
        mu = self.modes.to(dtype=x.dtype, device=x.device)
        s = self.mode_std
        d2 = ((x.unsqueeze(-2) - mu) ** 2).sum(-1)  # (..., M)
        comp = -0.5 * d2 / s**2 - 0.5 * self.dim * math.log(2 * math.pi * s**2)
        return torch.logsumexp(comp, dim=-1) - math.log(mu.shape[0])  # normalized mixture

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = self._check_n(self.name, n)
        m = self.modes.shape[0]
        k = torch.randint(0, m, (n,), generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        return (self.modes.float()[k] + self.mode_std * eps).float()

    def is_high_quality(self, x) -> Tensor:
        """Bool (...): distance to the nearest mode <= 3 std (VEEGAN / SPEC §3)."""
        x = self._check_x(x)
        with torch.no_grad():
            mu = self.modes.to(dtype=x.dtype, device=x.device)
            d2 = ((x.detach().unsqueeze(-2) - mu) ** 2).sum(-1).min(-1).values
        return d2 <= (3.0 * self.mode_std) ** 2  # NaN compares False


class Ring8(GaussianMixture2D):
    """8 Gaussians on the unit circle at angles 2πk/8, std 0.01 (VEEGAN setting)."""

    name = "ring8"
    dim = 2
    bounds = ((-1.5, 1.5), (-1.5, 1.5))

    def __init__(self) -> None:
        ang = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        super().__init__(torch.stack([torch.cos(ang), torch.sin(ang)], dim=-1), std=0.01)


class Grid25(GaussianMixture2D):
    """25 Gaussians at (-4+2i, -4+2j), i, j = 0..4, std 0.05 (VEEGAN setting)."""

    name = "grid25"
    dim = 2
    bounds = ((-5.5, 5.5), (-5.5, 5.5))

    def __init__(self) -> None:
        c = -4.0 + 2.0 * torch.arange(5, dtype=torch.float64)
        gx, gy = torch.meshgrid(c, c, indexing="ij")
        super().__init__(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1), std=0.05)


class BayesianLogisticRegression(Target):
    """Posterior of Bayesian logistic regression (VA §5.3) over θ = (w, log α), dim = p + 1.

    Prior w | α ~ N(0, α⁻¹ I), α ~ Gamma(a0=1, rate b0=0.01), written for log α (Jacobian α included):

        log p0(θ) = p/2 (log α − log 2π) − α|w|²/2 + a0 log b0 − lgamma(a0) + a0 log α − b0 α,

    likelihood p(y|x, w) = σ((2y−1) xᵀw) with y ∈ {0, 1}. :meth:`log_prob` is the minibatch estimate
    log p0(θ) + n/m Σ_{k≤m} log p(y_ik|x_ik, w) (VA §5.3) on a fresh random minibatch of
    ``batch_size`` rows per call (without replacement; unbiased for the full log-posterior), or the
    exact log-posterior (up to log p(D)) when ``batch_size`` is None; :meth:`log_prob_full` is always
    exact. ``x`` is the design matrix (an intercept column included by the caller); data stay on the
    CPU in float64 and are cast to θ's dtype and device.
    """

    name = "bayeslr"
    mode_std = None

    def __init__(self, x, y, batch_size: int | None = None, a0: float = 1.0, b0: float = 0.01,
                 generator: torch.Generator | None = None) -> None:
        x = torch.as_tensor(x, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"bayeslr: expected x (n, p) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}")
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("bayeslr: labels y must be 0 or 1")
        if batch_size is not None and not 1 <= batch_size:
            raise ValueError(f"bayeslr: batch_size must be >= 1 or None, got {batch_size}")
        if not (a0 > 0 and b0 > 0):
            raise ValueError(f"bayeslr: a0 and b0 must be positive, got {a0}, {b0}")
        self.x, self.y = x, y
        self.num_data, self.num_weights = x.shape
        self.dim = self.num_weights + 1
        self.batch_size = None if batch_size is None or batch_size >= self.num_data else int(batch_size)
        self.a0, self.b0 = float(a0), float(b0)
        self.generator = generator
        self.bounds = ((-10.0, 10.0),) * self.dim
        super().__init__()
        self.modes = torch.zeros(1, self.dim)

    def log_prior(self, theta) -> Tensor:
        """log p0(θ) of shape (...) for θ (..., p+1), the last coordinate being log α."""
        theta = self._check_x(theta)
        w, log_alpha = theta[..., :-1], theta[..., -1]
        alpha, p = log_alpha.exp(), self.num_weights
        log_pw = 0.5 * p * (log_alpha - math.log(2 * math.pi)) - 0.5 * alpha * (w * w).sum(-1)  # N(w; 0, α⁻¹I)
        log_pa = self.a0 * math.log(self.b0) - math.lgamma(self.a0) + self.a0 * log_alpha - self.b0 * alpha  # Γ(α)·α
        return log_pw + log_pa

    def log_likelihood(self, theta, indices: Tensor | None = None) -> Tensor:
        """Σ_i log p(y_i|x_i, w) over ``indices`` (all rows if None): shape (...)."""
        theta = self._check_x(theta)
        x, y = (self.x, self.y) if indices is None else (self.x[indices], self.y[indices])
        x, y = x.to(theta), y.to(theta)
        logits = theta[..., :-1] @ x.T  # (..., m)
        return torch.nn.functional.logsigmoid((2.0 * y - 1.0) * logits).sum(-1)

    def minibatch_log_prob(self, theta, indices: Tensor) -> Tensor:
        """log p0(θ) + n/m Σ_{k∈indices} log p(y_k|x_k, w) (VA §5.3)."""
        scale = self.num_data / len(indices)
        return self.log_prior(theta) + scale * self.log_likelihood(theta, indices)

    def log_prob_full(self, theta) -> Tensor:
        """Exact unnormalized log-posterior log p0(θ) + Σ_i log p(y_i|x_i, w)."""
        return self.log_prior(theta) + self.log_likelihood(theta)

    def _log_prob(self, x: Tensor) -> Tensor:
        if self.batch_size is None:
            return self.log_prob_full(x)
        idx = torch.randperm(self.num_data, generator=self.generator)[: self.batch_size]
        return self.minibatch_log_prob(x, idx)

    @torch.no_grad()
    def predict_proba(self, theta, x) -> Tensor:
        """Posterior-predictive p(y=1|x) = mean_s σ(xᵀw_s) over samples θ_s (S, p+1): shape (n,)."""
        theta = self._check_x(theta).reshape(-1, self.dim)
        x = torch.as_tensor(x).to(theta)
        total = torch.zeros(x.shape[0], dtype=theta.dtype)
        for chunk in theta.split(500):  # bounded memory for many samples × many test rows
            total += torch.sigmoid(x @ chunk[:, :-1].T).sum(-1)
        return total / theta.shape[0]


TARGETS: dict[str, type] = {
    "banana": Banana,
    "kidney": Kidney,
    "ring8": Ring8,
    "grid25": Grid25,
}


def make_target(name: str) -> Target:
    """Instantiate a registered target by name (see :data:`TARGETS`)."""
    try:
        cls = TARGETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown target {name!r}; choose one of: {', '.join(sorted(TARGETS))}"
        ) from None
    return cls()
