"""Train a soft Q-learning agent with an amortized sampler policy.

    python train_rl.py --env Swimmer-v4
    python train_rl.py --env MultiGoal-v0 --steps 20000
    python train_rl.py --env Swimmer-v4 --resume runs/Swimmer-v4/ugan_0/checkpoints/last.zip

TensorBoard logs, checkpoints (model + replay buffer) and evaluations go to
``<logdir>/<env>/<sampler>_<seed>/``; open them with ``tensorboard --logdir runs``. Ctrl-C or SIGTERM
saves a checkpoint and flushes the logs; ``--resume`` continues the step count.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from softq_ugan.cli import fail

# per-environment defaults: γ and reward scale (τ = 1; the reward scale sets the policy's sharpness)
ENV_DEFAULTS = {
    "Swimmer": dict(gamma=0.999, reward_scale=10.0, learning_starts=10_000),  # γ: rl-zoo's SAC setting
    "MultiGoal": dict(gamma=0.99, reward_scale=0.1, learning_starts=1_000),  # SQL's multimodal task
}
FALLBACK = dict(gamma=0.99, reward_scale=1.0, learning_starts=10_000)


def env_defaults(env_id: str) -> dict:
    return ENV_DEFAULTS.get(env_id.split("-")[0], FALLBACK)


def build_parser() -> argparse.ArgumentParser:
    defaults = "; ".join(f"{k}: γ={v['gamma']}, reward scale {v['reward_scale']}" for k, v in ENV_DEFAULTS.items())
    p = argparse.ArgumentParser(
        prog="train_rl.py",
        description="Soft Q-learning with a U-GAN policy sampler (an SB3 off-policy algorithm).",
        epilog=f"Per-environment defaults ({defaults}; others: γ=0.99, reward scale 1).",
    )
    p.add_argument("--env", default="Swimmer-v4", help="gymnasium id with a Box action space (default Swimmer-v4)")
    p.add_argument("--sampler", default="ugan", help="policy sampler: ugan, ugan-nocritic, ugan-oneway, maf, svgd (default ugan)")
    p.add_argument("--steps", type=int, default=200_000, help="environment steps in all (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", default="runs", help="root of the run folders (default runs)")
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between deterministic evaluations")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--checkpoint-every", type=int, default=25_000, help="env steps between checkpoints")
    p.add_argument("--gamma", type=float, default=None, help="discount (default: per environment)")
    p.add_argument("--reward-scale", type=float, default=None, help="reward multiplier (default: per environment)")
    p.add_argument("--tau", type=float, default=1.0, help="Boltzmann temperature τ of exp(Q/τ) (default 1)")
    p.add_argument("--polyak", type=float, default=0.005, help="target-critic Polyak coefficient (default 0.005)")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate of Q networks and sampler (default 3e-4)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-starts", type=int, default=None, help="random steps before training (default: per env)")
    p.add_argument("--value-particles", type=int, default=16, help="M, particles of the soft value (default 16)")
    p.add_argument("--proposal", default="uniform", help="soft-value proposal: uniform, bridge (the MAF bridge) or generator (ugan-oneway, maf) (default uniform)")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--resume", default=None, metavar="PATH", help="checkpoint .zip to continue from")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def validate(args: argparse.Namespace) -> None:
    from agents.policies import SAMPLERS
    from agents.softq import PROPOSALS

    if args.steps <= 0:
        fail(f"--steps must be positive, got {args.steps}")
    for name in ("eval_every", "checkpoint_every", "batch_size", "value_particles", "eval_episodes"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.tau <= 0:
        fail(f"--tau must be positive, got {args.tau}")
    if args.sampler not in SAMPLERS:
        fail(f"unknown sampler '{args.sampler}'; choose one of: {', '.join(sorted(SAMPLERS))}")
    if args.proposal not in PROPOSALS:
        fail(f"unknown proposal '{args.proposal}'; choose one of: {', '.join(PROPOSALS)}")
    if args.resume and not Path(args.resume).is_file():
        fail(f"checkpoint '{args.resume}' does not exist")


def hyperparameter_table(config: dict) -> str:
    return "| parameter | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in config.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    import numpy as np
    import torch

    from envs import make_env

    torch.set_num_threads(args.threads)
    try:
        env = make_env(args.env, seed=args.seed)
        eval_env = make_env(args.env, seed=args.seed + 10_000)
    except ValueError as e:
        fail(str(e))

    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
    from stable_baselines3.common.logger import TensorBoardOutputFormat, configure
    from stable_baselines3.common.monitor import Monitor

    from agents.softq import SoftQ

    d = env_defaults(args.env)
    gamma = d["gamma"] if args.gamma is None else args.gamma
    reward_scale = d["reward_scale"] if args.reward_scale is None else args.reward_scale
    learning_starts = d["learning_starts"] if args.learning_starts is None else args.learning_starts
    run_dir = Path(args.logdir) / args.env / f"{args.sampler}_{args.seed}"
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    config = dict(env=args.env, sampler=args.sampler, steps=args.steps, seed=args.seed, gamma=gamma,
                  reward_scale=reward_scale, temperature=args.tau, polyak=args.polyak, lr=args.lr,
                  batch_size=args.batch_size, learning_starts=learning_starts, value_particles=args.value_particles,
                  proposal=args.proposal, device=args.device)

    env = Monitor(env)
    if args.resume:
        model = SoftQ.load(args.resume, env=env, device=args.device)
        buffer = Path(str(args.resume).removesuffix(".zip") + "_replay_buffer.pkl")
        if buffer.is_file():
            model.load_replay_buffer(buffer)
        print(f"resumed from {args.resume} at step {model.num_timesteps}", file=sys.stderr)
    else:
        model = SoftQ(
            "MlpPolicy", env, sampler=args.sampler, learning_rate=args.lr, learning_starts=learning_starts,
            batch_size=args.batch_size, tau=args.polyak, gamma=gamma, temperature=args.tau,
            reward_scale=reward_scale, value_particles=args.value_particles, proposal=args.proposal,
            seed=args.seed, device=args.device,
        )
    logger = configure(str(run_dir), ["csv", "tensorboard"])
    model.set_logger(logger)
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_text("hyperparameters", hyperparameter_table(config), model.num_timesteps)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))

    from agents.callbacks import ActionDensityCallback

    if args.env.startswith("MultiGoal"):  # the SQL paper's picture: multimodal actions at the origin
        states, titles = np.array([[0.0, 0.0], [2.5, 0.0], [2.5, 2.5]], np.float32), ["s=(0,0)", "s=(2.5,0)", "s=(2.5,2.5)"]
    else:
        states, titles = eval_env.reset(seed=args.seed)[0][None].astype(np.float32), ["initial state"]
    callbacks = CallbackList([
        ActionDensityCallback(states, log_every=args.eval_every, titles=titles),
        EvalCallback(Monitor(eval_env), eval_freq=args.eval_every, n_eval_episodes=args.eval_episodes,
                     deterministic=True, log_path=str(run_dir / "eval"), verbose=0),
        CheckpointCallback(args.checkpoint_every, str(ckpt_dir), name_prefix="softq", save_replay_buffer=True),
    ])

    def save(name: str) -> Path:
        path = ckpt_dir / f"{name}.zip"
        model.save(path)
        model.save_replay_buffer(ckpt_dir / f"{name}_replay_buffer.pkl")
        return path

    def on_sigterm(signum, frame):  # SIGTERM behaves like Ctrl-C: checkpoint and flush
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    remaining = args.steps - model.num_timesteps
    start, status = time.time(), 0
    try:
        if remaining > 0:
            model.learn(remaining, callback=callbacks, reset_num_timesteps=not args.resume,
                        progress_bar=not args.quiet, log_interval=1)
        path = save("last")
        print(f"done: {model.num_timesteps} steps in {time.time() - start:.0f}s; checkpoint {path}", file=sys.stderr)
    except KeyboardInterrupt:
        path = save("last")
        print(f"interrupted at step {model.num_timesteps}; checkpoint {path} (resume with --resume {path})",
              file=sys.stderr)
        status = 130
    except FloatingPointError as e:
        path = save("nan")
        print(f"error: {e}; checkpoint {path}", file=sys.stderr)
        status = 1
    finally:
        logger.dump(model.num_timesteps)
        logger.close()
    print(f"TensorBoard: tensorboard --logdir {run_dir}", file=sys.stderr)
    return status


if __name__ == "__main__":
    os.environ.setdefault("MUJOCO_GL", "egl")
    sys.exit(main())
