"""Swimmer-v4: SoftQ-UGAN and SoftQ-SVGD against SB3 SAC (and TD3), resumable, in sittings (issue 4).

    python benchmarks/swimmer.py                                   # 3 seeds × 150k steps, 2 jobs
    python benchmarks/swimmer.py --algos softq-ugan sac td3 --seeds 0 --steps 20000
    python benchmarks/swimmer.py --report-only
    python benchmarks/swimmer.py --name swimmer_anchor --algos softq-ugan --flags=--bridge-anchor   # a variant
    python benchmarks/swimmer.py --name swimmer_anchor --report-only --compare swimmer/softq-ugan   # beside another sitting's

Each (algorithm, seed) run lives in benchmarks/results/swimmer/<algo>_<seed>/: ``evals.json`` (the
deterministic 5-episode eval return every ``--eval-every`` steps, the training scalars just before each
(τ or α, entropy, mean Q, losses) and the wall and CPU seconds of training so far) is rewritten after each
evaluation, next to a checkpoint of the model and its replay buffer. A rerun skips finished runs and
resumes unfinished ones from their checkpoint. The report aggregates whatever exists into
benchmarks/results/swimmer.md and swimmer.png (median with IQR band).
Settings: SAC/TD3 as rl-baselines3-zoo's Swimmer-v4; SoftQ as train_rl.py's Swimmer defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from softq_ugan.cli import build_info, build_text, check_args, write_json  # noqa: E402
from softq_ugan.sweep import curve_stats, median_iqr, plot_curves  # noqa: E402
from report_notes import NOTES, write_report  # noqa: E402  (beside this script; hand-written notes survive a rerun)

RESULTS = ROOT / "benchmarks" / "results"
ALGOS = ("softq-ugan", "softq-svgd", "softq-ugan-nocritic", "softq-ugan-oneway", "softq-maf", "softq-gaussian", "sac", "td3")


def make_model(algo: str, env, seed: int, steps: int, flags: list[str] = ()):
    """A fresh run as ``train_rl.py [flags]`` builds it (its defaults without ``flags``, which apply to SoftQ runs
    only); its replay buffer holds every step, not a million slots."""
    from train_rl import default_model

    return default_model("Swimmer-v4", env, algo, seed, steps, list(flags) if algo.startswith("softq") else [])


def settings(model) -> dict:
    """What a run was trained with, for the report (train_rl.py's defaults change as they are tuned)."""
    keys = ("gamma", "reward_scale", "temperature", "proposal", "policy_delay", "batch_size", "learning_rate")
    return {k: getattr(model, k) for k in keys if isinstance(getattr(model, k, None), (int, float, str))}


FAST_GAIT = 300.0  # the eval return of Swimmer's fast gait: the bar and the report's "≥ 300" columns
TRAIN_KEYS = ("train/temperature", "train/ent_coef", "train/entropy", "train/q_mean", "train/soft_value", "train/q_loss",
              "train/critic_loss", "train/actor_loss", "sampler/generator_loss", "sampler/critic_loss", "sampler/bridge_nll",
              "train/temperature_clipped", "train/temperature_grad_max", "sampler/entropy", "sampler/entropy_generator")


def first_fast(log: dict) -> int | None:
    """The first evaluated step whose return is on the fast gait (≥ FAST_GAIT), None if none is."""
    return next((t for t, v in log["evals"] if v >= FAST_GAIT), None)


def train_stats(model) -> dict:
    """The training scalars SB3's logger holds just before an evaluation (τ or SAC's α, the entropy, mean Q, the
    losses: the last ``train`` call's, i.e. one gradient step's, since SB3 clears them at each log dump), so that a
    run's evals.json carries them beside its returns across machines (checkpoints and TensorBoard files do not)."""
    values = model.logger.name_to_value
    return {k: round(float(values[k]), 6) for k in TRAIN_KEYS if isinstance(values.get(k), (int, float))}


def run_one(algo: str, seed: int, steps: int, eval_every: int, run_dir: Path, jobs: int = 1,
            flags: list[str] = (), command: str = "") -> dict:
    """Train (or resume) one run to ``steps``, evaluating and checkpointing every ``eval_every`` steps. Each call is a
    sitting, recorded in the log's ``sittings`` (date, first and last step, training seconds, ``jobs`` = processes
    the benchmark ran at a time, and the process's CPU seconds), so the report can tell a same-sitting cost from one
    pieced together, and a cost inflated by more processes than cores (their wall seconds grow, their CPU seconds
    far less: profile_softq.md, session 43), and the ``command`` that ran it, so a sitting pieced from several
    invocations (some seeds in one, the rest in another) says which ran which run."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from agents import SoftQ
    from envs import make_env

    torch.set_num_threads(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file, ckpt, buffer = run_dir / "evals.json", run_dir / "model.zip", run_dir / "replay_buffer.pkl"
    log = json.loads(log_file.read_text()) if log_file.exists() else dict(algo=algo, seed=seed, evals=[], seconds=0.0)
    env = Monitor(make_env("Swimmer-v4", seed=seed))
    eval_env = Monitor(make_env("Swimmer-v4", seed=seed + 10_000))
    if ckpt.exists() and buffer.exists():
        cls = SoftQ if algo.startswith("softq") else (SAC if algo == "sac" else TD3)
        model = cls.load(ckpt, env=env)
        model.load_replay_buffer(buffer)
    else:
        model, log = make_model(algo, env, seed, steps, flags), dict(algo=algo, seed=seed, evals=[], seconds=0.0)
        log["settings"] = settings(model)
        if flags and algo.startswith("softq"):
            log["flags"] = list(flags)
    sitting = dict(date=time.strftime("%Y-%m-%d %H:%M"), start=int(model.num_timesteps), end=int(model.num_timesteps),
                   seconds=0.0, jobs=jobs, build=build_info(), **({"command": command} if command else {}))
    if model.num_timesteps < steps:
        log.setdefault("sittings", []).append(sitting)
    while model.num_timesteps < steps:
        chunk = min(eval_every - model.num_timesteps % eval_every, steps - model.num_timesteps)
        start, cpu_start = time.perf_counter(), time.process_time()
        model.learn(chunk, reset_num_timesteps=False)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        log["seconds"] += elapsed
        sitting["seconds"] += elapsed
        # CPU seconds from this sitting on only: a run begun before they were recorded has none for its earlier steps
        sitting["cpu_seconds"] = sitting.get("cpu_seconds", 0.0) + cpu
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
        step = int(model.num_timesteps)
        log["evals"].append([step, float(mean)])
        log.setdefault("train", []).append([step, train_stats(model)])
        log["steps"] = sitting["end"] = step
        # write-then-rename, so a run killed mid-save (end of a sitting) resumes from the previous checkpoint
        model.save(run_dir / "model.tmp.zip")
        model.save_replay_buffer(run_dir / "replay_buffer.tmp.pkl")
        os.replace(run_dir / "model.tmp.zip", ckpt)
        os.replace(run_dir / "replay_buffer.tmp.pkl", buffer)
        write_json(log_file, log)
    return log


def load_runs(run_root: Path, algos: list[str]) -> dict[str, list[dict]]:
    """The runs of every algorithm that has any under ``run_root`` (whichever sitting ran it), ``algos`` first."""
    runs: dict[str, list[dict]] = {a: [] for a in dict.fromkeys([*algos, *ALGOS])}
    for f in sorted(run_root.glob("*/evals.json")):
        log = json.loads(f.read_text())
        if log["algo"] in runs and log["evals"]:
            runs[log["algo"]].append(log)
    return {a: logs for a, logs in runs.items() if logs}


def load_compared(results: Path, specs: list[str]) -> dict[str, list[dict]]:
    """``--compare`` runs: each ``NAME/ALGO`` gives ALGO's runs in ``results/NAME``, labelled ``ALGO (NAME)`` (a spec
    with no runs there gives no label)."""
    out = {}
    for spec in specs:
        name, algo = spec.rsplit("/", 1)
        if logs := load_runs(results / name, [algo]).get(algo):
            out[f"{algo} ({name})"] = logs
    return out


def compare_error(results: Path, spec: str) -> str | None:
    """Why a ``--compare`` spec cannot be read (None if it can): ``NAME/ALGO`` with a known ALGO that has runs there."""
    if "/" not in spec:
        return f"--compare takes NAME/ALGO (e.g. swimmer_preset/sac), got {spec!r}"
    name, algo = spec.rsplit("/", 1)
    if algo not in ALGOS:
        return f"--compare {spec}: unknown algorithm {algo!r}; choose from: {', '.join(ALGOS)}"
    if not load_runs(results / name, [algo]).get(algo):
        return f"--compare {spec}: no {algo} runs in {results / name}"
    return None


def per_1k(log: dict) -> float:
    """Wall seconds of training (evaluation excluded) per 1,000 env steps."""
    return 1000 * log["seconds"] / max(log.get("steps", 1), 1)


def cpu_per_1k(log: dict) -> float | None:
    """CPU seconds of the training process per 1,000 env steps, over the sittings that recorded them (None if none
    did). More processes than cores slow a run's wall clock far more than its CPU seconds; neither removes the
    machine's own drift in speed (profile_softq.md, session 43)."""
    timed = [s for s in log.get("sittings", []) if "cpu_seconds" in s and s["end"] > s["start"]]
    if not timed:
        return None
    return 1000 * sum(s["cpu_seconds"] for s in timed) / sum(s["end"] - s["start"] for s in timed)


def cpu_cost(logs: list[dict], steps: int) -> tuple[float | None, int]:
    """Median CPU seconds per 1,000 env steps over the runs that reached ``steps`` and recorded them (None if none),
    and how many runs that is."""
    values = [v for log in logs if log.get("steps", 0) >= steps and (v := cpu_per_1k(log)) is not None]
    return (statistics.median(values) if values else None), len(values)


def cost(logs: list[dict], steps: int) -> tuple[float, bool]:
    """Median wall seconds per 1,000 env steps over the runs that reached ``steps``, and whether none had: a run still
    short of it (its share of cheap warm-up steps is larger) counts only while none has."""
    done = [log for log in logs if log.get("steps", 0) >= steps]
    return statistics.median(per_1k(log) for log in done or logs), not done


def cost_cell(logs: list[dict], steps: int) -> str:
    """``cost`` as a table cell: ``22.0``, or ``0.2 (partial)`` while no run reached ``steps``."""
    value, partial = cost(logs, steps)
    return f"{value:.1f}" + (" (partial)" if partial else "")


def summary(runs: dict[str, list[dict]], shown: list[str], steps: int, compared: Iterable[str] = ()) -> list[str]:
    """Per algorithm: runs finished, return at ``steps``, how many of them end ≥ 300 (the fast gait), first eval ≥ 300
    and wall cost, with the ratio to SAC's (not for the ``compared`` rows: another sitting's seconds are not this
    sitting's, and the machine's speed drifts between sittings)."""
    sac, sac_partial = cost(runs["sac"], steps) if runs.get("sac") else (None, True)
    sac_cpu = cpu_cost(runs["sac"], steps)[0] if runs.get("sac") else None
    lines = [f"Summary at {steps:,} steps (median [25%, 75%] over the seeds that reached it; cost: median over the "
             "runs that reached it, or over all runs while none has, marked partial; CPU: the training process's CPU "
             "seconds, median over the finished runs that recorded them, with how many did):\n",
             "| algorithm | runs at the end / all | return at the end | ≥ 300 at the end | first eval ≥ 300, per seed "
             "| wall s / 1k steps | × SAC | CPU s / 1k steps | × SAC (CPU) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a in shown:
        done = [log for log in runs[a] if log.get("steps", 0) >= steps]
        final = [v for log in done for t, v in log["evals"] if t == steps]
        firsts = [(log["seed"], first_fast(log)) for log in done]
        first = ", ".join(f"{seed}: {'never' if t is None else f'{t // 1000}k'}" for seed, t in firsts) or "–"
        value, partial = cost(runs[a], steps)
        ratio = "–" if partial or sac_partial or a in compared else f"{value / sac:.2f}"
        fast = f"{sum(v >= FAST_GAIT for v in final)} / {len(final)}" if final else "–"
        cpu, timed = cpu_cost(runs[a], steps)
        cpu_cell = "–" if cpu is None else f"{cpu:.1f} ({timed} of {len(done)} runs)"
        cpu_ratio = "–" if cpu is None or sac_cpu is None or a in compared else f"{cpu / sac_cpu:.2f}"
        lines.append(f"| {a} | {len(done)} / {len(runs[a])} | {median_iqr(final, show_n=False)} | {fast} | {first} "
                     f"| {cost_cell(runs[a], steps)} | {ratio} | {cpu_cell} | {cpu_ratio} |")
    return lines + [""]


def per_seed(runs: dict[str, list[dict]], shown: list[str], steps: int) -> list[str]:
    """Seed by seed: each algorithm's return at ``steps`` and its first eval ≥ 300 (``never`` for a finished run that
    had none, ``–`` for a seed not run or not finished), so that paired seeds read side by side."""
    seeds = sorted({log["seed"] for a in shown for log in runs[a]})
    lines = [f"Per seed (return at {steps // 1000}k; first eval ≥ 300):\n",
             "| algorithm | | " + " | ".join(str(s) for s in seeds) + " |", "|---|---|" + "---|" * len(seeds)]
    for a in shown:
        by_seed = {log["seed"]: log for log in runs[a]}
        ends, firsts = [], []
        for s in seeds:
            log = by_seed.get(s)
            end = dict(map(tuple, log["evals"])).get(steps) if log else None
            first = first_fast(log) if log else None
            ends.append("–" if end is None else f"{end:.1f}")
            firsts.append(f"{first // 1000}k" if first is not None else "never" if end is not None else "–")
        lines += [f"| {a} | at {steps // 1000}k | " + " | ".join(ends) + " |",
                  f"| {a} | first ≥ 300 | " + " | ".join(firsts) + " |"]
    return lines + [""]


def agreement(runs: dict[str, list[dict]], compared: dict[str, list[dict]]) -> list[str]:
    """For a compared algorithm that also ran here on the same seed: how many of the evaluations both runs made are
    identical, to the bit (a run repeated on the same build is, if the algorithm is deterministic per seed)."""
    lines = []
    for label, logs in compared.items():
        for log in logs:
            own = next((o for o in runs.get(log["algo"], []) if o["seed"] == log["seed"]), None)
            if own is None:
                continue
            theirs = dict(map(tuple, log["evals"]))
            shared = [(t, v) for t, v in own["evals"] if t in theirs]
            same = next((i for i, (t, v) in enumerate(shared) if theirs[t] != v), len(shared))
            lines.append(f"- {log['algo']} seed {log['seed']} here and in {label}: the first {same} of {len(shared)} "
                         "evaluations both made are identical"
                         + (f"; they differ from {shared[same][0] // 1000}k on" if same < len(shared) else ""))
    return (["Runs repeated from the compared sittings (same algorithm and seed):\n", *lines, ""]) if lines else []


def sittings_cell(log: dict) -> str:
    """A run's sittings: ``0-40k: 36.2 s (2 jobs, 2026-12-02 21:03, CPU 35.9 s); 40k-150k: ...``, per 1,000 steps of
    each (CPU where the sitting recorded it)."""
    def k(n: int) -> str:
        return f"{n // 1000}k" if n and n % 1000 == 0 else f"{n:,}"

    def cpu(s: dict) -> str:
        return f", CPU {1000 * s['cpu_seconds'] / (s['end'] - s['start']):.1f} s" if "cpu_seconds" in s else ""

    parts = [f"{k(s['start'])}-{k(s['end'])}: {1000 * s['seconds'] / max(s['end'] - s['start'], 1):.1f} s "
             f"({s['jobs']} job{'s' * (s['jobs'] != 1)}, {s['date']}{cpu(s)})" for s in log.get("sittings", [])
             if s["end"] > s["start"]]
    return "; ".join(parts) or "not recorded (ran before sittings were)"


def by_sitting(runs: dict[str, list[dict]], shown: list[str], key) -> dict[str, list[str]]:
    """Each distinct ``key(sitting)`` of the runs' sittings (their build, their command) → the runs (``sac 0``) with a
    sitting that has it; a run without sittings counts as one sitting ``{}``."""
    out: dict[str, list[str]] = {}
    for a in shown:
        for log in runs[a]:
            for s in log.get("sittings") or [{}]:
                names = out.setdefault(key(s), [])
                if f"{a} {log['seed']}" not in names:
                    names.append(f"{a} {log['seed']}")
    return out


def report(run_root: Path, algos: list[str], command: str, steps: int = 150_000,
           compared: dict[str, list[dict]] | None = None) -> str:
    """The sitting's report; ``compared`` (``load_compared``) adds other sittings' runs beside its own (the cost
    ratios stay with this sitting's SAC)."""
    runs = load_runs(run_root, algos)
    compared = compared or {}
    runs.update(compared)
    shown = list(runs)
    stats = {a: dict(zip(*curve_stats([log["evals"] for log in runs[a]]))) for a in shown}
    steps_seen = sorted({s for a in shown for s in stats[a]})
    lines = [
        "# Swimmer-v4: SoftQ samplers against SB3\n",
        NOTES + "\n",
        f"Report: `{command}`\n",
        "Commands that ran the runs (`command` in each run's sittings):\n",
        *[f"- {text}: {', '.join(runs_on)}" for text, runs_on in by_sitting(
            runs, shown, lambda s: f"`{s['command']}`" if "command" in s
            else "not recorded (sittings before commands were)").items()],
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread per process; how many processes ran "
        "at a time, in each sitting of each run, is in the last table (runs resumed across sittings, or beside other "
        "work, do not give a same-sitting cost). Deterministic eval return over 5 episodes. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}.\n",
        "Software of the sittings (`build` in each run's sittings; sittings run on different builds need not agree "
        "to the bit on the same seed):\n",
        *[f"- {text}: {', '.join(runs_on)}" for text, runs_on in by_sitting(
            runs, shown, lambda s: build_text(s.get("build"))).items()],
        "",
        *summary(runs, shown, steps, compared),
        *per_seed(runs, shown, steps),
        *agreement(runs, compared),
        "Settings of each algorithm's runs (`settings` in each run's evals.json):\n",
        *[f"- {a}: " + "; ".join(sorted({(", ".join(f"{k}={v}" for k, v in log["settings"].items()) if "settings" in log
                                          else "not recorded (runs started before settings were)")
                                         + (f"; train_rl.py flags: `{' '.join(log['flags'])}`" if log.get("flags") else "")
                                         for log in runs[a]}))
          for a in shown],
        "",
        "Median [25%, 75%] over seeds at each checkpoint:\n",
        "| step | " + " | ".join(shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for s in steps_seen:
        lines.append(f"| {s} | " + " | ".join(median_iqr(stats[a].get(s, [])) for a in shown) + " |")
    lines += ["", "| algorithm | seed | steps | first step with eval ≥ 300 | wall s per 1,000 env steps | sittings: s per 1k |",
              "|---|---|---|---|---|---|"]
    for a in shown:
        for log in runs[a]:
            first = first_fast(log)
            lines.append(f"| {a} | {log['seed']} | {log.get('steps', 0)} | {first or 'never'} | {per_1k(log):.1f} "
                         f"| {sittings_cell(log)} |")
    return "\n".join(lines) + "\n"


def figure(run_root: Path, algos: list[str], path: Path, compared: dict[str, list[dict]] | None = None) -> None:
    runs = {**load_runs(run_root, algos), **(compared or {})}
    plot_curves({a: [log["evals"] for log in logs] for a, logs in runs.items()}, path, title="Swimmer-v4")


def run_on_ray(todo: list[tuple[str, int]], args: argparse.Namespace, run_root: Path) -> None:
    """The same runs through the sweep path (Ray Tune, issue 9), then filed as <algo>_<seed>/evals.json."""
    from softq_ugan.sweep import load_sweep, parse_spec, run

    algos = sorted({a for a, _ in todo})
    seeds = sorted({s for _, s in todo})
    spec = parse_spec(dict(name=f"{args.name}-benchmark", env="Swimmer-v4", algos=algos, seeds=seeds,
                           steps=args.steps, eval_every=args.eval_every, eval_episodes=5,
                           trial=dict(cpus=1, threads=1, max_failures=3)))
    sweep_dir = run(spec, args.ray_out, args.address, args.jobs)
    for t in load_sweep(sweep_dir):
        if (t["algo"], t["seed"]) in todo:
            write_json(run_root / f"{t['algo']}_{t['seed']}" / "evals.json", t["record"])
            print(f"{t['algo']} seed {t['seed']}: last eval {t['record']['evals'][-1][1]:.1f} at "
                  f"{t['record']['steps']} in {t['record']['seconds']:.0f}s", flush=True)


def main() -> None:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=["softq-ugan", "softq-svgd", "sac"], choices=ALGOS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=150_000)
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--name", default="swimmer", help="results name (folder, .md and .png)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", default=str(RESULTS), help="results folder (default benchmarks/results)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: a process pool here; ray: the runs as a Ray Tune sweep (pip install -e '.[sweep]')")
    p.add_argument("--address", default=None, help="with --backend ray: the cluster to join (default: local Ray)")
    p.add_argument("--ray-out", default=str(ROOT / "runs" / "sweeps"), help="with --backend ray: sweep folders")
    p.add_argument("--flags", default="", metavar="'FLAGS'",
                   help="train_rl.py flags for the SoftQ runs, e.g. --flags=--bridge-anchor (give the variant its "
                        "own --name; a run keeps the flags it started with)")
    p.add_argument("--compare", nargs="+", default=[], metavar="NAME/ALGO",
                   help="show another sitting's runs beside this one's, e.g. swimmer_preset/sac (labelled "
                        "'sac (swimmer_preset)'; the cost ratios stay with this sitting's own SAC)")
    args = p.parse_args()
    flags = args.flags.split()
    if args.steps <= 0 or args.eval_every <= 0:
        p.error("--steps and --eval-every must be positive")
    check_args(positive={"--jobs": args.jobs}, seeds={"--seeds": args.seeds})
    RESULTS = Path(args.results)
    for spec in args.compare:
        if (why := compare_error(RESULTS, spec)) is not None:
            p.error(why)
    RESULTS.mkdir(parents=True, exist_ok=True)
    run_root = RESULTS / args.name
    # each sitting records the command that ran it; the report names the command that regenerates it
    command = shlex.join(["python", "benchmarks/swimmer.py", *sys.argv[1:]])
    report_command = command if args.report_only else command + " --report-only"
    todo = [(a, s) for s in args.seeds for a in args.algos]  # seed by seed, so a partial benchmark compares
    logs = {(a, s): json.loads(f.read_text()) for a, s in todo if (f := run_root / f"{a}_{s}" / "evals.json").exists()}
    if not args.report_only:
        from softq_ugan.cli import fail
        from train_rl import build_parser, validate

        if flags and args.backend == "ray":
            fail("--flags runs on the local backend only")
        for a in (a for a in args.algos if flags and a.startswith("softq")):  # train_rl.py's checks, before any run
            validate(build_parser().parse_args(["--env", "Swimmer-v4", "--sampler", a.removeprefix("softq-"), *flags]))
        for a, s in todo:  # one results folder, one variant: a run resumes with the flags it started with
            started = logs[a, s].get("flags", []) if (a, s) in logs else flags
            if a.startswith("softq") and started != flags:
                fail(f"{a} seed {s} in {run_root} started with flags {' '.join(started) or 'none'}, not "
                     f"{' '.join(flags) or 'none'}: give this variant another --name")
    if not args.report_only:
        todo = [(a, s) for a, s in todo if logs.get((a, s), {}).get("steps", 0) < args.steps]
        print(f"{len(todo)} runs to do or resume, {args.jobs} at a time", flush=True)
        if args.backend == "ray" and todo:
            run_on_ray(todo, args, run_root)
            todo = []
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_one, a, s, args.steps, args.eval_every, run_root / f"{a}_{s}",
                                   min(args.jobs, len(todo)), flags, command): (a, s) for a, s in todo}
            for f in as_completed(futures):
                log = f.result()
                print(f"{log['algo']} seed {log['seed']}: last eval {log['evals'][-1][1]:.1f} at {log['steps']} "
                      f"in {log['seconds']:.0f}s", flush=True)
    compared = load_compared(RESULTS, args.compare)
    text = report(run_root, args.algos, report_command, args.steps, compared)
    text = write_report(RESULTS / f"{args.name}.md", text + f"\n![curves]({args.name}.png)\n")
    figure(run_root, args.algos, RESULTS / f"{args.name}.png", compared)
    print(text)


if __name__ == "__main__":
    main()
