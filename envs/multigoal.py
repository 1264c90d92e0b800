"""MultiGoal: the 2-D four-goal task of the SQL paper (Haarnoja et al. 2017, Fig. 2).

A point starts at the origin and moves by a velocity action a ∈ [-1, 1]^2; four goals sit at
(±5, 0) and (0, ±5). The reward penalizes actuation and the distance to the nearest goal and pays a
bonus on reaching a goal, so the optimal maximum-entropy policy is multimodal at the origin.
The time limit (30 steps) is applied by gymnasium's TimeLimit through the registration in
``envs/__init__.py``; ``MultiGoalEnv()`` built directly never truncates.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
"""The four goal positions, shape (4, 2); the index of a row is the goal id in ``info["goal"]``."""

BOUND = 7.0
"""The position is clipped to [-BOUND, BOUND]^2 after every step."""


def goal_distances(pos: np.ndarray) -> np.ndarray:
    """Euclidean distance from each position (..., 2) to each goal: (..., 4)."""
    pos = np.asarray(pos, dtype=np.float64)
    return np.linalg.norm(pos[..., None, :] - GOALS, axis=-1)


def min_goal_distance(pos: np.ndarray) -> np.ndarray:
    """Distance to the nearest goal, shape (...) for positions (..., 2)."""
    return goal_distances(pos).min(axis=-1)


def goal_reached(pos: np.ndarray, threshold: float = 1.0) -> int:
    """Index 0..3 of the goal strictly closer than ``threshold`` to the position (2,), or -1 if none.

    Strict, as in softlearning: from the origin four unit steps end at distance exactly 1 (not
    reached) and the fifth lands on the goal.
    """
    d = goal_distances(np.asarray(pos, dtype=np.float64).reshape(2))
    i = int(np.argmin(d))
    return i if d[i] < threshold else -1


def plot_paths(paths: Sequence[np.ndarray] = (), ax=None, goal_threshold: float = 1.0, bound: float = BOUND):
    """Draw the cost landscape, the goals and position trajectories; return the axes.

    ``paths`` is a list of (T, 2) arrays of positions. Contours are of -min goal distance (the
    distance part of the reward). With ``ax=None`` a new Agg figure is made (``ax.figure``).
    """
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    grid = np.linspace(-bound, bound, 101)
    xx, yy = np.meshgrid(grid, grid)
    value = -min_goal_distance(np.stack([xx, yy], axis=-1))
    cs = ax.contour(xx, yy, value, levels=15, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, inline=True, fontsize=6, fmt="%.0f")
    for g in GOALS:
        ax.add_patch(_circle(g, goal_threshold))
    ax.plot(GOALS[:, 0], GOALS[:, 1], "ro", markersize=6)
    for path in paths:
        path = np.asarray(path, dtype=np.float64).reshape(-1, 2)
        ax.plot(path[:, 0], path[:, 1], "b-", linewidth=1.0, alpha=0.8)
        ax.plot(path[-1:, 0], path[-1:, 1], "b.", markersize=4)
    ax.set_xlim(-bound, bound)
    ax.set_ylim(-bound, bound)
    ax.set_aspect("equal")
    return ax


def _circle(center: np.ndarray, radius: float):
    from matplotlib.patches import Circle

    return Circle(tuple(center), radius, fill=False, edgecolor="r", linestyle="--", linewidth=0.8)


class MultiGoalEnv(gym.Env):
    """SQL's 2-D four-goal task (registered as ``MultiGoal-v0`` with a 30-step time limit).

    Dynamics: ``pos ← clip(pos + clip(a, -1, 1) + dynamics_noise·ε, -7, 7)``.
    Reward: ``-actuation_cost·‖a‖² - distance_cost·min_goal_distance(pos) + goal_reward·[goal reached]``
    (a clipped first). The episode terminates when the new position is closer than ``goal_threshold``
    to a goal. ``info`` holds ``"pos"`` (the new position) and ``"goal"`` (0..3, or -1).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        render_mode: str | None = None,
        init_sigma: float = 0.0,
        dynamics_noise: float = 0.0,
        goal_threshold: float = 1.0,
        actuation_cost: float = 30.0,
        distance_cost: float = 1.0,
        goal_reward: float = 10.0,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.init_sigma = float(init_sigma)
        self.dynamics_noise = float(dynamics_noise)
        self.goal_threshold = float(goal_threshold)
        self.actuation_cost = float(actuation_cost)
        self.distance_cost = float(distance_cost)
        self.goal_reward = float(goal_reward)
        self.observation_space = spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._path: list[np.ndarray] = [self._pos.copy()]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        pos = self.init_sigma * self.np_random.standard_normal(2) if self.init_sigma > 0 else np.zeros(2)
        self._pos = np.clip(pos, -BOUND, BOUND)
        self._path = [self._pos.copy()]
        return self._pos.astype(np.float32), {"pos": self._pos.copy(), "goal": -1}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        pos = self._pos + a
        if self.dynamics_noise > 0:
            pos = pos + self.dynamics_noise * self.np_random.standard_normal(2)
        self._pos = np.clip(pos, -BOUND, BOUND)
        self._path.append(self._pos.copy())
        goal = goal_reached(self._pos, self.goal_threshold)
        reward = (
            -self.actuation_cost * float(a @ a)
            - self.distance_cost * float(min_goal_distance(self._pos))
            + self.goal_reward * float(goal >= 0)
        )
        info = {"pos": self._pos.copy(), "goal": goal}
        return self._pos.astype(np.float32), reward, goal >= 0, False, info

    def render(self):
        """With ``render_mode="rgb_array"``: the landscape and this episode's path, (H, W, 3) uint8."""
        if self.render_mode != "rgb_array":
            return None
        ax = plot_paths([np.array(self._path)], goal_threshold=self.goal_threshold)
        canvas = ax.figure.canvas
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    @property
    def path(self) -> np.ndarray:
        """Positions visited in the current episode, (T+1, 2), starting with the reset position."""
        return np.array(self._path)
