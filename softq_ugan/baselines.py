"""Baseline samplers fitted directly to the target by reverse KL.

- :class:`MAFRKL`: a MAF (VA suppl. G). Loss E_{x~ν}[log ν(x) − (1+λ_t) log u(x)], with samples drawn through
  the MAF's (sequential, d-pass) inverse so gradients flow through sampling: the costly route that the U-GAN
  amortizes.
- :class:`GaussianRKL`: a conditional diagonal Gaussian, SAC's policy family (Haarnoja et al. 2018) in the
  pre-squash space, with the same loss: SAC's actor objective E[α log π − Q] divided by α = τ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from softq_ugan.flows import ConditionalGaussian, ConditionalMAF
from softq_ugan.gan.schedules import make_schedule
from softq_ugan.nets import adam, check_finite, check_weight, optimizer_step, require_positive
from softq_ugan.ugan import LogProb


@dataclass
class MAFRKLConfig:
    """Hyperparameters of :class:`MAFRKL`."""

    features: int
    """Dimension d of the samples."""
    context_features: int = 0
    """Dimension c of the context (0: unconditional)."""
    bridge_blocks: int = 4
    """Affine MAF blocks."""
    bridge_hidden: int = 64
    """Width of the two hidden layers of each block."""
    batch_size: int = 256
    """Samples per update (per context)."""
    lr: float = 1e-3
    """Adam learning rate."""
    schedule: str = "none"
    """Annealing schedule of λ_t (same names as the U-GAN)."""
    lambda0: float = 0.0
    """Initial annealing weight λ_0."""
    total_steps: int = 3000
    """Annealing horizon T in updates."""
    max_grad_norm: float | None = 10.0
    """Gradient-norm clip (None: none)."""

    def __post_init__(self) -> None:
        require_positive(self, "features", "batch_size", "total_steps", "bridge_blocks")
        make_schedule(self.schedule, self.lambda0, self.total_steps)


class ReverseKL:
    """Reverse-KL trainer of a sampler with its own density (``rsample_and_log_prob``, ``sample``):
    ``update(log_prob, context)`` returns a dict of floats. ``config`` holds ``batch_size``, ``lr``, ``schedule``,
    ``lambda0``, ``total_steps`` and ``max_grad_norm``."""

    name = "reverse-KL"

    def __init__(self, config, model: nn.Module) -> None:
        self.config, self.model = config, model
        self.optimizer = adam(model.parameters(), config.lr)
        self.schedule = make_schedule(config.schedule, config.lambda0, config.total_steps)
        self.num_updates = 0

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.model.sample(num_samples, context)

    def update(self, log_prob: LogProb, context: Tensor | None = None, weight: float = 1.0) -> dict[str, float]:
        """One step on ``weight`` × the annealed reverse KL; a positive ``weight`` scales the gradient, not its
        minimizer (in SoftQ, weight τ turns E[log π − Q/τ] into SAC's actor loss E[τ log π − Q])."""
        check_weight(self.name, weight)
        c, t = self.config, self.num_updates
        lam = self.schedule(t)
        x, log_q = self.model.rsample_and_log_prob(c.batch_size, context)
        log_u = log_prob(x, context)
        loss = weight * (log_q - (1.0 + lam) * log_u).mean()  # annealed KL(q‖u) + const (VA eq. 9 with ρ = q)
        value = check_finite(f"{self.name} loss", loss.item(), t)
        optimizer_step(self.optimizer, loss, self.model.parameters(), c.max_grad_norm)
        self.num_updates += 1
        with torch.no_grad():
            kl = (log_q - log_u).mean().item()
        return {"loss": value, "kl_estimate": kl, "entropy": -log_q.mean().item(), "lambda": lam}


class MAFRKL(ReverseKL):
    """Reverse-KL MAF trainer (VA suppl. G): ``update(log_prob, context)`` returns a dict of floats."""

    name = "MAF reverse-KL"

    def __init__(self, config: MAFRKLConfig, flow: ConditionalMAF | None = None) -> None:
        self.flow = flow if flow is not None else ConditionalMAF(
            config.features, config.context_features, config.bridge_blocks, config.bridge_hidden)
        super().__init__(config, self.flow)


@dataclass
class GaussianRKLConfig:
    """Hyperparameters of :class:`GaussianRKL` (defaults: SB3's SAC actor)."""

    features: int
    """Dimension d of the samples."""
    context_features: int = 0
    """Dimension c of the context (0: unconditional)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP from the context to μ and log σ."""
    batch_size: int = 1
    """Samples per context per update (SAC: 1)."""
    lr: float = 3e-4
    """Adam learning rate."""
    schedule: str = "none"
    """Annealing schedule of λ_t (same names as the U-GAN; SAC: none)."""
    lambda0: float = 0.0
    """Initial annealing weight λ_0."""
    total_steps: int = 3000
    """Annealing horizon T in updates."""
    max_grad_norm: float | None = None
    """Gradient-norm clip (None: none, as SAC)."""

    def __post_init__(self) -> None:
        require_positive(self, "features", "batch_size", "total_steps")
        self.hidden = tuple(self.hidden)
        make_schedule(self.schedule, self.lambda0, self.total_steps)


class GaussianRKL(ReverseKL):
    """Reverse-KL trainer of a :class:`ConditionalGaussian`; with u = exp(Q/τ)·|da/dy| its loss is SAC's actor loss
    E[τ log π − Q] divided by τ. ``update(log_prob, context)`` returns a dict of floats."""

    name = "Gaussian reverse-KL"

    def __init__(self, config: GaussianRKLConfig, gaussian: ConditionalGaussian | None = None) -> None:
        self.gaussian = gaussian if gaussian is not None else ConditionalGaussian(
            config.features, config.context_features, config.hidden)
        super().__init__(config, self.gaussian)
