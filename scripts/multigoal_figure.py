"""The SQL paper's MultiGoal picture for a trained SoftQ checkpoint: paths and action samples.

    python scripts/multigoal_figure.py runs/MultiGoal-v0/ugan_0/checkpoints/last.zip --out docs/multigoal.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--out", default="multigoal.png")
    args = p.parse_args()
    from agents import SoftQ
    from envs.multigoal import plot_paths

    model = SoftQ.load(args.checkpoint, device="cpu")
    env = gym.make("MultiGoal-v0")
    paths, goals = [], []
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=ep)
        path, done = [obs.copy()], False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, _, terminated, truncated, info = env.step(action)
            path.append(info["pos"].copy())
            done = terminated or truncated
        paths.append(np.array(path))
        goals.append(info["goal"])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 5))
    plot_paths(paths, ax=ax0)
    counts = np.bincount(np.array(goals) + 1, minlength=5)
    ax0.set_title(f"{args.episodes} stochastic episodes; goals reached {counts[1:].tolist()}, none {counts[0]}")
    with torch.no_grad():
        actions = model.policy.sample_actions(torch.zeros(1, 2), 1000)[0].numpy()
    ax1.scatter(actions[:, 0], actions[:, 1], s=3, alpha=0.5)
    ax1.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", title="1,000 sampled actions at s = (0, 0)",
            xlabel="a₁", ylabel="a₂")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}; goals {counts[1:].tolist()}, none {counts[0]}")


if __name__ == "__main__":
    main()
