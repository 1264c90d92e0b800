"""Baseline sampler: a MAF fitted directly to the target by reverse KL (VA suppl. G).

Loss E_{x~ν}[log ν(x) − (1+λ_t) log u(x)], with samples drawn through the MAF's (sequential,
d-pass) inverse so gradients flow through sampling: the costly route that the U-GAN amortizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from softq_ugan.flows import ConditionalMAF
from softq_ugan.gan.schedules import make_schedule
from softq_ugan.nets import adam, check_finite, optimizer_step, require_positive
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


class MAFRKL:
    """Reverse-KL MAF trainer: ``update(log_prob, context)`` returns a dict of floats."""

    def __init__(self, config: MAFRKLConfig, flow: ConditionalMAF | None = None) -> None:
        self.config = config
        self.flow = flow if flow is not None else ConditionalMAF(
            config.features, config.context_features, config.bridge_blocks, config.bridge_hidden)
        self.optimizer = adam(self.flow.parameters(), config.lr)
        self.schedule = make_schedule(config.schedule, config.lambda0, config.total_steps)
        self.num_updates = 0

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.flow.sample(num_samples, context)

    def update(self, log_prob: LogProb, context: Tensor | None = None) -> dict[str, float]:
        c, t = self.config, self.num_updates
        lam = self.schedule(t)
        x, log_nu = self.flow.rsample_and_log_prob(c.batch_size, context)
        log_u = log_prob(x, context)
        loss = (log_nu - (1.0 + lam) * log_u).mean()  # annealed KL(ν‖u) + const (VA eq. 9 with ρ = ν)
        value = check_finite("MAF reverse-KL loss", loss.item(), t)
        optimizer_step(self.optimizer, loss, self.flow.parameters(), c.max_grad_norm)
        self.num_updates += 1
        with torch.no_grad():
            kl = (log_nu - log_u).mean().item()
        return {"loss": value, "kl_estimate": kl, "entropy": -log_nu.mean().item(), "lambda": lam}
