"""Soft values of Boltzmann policies on a box of actions (SPEC §5, SQL eq. 10): pure functions.

Actions a ∈ (-1, 1)^d; samplers work in pre-squash space y ∈ R^d with a = tanh(y).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def tanh_log_det(y: Tensor) -> Tensor:
    """Σ_i log(1 − tanh²(y_i)) = log|det ∂a/∂y| for a = tanh(y), stable for large |y|; shape y.shape[:-1]."""
    # log(1 − tanh² y) = 2 (log 2 − y − softplus(−2y))
    return (2.0 * (math.log(2.0) - y - F.softplus(-2.0 * y))).sum(-1)


def boltzmann_log_prob(q_values: Tensor, y: Tensor, temperature: float) -> Tensor:
    """Unnormalized log density of the Boltzmann policy in y-space: Q(s, tanh y)/τ + Σ log(1 − tanh² y)."""
    return q_values / temperature + tanh_log_det(y)


def soft_value(q_values: Tensor, log_proposal: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Importance-sampled soft value V(s) = τ log E_{a~q}[exp(Q(s,a)/τ) / q(a)] with M particles.

    Args:
        q_values: ``(B, M)`` Q(s, a_j) at the particles.
        log_proposal: ``(B, M)`` (or broadcastable) log q(a_j), the proposal density of a_j in action space.
        temperature: τ.
    Returns:
        ``V`` of shape ``(B,)`` and the log importance weights ``(B, M)`` (for the ESS).
    """
    log_w = q_values / temperature - log_proposal
    # V = τ [logsumexp_j(Q_j/τ − log q(a_j)) − log M]  (SQL eq. 10 by importance sampling)
    return temperature * (torch.logsumexp(log_w, dim=-1) - math.log(q_values.shape[-1])), log_w


def uniform_log_proposal(action_dim: int) -> float:
    """log q(a) of the uniform proposal on (-1, 1)^d: −d log 2."""
    return -action_dim * math.log(2.0)


def tanh_log_proposal(log_nu: Tensor, y: Tensor) -> Tensor:
    """Action-space log density of a = tanh(y), y ~ ν: log ν(y) − Σ log(1 − tanh² y)."""
    return log_nu - tanh_log_det(y)



def forward_kl_proposal_loss(log_weights: Tensor, log_proposal: Tensor) -> Tensor:
    """Forward KL from the target to a proposal q, estimated on q's own particles: −Σ_j w̄_j log q(y_j), with w̄ the
    self-normalized importance weights (no gradient) over each row's M particles (the cross-entropy method's update).

    Args:
        log_weights: ``(B, M)`` log target − log q at the particles (e.g. :func:`soft_value`'s second output).
        log_proposal: ``(B, M)`` log q(y_j) of the same particles, with gradient w.r.t. q's parameters.
    """
    # KL(π‖q) = E_π[log π − log q]; its gradient is −E_π[∇ log q] ≈ −Σ_j w̄_j ∇ log q(y_j), y_j ~ q
    return -(torch.softmax(log_weights.detach(), dim=-1) * log_proposal).sum(-1).mean()
