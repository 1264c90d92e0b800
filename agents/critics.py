"""The Boltzmann target of an SB3 critic, shared by SoftQ's policy and the sampler callback (SPEC §5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from softq_ugan.soft_value import boltzmann_log_prob

__all__ = ["boltzmann_target", "critic_q_min", "pessimistic_q", "q_min", "repeat_states"]


def pessimistic_q(qs: Tensor, pessimism: float | None = None) -> Tensor:
    """One pessimistic Q per row of ``qs`` ``(N, n_critics)`` → ``(N,)``: the minimum over critics (None, TD3's and
    SAC's), or mean − c·std over critics (population std; TOP's mean + β·σ with β = −c, Moskovitz et al. 2021), which
    for two critics is the minimum at c = 1, their mean at c = 0 and more pessimistic than the minimum for c > 1."""
    if pessimism is None:
        return qs.min(dim=1).values
    return qs.mean(dim=1) - pessimism * qs.std(dim=1, correction=0)


def critic_q_min(critic_output: Tensor | Sequence[Tensor], pessimism: float | None = None) -> Tensor:
    """min over critics of an SB3 critic's output (or :func:`pessimistic_q`'s mean − c·std), shape ``(N,)``.

    SAC/TD3 critics return a tuple of ``(N, 1)`` tensors; TQC's returns quantiles ``(N, n_critics,
    n_quantiles)``, whose mean over quantiles is each critic's Q.
    """
    if isinstance(critic_output, Tensor):
        if critic_output.ndim == 3:  # TQC: (N, n_critics, n_quantiles)
            return pessimistic_q(critic_output.mean(dim=2), pessimism)
        if critic_output.ndim == 2:  # (N, n_critics)
            return pessimistic_q(critic_output, pessimism)
        raise ValueError(f"critic output of shape {tuple(critic_output.shape)}: expected (N, n_critics[, n_quantiles])")
    return pessimistic_q(torch.cat(tuple(critic_output), dim=1), pessimism)


def repeat_states(obs: Tensor | dict[str, Tensor], k: int) -> Tensor | dict[str, Tensor]:
    """Each state ``k`` times in a row (``(B, …)`` → ``(B·k, …)``), for a dict observation key by key (k = 1: as is)."""
    if k == 1:
        return obs
    if isinstance(obs, dict):
        return {key: v.repeat_interleave(k, dim=0) for key, v in obs.items()}
    return obs.repeat_interleave(k, dim=0)


def q_min(critic: nn.Module, obs: Tensor | dict[str, Tensor], actions: Tensor, pessimism: float | None = None) -> Tensor:
    """min_i Q_i(s, a) (or :func:`pessimistic_q`'s mean − c·std) for obs ``(B, o)`` and actions ``(B, K, d)``, all
    B·K pairs in one pass → ``(B, K)``."""
    B, K, d = actions.shape
    return critic_q_min(critic(repeat_states(obs, K), actions.reshape(B * K, d)), pessimism).reshape(B, K)


def boltzmann_target(q_min_fn: Callable[[Tensor, Tensor], Tensor], obs: Tensor | dict[str, Tensor],
                     temperature: float) -> Callable[[Tensor, Tensor | None], Tensor]:
    """log u(y|s) = min_i Q_i(s, tanh y)/τ + Σ log(1 − tanh² y) as a function of (y, context), for the
    states ``obs`` (``q_min_fn(obs, actions)`` gives ``(B, K)``)."""

    def log_prob(y: Tensor, context: Tensor | None = None) -> Tensor:
        return boltzmann_log_prob(q_min_fn(obs, torch.tanh(y)), y, temperature)

    return log_prob
