"""One-way-flow GAN on ring8 / grid25: modes and %HQ (issue 5, OW Table 1) and log ζ vs S (OW Fig. 2).

    python benchmarks/oneway.py                         # 2 targets × 5 seeds × 10,000 updates, 2 jobs
    python benchmarks/oneway.py --name oneway_2k --steps 2000 --extra '--lr-d 1e-3 --lr-g 5e-4 --d-steps 2 --w 0.3'

Each run writes benchmarks/results/<name>/<target>_<seed>/metrics.json (and samples.png), or failed.json
when it raised (a singular Jacobian, a NaN loss); a rerun skips finished and failed runs (remove failed.json to
run one again), and refuses those that ran with other settings than it asks for; the report, which counts
failed runs, goes to benchmarks/results/<name>.md (name: oneway). One torch thread per process.
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

from report_notes import NOTES, write_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from softq_ugan.cli import FAILED, failed_seeds, runs_cell  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PAPER = {  # OW Table 1: (modes, %HQ) of OW and of VEEGAN
    "ring8": ((8, 71.2), (8, 52.9)), "grid25": ((25, 52.5), (24.6, 40.0)),
}


def run_args(target: str, seed: int, extra: list[str], out: Path):
    """The ``softq_ugan.oneway_gan`` settings of one run (its ``config`` once it has run)."""
    from softq_ugan.oneway_gan import build_parser

    argv = ["--data", target, "--seed", str(seed), "--out", str(out), "--quiet", "--threads", "1", *extra]
    if seed == 0:
        argv.append("--zeta-curve")
    return build_parser().parse_args(argv)


def run_one(target: str, seed: int, extra: list[str], out: Path) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    from softq_ugan.oneway_gan import run

    return run(run_args(target, seed, extra, out))


def total_seconds(run_dir: Path, targets: list[str]) -> float:
    """Training seconds summed over every finished run (a rerun that reuses them still states what they cost)."""
    return sum(json.loads(p.read_text())["seconds"] for t in targets for p in run_dir.glob(f"{t}_*/metrics.json"))


def mean(v):
    return sum(v) / len(v)


def report(run_dir: Path, targets: list[str], setup: str) -> str:
    rows = []
    for t in targets:
        found = [json.loads(p.read_text()) for p in sorted(run_dir.glob(f"{t}_*/metrics.json"))]
        found = [r for r in found if not r.get("interrupted")]
        failed = failed_seeds(run_dir, t)
        runs = runs_cell(len(found), failed)
        if not found:
            if failed:
                rows.append(f"| {t} | {runs} | – | – | – | {PAPER[t][0][0]} / {PAPER[t][0][1]} | "
                            f"{PAPER[t][1][0]} / {PAPER[t][1][1]} | – |")
            continue
        modes = [r["modes_covered"] for r in found]
        hq = [100 * r["hq_fraction"] for r in found]
        (ow_m, ow_hq), (vg_m, vg_hq) = PAPER[t]
        rows.append(
            f"| {t} | {runs} | {mean(modes):.1f} (median {statistics.median(modes):.0f}; {min(modes)}–{max(modes)}) "
            f"| {mean(hq):.1f} (median {statistics.median(hq):.1f}; {min(hq):.1f}–{max(hq):.1f}) "
            f"| {statistics.median([r['mmd2'] for r in found]):.4f} | {ow_m} / {ow_hq} | {vg_m} / {vg_hq} "
            f"| {statistics.median([r['seconds'] for r in found]):.0f} |"
        )
    zeta = []
    for t in targets:
        f = run_dir / f"{t}_0" / "metrics.json"
        if f.exists() and "zeta_curve" in (m := json.loads(f.read_text())):
            c = m["zeta_curve"]
            zeta.append(f"\n**log ζ vs S, {t}, seed 0** (mean ± std over 10 repeats; quadrature on a grid: "
                        f"{m['log_zeta_grid']:.3f}; standardized units)\n\n| S | N(0, I) proposal | generator proposal |\n|---|---|---|")
            zeta += [f"| {s} | {a[0]:.3f} ± {a[1]:.3f} | {b[0]:.3f} ± {b[1]:.3f} |" for s, a, b in zip(c["S"], c["normal"], c["generator"])]
    return "\n".join([
        "# One-way-flow GAN benchmark (issue 5; OW Table 1, Fig. 2)", "", NOTES, "", setup, "",
        "| target | runs | modes: mean (median; range) | % HQ: mean (median; range) | MMD² | OW: modes / %HQ "
        "| VEEGAN (OW Table 1) | seconds |",
        "|---|---|---|---|---|---|---|---|", *rows, *zeta, "",
    ])


def figure(run_dir: Path, targets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.2), squeeze=False)
    for ax, t in zip(axes[0], targets):
        f = run_dir / f"{t}_0" / "metrics.json"
        if not f.exists() or "zeta_curve" not in (m := json.loads(f.read_text())):
            ax.axis("off")
            continue
        c = m["zeta_curve"]
        for key, label in (("normal", "N(0, I)"), ("generator", "generator")):
            ax.errorbar(c["S"], [a[0] for a in c[key]], yerr=[a[1] for a in c[key]], label=label, capsize=3, marker="o", ms=3)
        ax.axhline(m["log_zeta_grid"], color="k", ls="--", lw=1, label="grid quadrature")
        ax.set_xscale("log")
        ax.set_xlabel("S")
        ax.set_ylabel("log ζ estimate")
        ax.set_title(f"OW Fig. 2 analogue: {t}", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def samples_figure(run_dir: Path, targets: list[str], path: Path) -> None:
    """Every run's samples over its target's density: one row per target, one panel per seed."""
    import numpy as np

    from softq_ugan.plots import plot_sample_grid
    from softq_ugan.targets import make_target

    rows = []
    for t in targets:
        target, row = make_target(t), []
        for f in sorted(run_dir.glob(f"{t}_*/samples.npy"), key=lambda f: int(f.parent.name.rsplit("_", 1)[1])):
            m = json.loads((f.parent / "metrics.json").read_text())
            row.append((target, np.load(f), f"{t} seed {f.parent.name.rsplit('_', 1)[1]}: "
                                            f"{m['modes_covered']} modes, {100 * m['hq_fraction']:.1f}% HQ"))
        if row:
            rows.append(row)
    if rows:
        plot_sample_grid(rows, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["ring8", "grid25"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--extra", default="--lr-d 1e-3 --lr-g 5e-4 --d-steps 2 --w 0.3 --lr-decay",
                   help="more oneway_gan flags (default: the settings of benchmarks/results/oneway.md)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--name", default="oneway", help="results name: the runs' folder and the report's .md/.png stem")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args()
    from softq_ugan.cli import check_args, check_settings, run_failed, skip_failed
    from softq_ugan.targets import TARGETS

    check_args(positive={"--steps": args.steps, "--jobs": args.jobs}, seeds={"--seeds": args.seeds},
               names={"--targets": (args.targets, list(TARGETS))})
    run_dir = args.results / args.name
    extra = ["--steps", str(args.steps), *args.extra.split()]
    for t in args.targets:  # every finished (or failed) run the report reads must have run as this call asks
        for f in sorted([*run_dir.glob(f"{t}_*/metrics.json"), *run_dir.glob(f"{t}_*/{FAILED}")]):
            seed = int(f.parent.name.rpartition("_")[2])
            check_settings(f"{args.name}/{f.parent.name}", json.loads(f.read_text()).get("config", {}),
                           vars(run_args(t, seed, extra, f.parent)))
    runs = [(t, s, run_dir / f"{t}_{s}") for t in args.targets for s in args.seeds]
    todo = [(t, s, out) for t, s, out in runs
            if not (out / "metrics.json").exists() and not skip_failed(out, f"{t} seed {s}", say=not args.report_only)]
    start = time.time()
    if todo and not args.report_only:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_one, t, s, extra, out): (t, s, out) for t, s, out in todo}
            for fut in as_completed(futures):
                t, s, out = futures[fut]
                try:
                    m = fut.result()
                    print(f"{t} seed {s}: {m['modes_covered']} modes, {m['hq_fraction']:.1%} HQ ({m['seconds']:.0f}s)", flush=True)
                except Exception as e:  # keep the other runs going; the record stops a rerun from training it again
                    run_failed(out, e, vars(run_args(t, s, extra, out)), f"{t} seed {s}")
    # the runs come from the training command; --report-only just re-aggregates them
    command = "python " + " ".join(["benchmarks/oneway.py", *[f"'{a}'" if " " in a else a for a in sys.argv[1:]
                                                              if a != "--report-only"]])
    setup = (f"`{command}` — {platform.machine()} {os.cpu_count()}-core CPU shared with other jobs, one torch thread per "
             f"process, {args.jobs} processes; seeds {args.seeds}; {args.steps} generator updates with flags `{args.extra}`; "
             f"exact 2×2 log|det J| (as OW §3.1); 2,500 samples per run (OW's protocol); HQ = within 3σ of the nearest "
             f"mode, a mode counts if it is the nearest mode of an HQ sample (softq_ugan.metrics.mode_stats). "
             f"Training time of the runs: {total_seconds(run_dir, args.targets) / 60:.0f} min "
             f"(this invocation: {time.time() - start:.0f} s).")
    md = report(run_dir, args.targets, setup)
    figure(run_dir, args.targets, args.results / f"{args.name}_log_zeta.png")
    samples_figure(run_dir, args.targets, args.results / f"{args.name}_samples.png")
    print(write_report(args.results / f"{args.name}.md", md))  # hand-written notes survive a rerun


if __name__ == "__main__":
    main()
