"""VA Table 1 / Fig. 5 analogue: image VA-GAN with RKL, JSD and WGAN-GP under λ_t schedules.

Each run is ``python -m softq_ugan.vagan`` in a subprocess (one torch thread, ``--jobs`` at once);
finished runs (``metrics.json`` present) are reused, and refused if they ran with other settings.
Reports the final FD (LeNet features) and the classifier (Inception-style) score, medians over seeds,
the OA-vs-λ=0 FD change per loss, a PNG of FD over training, and the time of one training iteration
at batch 64 on 28×28.

    python benchmarks/vagan.py --data digits --iters 1500 --seeds 0 1 --schedules none oa
    python benchmarks/vagan.py --data fashion --iters 1500 --jobs 2        # the Fashion-MNIST table (~1 h)

The report goes to ``results/vagan.md`` for Fashion-MNIST (the issue's table) and ``results/vagan_<data>.md``
otherwise; text between ``<!-- notes -->`` and ``<!-- /notes -->`` in an existing report is kept on rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from report_notes import NOTES, write_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# column name -> (schedule, sign of lambda0); |lambda0| is --lambda0
COLUMNS = {
    "λ=−1": ("static", -1.0), "λ=0": ("none", 0.0), "λ=+1": ("static", 1.0),
    "PMA": ("pma", 1.0), "NMA": ("nma", 1.0), "OA": ("oa", 1.0), "OA-linear": ("oa-linear", 1.0),
}
SCHEDULE_TO_COLUMNS = {"none": ["λ=0"], "static": ["λ=−1", "λ=+1"], "pma": ["PMA"], "nma": ["NMA"], "oa": ["OA"], "oa-linear": ["OA-linear"]}


def critic_steps(loss: str, args) -> int:
    return args.wgan_critic_steps if loss == "wgan-gp" else 1


def claim(out: Path) -> bool:
    """Take ``out/.lock`` for this process; False while another live process holds it (two instances of this
    script can share one results folder, e.g. one per free core)."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # its holder is alive
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale: its holder died
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def run_lambda0(col: str, args) -> float:
    """λ0 of a column's runs: ``--lambda0`` with the column's sign."""
    return COLUMNS[col][1] * args.lambda0


def run_folder(col: str, loss: str, seed: int, args) -> Path:
    return Path(args.out) / args.data / f"{loss}_{COLUMNS[col][0]}_{run_lambda0(col, args):+g}_s{seed}"


def run_argv(col: str, loss: str, seed: int, args) -> list[str]:
    """The ``python -m softq_ugan.vagan`` arguments of one run."""
    return ["--data", args.data, "--loss", loss, "--schedule", COLUMNS[col][0], "--lambda0", str(run_lambda0(col, args)),
            "--iters", str(args.iters), "--seed", str(seed), "--eval-every", str(args.eval_every),
            "--eval-samples", str(args.eval_samples), "--ckpt-every", str(args.iters),
            "--out", str(run_folder(col, loss, seed, args)), "--quiet", "--critic-steps", str(critic_steps(loss, args)),
            *args.extra]


def run_one(col: str, loss: str, seed: int, args) -> dict:
    out = run_folder(col, loss, seed, args)
    if not (out / "metrics.json").exists():
        if not claim(out):
            return {"col": col, "loss": loss, "seed": seed, "error": "running in another instance"}
        cmd = [sys.executable, "-m", "softq_ugan.vagan", *run_argv(col, loss, seed, args)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        finally:
            (out / ".lock").unlink(missing_ok=True)
        if res.returncode != 0:
            return {"col": col, "loss": loss, "seed": seed, "error": (res.stderr.strip().splitlines() or ["?"])[-1]}
        print(res.stdout.strip(), flush=True)
        if not args.keep_checkpoints:
            (out / "checkpoint.pt").unlink(missing_ok=True)  # ~1.6 MB each; metrics, samples and TensorBoard stay
    m = json.loads((out / "metrics.json").read_text())
    return {"col": col, "loss": loss, "seed": seed, "fd": m["final"]["fd"], "score": m["final"]["inception"],
            "curve": [(e["step"], e["fd"]) for e in m["evals"]], "seconds": m["seconds"]}


def time_iteration(data: str, losses, wgan_critic_steps: int = 1, batch: int = 64, warmup: int = 3,
                   iters: int = 10) -> list[tuple]:
    """Milliseconds per ``VAGAN.update`` at ``batch`` on ``data`` (one thread), with λ = 0 and with OA; WGAN-GP
    also with the table's ``wgan_critic_steps``."""
    import torch

    from softq_ugan.data.images import dequantize, load_images
    from softq_ugan.vagan import VAGAN, VAGANConfig

    torch.set_num_threads(1)
    d = load_images(data)
    g = torch.Generator().manual_seed(0)
    rows = []
    settings = [(loss, s, 1) for loss in losses for s in ("none", "oa")]
    if "wgan-gp" in losses and wgan_critic_steps != 1:
        settings += [("wgan-gp", s, wgan_critic_steps) for s in ("none", "oa")]
    for loss, schedule, steps in settings:
        torch.manual_seed(0)
        gan = VAGAN(VAGANConfig(shape=d.shape, loss=loss, schedule=schedule, total_steps=1000, critic_steps=steps))
        batches = [dequantize(d.train[torch.randint(len(d.train), (batch,), generator=g)], d.levels, generator=g).float()
                   for _ in range(warmup + iters)]
        for b in batches[:warmup]:
            gan.update(b)
        t0 = time.perf_counter()
        for b in batches[warmup:]:
            gan.update(b)
        rows.append((loss, schedule, steps, 1000 * (time.perf_counter() - t0) / iters))
    return rows


def plot_curves(results: list[dict], losses, cols, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(losses), figsize=(4.2 * len(losses), 3.2), squeeze=False)
    for ax, loss in zip(axes[0], losses):
        for col in cols:
            curves = [r["curve"] for r in results if r["loss"] == loss and r["col"] == col and "curve" in r]
            if not curves:
                continue
            steps = [s for s, _ in curves[0]]
            med = [statistics.median(c[i][1] for c in curves if len(c) > i) for i in range(len(steps))]
            ax.plot(steps, med, marker="o", ms=3, label=col)
        ax.set_title(loss, fontsize=9)
        ax.set_xlabel("generator updates")
        ax.set_ylabel("FD (LeNet features)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", help="digits, mnist5k or fashion")
    p.add_argument("--losses", nargs="+", default=["rkl", "jsd", "wgan-gp"])
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULE_TO_COLUMNS), help=f"of {', '.join(SCHEDULE_TO_COLUMNS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--lambda0", type=float, default=1.0, help="|λ0| of every non-zero column (VA tried 0.1, 1, 10)")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-samples", type=int, default=1000)
    p.add_argument("--wgan-critic-steps", type=int, default=5,
                   help="critic steps per generator step for WGAN-GP (Gulrajani et al.'s 5; RKL and JSD use 1)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoint.pt")
    p.add_argument("--time-data", default="fashion", help="28×28 dataset for the per-iteration timing ('' to skip)")
    p.add_argument("--out", default=str(RESULTS / "vagan"))
    p.add_argument("--report", default=None,
                   help="markdown output (default results/vagan.md for fashion, vagan_<data>.md otherwise; _lam<λ0> for λ0 ≠ 1)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further arguments for softq_ugan.vagan")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from softq_ugan.cli import check_args, check_settings
    from softq_ugan.data.images import DATASETS
    from softq_ugan.vagan import LOSSES, build_parser

    check_args(positive={"--iters": args.iters, "--eval-every": args.eval_every, "--eval-samples": args.eval_samples,
                         "--wgan-critic-steps": args.wgan_critic_steps, "--jobs": args.jobs}, seeds={"--seeds": args.seeds},
               names={"--data": (args.data, DATASETS), "--losses": (args.losses, LOSSES),
                      "--schedules": (args.schedules, list(SCHEDULE_TO_COLUMNS)),
                      "--time-data": ([args.time_data] if args.time_data else [], DATASETS)})
    lam = "" if args.lambda0 == 1 else f"_lam{args.lambda0:g}"  # names of the report and the curves
    if args.report is None:
        args.report = str(RESULTS / f"vagan{'' if args.data == 'fashion' else f'_{args.data}'}{lam}.md")
    cols = [c for s in args.schedules for c in SCHEDULE_TO_COLUMNS[s]]
    cols = [c for c in COLUMNS if c in cols]
    jobs = [(c, loss, s) for loss in args.losses for c in cols for s in args.seeds]
    for job in jobs:  # a finished run is reused only if it ran as this call asks
        metrics = run_folder(*job, args) / "metrics.json"
        if metrics.exists():
            check_settings(f"{args.data}/{metrics.parent.name}", json.loads(metrics.read_text()).get("config", {}),
                           vars(build_parser().parse_args(run_argv(*job, args))))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as ex:
        results = list(ex.map(lambda j: run_one(*j, args), jobs))
    wall = time.perf_counter() - start
    timing = time_iteration(args.time_data, args.losses, args.wgan_critic_steps) if args.time_data else []

    def med(loss, col, key):
        v = [r[key] for r in results if r["loss"] == loss and r["col"] == col and key in r]
        return statistics.median(v) if v else float("nan")

    cmd = "python benchmarks/vagan.py " + shlex.join(sys.argv[1:])
    trained = sum(r.get("seconds", 0) for r in results) / 60
    lines = [
        f"# Image VA-GAN: variational annealing on {args.data} (VA Table 1 / Fig. 5 analogue)", "",
        f"Command: `{cmd}` (one torch thread per run, {args.jobs} runs at once)  ",
        f"Machine: {' '.join(filter(None, (platform.machine(), platform.processor())))}, {os.cpu_count()} cores, Python {platform.python_version()}  ",
        f"Budget: {args.iters} generator updates per run (batch 64; critic steps per update: RKL/JSD 1, "
        f"WGAN-GP {args.wgan_critic_steps}), seeds {args.seeds}, "
        f"FD/score on {args.eval_samples} samples every {args.eval_every} updates; {len(jobs)} runs, {trained:.0f} min of "
        f"training in all (this invocation's wall: {wall / 60:.1f} min; runs finished earlier are reused).  ",
        "Metric: FD (LeNet features, RMS-normalized; lower is better) of the final generator against the test split, "
        f"and the classifier (Inception-style) score (higher is better); medians over seeds. |λ0| = {args.lambda0:g} for every schedule "
        "(static columns: λ = ±|λ0|, −1 clamped to −0.99).", "",
        NOTES, "",
        "## Final FD (median over seeds)", "",
        "| loss | " + " | ".join(cols) + " | OA vs λ=0 |", "|---|" + "---|" * (len(cols) + 1),
    ]
    for loss in args.losses:
        change = ""
        if "OA" in cols and "λ=0" in cols:
            change = f"{100 * (med(loss, 'OA', 'fd') / med(loss, 'λ=0', 'fd') - 1):+.0f}%"
        lines.append(f"| {loss} | " + " | ".join(f"{med(loss, c, 'fd'):.3f}" for c in cols) + f" | {change} |")
    lines += ["", "## Final classifier score (median over seeds)", "",
              "| loss | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for loss in args.losses:
        lines.append(f"| {loss} | " + " | ".join(f"{med(loss, c, 'score'):.2f}" for c in cols) + " |")
    lines += ["", "## Per run", "", "| loss | column | seed | final FD | best FD | score | seconds |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['loss']} | {r['col']} | {r['seed']} | error: {r['error']} | | | |")
        else:
            lines.append(f"| {r['loss']} | {r['col']} | {r['seed']} | {r['fd']:.3f} | {min(f for _, f in r['curve']):.3f} "
                         f"| {r['score']:.2f} | {r['seconds']:.0f} |")
    if timing:
        lines += ["", f"## Time of one training iteration, batch 64, {args.time_data} 28×28, one thread", "",
                  "(1 discriminator step + 1 denoiser step when λ is used + 1 generator step; mean of 10 after 3 warm-up; "
                  "a WGAN-GP iteration of the table above has more discriminator steps; "
                  "default widths: generator 16, discriminator 16 (1,024 features), denoiser MLP 2×256)", "",
                  "| loss | schedule | critic steps | ms / iteration |", "|---|---|---|---|"]
        lines += [f"| {loss} | {s} | {k} | {ms:.1f} |" for loss, s, k, ms in timing]
    png = Path(args.report).parent / f"vagan_{args.data}_fd_curves{lam}.png"
    plot_curves(results, args.losses, cols, png, f"FD over training ({args.data}, median of seeds {args.seeds})")
    lines += ["", f"FD-over-training curves: `{os.path.relpath(png, ROOT)}`."]
    print(write_report(args.report, "\n".join(lines) + "\n"))  # hand-written notes survive a rerun


if __name__ == "__main__":
    main()
