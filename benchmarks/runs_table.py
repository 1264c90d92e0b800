"""Markdown table of train_rl.py runs: what each changed from the defaults, its eval returns, its cost.

    python benchmarks/runs_table.py runs/tuning_a/Swimmer-v4/ugan_10 runs/tuning_b/Swimmer-v4/ugan_10
    python benchmarks/runs_table.py runs/*/Swimmer-v4/* --every 20000

Each argument is a run folder of ``train_rl.py`` (``evals.json`` and ``config.json``). Columns: the
settings in which the runs differ, the deterministic eval return at each checkpoint (every ``--every``
steps), the first step with a return >= ``--threshold``, and wall seconds of training per 1,000 env steps
(machine load included: compare runs that ran side by side; a fork's over the steps it trained itself).

``--summary`` pools runs instead, one row per group of seeds (a run folder's name without its ``_<seed>``, under
the folder that holds it): how many runs reached ``--at`` steps, their median return there, how many were
>= ``--threshold`` there, and the steps at which they first were:

    python benchmarks/runs_table.py benchmarks/results/swimmer_tuning/ugan_*/Swimmer-v4/* --summary --at 150000

``--scalars KEY ...`` asks what the runs that never reached ``--threshold`` by ``--at`` (stuck) had in common in
training: each run's logged scalar (``train/temperature``, ``train/q_mean``, ...) at each of ``--scalar-steps``,
and, per key and step, the share of (stuck, reached) pairs in which the stuck run's value is the larger (0.5: no
signal). Scalars come from a benchmark run's evals.json (``train``) or a train_rl.py run's progress.csv:

    python benchmarks/runs_table.py benchmarks/results/swimmer_preset/softq-ugan_* --scalars train/temperature \
        train/q_mean --scalar-steps 50000 70000 90000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

SKIP = {"device", "steps", "buffer_size", "builds"}  # bookkeeping, not settings


def load(run: Path) -> dict:
    if not (run / "evals.json").is_file():
        raise FileNotFoundError(f"{run}: no evals.json (is it a train_rl.py run folder?)")
    record = json.loads((run / "evals.json").read_text())
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    return dict(run=run, record=record, evals={int(t): v for t, v in record["evals"]},
                config={k: v for k, v in config.items() if k not in SKIP})


def first_step(evals: dict[int, float], threshold: float, until: float = float("inf")) -> int | None:
    """The first checkpoint (up to ``until``) whose return is >= ``threshold``, or None."""
    return next((t for t, v in sorted(evals.items()) if v >= threshold and t <= until), None)


def cell(key: str, value) -> str:
    """A setting as a table cell; provenance (where a fork came from) by its run folder and file only."""
    def short(path) -> str:
        parts = Path(str(path)).parts  # <run>/checkpoints/<file>
        return f"{parts[-3]}/{parts[-1]}" if len(parts) >= 3 else str(path)

    if key in ("resumed_from", "replay_buffer_from"):
        return short(value)
    if key == "spliced" and isinstance(value, dict):
        parts = [f"{' '.join(value['take'])} of {short(value.get('donor'))}"] if value.get("take") else []
        parts += [f"{k}={v}" for k, v in value.get("set", {}).items()]  # splice_checkpoint.py --set
        return f"{short(value.get('base'))} + {'; '.join(parts)}"
    return str(value)


def start_step(record: dict, resumed: bool) -> int:
    """The step a run's folder began at: evals.json's ``start`` (a fork resumed into a new folder), or, for a fork
    recorded before ``start`` existed (``resumed``), its first eval step less the interval between its first two."""
    if "start" in record:
        return int(record["start"])
    steps = [int(t) for t, _ in record.get("evals", [])]
    if resumed and len(steps) > 1 and steps[0] > steps[1] - steps[0]:
        return steps[0] - (steps[1] - steps[0])
    return 0


def table(runs: list[dict], every: int, threshold: float) -> str:
    keys = sorted({k for r in runs for k in r["config"]})
    varying = [k for k in keys if len({json.dumps(r["config"].get(k)) for r in runs}) > 1] or ["seed"]
    last = max(r["record"].get("steps", 0) for r in runs)
    steps = list(range(every, last + 1, every))
    head = ["run", *varying, "steps", *[f"{s // 1000}k" for s in steps], f"first ≥ {threshold:g}", "s / 1k steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        evals = r["evals"]
        first = first_step(evals, threshold)
        first = "never" if first is None else f"{first // 1000}k"
        done = r["record"].get("steps", 0)
        trained = done - start_step(r["record"], "resumed_from" in r["config"])  # a fork's own steps
        cost = 1000 * r["record"].get("seconds", 0.0) / max(trained, 1)
        cells = [r["run"].parent.parent.name + "/" + r["run"].name, *[cell(k, r["config"][k]) if k in r["config"] else "–" for k in varying],
                 str(done), *[f"{evals[s]:.1f}" if s in evals else "" for s in steps], first, f"{cost:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    shared = {k: v for k, v in runs[0]["config"].items() if k not in varying}
    return "\n".join(lines) + "\n\nShared settings: " + ", ".join(f"{k}={v}" for k, v in shared.items()) + "\n"


def group_name(run: Path) -> str:
    """``<logdir>/<env>/<name>_<seed>`` -> ``<logdir>/<name>``; ``<bench>/<algo>_<seed>`` -> ``<bench>/<algo>``."""
    holder = run.parent.parent if re.search(r"-v\d+$", run.parent.name) else run.parent
    return holder.name + "/" + re.sub(r"_\d+$", "", run.name)


def summary(runs: list[dict], at: int, threshold: float) -> str:
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(group_name(r["run"]), []).append(r)
    head = ["group", "runs", "seeds", f"return at {at // 1000}k (median)", f"≥ {threshold:g} at {at // 1000}k",
            f"first ≥ {threshold:g}", "unfinished"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, members in groups.items():
        done = [r for r in members if at in r["evals"]]
        final = [r["evals"][at] for r in done]
        firsts = sorted(t for t in (first_step(r["evals"], threshold, until=at) for r in done) if t is not None)
        seeds = sorted(r["record"].get("seed", r["config"].get("seed", "?")) for r in members)
        cells = [name, str(len(members)), " ".join(map(str, seeds)),
                 f"{statistics.median(final):.1f}" if final else "–",
                 f"{sum(v >= threshold for v in final)} / {len(done)}",
                 ", ".join(f"{t // 1000}k" for t in firsts) or "never",
                 str(len(members) - len(done))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scalar_log(run: dict) -> list[tuple[int, dict]]:
    """A run's logged training scalars, (step, {key: value}) oldest first: evals.json's ``train`` (one entry per
    evaluation, benchmarks/swimmer.py) or else progress.csv (train_rl.py, SB3's CSV logger), after a resumed run's
    earlier stretches; empty if neither."""
    train = run["record"].get("train")
    if train is not None:
        return [(int(t), values) for t, values in train]
    import csv
    import re

    # a resumed run's earlier stretches, progress_before_<step>.csv (train_rl.keep_progress), then progress.csv
    pieces = sorted((int(m.group(1)), int(m.group(2) or 0), p) for p in run["run"].glob("progress_before_*.csv")
                    if (m := re.fullmatch(r"progress_before_(\d+)(?:_(\d+))?\.csv", p.name)))
    log: list[tuple[int, dict]] = []
    for csv_file in [p for *_, p in pieces] + [run["run"] / "progress.csv"]:
        if not csv_file.is_file():
            continue
        with csv_file.open() as f:
            rows = [(int(float(r["time/total_timesteps"])), {k: v for k, v in r.items() if v})  # numbers read on use
                    for r in csv.DictReader(f) if r.get("time/total_timesteps")]
        if rows:  # an earlier stretch's rows past where this one resumed were superseded by it
            log = [x for x in log if x[0] < rows[0][0]] + rows
    return log


def value_at(log: list[tuple[int, dict]], key: str, step: int) -> float | None:
    """``key``'s value logged last at or before ``step``, None if never."""
    seen = [values[key] for t, values in log if t <= step and key in values]
    return float(seen[-1]) if seen else None


def signature(runs: list[dict], keys: list[str], steps: list[int], at: int, threshold: float) -> str:
    """Per run: whether it reached ``threshold`` by ``at``, and each key at each step; then per key and step the
    share of (stuck, reached) pairs in which the stuck run's value is the larger (ties count one half)."""
    done = [r for r in runs if at in r["evals"]]
    firsts = [first_step(r["evals"], threshold, until=at) for r in done]
    columns = [(k, s) for k in keys for s in steps]
    values = []
    for r in done:
        log = scalar_log(r)
        values.append({(k, s): value_at(log, k, s) for k, s in columns})
    head = ["run", f"first ≥ {threshold:g}", *[f"{k} at {s // 1000}k" for k, s in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, first, row in zip(done, firsts, values):
        lines.append("| " + " | ".join([group_name(r["run"]) + "_" + str(r["record"].get("seed", "?")),
                                        "never" if first is None else f"{first // 1000}k",
                                        *["–" if row[c] is None else f"{row[c]:.4g}" for c in columns]]) + " |")
    stuck_rows = [row for first, row in zip(firsts, values) if first is None]
    reached_rows = [row for first, row in zip(firsts, values) if first is not None]
    lines += ["", f"Stuck (never ≥ {threshold:g} by {at // 1000}k): {len(stuck_rows)} runs; "
              f"reached: {len(reached_rows)}; {len(runs) - len(done)} short of {at // 1000}k left out.", "",
              "| scalar | step | P(stuck run's value > reached run's) | pairs |", "|---|---|---|---|"]
    for c in columns:
        stuck = [row[c] for row in stuck_rows if row[c] is not None]
        good = [row[c] for row in reached_rows if row[c] is not None]
        pairs = len(stuck) * len(good)
        share = sum((a > b) + 0.5 * (a == b) for a in stuck for b in good) / pairs if pairs else float("nan")
        lines.append(f"| {c[0]} | {c[1] // 1000}k | {share:.2f} | {pairs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="train_rl.py run folders (<logdir>/<env>/<name>_<seed>)")
    p.add_argument("--every", type=int, default=10_000, help="checkpoint spacing of the columns (default 10000)")
    p.add_argument("--threshold", type=float, default=300.0, help="return of the 'first ≥' column (default 300)")
    p.add_argument("--summary", action="store_true", help="one row per group of seeds instead of one per run")
    p.add_argument("--at", type=int, default=150_000, help="checkpoint the --summary is taken at (default 150000)")
    p.add_argument("--scalars", nargs="+", default=None, metavar="KEY",
                   help="training scalars to set beside whether each run reached --threshold by --at")
    p.add_argument("--scalar-steps", type=int, nargs="+", default=[50_000, 70_000, 90_000], metavar="STEP",
                   help="steps the --scalars are read at (default 50000 70000 90000)")
    args = p.parse_args(argv)
    if args.every <= 0 or args.at <= 0:
        sys.exit("error: --every and --at must be positive")
    try:
        runs = [load(Path(r)) for r in args.runs]
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    if args.scalars:
        print(signature(runs, args.scalars, args.scalar_steps, args.at, args.threshold))
    else:
        print(summary(runs, args.at, args.threshold) if args.summary else table(runs, args.every, args.threshold))


if __name__ == "__main__":
    main()
