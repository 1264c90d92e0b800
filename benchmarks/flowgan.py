"""Flow-GAN on digits / MNIST-5k: MLE vs ADV vs hybrid vs the Parzen baseline (issue 5, FG Table 1-2, Fig. 4).

    python benchmarks/flowgan.py                                  # digits, NICE, 4 objectives × 3 seeds, 2 jobs
    python benchmarks/flowgan.py --data mnist5k --jobs 1          # MNIST-5k, as flowgan.md ran it

Each run writes benchmarks/results/flowgan/<data>_<flow>_<objective>_<seed>/metrics.json (and its
figures), or failed.json when it raised; a rerun skips finished and failed runs (remove failed.json to run one
again) and refuses ones that ran with other settings; the report aggregates whatever exists into
benchmarks/results/flowgan.md (medians over seeds, failed runs counted) with FG's Table 1 beside it. One torch
thread per process.
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
from softq_ugan.cli import FAILED, failed_seeds, runs_cell  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OBJECTIVES = ["mle", "adv", "hybrid:0.1", "hybrid:1"]
PAPER = {  # FG Table 1 (MNIST, NICE): best MODE score, test NLL in nats
    "mle": (7.42, -3334.56), "adv": (9.24, -1604.09), "hybrid:0.1": (9.37, -3342.95),
}


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_args(data: str, flow: str, objective: str, seed: int, steps: int, lr: float, eval_every: int, out: Path):
    """The ``softq_ugan.flowgan`` settings of one run (its ``config`` once it has run)."""
    from softq_ugan.flowgan import build_parser

    obj, _, lam = objective.partition(":")
    argv = ["--data", data, "--flow", flow, "--objective", obj, "--lam", lam or "0.1", "--steps", str(steps),
            "--lr", str(lr), "--lr-critic", str(lr), "--eval-every", str(eval_every), "--seed", str(seed),
            "--out", str(out), "--quiet", "--threads", "1"]
    if obj == "mle":
        argv.append("--parzen")  # the baseline is fitted once per seed, beside the MLE run
    return build_parser().parse_args(argv)


def run_one(data: str, flow: str, objective: str, seed: int, steps: int, lr: float, eval_every: int, out: Path) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    from softq_ugan.flowgan import run

    return run(run_args(data, flow, objective, seed, steps, lr, eval_every, out))


def med(values, spec: str) -> str:
    values = [v for v in values if v is not None]
    return format(statistics.median(values), spec) if values else "–"


def report(run_dir: Path, data: str, flow: str, objectives: list[str], command: str, setup: str) -> str:
    rows, parzen = [], []
    for objective in objectives:
        stem = f"{data}_{flow}_{objective.replace(':', '-')}"
        found = [json.loads(p.read_text()) for p in sorted(run_dir.glob(f"{stem}_*/metrics.json"))]
        found = [r for r in found if not r.get("interrupted")]
        failed = failed_seeds(run_dir, stem)
        runs = runs_cell(len(found), failed)
        if not found:
            if failed:
                rows.append(f"| {objective.replace(':', ' λ=')} | {runs} |" + " – |" * 10)
            continue
        parzen += [r["parzen"] for r in found if "parzen" in r]
        paper = PAPER.get(objective, (None, None))
        best = [r["best_mode_row"] for r in found]
        rows.append(
            f"| {objective.replace(':', ' λ=')} | {runs} | {med([r['best_mode'] for r in found], '.2f')} "
            f"| {med([b['inception'] for b in best], '.2f')} | {med([b['fd'] for b in best], '.3f')} "
            f"| {med([b['kid'] for b in best], '.4f')} "
            f"| {med([r['test_nll_nats'] for r in found], '.1f')} | {med([r['test_bits_per_dim'] for r in found], '.3f')} "
            f"| {med([r['mean_logdet_jacobian'] for r in found], '.1f')} "
            f"| {'–' if paper[0] is None else paper[0]} | {'–' if paper[1] is None else paper[1]} "
            f"| {med([r['seconds'] for r in found], '.0f')} |"
        )
    if parzen:
        rows.append(
            f"| Parzen (GMM) σ={med([p['sigma'] for p in parzen], '.3f')} | {len(parzen)} | {med([p['mode'] for p in parzen], '.2f')} "
            f"| {med([p['inception'] for p in parzen], '.2f')} | {med([p['fd'] for p in parzen], '.3f')} "
            f"| {med([p['kid'] for p in parzen], '.4f')} | {med([p['test_nll_nats'] for p in parzen], '.1f')} | – | – | – | – | – |"
        )
    return "\n".join([
        f"### {data}, {flow}", "", setup, "",
        "| objective | runs | best MODE | Inception-style | FD (LeNet features) | KID (LeNet) | test NLL (nats) "
        "| bits/dim | mean log\\|det J_G\\| | FG MODE (MNIST) | FG test NLL (MNIST) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
    ])


def figure(run_dir: Path, data: str, flow: str, objectives: list[str], path: Path) -> None:
    import numpy as np

    from softq_ugan.flowgan import plot_singular_value_cdf

    curves = {}
    for objective in objectives:
        f = run_dir / f"{data}_{flow}_{objective.replace(':', '-')}_0" / "singular_values.npy"
        if f.exists():
            curves[objective.replace(":", " λ=")] = np.load(f)
    if curves:
        plot_singular_value_cdf(curves, path, title=f"FG Fig. 4 analogue: {data}, {flow}, seed 0")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits")
    p.add_argument("--flow", default="nice")
    p.add_argument("--objectives", nargs="+", default=DEFAULT_OBJECTIVES, help="mle, adv, hybrid:LAMBDA")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2500, help="generator updates per run (default 2500, the runs of flowgan.md)")
    p.add_argument("--lr", type=float, default=5e-4, help="flow and critic learning rate (all objectives)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = p.parse_args()
    from softq_ugan.cli import check_args, check_settings, fail, run_failed, skip_failed
    from softq_ugan.data.images import DATASETS
    from softq_ugan.flowgan import OBJECTIVES
    from softq_ugan.flows.couplings import FLOWS

    check_args(positive={"--steps": args.steps, "--eval-every": args.eval_every, "--jobs": args.jobs}, seeds={"--seeds": args.seeds},
               names={"--data": (args.data, DATASETS), "--flow": (args.flow, FLOWS),
                      "--objectives": ([o.partition(":")[0] for o in args.objectives], OBJECTIVES)})
    for objective in args.objectives:
        lam = objective.partition(":")[2]
        if lam and not is_number(lam):
            fail(f"--objectives {objective}: the weight after ':' must be a number, e.g. hybrid:0.1")
    if not args.lr > 0:
        fail(f"--lr must be positive, got {args.lr}")
    run_dir = args.results / "flowgan"
    for objective in args.objectives:  # every finished (or failed) run the report reads must have run as this call asks
        stem = f"{args.data}_{args.flow}_{objective.replace(':', '-')}"
        for f in sorted([*run_dir.glob(f"{stem}_*/metrics.json"), *run_dir.glob(f"{stem}_*/{FAILED}")]):
            seed = int(f.parent.name.rpartition("_")[2])
            wanted = run_args(args.data, args.flow, objective, seed, args.steps, args.lr, args.eval_every, f.parent)
            check_settings(f"flowgan/{f.parent.name}", json.loads(f.read_text()).get("config", {}), vars(wanted))
    todo = []
    for objective in args.objectives:
        for seed in args.seeds:
            out = run_dir / f"{args.data}_{args.flow}_{objective.replace(':', '-')}_{seed}"
            if not (out / "metrics.json").exists() and not skip_failed(out, f"{objective} seed {seed}",
                                                                       say=not args.report_only):
                todo.append((objective, seed, out))
    start = time.time()
    if todo and not args.report_only:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_one, args.data, args.flow, o, s, args.steps, args.lr, args.eval_every, out): (o, s, out)
                       for o, s, out in todo}
            for fut in as_completed(futures):
                o, s, out = futures[fut]
                try:
                    m = fut.result()
                    print(f"{o} seed {s}: test NLL {m['test_nll_nats']:.1f}, best MODE {m['best_mode']:.2f} ({m['seconds']:.0f}s)", flush=True)
                except Exception as e:  # keep the other runs going; the record stops a rerun from training it again
                    run_failed(out, e, vars(run_args(args.data, args.flow, o, s, args.steps, args.lr, args.eval_every, out)),
                               f"{o} seed {s}")
    command = "python " + " ".join([f"benchmarks/flowgan.py", *sys.argv[1:]])
    setup = (f"`{command}` — {platform.machine()} {os.cpu_count()}-core CPU shared with other jobs, one torch thread "
             f"per process, {args.jobs} processes; seeds {args.seeds}; {args.steps} generator updates, batch 64, Adam "
             f"lr {args.lr} (β=0.5, 0.9) for flow and critic, 5 critic steps, GP weight 10; NICE with 4 additive "
             f"couplings of 2×256 ReLU + diagonal scale, logistic prior; critic an MLP 2×256 LeakyReLU. Medians over "
             f"seeds. Test NLL: the checkpoint with the best validation NLL (evaluated every {args.eval_every} updates); "
             f"MODE/Inception/FD/KID: the checkpoint with the best MODE score (1,000 samples vs the real test split). "
             f"Wall time of this invocation: {time.time() - start:.0f} s.")
    table = report(run_dir, args.data, args.flow, args.objectives, command, setup)
    figure(run_dir, args.data, args.flow, args.objectives, args.results / f"flowgan_{args.data}_singular_values.png")
    md = args.results / "flowgan.md"
    sections = {}
    if md.exists():  # keep the other datasets' sections
        for block in md.read_text().split("\n### ")[1:]:
            sections[block.split("\n", 1)[0]] = "### " + block
    sections[f"{args.data}, {args.flow}"] = table
    head = md.read_text().split("\n### ")[0] + "\n" if md.exists() else "# Flow-GAN benchmark (issue 5; FG Table 1, Fig. 4)\n\n<!-- notes -->\n\n"
    md.write_text(head + "\n".join(sections.values()))  # hand-written notes above the first section are kept
    print(table)


if __name__ == "__main__":
    main()
