"""Paired GAN losses over critic outputs, chosen by name from a registry.

Every loss is a plain function of tensors: critic losses take ``(out_pos_or_real, out_neg_or_fake)``
and generator losses take ``fake_out``, where the outputs are raw critic logits (JSD, RKL) or
unbounded scores (WGAN). Lower is better for whoever is being trained. Regularizers take
``(critic, real, fake)`` and return a scalar tensor. Inputs are not checked for NaN: this is the
hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "logistic_critic_loss",
    "jsd_generator_loss",
    "rkl_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "gradient_penalty",
    "GANLoss",
    "GAN_LOSSES",
    "get_gan_loss",
]


def logistic_critic_loss(logits_pos: Tensor, logits_neg: Tensor) -> Tensor:
    """Binary logistic-regression loss with positives labelled 1 and negatives labelled 0.

    At the optimum the logit equals ``log p_pos(x) / p_neg(x)``; the U-GAN critic uses this to
    estimate ``r1 = log rho/nu`` (VA §3.2, SPEC §4). With ``pos = real`` and ``neg = fake`` it is
    also the JSD-GAN discriminator loss (and the critic loss of the RKL f-GAN).

    Args:
        logits_pos: critic logits on samples from the positive distribution, any shape.
        logits_neg: critic logits on samples from the negative distribution, any shape.

    Returns:
        Scalar tensor ``E_pos[softplus(-D)] + E_neg[softplus(D)]``.
    """
    # -log sigmoid(D) on positives + -log(1 - sigmoid(D)) on negatives (logistic regression)
    return F.softplus(-logits_pos).mean() + F.softplus(logits_neg).mean()


def jsd_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating JSD-GAN generator loss ``E_g[softplus(-D)] = -E_g[log sigmoid(D)]``.

    Args:
        fake_logits: critic logits on generator samples, any shape.

    Returns:
        Scalar tensor.
    """
    # non-saturating generator loss, -log D(G(z)) (Goodfellow et al. 2014)
    return F.softplus(-fake_logits).mean()


def rkl_generator_loss(fake_logits: Tensor) -> Tensor:
    """Reverse-KL f-GAN generator loss with the logistic critic.

    The logistic critic's logit estimates ``log p_data / p_g``, so
    ``KL(p_g || p_data) = E_g[log p_g / p_data] ~= E_g[-D]``.

    Args:
        fake_logits: critic logits on generator samples, any shape.

    Returns:
        Scalar tensor ``-E_g[D]``.
    """
    # KL(p_g || p_data) = E_g[-log p_data/p_g] ~= E_g[-D] (VA eq. 9 with f = RKL)
    return (-fake_logits).mean()


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss ``E_fake[f] - E_real[f]`` (minimized by the critic).

    Args:
        real_scores: critic scores on data samples, any shape.
        fake_scores: critic scores on generator samples, any shape.

    Returns:
        Scalar tensor.
    """
    # negative Kantorovich-Rubinstein dual objective (Arjovsky et al. 2017)
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss ``-E_fake[f]``.

    Args:
        fake_scores: critic scores on generator samples, any shape.

    Returns:
        Scalar tensor.
    """
    # generator maximizes the critic score on its samples (Arjovsky et al. 2017)
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[..., Tensor],
    real: Tensor,
    fake: Tensor,
    context: Optional[Tensor] = None,
    weight: float = 10.0,
) -> Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017).

    Draws ``eps ~ U(0, 1)`` once per sample (broadcast over all non-batch dims, so ``(N, d)``
    vectors and ``(N, C, H, W)`` images both work), forms ``x_hat = eps real + (1 - eps) fake``
    from *detached* inputs, and returns ``weight * E[(||grad_x critic(x_hat)||_2 - 1)^2]`` with
    ``create_graph=True`` so the penalty can be back-propagated into the critic's parameters.

    Args:
        critic: called as ``critic(x_hat)`` if ``context`` is None else ``critic(x_hat, context)``.
        real: data batch, shape ``(N, ...)``.
        fake: generator batch, same shape as ``real``.
        context: optional conditioning passed through to the critic unchanged.
        weight: penalty coefficient (10 in the paper).

    Returns:
        Scalar tensor.

    Raises:
        ValueError: if ``real`` and ``fake`` differ in shape or have no batch dimension.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.dim() < 1:
        raise ValueError("real and fake need a batch dimension")
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, dtype=real.dtype, device=real.device)
    # x_hat = eps x + (1 - eps) x~, eps ~ U[0, 1] (Gulrajani et al. 2017, Alg. 1)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat) if context is None else critic(x_hat, context)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    grad_norm = grad.flatten(1).norm(2, dim=1)
    # lambda E[(||grad D(x_hat)||_2 - 1)^2] (Gulrajani et al. 2017, eq. 3)
    return weight * ((grad_norm - 1.0) ** 2).mean()


@dataclass(frozen=True)
class GANLoss:
    """A named pair of critic and generator losses.

    Attributes:
        name: registry key.
        critic_loss: ``(critic_out_real, critic_out_fake) -> scalar`` minimized by the critic.
        generator_loss: ``(critic_out_fake) -> scalar`` minimized by the generator.
        needs_gradient_penalty: whether the critic loss must be paired with ``gradient_penalty``.
    """

    name: str
    critic_loss: Callable[[Tensor, Tensor], Tensor]
    generator_loss: Callable[[Tensor], Tensor]
    needs_gradient_penalty: bool = False


GAN_LOSSES: dict[str, GANLoss] = {
    "jsd": GANLoss("jsd", logistic_critic_loss, jsd_generator_loss, False),
    "rkl": GANLoss("rkl", logistic_critic_loss, rkl_generator_loss, False),
    "wgan-gp": GANLoss("wgan-gp", wgan_critic_loss, wgan_generator_loss, True),
}


def get_gan_loss(name: str) -> GANLoss:
    """Look up a GAN loss pair by name (one of ``GAN_LOSSES``).

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    try:
        return GAN_LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown GAN loss {name!r}; choose one of: {', '.join(sorted(GAN_LOSSES))}") from None
