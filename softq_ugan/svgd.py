"""Amortized Stein variational gradient descent (SQL's policy sampler; Haarnoja et al. 2017, §3.2).

Particles y = G(ξ; c) per context are split into a fixed half and an updated half. The SVGD
direction at an updated particle y_i is

    φ(y_i) = 1/K_f Σ_j [ k(y_j, y_i) ∇_{y_j} log u(y_j|c) + ∇_{y_j} k(y_j, y_i) ]   (SQL eq. 13)

over the fixed particles y_j, with an RBF kernel k(y, y') = exp(−‖y − y'‖²/h) whose bandwidth is
the median heuristic h = med(‖y_j − y_i‖²)/log K_f (SQL / softlearning's adaptive kernel). The
direction is pushed through the network: ∇_θ ≈ E[(∂y_i/∂θ)ᵀ φ(y_i)] (SQL eq. 14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from softq_ugan.nets import adam, check_finite, optimizer_step, require_positive
from softq_ugan.ugan import Generator, LogProb


@dataclass
class SVGDConfig:
    """Hyperparameters of :class:`SVGD`."""

    features: int
    """Dimension d of the particles."""
    context_features: int = 0
    """Dimension c of the context (0: unconditional)."""
    latent_features: int | None = None
    """Dimension of the sampler's noise ξ (None: ``features``)."""
    generator_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the sampler network (SQL: 2×128)."""
    num_fixed: int = 8
    """Particles per context whose score and kernel define the direction (SQL: half of 16)."""
    num_updated: int = 8
    """Particles per context moved along the SVGD direction (SQL: the other half)."""
    lr: float = 3e-4
    """Adam learning rate of the sampler network."""
    max_grad_norm: float | None = 10.0
    """Gradient-norm clip (None: none)."""

    def __post_init__(self) -> None:
        require_positive(self, "features", "num_fixed", "num_updated")
        if self.num_fixed < 2:
            raise ValueError("SVGDConfig: num_fixed must be >= 2 (the median bandwidth needs two particles)")


class SVGDSampler(nn.Module):
    """The amortized SVGD sampler network y = G(ξ; c) (no bridge, no critic)."""

    bridge = None

    def __init__(self, config: SVGDConfig) -> None:
        super().__init__()
        self.features, self.context_features = config.features, config.context_features
        self.generator = Generator(config.latent_features or config.features, config.features,
                                   config.context_features, config.generator_hidden)

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.generator.rsample(num_samples, context)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.rsample(num_samples, context)

    def from_noise(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """G(ξ; c) for given noise ``(n, latent)`` or ``(B, n, latent)``."""
        return self.generator(z, context)


def rbf_kernel(x_fixed: Tensor, x_updated: Tensor) -> tuple[Tensor, Tensor]:
    """k(y_j, y_i) ``(..., K_f, K_u)`` and ∇_{y_j} k(y_j, y_i) ``(..., K_f, K_u, d)`` with the median bandwidth."""
    diff = x_fixed.unsqueeze(-2) - x_updated.unsqueeze(-3)  # (..., K_f, K_u, d)
    dist2 = diff.pow(2).sum(-1)
    k_fixed = x_fixed.shape[-2]
    # h = med(‖y_j − y_i‖²) / log K_f, per context (softlearning's adaptive isotropic kernel)
    h = dist2.flatten(-2).median(dim=-1).values / math.log(k_fixed)
    h = h.clamp_min(1e-8).unsqueeze(-1).unsqueeze(-1)
    kappa = torch.exp(-dist2 / h)
    grad = -2.0 * diff / h.unsqueeze(-1) * kappa.unsqueeze(-1)
    return kappa, grad


def svgd_direction(x_fixed: Tensor, score_fixed: Tensor, x_updated: Tensor) -> Tensor:
    """φ(y_i) = mean_j [k(y_j, y_i) ∇log u(y_j) + ∇_{y_j} k(y_j, y_i)] (SQL eq. 13); shape of ``x_updated``."""
    kappa, grad_kappa = rbf_kernel(x_fixed, x_updated)
    drive = torch.einsum("...ji,...jd->...id", kappa, score_fixed)
    return (drive + grad_kappa.sum(-3)) / x_fixed.shape[-2]


class SVGD:
    """Amortized SVGD trainer with the same interface as :class:`softq_ugan.ugan.UGAN`."""

    def __init__(self, config: SVGDConfig, sampler: SVGDSampler | None = None) -> None:
        self.config = config
        self.sampler = sampler if sampler is not None else SVGDSampler(config)
        self.generator_optimizer = adam(self.sampler.generator.parameters(), config.lr)
        self.num_updates = 0

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.sampler.sample(num_samples, context)

    def update(self, log_prob: LogProb, context: Tensor | None = None) -> dict[str, float]:
        c, t = self.config, self.num_updates
        y = self.sampler.rsample(c.num_fixed + c.num_updated, context)
        y_fixed, y_updated = y[..., : c.num_fixed, :], y[..., c.num_fixed:, :]
        y_fixed = y_fixed.detach().requires_grad_(True)
        log_u = log_prob(y_fixed, context)
        score = torch.autograd.grad(log_u.sum(), y_fixed)[0]  # ∇_y log u(y|c) at the fixed particles
        with torch.no_grad():
            phi = svgd_direction(y_fixed, score, y_updated)
        # ascend along φ through the network: ∇_θ Σ_i φ(y_i)ᵀ y_i(θ) (SQL eq. 14)
        loss = -(phi * y_updated).sum(-1).mean()
        check_finite("SVGD surrogate loss", loss.item(), t)
        optimizer_step(self.generator_optimizer, loss, self.sampler.generator.parameters(), c.max_grad_norm)
        self.num_updates += 1
        return {"generator_loss": loss.item(), "log_u": log_u.mean().item(),
                "direction_norm": phi.norm(dim=-1).mean().item()}
