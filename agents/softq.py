"""SoftQ: soft Q-learning (Haarnoja et al. 2017) with an amortized U-GAN policy sampler (VA §5.3).

An SB3 ``OffPolicyAlgorithm``: ``SoftQ("MlpPolicy", env).learn(...)`` works with SB3's callbacks,
VecEnvs, save/load and logger. Per gradient step:

1. soft Bellman target ``Q̂ = r_scale·r + γ(1 − terminated)·V(s')`` with V by importance sampling
   over M particles from the uniform proposal or the sampler's MAF bridge (SPEC §5);
2. twin Q regression to Q̂, Polyak update of the target critic;
3. one sampler update against exp(Q(s,·)/τ) in tanh pre-squash space, K particles per state;
4. with ``temperature="auto"``, one step on log τ toward a target entropy, as SAC's ``ent_coef="auto"``
   (the policy's log-density from its MAF bridge, or its own density).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from agents.critics import critic_q_min
from agents.policies import LOSS_WEIGHT_SAMPLERS, SAMPLERS, SoftQPolicy, check_sampler, takes_loss_weight
from softq_ugan.metrics import ess
from softq_ugan.qmc import sobol_uniform
from softq_ugan.soft_value import (forward_kl_proposal_loss, soft_value, tanh_log_det, tanh_log_proposal,
                                   uniform_log_proposal)

PROPOSALS = ("uniform", "bridge", "generator", "fitted")


def parse_temperature(value: float | str) -> tuple[bool, float]:
    """``(learned, initial τ)`` from a positive number, ``"auto"`` (τ0 = 1) or ``"auto_<τ0>"`` (SB3's ent_coef form)."""
    text = str(value)
    if text.startswith("auto"):
        init = text.removeprefix("auto").removeprefix("_") or "1.0"
        learned = True
    else:
        init, learned = text, False
    try:
        tau = float(init)
    except ValueError:
        tau = float("nan")
    if not (tau > 0 and np.isfinite(tau)):
        raise ValueError(f"temperature must be a positive number, 'auto' or 'auto_<initial τ>', got {value!r}")
    return learned, tau


class SoftQ(OffPolicyAlgorithm):
    """Soft Q-learning with an amortized sampler policy.

    :param sampler: policy sampler, a name in ``agents.policies.SAMPLERS`` ("ugan", "ugan-nocritic", "ugan-oneway",
        "maf", "svgd", "gaussian": SAC's actor).
    :param temperature: τ of the Boltzmann policy exp(Q/τ) (SQL keeps τ=1 and scales rewards), or ``"auto"`` /
        ``"auto_<τ0>"``: τ learned as SAC learns its entropy coefficient, so that the policy's entropy tracks
        ``target_entropy``; needs a sampler with a density (its own, exact or log ν + D: every sampler but svgd).
    :param target_entropy: entropy the learned τ aims at, in action space; "auto": −dim(A) (SAC's).
    :param reward_scale: multiplies rewards in the Bellman target.
    :param value_particles: M, particles of the importance-sampled soft value.
    :param proposal: "uniform" on the action box (SQL), "bridge" (the sampler's MAF bridge, or the MAF policy, in
        y-space) or "generator" (the sampler's own samples and density: exact for the MAF policy and a one-way
        generator, the estimate log ν + D for the U-GAN) or "fitted" (a MAF of the bridge's size fitted to the
        Boltzmann policy exp(Q̄/τ) itself, one forward-KL step per gradient step on the soft value's own particles
        and weights; any sampler).
    :param value_qmc: draw each state's M proposal particles as randomized Sobol points (``softq_ugan.qmc``): each is
        still a draw from the proposal, so the estimate's mean is unchanged, but they are spread evenly, which lowers
        its variance; for the "uniform" and "bridge" proposals.
    :param sampler_batch_size: states of each batch used for the sampler update (K particles each; the whole batch
        when it has fewer).
    :param policy_delay: update the sampler after every ``policy_delay``-th Q update (TD3's delay; 1: every one).
    :param sampler_steps: sampler steps (each with its τ step) per sampler update: the first on the Q step's
        minibatch, each further one on a fresh minibatch's states (1: SAC's one actor step per Q step; 2 gives the
        sampler the updates of two gradient steps per env step while the critic keeps one).
    :param sampler_loss_tau: multiply the sampler's loss by τ (every sampler but "svgd"; a U-GAN's generator loss,
        its critic's and bridge's losses unscaled): with "gaussian" the step is then SB3's SAC actor step,
        E[τ log π − Q] (tests/test_sac_equivalence.py); by default the loss is E[log π − Q/τ], the same minimizer,
        which Adam's normalization makes the same step only while τ is constant.
    :param temperature_grad_clip: bound, per action dimension, on the learned τ's gradient −(E log π + H̄) (None: no
        bound). A sampler's log-density can spike (the tanh correction log|da/dy| and a bridge's log ν are unbounded),
        and one gradient of 1e10 fills Adam's second moment so that τ stops moving for tens of thousands of steps.
        SB3's SAC bounds its own log π by about 33 per dimension (log σ ≥ −20, the ε = 1e-6 of its tanh correction),
        so the default 50 never clips a step that SAC could take.
    :param tau: Polyak coefficient of the target critic (SB3's name).
    Other parameters are SB3's ``OffPolicyAlgorithm``'s.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": SoftQPolicy}
    policy: SoftQPolicy

    def __init__(
        self,
        policy: str | type[SoftQPolicy],
        env: GymEnv | str,
        sampler: str = "ugan",
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 128,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        temperature: float | str = 1.0,
        target_entropy: float | str = "auto",
        reward_scale: float = 1.0,
        value_particles: int = 16,
        proposal: str = "uniform",
        value_qmc: bool = False,
        sampler_batch_size: int = 64,
        policy_delay: int = 1,
        sampler_steps: int = 1,
        sampler_loss_tau: bool = False,
        temperature_grad_clip: float | None = 50.0,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_sampler(sampler)
        if proposal not in PROPOSALS:
            raise ValueError(f"unknown proposal '{proposal}'; choose one of: {', '.join(PROPOSALS)}")
        if value_particles < 1:
            raise ValueError(f"value_particles must be >= 1, got {value_particles}")
        if value_qmc and proposal == "generator":
            raise ValueError("value_qmc applies to the uniform and bridge proposals, not generator")
        if policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        if sampler_steps < 1:
            raise ValueError(f"sampler_steps must be >= 1, got {sampler_steps}")
        if sampler_batch_size < 1:
            raise ValueError(f"sampler_batch_size must be >= 1, got {sampler_batch_size}")
        if temperature_grad_clip is not None and not (np.isfinite(temperature_grad_clip) and temperature_grad_clip > 0):
            raise ValueError(f"temperature_grad_clip must be a finite number > 0 or None, got {temperature_grad_clip}")
        learned, initial_temperature = parse_temperature(temperature)
        if target_entropy != "auto" and not isinstance(target_entropy, (int, float)):
            raise ValueError(f"target_entropy must be a number or 'auto', got {target_entropy!r}")
        policy_kwargs = dict(policy_kwargs or {})
        policy_kwargs.setdefault("sampler", sampler)
        policy_kwargs.setdefault("temperature", initial_temperature)
        if proposal == "fitted":
            policy_kwargs.setdefault("fitted_proposal", True)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        self.sampler = sampler
        self.temperature = temperature
        self.learn_temperature, self.initial_temperature = learned, initial_temperature
        self.target_entropy = target_entropy
        self.reward_scale = reward_scale
        self.value_particles = value_particles
        self.proposal = proposal
        self.value_qmc = value_qmc
        self.sampler_batch_size = sampler_batch_size
        self.policy_delay = policy_delay
        self.sampler_steps = sampler_steps
        self.sampler_loss_tau = sampler_loss_tau
        self.temperature_grad_clip = temperature_grad_clip
        # since the first step: the largest |τ gradient| before the bound, and how many steps the bound clipped
        self.temperature_grad_max, self.temperature_clipped = 0.0, 0
        if _init_setup_model:
            self._setup_model()

    @property
    def sampler_states(self) -> int:
        """States of each minibatch that the sampler update uses: ``sampler_batch_size``, or the whole minibatch
        when it has fewer."""
        return min(self.sampler_batch_size, self.batch_size)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._create_aliases()

        if self.proposal == "bridge" and self.policy.proposal_flow is None:
            raise ValueError(f"proposal 'bridge' needs a sampler with a MAF bridge; '{self.sampler}' has none")
        if self.proposal == "generator" and not self.policy.generator_density:
            raise ValueError(f"proposal 'generator' needs a sampler with a density (every one but svgd); '{self.sampler}' has none")
        if self.sampler_loss_tau and not takes_loss_weight(self.sampler_trainer):
            raise ValueError(f"sampler_loss_tau applies to the samplers with a loss ({', '.join(LOSS_WEIGHT_SAMPLERS)}), "
                             f"not '{self.sampler}'")
        self.log_temperature, self.temperature_optimizer = None, None
        if self.learn_temperature:
            if not self.policy.generator_density:
                raise ValueError(f"temperature 'auto' needs a sampler with a density (every one but svgd); "
                                 f"'{self.sampler}' has none")
            if self.target_entropy == "auto":
                self.target_entropy = -float(self.policy.action_dim)  # SAC's heuristic
            self.target_entropy = float(self.target_entropy)
            self.log_temperature = torch.tensor([np.log(self.initial_temperature)], device=self.device, requires_grad=True)
            self.temperature_optimizer = torch.optim.Adam([self.log_temperature], lr=self.lr_schedule(1))

    def _create_aliases(self) -> None:
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.sampler_trainer = self.policy.sampler_trainer

    # -- the soft value ---------------------------------------------------------------------------
    def soft_value(self, next_obs: torch.Tensor, proposal: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """V(s') by importance sampling with M particles (SPEC §5); returns V ``(B,)`` and log-weights ``(B, M)``."""
        v, log_w, _ = self._soft_value_particles(next_obs, proposal)
        return v, log_w

    def _soft_value_particles(self, next_obs: torch.Tensor,
                              proposal: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`soft_value` and its particles in y-space ``(B, M, d)`` (None for the uniform proposal)."""
        proposal = proposal or self.proposal
        p, M = self.policy, self.value_particles
        B = next_obs.shape[0]
        qmc = self.value_qmc and proposal != "generator"
        y = None
        if proposal == "uniform":
            u = sobol_uniform(B, M, p.action_dim, device=self.device) if qmc else \
                torch.rand(B, M, p.action_dim, device=self.device)
            actions = u * 2 - 1
            log_q = uniform_log_proposal(p.action_dim)  # q = 2^-d on (-1, 1)^d
        else:  # a flow (the bridge, or the fitted one), or the sampler's own samples and density (exact, or log ν + D)
            if proposal in ("bridge", "fitted"):
                flow = p.proposal_flow if proposal == "bridge" else p.fitted_flow
                if flow is None:
                    raise ValueError(f"proposal '{proposal}': this model has no such flow (the fitted one exists when "
                                     f"it was built with proposal='fitted')")
                y, log_nu = flow.rsample_and_log_prob(M, p.context(next_obs), qmc=qmc)
            else:
                y, log_nu = p.sample_and_log_prob(M, p.context(next_obs))
            y = y.clamp(-10.0, 10.0)  # tanh saturates in float32 beyond |y| ≈ 9
            actions, log_q = torch.tanh(y), tanh_log_proposal(log_nu, y)
        q = p.q_min(next_obs, actions, target=True)
        return (*soft_value(q, log_q, p.temperature), y)

    def _update_fitted_proposal(self, next_obs: torch.Tensor, y: torch.Tensor, log_w: torch.Tensor) -> float:
        """One Adam step of the fitted proposal toward exp(Q̄/τ) by forward KL, on the soft value's particles ``y`` and
        their log-weights (their self-normalized weights are the target's over the proposal's)."""
        p = self.policy
        loss = forward_kl_proposal_loss(log_w, p.fitted_flow.log_prob(y, p.context(next_obs)))
        p.fitted_flow_optimizer.zero_grad()
        loss.backward()
        p.fitted_flow_optimizer.step()
        return loss.item()

    def policy_log_prob(self, obs: torch.Tensor, num_samples: int = 1) -> torch.Tensor:
        """log π(a|s) of ``num_samples`` fresh actions per state ``(B, num_samples)``, in action space, from the
        sampler's own density (MAF policy, one-way generator, the U-GAN's log ν + D of VA §3.2); svgd has none."""
        p = self.policy
        y, log_nu = p.sample_and_log_prob(num_samples, p.context(obs))
        return tanh_log_proposal(log_nu, y.clamp(-10.0, 10.0))

    def _update_temperature(self, obs: torch.Tensor, mean_log_pi: float | None = None) -> dict[str, float]:
        """One Adam step on log τ: min −log τ·(E log π + H̄), as SAC's entropy coefficient (Haarnoja et al. 2018b).

        ``mean_log_pi``: E log π(a|s) already measured on this step's sampler update (as SAC reuses its actor
        step's log π); None draws one fresh action per state of ``obs``."""
        if mean_log_pi is None:
            with torch.no_grad():
                mean_log_pi = self.policy_log_prob(obs).mean().item()
        if not np.isfinite(mean_log_pi):  # e.g. a one-way generator whose Jacobian went singular (a fold)
            raise FloatingPointError(f"the policy's log-density is {mean_log_pi} at update {self._n_updates}: the "
                                     f"learned τ cannot use it (a one-way generator can fold)")
        # ∂/∂log τ of the loss −log τ·(E log π + H̄), set directly: the value autograd gives, without its engine
        grad = -(mean_log_pi + self.target_entropy)
        self.temperature_grad_max = max(self.temperature_grad_max, abs(grad))
        if self.temperature_grad_clip is not None:
            bound = self.temperature_grad_clip * self.policy.action_dim
            if abs(grad) > bound:  # a log-density spike: keep its sign, not its size (see temperature_grad_clip)
                grad, self.temperature_clipped = float(np.clip(grad, -bound, bound)), self.temperature_clipped + 1
        self.temperature_optimizer.zero_grad()
        self.log_temperature.grad = torch.full_like(self.log_temperature, grad)
        self.temperature_optimizer.step()
        self._sync_temperature()
        return {"train/entropy": -mean_log_pi}

    def _update_sampler(self, obs: torch.Tensor) -> tuple[dict[str, float], float | None]:
        """One sampler step toward exp(Q(s,·)/τ) on the states ``obs``; returns its stats and, for a sampler with its
        own density, E log π(a|s) at the step's samples (for the temperature), else None."""
        target, log_det = self.policy.boltzmann_log_prob(obs), []

        def recorded_target(y: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            log_det.append(tanh_log_det(y.detach()).mean().item())  # log|da/dy| at the step's samples
            return target(y, context)

        weight = dict(weight=self.policy.temperature) if self.sampler_loss_tau else {}  # SAC's τ log π − Q
        stats = self.sampler_trainer.update(recorded_target, self.policy.context(obs), **weight)
        if self.policy.generator_density and "entropy" in stats and len(log_det) == 1:
            # the step's samples carry their own y-space log-density (stats["entropy"] = −E log ρ(y)):
            # E log π(a) = E log ρ(y) − E log|da/dy|, as SAC reuses its actor step's log π
            return stats, -stats["entropy"] - log_det[0]
        return stats, None

    @torch.no_grad()
    def _polyak_update(self) -> None:
        """Q_target ← (1 − polyak) Q_target + polyak Q for every parameter: SB3's ``polyak_update`` in one multi-tensor
        op (SB3's takes two ops per tensor, 24 for the twin critics)."""
        key = (id(self.critic_target), id(self.critic))
        cached = self.__dict__.get("_polyak_params")
        if cached is None or cached[0] != key:  # the lists, built once per pair of modules (not per step)
            targets, params = list(self.critic_target.parameters()), list(self.critic.parameters())
            if len(targets) != len(params):
                raise ValueError(f"critic_target has {len(targets)} parameter tensors, critic {len(params)}")
            cached = self.__dict__["_polyak_params"] = (key, targets, params)
        torch._foreach_lerp_(cached[1], cached[2], self.tau)

    # -- one call of SB3's training loop ----------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.critic.optimizer] + ([self.temperature_optimizer] if self.temperature_optimizer else []))
        self._sync_temperature()  # also after anything that set log τ directly
        trainer = self.sampler_trainer
        logs: dict[str, list[float]] = {}

        for i in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            with torch.no_grad():
                v_next, log_w, particles = self._soft_value_particles(data.next_observations)
                # Q̂ = r_scale·r + γ (1 − terminated) V(s')  (SB3 stores timeouts as not done)
                target = self.reward_scale * data.rewards + (1 - data.dones) * self.gamma * v_next.unsqueeze(1)
            q_values = self.critic(data.observations, data.actions)
            q_loss = 0.5 * sum(F.mse_loss(q, target) for q in q_values)
            q_loss_value = q_loss.item()
            if not np.isfinite(q_loss_value):
                raise FloatingPointError(
                    f"Q loss is {q_loss_value} at update {self._n_updates}: lower the learning rate or reward scale"
                )
            self.critic.optimizer.zero_grad()
            q_loss.backward()
            self.critic.optimizer.step()
            if self.proposal == "fitted":
                logs.setdefault("train/proposal_loss", []).append(
                    self._update_fitted_proposal(data.next_observations, particles, log_w))

            n_sampler = self.sampler_steps if (self._n_updates + i + 1) % self.policy_delay == 0 else 0
            for j in range(max(n_sampler, 1)):  # a delayed Q step still takes its τ step
                obs = data.observations if j == 0 else \
                    self.replay_buffer.sample(batch_size, env=self._vec_normalize_env).observations
                stats: dict[str, float] = {}
                mean_log_pi = None
                if n_sampler:
                    trainer.num_updates = self._n_updates + i  # the annealing clock counts Q updates
                    stats, mean_log_pi = self._update_sampler(obs[: self.sampler_states])
                if self.log_temperature is not None:
                    stats_t = self._update_temperature(obs, mean_log_pi)
                    for key, value in stats_t.items():
                        logs.setdefault(key, []).append(value)
                for key, value in stats.items():
                    logs.setdefault(f"sampler/{key}", []).append(value)
            self._polyak_update()

            for key, value in (("train/q_loss", q_loss_value), ("train/soft_value", v_next.mean().item()),
                               ("train/is_ess", ess(log_w).mean().item() if log_w.shape[-1] > 1 else 1.0), ("train/q_mean", q_values[0].mean().item()),
                               # the Q the soft value and the Boltzmann target use (min, or mean − c·std over critics)
                               ("train/q_pessimistic",
                                critic_q_min(q_values, self.policy.critic_pessimism).mean().item())):
                logs.setdefault(key, []).append(value)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/temperature", self.policy.temperature)
        if self.log_temperature is not None:
            self.logger.record("train/temperature_grad_max", self.temperature_grad_max)
            self.logger.record("train/temperature_clipped", self.temperature_clipped)
        for key, values in logs.items():
            self.logger.record(key, float(np.mean(values)))

    def learn(self, total_timesteps: int, callback: MaybeCallback = None, log_interval: int = 4,
              tb_log_name: str = "SoftQ", reset_num_timesteps: bool = True, progress_bar: bool = False):
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    @classmethod
    def load(cls, *args, **kwargs):
        """SB3's load; a learned τ is restored into the policy at once (SB3 rebuilds the policy with the initial τ
        and only then restores log τ), so ``model.policy.temperature`` is right before any training."""
        model = super().load(*args, **kwargs)
        model._sync_temperature()
        return model

    def _sync_temperature(self) -> None:
        """Copy a learned τ = exp(log τ) into the policy, which reads it as a float (no-op for a fixed τ)."""
        if self.log_temperature is not None:
            self.policy.temperature = self.log_temperature.exp().item()

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["critic", "critic_target", "sampler_trainer", "_polyak_params"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        optimizers = [f"policy.sampler_trainer.{name}" for name, value in vars(self.policy.sampler_trainer).items()
                      if name.endswith("optimizer") and value is not None]
        if self.policy.fitted_flow_optimizer is not None:
            optimizers.append("policy.fitted_flow_optimizer")
        if self.log_temperature is not None:
            return ["policy", "critic.optimizer", *optimizers, "temperature_optimizer"], ["log_temperature"]
        return ["policy", "critic.optimizer", *optimizers], []


__all__ = ["SAMPLERS", "SoftQ", "SoftQPolicy", "parse_temperature"]
