"""Conditional masked autoregressive flow (MAF), built on nflows.

The U-GAN bridge ν(x|c) (VA §3.2, eq. 11-12; suppl. J.2.1): affine MAF blocks, each followed by an
order-reversing permutation. MAF evaluates log ν in one pass (the cheap direction, used by the
generator and MLE steps) and samples with ``features`` sequential passes.

Shapes: ``x`` is ``(N, d)`` or, with a batch of contexts ``(B, c)``, ``(B, K, d)``; every method
broadcasts the context over the K samples of its row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
from nflows.transforms.base import CompositeTransform
from nflows.transforms.permutations import ReversePermutation
from torch import Tensor, nn

from softq_ugan.nets import standard_normal_log_prob
from softq_ugan.qmc import sobol_normal


class ConditionalMAF(nn.Module):
    """Affine MAF with optional context, ``num_blocks`` × [MADE affine block, reverse permutation].

    Args:
        features: dimension d of x.
        context_features: dimension c of the context (0: unconditional).
        num_blocks: number of affine autoregressive blocks (VA suppl. J.2.1 uses 4-8).
        hidden_features: width of each MADE hidden layer.
        num_layers: hidden layers per MADE (the paper's blocks have two).
    """

    def __init__(
        self,
        features: int,
        context_features: int = 0,
        num_blocks: int = 5,
        hidden_features: int = 64,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        if features < 1 or num_blocks < 1 or hidden_features < 1 or num_layers < 1:
            raise ValueError(
                f"ConditionalMAF: features, num_blocks, hidden_features, num_layers must be >= 1, "
                f"got {features}, {num_blocks}, {hidden_features}, {num_layers}"
            )
        self.features = features
        self.context_features = context_features
        layers = []
        for _ in range(num_blocks):  # a fresh module per block: never share weights across blocks
            layers.append(
                MaskedAffineAutoregressiveTransform(
                    features=features,
                    hidden_features=hidden_features,
                    context_features=context_features or None,
                    num_blocks=num_layers,
                    use_residual_blocks=False,
                )
            )
            layers.append(ReversePermutation(features))
        self.flow = Flow(CompositeTransform(layers), StandardNormal([features]))

    # -- the flow's passes, without nflows' per-module dispatch -----------------------------------
    # nflows holds the parameters (so state dicts are nflows'); these passes compute what its MADE blocks compute
    # (masked linear layers, ReLU, scale = softplus(·) + 1e-3) with each masked weight formed once per call (once per
    # parameter version without grad mode), the blocks' context layers run as one stacked layer once per context row,
    # not once per sample: sampling costs `features` MADE passes per block, a large part of a SoftQ update's time
    # (benchmarks/results/profile_softq.md, sessions 12 and 32).
    def _made_weights(self) -> tuple[list, tuple[Tensor, Tensor] | None, list[float]]:
        """Per affine block its masked (weight, bias) pairs; every block's context layer stacked into one (weight,
        bias) (None without a context); the blocks' ε. Without grad mode the result is kept until a parameter
        changes (its version or storage), so no-grad passes between two optimizer steps form the weights once."""
        if not hasattr(self, "_weight_params"):  # the MADE blocks, their ε and the tensors the weights are formed from
            blocks = [t for t in self.flow._transform._transforms if hasattr(t, "autoregressive_net")]
            self.__dict__["_made_nets"] = [t.autoregressive_net for t in blocks]
            self.__dict__["_made_eps"] = [t._epsilon for t in blocks]
            self.__dict__["_weight_params"] = [p for m in self._made_nets for p in m.parameters()]
            self.__dict__["_weight_cache"] = (None, None)
        made = self._made_nets
        key = None
        if not torch.is_grad_enabled():
            key = tuple((p._version, p.data_ptr(), p.dtype) for p in self._weight_params)
            if self._weight_cache[0] == key:
                return self._weight_cache[1]
        weights = [[(layer.weight * layer.mask, layer.bias)
                    for layer in (m.initial_layer, *(block.linear for block in m.blocks), m.final_layer)] for m in made]
        ctx_layer = None
        if self.context_features:
            ctx_layer = (torch.cat([m.context_layer.weight for m in made]), torch.cat([m.context_layer.bias for m in made]))
        out = (weights, ctx_layer, self._made_eps)
        if key is not None:
            self.__dict__["_weight_cache"] = (key, out)
        return out

    def _blocks(self, context: Tensor | None, repeats: int):
        """Per affine block: its masked (weight, bias) pairs, the context term (per sample row) and its ε."""
        weights, ctx_layer, eps = self._made_weights()
        ctxs = [None] * len(weights)
        if context is not None:  # every block's context layer in one pass
            ctx = F.relu(F.linear(context, *ctx_layer))
            ctx = ctx.repeat_interleave(repeats, dim=0) if repeats > 1 else ctx
            ctxs = ctx.chunk(len(weights), dim=-1)
        return list(zip(weights, ctxs, eps))

    def _made(self, x: Tensor | None, weights, ctx: Tensor | None, eps: float) -> tuple[Tensor, Tensor]:
        """One MADE pass: the (scale, shift) of every feature given x (autoregressive in x); ``x=None`` is x = 0,
        whose first layer is its bias alone (the inverse's first pass)."""
        if x is None:
            w0, b0 = weights[0]
            h = F.relu(b0 + ctx if ctx is not None else b0.expand(1, -1))
        else:
            h = F.linear(x, *weights[0])
            h = F.relu(h + ctx if ctx is not None else h)
        for w, b in weights[1:-1]:
            h = F.relu(F.linear(h, w, b))
        params = F.linear(h, *weights[-1]).view(-1, self.features, 2)
        return F.softplus(params[..., 0]) + eps, params[..., 1]

    def _forward(self, x: Tensor, context: Tensor | None, repeats: int = 1) -> tuple[Tensor, Tensor]:
        """z = f(x) and log|det ∂z/∂x| for rows ``x (N, d)``; ``context (N / repeats, c)``, each row ``repeats`` times."""
        logdet = x.new_zeros(x.shape[0])
        for weights, ctx, eps in self._blocks(context, repeats):
            scale, shift = self._made(x, weights, ctx, eps)
            x = (scale * x + shift).flip(-1)  # the affine block, then the order-reversing permutation
            logdet = logdet + torch.log(scale).sum(-1)
        return x, logdet

    def _inverse(self, z: Tensor, context: Tensor | None, repeats: int = 1,
                 with_logdet: bool = True) -> tuple[Tensor, Tensor | None]:
        """x = f⁻¹(z) and log|det ∂x/∂z| (None unless ``with_logdet``): per block (last first), ``features``
        sequential MADE passes."""
        logdet = z.new_zeros(z.shape[0]) if with_logdet else None
        for weights, ctx, eps in reversed(self._blocks(context, repeats)):
            z = z.flip(-1)  # undo the permutation
            x = None  # x = 0: feature 1's (scale, shift) depend on the context alone
            for _ in range(self.features):  # pass i fixes feature i (MADE's autoregressive order)
                scale, shift = self._made(x, weights, ctx, eps)
                x = (z - shift) / scale
            z = x
            if with_logdet:
                logdet = logdet - torch.log(scale).sum(-1)
        return z, logdet

    def _log_prob_rows(self, x: Tensor, context: Tensor | None, repeats: int = 1) -> Tensor:
        z, logdet = self._forward(x, context, repeats)
        # log ν(x) = log N(f(x)) + log|det ∂f/∂x| (VA eq. 11)
        return standard_normal_log_prob(z) + logdet

    # -- input handling -------------------------------------------------------------------------
    def _check(self, x: Tensor | None, context: Tensor | None) -> None:
        if x is not None and (x.ndim not in (2, 3) or x.shape[-1] != self.features):
            raise ValueError(
                f"ConditionalMAF: expected x of shape (N, {self.features}) or (B, K, {self.features}), "
                f"got {tuple(x.shape)}"
            )
        if self.context_features:
            if context is None:
                raise ValueError(f"ConditionalMAF: a context of shape (B, {self.context_features}) is required")
            if context.ndim != 2 or context.shape[-1] != self.context_features:
                raise ValueError(
                    f"ConditionalMAF: expected context of shape (B, {self.context_features}), "
                    f"got {tuple(context.shape)}"
                )
        elif context is not None:
            raise ValueError("ConditionalMAF: this flow has no context (context_features=0); pass context=None")

    # -- density --------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """log ν(x|c): ``(N, d)`` → ``(N,)`` (context ``(N, c)``) or ``(B, K, d)`` → ``(B, K)`` (context ``(B, c)``)."""
        self._check(x, context)
        if x.ndim == 2:
            if context is not None and context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"ConditionalMAF: x has {x.shape[0]} rows but context has {context.shape[0]}"
                )
            return self._log_prob_rows(x.to(next(self.parameters()).dtype), context)
        B, K, d = x.shape
        if context is not None and context.shape[0] != B:
            raise ValueError(f"ConditionalMAF: x has batch {B} but context has {context.shape[0]} rows")
        return self._log_prob_rows(x.reshape(B * K, d), context, repeats=K).reshape(B, K)

    # -- sampling -------------------------------------------------------------------------------
    def _draw(self, num_samples: int, context: Tensor | None, with_logdet: bool,
              qmc: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """Base noise z, its sample x = f⁻¹(z) (rows) and log|det ∂x/∂z| (None unless ``with_logdet``); ``qmc``:
        each context's ``num_samples`` noise rows are randomized Sobol points (:func:`sobol_normal`), not i.i.d."""
        self._check(None, context)
        if num_samples < 1:
            raise ValueError(f"ConditionalMAF: num_samples must be >= 1, got {num_samples}")
        ref = next(self.parameters())  # noise in the flow's dtype and device (nflows draws float32)
        contexts = 1 if context is None else context.shape[0]
        if qmc:
            z = sobol_normal(contexts, num_samples, self.features, dtype=ref.dtype, device=ref.device)
            z = z.reshape(contexts * num_samples, self.features)  # a context's rows are consecutive, as repeats
        else:
            z = torch.randn(contexts * num_samples, self.features, dtype=ref.dtype, device=ref.device)
        x, logdet = self._inverse(z, context, repeats=num_samples, with_logdet=with_logdet)
        return z, x, logdet

    def rsample_and_log_prob(self, num_samples: int, context: Tensor | None = None,
                             qmc: bool = False) -> tuple[Tensor, Tensor]:
        """Differentiable samples and their log-density: ``(n, d), (n,)`` or ``(B, n, d), (B, n)``. ``qmc``: each
        context's samples from randomized Sobol noise (each one still ~ ν, but spread evenly: lower-variance means)."""
        z, x, logdet = self._draw(num_samples, context, with_logdet=True, qmc=qmc)
        # log ν(x) = log N(z) − log|det ∂x/∂z| (VA eq. 11)
        log_prob = standard_normal_log_prob(z) - logdet
        if context is None:
            return x, log_prob
        return x.reshape(-1, num_samples, self.features), log_prob.reshape(-1, num_samples)

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Differentiable samples: ``(n, d)`` without context, ``(B, n, d)`` with a context ``(B, c)``."""
        x = self._draw(num_samples, context, with_logdet=False)[1]  # no log-density: skip its terms
        return x if context is None else x.reshape(-1, num_samples, self.features)

    def from_noise(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """The sample x = f⁻¹(z) of given base noise: ``z (n, d)`` or ``(B, n, d)`` with a context ``(B, c)``."""
        self._check(z, context)
        if z.ndim == 2:
            return self._inverse(z.to(next(self.parameters()).dtype), context, with_logdet=False)[0]
        B, n, d = z.shape
        return self._inverse(z.reshape(B * n, d), context, repeats=n, with_logdet=False)[0].reshape(B, n, d)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Samples without gradient; shapes as :meth:`rsample`."""
        return self.rsample(num_samples, context)

    def forward(self, context: Tensor | None = None) -> "ConditionedMAF":
        """zuko-style view: ``maf(c).log_prob(x)``, ``maf(c).sample(k)``."""
        return ConditionedMAF(self, context)


class ConditionedMAF:
    """A :class:`ConditionalMAF` with its context fixed (what ``maf(context)`` returns)."""

    def __init__(self, maf: ConditionalMAF, context: Tensor | None) -> None:
        self.maf, self.context = maf, context

    def log_prob(self, x: Tensor) -> Tensor:
        return self.maf.log_prob(x, self.context)

    def sample(self, num_samples: int = 1) -> Tensor:
        return self.maf.sample(num_samples, self.context)

    def rsample(self, num_samples: int = 1) -> Tensor:
        return self.maf.rsample(num_samples, self.context)


class ShiftedFlow(nn.Module):
    """ν(x|c) = ν₀(x − m(c) | c): a conditional flow ν₀ whose samples are moved by a location m(c) given from outside.

    The shift is a function of the context alone, taken without gradient, so the Jacobian of x ↦ x − m(c) is 1 and
    log ν = log ν₀ at the shifted point. The U-GAN's anchored bridge uses the generator's zero-noise output as m(c):
    ν₀ then models only each state's spread around it, which the amortized fit follows far better than the absolute
    location when the per-state laws are thin (swimmer_tuning.md, "the anchored bridge"). ``shift`` maps a context ``(B, c)``
    (or None) to ``(B, d)`` (or ``(1, d)``); it is kept as a plain callable, not a submodule, so that its parameters
    are neither this module's nor saved twice.
    """

    def __init__(self, flow: ConditionalMAF, shift) -> None:
        super().__init__()
        self.flow, self.features = flow, flow.features
        self.__dict__["_shift"] = shift  # not registered: the generator belongs to its owner

    def location(self, context: Tensor | None, loc: Tensor | None = None) -> Tensor:
        """m(c) without gradient: ``(B, 1, d)`` for a context ``(B, c)``, ``(1, d)`` without one. ``loc``: m(c)
        already computed by the caller (``(B, d)`` or ``(1, d)``), which saves the call."""
        if loc is not None:
            m = loc.detach()
        else:
            with torch.no_grad():
                m = self._shift(context)
        return m if context is None else m.unsqueeze(1)

    def _shifted(self, x: Tensor, context: Tensor | None, loc: Tensor | None) -> Tensor:
        m = self.location(context, loc)
        return x - (m.squeeze(1) if x.ndim == 2 and context is not None else m)

    def log_prob(self, x: Tensor, context: Tensor | None = None, loc: Tensor | None = None) -> Tensor:
        """log ν(x|c) = log ν₀(x − m(c) | c); shapes as :meth:`ConditionalMAF.log_prob`; ``loc`` as :meth:`location`."""
        self.flow._check(x, context)
        return self.flow.log_prob(self._shifted(x, context, loc), context)

    def rsample_and_log_prob(self, num_samples: int, context: Tensor | None = None,
                             loc: Tensor | None = None, qmc: bool = False) -> tuple[Tensor, Tensor]:
        """Samples m(c) + x₀, x₀ ~ ν₀(·|c), and their log-density (that of x₀); shapes and ``qmc`` as the MAF's."""
        x0, log_prob = self.flow.rsample_and_log_prob(num_samples, context, qmc=qmc)
        return x0 + self.location(context, loc), log_prob

    def rsample(self, num_samples: int, context: Tensor | None = None, loc: Tensor | None = None) -> Tensor:
        return self.flow.rsample(num_samples, context) + self.location(context, loc)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.rsample(num_samples, context)
