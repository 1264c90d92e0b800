"""Plot TensorBoard scalars (value vs step) of one or more runs into a PNG: one line per run, one panel per tag.

    python scripts/plot_tensorboard.py runs/a runs/b --tag eval/mean_reward --out curve.png
    python scripts/plot_tensorboard.py runs/a --tag train/q_loss --tag sampler/generator_loss --label ugan

Every events file under a RUN_DIR (recursively) is read; their points are merged by step. Exits 2 with a
one-line error when a RUN_DIR has no events file or lacks a tag (the available tags are listed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

MAX_LISTED_TAGS = 15


class TagNotFoundError(LookupError):
    """A run has no scalar of that tag; ``available`` lists the tags it has."""

    def __init__(self, run_dir: str | Path, tag: str, available: list[str]):
        self.run_dir, self.tag, self.available = str(run_dir), tag, available
        listed = ", ".join(available[:MAX_LISTED_TAGS])
        if len(available) > MAX_LISTED_TAGS:
            listed += f", … ({len(available) - MAX_LISTED_TAGS} more)"
        super().__init__(f"tag '{tag}' not found in {run_dir}; available scalar tags: {listed or '(none)'}")


def event_files(run_dir: str | Path) -> list[Path]:
    """Every TensorBoard events file under ``run_dir`` (recursively), sorted; raises FileNotFoundError if none."""
    root = Path(run_dir)
    if not root.exists():
        raise FileNotFoundError(f"{run_dir} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("events.out.tfevents.*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no TensorBoard events file (events.out.tfevents.*) under {run_dir}")
    return files


def read_all_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of a run: tag → ``[(step, value), ...]`` sorted by step, merged over its events files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[str, list[tuple[int, float, float]]] = {}
    for path in event_files(run_dir):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0: keep every point
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            points.setdefault(tag, []).extend((e.step, e.wall_time, e.value) for e in acc.Scalars(tag))
    return {tag: [(int(s), float(v)) for s, _, v in sorted(p)] for tag, p in points.items()}


def read_scalars(run_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of one scalar tag of a run, sorted by step; raises TagNotFoundError if absent."""
    scalars = read_all_scalars(run_dir)
    if tag not in scalars:
        raise TagNotFoundError(run_dir, tag, sorted(scalars))
    return scalars[tag]


def plot_runs(series: list[tuple[str, dict[str, list[tuple[int, float]]]]], tags: list[str], out: str | Path,
              title: str | None = None) -> Path:
    """Save a PNG of ``(label, {tag: points})`` runs, one panel per tag and one line per run; returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.5 * len(tags)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(tags), 1, squeeze=False)[:, 0]
    for ax, tag in zip(axes, tags):
        for label, scalars in series:
            steps, values = zip(*scalars[tag]) if scalars[tag] else ((), ())
            ax.plot(steps, values, label=label, linewidth=1.2, marker="." if len(steps) < 30 else None)
        ax.set_ylabel(tag)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/plot_tensorboard.py",
        description="Plot TensorBoard scalars (value vs step) of runs into a PNG: one line per run, one panel per tag.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders searched recursively for events files")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG",
                   help="scalar tag; repeat for one panel per tag (default eval/mean_reward)")
    p.add_argument("--out", default="curve.png", help="output PNG (default curve.png)")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--label", action="append", dest="labels", metavar="NAME",
                   help="legend name of each RUN_DIR, in order (default: the folder's name)")
    return p


def fail(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    tags = args.tags or ["eval/mean_reward"]
    if args.labels is not None and len(args.labels) != len(args.run_dirs):
        fail(f"{len(args.labels)} --label for {len(args.run_dirs)} RUN_DIR; give one per RUN_DIR or none")
    labels = args.labels or [Path(d).resolve().name for d in args.run_dirs]
    if len(set(labels)) != len(labels):  # two runs named alike: tell them apart by their paths
        labels = [str(d) for d in args.run_dirs] if args.labels is None else labels
    series: list[tuple[str, dict[str, list[tuple[int, float]]]]] = []
    for run_dir, label in zip(args.run_dirs, labels):
        try:
            scalars = read_all_scalars(run_dir)
        except FileNotFoundError as e:
            fail(str(e))
        for tag in tags:
            if tag not in scalars:
                fail(str(TagNotFoundError(run_dir, tag, sorted(scalars))))
        series.append((label, {tag: scalars[tag] for tag in tags}))
    out = plot_runs(series, tags, args.out, args.title)
    print(f"wrote {out} ({len(series)} run(s), {len(tags)} tag(s))")


if __name__ == "__main__":
    main()
