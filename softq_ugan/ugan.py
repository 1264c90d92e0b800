"""Unnormalized GAN (U-GAN): a neural sampler for a density known up to a constant (VA §3.2).

Model ρ = law of x = G(z; c). A conditional MAF bridge ν(x|c) tracks ρ by maximum likelihood; a
critic D(x; c) estimates r1 = log ρ/ν by logistic regression of G-samples against ν-samples; the
generator then descends the annealed reverse KL (VA eq. 9, SPEC §4)

    E_z[ D(G) + log ν(G) − log u(G) ] − λ_t E_z[ log u(G) ],

whose first part is KL(ρ‖u) up to log Z, since log ρ/u = r1 + log ν/u. The λ_t term tempers the
target to u^(1+λ_t) (VA Corollary 2.2); λ_t follows an annealing schedule.

The target is any callable ``log_prob(x, context) -> log u`` of shape ``x.shape[:-1]``; with a batch
of contexts ``(B, c)`` every update draws ``batch_size`` samples per context, ``x`` of shape
``(B, K, d)`` (the soft Q-learning agent calls it that way, with context = state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from softq_ugan.flows import ConditionalGaussian, ConditionalMAF, ShiftedFlow
from softq_ugan.flows.oneway import OneWayGenerator
from softq_ugan.gan.losses import logistic_critic_loss
from softq_ugan.gan.schedules import make_schedule
from softq_ugan.nets import MLP, adam, check_finite, check_weight, joint_step, optimizer_step, require_positive, with_context

LogProb = Callable[[Tensor, "Tensor | None"], Tensor]
GENERATORS = ("mlp", "oneway", "gaussian")
EXACT_DENSITY = ("none", "loss", "density", "both")
EXACT_IN_LOSS = ("loss", "both")  # the exact_density settings that put log g in the generator's loss
EXACT_DOWNSTREAM = ("density", "both")  # ... and those that hand it out with the samples (soft value, temperature)


@dataclass
class UGANConfig:
    """Hyperparameters of :class:`UGAN` (defaults measured on the 2-D toy targets, SPEC §4)."""

    features: int
    """Dimension d of the samples."""
    context_features: int = 0
    """Dimension c of the context (0: unconditional target)."""
    latent_features: int | None = None
    """Dimension of the generator's Gaussian noise z (None: same as ``features``)."""
    generator: str = "mlp"
    """Generator kind: "mlp" (the paper's noise-input MLP) or "oneway" (a one-way flow, OW §2.4: a
    residual MLP of width ≥ d on [z, r] with r noise of d − latent_features dims, whose samples come with
    a log-density, OW eq. 10; ``sampler/entropy`` then reports the generator's own entropy) or "gaussian" (SAC's
    policy family as a generator, G(z; c) = μ(c) + σ(c) ⊙ z: the U-GAN's losses and log-density estimate log ν + D
    as ever, its exact entropy reported beside them as ``entropy_generator``; an ablation that tells the generator's
    family from the bridge's estimate)."""
    exact_density: str = "none"
    """A gaussian generator only, an ablation: where its exact log g takes the place of the U-GAN's estimate log ν + D.
    "none" (the U-GAN); "loss" (the generator's loss E[log g(G) − (1+λ) log u(G)], the reverse KL of SAC's actor; the
    bridge and critic still train, and :meth:`UGANSampler.rsample_and_log_density` keeps the estimate); "density"
    (the loss keeps log ν + D; ``rsample_and_log_density``, so SoftQ's soft value and temperature, and the step's
    ``entropy`` use log g); "both". Tells the estimate's role in the generator's gradient from its role downstream."""
    oneway_exact: bool = True
    """One-way generator: exact log|det J| by autograd Jacobian (small d) or the jvp estimate (OW eq. 9)."""
    generator_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the generator MLP (VA suppl. J.3: 2×128)."""
    critic_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the critic MLP estimating log ρ/ν."""
    bridge_blocks: int = 4
    """Affine MAF blocks in the bridge ν (VA suppl. J.2.1: 4-8; 4 measured as good as 5 on kidney and 25% faster)."""
    bridge_hidden: int = 64
    """Width of the two hidden layers of each MAF block."""
    bridge_anchor: bool = False
    """Anchor the bridge at the generator's zero-noise output: ν(x|c) = ν₀(x − G(0; c) | c), the shift taken without
    gradient (a density for any G). ν₀ then fits each context's spread, not its location. In
    Swimmer's U-GAN preset this cut the excess of the density gauge −E[log ν + D] over the policy's kNN entropy from
    1.2-4.3 nats to 0.2-0.5 (swimmer_tuning.md, "the anchored bridge"); the returns there were no better, so it is
    off by default."""
    critic: bool = True
    """Use the critic (the paper's U-GAN). False drops D: generator loss log ν(G) − (1+λ) log u(G)."""
    shared_bridge_step: bool = False
    """Take the bridge's first MLE step from the generator's backward, on the generator's samples before its update:
    the generator loss holds +log ν, so its gradient in ν's parameters is minus the NLL's. Saves one MAF forward and
    backward per update (17% of the Swimmer preset's gradient step, profile_softq.md, session 21) at the price of one
    bridge step taken beside the generator's rather than after it. Off by default; on in train_rl.py's Swimmer U-GAN
    preset (``--shared-bridge-step``)."""
    critic_steps: int = 1
    """Critic updates per generator update."""
    bridge_steps: int = 5
    """MLE updates of ν per generator update (one lets ν lag and the generator collapse; SPEC §4)."""
    batch_size: int = 256
    """Samples per update (per context when a batch of contexts is given)."""
    lr_generator: float = 1e-3
    """Adam learning rate of the generator."""
    lr_critic: float = 1e-3
    """Adam learning rate of the critic."""
    lr_bridge: float = 1e-3
    """Adam learning rate of the bridge."""
    schedule: str = "none"
    """Annealing schedule of λ_t: none, static, pma, nma, exp, oa (VA §5.1), geo (geometric tempering)."""
    lambda0: float = 0.0
    """Initial annealing weight λ_0 (target ∝ u^(1+λ); λ is kept above -1)."""
    total_steps: int = 3000
    """Annealing horizon T in updates: the decaying schedules reach λ=0 there."""
    max_grad_norm: float | None = 10.0
    """Gradient-norm clip for every network (None: no clipping)."""

    def __post_init__(self) -> None:
        require_positive(self, "features", "batch_size", "bridge_steps", "critic_steps", "total_steps", "bridge_blocks")
        make_schedule(self.schedule, self.lambda0, self.total_steps)  # fail early on unknown names
        if self.generator not in GENERATORS:
            raise ValueError(f"UGANConfig: unknown generator '{self.generator}'; choose one of: {', '.join(GENERATORS)}")
        if self.exact_density not in EXACT_DENSITY:
            raise ValueError(f"UGANConfig: unknown exact_density '{self.exact_density}'; choose one of: "
                             f"{', '.join(EXACT_DENSITY)}")
        if self.exact_density != "none" and self.generator != "gaussian":
            raise ValueError(f"UGANConfig: exact_density='{self.exact_density}' needs generator='gaussian' (the only "
                             f"generator with an exact density beside the estimate), got '{self.generator}'")
        if self.exact_density in EXACT_IN_LOSS and self.shared_bridge_step:
            raise ValueError(f"UGANConfig: exact_density='{self.exact_density}' leaves log ν out of the generator's "
                             f"loss, so it has no bridge gradient to share: set shared_bridge_step=False")
        if self.generator == "gaussian" and self.latent_features not in (None, self.features):
            raise ValueError(f"UGANConfig: a gaussian generator's noise has the samples' dimension {self.features}, "
                             f"got latent_features={self.latent_features}")


class Generator(nn.Module):
    """x = G(z; c): a noise-input MLP, optionally conditioned on a context."""

    def __init__(self, latent_features: int, features: int, context_features: int, hidden: tuple[int, ...]):
        super().__init__()
        self.latent_features = latent_features
        self.net = MLP(latent_features + context_features, features, hidden)

    def forward(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(with_context(z, context))

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """G(z; c) for fresh z ~ N(0, I): ``(n, d)``, or ``(B, n, d)`` for a context ``(B, c)``."""
        shape = (num_samples,) if context is None else (context.shape[0], num_samples)
        z = torch.randn(*shape, self.latent_features, device=self.net[0].weight.device)
        return self(z, context)


class GaussianGenerator(nn.Module):
    """x = G(z; c) = μ(c) + σ(c) ⊙ z: a :class:`~softq_ugan.flows.ConditionalGaussian` (SAC's actor family) behind the
    generator interface; :meth:`log_prob` is its exact density, which the U-GAN's losses use only as an ablation
    (:attr:`UGANConfig.exact_density`)."""

    def __init__(self, features: int, context_features: int, hidden: tuple[int, ...]):
        super().__init__()
        self.latent_features = features
        self.gaussian = ConditionalGaussian(features, context_features, hidden)

    def forward(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return self.gaussian.from_noise(z, context)

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.gaussian.rsample(num_samples, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.gaussian.log_prob(x, context)

    def rsample_and_log_prob(self, num_samples: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.gaussian.rsample_and_log_prob(num_samples, context)


class Critic(nn.Module):
    """D(x; c) → logit; trained by logistic regression so that D ≈ log ρ/ν (VA §3.2)."""

    def __init__(self, features: int, context_features: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = MLP(features + context_features, 1, hidden)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(with_context(x, context)).squeeze(-1)


class UGANSampler(nn.Module):
    """The networks of a U-GAN: generator G, critic D (or None) and MAF bridge ν."""

    def __init__(self, config: UGANConfig) -> None:
        super().__init__()
        c = config
        self.features, self.context_features = c.features, c.context_features
        latent = c.latent_features or c.features
        if c.generator == "oneway":
            self.generator = OneWayGenerator(latent, c.features, c.context_features, c.generator_hidden)
        elif c.generator == "gaussian":
            self.generator = GaussianGenerator(c.features, c.context_features, c.generator_hidden)
        else:
            self.generator = Generator(latent, c.features, c.context_features, c.generator_hidden)
        self.oneway_exact = c.oneway_exact
        self.exact_density = c.exact_density
        self.critic = Critic(c.features, c.context_features, c.critic_hidden) if c.critic else None
        flow = ConditionalMAF(c.features, c.context_features, c.bridge_blocks, c.bridge_hidden)
        self.bridge = ShiftedFlow(flow, self.anchor) if c.bridge_anchor else flow

    def anchor(self, context: Tensor | None = None) -> Tensor:
        """G(0; c), the generator's output at zero noise: ``(B, d)`` for a context ``(B, c)``, ``(1, d)`` without."""
        ref = next(self.generator.parameters())
        rows = 1 if context is None else context.shape[0]
        z = torch.zeros(rows, 1, self.noise_features, dtype=ref.dtype, device=ref.device)
        return self.from_noise(z if context is not None else z[0], context).reshape(rows, self.features)

    @property
    def anchored(self) -> bool:
        """Whether the bridge is anchored at G(0; c) (``UGANConfig.bridge_anchor``)."""
        return isinstance(self.bridge, ShiftedFlow)

    def rsample_and_anchor(self, num_samples: int, context: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """:meth:`rsample` and, for an anchored bridge, its location G(0; c) without gradient (else None), from one
        pass of G over the noise with a zero row appended per context (the anchor alone is a second pass of G)."""
        if not self.anchored:
            return self.rsample(num_samples, context), None
        self._check_context(context)
        ref = next(self.generator.parameters())
        shape = (num_samples + 1,) if context is None else (context.shape[0], num_samples + 1)
        z = torch.randn(*shape, self.noise_features, dtype=ref.dtype, device=ref.device)
        z.select(-2, num_samples).zero_()  # the last row of each context: zero noise
        out = self.from_noise(z, context)
        x, m = out.narrow(-2, 0, num_samples), out.select(-2, num_samples).detach()
        return x, (m if context is not None else m.unsqueeze(0))

    def bridge_log_prob(self, x: Tensor, context: Tensor | None = None, anchor: Tensor | None = None) -> Tensor:
        """log ν(x|c); ``anchor``: G(0; c) from :meth:`rsample_and_anchor`, which saves recomputing it."""
        return self.bridge.log_prob(x, context, anchor) if anchor is not None else self.bridge.log_prob(x, context)

    def bridge_rsample(self, num_samples: int, context: Tensor | None = None, anchor: Tensor | None = None) -> Tensor:
        """Samples of ν(·|c); ``anchor`` as in :meth:`bridge_log_prob`."""
        if anchor is not None:
            return self.bridge.rsample(num_samples, context, anchor)
        return self.bridge.rsample(num_samples, context)

    def _check_context(self, context: Tensor | None) -> None:
        if self.context_features:
            if context is None or context.ndim != 2 or context.shape[-1] != self.context_features:
                got = None if context is None else tuple(context.shape)
                raise ValueError(f"U-GAN: expected a context of shape (B, {self.context_features}), got {got}")
        elif context is not None:
            raise ValueError("U-GAN: this sampler is unconditional (context_features=0); pass context=None")

    def rsample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Differentiable generator samples: ``(n, d)``, or ``(B, n, d)`` for a context ``(B, c)``."""
        self._check_context(context)
        return self.generator.rsample(num_samples, context)

    @torch.no_grad()
    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        """Generator samples without gradient; shapes as :meth:`rsample`."""
        return self.rsample(num_samples, context)

    def from_noise(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """G(z; c) for given noise ``(n, noise_dim)`` or ``(B, n, noise_dim)``."""
        return self.generator(z, context)

    @property
    def noise_features(self) -> int:
        """Dimension of the full noise input of G (a one-way generator's [z, r])."""
        g = self.generator
        return g.latent_features + getattr(g, "noise_features", 0)

    @property
    def has_density(self) -> bool:
        """Whether G's samples come with a log-density (a one-way generator)."""
        return isinstance(self.generator, OneWayGenerator)

    def rsample_and_log_prob(self, num_samples: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Samples of a one-way generator and log P_G at them (OW eq. 10); shapes as the MAF's."""
        if not self.has_density:
            raise ValueError("U-GAN: only a one-way generator (UGANConfig(generator='oneway')) has a log-density")
        self._check_context(context)
        return self.generator.rsample_and_log_prob(num_samples, context, exact=self.oneway_exact)

    def rsample_and_log_density(self, num_samples: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Samples of G with their log-density: exact for a one-way generator (OW eq. 10), else the U-GAN's
        estimate log ν + D (VA §3.2), which needs no invertible G."""
        if self.has_density:
            return self.rsample_and_log_prob(num_samples, context)
        if self.exact_density in EXACT_DOWNSTREAM:  # the ablation's exact log g (UGANConfig.exact_density)
            self._check_context(context)
            return self.generator.rsample_and_log_prob(num_samples, context)
        x, anchor = self.rsample_and_anchor(num_samples, context)
        return x, self.bridge_log_prob(x, context, anchor) + self.log_ratio(x, context)

    def log_ratio(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Estimate of log ρ/ν at x (0 without a critic)."""
        if self.critic is None:
            return torch.zeros(x.shape[:-1], device=x.device, dtype=x.dtype)
        return self.critic(x, context)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Estimate of log ρ(x|c) = log ν(x|c) + D(x; c) (VA §3.2: r1 = log ρ/ν)."""
        return self.bridge.log_prob(x, context) + self.log_ratio(x, context)


class UGAN:
    """U-GAN trainer: holds the sampler and its three optimizers; :meth:`update` is one step of SPEC §4."""

    def __init__(self, config: UGANConfig, sampler: UGANSampler | None = None) -> None:
        self.config = config
        self.sampler = sampler if sampler is not None else UGANSampler(config)
        s = self.sampler
        self.generator_optimizer = adam(s.generator.parameters(), config.lr_generator)
        self.critic_optimizer = (
            adam(s.critic.parameters(), config.lr_critic) if s.critic is not None else None
        )
        self.bridge_optimizer = adam(s.bridge.parameters(), config.lr_bridge)
        # each network's parameter list, built once: walking the module trees on every step (these and the Polyak
        # update's) cost ≈ 0.16 ms of a ≈ 14.5 ms SoftQ gradient step on Swimmer (profile_softq.md, session 42)
        self._params = {name: list(getattr(s, name).parameters()) for name in ("generator", "bridge", "critic")
                        if getattr(s, name) is not None}
        self.schedule = make_schedule(config.schedule, config.lambda0, config.total_steps)
        self.num_updates = 0

    def sample(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        return self.sampler.sample(num_samples, context)

    def update(self, log_prob: LogProb, context: Tensor | None = None, weight: float = 1.0) -> dict[str, float]:
        """One U-GAN step against the unnormalized target ``log_prob(x, context)``; returns floats. A positive
        ``weight`` scales the generator's loss (its gradient, not its minimizer; in SoftQ, weight τ turns
        E[D + log ν − Q/τ] into E[τ(D + log ν) − Q], SAC's scale); the critic's and the bridge's losses keep theirs."""
        check_weight("U-GAN", weight)
        c, s, t = self.config, self.sampler, self.num_updates
        s._check_context(context)
        n = c.batch_size
        out: dict[str, float] = {}

        # 1. critic: logistic regression of G-samples (label 1) against ν-samples (label 0) → D ≈ log ρ/ν
        anchor = None  # an anchored bridge's G(0; c): G does not change before step 2, so that step reuses it
        if s.critic is not None:
            for _ in range(c.critic_steps):
                with torch.no_grad():
                    x_g, anchor = s.rsample_and_anchor(n, context)
                    x_nu = s.bridge_rsample(n, context, anchor)
                # both sample sets through D in one pass: n G-samples, then n ν-samples (per context)
                logits = s.critic(torch.cat([x_g, x_nu], dim=-2), context)
                loss = logistic_critic_loss(logits.narrow(-1, 0, n), logits.narrow(-1, n, n))
                out["critic_loss"] = check_finite("U-GAN critic loss", loss.item(), t)
                optimizer_step(self.critic_optimizer, loss, self._params["critic"], c.max_grad_norm)

        # 2. generator: E[D(G) + log ν(G) − (1+λ_t) log u(G)] (VA eq. 9 with the §3.2 density ratio)
        lam = self.schedule(t)
        if s.has_density:
            (x, log_g), anchor = s.rsample_and_log_prob(n, context), None
        elif anchor is None:
            (x, anchor), log_g = s.rsample_and_anchor(n, context), None
        else:
            x, log_g = s.rsample(n, context), None
        log_u = log_prob(x, context)
        log_g_exact = None  # a gaussian generator's exact log g(x), when its loss takes it
        if c.exact_density in EXACT_IN_LOSS:  # the ablation: G's exact log g in place of D + log ν in VA eq. 9
            log_g_exact = s.generator.log_prob(x, context)
            loss = weight * (log_g_exact - (1.0 + lam) * log_u).mean()
            with torch.no_grad():  # the estimate, for its reports only
                log_nu = s.bridge_log_prob(x, context, anchor)
                log_rho = log_nu + s.log_ratio(x, context)
        else:
            log_nu = s.bridge_log_prob(x, context, anchor)
            log_rho = log_nu + s.log_ratio(x, context)  # D + log ν (VA §3.2)
            loss = weight * (log_rho - (1.0 + lam) * log_u).mean()
        out["generator_loss"] = check_finite("U-GAN generator loss", loss.item(), t)
        if isinstance(s.generator, GaussianGenerator):  # before G's step: the samples' own density
            with torch.no_grad():  # beside the estimate, the generator's exact entropy −E log g(x)
                log_g_x = log_g_exact if log_g_exact is not None else s.generator.log_prob(x, context)
                out["entropy_generator"] = -log_g_x.mean().item()
        if c.shared_bridge_step:  # one backward for the generator and the bridge's first MLE step (3. below)
            out["bridge_nll"] = check_finite("U-GAN bridge NLL", -log_nu.mean().item(), t)
            # loss holds +weight · mean log ν(x) and nothing else depending on ν, so ∂loss/∂θ_ν = −weight ∇_θν NLL(x):
            # the bridge descends its own NLL, unscaled, by ascending the generator's loss times 1/weight
            joint_step(loss, [(self.generator_optimizer, self._params["generator"], 1.0),
                              (self.bridge_optimizer, self._params["bridge"], -1.0 / weight)], c.max_grad_norm)
        else:
            optimizer_step(self.generator_optimizer, loss, self._params["generator"], c.max_grad_norm)
        with torch.no_grad():
            out["kl_estimate"] = (log_rho - log_u).mean().item()  # KL(ρ‖u) + log Z
            out["entropy"] = -log_rho.mean().item()  # from D + log ν
            if log_g is not None:  # a one-way generator's own density (OW eq. 10) is the direct estimate
                out["entropy_critic_bridge"], out["entropy"] = out["entropy"], -log_g.mean().item()
            elif c.exact_density in EXACT_DOWNSTREAM:  # the exact one, read before G's step, serves downstream
                out["entropy_critic_bridge"], out["entropy"] = out["entropy"], out["entropy_generator"]
            out["log_u"] = log_u.mean().item()

        # 3. bridge: MLE of ν on fresh, detached G-samples (ν tracks ρ, VA §3.2); a shared first step was taken above
        for _ in range(c.bridge_steps - int(c.shared_bridge_step)):
            with torch.no_grad():
                x_g, anchor = s.rsample_and_anchor(n, context)  # G has moved: a fresh anchor
            nll = -s.bridge_log_prob(x_g, context, anchor).mean()
            out["bridge_nll"] = check_finite("U-GAN bridge NLL", nll.item(), t)
            optimizer_step(self.bridge_optimizer, nll, self._params["bridge"], c.max_grad_norm)

        out["lambda"] = lam
        self.num_updates += 1
        return out
