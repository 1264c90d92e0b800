"""U-GAN on the 2-D toy targets: annealing schedules against a reverse-KL MAF (issue 2, VA §5.2).

    python benchmarks/ugan_toy.py                      # 4 targets × 5 methods × 3 seeds, 2 jobs
    python benchmarks/ugan_toy.py --targets kidney --methods ugan:nma maf-rkl:none --seeds 0 1

Each run writes benchmarks/results/ugan_toy/<target>_<method>_<schedule>_<seed>/metrics.json (and its
figures) as it finishes; a rerun skips finished runs (and refuses ones that ran with other settings); the
report aggregates whatever exists into benchmarks/results/ugan_toy.md (medians over seeds). One torch thread
per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_METHODS = ["ugan:none", "ugan:nma", "ugan:oa", "ugan:geo", "maf-rkl:none"]
LAMBDA0 = {"none": 0.0, "nma": -1.0, "oa": -1.0, "pma": 1.0, "static": -0.5, "exp": -1.0, "geo": -1.0}


def run_args(target: str, method: str, schedule: str, seed: int, steps: int, out: Path):
    """The ``softq_ugan.sample`` settings of one run (its ``config`` once it has run)."""
    from softq_ugan.sample import build_parser

    return build_parser().parse_args(
        ["--target", target, "--method", method, "--schedule", schedule, "--lambda0", str(LAMBDA0[schedule]),
         "--steps", str(steps), "--seed", str(seed), "--out", str(out), "--quiet", "--threads", "1"]
    )


def run_one(target: str, method: str, schedule: str, seed: int, steps: int, out: Path) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    from softq_ugan.sample import run

    return run(run_args(target, method, schedule, seed, steps, out))


def fmt(values: list[float], spec: str) -> str:
    return format(statistics.median(values), spec) if values else "–"


def report(run_dir: Path, targets: list[str], methods: list[str], command: str) -> str:
    rows = []
    for target in targets:
        for m in methods:
            method, schedule = m.split(":")
            found = [json.loads(p.read_text()) for p in sorted(run_dir.glob(f"{target}_{method}_{schedule}_*/metrics.json"))]
            found = [r for r in found if not r.get("interrupted")]
            if not found:
                continue
            n_modes = found[0]["num_modes"]
            min_mass = [min(r["mode_mass"]) for r in found]
            rows.append(
                f"| {target} | {method} | {schedule} | {len(found)} | {fmt([r['mmd2'] for r in found], '.4f')} "
                f"| {fmt([r['mmd2_fine'] for r in found], '.4f')} "
                f"| {fmt([r['modes_covered'] for r in found], '.0f')}/{n_modes} "
                f"| {', '.join(str(r['modes_covered']) for r in found)} "
                f"| {fmt([100 * r['hq_fraction'] for r in found], '.1f')} | {fmt(min_mass, '.3f')} "
                f"| {fmt([r['seconds'] for r in found], '.0f')} |"
            )
    header = (
        "# U-GAN on 2-D toy targets\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, torch one thread per "
        f"process, two processes at a time. Generated {time.strftime('%Y-%m-%d %H:%M')}.\n\n"
        "Medians over seeds. MMD² (unbiased, RBF, median bandwidth; averaged over 3 draws of 2,000 ground-truth "
        "samples), MMD² fine (bandwidth/5), modes covered (a mode is covered when it is the nearest mode of a "
        "high-quality sample), %HQ (mixtures: within 3 std of a mode; banana/kidney: inside the 99.7% "
        "highest-density region), min mode mass (smallest fraction of samples nearest one mode; 1/M is "
        "perfect), seconds of training (measured while other jobs — RL runs, tests — shared the 2 cores, so "
        "they vary by up to 2x between rows; a kidney U-GAN run with only one other process beside it took 88 s) for 3,000 updates, batch 256. λ₀: nma −1, oa −1 (λ clamped at −0.99); geo: β = 1+λ held at 1e-3 for the first quarter, log-linear to 1 by three quarters.\n\n"
        "| target | method | schedule | seeds | MMD² | MMD² fine | modes (median) | modes per seed | %HQ | min mode mass | s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return header + "\n".join(rows) + "\n"


def figure(run_dir: Path, targets: list[str], methods: list[str], path: Path) -> None:
    """Seed-0 samples of every (target, method) over the target's density, one row per target."""
    import numpy as np

    from softq_ugan.plots import plot_sample_grid
    from softq_ugan.targets import make_target

    rows = []
    for target in targets:
        t, row = make_target(target), []
        for m in methods:
            method, schedule = m.split(":")
            f = run_dir / f"{target}_{method}_{schedule}_0" / "samples.npy"
            if f.exists():
                mmd = json.loads((f.parent / "metrics.json").read_text())["mmd2"]
                row.append((t, np.load(f), f"{target} {method}:{schedule}\nMMD² {mmd:.4f}"))
        rows.append(row)
    if any(rows):
        plot_sample_grid(rows, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["banana", "kidney", "ring8", "grid25"])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="method:schedule pairs")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--name", default="ugan_toy", help="results name (folder and .md)")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    from softq_ugan.cli import check_args, check_settings
    from softq_ugan.targets import TARGETS

    check_args(positive={"--steps": args.steps, "--jobs": args.jobs}, seeds={"--seeds": args.seeds},
               names={"--targets": (args.targets, list(TARGETS))})
    for m in args.methods:
        if ":" not in m or m.split(":")[1] not in LAMBDA0:
            p.error(f"method '{m}' must be method:schedule with schedule in {sorted(LAMBDA0)}")
    run_dir = RESULTS / args.name
    for target in args.targets:  # every finished run the report reads must have run as this call asks
        for m in args.methods:
            method, schedule = m.split(":")
            for f in sorted(run_dir.glob(f"{target}_{method}_{schedule}_*/metrics.json")):
                seed = int(f.parent.name.rpartition("_")[2])
                check_settings(f"{args.name}/{f.parent.name}", json.loads(f.read_text()).get("config", {}),
                               vars(run_args(target, method, schedule, seed, args.steps, f.parent)))
    argv = [a for a in sys.argv[1:] if a != "--report-only"]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix().split(str(ROOT) + "/")[-1], *argv])

    todo = []
    for target in args.targets:
        for m in args.methods:
            method, schedule = m.split(":")
            for seed in args.seeds:
                out = run_dir / f"{target}_{method}_{schedule}_{seed}"
                done = out / "metrics.json"
                if done.exists() and not json.loads(done.read_text()).get("interrupted"):
                    continue
                todo.append((target, method, schedule, seed, args.steps, out))
    if not args.report_only and todo:
        print(f"{len(todo)} runs to do, {args.jobs} at a time", flush=True)
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_one, *job): job for job in todo}
            for f in as_completed(futures):
                target, method, schedule, seed, *_ = futures[f]
                r = f.result()
                print(f"{target} {method}:{schedule} seed {seed}: MMD² {r['mmd2']:.4f} modes {r['modes_covered']}/"
                      f"{r['num_modes']} HQ {r['hq_fraction']:.1%} {r['seconds']:.0f}s", flush=True)
                (RESULTS / f"{args.name}.md").write_text(report(run_dir, args.targets, args.methods, command))
    text = report(run_dir, args.targets, args.methods, command)
    figure(run_dir, args.targets, args.methods, RESULTS / f"{args.name}.png")
    text += f"\n![seed-0 samples]({args.name}.png)\n"
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
