"""SB3 callbacks: a U-GAN sampler of an SB3 critic's Boltzmann policy, and action-density figures (SPEC §5).

``UGANSamplerCallback`` plugs the U-GAN of SPEC §4 into an existing SAC/TD3/TQC run: it trains a sampler
of exp(Q(s,·)/τ) in pre-squash space y (a = tanh y) against the model's critic, without touching it.
``ActionDensityCallback`` logs a figure of sampled actions at fixed states to TensorBoard.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.logger import Figure
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from torch import Tensor, nn

from softq_ugan.cli import write_json
from softq_ugan.ugan import UGAN, UGANConfig, UGANSampler

from .critics import boltzmann_target, critic_q_min, q_min

__all__ = [
    "ActionDensityCallback",
    "GridCheckpoint",
    "UGANSamplerCallback",
    "UGAN_CALLBACK_DEFAULTS",
    "action_density_figure",
    "critic_q_min",
]

# overrides of UGANConfig's toy-target defaults for a sampler trained alongside an RL run (cheap per step)
UGAN_CALLBACK_DEFAULTS: dict[str, Any] = dict(bridge_steps=1, bridge_hidden=64, schedule="none")


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` of a module's parameters (no gradient reaches them), then restore it."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class UGANSamplerCallback(BaseCallback):
    """Trains a U-GAN sampler of the Boltzmann policy exp(Q(s,·)/τ) of an SB3 SAC/TD3/TQC model's critic.

    The target in y-space (a = tanh y) is ``log u(y|s) = min_i Q_i(s, tanh y)/τ + Σ log(1 − tanh² y)``
    (SPEC §5); the context is the flattened, preprocessed observation. The critic is read, never trained:
    its parameters are frozen while the sampler updates, and the U-GAN steps only its own optimizers.

    :param temperature: τ of the Boltzmann policy.
    :param num_states: states drawn from the replay buffer per update (the context batch).
    :param num_particles: samples per state and update (the U-GAN's ``batch_size``).
    :param train_every: train on every ``train_every``-th call of the callback (one call per env step).
    :param updates_per_call: U-GAN updates per training call.
    :param learning_starts: train once the buffer holds this many transitions (None: the model's
        ``learning_starts``); never before it holds ``num_states``.
    :param ugan_kwargs: overrides of :class:`UGANConfig` (on top of ``UGAN_CALLBACK_DEFAULTS``).
    """

    def __init__(
        self,
        temperature: float = 1.0,
        num_states: int = 64,
        num_particles: int = 8,
        train_every: int = 1,
        updates_per_call: int = 1,
        learning_starts: int | None = None,
        ugan_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if not temperature > 0:
            raise ValueError(f"UGANSamplerCallback: temperature must be > 0, got {temperature}")
        for name, value in (("num_states", num_states), ("num_particles", num_particles),
                            ("train_every", train_every), ("updates_per_call", updates_per_call)):
            if value < 1:
                raise ValueError(f"UGANSamplerCallback: {name} must be >= 1, got {value}")
        self.temperature = float(temperature)
        self.num_states = num_states
        self.num_particles = num_particles
        self.train_every = train_every
        self.updates_per_call = updates_per_call
        self.learning_starts = learning_starts
        self.ugan_kwargs = dict(ugan_kwargs or {})
        if "features" in self.ugan_kwargs or "context_features" in self.ugan_kwargs:
            raise ValueError("UGANSamplerCallback: features/context_features come from the model's spaces")
        self.ugan: UGAN | None = None
        self._pending_state: dict[str, Tensor] | None = None

    # -- construction -----------------------------------------------------------------------------
    @property
    def sampler(self) -> UGANSampler:
        """The sampler module (generator, critic, bridge) of :attr:`ugan`."""
        if self.ugan is None:
            raise RuntimeError("UGANSamplerCallback: the sampler is built when training starts (or by init_callback)")
        return self.ugan.sampler

    def _init_callback(self) -> None:
        self._build()

    def _on_training_start(self) -> None:
        self._build()

    def _build(self) -> None:
        """Build the U-GAN from ``self.model``'s spaces (once; a later ``learn`` keeps training it)."""
        if self.ugan is not None:
            return
        action_space, obs_space = self.model.action_space, self.model.observation_space
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"UGANSamplerCallback needs a Box action space, got {type(action_space).__name__}")
        kwargs = {**UGAN_CALLBACK_DEFAULTS, "batch_size": self.num_particles, **self.ugan_kwargs}
        config = UGANConfig(
            features=int(np.prod(action_space.shape)), context_features=self._context_dim(obs_space), **kwargs
        )
        module = UGANSampler(config).to(self.model.device)
        if self._pending_state is not None:
            module.load_state_dict(self._pending_state)
            self._pending_state = None
        self.ugan = UGAN(config, sampler=module)

    @staticmethod
    def _context_dim(obs_space: spaces.Space) -> int:
        if isinstance(obs_space, spaces.Dict):
            return sum(get_flattened_obs_dim(s) for s in obs_space.spaces.values())
        return get_flattened_obs_dim(obs_space)

    # -- the target ---------------------------------------------------------------------------------
    def context(self, obs: Tensor | dict[str, Tensor]) -> Tensor:
        """The sampler's context: the preprocessed observation, flattened, ``(B, c)``."""
        space = self.model.observation_space
        x = preprocess_obs(obs, space, normalize_images=self.model.policy.normalize_images)
        if isinstance(x, dict):
            return torch.cat([x[key].flatten(start_dim=1).float() for key in space.spaces], dim=1)
        return x.flatten(start_dim=1).float()

    def q_min(self, obs: Tensor | dict[str, Tensor], actions: Tensor) -> Tensor:
        """min_i Q_i(s, a) of the model's critic for obs ``(B, o)`` and actions ``(B, K, d)`` in [-1, 1] → ``(B, K)``."""
        return q_min(self.model.critic, obs, actions)

    def log_prob(self, obs: Tensor | dict[str, Tensor]) -> Callable[[Tensor, Tensor | None], Tensor]:
        """log u(y|s) = min_i Q_i(s, tanh y)/τ + Σ log(1 − tanh² y), a function of (y, context) (SPEC §5)."""
        return boltzmann_target(self.q_min, obs, self.temperature)

    # -- training -----------------------------------------------------------------------------------
    def _buffer_size(self) -> int:
        buffer = self.model.replay_buffer
        return 0 if buffer is None else buffer.size() * buffer.n_envs

    def ready(self) -> bool:
        """Whether the replay buffer holds enough transitions to train the sampler."""
        starts = self.learning_starts if self.learning_starts is not None else self.model.learning_starts
        return self._buffer_size() >= max(starts, self.num_states, 1)

    def update(self, obs: Tensor | dict[str, Tensor] | None = None) -> dict[str, float]:
        """``updates_per_call`` U-GAN updates on ``obs`` (default: ``num_states`` replay-buffer states); mean stats."""
        self._build()
        if obs is None:
            obs = self.model.replay_buffer.sample(self.num_states, env=self.model._vec_normalize_env).observations
        context = self.context(obs)
        stats: dict[str, list[float]] = {}
        with _frozen(self.model.critic):  # no gradient reaches the critic; the U-GAN steps its own optimizers
            for _ in range(self.updates_per_call):
                for key, value in self.ugan.update(self.log_prob(obs), context=context).items():
                    stats.setdefault(key, []).append(value)
        return {key: float(np.mean(values)) for key, values in stats.items()}

    def _on_step(self) -> bool:
        if self.n_calls % self.train_every == 0 and self.ready():
            for key, value in self.update().items():
                self.logger.record(f"sampler/{key}", value)
        return True

    # -- using the sampler --------------------------------------------------------------------------
    @torch.no_grad()
    def sample_actions(self, obs: np.ndarray | Tensor | dict, k: int) -> np.ndarray:
        """``k`` actions per state from the sampler, ``(B, k, d)``, in the env's action scale.

        ``obs`` is one observation or a batch, as the model's policy sees it (normalized under VecNormalize).
        """
        self._build()
        if isinstance(obs, Tensor):
            obs_t = obs.to(self.model.device)
        elif isinstance(obs, dict) and all(isinstance(v, Tensor) for v in obs.values()):
            obs_t = {key: v.to(self.model.device) for key, v in obs.items()}
        else:
            obs_t, _ = self.model.policy.obs_to_tensor(obs)
        actions = torch.tanh(self.sampler.sample(k, self.context(obs_t))).cpu().numpy()
        return self.model.policy.unscale_action(actions)

    def save(self, path: str | Path) -> None:
        """Save the sampler's state dict (``torch.save``)."""
        torch.save(self.sampler.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Load a sampler state dict saved by :meth:`save` (kept until the sampler is built, if need be)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if self.ugan is None:
            self._pending_state = state
        else:
            self.sampler.load_state_dict(state)


def action_density_figure(
    actions: np.ndarray,
    titles: Sequence[str] | None = None,
    bounds: tuple[float, float] = (-1.0, 1.0),
    max_cols: int = 4,
):
    """One panel per state of sampled actions ``(S, k, d)``: a scatter of the first two dims, a histogram for d=1.

    Returns a matplotlib ``Figure`` (Agg canvas, not registered with pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 3 or actions.shape[0] < 1 or actions.shape[2] < 1:
        raise ValueError(f"action_density_figure: expected actions of shape (S, k, d), got {actions.shape}")
    S, _, d = actions.shape
    if titles is not None and len(titles) != S:
        raise ValueError(f"action_density_figure: {len(titles)} titles for {S} states")
    cols = min(S, max_cols)
    rows = math.ceil(S / cols)
    fig = MplFigure(figsize=(3.0 * cols, 3.0 * rows))
    FigureCanvasAgg(fig)
    lo, hi = bounds
    for i in range(S):
        ax = fig.add_subplot(rows, cols, i + 1)
        a = actions[i]
        if d == 1:
            ax.hist(a[:, 0], bins=40, range=(lo, hi), density=True, color="C0")
            ax.set_xlim(lo, hi)
            ax.set_xlabel("a")
        else:
            ax.scatter(a[:, 0], a[:, 1], s=4, alpha=0.4, color="C0", linewidths=0)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.set_xlabel("a[0]")
            ax.set_ylabel("a[1]")
        ax.set_title(titles[i] if titles is not None else f"state {i}", fontsize=9)
    fig.tight_layout()
    return fig


class ActionDensityCallback(BaseCallback):
    """Every ``log_every`` calls, records a figure of sampled actions at fixed states under ``policy/action_density``.

    :param states: observations ``(S, *obs_shape)`` to sample actions at.
    :param sample_fn: ``(obs_tensor, k) -> (S, k, d)`` actions (tensor or array); default: the SoftQ
        policy's ``sample_actions``.
    :param num_samples: actions per state.
    :param log_every: callback calls (env steps) between figures.
    :param titles: one panel title per state (default: the state's values).
    :param bounds: axis limits of every panel (actions of SB3 policies live in [-1, 1]).
    """

    key = "policy/action_density"

    def __init__(
        self,
        states: np.ndarray,
        sample_fn: Callable[[Tensor, int], Tensor | np.ndarray] | None = None,
        num_samples: int = 500,
        log_every: int = 5000,
        verbose: int = 0,
        titles: Sequence[str] | None = None,
        bounds: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__(verbose)
        if num_samples < 1 or log_every < 1:
            raise ValueError(
                f"ActionDensityCallback: num_samples and log_every must be >= 1, got {num_samples}, {log_every}"
            )
        self.states = np.asarray(states, dtype=np.float32)
        self.sample_fn = sample_fn
        self.num_samples = num_samples
        self.log_every = log_every
        self.bounds = bounds
        if titles is None:
            titles = [
                "s = (" + ", ".join(f"{v:.2g}" for v in s.ravel()[:4]) + (", …)" if s.size > 4 else ")")
                for s in self.states
            ]
        if len(titles) != len(self.states):
            raise ValueError(f"ActionDensityCallback: {len(titles)} titles for {len(self.states)} states")
        self.titles = list(titles)

    @torch.no_grad()
    def sample(self) -> np.ndarray:
        """Actions ``(S, num_samples, d)`` at the states."""
        obs, _ = self.model.policy.obs_to_tensor(self.states)
        fn = self.sample_fn if self.sample_fn is not None else self.model.policy.sample_actions
        actions = fn(obs, self.num_samples)
        if isinstance(actions, Tensor):
            actions = actions.detach().cpu().numpy()
        return np.asarray(actions).reshape(len(self.states), self.num_samples, -1)

    def _on_step(self) -> bool:
        if self.n_calls % self.log_every == 0:
            fig = action_density_figure(self.sample(), self.titles, self.bounds)
            self.logger.record(self.key, Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))
        return True


def _count_from_the_model(callback: BaseCallback) -> None:
    """Count a callback's calls from the model's clock, not from this ``learn()`` call.

    SB3's periodic callbacks fire when ``n_calls % freq == 0``, and ``n_calls`` restarts at each ``learn()``, so a
    run resumed at step 149,061 with ``freq`` 10,000 would fire at 159,061. Counted from the model, it fires at
    150,000, on the same grid as an uninterrupted run.
    """
    callback.n_calls = callback.model.num_timesteps // callback.training_env.num_envs


class GridCheckpoint(CheckpointCallback):
    """SB3's :class:`CheckpointCallback` that keeps its step grid after a resume (``<prefix>_<step>_steps.zip``
    at multiples of ``save_freq``, whatever step the run resumed from)."""

    def _on_training_start(self) -> None:
        super()._on_training_start()
        _count_from_the_model(self)


class EvalRecorder(EvalCallback):
    """SB3's deterministic :class:`EvalCallback` that also keeps a resumable record of the run.

    After each evaluation it writes, each by write-then-rename so a kill never leaves a torn file:
    ``checkpoints/eval.zip`` with ``checkpoints/eval_replay_buffer.pkl`` (when ``checkpoint``), then
    ``evals.json`` = ``{"algo", "seed", "evals": [[step, mean return], ...], "wall": [training seconds
    at each eval], "seconds", "steps"}``. Training seconds exclude evaluation and saving, so they
    compare wall cost per env step across algorithms. A sweep or benchmark reads ``evals.json``.
    :meth:`pause` (at an interrupt) adds ``"paused_at": [step, seconds]``, which a resume from that step reads.
    A run resumed into a new folder (a fork) adds ``"start"``: the step it began at, so that ``seconds`` over
    ``steps - start`` is its cost per env step.

    :param run_dir: the run's folder.
    :param label: the algorithm's name in ``evals.json`` (e.g. ``softq-ugan``, ``sac``).
    :param resume_step: when resuming, the checkpoint's step: records after it are dropped.
    """

    def __init__(self, eval_env, run_dir: str | Path, label: str, seed: int, eval_freq: int,
                 n_eval_episodes: int = 5, checkpoint: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        super().__init__(eval_env, eval_freq=eval_freq, n_eval_episodes=n_eval_episodes, deterministic=True,
                         log_path=str(self.run_dir / "eval"), verbose=0)
        self.checkpoint = checkpoint
        self.file = self.run_dir / "evals.json"
        self.record: dict[str, Any] = dict(algo=label, seed=seed, evals=[], wall=[], seconds=0.0, steps=0)
        if resume_step is not None and not self.file.is_file():
            self.record["start"] = self.record["steps"] = int(resume_step)
        elif resume_step is not None:
            old = json.loads(self.file.read_text())
            if "start" in old:
                self.record["start"] = old["start"]
            keep = [i for i, (t, _) in enumerate(old.get("evals", [])) if t <= resume_step]
            wall = old.get("wall", [])
            self.record.update(evals=[old["evals"][i] for i in keep], wall=[wall[i] for i in keep if i < len(wall)])
            self.record["seconds"] = self.record["wall"][-1] if self.record["wall"] else 0.0
            self.record["steps"] = self.record["evals"][-1][0] if self.record["evals"] else self.record.get("start", 0)
            paused = old.get("paused_at")
            if paused and paused[0] == resume_step:  # the seconds from the last eval to the checkpoint count too
                self.record["seconds"] = float(paused[1])
        self._mark = 0.0

    def pause(self) -> None:
        """Note in ``evals.json`` the step and training seconds at an interrupt, next to ``last.zip``, so that
        a run resumed from that checkpoint counts the seconds between the last evaluation and the interrupt."""
        if not self._mark:  # interrupted before training started: nothing to add
            return
        step, seconds = int(self.model.num_timesteps), self.record["seconds"] + time.perf_counter() - self._mark
        self._write(dict(self.record, paused_at=[step, round(seconds, 3)]))

    def _write(self, record: dict[str, Any]) -> None:
        write_json(self.file, record)

    @property
    def checkpoint_path(self) -> Path:
        """The latest evaluation checkpoint (``--resume`` takes it)."""
        return self.run_dir / "checkpoints" / "eval.zip"

    def _on_training_start(self) -> None:
        self._mark = time.perf_counter()
        _count_from_the_model(self)

    def _on_step(self) -> bool:
        due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if due:
            self.record["seconds"] += time.perf_counter() - self._mark
        keep_going = super()._on_step()
        if due:
            ckpt = self.checkpoint_path
            if self.checkpoint:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                self.model.save(ckpt.with_name("eval.tmp.zip"))
                self.model.save_replay_buffer(ckpt.with_name("eval_replay_buffer.tmp.pkl"))
                os.replace(ckpt.with_name("eval.tmp.zip"), ckpt)
                os.replace(ckpt.with_name("eval_replay_buffer.tmp.pkl"), ckpt.with_name("eval_replay_buffer.pkl"))
            step = int(self.num_timesteps)
            self.record["evals"].append([step, float(self.last_mean_reward)])
            self.record["wall"].append(round(self.record["seconds"], 3))
            self.record["steps"] = step
            self._write(self.record)
            self._mark = time.perf_counter()
        return keep_going
