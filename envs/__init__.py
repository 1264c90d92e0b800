"""Environments: registers ``MultiGoal-v0`` with gymnasium; ``make_env`` builds any continuous-action env.

Every error from ``check_env_id``/``make_env`` is a ``ValueError`` with a one-line message, so a CLI
can print it as ``error: <message>``.

Swimmer-v4 (the benchmark's env, see SPEC §9) makes gymnasium warn once that v5 exists; the
warning is left as is on purpose.
"""

from __future__ import annotations

import difflib
import importlib

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import find_highest_version, parse_env_id

from envs.multigoal import GOALS, MultiGoalEnv, goal_reached, plot_paths

__all__ = ["GOALS", "MultiGoalEnv", "check_env_id", "goal_reached", "make_env", "plot_paths"]

MULTIGOAL_ID = "MultiGoal-v0"
EXAMPLE_IDS = ("MultiGoal-v0", "Swimmer-v4", "Pendulum-v1")

if MULTIGOAL_ID not in gymnasium.registry:
    gymnasium.register(id=MULTIGOAL_ID, entry_point="envs.multigoal:MultiGoalEnv", max_episode_steps=30)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _unknown(env_id: str) -> ValueError:
    close = difflib.get_close_matches(env_id, list(gymnasium.registry.keys()), n=3, cutoff=0.6)
    if close:
        return ValueError(f"unknown environment '{env_id}'; did you mean: {', '.join(close)}?")
    return ValueError(f"unknown environment '{env_id}'; examples: {', '.join(EXAMPLE_IDS)}")


def _missing(env_id: str, err: Exception) -> ValueError:
    name = getattr(err, "name", None)
    what = f"package '{name}'" if name else "package"
    return ValueError(f"environment '{env_id}' needs a missing {what}: {_one_line(err)}")


def check_env_id(env_id: str) -> str:
    """Raise ``ValueError`` (one line, with close matches) unless gymnasium knows ``env_id``.

    Cheap: reads the registry only (a ``module:Env-v0`` id imports ``module``); builds nothing.
    Unversioned ids (``Swimmer``) are accepted, as gymnasium resolves them to the latest version.
    Returns ``env_id``.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"environment id must be a non-empty string, got {env_id!r}")
    if env_id in gymnasium.registry:
        return env_id
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"cannot import module '{module}' for environment '{env_id}': {_one_line(e)}") from e
    try:
        ns, base, version = parse_env_id(name)
    except gymnasium.error.Error as e:
        raise _unknown(name) from e
    if name in gymnasium.registry or (version is None and find_highest_version(ns, base) is not None):
        return env_id
    if ns is not None and not any(spec.namespace == ns for spec in gymnasium.registry.values()):
        raise ValueError(f"unknown environment '{env_id}': namespace '{ns}' is not registered (is its package installed?)")
    raise _unknown(name)


def make_env(env_id: str, seed: int | None = None, **kwargs) -> gymnasium.Env:
    """``gymnasium.make(env_id, **kwargs)``, checked to have a bounded ``Box`` action space.

    With ``seed``, the env is reset with it and its action/observation spaces are seeded, so
    the same seed gives the same first observation and the same ``action_space.sample()``.
    Raises ``ValueError`` (one line) for an unknown id, a missing dependency, a non-Box action
    space or a Box with infinite bounds.
    """
    check_env_id(env_id)
    try:
        env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.DependencyNotInstalled as e:
        raise _missing(env_id, e) from e
    except gymnasium.error.Error as e:
        raise _unknown(env_id) from e
    except ImportError as e:
        raise _missing(env_id, e) from e
    space = env.action_space
    if not isinstance(space, spaces.Box):
        env.close()
        raise ValueError(
            f"environment '{env_id}' has a {type(space).__name__} action space; "
            "SoftQ needs a continuous (Box) action space"
        )
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise ValueError(
            f"environment '{env_id}' has an unbounded Box action space (low={_one_line(space.low)}, "
            f"high={_one_line(space.high)}); SoftQ needs finite action bounds"
        )
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        env.observation_space.seed(seed)
    return env
