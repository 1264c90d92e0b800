"""SB3 baselines with rl-baselines3-zoo's Swimmer-v4 settings, for side-by-side runs with SoftQ.

SAC: γ=0.999, learning_starts 10k, else SB3 defaults. TD3: γ=0.9999, lr 1e-3, batch 256,
net [400, 300], Gaussian action noise 0.1. ``overrides`` replace any of them (e.g. a sweep's γ).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ZOO: dict[str, dict[str, Any]] = {
    "sac": dict(gamma=0.999, learning_starts=10_000),
    "td3": dict(gamma=0.9999, learning_rate=1e-3, batch_size=256, learning_starts=10_000,
                policy_kwargs=dict(net_arch=[400, 300])),
}


def sb3_class(algo: str):
    """The SB3 class of ``algo`` ("sac" or "td3")."""
    from stable_baselines3 import SAC, TD3

    if algo not in ZOO:
        raise ValueError(f"unknown SB3 baseline '{algo}'; choose one of: {', '.join(ZOO)}")
    return SAC if algo == "sac" else TD3


def make_sb3(algo: str, env, seed: int, **overrides: Any):
    """SAC or TD3 with rl-baselines3-zoo's Swimmer-v4 settings (TD3: Gaussian action noise 0.1)."""
    from stable_baselines3.common.noise import NormalActionNoise

    cls = sb3_class(algo)
    kwargs = {**ZOO[algo], **overrides}
    if "policy_kwargs" in overrides:  # what the caller names, on top of the zoo's network (TD3's 400 × 300)
        kwargs["policy_kwargs"] = {**ZOO[algo].get("policy_kwargs", {}), **overrides["policy_kwargs"]}
    if algo == "td3":
        d = env.action_space.shape[0]
        kwargs.setdefault("action_noise", NormalActionNoise(np.zeros(d), 0.1 * np.ones(d)))
    return cls("MlpPolicy", env, seed=seed, **kwargs)
