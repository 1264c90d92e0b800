"""Multi-seed runs and hyperparameter sweeps on Ray Tune, for users who outgrow one machine.

    python -m softq_ugan.sweep sweeps/swimmer_reward_tau.yaml                 # a local Ray runtime
    python -m softq_ugan.sweep CONFIG.yaml --address auto --max-concurrent 32   # join a running cluster
    python -m softq_ugan.sweep report runs/sweeps/swimmer-reward-tau          # markdown table + PNG

A YAML file names the environments, algorithms (``softq-<sampler>``, ``sac``, ``td3``), seeds, steps
and an optional search space (``grid`` over lists, or ``random`` over ``uniform``/``loguniform``/
``randint``/``choice``). Every configuration runs on every seed, so the report gives a median and
interquartile range per configuration. Each trial is one ``train_rl.py`` run, launched as a child
process of a Ray Tune function trainable: it writes TensorBoard logs, ``evals.json`` and checkpoints
under ``<out>/<name>/<trial>/`` as a single run does, and the trainable hands each evaluation to Tune
with a checkpoint. A trial whose worker dies is retried from its last checkpoint (Tune's
``FailureConfig``) while the others go on; rerunning the same command resumes an interrupted sweep.

Ray is an optional extra (``pip install -e .[sweep]``); the config parser and the report need only
PyYAML. The trainable runs ``train_rl.py`` as a process rather than importing the agents, so this
module keeps the package's one-way imports (nothing in ``softq_ugan/`` imports ``agents/``).
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from softq_ugan.cli import fail, write_json

# search-space keys → train_rl.py flags; which algorithms each applies to
PARAMS: dict[str, str] = {
    "reward_scale": "--reward-scale", "tau": "--tau", "gamma": "--gamma", "lr": "--lr", "polyak": "--polyak",
    "batch_size": "--batch-size", "value_particles": "--value-particles", "learning_starts": "--learning-starts",
    "schedule": "--schedule", "lambda0": "--lambda0", "proposal": "--proposal", "policy_delay": "--policy-delay",
    "target_entropy": "--target-entropy",
}
SOFTQ_ONLY = {"reward_scale", "tau", "target_entropy", "value_particles", "schedule", "lambda0", "proposal", "policy_delay"}
ANNEALED_ONLY = {"schedule", "lambda0"}  # the U-GAN and MAF samplers anneal; SVGD does not
INTEGER = {"batch_size", "value_particles", "learning_starts", "policy_delay"}
SAMPLERS = ("ugan", "ugan-nocritic", "ugan-oneway", "maf", "svgd", "gaussian")
ALGOS = tuple(f"softq-{s}" for s in SAMPLERS) + ("sac", "td3")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
TOP_KEYS = {"name", "env", "envs", "algos", "seeds", "steps", "eval_every", "eval_episodes", "search", "fixed",
            "trial"}
SEARCH_KEYS = {"method", "num_samples", "seed", "space"}
TRIAL_KEYS = {"cpus", "threads", "max_failures"}


class SweepConfigError(ValueError):
    """A bad sweep config; the message names the offending key."""


@dataclass
class Trial:
    """One (environment, algorithm, seed, configuration) run."""

    trial_id: str
    env: str
    algo: str
    seed: int
    params: dict[str, Any]
    config: str
    """The configuration's label (its parameters), shared by its seeds."""

    def argv(self, steps: int, eval_every: int, eval_episodes: int) -> list[str]:
        """``train_rl.py`` arguments of this trial (without ``--logdir``)."""
        if self.algo.startswith("softq-"):
            algo = ["--algo", "softq", "--sampler", self.algo.removeprefix("softq-")]
        else:
            algo = ["--algo", self.algo]
        out = ["--env", self.env, *algo, "--seed", str(self.seed), "--steps", str(steps),
               "--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes),
               "--checkpoint-every", str(10 * steps)]  # the eval checkpoints are the ones a retry uses
        for k, v in self.params.items():
            out += [PARAMS[k], str(v)]
        return out

    def run_subdir(self) -> str:
        """Where train_rl.py puts the run inside ``--logdir``."""
        name = self.algo.removeprefix("softq-") if self.algo.startswith("softq-") else self.algo
        return f"{self.env}/{name}_{self.seed}"


@dataclass
class SweepSpec:
    """A parsed, validated sweep config."""

    name: str
    envs: list[str]
    algos: list[str]
    seeds: list[int]
    steps: int
    eval_every: int
    eval_episodes: int = 5
    configs: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    """The search space's points (each runs on every env × algo × seed)."""
    cpus: float = 1.0
    threads: int = 1
    max_failures: int = 3

    def trials(self) -> list[Trial]:
        """Every trial; parameters that do not apply to an algorithm are dropped, and duplicates with them."""
        seen, out = set(), []
        for env, algo, (ci, config), seed in itertools.product(self.envs, self.algos, enumerate(self.configs),
                                                              self.seeds):
            params = {k: v for k, v in config.items() if applies(k, algo)}
            key = (env, algo, seed, tuple(sorted(params.items())))
            if key in seen:
                continue
            seen.add(key)
            label = ",".join(f"{k}={v}" for k, v in params.items()) or "default"
            tid = f"{env}_{algo}_c{ci:02d}_s{seed}"
            out.append(Trial(tid, env, algo, seed, params, label))
        return out


def applies(key: str, algo: str) -> bool:
    """Whether the search-space ``key`` is a setting of ``algo``."""
    if key in SOFTQ_ONLY and not algo.startswith("softq-"):
        return False
    return not (key in ANNEALED_ONLY and algo == "softq-svgd")


def _err(path: str, message: str) -> SweepConfigError:
    return SweepConfigError(f"{path}: {message}")


def _positive_int(raw: dict, key: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise _err(key, "is required")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _err(key, f"must be a positive integer, got {value!r}")
    return value


def _str_list(raw: dict, key: str, default: Any = None) -> list:
    value = raw.get(key, default)
    if value is None:
        raise _err(key, "is required")
    value = value if isinstance(value, list) else [value]
    if not value:
        raise _err(key, "must not be empty")
    return value


def _num(value: Any) -> Any:
    """YAML reads ``1e-3`` (no dot) as a string: take numeric strings as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_value(path: str, key: str, value: Any) -> Any:
    """One value of parameter ``key``: type and range."""
    if key in ("schedule", "proposal"):
        if not isinstance(value, str):
            raise _err(path, f"must be a name, got {value!r}")
        return value
    if key == "tau" and isinstance(value, str) and value.startswith("auto"):  # a learned τ: auto or auto_<τ0>
        try:
            if not float(value.removeprefix("auto").removeprefix("_") or 1.0) > 0:
                raise ValueError
        except ValueError:
            raise _err(path, f"must be a positive number, auto or auto_<initial τ>, got {value!r}") from None
        return value
    value = _num(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(path, f"must be a finite number, got {value!r}")
    if key in INTEGER:
        if int(value) != value or value <= 0:
            raise _err(path, f"must be a positive integer, got {value!r}")
        return int(value)
    if key == "gamma" and not 0 < value < 1:
        raise _err(path, f"must lie in (0, 1), got {value!r}")
    if key == "polyak" and not 0 < value <= 1:
        raise _err(path, f"must lie in (0, 1], got {value!r}")
    if key in ("reward_scale", "tau", "lr") and value <= 0:
        raise _err(path, f"must be positive, got {value!r}")
    return float(value)


def _sample(path: str, key: str, dist: Any, rng: np.random.Generator) -> Any:
    """A draw of a random-search dimension: a list (choice) or {uniform|loguniform|randint|choice: ...}."""
    if isinstance(dist, list):
        dist = {"choice": dist}
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise _err(path, f"must be a list or one of {{{'|'.join(DISTRIBUTIONS)}: ...}}, got {dist!r}")
    kind, arg = next(iter(dist.items()))
    arg = [_num(a) for a in arg] if isinstance(arg, list) and kind != "choice" else arg
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise _err(f"{path}.choice", f"must be a non-empty list, got {arg!r}")
        return _check_value(f"{path}.choice", key, arg[rng.integers(len(arg))])
    if (not isinstance(arg, list) or len(arg) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, float))
                                                          for a in arg) or not arg[0] < arg[1]):
        raise _err(f"{path}.{kind}", f"needs [low, high] with low < high, got {arg!r}")
    lo, hi = arg
    if kind == "loguniform":
        if lo <= 0:
            raise _err(f"{path}.loguniform", f"needs 0 < low < high, got {arg!r}")
        return _check_value(path, key, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    if kind == "randint":
        return _check_value(path, key, int(rng.integers(int(lo), int(hi) + 1)))
    return _check_value(path, key, float(rng.uniform(lo, hi)))


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a sweep config (the YAML's mapping); bad keys and bad ranges raise :class:`SweepConfigError`."""
    if not isinstance(raw, dict):
        raise SweepConfigError(f"a sweep config is a mapping of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise _err(unknown[0], f"unknown key; valid keys: {', '.join(sorted(TOP_KEYS))}")
    if "env" in raw and "envs" in raw:
        raise _err("env", "give env or envs, not both")
    name = str(raw.get("name", "sweep"))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _err("name", f"must be letters, digits, '_', '.', '-' only, got {name!r}")
    envs = [str(e) for e in _str_list(raw, "envs" if "envs" in raw else "env", ["Swimmer-v4"])]
    algos = [str(a) for a in _str_list(raw, "algos", ["softq-ugan"])]
    for a in algos:
        if a not in ALGOS:
            raise _err("algos", f"unknown algorithm {a!r}; choose from: {', '.join(ALGOS)}")
    seeds = _str_list(raw, "seeds", [0])
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise _err("seeds", f"must be non-negative integers, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise _err("seeds", f"has duplicates: {seeds}")
    steps = _positive_int(raw, "steps")
    eval_every = _positive_int(raw, "eval_every", min(10_000, steps))
    if eval_every > steps:
        raise _err("eval_every", f"must not exceed steps ({steps}), got {eval_every}")
    eval_episodes = _positive_int(raw, "eval_episodes", 5)

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _err("fixed", f"must be a mapping of parameters, got {fixed!r}")
    for k in fixed:
        if k not in PARAMS:
            raise _err(f"fixed.{k}", f"unknown parameter; valid: {', '.join(PARAMS)}")
    fixed = {k: _check_value(f"fixed.{k}", k, v) for k, v in fixed.items()}

    configs: list[dict[str, Any]] = [dict(fixed)]
    search = raw.get("search")
    if search is not None:
        if not isinstance(search, dict):
            raise _err("search", f"must be a mapping, got {search!r}")
        bad = sorted(set(search) - SEARCH_KEYS)
        if bad:
            raise _err(f"search.{bad[0]}", f"unknown key; valid keys: {', '.join(sorted(SEARCH_KEYS))}")
        method = search.get("method", "grid")
        space = search.get("space")
        if method not in ("grid", "random"):
            raise _err("search.method", f"must be grid or random, got {method!r}")
        if not isinstance(space, dict) or not space:
            raise _err("search.space", "must be a non-empty mapping of parameter: values")
        for k in space:
            if k not in PARAMS:
                raise _err(f"search.space.{k}", f"unknown parameter; valid: {', '.join(PARAMS)}")
            if k in fixed:
                raise _err(f"search.space.{k}", "is also in fixed")
        if method == "grid":
            if "num_samples" in search:
                raise _err("search.num_samples", "applies to method random only")
            axes = []
            for k, values in space.items():
                if not isinstance(values, list) or not values:
                    raise _err(f"search.space.{k}", f"a grid needs a non-empty list of values, got {values!r}")
                axes.append([(k, _check_value(f"search.space.{k}", k, v)) for v in values])
            configs = [{**fixed, **dict(point)} for point in itertools.product(*axes)]
        else:
            n = _positive_int(search, "num_samples", None) if "num_samples" in search else None
            if n is None:
                raise _err("search.num_samples", "is required for method random")
            rng = np.random.default_rng(search.get("seed", 0))
            configs = [{**fixed, **{k: _sample(f"search.space.{k}", k, d, rng) for k, d in space.items()}}
                       for _ in range(n)]

    trial = raw.get("trial") or {}
    if not isinstance(trial, dict):
        raise _err("trial", f"must be a mapping, got {trial!r}")
    bad = sorted(set(trial) - TRIAL_KEYS)
    if bad:
        raise _err(f"trial.{bad[0]}", f"unknown key; valid keys: {', '.join(sorted(TRIAL_KEYS))}")
    cpus = trial.get("cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0:
        raise _err("trial.cpus", f"must be positive, got {cpus!r}")
    max_failures = trial.get("max_failures", 3)
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise _err("trial.max_failures", f"must be a non-negative integer, got {max_failures!r}")
    return SweepSpec(name, envs, algos, list(seeds), steps, eval_every, eval_episodes, configs, float(cpus),
                     _positive_int(trial, "threads", 1), max_failures)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepConfigError(f"sweep config '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SweepConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_spec(raw)


# ---------------------------------------------------------------- the Ray Tune trainable


def _child_setup(niceness: int) -> None:
    """In the child train_rl.py: SIGTERM (so it checkpoints) when its Ray worker dies, and the driver's priority."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    try:  # Ray runs workers at nice 15, which starves the training beside any other work
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError:
        pass


def _snapshot(run_dir: Path, step: int) -> Path | None:
    """A copy of the run's eval checkpoint at ``step`` (model, replay buffer, evals.json), or None if it moved on."""
    ckpt = run_dir / "checkpoints"
    tmp = Path(tempfile.mkdtemp(prefix="sweep_ckpt_"))
    try:
        for src in (ckpt / "eval.zip", ckpt / "eval_replay_buffer.pkl", run_dir / "evals.json"):
            shutil.copy2(src, tmp / src.name)
        if json.loads((tmp / "evals.json").read_text())["steps"] == step:
            return tmp
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return None


def run_trial(config: dict) -> None:
    """Ray Tune function trainable: one train_rl.py run, reporting each evaluation with a checkpoint."""
    from ray import tune

    t = config["trial"]
    trial = Trial(t["trial_id"], t["env"], t["algo"], t["seed"], t["params"], t["config"])
    storage = Path(config["storage"]) / trial.trial_id  # write beside Tune's own files when storage is local
    trial_dir = storage if storage.parent.is_dir() else Path(tune.get_context().get_trial_dir())
    write_json(trial_dir / "trial.json", dict(t, steps=config["steps"]))
    run_dir = trial_dir / trial.run_subdir()
    argv = trial.argv(config["steps"], config["eval_every"], config["eval_episodes"])
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a retry: continue from the last reported evaluation
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        with checkpoint.as_directory() as d:
            shutil.copy2(Path(d) / "evals.json", run_dir / "evals.json")
            for name in ("eval.zip", "eval_replay_buffer.pkl"):
                shutil.copy2(Path(d) / name, run_dir / "checkpoints" / name)
        argv += ["--resume", str(run_dir / "checkpoints" / "eval.zip")]
    reported = len(json.loads((run_dir / "evals.json").read_text())["evals"]) if checkpoint is not None else 0
    threads = str(config["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    cmd = [sys.executable, config["script"], *argv, "--logdir", str(trial_dir), "--threads", threads, "--quiet"]
    with open(trial_dir / "train_rl.log", "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=config["cwd"],
                                preexec_fn=lambda: _child_setup(config["niceness"]))

        def report_new(final: bool) -> int:
            nonlocal reported
            try:
                record = json.loads((run_dir / "evals.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return reported
            evals, wall = record["evals"], record.get("wall", [])
            while reported < len(evals):
                step, value = evals[reported]
                metrics = dict(eval_return=value, env_steps=step,
                               train_seconds=wall[reported] if reported < len(wall) else float("nan"))
                snap = _snapshot(run_dir, step) if reported == len(evals) - 1 else None
                if reported == len(evals) - 1 and snap is None and not final:
                    return reported  # the checkpoint is being rewritten: try again at the next poll
                if snap is not None:
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(snap)))
                    shutil.rmtree(snap, ignore_errors=True)
                else:
                    tune.report(metrics)
                reported += 1
            return reported

        try:
            while proc.poll() is None:
                time.sleep(1.0)
                report_new(final=False)
        finally:
            if proc.poll() is None:  # the trainable is being stopped: let train_rl checkpoint
                proc.terminate()
                proc.wait(timeout=120)
        report_new(final=True)
    if proc.returncode != 0:
        tail = (trial_dir / "train_rl.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"train_rl.py exited with status {proc.returncode}: {' '.join(tail)}")


def train_script() -> Path:
    """The repository's train_rl.py (the package is installed editable from the repository)."""
    path = Path(__file__).resolve().parents[1] / "train_rl.py"
    if not path.is_file():
        raise FileNotFoundError(f"train_rl.py not found at {path}; run from a clone of the repository")
    return path


def run(spec: SweepSpec, out: str | Path = "runs/sweeps", address: str | None = None,
        max_concurrent: int | None = None, verbose: int = 1) -> Path:
    """Run (or resume) every trial of ``spec`` on Ray Tune; returns the sweep's folder ``<out>/<name>``."""
    import ray
    from ray import tune

    # one snapshot per reported checkpoint is what we want, not a warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    out = Path(out).resolve()
    sweep_dir = out / spec.name
    trials = spec.trials()
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=verbose > 1,
                 configure_logging=verbose > 1)
    else:
        ray.init(address=address, log_to_driver=verbose > 1)
    try:
        trainable = tune.with_resources(run_trial, {"cpu": spec.cpus})
        if tune.Tuner.can_restore(str(sweep_dir)):
            tuner = tune.Tuner.restore(str(sweep_dir), trainable, resume_errored=True)
        else:
            space = dict(trial={"grid_search": [t.__dict__ for t in trials]}, steps=spec.steps,
                         eval_every=spec.eval_every, eval_episodes=spec.eval_episodes, threads=spec.threads,
                         script=str(train_script()), cwd=str(train_script().parent), storage=str(sweep_dir),
                         niceness=os.getpriority(os.PRIO_PROCESS, 0))
            tuner = tune.Tuner(
                trainable, param_space=space,
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent,
                                            trial_name_creator=lambda t: t.config["trial"]["trial_id"],
                                            trial_dirname_creator=lambda t: t.config["trial"]["trial_id"]),
                run_config=tune.RunConfig(
                    name=spec.name, storage_path=str(out), verbose=verbose,
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
            )
        results = tuner.fit()
    finally:
        ray.shutdown()
    errors = [r for r in results if r.error is not None]
    if errors:
        print(f"{len(errors)} of {len(results)} trials failed; see their train_rl.log", file=sys.stderr)
    return sweep_dir


# ---------------------------------------------------------------- aggregation


def load_sweep(sweep_dir: str | Path) -> list[dict]:
    """Every trial of a sweep folder that has evaluations: its ``trial.json`` plus ``evals.json``."""
    out = []
    for meta in sorted(Path(sweep_dir).glob("*/trial.json")):
        t = json.loads(meta.read_text())
        trial = Trial(t["trial_id"], t["env"], t["algo"], t["seed"], t["params"], t["config"])
        evals = meta.parent / trial.run_subdir() / "evals.json"
        if evals.is_file():
            record = json.loads(evals.read_text())
            if record["evals"]:
                out.append(dict(t, record=record))
    return out


def curve_stats(curves: list[list[list[float]]]) -> tuple[list[int], list[list[float]]]:
    """Eval steps and, at each, the values of every curve that reached it (curves: [[step, value], ...])."""
    steps = sorted({int(s) for c in curves for s, *_ in c})
    return steps, [[v for c in curves for s, v, *_ in c if s == t] for t in steps]


def median_iqr(values: list[float], fmt: str = "{:.1f}", show_n: bool = True) -> str:
    """``median [25%, 75%] (n=...)`` of a list, each number formatted by ``fmt``."""
    if not len(values):
        return "–"
    q25, q50, q75 = (fmt.format(v) for v in np.percentile(values, [25, 50, 75]))
    return f"{q50} [{q25}, {q75}]" + (f" (n={len(values)})" if show_n else "")


def group_trials(trials: list[dict]) -> dict[str, list[dict]]:
    """Trials by configuration: ``env · algo · params``."""
    groups: dict[str, list[dict]] = {}
    for t in trials:
        groups.setdefault(f"{t['env']} · {t['algo']} · {t['config']}", []).append(t)
    return groups


def report(sweep_dir: str | Path, max_columns: int = 8) -> str:
    """Markdown: per configuration the final median [IQR] over seeds, the best one, and each eval step."""
    sweep_dir = Path(sweep_dir)
    trials = load_sweep(sweep_dir)
    if not trials:
        raise FileNotFoundError(f"no trial with evaluations under {sweep_dir}")
    groups = group_trials(trials)

    def final(group: list[dict]) -> tuple[int, list[float]]:
        steps, values = curve_stats([t["record"]["evals"] for t in group])
        return steps[-1], values[-1]

    ranked = sorted(groups, key=lambda g: -float(np.median(final(groups[g])[1])))
    lines = [f"# Sweep `{sweep_dir.name}`\n",
             f"{len(trials)} trials with evaluations in {len(groups)} configurations; deterministic eval return, "
             "median [25%, 75%] over seeds.\n",
             f"**Best configuration:** {ranked[0]} (final median {np.median(final(groups[ranked[0]])[1]):.1f}).\n",
             "| configuration | seeds | last step | final eval return | best eval return | wall s per 1,000 steps |",
             "|---|---|---|---|---|---|"]
    for g in ranked:
        step, values = final(groups[g])
        best = [max(v for _, v, *_ in t["record"]["evals"]) for t in groups[g]]
        cost = [1000 * t["record"]["seconds"] / max(t["record"]["steps"], 1) for t in groups[g]]
        lines.append(f"| {g} | {len(groups[g])} | {step} | {median_iqr(values)} | {median_iqr(best)} "
                     f"| {np.median(cost):.1f} |")
    shown = ranked[:max_columns]
    table_steps = sorted({int(s) for g in shown for t in groups[g] for s, *_ in t["record"]["evals"]})
    lines += ["", "Eval return at each step (median [IQR] over seeds"
              + (f"; the best {max_columns} configurations" if len(ranked) > max_columns else "") + "):\n",
              "| step | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    stats = {g: dict(zip(*curve_stats([t["record"]["evals"] for t in groups[g]]))) for g in shown}
    for s in table_steps:
        lines.append(f"| {s} | " + " | ".join(median_iqr(stats[g].get(s, [])) for g in shown) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(groups: dict[str, list[list[list[float]]]], path: str | Path, title: str = "",
                ylabel: str = "eval return (median, IQR)") -> None:
    """Median curve with an interquartile band per group (group → list of [[step, value], ...] curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, curves in groups.items():
        if not curves:
            continue
        steps, values = curve_stats(curves)
        ax.plot(steps, [np.median(v) for v in values], marker=".", label=f"{label} (n={len(curves)})")
        ax.fill_between(steps, [np.percentile(v, 25) for v in values], [np.percentile(v, 75) for v in values],
                        alpha=0.2)
    ax.set(xlabel="environment steps", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(sweep_dir: str | Path, max_columns: int = 8) -> tuple[Path, Path]:
    """Write ``report.md`` and ``curves.png`` into the sweep folder."""
    sweep_dir = Path(sweep_dir)
    text = report(sweep_dir, max_columns)
    groups = group_trials(load_sweep(sweep_dir))
    ranked = sorted(groups, key=lambda g: -float(np.median([t["record"]["evals"][-1][1] for t in groups[g]])))
    png = sweep_dir / "curves.png"
    plot_curves({g: [t["record"]["evals"] for t in groups[g]] for g in ranked[:max_columns]}, png,
                title=sweep_dir.name)
    md = sweep_dir / "report.md"
    md.write_text(text + "\n![curves](curves.png)\n")
    return md, png


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        p = argparse.ArgumentParser(prog="python -m softq_ugan.sweep report",
                                    description="Aggregate a sweep folder into report.md and curves.png.")
        p.add_argument("run_dir")
        p.add_argument("--max-columns", type=int, default=8, help="configurations shown per step table and plot")
        args = p.parse_args(argv[1:])
        if not Path(args.run_dir).is_dir():
            fail(f"sweep folder '{args.run_dir}' does not exist")
        try:
            md, png = write_report(args.run_dir, args.max_columns)
        except FileNotFoundError as e:
            fail(str(e))
        print(md.read_text())
        print(f"wrote {md} and {png}", file=sys.stderr)
        return 0
    p = argparse.ArgumentParser(prog="python -m softq_ugan.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML sweep config (see sweeps/)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: 'auto' or ray://host:port (default: start a local runtime)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at a time (default: as CPUs allow)")
    p.add_argument("--out", default="runs/sweeps", help="root of sweep folders (default runs/sweeps)")
    p.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    args = p.parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent <= 0:
        fail(f"--max-concurrent must be positive, got {args.max_concurrent}")
    try:
        spec = load_spec(args.config)
    except SweepConfigError as e:
        fail(f"{args.config}: {e}" if not str(e).startswith(str(args.config)) else str(e))
    trials = spec.trials()
    if args.dry_run:
        for t in trials:
            print(t.trial_id, t.config)
        print(f"{len(trials)} trials", file=sys.stderr)
        return 0
    try:
        import ray  # noqa: F401
    except ImportError:
        fail("Ray Tune is not installed; install the sweep extra: pip install -e '.[sweep]'")
    sweep_dir = run(spec, args.out, args.address, args.max_concurrent)
    try:
        md, png = write_report(sweep_dir)
        print(f"report: {md} and {png}", file=sys.stderr)
    except FileNotFoundError as e:
        print(f"no report: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
