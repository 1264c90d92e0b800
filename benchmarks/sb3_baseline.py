"""SB3 SAC/TD3 on the same footing as train_rl.py: same eval protocol, TensorBoard layout, steps/s.

    python benchmarks/sb3_baseline.py --algo sac --env Swimmer-v4 --steps 50000 --seed 0

Settings are rl-baselines3-zoo's for Swimmer-v4 (SAC: γ=0.999, learning_starts 10k; TD3: γ=0.9999,
lr 1e-3, batch 256, net [400, 300], Gaussian action noise 0.1). Deterministic evaluation over 5
episodes every 10k steps; logs to runs/<env>/<algo>_<seed>/; prints the last eval and env steps/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.baselines import ZOO, make_sb3  # noqa: E402
from softq_ugan.cli import check_args  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=sorted(ZOO), default="sac")
    p.add_argument("--env", default="Swimmer-v4")
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--logdir", default="runs")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    check_args(positive={"--steps": args.steps, "--eval-every": args.eval_every, "--threads": args.threads},
               seeds={"--seed": args.seed})
    torch.set_num_threads(args.threads)

    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor

    from envs import make_env

    env = Monitor(make_env(args.env, seed=args.seed))
    model = make_sb3(args.algo, env, args.seed)
    run_dir = Path(args.logdir) / args.env / f"{args.algo}_{args.seed}"
    model.set_logger(configure(str(run_dir), ["csv", "tensorboard"]))
    eval_cb = EvalCallback(Monitor(make_env(args.env, seed=args.seed + 10_000)), eval_freq=args.eval_every,
                           n_eval_episodes=5, deterministic=True, log_path=str(run_dir / "eval"))
    start = time.time()
    model.learn(args.steps, callback=eval_cb, log_interval=1, progress_bar=False)
    seconds = time.time() - start
    result = dict(algo=args.algo, env=args.env, seed=args.seed, steps=args.steps, seconds=round(seconds, 1),
                  steps_per_second=round(args.steps / seconds, 1),
                  evals={int(t): float(np.mean(r)) for t, r in zip(eval_cb.evaluations_timesteps, eval_cb.evaluations_results)})
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
