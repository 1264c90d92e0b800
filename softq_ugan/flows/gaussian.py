"""A conditional diagonal Gaussian in the flows' sampling interface: SAC's policy family (an affine flow of N(0, I)
whose shift and log-scale an MLP of the context gives). The Gaussian baseline samples from it; the U-GAN can use it
as its generator (``UGANConfig(generator="gaussian")``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from softq_ugan.nets import MLP, standard_normal_log_prob


class ConditionalGaussian(nn.Module):
    """x ~ N(μ(c), diag σ(c)²), μ and log σ from one MLP of the context c (log σ clipped to ``log_std_bounds``, as
    SB3's SAC actor): SAC's policy family in pre-squash space. Without context (``context_features`` 0), μ and
    log σ are free parameters. Same sampling interface as :class:`~softq_ugan.flows.ConditionalMAF`."""

    def __init__(self, features: int, context_features: int = 0, hidden: tuple[int, ...] = (256, 256),
                 log_std_bounds: tuple[float, float] = (-20.0, 2.0)) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"ConditionalGaussian: features must be >= 1, got {features}")
        self.features, self.context_features, self.log_std_bounds = features, context_features, log_std_bounds
        self.noise_features = features  # the latent of from_noise
        if context_features > 0:
            self.net: nn.Module | None = MLP(context_features, 2 * features, tuple(hidden))
        else:
            self.net = None
            self.params = nn.Parameter(torch.zeros(2 * features))

    def mean_and_log_std(self, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """μ and log σ: ``(B, d)`` each for a context ``(B, c)``, ``(1, d)`` without one."""
        if (context is None) != (self.net is None):
            raise ValueError(f"ConditionalGaussian built with context_features={self.context_features} got "
                             f"{'no context' if context is None else f'a context of shape {tuple(context.shape)}'}")
        if context is not None and (context.ndim != 2 or context.shape[-1] != self.context_features):
            raise ValueError(f"context must have shape (B, {self.context_features}), got {tuple(context.shape)}")
        out = self.params.unsqueeze(0) if self.net is None else self.net(context)
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(*self.log_std_bounds)

    def _unbatch(self, x: Tensor, context: Tensor | None) -> Tensor:
        return x[0] if context is None else x

    def from_noise(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """x = μ + σ ⊙ z for base noise ``z``: ``(n, d)`` without context, ``(B, n, d)`` with one ``(B, c)``."""
        mean, log_std = self.mean_and_log_std(context)
        z3 = z.unsqueeze(0) if context is None else z
        return self._unbatch(mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * z3, context)

    def rsample_and_log_prob(self, num_samples: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Reparametrized samples and their log-density: ``(B, n, d), (B, n)``, or ``(n, d), (n,)`` without context."""
        mean, log_std = self.mean_and_log_std(context)
        z = torch.randn(mean.shape[0], num_samples, self.features, dtype=mean.dtype, device=mean.device)
        x = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * z
        # log N(x; μ, σ²) = log N(z; 0, I) − Σ log σ
        log_prob = standard_normal_log_prob(z) - log_std.sum(-1, keepdim=True)
        return self._unbatch(x, context), self._unbatch(log_prob, context)

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.rsample_and_log_prob(num_samples, context)[0]

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.rsample(num_samples, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log N(x; μ(c), σ(c)²): ``x (B, n, d)`` with a context ``(B, c)`` → ``(B, n)``; ``(n, d)`` → ``(n,)`` without."""
        mean, log_std = self.mean_and_log_std(context)
        x3 = x.unsqueeze(0) if context is None else x
        z = (x3 - mean.unsqueeze(1)) / log_std.exp().unsqueeze(1)
        return self._unbatch(standard_normal_log_prob(z) - log_std.sum(-1, keepdim=True), context)
