"""One-way flow generator (OW §2.3-2.4): a free-form map with a density at its own samples.

``x = g([z, r]; c)`` with latent ``z ∈ R^d`` and noise ``r ∈ R^(n-d)`` concatenated (OW eq. 7)
and ``g: R^n → R^n`` an MLP whose widths never fall below n. At a generated point
``log P_G(x) = log N(z) + log N(r) − log|det ∂g/∂[z, r]|`` (OW eq. 10), with log|det J| either
exact (autograd Jacobian + slogdet; for small n) or estimated from one random unit vector v by a
Jacobian-vector product (OW eq. 8-9). The generator is never inverted, so densities exist only
at its own samples.

Same sampling contract as the U-GAN ``Generator``: ``rsample(n, context)`` gives ``(n, d)`` or,
for a context ``(B, c)``, ``(B, n, d)``; the context is an extra input of g, not a variable of J.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import jacrev, jvp, vmap

from softq_ugan.nets import MLP, standard_normal_log_prob, with_context

__all__ = ["OneWayGenerator", "exact_logabsdet", "jvp_logabsdet", "log_partition"]


def exact_logabsdet(fn, u: Tensor) -> Tensor:
    """log|det ∂fn/∂u| per row of ``u`` ``(N, n)`` from the autograd Jacobian (OW §3.1, App. C.3.1)."""
    jac = vmap(jacrev(fn))(u)  # (N, n, n)
    return torch.linalg.slogdet(jac).logabsdet


def jvp_logabsdet(fn, u: Tensor, v: Tensor | None = None) -> Tensor:
    """One-sample estimate n·log‖Jv‖ of log|det J| with v uniform on the unit sphere (OW eq. 8-9).

    OW eq. 8 gives |det J|⁻¹ = E_v ‖Jv‖⁻ⁿ; its one-sample log form is n·log‖Jv‖, exact for
    scaled orthogonal J and, by Jensen, an upper bound on log|det J| in expectation. (OW eq. 9
    writes log‖Jv‖; the factor n only rescales the entropy weight w.)
    """
    if v is None:
        v = torch.randn_like(u)
    v = v / v.norm(dim=-1, keepdim=True)
    _, jv = jvp(fn, (u,), (v,))  # J v, one forward-mode pass
    return u.shape[-1] * torch.log(jv.norm(dim=-1))


def log_partition(log_unnormalized: Tensor, log_proposal: Tensor, dim: int = -1) -> Tensor:
    """Importance-sampled log ζ = log (1/S) Σ_j exp(D(y_j) − log q(y_j)), y_j ~ q (OW eq. 2-3)."""
    S = log_unnormalized.shape[dim]
    return torch.logsumexp(log_unnormalized - log_proposal, dim=dim) - math.log(S)


class OneWayGenerator(nn.Module):
    """x = g([z, r]; c): latent z, noise r concatenated, then a free-form MLP of width ≥ n (OW §2.4).

    Args:
        latent_features: dimension d of z.
        features: output dimension n.
        context_features: dimension of an optional context c (0: unconditional).
        hidden: hidden widths of g; each must be >= n (OW §2.4).
        noise_features: dimension of r; default n − d (it must equal n − d).
        activation: hidden activation (LeakyReLU keeps J full rank almost everywhere).
        residual: g(u) = u + MLP(u) (starts near the identity, so P_G starts near N(0, I)).
    """

    def __init__(
        self,
        latent_features: int,
        features: int,
        context_features: int = 0,
        hidden: tuple[int, ...] = (128, 128),
        noise_features: int | None = None,
        activation: type[nn.Module] = nn.LeakyReLU,
        residual: bool = True,
    ) -> None:
        super().__init__()
        noise = features - latent_features if noise_features is None else noise_features
        if latent_features < 1 or features < 1 or noise < 0 or latent_features + noise != features:
            raise ValueError(
                f"OneWayGenerator: need latent_features + noise_features == features >= 1, got "
                f"{latent_features} + {noise} vs {features}"
            )
        if any(h < features for h in hidden):
            raise ValueError(f"OneWayGenerator: hidden widths must be >= features={features} (OW §2.4), got {tuple(hidden)}")
        self.latent_features, self.noise_features, self.features = latent_features, noise, features
        self.context_features = context_features
        self.residual = residual
        self.mlp = MLP(features + context_features, features, hidden, activation)

    def net(self, inputs: Tensor) -> Tensor:
        """g on concatenated ``[z, r, c]`` inputs (the map whose Jacobian in [z, r] enters OW eq. 10)."""
        out = self.mlp(inputs)
        return out + inputs[..., : self.features] if self.residual else out

    def _check_context(self, context: Tensor | None) -> None:
        if self.context_features:
            if context is None or context.ndim != 2 or context.shape[-1] != self.context_features:
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"OneWayGenerator: expected a context of shape (B, {self.context_features}), got {got}")
        elif context is not None:
            raise ValueError("OneWayGenerator: this generator is unconditional (context_features=0); pass context=None")

    def forward(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """g([z, r]; c). ``z`` holds d latent features (fresh r ~ N(0, I) is drawn) or all n = d + noise."""
        self._check_context(context)
        if z.shape[-1] == self.latent_features and self.noise_features:
            z = torch.cat([z, torch.randn(*z.shape[:-1], self.noise_features, dtype=z.dtype, device=z.device)], -1)
        if z.shape[-1] != self.features:
            raise ValueError(f"OneWayGenerator: expected z with {self.latent_features} or {self.features} features, got {tuple(z.shape)}")
        return self.net(with_context(z, context))

    def _inputs(self, num_samples: int, context: Tensor | None) -> Tensor:
        if num_samples < 1:
            raise ValueError(f"OneWayGenerator: num_samples must be >= 1, got {num_samples}")
        self._check_context(context)
        ref = self.mlp[0].weight
        shape = (num_samples,) if context is None else (context.shape[0], num_samples)
        return torch.randn(*shape, self.features, dtype=ref.dtype, device=ref.device)  # [z, r] ~ N(0, I_n)

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Differentiable samples: ``(n, d)``, or ``(B, n, d)`` for a context ``(B, c)``."""
        return self(self._inputs(num_samples, context), context)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.rsample(num_samples, context)

    def rsample_and_log_prob(
        self, num_samples: int, context: Tensor | None = None, exact: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Samples and log P_G at them (OW eq. 10): ``(n, d), (n,)`` or ``(B, n, d), (B, n)``.

        ``exact=True``: slogdet of the autograd Jacobian (n small); else the jvp estimate (OW eq. 9).
        Both are differentiable in the parameters.
        """
        u = self._inputs(num_samples, context)
        flat_u = u.reshape(-1, self.features)
        if context is None:
            fn = self.net
            args = (flat_u,)
        else:
            ctx = context.repeat_interleave(num_samples, dim=0)
            fn = lambda a, c: self.net(torch.cat([a, c], -1))  # noqa: E731
            args = (flat_u, ctx)
        x = fn(*args)
        if context is None:
            logdet = exact_logabsdet(fn, flat_u) if exact else jvp_logabsdet(fn, flat_u)
        elif exact:
            logdet = torch.linalg.slogdet(vmap(jacrev(fn, argnums=0))(flat_u, ctx)).logabsdet
        else:
            logdet = jvp_logabsdet(lambda a: fn(a, ctx), flat_u)
        # log P_G(x) = log N(z) + log N(r) − log|det J| (OW eq. 10)
        log_prob = standard_normal_log_prob(flat_u) - logdet
        if context is None:
            return x, log_prob
        return x.reshape(*u.shape[:-1], self.features), log_prob.reshape(u.shape[:-1])
