"""What every command line of the project shares: one-line errors on bad input, result files that an interrupt
cannot leave half-written."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad command-line input)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def error_line(e: BaseException) -> str:
    """An exception as one line for :func:`fail`: its type and the first line of its message."""
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def check_args(positive: dict[str, Any] | None = None, seeds: dict[str, Any] | None = None,
               names: dict[str, tuple[Any, Any]] | None = None) -> None:
    """:func:`fail` on the first bad command-line value, before a script writes or starts anything. Each argument maps
    a flag to what it was given (None: not given): ``positive`` a value that must be >= 1; ``seeds`` a seed or a list
    of them, each >= 0 as gymnasium's reset seeds are; ``names`` (its value or values, the known names)."""
    for flag, value in (positive or {}).items():
        if value is not None and not value >= 1:
            fail(f"{flag} must be >= 1, got {value}")
    for flag, values in (seeds or {}).items():
        for seed in [] if values is None else [values] if isinstance(values, int) else values:
            if seed < 0:
                fail(f"{flag} must be >= 0 (gymnasium's reset seeds are), got {seed}")
    for flag, (values, known) in (names or {}).items():
        for value in [values] if isinstance(values, str) else values:
            if value not in known:
                fail(f"{flag}: unknown name '{value}'; choose from: {', '.join(known)}")


def check_settings(name: str, recorded: dict, wanted: dict, ignore: tuple[str, ...] = ("out", "threads", "quiet")) -> None:
    """:func:`fail` when a finished run that a benchmark would reuse or report ran with other settings than this call
    asks for, so that a report never states a command its runs did not run under. ``recorded``: the settings the run
    holds (its ``config``); ``wanted``: those a new run would get from this call. Only keys both hold are compared
    (a run that predates a setting passes), except those in ``ignore`` (where and how it ran, not what)."""
    for key, value in wanted.items():
        if key in recorded and key not in ignore and recorded[key] != value:
            fail(f"{name} finished with {key}={recorded[key]!r}, but this call asks for {key}={value!r}: give the "
                 f"settings it ran with, or remove it to run it again")


def write_json(path: str | Path, record: Any, indent: int = 1) -> None:
    """Write ``record`` as JSON to ``path`` through a temporary file and a rename, so that a run killed mid-write
    leaves the previous file whole (the runs and benchmarks resume from what their JSON says)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")
    tmp.write_text(json.dumps(record, indent=indent))
    os.replace(tmp, path)


FAILED = "failed.json"  # beside a benchmark run's results: the run raised, with what and under which settings
FAILED_SUFFIX = ".failed.json"  # the same, for a run kept in one result file <name>.json: <name>.failed.json


def failure_path(run: str | Path) -> Path:
    """Where a benchmark run's failure record lives: ``<run>/failed.json`` for a run kept in a folder, ``<name>.failed.json``
    beside a run kept in one result file ``<name>.json`` (bayeslr.py's)."""
    run = Path(run)
    return run.with_name(run.stem + FAILED_SUFFIX) if run.suffix == ".json" else run / FAILED


def record_failure(run: str | Path, error: BaseException, config: dict) -> None:
    """Write the run's failure record (:func:`failure_path`): the error as one line and the settings the run had. A
    benchmark rerun then skips the run (it fails the same way on the same build) while still checking its settings,
    and its report counts it as failed; removing the record runs it again."""
    write_json(failure_path(run), {"error": error_line(error), "config": config})


def recorded_failure(run: str | Path) -> dict | None:
    """The failure record of a benchmark run (``{"error", "config"}``), or None if it has none."""
    f = failure_path(run)
    return json.loads(f.read_text()) if f.is_file() else None


def run_failed(run: str | Path, error: BaseException, config: dict, label: str) -> None:
    """A benchmark run (its folder or result file ``run``) raised ``error``: say so in one line (``label``: the run's
    name in it) and record it (:func:`record_failure`), unless its worker process died (killed, out of memory), which
    is not the run's own failure: a rerun trains that one again."""
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(error, BrokenProcessPool):
        print(f"{label}: FAILED {error_line(error)} (not recorded: a rerun trains it)", flush=True)
        return
    record_failure(run, error, config)
    print(f"{label}: FAILED {type(error).__name__}: {error} (recorded in {failure_path(run)})", flush=True)


def failed_seeds(run_dir: str | Path, stem: str) -> list[int]:
    """The seeds of the runs ``<stem>_<seed>`` (folders or result files) in ``run_dir`` that left a failure record, in
    order."""
    names = [f.parent.name for f in Path(run_dir).glob(f"{stem}_*/{FAILED}")]
    names += [f.name.removesuffix(FAILED_SUFFIX) for f in Path(run_dir).glob(f"{stem}_*{FAILED_SUFFIX}")]
    seeds = (name.removeprefix(f"{stem}_") for name in names)
    return sorted(int(seed) for seed in seeds if seed.isdigit())  # not another stem's: "ring8_big_0" is not ring8's


def runs_cell(finished: int, failed: list[int]) -> str:
    """A report's "runs" cell: ``3``, or ``3 of 5 (failed: seeds 1, 4)`` when some failed."""
    if not failed:
        return str(finished)
    return f"{finished} of {finished + len(failed)} (failed: seed{'s' * (len(failed) > 1)} {', '.join(map(str, failed))})"


def skip_failed(run: str | Path, label: str, say: bool = True) -> bool:
    """Whether a benchmark should skip the run (its folder or result file ``run``) because it failed before; with
    ``say``, one line saying so (``label``: the run's name in it) and how to run it again."""
    failure = recorded_failure(run)
    if failure is not None and say:
        print(f"{label}: skipped, it failed before ({failure['error']}); remove {failure_path(run)} to run it "
              "again", flush=True)
    return failure is not None


def checkpoint_data(path: str | Path) -> dict:
    """What an SB3 checkpoint .zip records about its model (its ``data`` JSON: seed, policy class, ...), read
    without loading it; ValueError if ``path`` is not one (OSError if it cannot be opened)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("data"))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not an SB3 checkpoint ({e})") from None


BUILD_PACKAGES = ("torch", "mujoco", "stable_baselines3", "gymnasium", "numpy")


def build_info() -> dict:
    """What a run's numbers rest on besides the code and the seed: the installed versions of the packages it computes
    with (read from their metadata, none imported; one not installed is left out) and the instruction set torch's CPU
    kernels picked. Two runs of the same seed and code agree to the bit only where these agree (SAC's runs diverged
    between benchmark sittings once; a Swimmer run of session 32 did not come back on another build in session 38)."""
    from importlib import metadata

    import torch

    info = {}
    for name in BUILD_PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {**info, "cpu": torch.backends.cpu.get_cpu_capability()}


def build_text(build: dict | None) -> str:
    """A :func:`build_info` record as one line ("not recorded" for none)."""
    if not build:
        return "not recorded"
    return ", ".join(f"{k} {v}" for k, v in build.items() if k != "cpu") + f"; CPU kernels {build.get('cpu', '?')}"


def add_run_args(parser: argparse.ArgumentParser, out: str) -> None:
    """The options every trainer CLI ends with: data cap, seed, threads, output folder, quiet."""
    parser.add_argument("--max-train", type=int, default=None, help="use at most this many training images (tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=out)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def start_run(args: argparse.Namespace) -> None:
    """What every trainer CLI does first: its torch threads and seed (``add_run_args``' options)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)


def training_images(args: argparse.Namespace):
    """``(ImageData, train)``: the ``--data`` images split with ``--seed``, the training split capped at ``--max-train``."""
    from softq_ugan.data.images import load_images

    data = load_images(args.data, seed=args.seed)
    return data, (data.train[: args.max_train] if args.max_train else data.train)
