"""Where the SoftQ-UGAN training step spends its time, beside SoftQ-SVGD's and SB3 SAC's (issue 4, item 4).

    python benchmarks/profile_softq.py                 # Swimmer-v4, 200 gradient steps each, one thread
    python benchmarks/profile_softq.py --preset --agents ugan sac --no-profile   # train_rl.py's Swimmer defaults
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan/2 --sampler-particles 1 --no-profile
    python benchmarks/profile_softq.py --preset --agents sac ugan --sampler-particles 1 --sampler-batch-size 256 --no-profile
    python benchmarks/profile_softq.py --preset --agents ugan+old ugan+old+anchor --no-profile   # --bridge-anchor alone
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan+unshared sac --no-profile   # --no-shared-bridge-step
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan+critics3 sac --no-profile   # --n-critics 3
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan+old sac ugan ugan+old --no-profile   # 256 x 1 vs 64 x 4
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan+ss2 sac ugan ugan+ss2 --no-profile   # --sampler-steps 2
    python benchmarks/profile_softq.py --preset --agents sac ugan --no-profile --ops 12   # torch profiler: per-op time
    python benchmarks/profile_softq.py --preset --agents ugan --no-profile --parts        # soft value vs sampler update
    python benchmarks/profile_softq.py --preset --agents sac ugan ugan-nocritic --no-profile  # the preset without D
    python benchmarks/profile_softq.py --preset --agents sac ugan-nocritic ugan-nocritic+gauss+gen256 --no-profile  # SAC's family

Each agent collects a few hundred Swimmer-v4 steps, then ``train(gradient_steps=N)`` is timed (ms per
gradient step: the cost that dominates wall time per env step, one update per step); the U-GAN's is
then run again under cProfile and the top entries by cumulative time are printed. ``--ops N`` runs each agent's
steps once more under the torch profiler and prints its N costliest operators by their own CPU time, with the share
of matrix products (what the networks' sizes fix) against everything else (per-operator overhead, elementwise work).
``--parts`` times a SoftQ agent's soft value V(s') (and, within it, the proposal's sampling and density pass) and
its sampler update alone, on one fixed minibatch, beside its whole step: what merging or cutting either could save.
Every time is also given as the process's CPU time, which grows far less than wall time when more processes than
cores share the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


PRESET_FLAGS = ("sampler_particles", "sampler_batch_size")  # passed on to train_rl.py's flags of the same names

# --agents ugan+<name>: train_rl.py's flags (the Swimmer preset takes the shared bridge step from session 22 on, and
# anchor + noclip + b256 from session 31 on)
MODIFIERS = {"anchor": ["--bridge-anchor"], "shared": ["--shared-bridge-step"], "unshared": ["--no-shared-bridge-step"],
             "critics3": ["--n-critics", "3"], "noclip": ["--sampler-grad-clip", "0"],
             "ss2": ["--sampler-steps", "2"],  # two sampler and τ steps per Q step (session 38)
             "b256": ["--sampler-batch-size", "256", "--sampler-particles", "1"],  # b256: SAC's actor batch, 256 × 1
             "gen256": ["--generator-hidden", "256", "256"],  # SAC's actor widths for the generator
             "gauss": ["--generator", "gaussian"],  # SAC's family as the generator (session 50)
             # old: the preset of sessions 22-30 (64 states × 4 samples, the 10-norm clip, no anchor)
             "old": ["--no-bridge-anchor", "--sampler-grad-clip", "10", "--sampler-batch-size", "64",
                     "--sampler-particles", "4"]}


MATMUL = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm")  # the matrix products of the linear layers


def preset_flags(preset: dict) -> list[str]:
    """train_rl.py's flags that set a preset's values (``{"bridge_anchor": True, "net_arch": [256, 256]}`` →
    ``--bridge-anchor --net-arch 256 256``): how ``--preset`` gives ugan-nocritic the U-GAN's Swimmer preset, which
    train_rl.py keys on the sampler ``ugan`` alone."""
    flags = []
    for key, value in preset.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, *map(str, value if isinstance(value, list) else [value])]
    return flags


def cpu_ms(fn, repeats: int) -> float:
    """CPU ms per call of ``fn`` (one call first, untimed)."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return 1000 * (time.process_time() - start) / repeats


def parts_line(model, repeats: int, name: str) -> str:
    """A SoftQ agent's step in parts, CPU ms each, on one fixed minibatch: the whole gradient step, the soft value V(s')
    with the sampler's own pass (sampling and log-density) inside it for the "generator" proposal, and one sampler step
    (the τ step apart); each call trains the model on, as its step would."""
    data = model.replay_buffer.sample(model.batch_size)
    p = model.policy
    with torch.no_grad():
        value = cpu_ms(lambda: model._soft_value_particles(data.next_observations), repeats)
        inside = "" if model.proposal != "generator" else (  # the sampler's own samples and density (log ν + D)
            f" (of it the sampler's samples and log-density: "
            f"{cpu_ms(lambda: p.sample_and_log_prob(model.value_particles, p.context(data.next_observations)), repeats):.2f})")
    step = cpu_ms(lambda: model.train(gradient_steps=1, batch_size=model.batch_size), repeats)
    sampler = cpu_ms(lambda: model._update_sampler(data.observations[: model.sampler_states]), repeats)
    return (f"{name} in parts (CPU ms, {repeats} repeats): whole gradient step {step:.2f}, soft value with the "
            f"{model.proposal} proposal {value:.2f}{inside}, sampler update {sampler:.2f}")


def operator_table(model, gradient_steps: int, top: int, name: str) -> str:
    """``gradient_steps`` more steps of ``model`` under the torch profiler: the ``top`` operators by own CPU time, as
    a markdown table with ms per gradient step, and a line with the matrix products' share of the total."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train(gradient_steps=gradient_steps, batch_size=model.batch_size)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)  # µs, over every operator and profiler range
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL)
    per_step = 1000 * gradient_steps  # µs → ms per gradient step
    lines = [f"\n{name} under the torch profiler: {total / per_step:.2f} ms of own CPU time per gradient step, "
             f"{matmul / per_step:.2f} ms ({matmul / total:.0%}) in matrix products, {(total - matmul) / per_step:.2f} ms "
             "in everything else\n", "| operator | calls per step | ms per step | share |", "|---|---|---|---|"]
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        lines.append(f"| {e.key} | {e.count / gradient_steps:.1f} | {e.self_cpu_time_total / per_step:.3f} | "
                     f"{e.self_cpu_time_total / total:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gradient-steps", type=int, default=200)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--agents", nargs="+", default=["ugan", "svgd", "sac"],
                   help="sac, or a SoftQ sampler with an optional /N for policy_delay=N (ugan/2); with --preset, "
                        "ugan+anchor (or ugan+anchor/2) adds train_rl.py's --bridge-anchor, ugan+shared its "
                        "--shared-bridge-step (ugan+anchor+shared both), ugan+unshared --no-shared-bridge-step, "
                        "ugan+critics3 --n-critics 3, ugan+noclip --sampler-grad-clip 0, ugan+ss2 --sampler-steps 2, "
                        "ugan+b256 "
                        "--sampler-batch-size 256 --sampler-particles 1 (SAC's actor batch), ugan+old the preset of "
                        "sessions 22-30 (--no-bridge-anchor --sampler-grad-clip 10, 64 states x 4 samples)")
    p.add_argument("--no-profile", action="store_true", help="timings only, no cProfile of the U-GAN")
    p.add_argument("--ops", type=int, default=0, metavar="N",
                   help="also run each agent's steps under the torch profiler: its N costliest operators by own CPU "
                        "time, and the matrix products' share (default 0: off)")
    p.add_argument("--parts", action="store_true",
                   help="also time each SoftQ agent's soft value (with its proposal's own pass) and sampler update alone")
    p.add_argument("--preset", action="store_true",
                   help="build each agent as `train_rl.py --env Swimmer-v4` does (its Swimmer preset), not SoftQ's defaults")
    p.add_argument("--sampler-particles", type=int, default=None, metavar="K",
                   help="with --preset: K samples per state in each SoftQ agent's sampler update (train_rl.py's flag)")
    p.add_argument("--sampler-batch-size", type=int, default=None, metavar="N",
                   help="with --preset: N states of each minibatch in each SoftQ agent's sampler update (train_rl.py's flag)")
    args = p.parse_args()
    torch.set_num_threads(1)
    from stable_baselines3 import SAC

    from agents import SAMPLERS, SoftQ
    from envs import make_env
    from softq_ugan.cli import fail

    if args.ops < 0:
        fail(f"--ops must be >= 0, got {args.ops}")
    for flag in PRESET_FLAGS:
        if getattr(args, flag) is not None and not args.preset:
            fail(f"--{flag.replace('_', '-')} applies with --preset only")
    baselines = ("sac", "td3") if args.preset else ("sac",)  # td3 as train_rl.py builds it
    for name in args.agents:
        sampler, _, delay = name.partition("/")
        base, *mods = sampler.split("+")
        if base not in (*baselines, *SAMPLERS):
            fail(f"--agents {name}: unknown agent '{base}'; choose {' or '.join(baselines)} or a SoftQ sampler: "
                 f"{', '.join(sorted(SAMPLERS))}")
        if mods and not (args.preset and base.startswith("ugan") and set(mods) <= set(MODIFIERS)):
            fail(f"--agents {name}: the modifiers +{' +'.join(MODIFIERS)} apply to a U-GAN sampler with --preset only, e.g. "
                 "ugan+anchor")
        if delay and (sampler in ("sac", "td3") or not delay.isdigit() or int(delay) < 1):
            fail(f"--agents {name}: /N (a policy delay N >= 1) applies to a SoftQ sampler only, e.g. ugan/2")
    env = make_env("Swimmer-v4", seed=0)
    for name in args.agents:
        sampler, _, delay = name.partition("/")
        if args.preset:
            from train_rl import default_model

            softq = sampler not in ("sac", "td3")
            sampler, *mods = sampler.split("+")
            flags = (["--policy-delay", delay] if delay else []) + [f for m in mods for f in MODIFIERS[m]]
            if sampler == "ugan-nocritic":  # the U-GAN's Swimmer preset without its critic D (which reads ≈ 0 there)
                from train_rl import SAMPLER_DEFAULTS

                flags = preset_flags(SAMPLER_DEFAULTS["Swimmer", "ugan"]) + flags
            for flag in PRESET_FLAGS:  # train_rl.py's flags, checked there
                if softq and getattr(args, flag) is not None:
                    flags += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            model = default_model("Swimmer-v4", env, f"softq-{sampler}" if softq else sampler, 0, 150_000, flags)
            model.learning_starts = 300
        elif name == "sac":
            model = SAC("MlpPolicy", env, learning_starts=300, gamma=0.999, seed=0)
        else:
            model = SoftQ("MlpPolicy", env, sampler=sampler, learning_starts=300, gamma=0.999, reward_scale=10.0, seed=0,
                          policy_delay=int(delay or 1))
        model.learn(400)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train(gradient_steps=args.gradient_steps, batch_size=model.batch_size)
        ms = 1000 * (time.perf_counter() - start) / args.gradient_steps
        ms_cpu = 1000 * (time.process_time() - cpu_start) / args.gradient_steps  # grows far less than the wall ms with more processes than cores
        k = getattr(getattr(getattr(model, "sampler_trainer", None), "config", None), "batch_size", None)
        per_state = (f", {k} sample{'s' * (k != 1)} per state of {model.sampler_states} in the sampler step"
                     if k is not None else "")  # the U-GAN's and MAF's
        print(f"{name}: {ms:.1f} ms per gradient step (CPU {ms_cpu:.1f} ms; batch {model.batch_size}{per_state})", flush=True)
        if args.ops:
            print(operator_table(model, args.gradient_steps, args.ops, name), flush=True)
        if args.parts and isinstance(model, SoftQ):
            print(parts_line(model, args.gradient_steps, name), flush=True)
        if name == "ugan" and not args.no_profile:
            profile = cProfile.Profile()
            profile.enable()
            model.train(gradient_steps=args.gradient_steps, batch_size=model.batch_size)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()), flush=True)


if __name__ == "__main__":
    main()
