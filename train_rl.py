"""Train a soft Q-learning agent with an amortized sampler policy.

    python train_rl.py --env Swimmer-v4
    python train_rl.py --env MultiGoal-v0 --steps 20000
    python train_rl.py --env Swimmer-v4 --resume runs/Swimmer-v4/ugan-nocritic_0/checkpoints/last.zip

TensorBoard logs, checkpoints (model + replay buffer) and evaluations go to
``<logdir>/<env>/<sampler>_<seed>/``; open them with ``tensorboard --logdir runs``. Ctrl-C or SIGTERM
saves a checkpoint and flushes the logs; ``--resume`` continues the step count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from softq_ugan.cli import build_info, check_args, checkpoint_data, error_line, fail

# per-environment defaults: γ and reward scale (the reward scale sets the policy's sharpness)
ENV_DEFAULTS = {
    "Swimmer": dict(gamma=0.999, reward_scale=10.0, learning_starts=10_000),  # γ: rl-zoo's SAC setting
    "MultiGoal": dict(gamma=0.99, reward_scale=0.1, learning_starts=1_000),  # SQL's multimodal task
}
FALLBACK = dict(gamma=0.99, reward_scale=1.0, learning_starts=10_000)
# SQL's soft value: τ = 1, M = 16 uniform particles, no delay (SoftQ's own network and batch defaults)
SOFTQ_BASE = dict(tau="1.0", proposal="uniform", policy_delay=1, value_particles=16)
# SAC's soft value and temperature inside SoftQ: the sampler's own density as the proposal with M = 1
# (V = Q − τ log π), τ learned toward entropy −dim(A), reward scale 1, no annealing, SAC's 256×256 critics and batch
# 256. With the MAF policy it found Swimmer-v4's fast gait on tuning seeds 10 and 11 (351.8, 346.1 at 150k) and not
# on 12 (82.9), where SQL's settings found it on none of the benchmark's seeds 0-2 (swimmer.md). With the U-GAN it
# needs the U-GAN's own samples and density estimate log ν + D (proposal "generator"): with the bridge as proposal
# and τ gauge seed 10 ended at 25.8; with its own, seeds 10 and 11 held ≥ 300 from 100k (330.7 at 150k, 345.7 at
# 140k; seed 12: 69.2 at 110k, unfinished; swimmer_tuning.md), with 4 samples per state per U-GAN update for cost,
# and the bridge's MLE step taken from the generator's backward (1.48x SAC's gradient step against 1.79x; on tuning
# seeds 15 and 16 as the unshared preset did: 337.9 and 37.7 at 150k; swimmer_tuning.md, session 21).
SAC_STYLE = dict(reward_scale=1.0, tau="auto", value_particles=1, schedule="none", net_arch=[256, 256], batch_size=256)
SAMPLER_DEFAULTS = {  # (environment family, sampler) → what differs from SOFTQ_BASE and ENV_DEFAULTS
    ("Swimmer", "maf"): dict(SAC_STYLE, proposal="generator"),
    # SAC's actor batch (each U-GAN step on all 256 states of the minibatch, one sample each), the bridge anchored to
    # the generator's zero-noise output and no gradient clip: ≥ 300 at 150k on tuning seeds 17, 20, 23 and benchmark
    # seeds 0, 1, 2, 4 (median 339.8 over 0-4 against SAC's 334.0), where the 64 × 4 preset before it (sessions 22-30)
    # ended ≥ 300 on one of the eight, benchmark seed 3, where this one ended at 114.6 (swimmer_ugan_b256.md;
    # swimmer_tuning.md, session 31)
    ("Swimmer", "ugan"): dict(SAC_STYLE, proposal="generator", shared_bridge_step=True, bridge_anchor=True,
                              sampler_grad_clip=0.0, sampler_batch_size=256, sampler_particles=1),
}
# SAC's actor inside SoftQ (the control of swimmer_gaussian.md): everything of the preset but the sampler family
# and its objective, SAC's tanh-Gaussian trained by reverse KL on all 256 states of the minibatch, one sample each
SAMPLER_DEFAULTS["Swimmer", "gaussian"] = dict(SAC_STYLE, proposal="generator", sampler_batch_size=256)
# The same preset without the U-GAN's critic D, Swimmer's default since the pre-registered ten-seed sitting
# swimmer_nocritic.md (session 45): >= 300 at 150k on 5 of 10 benchmark seeds, as with D, at 1.14x SAC's wall
# seconds per step against 1.32-1.51x with D
SAMPLER_DEFAULTS["Swimmer", "ugan-nocritic"] = SAMPLER_DEFAULTS["Swimmer", "ugan"]
# The MAF policy: as many goals and episodes reaching one as the U-GAN on MultiGoal-v0, the same Swimmer-v4 returns
# at SQL's settings (medians 41.8 against 54.2 on seeds 0-2, both on the slow gait in two seeds), at 0.5-0.6x the
# U-GAN's wall time per step (benchmarks/results/samplers.md, swimmer.md; issue 8). SoftQ() itself keeps the paper's
# U-GAN. Swimmer-v4 keeps a U-GAN, whose preset is the configuration benchmarked against SAC (issue 4: ≥ 300 at 150k
# on 13 of 20 runs, SAC 18 of 20 on the same seeds (session 43); the MAF preset: 3 of 5 tuning seeds), without its
# critic D since session 45 (above).
DEFAULT_SAMPLER = "maf"
ENV_SAMPLERS = {"Swimmer": "ugan-nocritic"}


def default_sampler(env_id: str) -> str:
    """The sampler a SoftQ run on ``env_id`` uses when --sampler is not given."""
    return ENV_SAMPLERS.get(env_id.split("-")[0], DEFAULT_SAMPLER)


def env_defaults(env_id: str) -> dict:
    return ENV_DEFAULTS.get(env_id.split("-")[0], FALLBACK)


def softq_defaults(env_id: str, sampler: str) -> dict:
    """What a SoftQ run uses for every flag left unset: SQL's soft value, the environment's γ and reward scale, then
    the (environment, sampler) preset, if any."""
    return {**SOFTQ_BASE, **env_defaults(env_id), **SAMPLER_DEFAULTS.get((env_id.split("-")[0], sampler), {})}


def presets_text() -> str:
    return "; ".join(f"{env} with {sampler}: " + ", ".join(f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                                          for k, v in preset.items())
                     for (env, sampler), preset in SAMPLER_DEFAULTS.items())


# flags with no default that a resumed run still reads; every other such flag is a setting the checkpoint keeps
RESUME_READS = ("sampler", "seed", "buffer_size", "resume", "replay_buffer")
SOFTQ_ONLY = ("sampler", "reward_scale", "tau", "target_entropy", "value_particles", "value_qmc", "proposal",
              "schedule", "lambda0", "policy_delay", "sampler_steps", "sampler_particles", "sampler_batch_size", "bridge_anchor", "sampler_grad_clip", "generator_lr",
              "generator_hidden", "generator", "shared_bridge_step", "critic_pessimism", "sampler_loss_tau",
              "temperature_grad_clip", "exact_density", "bridge_steps")


def build_parser() -> argparse.ArgumentParser:
    defaults = "; ".join(f"{k}: γ={v['gamma']}, reward scale {v['reward_scale']}" for k, v in ENV_DEFAULTS.items())
    p = argparse.ArgumentParser(
        prog="train_rl.py",
        description="Soft Q-learning with an amortized sampler policy (the U-GAN on Swimmer, a MAF elsewhere by default, "
        "or SVGD, ...; an SB3 "
        "off-policy algorithm); "
        "--algo sac|td3 runs SB3's baselines (rl-baselines3-zoo's Swimmer-v4 settings) on the same footing.",
        epilog=f"Per-environment defaults ({defaults}; others: γ=0.99, reward scale 1); SQL's soft value (τ 1, M = 16 "
        f"uniform particles, policy delay 1) unless a preset for the environment and sampler says otherwise "
        f"({presets_text()}).",
    )
    p.add_argument("--env", default="Swimmer-v4", help="gymnasium id with a Box action space (default Swimmer-v4)")
    p.add_argument("--algo", default="softq", help="softq (default), or the SB3 baselines sac, td3")
    p.add_argument("--sampler", default=None, help="softq's policy sampler: ugan, ugan-nocritic, ugan-oneway, maf, "
                   f"svgd, gaussian (SAC's actor; default {', '.join(f'{v} on {k}' for k, v in ENV_SAMPLERS.items())}, {DEFAULT_SAMPLER} "
                   "elsewhere; the README's 'Which sampler?' says why)")
    p.add_argument("--steps", type=int, default=200_000, help="environment steps in all (default 200000)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the networks, the replay sampling and the environments (default 0; with --resume, the "
                        "checkpoint's: another seed continues it as a new draw from the same state)")
    p.add_argument("--logdir", default="runs", help="root of the run folders (default runs)")
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between deterministic evaluations")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--checkpoint-every", type=int, default=25_000, help="env steps between checkpoints")
    p.add_argument("--gamma", type=float, default=None, help="discount (default: per environment)")
    p.add_argument("--reward-scale", type=float, default=None, help="reward multiplier (default: per environment)")
    p.add_argument("--tau", default=None,
                   help="Boltzmann temperature τ of exp(Q/τ), or auto / auto_<τ0>: τ learned as SAC's entropy "
                   "coefficient, toward --target-entropy (default 1, or a preset's; see below)")
    p.add_argument("--target-entropy", type=float, default=None, help="entropy a learned τ aims at (default −dim(A), SAC's)")
    p.add_argument("--temperature-grad-clip", type=float, default=None, metavar="C",
                   help="bound per action dimension on a learned τ's gradient, so that one log-density spike cannot "
                        "freeze τ through Adam's second moment (default 50, above anything SAC's log π gives; 0: none)")
    p.add_argument("--polyak", type=float, default=None, help="target-critic Polyak coefficient (default 0.005)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of Q networks and sampler (default 3e-4)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 128 or a preset's; sac/td3: zoo's)")
    p.add_argument("--buffer-size", type=int, default=None,
                   help="replay buffer slots (default min(1000000, --steps): every transition fits, and a checkpoint "
                   "does not pickle a million empty slots; a resumed run keeps its checkpoint's, enlarged when this is more)")
    p.add_argument("--learning-starts", type=int, default=None, help="random steps before training (default: per env)")
    p.add_argument("--net-arch", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="hidden widths of the Q networks (default 128 128 or a preset's; sac/td3: of actor and critics, zoo's)")
    p.add_argument("--n-critics", type=int, default=None, metavar="N",
                   help="Q networks; the soft Bellman target takes their minimum (default 2, SAC's; sac/td3 too)")
    p.add_argument("--critic-pessimism", type=float, default=None, metavar="C",
                   help="the soft value and the sampler's target take mean − C·std over the Q networks instead of their "
                        "minimum (C = 1 is the minimum for two; above 1, more pessimistic; default: the minimum)")
    p.add_argument("--value-particles", type=int, default=None, help="M, particles of the soft value (default 16 or a preset's)")
    p.add_argument("--proposal", default=None, help="soft-value proposal: uniform, bridge (the MAF bridge), generator (the sampler's own samples and density; not svgd) "
                   "or fitted (a MAF fitted to exp(Q/τ) by forward KL on the soft value's particles) "
                   "(default uniform or a preset's)")
    p.add_argument("--value-qmc", action="store_true", default=None,
                   help="draw the soft value's uniform or bridge particles as randomized Sobol points: the same "
                        "estimate on average, with a lower variance (benchmarks/results/soft_value.md)")
    p.add_argument("--policy-delay", type=int, default=None,
                   help="update the sampler after every N-th Q update (TD3's delay; default 1)")
    p.add_argument("--sampler-steps", type=int, default=None, metavar="N",
                   help="sampler (and τ) steps per sampler update, the extra ones on fresh minibatches (default 1)")
    p.add_argument("--schedule", default=None, help="annealing schedule of the U-GAN/MAF sampler (default nma or a preset's)")
    p.add_argument("--lambda0", type=float, default=None, help="λ0 of the annealing schedule (default -0.5)")
    p.add_argument("--sampler-particles", type=int, default=None, metavar="K",
                   help="samples per state in each U-GAN/MAF/gaussian sampler update (default 8, gaussian 1, or a preset's)")
    p.add_argument("--sampler-batch-size", type=int, default=None, metavar="N",
                   help="states of each Q minibatch that the sampler update uses (default 64 or a preset's, at most "
                   "--batch-size)")
    p.add_argument("--bridge-anchor", action=argparse.BooleanOptionalAction, default=None,
                   help="U-GAN samplers: anchor the MAF bridge at the generator's zero-noise output, "
                        "ν(a|s) = ν0(a − G(0; s) | s) (default off or a preset's)")
    p.add_argument("--bridge-steps", type=int, default=None, metavar="N",
                   help="U-GAN samplers: MLE steps of the MAF bridge per generator step, a shared one counted "
                        "(default 1 in RL)")
    p.add_argument("--shared-bridge-step", action=argparse.BooleanOptionalAction, default=None,
                   help="U-GAN samplers: take the bridge's MLE step from the generator's own backward, on the "
                        "generator's samples (one MAF pass fewer per update; default off or a preset's)")
    p.add_argument("--sampler-loss-tau", action="store_true", default=None,
                   help="every sampler but svgd: multiply the sampler's loss E[log π − Q/τ] (a U-GAN's generator loss) "
                        "by τ; with gaussian each step is then SB3's SAC actor step (default off: same minimizer, a "
                        "scale that grows as τ falls)")
    p.add_argument("--sampler-grad-clip", type=float, default=None, metavar="NORM",
                   help="gradient-norm clip of each sampler network's step (default 10 or a preset's; 0: none). The sampler's loss is "
                        "in units of Q/τ, so with a learned τ of 0.01 its gradients are about 100 times SAC's actor's")
    p.add_argument("--generator-lr", type=float, default=None, metavar="LR",
                   help="U-GAN samplers: learning rate of the generator alone (default --lr); its critic and MAF "
                        "bridge keep --lr")
    p.add_argument("--generator-hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="U-GAN samplers: hidden widths of the generator, the policy network (default 128 128; SAC's "
                        "actor is 256 256)")
    p.add_argument("--generator", default=None, metavar="KIND",
                   help="ugan and ugan-nocritic: the generator's family, mlp (the paper's noise-input MLP, default) or "
                        "gaussian (SAC's μ(s) + σ(s)·z, trained by the same U-GAN losses: an ablation of the family)")
    p.add_argument("--exact-density", default=None, metavar="WHERE",
                   help="with --generator gaussian, an ablation: where the generator's exact log g replaces the U-GAN's "
                        "estimate log ν + D: none (default), loss (the generator's loss; the bridge then takes its own "
                        "MLE steps, no shared step), density (soft value and temperature), both")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--resume", default=None, metavar="PATH", help="checkpoint .zip to continue from")
    p.add_argument("--replay-buffer", default=None, metavar="PATH",
                   help="with --resume: continue with this saved replay buffer (.pkl) instead of the one beside the "
                        "checkpoint, e.g. another run's, to tell what a run's networks carry from what its data does")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def validate(args: argparse.Namespace) -> None:
    from agents.baselines import ZOO
    from agents.policies import LOSS_WEIGHT_SAMPLERS, SAMPLERS
    from agents.softq import PROPOSALS
    from softq_ugan.gan.schedules import SCHEDULES
    from softq_ugan.ugan import EXACT_DENSITY, EXACT_IN_LOSS, GENERATORS

    if args.algo not in ("softq", *ZOO):
        fail(f"unknown algo '{args.algo}'; choose one of: softq, {', '.join(ZOO)}")
    if args.algo != "softq":
        given = [n for n in SOFTQ_ONLY if getattr(args, n) is not None]
        if given:
            fail(f"--{given[0].replace('_', '-')} applies to --algo softq only, not {args.algo}")
    if args.steps <= 0:
        fail(f"--steps must be positive, got {args.steps}")
    check_args(seeds={"--seed": args.seed})
    for name in ("eval_every", "checkpoint_every", "batch_size", "buffer_size", "value_particles", "eval_episodes",
                 "policy_delay", "sampler_steps", "sampler_particles", "sampler_batch_size", "n_critics", "bridge_steps"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.sampler_grad_clip is not None and not args.sampler_grad_clip >= 0:
        fail(f"--sampler-grad-clip must be >= 0 (0: no clip), got {args.sampler_grad_clip}")
    if args.critic_pessimism is not None and not (math.isfinite(args.critic_pessimism) and args.critic_pessimism >= 0):
        fail(f"--critic-pessimism must be a finite number >= 0, got {args.critic_pessimism}")
    for name in ("net_arch", "generator_hidden"):
        widths = getattr(args, name)
        if widths is not None and min(widths) <= 0:
            fail(f"--{name.replace('_', '-')} widths must be positive, got {' '.join(map(str, widths))}")
    if args.lr is not None and not args.lr > 0:
        fail(f"--lr must be positive, got {args.lr}")
    if args.generator_lr is not None and not args.generator_lr > 0:
        fail(f"--generator-lr must be positive, got {args.generator_lr}")
    if args.tau is not None:
        from agents.softq import parse_temperature

        try:
            learned, _ = parse_temperature(args.tau)
        except ValueError:
            fail(f"--tau must be a positive number, auto or auto_<initial τ>, got {args.tau!r}")
        if learned and args.sampler == "svgd":
            fail("--tau auto needs a sampler with a density; svgd has none")
    tau = args.tau or softq_defaults(args.env, args.sampler or default_sampler(args.env))["tau"]
    if args.target_entropy is not None and not tau.startswith("auto"):
        fail("--target-entropy applies to a learned temperature only (--tau auto)")
    if args.temperature_grad_clip is not None:
        if not (math.isfinite(args.temperature_grad_clip) and args.temperature_grad_clip >= 0):
            fail(f"--temperature-grad-clip must be a finite number >= 0 (0: no bound), got {args.temperature_grad_clip}")
        if not tau.startswith("auto"):
            fail("--temperature-grad-clip applies to a learned temperature only (--tau auto)")
    if args.sampler is not None and args.sampler not in SAMPLERS:
        fail(f"unknown sampler '{args.sampler}'; choose one of: {', '.join(sorted(SAMPLERS))}")
    if args.proposal is not None and args.proposal not in PROPOSALS:
        fail(f"unknown proposal '{args.proposal}'; choose one of: {', '.join(PROPOSALS)}")
    if args.schedule is not None and args.schedule not in SCHEDULES:
        fail(f"unknown schedule '{args.schedule}'; choose one of: {', '.join(SCHEDULES)}")
    if (args.schedule is not None or args.lambda0 is not None) and args.sampler == "svgd":
        fail("--schedule and --lambda0 apply to the U-GAN and MAF samplers, not svgd")
    if args.sampler_particles is not None and args.sampler == "svgd":
        fail("--sampler-particles applies to the U-GAN and MAF samplers, not svgd (SQL's 8 + 8 particles)")
    sampler = args.sampler or default_sampler(args.env)
    for name in ("bridge_anchor", "shared_bridge_step", "generator_lr", "generator_hidden", "bridge_steps"):
        if getattr(args, name) is not None and not sampler.startswith("ugan"):
            fail(f"--{name.replace('_', '-')} applies to the U-GAN samplers, not {sampler}")
    if args.generator is not None:
        kinds = [g for g in GENERATORS if g != "oneway"]  # the one-way flow is its own sampler, ugan-oneway
        if args.generator not in kinds:
            fail(f"unknown generator '{args.generator}'; choose one of: {', '.join(kinds)} (ugan-oneway is the one-way flow)")
        if sampler not in ("ugan", "ugan-nocritic"):
            fail(f"--generator applies to ugan and ugan-nocritic, not {sampler}")
    if args.exact_density is not None:
        if args.exact_density not in EXACT_DENSITY:
            fail(f"unknown --exact-density '{args.exact_density}'; choose one of: {', '.join(EXACT_DENSITY)}")
        if args.generator != "gaussian":
            fail("--exact-density applies with --generator gaussian only (the one generator with an exact density)")
        if args.exact_density in EXACT_IN_LOSS and args.shared_bridge_step:
            fail(f"--exact-density {args.exact_density} leaves log ν out of the generator's loss: drop --shared-bridge-step")
    if args.sampler_loss_tau and sampler not in LOSS_WEIGHT_SAMPLERS:
        fail(f"--sampler-loss-tau applies to the samplers with a loss ({', '.join(LOSS_WEIGHT_SAMPLERS)}), not {sampler}")
    if args.resume and not Path(args.resume).is_file():
        fail(f"checkpoint '{args.resume}' does not exist")
    if args.replay_buffer is not None:
        if not args.resume:
            fail("--replay-buffer applies with --resume only")
        if not Path(args.replay_buffer).is_file():
            fail(f"replay buffer '{args.replay_buffer}' does not exist")


def hyperparameter_table(config: dict) -> str:
    return "| parameter | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in config.items())


def buffer_size(args: argparse.Namespace) -> int:
    """Replay buffer slots the command line asks for: --buffer-size, else every step of the run (at most a million)."""
    return args.buffer_size or min(1_000_000, args.steps)


def build_model(args: argparse.Namespace, env):
    """A fresh SoftQ (or SB3 baseline) from the command line, the environment's defaults and the presets."""
    from agents.baselines import make_sb3
    from agents.softq import SoftQ
    from softq_ugan.ugan import EXACT_IN_LOSS

    if args.seed is None:  # parsed, not through main(): a fresh run's default
        args.seed = 0
    common = {key: getattr(args, name) for key, name in (
        ("gamma", "gamma"), ("learning_starts", "learning_starts"), ("learning_rate", "lr"),
        ("batch_size", "batch_size"), ("tau", "polyak")) if getattr(args, name) is not None}
    common["buffer_size"] = buffer_size(args)
    net_arch = {} if args.net_arch is None else dict(net_arch=list(args.net_arch))
    n_critics = {} if args.n_critics is None else dict(n_critics=args.n_critics)
    if args.algo != "softq":  # the zoo's settings, but for what the command line names
        if net_arch or n_critics:
            common["policy_kwargs"] = {**net_arch, **n_critics}
        model = make_sb3(args.algo, env, args.seed, device=args.device, **common)
        return model, dict(gamma=model.gamma, learning_rate=model.learning_rate, batch_size=model.batch_size,
                           learning_starts=model.learning_starts, tau=model.tau, buffer_size=model.buffer_size,
                           **net_arch, **n_critics)
    preset = softq_defaults(args.env, args.sampler)
    common.setdefault("gamma", preset["gamma"])
    common.setdefault("learning_starts", preset["learning_starts"])

    def pick(name: str):  # the flag if given, else the environment's / preset's default (None: SoftQ's own)
        return getattr(args, name) if getattr(args, name) is not None else preset.get(name)

    if pick("batch_size") is not None:
        common["batch_size"] = pick("batch_size")
    if pick("sampler_batch_size") is not None:
        common["sampler_batch_size"] = pick("sampler_batch_size")
    net_arch = {} if pick("net_arch") is None else dict(net_arch=list(pick("net_arch")))
    sampler_kwargs = {k: pick(k) for k in ("schedule", "lambda0", "bridge_anchor", "shared_bridge_step")
                      if pick(k) is not None}
    if pick("sampler_grad_clip") is not None:
        sampler_kwargs["max_grad_norm"] = pick("sampler_grad_clip") or None  # 0: no clip
    if args.generator_lr is not None:
        sampler_kwargs["lr_generator"] = args.generator_lr  # the U-GAN config's; its critic and bridge keep --lr
    if args.generator_hidden is not None:
        sampler_kwargs["generator_hidden"] = tuple(args.generator_hidden)
    if args.generator is not None:
        sampler_kwargs["generator"] = args.generator
    if args.bridge_steps is not None:
        sampler_kwargs["bridge_steps"] = args.bridge_steps
    if args.exact_density is not None:
        sampler_kwargs["exact_density"] = args.exact_density
        if args.exact_density in EXACT_IN_LOSS:  # no log ν in the loss: the bridge takes all its steps itself
            sampler_kwargs["shared_bridge_step"] = False
    if pick("sampler_particles") is not None:
        sampler_kwargs["batch_size"] = pick("sampler_particles")  # the U-GAN/MAF configs' samples per context
    tau = str(pick("tau"))
    config = dict(sampler=args.sampler, temperature=tau if tau.startswith("auto") else float(tau),
                  **({} if args.target_entropy is None else dict(target_entropy=args.target_entropy)),
                  **({} if args.temperature_grad_clip is None else
                     dict(temperature_grad_clip=args.temperature_grad_clip or None)),  # 0: no bound
                  **({} if not args.value_qmc else dict(value_qmc=True)),
                  **({} if not args.sampler_loss_tau else dict(sampler_loss_tau=True)),
                  reward_scale=pick("reward_scale"), value_particles=pick("value_particles"), proposal=pick("proposal"),
                  policy_delay=pick("policy_delay"),
                  **({} if args.sampler_steps is None else dict(sampler_steps=args.sampler_steps)), **common)
    critics = dict(n_critics)
    if args.critic_pessimism is not None:  # no preset sets it
        critics["critic_pessimism"] = args.critic_pessimism
    policy_kwargs = {**(dict(sampler_kwargs=sampler_kwargs) if sampler_kwargs else {}), **net_arch, **critics}
    model = SoftQ("MlpPolicy", env, seed=args.seed, device=args.device, policy_kwargs=policy_kwargs or None, **config)
    if args.sampler_batch_size is not None and args.sampler_batch_size > model.batch_size:
        raise ValueError(f"--sampler-batch-size {args.sampler_batch_size} exceeds the Q minibatch ({model.batch_size}) "
                         "that it takes its states from")
    recorded = {**config, **{k: v for k, v in sampler_kwargs.items() if k != "batch_size"}, **net_arch, **critics}
    recorded["sampler_batch_size"] = model.sampler_states  # the states each update uses
    if "batch_size" in sampler_kwargs:  # not under "batch_size", which is the minibatch of the Q updates
        recorded["sampler_particles"] = sampler_kwargs["batch_size"]
    return model, recorded


def default_model(env_id: str, env, algo: str, seed: int, steps: int, flags: Sequence[str] = ()):
    """The model ``train_rl.py --env <env_id> --seed <seed> --steps <steps> [flags]`` builds for ``algo``
    ("softq-<sampler>", "sac", "td3"): benchmarks run exactly the command line's defaults (no ``flags``)."""
    algo_flags = ["--sampler", algo.removeprefix("softq-")] if algo.startswith("softq-") else ["--algo", algo]
    args = build_parser().parse_args(["--env", env_id, "--seed", str(seed), "--steps", str(steps), *algo_flags, *flags])
    validate(args)
    return build_model(args, env)[0]


def replay_buffer_candidates(checkpoint: Path) -> list[Path]:
    """Where a checkpoint's replay buffer is saved: ``<name>_replay_buffer.pkl`` beside ``<name>.zip`` (last.zip,
    eval.zip), or SB3's ``<prefix>_replay_buffer_<N>_steps.pkl`` beside ``<prefix>_<N>_steps.zip``."""
    stem = checkpoint.name.removesuffix(".zip")
    candidates = [checkpoint.with_name(f"{stem}_replay_buffer.pkl")]
    prefix, sep, rest = stem.rpartition("_")
    if sep and rest == "steps":
        prefix, sep, step = prefix.rpartition("_")
        if sep and step.isdigit():
            candidates.insert(0, checkpoint.with_name(f"{prefix}_replay_buffer_{step}_steps.pkl"))
    return candidates


def read_config(run_dir: Path) -> dict:
    """A train_rl.py run folder's config.json ({} when there is none)."""
    path = run_dir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def resumed_config(run_dir: Path, checkpoint: Path, seed: int, steps: int) -> dict:
    """The config a resumed run records: its own folder's, or for a new folder (a fork with another --seed) that of
    the run the checkpoint came from (``<run>/checkpoints/<name>.zip``), with this run's seed and steps and
    ``resumed_from`` naming the checkpoint."""
    config = read_config(run_dir)
    if not config:
        config = read_config(checkpoint.resolve().parent.parent)
        config["resumed_from"] = str(checkpoint)
    if config.keys() - {"resumed_from"}:  # settings known: this run's seed and steps beside them
        config.update(seed=seed, steps=steps)
    config.setdefault("builds", [{}])  # the checkpoint's stretch ran before builds were recorded: {} is "not recorded"
    return config


def with_build(builds: list[dict] | None) -> list[dict]:
    """A run's ``builds`` record with this sitting's :func:`build_info` added where it differs from the last one: the
    software each stretch of the run computed with (a rerun on another build is another run)."""
    build = build_info()
    builds = list(builds or [])
    return builds if builds and builds[-1] == build else [*builds, build]


def keep_progress(run_dir: Path, step: int) -> None:
    """Move a run folder's ``progress.csv`` to ``progress_before_<step>.csv`` (``step``: where the resumed stretch
    starts) so that the new stretch's CSV logger does not overwrite it. ``benchmarks/runs_table.py`` reads the pieces
    back as one log."""
    old = run_dir / "progress.csv"
    if not old.is_file() or old.stat().st_size == 0:
        return
    kept = run_dir / f"progress_before_{step}.csv"
    n = 1
    while kept.exists():  # resumed twice from the same step: keep both
        kept, n = run_dir / f"progress_before_{step}_{n}.csv", n + 1
    old.rename(kept)


def enlarge_replay_buffer(model, size: int) -> bool:
    """Give ``model`` a replay buffer of ``size`` slots holding its current transitions, oldest first (a resumed run
    that asks for more steps than its checkpoint's buffer has slots keeps every transition). Returns False, changing
    nothing, when the buffer already has that many slots or stores next observations in place
    (``optimize_memory_usage``)."""
    import numpy as np

    buf = model.replay_buffer
    old, slots = buf.buffer_size, max(size // buf.n_envs, 1)  # SB3 counts a buffer's slots per environment
    if slots <= old or getattr(buf, "optimize_memory_usage", False):
        return False
    order = np.r_[buf.pos:old, 0:buf.pos] if buf.full else np.arange(buf.pos)
    for name, value in list(vars(buf).items()):  # every per-slot array: observations, actions, rewards, dones, ...
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == old:
            grown = np.zeros((slots, *value.shape[1:]), dtype=value.dtype)
            grown[: len(order)] = value[order]
            setattr(buf, name, grown)
    buf.buffer_size, buf.pos, buf.full = slots, len(order), False
    model.buffer_size = size
    return True


def checkpoint_seed(path: str) -> int:
    """The seed an SB3 checkpoint .zip was trained with (0 where it recorded none or cannot be read; loading it then
    gives the real error)."""
    try:
        seed = checkpoint_data(path).get("seed")
    except (OSError, ValueError):
        return 0
    return seed if isinstance(seed, int) else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    if args.seed is None:
        args.seed = checkpoint_seed(args.resume) if args.resume else 0
    sampler_given = args.sampler is not None
    if args.algo == "softq" and not sampler_given:
        args.sampler = default_sampler(args.env)
    import numpy as np
    import torch

    from envs import make_env

    torch.set_num_threads(args.threads)
    try:
        env = make_env(args.env, seed=args.seed)
        eval_env = make_env(args.env, seed=args.seed + 10_000)
    except ValueError as e:
        fail(str(e))

    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import TensorBoardOutputFormat, configure
    from stable_baselines3.common.monitor import Monitor

    from agents.baselines import sb3_class
    from agents.callbacks import ActionDensityCallback, EvalRecorder, GridCheckpoint
    from agents.softq import SoftQ

    env = Monitor(env)
    cls = SoftQ if args.algo == "softq" else sb3_class(args.algo)
    if args.resume:
        try:
            model = cls.load(args.resume, env=env, device=args.device)
        except Exception as e:  # another algorithm's checkpoint, a truncated file, another env's spaces
            fail(f"cannot resume {args.algo} from {args.resume}: {error_line(e)}")
        if args.algo == "softq":  # the checkpoint's sampler names the run folder, whatever the default
            if sampler_given and args.sampler != model.sampler:
                fail(f"{args.resume} was trained with --sampler {model.sampler}, not {args.sampler}")
            args.sampler = model.sampler
        unset = vars(build_parser().parse_args([]))  # a flag left at None is a setting the model would resolve
        kept = [f"--{n.replace('_', '-')}" for n, v in unset.items()
                if v is None and n not in RESUME_READS and getattr(args, n) is not None]
        if kept:
            print(f"note: {' '.join(kept)} not applied: a resumed run keeps its checkpoint's settings (start a new "
                  f"run, or write the checkpoint with other settings: benchmarks/splice_checkpoint.py CKPT --set KEY=VALUE)", file=sys.stderr)
        if model.seed != args.seed:  # a fork: the same state, the new seed's random streams from here on
            print(f"continuing a seed-{model.seed} checkpoint with --seed {args.seed}: a new draw from its state",
                  file=sys.stderr)
            model.seed = args.seed
            model.set_random_seed(args.seed)
    name = args.sampler if args.algo == "softq" else args.algo
    label = f"softq-{args.sampler}" if args.algo == "softq" else args.algo
    run_dir = Path(args.logdir) / args.env / f"{name}_{args.seed}"
    ckpt_dir = run_dir / "checkpoints"
    if args.resume:
        candidates = [Path(args.replay_buffer)] if args.replay_buffer else replay_buffer_candidates(Path(args.resume))
        buffer = next((b for b in candidates if b.is_file()), None)
        if buffer is not None:
            try:
                model.load_replay_buffer(buffer)
            except Exception as e:  # not a pickled buffer, another env's shapes
                fail(f"cannot load replay buffer {buffer}: {error_line(e)}")
            if args.replay_buffer:  # another run's buffer: its shapes must fit, and its size is now the model's
                shape = getattr(model.replay_buffer.observations, "shape", (None, None))[2:]
                if shape != env.observation_space.shape:
                    fail(f"replay buffer {buffer} holds observations of shape {shape}, not {env.observation_space.shape}")
                model.buffer_size = model.replay_buffer.buffer_size * model.replay_buffer.n_envs
            whose = f"the replay buffer {buffer}" if args.replay_buffer else "its replay buffer"
            print(f"resumed from {args.resume} at step {model.num_timesteps} with {whose} "
                  f"({model.replay_buffer.size()} transitions)", file=sys.stderr)
        else:
            print(f"resumed from {args.resume} at step {model.num_timesteps} WITHOUT a replay buffer (none of "
                  f"{', '.join(b.name for b in candidates)} beside it): training restarts from an empty one", file=sys.stderr)
        wanted = buffer_size(args)
        if wanted > model.buffer_size:
            slots = model.buffer_size
            if enlarge_replay_buffer(model, wanted):
                print(f"the checkpoint's replay buffer had {slots} slots (its run's --buffer-size); enlarged to "
                      f"{wanted}, its transitions kept", file=sys.stderr)
            else:
                print(f"note: the checkpoint's replay buffer has {slots} slots and cannot be enlarged (it stores next "
                      f"observations in place): the oldest transitions will be overwritten", file=sys.stderr)
        config = resumed_config(run_dir, Path(args.resume), args.seed, args.steps)
        if args.replay_buffer:
            config["replay_buffer_from"] = str(args.replay_buffer)
        if "buffer_size" in config:
            config["buffer_size"] = model.buffer_size
    else:
        try:  # combinations only the agent can judge (e.g. --proposal bridge with a sampler that has no bridge)
            model, config = build_model(args, env)
        except ValueError as e:
            fail(str(e))
        config = dict(env=args.env, algo=args.algo, steps=args.steps, seed=args.seed, device=args.device, **config)
    config["builds"] = with_build(config.get("builds"))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if args.resume:  # SB3's CSV logger starts progress.csv afresh: the earlier stretches' rows are kept beside it
        keep_progress(run_dir, model.num_timesteps)
    logger = configure(str(run_dir), ["csv", "tensorboard"])
    model.set_logger(logger)
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_text("hyperparameters", hyperparameter_table(config), model.num_timesteps)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))

    recorder = EvalRecorder(Monitor(eval_env), run_dir, label, args.seed, eval_freq=args.eval_every,
                            n_eval_episodes=args.eval_episodes,
                            resume_step=model.num_timesteps if args.resume else None)
    callbacks = [recorder, GridCheckpoint(args.checkpoint_every, str(ckpt_dir), name_prefix=name,
                                          save_replay_buffer=True)]
    if args.algo == "softq":
        if args.env.startswith("MultiGoal"):  # the SQL paper's picture: multimodal actions at the origin
            states, titles = np.array([[0.0, 0.0], [2.5, 0.0], [2.5, 2.5]], np.float32), ["s=(0,0)", "s=(2.5,0)", "s=(2.5,2.5)"]
        else:
            states, titles = eval_env.reset(seed=args.seed)[0][None].astype(np.float32), ["initial state"]
        callbacks.insert(0, ActionDensityCallback(states, log_every=args.eval_every, titles=titles))

    def save(name: str) -> Path:
        path = ckpt_dir / f"{name}.zip"
        model.save(path)
        model.save_replay_buffer(ckpt_dir / f"{name}_replay_buffer.pkl")
        return path

    def on_sigterm(signum, frame):  # SIGTERM behaves like Ctrl-C: checkpoint and flush (once, however many come)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    remaining = args.steps - model.num_timesteps
    start, status = time.time(), 0
    try:
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=not args.resume,
                        progress_bar=not args.quiet, log_interval=1)
        path = save("last")
        print(f"done: {model.num_timesteps} steps in {time.time() - start:.0f}s; checkpoint {path}", file=sys.stderr)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not tear the checkpoint
        path = save("last")
        recorder.pause()
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
