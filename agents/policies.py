"""SoftQPolicy: twin soft Q networks, their targets, and an amortized sampler of exp(Q(s,·)/τ).

The sampler works in pre-squash space y ∈ R^d with actions a = tanh(y) ∈ (-1, 1)^d (SPEC §5); its
context is the state's features. Samplers come from a registry (``SAMPLERS``) of builders returning
``(module, trainer)``: the module (an ``nn.Module`` with ``rsample(k, context)``) belongs to the
policy's state dict, the trainer holds the sampler's optimizers and does ``update(log_prob, context)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn

from softq_ugan.baselines import MAFRKL, ConditionalGaussian, GaussianRKL, GaussianRKLConfig, MAFRKLConfig
from softq_ugan.flows import ConditionalMAF
from softq_ugan.nets import adam
from softq_ugan.svgd import SVGD, SVGDConfig, SVGDSampler
from softq_ugan.ugan import UGAN, UGANConfig, UGANSampler

from .critics import boltzmann_target, q_min


def build_ugan(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """U-GAN sampler of SPEC §4-5 (VA suppl. J.3 sizes: generator 2×128, 4 MAF blocks)."""
    kwargs.setdefault("lr_generator", lr)
    kwargs.setdefault("lr_critic", lr)
    kwargs.setdefault("lr_bridge", lr)
    kwargs.setdefault("total_steps", total_steps)
    config = UGANConfig(features=action_dim, context_features=context_dim, **kwargs)
    module = UGANSampler(config)
    return module, UGAN(config, sampler=module)


def build_svgd(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """Amortized SVGD of SQL (8 fixed + 8 updated particles per state); ``total_steps`` is unused."""
    kwargs.setdefault("lr", lr)
    config = SVGDConfig(features=action_dim, context_features=context_dim, **kwargs)
    module = SVGDSampler(config)
    return module, SVGD(config, sampler=module)


def build_ugan_nocritic(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """The U-GAN without its critic: generator loss log ν(G) − (1+λ) log u(G) (issue 8's ablation)."""
    return build_ugan(action_dim, context_dim, lr, total_steps, **{**kwargs, "critic": False})


def build_ugan_oneway(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """The U-GAN with a one-way-flow generator (OW §2.4), whose samples come with a log-density."""
    return build_ugan(action_dim, context_dim, lr, total_steps, **{**kwargs, "generator": "oneway"})


def build_maf(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """The conditional MAF itself as the policy, fitted by annealed reverse KL to exp(Q/τ) (VA suppl. G)."""
    kwargs.setdefault("lr", lr)
    kwargs.setdefault("total_steps", total_steps)
    config = MAFRKLConfig(features=action_dim, context_features=context_dim, **kwargs)
    flow = ConditionalMAF(action_dim, context_dim, config.bridge_blocks, config.bridge_hidden)
    return flow, MAFRKL(config, flow=flow)


def build_gaussian(action_dim: int, context_dim: int, lr: float, total_steps: int, **kwargs: Any):
    """SAC's actor as the sampler: a tanh-Gaussian (SB3's 256×256 MLP) fitted by reverse KL to exp(Q/τ), one sample
    per state; the control that keeps all of SoftQ but the sampler family and its objective."""
    kwargs.setdefault("lr", lr)
    kwargs.setdefault("total_steps", total_steps)
    config = GaussianRKLConfig(features=action_dim, context_features=context_dim, **kwargs)
    gaussian = ConditionalGaussian(action_dim, context_dim, config.hidden)
    return gaussian, GaussianRKL(config, gaussian=gaussian)


# name → builder(action_dim, context_dim, lr, total_steps, **sampler_kwargs) → (nn.Module, trainer); each
# module has rsample(k, context) and from_noise(z, context)
SAMPLERS: dict[str, Callable[..., tuple[nn.Module, Any]]] = {
    "ugan": build_ugan, "ugan-nocritic": build_ugan_nocritic, "ugan-oneway": build_ugan_oneway, "maf": build_maf,
    "svgd": build_svgd, "gaussian": build_gaussian,
}
# the samplers whose trainer's update takes a loss weight (SoftQ(sampler_loss_tau=True)): all but svgd, whose
# update is a Stein direction, not a loss's gradient
LOSS_WEIGHT_SAMPLERS = ("ugan", "ugan-nocritic", "ugan-oneway", "maf", "gaussian")


def takes_loss_weight(trainer: Any) -> bool:
    """Whether ``trainer.update`` takes a ``weight`` that scales its sampler's loss."""
    return "weight" in inspect.signature(trainer.update).parameters

# the U-GAN defaults in RL, chosen for speed (1 bridge step: 37 vs 30 env steps/s on Swimmer with 2), K=8
# particles per state, NMA annealing over `anneal_steps` updates
UGAN_RL_DEFAULTS = dict(
    batch_size=8, bridge_steps=1, bridge_blocks=4, bridge_hidden=64, schedule="nma", lambda0=-0.5, generator_hidden=(128, 128),
    critic_hidden=(128, 128),
)
# the MAF policy: the U-GAN's bridge on its own (same size, particles and annealing)
MAF_RL_DEFAULTS = dict(batch_size=8, bridge_blocks=4, bridge_hidden=64, schedule="nma", lambda0=-0.5)
RL_DEFAULTS = {"ugan": UGAN_RL_DEFAULTS, "ugan-nocritic": UGAN_RL_DEFAULTS, "ugan-oneway": UGAN_RL_DEFAULTS,
               "maf": MAF_RL_DEFAULTS}


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; choose one of: {', '.join(sorted(SAMPLERS))}")


class SoftQPolicy(BasePolicy):
    """Policy of :class:`agents.softq.SoftQ`.

    :param net_arch: hidden widths of the Q networks (VA suppl. J.3: [128, 128]).
    :param sampler: name in ``SAMPLERS``.
    :param sampler_kwargs: overrides of the sampler's config (e.g. ``bridge_steps``, ``schedule``).
    :param temperature: τ of the Boltzmann policy exp(Q/τ).
    :param num_eval_particles: candidates for deterministic actions (the best-Q one is taken).
    :param anneal_steps: annealing horizon of the sampler's λ_t, in gradient steps.
    :param n_critics: Q networks (SAC's 2).
    :param critic_pessimism: None (default): the soft value and the Boltzmann target take the minimum over the Q
        networks; c >= 0: their mean − c·std instead (c = 1 is the minimum for two; c > 1 more pessimistic).
    :param fitted_proposal: also build ``fitted_flow``, a conditional MAF (the bridge's size) that SoftQ fits to the
        Boltzmann policy by forward KL, as the soft value's proposal (``SoftQ(proposal="fitted")``).
    """

    critic: ContinuousCritic
    critic_target: ContinuousCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        sampler: str = "ugan",
        sampler_kwargs: dict[str, Any] | None = None,
        temperature: float = 1.0,
        num_eval_particles: int = 32,
        anneal_steps: int = 20_000,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        critic_pessimism: float | None = None,
        fitted_proposal: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        check_sampler(sampler)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.net_arch = [128, 128] if net_arch is None else list(net_arch)
        self.activation_fn = activation_fn
        self.sampler_name = sampler
        self.sampler_kwargs = dict(sampler_kwargs or {})
        self.temperature = temperature
        self.num_eval_particles = num_eval_particles
        self.anneal_steps = anneal_steps
        self.n_critics = n_critics
        if critic_pessimism is not None and not (np.isfinite(critic_pessimism) and critic_pessimism >= 0):
            raise ValueError(f"critic_pessimism must be a finite number >= 0 (None: the minimum), got {critic_pessimism}")
        self.critic_pessimism = critic_pessimism
        self.fitted_proposal = fitted_proposal
        self.action_dim = int(spaces.flatdim(action_space))
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        critic_kwargs = dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            normalize_images=self.normalize_images,
            n_critics=self.n_critics,
            share_features_extractor=False,
        )
        self.sampler_features = self.make_features_extractor()
        self.features_dim = self.sampler_features.features_dim

        def make_critic() -> ContinuousCritic:
            extractor = self.make_features_extractor()
            return ContinuousCritic(**critic_kwargs, features_extractor=extractor, features_dim=extractor.features_dim)

        self.critic, self.critic_target = make_critic().to(self.device), make_critic().to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)
        if self.optimizer_class is torch.optim.Adam and not {"fused", "foreach"} & self.optimizer_kwargs.keys():
            self.critic.optimizer = adam(self.critic.parameters(), lr_schedule(1), **self.optimizer_kwargs)  # fused
        else:
            self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

        kwargs = {**RL_DEFAULTS.get(self.sampler_name, {}), **self.sampler_kwargs}
        self.sampler, self.sampler_trainer = SAMPLERS[self.sampler_name](
            self.action_dim, self.features_dim, lr_schedule(1), self.anneal_steps, **kwargs
        )
        self.sampler.to(self.device)
        self.fitted_flow, self.fitted_flow_optimizer = None, None
        if self.fitted_proposal:
            blocks, hidden = (RL_DEFAULTS["ugan"][k] for k in ("bridge_blocks", "bridge_hidden"))
            self.fitted_flow = ConditionalMAF(self.action_dim, self.features_dim, blocks, hidden).to(self.device)
            self.fitted_flow_optimizer = adam(self.fitted_flow.parameters(), lr_schedule(1))
        latent = getattr(self.sampler, "noise_features", None) or getattr(
            getattr(self.sampler, "generator", None), "latent_features", self.action_dim)
        # fixed candidate noise for deterministic actions, so predict(deterministic=True) is a function of s
        self.register_buffer("eval_noise", torch.randn(self.num_eval_particles, latent, generator=torch.Generator().manual_seed(0)))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            sampler=self.sampler_name,
            sampler_kwargs=self.sampler_kwargs,
            temperature=self.temperature,
            num_eval_particles=self.num_eval_particles,
            anneal_steps=self.anneal_steps,
            n_critics=self.n_critics,
            critic_pessimism=self.critic_pessimism,
            fitted_proposal=self.fitted_proposal,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
        )
        return data

    # -- the Boltzmann target and sampling --------------------------------------------------------
    def context(self, obs: PyTorchObs) -> Tensor:
        """The sampler's context: the state's features ``(B, c)``."""
        return self.extract_features(obs, self.sampler_features)

    def q_min(self, obs: Tensor, actions: Tensor, target: bool = False) -> Tensor:
        """min_i Q_i(s, a) for obs ``(B, o)`` and actions ``(B, K, d)`` → ``(B, K)`` (with ``critic_pessimism`` c:
        mean − c·std over the critics instead)."""
        return q_min(self.critic_target if target else self.critic, obs, actions, self.critic_pessimism)

    def boltzmann_log_prob(self, obs: Tensor) -> Callable[[Tensor, Tensor | None], Tensor]:
        """log u(y|s) = min_i Q_i(s, tanh y)/τ + Σ log(1 − tanh² y), as a function of (y, context) (SPEC §5)."""
        return boltzmann_target(self.q_min, obs, self.temperature)

    @property
    def proposal_flow(self) -> ConditionalMAF | None:
        """A flow with the policy's density for the soft value's proposal: the U-GAN's bridge, the MAF policy."""
        if isinstance(self.sampler, ConditionalMAF):
            return self.sampler
        return getattr(self.sampler, "bridge", None)

    @property
    def generator_density(self) -> bool:
        """Whether the sampler's own samples come with a log-density: exact for the MAF policy, the Gaussian and a
        one-way generator, estimated as log ν + D for the U-GAN (VA §3.2); SVGD's have none."""
        return self._own_density() is not None

    def _own_density(self) -> Callable[[int, Tensor], tuple[Tensor, Tensor]] | None:
        """The sampler's "samples with their log-density" method, or None (the one place that lists them)."""
        if isinstance(self.sampler, UGANSampler):
            return self.sampler.rsample_and_log_density
        if isinstance(self.sampler, (ConditionalMAF, ConditionalGaussian)):
            return self.sampler.rsample_and_log_prob
        return None

    def sample_and_log_prob(self, num_samples: int, context: Tensor) -> tuple[Tensor, Tensor]:
        """``num_samples`` y-space samples per context row of the sampler itself, with their log-density
        ``(B, n, d)``, ``(B, n)`` (see :attr:`generator_density`)."""
        method = self._own_density()
        if method is None:
            raise ValueError(f"the sampler {type(self.sampler).__name__} has no log-density")
        return method(num_samples, context)

    def sample_actions(self, obs: PyTorchObs, num_samples: int) -> Tensor:
        """K actions per state from the sampler: ``(B, K, d)`` in (-1, 1)."""
        return torch.tanh(self.sampler.rsample(num_samples, self.context(obs)))

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> Tensor:
        with torch.no_grad():
            context = self.context(observation)
            if not deterministic:
                return torch.tanh(self.sampler.rsample(1, context)[:, 0])
            # best-Q of K fixed-noise samples (SPEC §5: deterministic evaluation)
            B = context.shape[0]
            z = self.eval_noise.unsqueeze(0).expand(B, -1, -1)
            actions = torch.tanh(self.sampler.from_noise(z, context))
            best = self.q_min(observation, actions).argmax(dim=1)
            return actions[torch.arange(B), best]

    def set_training_mode(self, mode: bool) -> None:
        # SB3 calls this at every env step and every train(); walking the MAF's module tree each time
        # cost ~2 ms per env step, so only walk it when the mode changes
        if mode == self.training and self.critic.training == mode and self.sampler.training == mode:
            return
        self.critic.set_training_mode(mode)
        self.sampler.train(mode)
        self.training = mode


MlpPolicy = SoftQPolicy
