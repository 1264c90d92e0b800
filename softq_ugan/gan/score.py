"""Denoising-autoencoder score estimator (VA eq. 10; Alain & Bengio 2014) and the
stop-gradient score surrogate (VA §3.1).

A DAE ``phi_sigma`` minimizing ``E ||x - phi(x + sigma xi)||^2`` (eq. 10) gives the score
estimate ``s_sigma(x) = (phi_sigma(x) - x) / sigma^2`` with ``grad log mu = s_sigma + o(1)`` as
``sigma -> 0``. More precisely it estimates the score of the sigma-smoothed density
``mu * N(0, sigma^2 I)``. The generator then uses ``R(z) = G(z)^T StopGrad(S(G(z)))`` in place
of ``log mu(G(z))``, whose gradient is ``(dG/dtheta)^T S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["DAE", "dae_loss", "dae_score", "score_surrogate", "DAEScoreConfig", "DAEScore"]


class DAE(nn.Module):
    """Residual MLP denoiser ``phi(x) = x + mlp(x)`` on ``R^d``.

    The last layer is zero-initialized, so ``phi`` starts as the identity (score estimate 0).

    Args:
        features: ``d``, the size of the last input dimension.
        hidden_features: width of each hidden layer.
        num_layers: number of hidden layers (>= 1).
        activation: activation module class, instantiated once per hidden layer.
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 128,
        num_layers: int = 2,
        activation: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        if features < 1 or hidden_features < 1 or num_layers < 1:
            raise ValueError(
                "features, hidden_features and num_layers must be >= 1, "
                f"got {features}, {hidden_features}, {num_layers}"
            )
        self.features = features
        layers: list[nn.Module] = []
        width = features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_features), activation()]
            width = hidden_features
        last = nn.Linear(width, features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``phi(x)`` for ``x`` of shape ``(..., features)``."""
        return x + self.mlp(x)


def dae_loss(dae: nn.Module, x: Tensor, sigma: float, noise: Optional[Tensor] = None) -> Tensor:
    """DAE reconstruction loss ``E ||x - phi(x + sigma xi)||^2``, ``xi ~ N(0, I)`` (VA eq. 10).

    Args:
        dae: the denoiser ``phi``.
        x: clean samples, shape ``(..., d)``.
        sigma: noise level (> 0).
        noise: optional ``xi`` with the shape of ``x`` (drawn from ``N(0, I)`` if None).

    Returns:
        Scalar tensor: squared error summed over the last dim, averaged over the rest.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if noise is None:
        noise = torch.randn_like(x)
    elif noise.shape != x.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} must match x shape {tuple(x.shape)}")
    # phi_sigma = argmin E ||X - phi(X + xi)||^2, xi ~ N(0, sigma^2 I) (VA eq. 10)
    return (x - dae(x + sigma * noise)).pow(2).sum(-1).mean()


def dae_score(dae: nn.Module, x: Tensor, sigma: float) -> Tensor:
    """DAE score estimate ``s_sigma(x) = (phi(x) - x) / sigma^2`` (VA §3.1, Alain & Bengio 2014).

    Args:
        dae: a denoiser trained with ``dae_loss`` at the same ``sigma``.
        x: points, shape ``(..., d)``.
        sigma: the training noise level (> 0).

    Returns:
        Tensor with the shape of ``x``.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    # s_sigma(x) = (phi_sigma(x) - x) / sigma^2 (VA §3.1)
    return (dae(x) - x) / sigma**2


def score_surrogate(x: Tensor, score: Tensor) -> Tensor:
    """Stop-gradient surrogate ``R = x^T StopGrad(S)`` for ``log mu(x)`` (VA §3.1).

    With ``x = G(z; theta)``, ``grad_theta R = (dG/dtheta)^T S``, the chain-rule gradient of
    ``log mu(G(z; theta))`` when ``S = grad log mu``; no gradient flows into ``score``.

    Args:
        x: generator samples, shape ``(..., d)``.
        score: score at ``x``, same shape.

    Returns:
        Tensor of shape ``x.shape[:-1]``.
    """
    if x.shape != score.shape:
        raise ValueError(f"x shape {tuple(x.shape)} must match score shape {tuple(score.shape)}")
    # R_mu(z) = G(z; theta)^T StopGrad{S_mu(G(z; theta))} (VA §3.1)
    return (x * score.detach()).sum(-1)


@dataclass
class DAEScoreConfig:
    """Settings of ``DAEScore``."""

    features: int
    """Dimension ``d`` of the points whose score is estimated (e.g. discriminator features)."""
    sigma: float = 0.1
    """DAE noise level; small sigma means less smoothing bias but a noisier regression target."""
    hidden_features: int = 128
    """Width of each hidden layer of the DAE's MLP."""
    num_layers: int = 2
    """Number of hidden layers of the DAE's MLP."""
    lr: float = 1e-3
    """Adam learning rate for the DAE."""

    def __post_init__(self) -> None:
        if self.features < 1:
            raise ValueError(f"features must be >= 1, got {self.features}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class DAEScore:
    """Trainer for a DAE score estimator: holds the DAE, its Adam optimizer and sigma.

    Args:
        config: a ``DAEScoreConfig``.
    """

    def __init__(self, config: DAEScoreConfig) -> None:
        self.config = config
        self.sigma = config.sigma
        self.dae = DAE(config.features, config.hidden_features, config.num_layers)
        self.optimizer = torch.optim.Adam(self.dae.parameters(), lr=config.lr)

    def update(self, x: Tensor) -> dict[str, float]:
        """One Adam step of eq. 10 on the (detached) batch ``x``; returns ``{"dae_loss": ...}``."""
        loss = dae_loss(self.dae, x.detach(), self.sigma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"dae_loss": loss.item()}

    def score(self, x: Tensor) -> Tensor:
        """Score estimate ``s_sigma(x)`` under ``torch.no_grad()``, shape of ``x``."""
        with torch.no_grad():
            return dae_score(self.dae, x, self.sigma)
