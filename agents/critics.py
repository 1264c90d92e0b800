"""The Boltzmann target of an SB3 critic, shared by SoftQ's policy and the sampler callback (SPEC §5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from softq_ugan.soft_value import boltzmann_log_prob

__all__ = ["boltzmann_target", "critic_q_min", "q_min", "repeat_states"]


def critic_q_min(critic_output: Tensor | Sequence[Tensor]) -> Tensor:
    """min over critics of an SB3 critic's output, shape ``(N,)``.

    SAC/TD3 critics return a tuple of ``(N, 1)`` tensors; TQC's returns quantiles ``(N, n_critics,
    n_quantiles)``, whose mean over quantiles is each critic's Q.
    """
    if isinstance(critic_output, Tensor):
        if critic_output.ndim == 3:  # TQC: (N, n_critics, n_quantiles)
            return critic_output.mean(dim=2).min(dim=1).values
        if critic_output.ndim == 2:  # (N, n_critics)
            return critic_output.min(dim=1).values
        raise ValueError(f"critic output of shape {tuple(critic_output.shape)}: expected (N, n_critics[, n_quantiles])")
    return torch.cat(tuple(critic_output), dim=1).min(dim=1).values


def repeat_states(obs: Tensor | dict[str, Tensor], k: int) -> Tensor | dict[str, Tensor]:
    """Each state ``k`` times in a row (``(B, …)`` → ``(B·k, …)``), for a dict observation key by key."""
    if isinstance(obs, dict):
        return {key: v.repeat_interleave(k, dim=0) for key, v in obs.items()}
    return obs.repeat_interleave(k, dim=0)


def q_min(critic: nn.Module, obs: Tensor | dict[str, Tensor], actions: Tensor) -> Tensor:
    """min_i Q_i(s, a) for obs ``(B, o)`` and actions ``(B, K, d)``, all B·K pairs in one pass → ``(B, K)``."""
    B, K, d = actions.shape
    return critic_q_min(critic(repeat_states(obs, K), actions.reshape(B * K, d))).reshape(B, K)


def boltzmann_target(q_min_fn: Callable[[Tensor, Tensor], Tensor], obs: Tensor | dict[str, Tensor],
                     temperature: float) -> Callable[[Tensor, Tensor | None], Tensor]:
    """log u(y|s) = min_i Q_i(s, tanh y)/τ + Σ log(1 − tanh² y) as a function of (y, context), for the
    states ``obs`` (``q_min_fn(obs, actions)`` gives ``(B, K)``)."""

    def log_prob(y: Tensor, context: Tensor | None = None) -> Tensor:
        return boltzmann_log_prob(q_min_fn(obs, torch.tanh(y)), y, temperature)

    return log_prob
