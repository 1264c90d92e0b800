"""Coupling flows with exact log-likelihood: NICE and RealNVP (FG §3; Dinh et al. 2014, 2017).

Both are invertible generators ``x = G(z)`` with ``z`` from a fixed prior; the data → latent map
``f = G⁻¹`` is the cheap direction for densities, and both directions cost one pass.

* :class:`NICE` -- additive couplings ``x_b + m(x_a)`` (volume preserving) and a final diagonal
  scaling ``h = exp(s) ⊙ y``; logistic prior (as FG use on MNIST).
* :class:`RealNVP` -- affine couplings ``x_b ⊙ exp(s(x_a)) + t(x_a)`` and a final diagonal affine
  layer; standard normal prior.

Couplings alternate between the even- and odd-indexed coordinates (a checkerboard on flattened
images). Shapes: ``x`` and ``z`` are ``(N, d)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softq_ugan.nets import MLP, standard_normal_log_prob

__all__ = ["CouplingFlow", "NICE", "RealNVP", "make_flow", "FLOWS"]


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    """Start each coupling at the identity map."""
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class CouplingFlow(nn.Module):
    """Base class: a stack of couplings over alternating halves, a diagonal layer and a prior.

    Subclasses implement ``_couple(k, x_a, x_b, inverse) -> (x_b', logdet)``, ``_diag(x, inverse)``,
    ``prior_log_prob`` and ``prior_sample``.
    """

    def __init__(self, features: int, num_layers: int) -> None:
        super().__init__()
        if features < 2 or num_layers < 1:
            raise ValueError(f"{type(self).__name__}: need features >= 2 and num_layers >= 1, got {features}, {num_layers}")
        self.features, self.num_layers = features, num_layers
        idx = torch.arange(features)
        for k in range(num_layers):
            self.register_buffer(f"_a{k}", idx[k % 2 :: 2].clone(), persistent=False)  # conditioning half
            self.register_buffer(f"_b{k}", idx[1 - k % 2 :: 2].clone(), persistent=False)  # transformed half

    def _halves(self, k: int) -> tuple[Tensor, Tensor]:
        return getattr(self, f"_a{k}"), getattr(self, f"_b{k}")

    def _check(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"{type(self).__name__}: expected shape (N, {self.features}), got {tuple(x.shape)}")

    # -- the two directions ---------------------------------------------------------------------
    def to_latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f(x) = G⁻¹(x) and log|det ∂f/∂x| (FG eq. 6), each row."""
        self._check(x)
        logdet = x.new_zeros(x.shape[0])
        for k in range(self.num_layers):
            a, b = self._halves(k)
            yb, ld = self._couple(k, x[:, a], x[:, b], inverse=False)
            x = x.index_copy(1, b, yb)
            logdet = logdet + ld
        z, ld = self._diag(x, inverse=False)
        return z, logdet + ld

    def from_latent(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x = G(z) and log|det ∂G/∂z|, each row."""
        self._check(z)
        x, logdet = self._diag(z, inverse=True)
        for k in reversed(range(self.num_layers)):
            a, b = self._halves(k)
            yb, ld = self._couple(k, x[:, a], x[:, b], inverse=True)
            x = x.index_copy(1, b, yb)
            logdet = logdet + ld
        return x, logdet

    def forward(self, z: Tensor) -> Tensor:
        """The generator x = G(z)."""
        return self.from_latent(z)[0]

    # -- density and sampling -------------------------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) = log p_Z(f(x)) + log|det ∂f/∂x| (FG eq. 6): ``(N, d)`` → ``(N,)``."""
        z, logdet = self.to_latent(x)
        return self.prior_log_prob(z) + logdet

    def rsample_and_log_prob(self, num_samples: int) -> tuple[Tensor, Tensor]:
        """Differentiable samples ``(n, d)`` and their log-density ``(n,)``."""
        z = self.prior_sample(num_samples)
        x, logdet = self.from_latent(z)
        return x, self.prior_log_prob(z) - logdet

    def rsample(self, num_samples: int) -> Tensor:
        return self(self.prior_sample(num_samples))

    @torch.no_grad()
    def sample(self, num_samples: int) -> Tensor:
        return self.rsample(num_samples)

    def _ref(self) -> Tensor:
        return next(self.parameters())

    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """Data-dependent init of the diagonal layer (as Glow's actnorm): per-dimension standardization
        of ``x`` to the prior's scale, so training does not spend thousands of steps growing the scale."""
        self._check(x)
        z, _ = self.to_latent(x)
        std = z.std(0).clamp_min(1e-3)
        self._init_diag(z.mean(0), std)

    def _init_diag(self, mean: Tensor, std: Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_sample(self, num_samples: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_log_prob(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class NICE(CouplingFlow):
    """NICE: additive couplings + diagonal scaling, logistic prior (Dinh et al. 2014; FG §3).

    Args:
        features: dimension d.
        num_layers: additive coupling layers (NICE uses 4).
        hidden: hidden widths of each coupling network m(·) (NICE on MNIST: 5 × 1000).
    """

    def __init__(self, features: int, num_layers: int = 4, hidden: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__(features, num_layers)
        self.nets = nn.ModuleList(
            _zero_last(MLP(len(self._halves(k)[0]), len(self._halves(k)[1]), hidden)) for k in range(num_layers)
        )
        self.log_scale = nn.Parameter(torch.zeros(features))

    def _couple(self, k: int, xa: Tensor, xb: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        m = self.nets[k](xa)
        # additive coupling y_b = x_b + m(x_a), unit Jacobian (NICE eq. 5-6)
        return (xb - m if inverse else xb + m), xa.new_zeros(xa.shape[0])

    def _diag(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        s = self.log_scale
        ld = s.sum().expand(x.shape[0])
        # h = exp(s) ⊙ y, log|det| = Σ s (NICE §3.3)
        return (x * torch.exp(-s), -ld) if inverse else (x * torch.exp(s), ld)

    def _init_diag(self, mean: Tensor, std: Tensor) -> None:
        self.log_scale.add_(torch.log(math.pi / math.sqrt(3) / std))  # logistic std is π/√3

    def prior_log_prob(self, z: Tensor) -> Tensor:
        # standard logistic: log p(h) = −softplus(h) − softplus(−h) per dimension
        return -(F.softplus(z) + F.softplus(-z)).sum(-1)

    def prior_sample(self, num_samples: int) -> Tensor:
        ref = self._ref()
        u = torch.rand(num_samples, self.features, dtype=ref.dtype, device=ref.device).clamp(1e-7, 1 - 1e-7)
        return torch.log(u) - torch.log1p(-u)


class RealNVP(CouplingFlow):
    """RealNVP: affine couplings + a diagonal affine layer, standard normal prior (Dinh et al. 2017).

    Args:
        features: dimension d.
        num_layers: affine coupling layers.
        hidden: hidden widths of each coupling network (outputs s and t).
    """

    def __init__(self, features: int, num_layers: int = 6, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__(features, num_layers)
        self.nets = nn.ModuleList(
            _zero_last(MLP(len(self._halves(k)[0]), 2 * len(self._halves(k)[1]), hidden)) for k in range(num_layers)
        )
        self.scale_range = nn.ParameterList(nn.Parameter(torch.zeros(len(self._halves(k)[1]))) for k in range(num_layers))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def _couple(self, k: int, xa: Tensor, xb: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw_s, t = self.nets[k](xa).chunk(2, dim=-1)
        s = torch.tanh(raw_s) * torch.exp(self.scale_range[k])  # bounded log-scale for stability
        # affine coupling y_b = x_b ⊙ exp(s(x_a)) + t(x_a), log|det| = Σ s (RealNVP eq. 6-7)
        if inverse:
            return (xb - t) * torch.exp(-s), -s.sum(-1)
        return xb * torch.exp(s) + t, s.sum(-1)

    def _diag(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        s = self.log_scale
        ld = s.sum().expand(x.shape[0])
        if inverse:
            return (x - self.shift) * torch.exp(-s), -ld
        return x * torch.exp(s) + self.shift, ld

    def _init_diag(self, mean: Tensor, std: Tensor) -> None:
        # z' = (z − mean)/std composed with the current x·exp(s) + shift
        self.log_scale.sub_(torch.log(std))
        self.shift.sub_(mean).div_(std)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z)

    def prior_sample(self, num_samples: int) -> Tensor:
        ref = self._ref()
        return torch.randn(num_samples, self.features, dtype=ref.dtype, device=ref.device)


FLOWS = {"nice": NICE, "realnvp": RealNVP}


def make_flow(name: str, features: int, **kwargs) -> CouplingFlow:
    """``NICE`` or ``RealNVP`` by name; unknown names list the choices."""
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; choose one of: {', '.join(FLOWS)}")
    return FLOWS[name](features, **kwargs)
