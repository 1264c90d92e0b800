"""Sampler ablations (issue 8): what does the GAN add? Every policy sampler of the agent's registry, side by side.

    python benchmarks/samplers.py                      # MultiGoal-v0: 6 samplers × 3 seeds × 12k steps, 2 jobs
    python benchmarks/samplers.py --samplers ugan maf --seeds 0 --steps 3000
    python benchmarks/samplers.py --report-only

MultiGoal-v0 (SQL's four-goal task, where multimodality matters): each (sampler, seed) trains SoftQ with
the settings of ``train_rl.py --env MultiGoal-v0`` (and of the learning test), then runs 100 stochastic
episodes and records the goals reached, the mean return and the wall seconds per 1,000 env steps
(training only). Runs write ``benchmarks/results/samplers/multigoal_<sampler>_<seed>.json``; a rerun
skips finished ones (and refuses ones run with other --steps or --episodes). The Swimmer-v4 rows come
from the Swimmer benchmark's runs (``benchmarks/swimmer.py --algos softq-ugan softq-ugan-nocritic
softq-maf softq-svgd``), whatever exists.
The report goes to benchmarks/results/samplers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from softq_ugan.cli import check_args, check_settings  # noqa: E402
from softq_ugan.sweep import median_iqr as _median_iqr  # noqa: E402
from swimmer import cost_cell as swimmer_cost  # noqa: E402  (benchmarks/swimmer.py, beside this script)

RESULTS = ROOT / "benchmarks" / "results"
SAMPLER_NAMES = ("ugan", "ugan-nocritic", "ugan-oneway", "maf", "svgd", "gaussian")


def run_multigoal(sampler: str, seed: int, steps: int, episodes: int, path: Path) -> dict:
    """Train SoftQ on MultiGoal-v0 and count the goals reached by ``episodes`` stochastic episodes."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import gymnasium as gym
    import torch

    import envs  # noqa: F401  (registers MultiGoal-v0)
    from train_rl import default_model

    torch.set_num_threads(1)
    model = default_model("MultiGoal-v0", "MultiGoal-v0", f"softq-{sampler}", seed, steps)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    env = gym.make("MultiGoal-v0")
    goals, returns = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        goals.append(int(info["goal"]))
        returns.append(total)
    goals_arr = np.array(goals)
    result = dict(sampler=sampler, seed=seed, steps=steps, episodes=episodes, seconds=seconds,
                  s_per_1k=1000 * seconds / steps, reach_rate=float((goals_arr >= 0).mean()),
                  distinct_goals=int(len(set(goals_arr[goals_arr >= 0].tolist()))),
                  goal_counts=[int((goals_arr == g).sum()) for g in range(4)], mean_return=float(np.mean(returns)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result




def report(samplers: list[str], command: str, swimmer_steps: int = 150_000) -> str:
    lines = [
        "# Sampler ablations: what does the GAN add?\n",
        f"Command: `{command}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread per process. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}. Cells: median [25%, 75%] over seeds.\n",
        "## MultiGoal-v0 (stochastic episodes after training, `--episodes`, default 100)\n",
        "| sampler | distinct goals reached (of 4), per seed | episodes reaching a goal | mean return | wall s per 1,000 env steps | goal counts per seed |",
        "|---|---|---|---|---|---|",
    ]
    for s in samplers:
        runs = [json.loads(f.read_text()) for f in sorted((RESULTS / "samplers").glob(f"multigoal_{s}_*.json"))]
        if not runs:
            continue
        counts = "; ".join(f"s{r['seed']}: {r['goal_counts']}" for r in runs)
        lines.append(f"| {s} | {', '.join(str(r['distinct_goals']) for r in runs) or '–'} "
                     f"| {_median_iqr([100 * r['reach_rate'] for r in runs], '{:.0f}%')} "
                     f"| {_median_iqr([r['mean_return'] for r in runs])} | {_median_iqr([r['s_per_1k'] for r in runs])} "
                     f"| {counts} |")
    lines += ["", f"## Swimmer-v4 (from `benchmarks/swimmer.py` runs, deterministic eval return at {swimmer_steps:,} steps)\n",
              "A run still short of the budget shows its last eval as `value (@steps)` and is left out of the median.\n",
              "| sampler | runs at the budget / all | return per seed | median at the budget [IQR] "
              "| best eval return | wall s per 1,000 env steps (median) |",
              "|---|---|---|---|---|---|"]
    for s in samplers:
        logs = [json.loads(f.read_text()) for f in sorted((RESULTS / "swimmer").glob(f"softq-{s}_*/evals.json"))]
        logs = [log for log in logs if log.get("algo") == f"softq-{s}" and log["evals"]]
        if not logs:
            lines.append(f"| {s} | 0 / 0 | no run at these settings in `results/swimmer/` | – | – | – |")
            continue
        done = [log for log in logs if log["evals"][-1][0] >= swimmer_steps]
        per_seed = ", ".join(f"s{log['seed']}: {log['evals'][-1][1]:.1f}" + (
            "" if log in done else f" (@{log['evals'][-1][0] // 1000}k)") for log in logs)
        lines.append(f"| {s} | {len(done)} / {len(logs)} | {per_seed} "
                     f"| {_median_iqr([log['evals'][-1][1] for log in done]) if done else '–'} "
                     f"| {_median_iqr([max(v for _, v in log['evals']) for log in logs])} "
                     f"| {swimmer_cost(logs, swimmer_steps)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samplers", nargs="+", default=list(SAMPLER_NAMES), choices=SAMPLER_NAMES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=12_000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--swimmer-steps", type=int, default=150_000,
                   help="the Swimmer benchmark's step budget, at which its returns are compared (default 150000)")
    p.add_argument("--results", default=str(RESULTS), help="results folder (default benchmarks/results)")
    args = p.parse_args()
    RESULTS = Path(args.results)
    if args.steps <= 0 or args.episodes <= 0 or args.jobs <= 0:
        p.error("--steps, --episodes and --jobs must be positive")
    check_args(seeds={"--seeds": args.seeds})
    for s in args.samplers:  # every finished run the report reads must have run as this call asks
        for f in sorted((RESULTS / "samplers").glob(f"multigoal_{s}_*.json")):
            check_settings(f"samplers/{f.name}", json.loads(f.read_text()), {"steps": args.steps, "episodes": args.episodes})
    # the runs come from the training command; --report-only just re-aggregates them
    command = " ".join(["python benchmarks/samplers.py", *(a for a in sys.argv[1:] if a != "--report-only")])
    if not args.report_only:
        todo = [(s, seed) for seed in args.seeds for s in args.samplers
                if not (RESULTS / "samplers" / f"multigoal_{s}_{seed}.json").exists()]
        print(f"{len(todo)} MultiGoal runs to do, {args.jobs} at a time", flush=True)
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_multigoal, s, seed, args.steps, args.episodes,
                                   RESULTS / "samplers" / f"multigoal_{s}_{seed}.json") for s, seed in todo]
            for f in as_completed(futures):
                r = f.result()
                print(f"{r['sampler']} seed {r['seed']}: goals {r['goal_counts']}, reach {r['reach_rate']:.0%}, "
                      f"{r['s_per_1k']:.1f} s/1k steps", flush=True)
    text = report(args.samplers, command, args.swimmer_steps)
    (RESULTS / "samplers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
