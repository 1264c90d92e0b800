"""The benchmark scripts run end to end in a tiny configuration (issue 4): a few hundred steps, one seed."""

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_swimmer_benchmark_tiny_then_skips_finished_runs(tmp_path):
    args = ["benchmarks/swimmer.py", "--algos", "softq-ugan", "sac", "--seeds", "0", "--steps", "400",
            "--eval-every", "200", "--jobs", "1", "--results", str(tmp_path)]
    run(*args)
    for algo in ("softq-ugan", "sac"):
        record = json.loads((tmp_path / "swimmer" / f"{algo}_0" / "evals.json").read_text())
        assert [t for t, _ in record["evals"]] == [200, 400] and record["seconds"] > 0
        assert record["train"] == [[200, {}], [400, {}]]  # no gradient step before learning_starts (10,000): no scalars
    text = (tmp_path / "swimmer.md").read_text()
    assert "| 400 |" in text and "softq-ugan" in text and "sac" in text
    assert "| softq-ugan | 1 / 1 |" in text and "| sac | 1 / 1 |" in text and "× SAC" in text  # the summary
    ugan = json.loads((tmp_path / "swimmer" / "softq-ugan_0" / "evals.json").read_text())["settings"]
    assert (ugan["temperature"], ugan["proposal"], ugan["policy_delay"]) == ("auto", "generator", 1)  # train_rl's preset
    assert "- softq-ugan: gamma=0.999, reward_scale=1.0, temperature=auto, proposal=generator, policy_delay=1" in text
    assert (tmp_path / "swimmer.png").stat().st_size > 5000
    sitting = json.loads((tmp_path / "swimmer" / "sac_0" / "evals.json").read_text())["sittings"]
    assert [(x["start"], x["end"], x["jobs"]) for x in sitting] == [(0, 400, 1)] and sitting[0]["seconds"] > 0
    assert "| 0-400: " in text and "(1 job, " in text  # the per-run sittings column
    assert sitting[0]["cpu_seconds"] > 0 and ", CPU " in text and "| CPU s / 1k steps | × SAC (CPU) |" in text
    import torch  # each sitting records the build it ran on, and the report lists the builds with their runs

    assert sitting[0]["build"]["torch"] == torch.__version__ and sitting[0]["build"]["cpu"]
    assert f"- torch {torch.__version__}, mujoco " in text and ": softq-ugan 0, sac 0" in text
    command = shlex.join(["python", *args])  # each sitting records the command that ran it, and the report lists them
    assert sitting[0]["command"] == command and f"- `{command}`: softq-ugan 0, sac 0" in text
    assert f"Report: `{command} --report-only`" in text
    (tmp_path / "swimmer.md").write_text(text.replace("<!-- notes -->\n", "<!-- notes -->\nseed 0 ran alone\n"))
    again = run(*args)
    assert "0 runs to do" in again.stdout
    assert "seed 0 ran alone" in (tmp_path / "swimmer.md").read_text()  # hand-written notes survive a rerun
    assert len(json.loads((tmp_path / "swimmer" / "sac_0" / "evals.json").read_text())["sittings"]) == 1


def test_swimmer_benchmark_variant_flags_are_recorded_checked_and_kept(tmp_path):
    """--flags: train_rl.py flags for the SoftQ runs (SAC keeps the zoo's), recorded, refused if a run started without."""
    args = ["benchmarks/swimmer.py", "--algos", "softq-ugan", "sac", "--seeds", "0", "--steps", "200", "--eval-every",
            "200", "--jobs", "1", "--results", str(tmp_path), "--name", "anchor"]
    run(*args, "--flags=--bridge-anchor")
    ugan = json.loads((tmp_path / "anchor" / "softq-ugan_0" / "evals.json").read_text())
    assert ugan["flags"] == ["--bridge-anchor"] and "flags" not in json.loads(
        (tmp_path / "anchor" / "sac_0" / "evals.json").read_text())
    assert "train_rl.py flags: `--bridge-anchor`" in (tmp_path / "anchor.md").read_text()
    sys.path.insert(0, str(ROOT))
    from agents import SoftQ
    from softq_ugan.flows import ShiftedFlow

    assert isinstance(SoftQ.load(tmp_path / "anchor" / "softq-ugan_0" / "model.zip").sampler_trainer.sampler.bridge,
                      ShiftedFlow)  # the checkpoint a rerun resumes from is the anchored model
    for extra, message in (([], "started with flags --bridge-anchor, not none: give this variant another --name"),
                           (["--flags=--bridge-anchor", "--algos", "softq-maf"], "--bridge-anchor applies to the U-GAN")):
        r = subprocess.run([sys.executable, *args[:-2], "--name", "anchor", "--steps", "400", *extra],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 2 and message in r.stderr and "runs to do" not in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("flags, message", [(["--seeds", "0", "-1"], "error: --seeds must be >= 0"),
                                           (["--steps", "0"], "swimmer.py: error: --steps and --eval-every must be"),
                                           (["--jobs", "0"], "error: --jobs must be >= 1, got 0"),
                                           (["--compare", "nothere/sac"], "swimmer.py: error: --compare nothere/sac: no sac")])
def test_swimmer_benchmark_refuses_bad_arguments_before_writing(tmp_path, flags, message):
    r = subprocess.run([sys.executable, "benchmarks/swimmer.py", "--results", str(tmp_path / "r"), *flags],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(message), r.stderr[-2000:]
    assert not (tmp_path / "r").exists()  # nothing written, no worker started


@pytest.mark.parametrize("script, flags, message", [
    ("bayeslr.py", ["--datasets", "heart", "foo"], "--datasets: unknown name 'foo'; choose from: "),
    ("bayeslr.py", ["--ugan-steps", "0"], "--ugan-steps must be >= 1, got 0"),
    ("bayeslr.py", ["--ugan-lr", "nan"], "--ugan-lr must be positive, got nan"),
    ("flowgan.py", ["--steps", "-3"], "--steps must be >= 1, got -3"),
    ("flowgan.py", ["--objectives", "mle", "hybrid:x"], "--objectives hybrid:x: the weight after ':' must be a number"),
    ("flowgan.py", ["--flow", "glow"], "--flow: unknown name 'glow'"),
    ("vagan.py", ["--schedules", "foo"], "--schedules: unknown name 'foo'"),
    ("vagan.py", ["--losses", "hinge"], "--losses: unknown name 'hinge'"),
    ("oneway.py", ["--steps", "0"], "--steps must be >= 1, got 0"),
    ("profile_softq.py", ["--ops", "-1"], "--ops must be >= 0, got -1"),
    ("oneway.py", ["--seeds", "-2"], "--seeds must be >= 0 (gymnasium's reset seeds are), got -2"),
    ("ugan_toy.py", ["--targets", "moons"], "--targets: unknown name 'moons'"),
    ("samplers.py", ["--seeds", "-1"], "--seeds must be >= 0"),
    ("soft_value.py", ["x.zip", "--particles", "0", "16"], "--particles must be >= 1, got 0"),
    ("sb3_baseline.py", ["--seed", "-1"], "--seed must be >= 0 (gymnasium's reset seeds are), got -1"),
    # valid flags that disagree with the committed runs the report would reuse: refused, not reported under them
    ("oneway.py", ["--steps", "5"], "oneway/ring8_0 finished with steps=10000, but this call asks for steps=5"),
    ("oneway.py", ["--extra", "--w 0.3"], "oneway/ring8_0 finished with lr_d=0.001, but this call asks for lr_d=0.0001"),
    ("flowgan.py", ["--steps", "3000"], "flowgan/digits_nice_mle_0 finished with steps=2500, but this call asks for "
                                        "steps=3000"),
    ("ugan_toy.py", ["--steps", "5"], "ugan_toy/banana_ugan_none_0 finished with steps=3000"),
    ("bayeslr.py", ["--sgld-steps", "5"], "bayeslr/heart_0.json finished with sgld_steps=20000, but this call asks "
                                          "for sgld_steps=5"),
    ("samplers.py", ["--episodes", "5"], "samplers/multigoal_ugan_0.json finished with episodes=100"),
    ("vagan.py", ["--data", "digits", "--iters", "1000", "--eval-every", "200", "--losses", "wgan-gp"],
     "digits/wgan-gp_static_-1_s0 finished with critic_steps=1, but this call asks for critic_steps=5"),
])
def test_benchmarks_refuse_bad_input_in_one_line_before_touching_their_results(script, flags, message):
    """A bad flag is refused before any run or report: the committed results (their .md and run folders) stay as they
    are, and the report never records a command that produced nothing."""
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").glob("*.md")}
    r = subprocess.run([sys.executable, f"benchmarks/{script}", *flags], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    last = r.stderr.strip().splitlines()[-1]  # argparse's own errors come after its usage lines
    assert r.returncode == 2 and "error: " in last and message in last and not r.stdout, r.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").glob("*.md")} == before


def test_check_args_fails_on_the_first_bad_value_and_passes_good_ones(capsys):
    sys.path.insert(0, str(ROOT))
    from softq_ugan.cli import check_args

    check_args(positive={"--steps": 5, "--jobs": None}, seeds={"--seeds": [0, 3], "--seed": None},
               names={"--data": ("a", ("a", "b"))})  # all good
    for kwargs, message in (({"positive": {"--steps": 0}}, "--steps must be >= 1, got 0"),
                            ({"positive": {"--lr": float("nan")}}, "--lr must be >= 1, got nan"),
                            ({"seeds": {"--seed": -1}}, "--seed must be >= 0 (gymnasium's reset seeds are), got -1"),
                            ({"names": {"--data": (["a", "c"], ("a", "b"))}}, "--data: unknown name 'c'; choose from: a, b")):
        with pytest.raises(SystemExit) as e:
            check_args(**kwargs)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_swimmer_cost_counts_finished_runs_only_once_one_exists():
    """A run stopped during its cheap warm-up would drag the median cost down; it counts only while none finished."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from swimmer import cost_cell

    warm_up = dict(steps=10_000, seconds=2.0)  # 0.2 s per 1k steps: no gradient steps yet
    finished = [dict(steps=150_000, seconds=3600.0), dict(steps=150_000, seconds=3000.0)]  # 24.0 and 20.0
    assert cost_cell([warm_up, *finished], 150_000) == "22.0"
    assert cost_cell([warm_up], 150_000) == "0.2 (partial)"


@pytest.mark.parametrize("algo", ["softq", "sac"])
def test_swimmer_train_stats_read_the_last_training_scalars(algo):
    """What each evaluation records beside its return: τ (SAC's α), mean Q and the losses of the last train call."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from stable_baselines3 import SAC

    from agents import SoftQ
    from swimmer import train_stats

    if algo == "softq":
        model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", learning_starts=50, batch_size=32, seed=0,
                      temperature="auto")
    else:
        model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0)
    model.learn(120)
    stats = train_stats(model)
    assert 0 < stats["train/temperature" if algo == "softq" else "train/ent_coef"] < 1  # learned from 1 in 70 steps
    assert {"train/q_mean", "sampler/generator_loss", "train/temperature_clipped", "train/temperature_grad_max",
            "sampler/entropy"} <= set(stats) if algo == "softq" else "train/critic_loss" in stats
    assert all(isinstance(v, float) and v == v for v in stats.values())


def test_swimmer_summary_counts_the_runs_that_end_on_the_fast_gait():
    """The summary says how many finished runs end >= 300 (the fast gait) and when each first got there."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from swimmer import summary

    def log(seed, returns, steps=30_000):
        return dict(seed=seed, steps=steps, seconds=30.0, evals=[[10_000 * (i + 1), r] for i, r in enumerate(returns)])

    runs = {"softq-ugan": [log(0, [10.0, 310.0, 320.0]), log(1, [10.0, 20.0, 30.0]), log(2, [5.0, 350.0, 290.0]),
                           log(3, [1.0], steps=10_000)],  # seed 3 has not reached the end: not counted
            "sac": [log(0, [20.0, 40.0, 301.0])]}
    text = "\n".join(summary(runs, ["softq-ugan", "sac"], 30_000))
    assert "| softq-ugan | 3 / 4 | 290.0 [160.0, 305.0] | 1 / 3 | 0: 20k, 1: never, 2: 20k |" in text
    assert "| sac | 1 / 1 | 301.0 [301.0, 301.0] | 1 / 1 | 0: 30k |" in text
    assert text.count("| 1.0 | 1.00 | – | – |") == 2  # wall 30 s per 30k steps; no sitting recorded CPU seconds


def test_swimmer_cpu_cost_reads_only_the_sittings_that_recorded_it():
    """CPU seconds per 1k steps come from the sittings that recorded them (a run resumed across the change has none for
    its first sitting), and the summary's CPU cells say how many finished runs had any."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from swimmer import cpu_per_1k, sittings_cell, summary

    def sitting(start, end, seconds, cpu=None):
        return dict(start=start, end=end, seconds=seconds, jobs=2, date="d") | ({} if cpu is None else {"cpu_seconds": cpu})

    old = dict(seed=0, steps=30_000, seconds=90.0, evals=[[30_000, 300.0]], sittings=[sitting(0, 30_000, 90.0)])
    mixed = dict(seed=1, steps=30_000, seconds=70.0, evals=[[30_000, 310.0]],
                 sittings=[sitting(0, 10_000, 20.0), sitting(10_000, 30_000, 50.0, cpu=36.0), sitting(30_000, 30_000, 0.0, 0.0)])
    sac = dict(seed=1, steps=30_000, seconds=30.0, evals=[[30_000, 320.0]], sittings=[sitting(0, 30_000, 30.0, cpu=24.0)])
    assert cpu_per_1k(old) is None and cpu_per_1k(mixed) == 1.8 and cpu_per_1k(sac) == 0.8
    assert sittings_cell(mixed) == "0-10k: 2.0 s (2 jobs, d); 10k-30k: 2.5 s (2 jobs, d, CPU 1.8 s)"
    text = "\n".join(summary({"softq-ugan": [old, mixed], "sac": [sac]}, ["softq-ugan", "sac"], 30_000))
    assert "| 2.7 | 2.67 | 1.8 (1 of 2 runs) | 2.25 |" in text and "| 1.0 | 1.00 | 0.8 (1 of 1 runs) | 1.00 |" in text


def test_swimmer_compare_reads_another_sittings_runs_seed_by_seed(tmp_path):
    """--compare NAME/ALGO shows another sitting's runs beside this one's: in the per-seed table, and, for a seed run in
    both, how many evaluations the two runs share to the bit (a repeat on the same build of a deterministic algorithm)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from swimmer import compare_error, load_compared, report

    def write(name, algo, seed, returns, command=None):
        evals = [[10_000 * (i + 1), r] for i, r in enumerate(returns)]
        sittings = [dict(start=0, end=evals[-1][0], seconds=30.0, jobs=2, date="d", command=command)] if command else []
        (tmp_path / name / f"{algo}_{seed}").mkdir(parents=True)
        (tmp_path / name / f"{algo}_{seed}" / "evals.json").write_text(json.dumps(
            dict(algo=algo, seed=seed, steps=evals[-1][0], seconds=30.0, evals=evals, sittings=sittings)))

    write("old", "sac", 0, [20.0, 40.0, 301.0])
    write("old", "sac", 1, [10.0, 302.0, 330.0])
    write("old", "softq-ugan", 0, [5.0, 6.0, 7.0])
    write("new", "sac", 0, [20.0, 40.0, 299.5], "python a")  # the same run up to 20k, then not
    write("new", "softq-ugan-nocritic", 1, [1.0, 2.0], "python b")  # not finished; run by another command
    compared = load_compared(tmp_path, ["old/sac", "old/softq-ugan"])
    assert sorted(compared) == ["sac (old)", "softq-ugan (old)"] and len(compared["sac (old)"]) == 2
    text = report(tmp_path / "new", ["softq-ugan-nocritic", "sac"], "cmd", 30_000, compared)
    assert "| sac (old) | at 30k | 301.0 | 330.0 |" in text and "| sac (old) | first ≥ 300 | 30k | 20k |" in text
    assert "| softq-ugan (old) | first ≥ 300 | never | – |" in text  # finished without reaching 300; seed 1 not run
    assert "| softq-ugan-nocritic | at 30k | – | – |" in text and "| softq-ugan-nocritic | first ≥ 300 | – | – |" in text
    assert "- sac seed 0 here and in sac (old): the first 2 of 3 evaluations both made are identical; they differ from " \
           "30k on" in text
    # in the summary too, without a cost ratio: another sitting's seconds are not this sitting's
    assert "| sac (old) | 2 / 2 | 315.5 [308.2, 322.8] | 2 / 2 | 0: 30k, 1: 20k | 1.0 | – | – | – |" in text
    assert "| sac | 1 / 1 | 299.5 [299.5, 299.5] | 0 / 1 | 0: never | 1.0 | 1.00 | – | – |" in text
    # which command ran which run, the compared runs' sittings (none recorded) included
    assert "- `python b`: softq-ugan-nocritic 1\n- `python a`: sac 0\n- not recorded (sittings before commands were): " \
           "sac (old) 0, sac (old) 1, softq-ugan (old) 0\n" in text
    assert compare_error(tmp_path, "old/sac") is None
    assert compare_error(tmp_path, "old/td3") == f"--compare old/td3: no td3 runs in {tmp_path / 'old'}"
    assert compare_error(tmp_path, "old/foo").startswith("--compare old/foo: unknown algorithm 'foo'; choose from: ")
    assert compare_error(tmp_path, "sac") == "--compare takes NAME/ALGO (e.g. swimmer_preset/sac), got 'sac'"


def test_check_settings_refuses_a_finished_run_with_other_settings_only(capsys):
    sys.path.insert(0, str(ROOT))
    from softq_ugan.cli import check_settings

    recorded = {"steps": 100, "lr": 1e-3, "out": "/elsewhere/run_0", "threads": 4}
    check_settings("run_0", recorded, {"steps": 100, "lr": 0.001, "out": "/here/run_0", "threads": 1, "new_flag": 3})
    with pytest.raises(SystemExit) as e:
        check_settings("run_0", recorded, {"steps": 100, "lr": 3e-4})
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: run_0 finished with lr=0.001, but this call asks for lr=0.0003: "
                                               "give the settings it ran with, or remove it to run it again")


ONEWAY_NAN = "--lr-g 1e30 --lr-d 1e30 --batch-size 16 --num-samples 16 --eval-samples 100"


@pytest.mark.parametrize("args, label, run_path, report, row, changed", [
    (["benchmarks/oneway.py", "--targets", "ring8", "--seeds", "1", "--steps", "3", "--name", "tiny", "--extra", ONEWAY_NAN], "ring8",
     "tiny/ring8_1", "tiny.md", "| ring8 | 0 of 1 (failed: seed 1) | – |",
     ("--extra", ONEWAY_NAN.replace("1e30 --lr-d", "1e29 --lr-d"), "lr_g=1e+30, but this call asks for lr_g=1e+29")),
    (["benchmarks/flowgan.py", "--objectives", "adv", "--seeds", "1", "--steps", "2", "--eval-every", "1", "--lr", "1e30"], "adv",
     "flowgan/digits_nice_adv_1", "flowgan.md", "| adv | 0 of 1 (failed: seed 1) | – |",
     ("--lr", "1e29", "lr=1e+30, but this call asks for lr=1e+29")),
    # a job kept in one result file: its record is heart_1.failed.json beside where heart_1.json would be
    (["benchmarks/bayeslr.py", "--datasets", "heart", "--seeds", "1", "--ugan-steps", "2", "--svgd-steps", "2",
      "--sgld-steps", "2", "--ugan-lr", "1e30"], "heart",
     "bayeslr/heart_1.json", "bayeslr.md", "| heart | none (failed: 1) | – |",
     ("--ugan-lr", "1e29", "ugan_lr=1e+30, but this call asks for ugan_lr=1e+29")),
])
def test_benchmark_records_a_failed_run_skips_it_and_counts_it(tmp_path, args, label, run_path, report, row, changed):
    """A run that raises (here a real NaN loss, from learning rates of 1e30) leaves a failure record with its error and
    settings (``failed.json`` in its folder, or ``<name>.failed.json`` beside its result file); a rerun skips it rather
    than train it again, the report counts it as failed, a rerun with other settings is refused, and removing the record
    runs it again."""
    sys.path.insert(0, str(ROOT))
    from softq_ugan.cli import failure_path

    args = [*args, "--jobs", "1", "--results", str(tmp_path)]
    first = run(*args)
    record_file = failure_path(tmp_path / run_path)
    assert record_file.name == ("heart_1.failed.json" if run_path.endswith(".json") else "failed.json")
    record = json.loads(record_file.read_text())
    assert record["error"].startswith("FloatingPointError: ") and "is nan at update 0" in record["error"]
    assert record["config"]["seed"] == 1 and f"{label} seed 1: FAILED FloatingPointError" in first.stdout
    assert not (tmp_path / run_path / "metrics.json").exists() and not (tmp_path / run_path).is_file()
    again = run(*args)
    assert f"{label} seed 1: skipped, it failed before (FloatingPointError: " in again.stdout and "FAILED" not in again.stdout
    assert row in (tmp_path / report).read_text()
    flag, value, message = changed
    other = args.copy()
    other[other.index(flag) + 1] = value
    refused = subprocess.run([sys.executable, *other], capture_output=True, text=True, cwd=ROOT, timeout=600)
    name = run_path.replace(".json", ".failed.json") if run_path.endswith(".json") else run_path
    assert refused.returncode == 2 and f"{name} finished with {message}" in refused.stderr
    record_file.unlink()
    assert f"{label} seed 1: FAILED FloatingPointError" in run(*args).stdout


def test_failed_seeds_reads_both_record_layouts_and_no_other_stem(tmp_path):
    sys.path.insert(0, str(ROOT))
    from softq_ugan.cli import failed_seeds, record_failure, runs_cell

    for run in ("ring8_3", "ring8_1", "ring8_big_0", "heart_2.json", "heart_10.json", "heart-gen_4.json"):
        record_failure(tmp_path / run, FloatingPointError("nan"), {})
    (tmp_path / "heart_5.json").write_text("{}")  # a finished job is not a failed one
    assert failed_seeds(tmp_path, "ring8") == [1, 3] and failed_seeds(tmp_path, "heart") == [2, 10]
    assert runs_cell(3, failed_seeds(tmp_path, "heart")) == "3 of 5 (failed: seeds 2, 10)"


def test_samplers_benchmark_tiny(tmp_path):
    for seed, evals in ((0, [[10_000, 5.0], [20_000, 200.0]]), (1, [[10_000, 10.0]])):  # one finished, one resumable
        log = dict(algo="softq-maf", seed=seed, steps=evals[-1][0], seconds=evals[-1][0] / 50, evals=evals)
        (tmp_path / "swimmer" / f"softq-maf_{seed}").mkdir(parents=True)
        (tmp_path / "swimmer" / f"softq-maf_{seed}" / "evals.json").write_text(json.dumps(log))
    run("benchmarks/samplers.py", "--samplers", "maf", "--seeds", "0", "--steps", "1100", "--episodes", "5",
        "--jobs", "1", "--swimmer-steps", "20000", "--results", str(tmp_path))
    result = json.loads((tmp_path / "samplers" / "multigoal_maf_0.json").read_text())
    assert result["episodes"] == 5 and sum(result["goal_counts"]) <= 5
    text = (tmp_path / "samplers.md").read_text()
    r = subprocess.run([sys.executable, "benchmarks/samplers.py", "--samplers", "maf", "--seeds", "0", "--steps", "1200",
                        "--episodes", "5", "--results", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "samplers/multigoal_maf_0.json finished with steps=1100" in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "samplers.md").read_text() == text  # the report still states the command its runs ran under
    text = (tmp_path / "samplers.md").read_text()
    assert "| maf | " in text.split("## Swimmer")[0]  # the MultiGoal row
    # Swimmer: only the run at the budget enters the median; the short one is shown with its step
    assert "| maf | 1 / 2 | s0: 200.0, s1: 10.0 (@10k) | 200.0 [200.0, 200.0] (n=1) | 105.0 [57.5, 152.5] (n=2) | 20.0" in text, text


def test_soft_value_benchmark_tiny(tmp_path):
    run("train_rl.py", "--env", "MultiGoal-v0", "--sampler", "ugan", "--steps", "300", "--learning-starts", "100", "--batch-size", "32",
        "--eval-every", "300", "--eval-episodes", "1", "--logdir", str(tmp_path), "--quiet")
    ckpt = tmp_path / "MultiGoal-v0" / "ugan_0" / "checkpoints" / "last.zip"
    out = tmp_path / "soft_value.md"
    run("benchmarks/soft_value.py", str(ckpt), "--states", "4", "--repeats", "8", "--particles", "4", "16",
        "--refit", "3", "--out", str(out))
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith(f"| {ckpt} |")]
    arms = [(p, k) for k in ("MC", "RQMC") for p in ("uniform", "bridge")]
    arms += [("bridge refit (3 steps)", k) for k in ("MC", "RQMC")]
    assert [(r[2], r[3], r[4]) for r in rows] == [(m, p, k) for m in ("4", "16") for p, k in arms]
    assert all(r[8] == "1.00" for r in rows if r[3] == "uniform" and r[4] == "MC")  # the ratio's denominator
    assert all(np.isfinite(float(r[7])) and float(r[7]) >= 0 for r in rows)


def test_vagan_benchmark_tiny_keeps_notes_and_skips_runs_held_elsewhere(tmp_path):
    args = ["benchmarks/vagan.py", "--data", "digits", "--iters", "4", "--eval-every", "2", "--eval-samples", "32",
            "--seeds", "0", "--losses", "jsd", "wgan-gp", "--schedules", "none", "oa", "--wgan-critic-steps", "3",
            "--time-data", "", "--jobs", "1", "--out", str(tmp_path / "runs"), "--report", str(tmp_path / "r.md")]
    held = tmp_path / "runs" / "digits" / "jsd_oa_+1_s0"
    held.mkdir(parents=True)
    (held / ".lock").write_text(str(__import__("os").getpid()))  # a live process holds this run
    run(*args)
    config = json.loads((tmp_path / "runs" / "digits" / "wgan-gp_oa_+1_s0" / "metrics.json").read_text())["config"]
    assert config["critic_steps"] == 3
    assert json.loads((tmp_path / "runs" / "digits" / "jsd_none_+0_s0" / "metrics.json").read_text())["config"][
        "critic_steps"] == 1
    text = (tmp_path / "r.md").read_text()
    assert "| jsd | OA | 0 | error: running in another instance |" in text and not (held / "metrics.json").exists()
    assert (tmp_path / "vagan_digits_fd_curves.png").exists()
    assert "<!-- notes -->\n<!-- /notes -->" in text  # an empty place for notes
    (tmp_path / "r.md").write_text(text.replace("<!-- notes -->\n", "<!-- notes -->\nhand-written\n"))
    (held / ".lock").write_text("999999999")  # its holder died: the rerun takes the run over
    run(*args)
    text = (tmp_path / "r.md").read_text()
    assert "hand-written" in text and (held / "metrics.json").exists() and "error" not in text
    other = args[:args.index("--wgan-critic-steps")] + ["--wgan-critic-steps", "2"] + args[args.index("--time-data"):]
    r = subprocess.run([sys.executable, *other], capture_output=True, text=True, cwd=ROOT)  # the WGAN-GP runs took 3
    assert r.returncode == 2 and "digits/wgan-gp_none_+0_s0 finished with critic_steps=3, but this call asks for " \
        "critic_steps=2" in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "r.md").read_text() == text


def test_runs_table_shows_what_differs_returns_and_first_step(tmp_path):
    for name, tau, evals in (("a", 1.0, [[10000, 20.0], [20000, 310.0]]), ("b", "auto", [[10000, 5.0]])):
        run_dir = tmp_path / name / "Swimmer-v4" / "ugan_10"
        run_dir.mkdir(parents=True)
        (run_dir / "evals.json").write_text(json.dumps(dict(evals=evals, steps=evals[-1][0], seconds=30.0)))
        (run_dir / "config.json").write_text(json.dumps(dict(env="Swimmer-v4", seed=10, temperature=tau, device="cpu")))
    r = run("benchmarks/runs_table.py", str(tmp_path / "a/Swimmer-v4/ugan_10"), str(tmp_path / "b/Swimmer-v4/ugan_10"))
    lines = r.stdout.splitlines()
    assert lines[0] == "| run | temperature | steps | 10k | 20k | first ≥ 300 | s / 1k steps |"
    assert lines[2] == "| a/ugan_10 | 1.0 | 20000 | 20.0 | 310.0 | 20k | 1.5 |"
    assert lines[3] == "| b/ugan_10 | auto | 10000 | 5.0 |  | never | 3.0 |"
    assert "Shared settings: env=Swimmer-v4, seed=10" in r.stdout
    bad = subprocess.run([sys.executable, "benchmarks/runs_table.py", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error:") and "no evals.json" in bad.stderr


def test_runs_table_counts_a_forks_own_steps_and_names_its_sources(tmp_path):
    """A fork resumed into a new folder at 100k: its cost is its seconds over the steps it trained (evals.json's
    start, or for older records its first eval less the eval interval), and where it came from reads as
    <run>/<file>, not whole paths."""
    source = "runs/a/Swimmer-v4/ugan_24/checkpoints/ugan_100000_steps.zip"
    forks = {"new": dict(evals=[[110000, 5.0], [120000, 6.0]], steps=120000, seconds=40.0, start=100000),
             "old": dict(evals=[[110000, 5.0], [120000, 6.0]], steps=120000, seconds=40.0),
             "set": dict(evals=[[110000, 5.0], [120000, 6.0]], steps=120000, seconds=40.0, start=100000)}
    configs = {"new": dict(seed=1, resumed_from=source, replay_buffer_from=source.replace(
                   "ugan_100000_steps.zip", "ugan_replay_buffer_100000_steps.pkl").replace("ugan_24", "ugan_25")),
               "old": dict(seed=2, resumed_from="runs/splice/x/checkpoints/spliced.zip",
                           spliced=dict(base=source, donor="fresh", take=["q"])),
               "set": dict(seed=3, resumed_from="runs/splice/y/checkpoints/spliced.zip",
                           spliced=dict(base=source, donor=None, take=[], set=dict(gamma=0.9999, polyak=0.01)))}
    for name, record in forks.items():
        run_dir = tmp_path / name / "Swimmer-v4" / "ugan_1"
        run_dir.mkdir(parents=True)
        (run_dir / "evals.json").write_text(json.dumps(record))
        (run_dir / "config.json").write_text(json.dumps(configs[name]))
    r = run("benchmarks/runs_table.py", *[str(tmp_path / n / "Swimmer-v4" / "ugan_1") for n in forks], "--every", "10000")
    rows = [line for line in r.stdout.splitlines() if line.startswith(("| new", "| old", "| set"))]
    assert rows[0].startswith("| new/ugan_1 | ugan_25/ugan_replay_buffer_100000_steps.pkl | ugan_24/ugan_100000_steps.zip | 1 | – |"), r.stdout
    assert rows[1].startswith("| old/ugan_1 | – | x/spliced.zip | 2 | ugan_24/ugan_100000_steps.zip + q of fresh |"), r.stdout
    assert rows[2].startswith("| set/ugan_1 | – | y/spliced.zip | 3 | ugan_24/ugan_100000_steps.zip + gamma=0.9999; "
                              "polyak=0.01 |"), r.stdout
    assert len(rows) == 3 and all(row.endswith("| never | 2.0 |") for row in rows), r.stdout  # 40 s over 20k steps, not over 120k


def test_runs_table_summary_pools_seeds_per_group(tmp_path):
    """--summary: one row per group of seeds (train_rl's <logdir>/<env>/<name>_<seed> and the benchmark's
    <name>/<algo>_<seed> alike), the median and the count >= threshold at --at, unfinished runs counted apart."""
    runs = {"arm_a/Swimmer-v4/ugan_1": [[10000, 100.0], [20000, 320.0]],
            "arm_a/Swimmer-v4/ugan_2": [[10000, 310.0], [20000, 290.0]],
            "arm_a/Swimmer-v4/ugan_3": [[10000, 10.0], [20000, 40.0]],
            "arm_a/Swimmer-v4/ugan_4": [[10000, 5.0]],
            "bench/sac_0": [[10000, 1.0], [20000, 301.0]]}
    for name, evals in runs.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "evals.json").write_text(json.dumps(dict(evals=evals, steps=evals[-1][0],
                                                                    seed=int(name[-1]))))
    r = run("benchmarks/runs_table.py", *[str(tmp_path / n) for n in runs], "--summary", "--at", "20000")
    lines = r.stdout.splitlines()
    assert lines[0] == ("| group | runs | seeds | return at 20k (median) | ≥ 300 at 20k | first ≥ 300 | unfinished |")
    assert lines[2] == "| arm_a/ugan | 4 | 1 2 3 4 | 290.0 | 1 / 3 | 10k, 20k | 1 |", r.stdout
    assert lines[3] == "| bench/sac | 1 | 0 | 301.0 | 1 / 1 | 20k | 0 |", r.stdout


def test_runs_table_scalars_set_stuck_runs_beside_the_others(tmp_path):
    """--scalars: each run's training scalar at each step, last logged at or before it, read from a benchmark run's
    evals.json ``train`` and from a train_rl.py run's progress.csv alike; then the share of (stuck, reached) pairs in
    which the stuck run's value is larger, ties one half."""
    bench = {"bench/softq-ugan_0": ([[10000, 20.0], [20000, 40.0]], 0.03),  # stuck, high τ
             "bench/softq-ugan_1": ([[10000, 20.0], [20000, 330.0]], 0.01),
             "bench/softq-ugan_2": ([[10000, 310.0], [20000, 320.0]], 0.03)}
    for name, (evals, tau) in bench.items():
        (tmp_path / name).mkdir(parents=True)
        train = [[5000, {"train/temperature": 1.0}], [10000, {"train/temperature": tau}], [20000, {}]]
        (tmp_path / name / "evals.json").write_text(json.dumps(dict(evals=evals, steps=20000, seed=int(name[-1]),
                                                                    train=train)))
    csv_run = tmp_path / "tune" / "Swimmer-v4" / "ugan_7"  # stuck, τ from SB3's CSV log
    csv_run.mkdir(parents=True)
    (csv_run / "evals.json").write_text(json.dumps(dict(evals=[[10000, 5.0], [20000, 50.0]], steps=20000, seed=7)))
    (csv_run / "progress.csv").write_text("time/total_timesteps,train/temperature,rollout/ep_rew_mean\n"
                                          "8000,0.05,1\n9000,,2\n12000,0.5,3\n")
    runs = [*[str(tmp_path / n) for n in bench], str(csv_run)]
    r = run("benchmarks/runs_table.py", *runs, "--scalars", "train/temperature", "--scalar-steps", "10000",
            "--at", "20000")
    lines = r.stdout.splitlines()
    assert lines[0] == "| run | first ≥ 300 | train/temperature at 10k |"
    assert lines[2:6] == ["| bench/softq-ugan_0 | never | 0.03 |", "| bench/softq-ugan_1 | 20k | 0.01 |",
                          "| bench/softq-ugan_2 | 10k | 0.03 |", "| tune/ugan_7 | never | 0.05 |"], r.stdout
    # stuck 0.03 and 0.05 against reached 0.01 and 0.03: pairs 0.03>0.01, 0.03=0.03, 0.05>0.01, 0.05>0.03 → 3.5 / 4
    assert "| train/temperature | 10k | 0.88 | 4 |" in r.stdout and "Stuck (never ≥ 300 by 20k): 2 runs" in r.stdout


def test_policy_spread_measures_generator_and_bridge(tmp_path):
    """benchmarks/policy_spread.py on a saved U-GAN SoftQ: a generator made constant (last layer zeroed) has action
    spread 0 and entropy −inf, the bridge keeps its own; the entropy check's kNN estimate agrees with the bridge's
    exact entropy; a sampler without a separate bridge gets the width table only, a run folder without --steps is a
    one-line error."""
    import torch

    from agents import SoftQ

    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    for sampler in ("ugan", "maf"):
        model = SoftQ("MlpPolicy", "Swimmer-v4", sampler=sampler, learning_starts=50, batch_size=32, seed=0,
                      policy_kwargs=dict(net_arch=[32, 32]))
        model.learn(100)
        if sampler == "ugan":
            last = model.policy.sampler.generator.net[-1]
            with torch.no_grad():
                last.weight.zero_(), last.bias.fill_(0.5)
        model.save(ckpts / f"{sampler}_{100 if sampler == 'ugan' else 200}_steps.zip")
        model.save_replay_buffer(ckpts / f"{sampler}_replay_buffer_{100 if sampler == 'ugan' else 200}_steps.pkl")
    r = run("benchmarks/policy_spread.py", str(tmp_path / "run"), "--steps", "100", "--states", "16", "--samples", "8",
            "--entropy-states", "2", "--entropy-samples", "50", "--critic-check", "300", "--critic-states", "1")
    rows = [line.strip("|").split("|") for line in r.stdout.splitlines() if line.startswith("| 100 |")]
    assert float(rows[0][1]) == 0.0 and float(rows[0][2]) == float(rows[0][3]) == -math.inf, r.stdout  # width table
    assert float(rows[1][1]) == 0.0 and float(rows[1][2]) > 0.05, r.stdout
    assert float(rows[2][3]) == float(rows[2][4]) == -math.inf, r.stdout  # a point mass: kNN and Gaussian entropy −inf
    # the critic check: a point mass against the bridge's spread law is KL(ρ‖ν) = +inf from samples, and a one-state
    # classifier tells the two apart (E_ρ D far above 0)
    assert len(rows) == 4 and float(rows[3][2]) == math.inf and float(rows[3][7]) > 1.0, r.stdout
    r = run("benchmarks/policy_spread.py", str(tmp_path / "run"), "--steps", "200", "--entropy-states", "2",
            "--entropy-samples", "500")
    std, knn_action, knn_y, exact = r.stdout.split("| 100 |")[1].splitlines()[0].strip(" |").split("|")  # MAF at 100 steps
    assert float(std) > 0.05 and float(knn_action) < float(knn_y) and exact.strip() == "–", r.stdout
    assert "no bridge tables" in r.stdout
    bad = subprocess.run([sys.executable, "benchmarks/policy_spread.py", str(tmp_path / "run")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "a run folder needs --steps" in bad.stderr
    # a checkpoint .zip with replay_buffer.pkl beside it (benchmarks/swimmer.py's layout): the bridge's exact entropy
    # and its kNN estimate agree, and the generator's kNN entropy stays under its Gaussian bound
    model = SoftQ("MlpPolicy", "Swimmer-v4", sampler="ugan", learning_starts=50, batch_size=32, seed=0,
                  policy_kwargs=dict(net_arch=[32, 32]))
    model.learn(100)
    model.save(tmp_path / "bench" / "model.zip")
    model.save_replay_buffer(tmp_path / "bench" / "replay_buffer.pkl")
    r = run("benchmarks/policy_spread.py", str(tmp_path / "bench" / "model.zip"), "--states", "16", "--samples", "8",
            "--entropy-states", "4", "--entropy-samples", "1500")
    step, gauge, mean_d, knn, bound, gap, bridge_exact, bridge_knn = map(float, r.stdout.strip().splitlines()[-1].strip("|").split("|"))
    assert step == 100 and abs(bridge_exact - bridge_knn) < 0.1 and knn < bound + 0.05, r.stdout
    assert gap == pytest.approx(gauge - knn, abs=0.011), r.stdout


def test_policy_spread_reads_sac_width_and_refuses_td3(tmp_path):
    """SAC's width row: its kNN y-space entropy agrees with its Gaussian's exact entropy, and the action-space
    entropy is below it (tanh squashes); a TD3 checkpoint is a one-line error."""
    from stable_baselines3 import SAC, TD3

    ckpts = tmp_path / "sac" / "checkpoints"
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0, policy_kwargs=dict(net_arch=[32]))
    model.learn(100)
    model.save(ckpts / "sac_100_steps.zip")
    model.save_replay_buffer(ckpts / "sac_replay_buffer_100_steps.pkl")
    r = run("benchmarks/policy_spread.py", str(tmp_path / "sac"), "--steps", "100", "--entropy-states", "4",
            "--entropy-samples", "1500")
    std, knn_action, knn_y, exact = map(float, r.stdout.split("| 100 |")[1].splitlines()[0].strip(" |").split("|"))
    assert abs(knn_y - exact) < 0.1 and knn_action < knn_y and 0 < std < 1, r.stdout
    assert "no bridge tables" in r.stdout
    TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "td3.zip")
    bad = subprocess.run([sys.executable, "benchmarks/policy_spread.py", str(tmp_path / "td3.zip")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "SoftQ and SAC checkpoints only" in bad.stderr, bad.stderr


def test_profile_softq_times_the_swimmer_presets():
    r = run("benchmarks/profile_softq.py", "--preset", "--agents", "sac", "ugan/2", "ugan", "ugan+old",
            "--gradient-steps", "4", "--no-profile", "--ops", "3", "--parts")
    # --parts: each SoftQ agent's step, its soft value (the preset's proposal: the sampler's own pass) and sampler step
    parts = [re.fullmatch(r"(\S+) in parts \(CPU ms, 4 repeats\): whole gradient step ([\d.]+), soft value with the "
                          r"generator proposal ([\d.]+) \(of it the sampler's samples and log-density: ([\d.]+)\), "
                          r"sampler update ([\d.]+)", line) for line in r.stdout.splitlines() if " in parts " in line]
    assert [m and m[1] for m in parts] == ["ugan/2", "ugan", "ugan+old"]  # not SAC
    assert all(float(x) > 0 for m in parts for x in m.groups()[1:])
    lines = [line for line in r.stdout.splitlines() if "ms per gradient step" in line]
    # --ops: per agent, the torch profiler's split (matrix products against the rest) and its 3 costliest operators
    splits = [line for line in r.stdout.splitlines() if "under the torch profiler" in line]
    assert [line.split(" under")[0] for line in splits] == ["sac", "ugan/2", "ugan", "ugan+old"]
    for line in splits:
        total, matmul, rest = (float(x.split(" ms")[0].split()[-1]) for x in line.split(",")[:3])
        assert total > 0 and matmul > 0 and total == pytest.approx(matmul + rest, abs=0.02)
    assert r.stdout.count("| operator | calls per step | ms per step | share |") == 4
    rows = [line for line in r.stdout.splitlines() if re.fullmatch(r"\| \S.* \| [\d.]+ \| [\d.]+ \| [\d.]+% \|", line)]
    assert len(rows) == 12 and any(row.startswith("| aten::addmm |") for row in rows)
    assert [line.split(":")[0] for line in lines] == ["sac", "ugan/2", "ugan", "ugan+old"]
    assert all(float(line.split(":")[1].split()[0]) > 0 for line in lines)
    assert all(re.search(r" ms per gradient step \(CPU \d+\.\d ms; batch 256", line) for line in lines)
    assert "; batch 256)" in lines[0]  # SAC: the zoo's batch, no sampler
    # the preset's batch (not SoftQ's default 128) and SAC's actor batch, one sample for each of its 256 states
    assert all("; batch 256, 1 sample per state of 256 in the sampler step)" in line for line in lines[1:3])
    assert "; batch 256, 4 samples per state of 64 in the sampler step)" in lines[3]  # +old: sessions 22-30's preset


def test_profile_softq_builds_the_preset_with_the_flags_it_is_given():
    """What profile_softq's /N and --sampler-particles do: train_rl.default_model with the command line's flags."""
    sys.path.insert(0, str(ROOT))
    import train_rl
    from envs import make_env

    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000,
                                   ["--policy-delay", "2", "--sampler-particles", "1"])
    assert model.policy_delay == 2 and model.sampler_trainer.config.batch_size == 1
    assert model.batch_size == 256  # the rest of the preset stays
    r = subprocess.run([sys.executable, "benchmarks/profile_softq.py", "--agents", "ugan", "--sampler-particles", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "--sampler-particles applies with --preset only" in r.stderr
    r = subprocess.run([sys.executable, "benchmarks/profile_softq.py", "--preset", "--agents", "ugan", "--sampler-particles",
                        "0"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "--sampler-particles must be positive, got 0" in r.stderr  # not the preset's 1, quietly
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000,
                                   ["--sampler-batch-size", "64"])
    assert model.sampler_batch_size == 64 and model.sampler_trainer.config.batch_size == 1  # the preset's 1 stays
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from profile_softq import preset_flags  # --preset ugan-nocritic: the U-GAN's Swimmer preset, its critic D dropped

    env = make_env("Swimmer-v4", seed=0)
    ugan = train_rl.default_model("Swimmer-v4", env, "softq-ugan", 0, 1000, [])
    free = train_rl.default_model("Swimmer-v4", env, "softq-ugan-nocritic", 0, 1000,
                                  preset_flags(train_rl.SAMPLER_DEFAULTS["Swimmer", "ugan"]))
    assert ugan.policy.sampler_trainer.sampler.critic is not None and free.policy.sampler_trainer.sampler.critic is None
    keys = ("batch_size", "reward_scale", "temperature", "value_particles", "proposal", "sampler_batch_size")
    assert {k: getattr(free, k) for k in keys} == {k: getattr(ugan, k) for k in keys}
    assert free.policy.sampler_trainer.config == ugan.policy.sampler_trainer.config.__class__(
        **{**vars(ugan.policy.sampler_trainer.config), "critic": False})
    assert preset_flags({"a_b": True, "c": False, "d": [1, 2], "e": "auto"}) == ["--a-b", "--no-c", "--d", "1", "2", "--e", "auto"]


@pytest.mark.parametrize("agent", ["sac/2", "ugan/0", "ugan/x"])
def test_profile_softq_refuses_a_policy_delay_it_cannot_apply(agent):
    r = subprocess.run([sys.executable, "benchmarks/profile_softq.py", "--preset", "--agents", "ugan", agent],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    assert f"--agents {agent}: /N" in r.stderr and "ms per gradient step" not in r.stdout  # refused before any timing


@pytest.mark.parametrize("flags", [["--agents", "sac", "foo"], ["--agents", "td3"], ["--preset", "--agents", "ugan+ss2", "gan"]])
def test_profile_softq_refuses_an_unknown_agent_before_any_timing(flags):
    r = subprocess.run([sys.executable, "benchmarks/profile_softq.py", *flags], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-2000:]
    assert "unknown agent" in r.stderr and "ms per gradient step" not in r.stdout


def test_profile_softq_anchor_builds_the_anchored_preset_and_is_refused_elsewhere():
    sys.path.insert(0, str(ROOT))
    import train_rl
    from envs import make_env
    from softq_ugan.flows import ConditionalMAF, ShiftedFlow

    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000, [])
    assert isinstance(model.sampler_trainer.sampler.bridge, ShiftedFlow)  # the preset anchors the bridge (session 31)
    assert model.sampler_trainer.config.shared_bridge_step and len(model.critic.q_networks) == 2
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000,
                                   ["--no-bridge-anchor"])
    assert isinstance(model.sampler_trainer.sampler.bridge, ConditionalMAF)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from profile_softq import MODIFIERS

    flags = [f for m in ("unshared", "critics3") for f in MODIFIERS[m]]  # what ugan+unshared+critics3 passes
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000, flags)
    assert not model.sampler_trainer.config.shared_bridge_step and len(model.critic.q_networks) == 3
    flags = [f for m in ("noclip", "b256") for f in MODIFIERS[m]]  # ugan+noclip+b256: no clip, SAC's actor batch
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000, flags)
    assert model.sampler_trainer.config.max_grad_norm is None
    assert model.sampler_states == 256 and model.sampler_trainer.config.batch_size == 1
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000, MODIFIERS["ss2"])
    assert model.sampler_steps == 2 and model.gradient_steps == 1  # ugan+ss2: the sampler's second step alone
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan", 0, 1000, MODIFIERS["old"])
    assert isinstance(model.sampler_trainer.sampler.bridge, ConditionalMAF)  # ugan+old: sessions 22-30's preset
    assert model.sampler_trainer.config.max_grad_norm == 10.0
    assert model.sampler_states == 64 and model.sampler_trainer.config.batch_size == 4
    flags = [f for m in ("gauss", "gen256") for f in MODIFIERS[m]]  # ugan-nocritic+gauss+gen256: SAC's actor as G
    model = train_rl.default_model("Swimmer-v4", make_env("Swimmer-v4", seed=0), "softq-ugan-nocritic", 0, 1000, flags)
    assert type(model.sampler_trainer.sampler.generator).__name__ == "GaussianGenerator"
    assert model.sampler_trainer.config.generator_hidden == (256, 256) and model.sampler_trainer.sampler.critic is None
    for argv in (["--agents", "ugan+anchor"], ["--preset", "--agents", "maf+anchor"]):
        r = subprocess.run([sys.executable, "benchmarks/profile_softq.py", *argv],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 2 and "+anchor +shared +unshared +critics3 +noclip +ss2 +b256 +gen256 +gauss +old apply to a U-GAN sampler with --preset only" in r.stderr, r.stderr[-2000:]


def test_critic_bias_reads_the_critic_and_discounts_the_rollout(tmp_path):
    """benchmarks/critic_bias.py: G_t of a constant reward is its closed form; on a SoftQ and a SAC whose critics are
    made constant (last layers zeroed, biases set), the Q column is the smaller constant; bad input is one line."""
    import importlib.util

    import numpy as np
    import torch
    from stable_baselines3 import SAC

    from agents import SoftQ

    spec = importlib.util.spec_from_file_location("critic_bias", ROOT / "benchmarks" / "critic_bias.py")
    critic_bias = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(critic_bias)
    n, gamma, r = 50, 0.9, 0.5
    expected = r * (1 - gamma ** (n - np.arange(n))) / (1 - gamma)  # Σ_{k < n − t} γ^k r
    np.testing.assert_allclose(critic_bias.discounted_returns(np.full(n, r), gamma), expected, rtol=1e-12)
    np.testing.assert_allclose(critic_bias.discounted_returns([1.0, 2.0, 3.0], 0.5), [2.75, 3.5, 3.0])

    models = {"softq": SoftQ("MlpPolicy", "Swimmer-v4", sampler="ugan", learning_starts=50, batch_size=32, seed=0,
                             policy_kwargs=dict(net_arch=[32, 32])),
              "sac": SAC("MlpPolicy", "Swimmer-v4", learning_starts=50, batch_size=32, seed=0,
                         policy_kwargs=dict(net_arch=[32, 32]))}
    for name, model in models.items():
        model.learn(100)
        for critic in (model.critic, model.critic_target):
            for q_net, bias in zip(critic.q_networks, (7.0, 3.0)):
                with torch.no_grad():
                    q_net[-1].weight.zero_(), q_net[-1].bias.fill_(bias)
        model.save(tmp_path / f"{name}.zip")
    models["softq"].save_replay_buffer(tmp_path / "softq_replay_buffer.pkl")
    out = run("benchmarks/critic_bias.py", str(tmp_path / "softq.zip"), str(tmp_path / "sac.zip"),
              "--rollout-steps", "60", "--horizon", "20", "--bellman", "64").stdout
    # the Bellman table (SoftQ only): with Q ≡ 3, SQL's soft value over M uniform particles (q = 2^-d, τ = 1) is
    # V = τ log mean(exp(3/τ) / q) = 3 + τ d log 2 exactly, so the target is r + γ (3 + 2 log 2) on Swimmer (d = 2)
    (bellman,) = [line.strip("|").split("|") for line in out.split("Soft Bellman target")[1].splitlines()
                  if line.startswith(f"| {tmp_path}")]
    softq = models["softq"]
    assert softq.proposal == "uniform" and softq.policy.temperature == 1.0, "the closed form above assumes SQL's soft value"
    r, q, target, gap, q_next, ent = (float(v) for v in bellman[1:7])
    assert q == 3.0 and q_next == 3.0 and np.isfinite(ent), out
    assert target == pytest.approx(r + softq.gamma * (3.0 + 2 * np.log(2.0)), abs=0.012), out
    assert gap == pytest.approx(q - target, abs=0.012), out
    assert bellman[7].strip() != "– / –", out  # the U-GAN's D percentiles
    assert float(bellman[8]) == 2.0, out  # critics ≡ 7 and ≡ 3: population std 2
    rows = [line.strip("|").split("|") for line in out.split("Soft Bellman target")[0].splitlines()
            if line.startswith(f"| {tmp_path}")]
    assert [(row[1].strip(), row[4].strip()) for row in rows] == [
        ("softq", "stochastic"), ("softq", "deterministic"), ("sac", "stochastic"), ("sac", "deterministic")], out
    for row in rows:
        g, q, gap = float(row[6]), float(row[7]), float(row[8])
        assert q == 3.0 and gap == pytest.approx(q - g, abs=0.11) and abs(g) < 50, out
    for args, expected in (([str(tmp_path / "nope.zip")], "no such checkpoint"),
                           ([str(tmp_path / "sac.zip"), "--horizon", "100", "--rollout-steps", "10"], "--horizon"),
                           ([str(tmp_path / "sac.zip"), "--env", "Nope-v0"], "unknown environment"),
                           ([str(tmp_path / "sac.zip"), "--bellman", "-1"], "--bellman")):
        bad = subprocess.run([sys.executable, "benchmarks/critic_bias.py", *args], capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:") and expected in bad.stderr, bad.stderr


def test_splice_checkpoint_takes_the_named_parts_and_resumes(tmp_path):
    """splice_checkpoint.py: BASE keeps its sampler, step count and buffer; the Q networks, their target, their
    optimizer state and log τ are DONOR's; train_rl.py resumes the spliced checkpoint; bad input is one line."""
    import torch

    from agents.softq import SoftQ

    for seed, steps in ((0, 120), (1, 150)):
        model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", temperature="auto", learning_starts=50, batch_size=16,
                      seed=seed, policy_kwargs=dict(net_arch=[16, 16]))
        model.learn(steps)
        model.save(tmp_path / f"r{seed}" / "checkpoints" / f"m{seed}.zip")
        model.save_replay_buffer(tmp_path / f"r{seed}" / "checkpoints" / f"m{seed}_replay_buffer.pkl")
    m0, m1 = (tmp_path / f"r{k}" / "checkpoints" / f"m{k}.zip" for k in (0, 1))
    (tmp_path / "r0" / "config.json").write_text(json.dumps({"env": "Pendulum-v1", "seed": 0, "steps": 120}))
    r = run("benchmarks/splice_checkpoint.py", str(m0), str(m1), "--take", "q",
            "temperature", "--out", str(tmp_path / "spliced"))
    out = tmp_path / "spliced" / "checkpoints" / "spliced.zip"
    assert "with q, temperature from" in r.stdout
    base, donor, spliced = (SoftQ.load(p) for p in (m0, m1, out))
    assert spliced.num_timesteps == 120 and spliced.seed == 0
    for name, value in spliced.policy.state_dict().items():
        source = donor if name.startswith(("critic.", "critic_target.")) else base
        assert torch.equal(value, source.policy.state_dict()[name]), name
    assert not torch.equal(base.policy.critic.qf0[0].weight, donor.policy.critic.qf0[0].weight)
    assert torch.equal(spliced.log_temperature, donor.log_temperature)
    assert not torch.equal(base.log_temperature, donor.log_temperature)
    opt = lambda m: m.critic.optimizer.state_dict()["state"][0]["exp_avg"]  # noqa: E731
    assert torch.equal(opt(spliced), opt(donor)) and not torch.equal(opt(base), opt(donor))
    gen = lambda m: m.policy.sampler_trainer.generator_optimizer.state_dict()["state"][0]["exp_avg"]  # noqa: E731
    assert torch.equal(gen(spliced), gen(base))
    assert (out.parent / "spliced_replay_buffer.pkl").read_bytes() == (m0.parent / "m0_replay_buffer.pkl").read_bytes()
    # the splice's folder records the base run's settings (r0/config.json for r0/checkpoints/m0.zip) and
    # the splice; a fork resumed from it records both
    spliced_config = json.loads((tmp_path / "spliced" / "config.json").read_text())
    assert spliced_config["env"] == "Pendulum-v1" and spliced_config["spliced"]["take"] == ["q", "temperature"]
    r = run("train_rl.py", "--env", "Pendulum-v1", "--steps", "160", "--seed", "5", "--resume", str(out), "--logdir",
            str(tmp_path / "runs"), "--eval-every", "40", "--eval-episodes", "1", "--quiet")
    assert "with its replay buffer" in r.stderr and "at step 120" in r.stderr, r.stderr
    forked = json.loads((tmp_path / "runs" / "Pendulum-v1" / "ugan_5" / "config.json").read_text())
    assert forked["spliced"] == spliced_config["spliced"] and forked["seed"] == 5 and forked["steps"] == 160
    # a fresh donor: the Q networks as a new run starts them (target = online copy, no optimizer state), the rest BASE's
    run("benchmarks/splice_checkpoint.py", str(m0), "fresh", "--take", "q", "--seed", "3", "--out", str(tmp_path / "fresh"))
    fresh = SoftQ.load(tmp_path / "fresh" / "checkpoints" / "spliced.zip")
    new = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", temperature="auto", seed=0, policy_kwargs=dict(net_arch=[16, 16]))
    for name, value in fresh.policy.critic.state_dict().items():
        assert not torch.equal(value, base.policy.critic.state_dict()[name]), name
        assert torch.equal(value, fresh.policy.critic_target.state_dict()[name]), name
        assert value.shape == new.policy.critic.state_dict()[name].shape, name
    # the reinitialised weights have a new run's scale (their norms far from the trained ones would mean a wrong init)
    for name in ("qf0.0.weight", "qf0.2.weight"):
        w, w0 = fresh.policy.critic.state_dict()[name], new.policy.critic.state_dict()[name]
        assert abs(float(w.std() / w0.std()) - 1) < 0.1, name
    assert fresh.critic.optimizer.state_dict()["state"] == {}
    assert torch.equal(fresh.policy.sampler.generator.net[0].weight, base.policy.sampler.generator.net[0].weight)
    assert torch.equal(fresh.log_temperature, base.log_temperature)
    bad = subprocess.run([sys.executable, "benchmarks/splice_checkpoint.py", str(m0), "fresh", "--take", "sampler",
                          "--out", str(tmp_path / "y")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "applies to --take q and temperature only" in bad.stderr, bad.stderr
    for extra, message in ((["--take", "bridge"], "unknown part 'bridge'"),
                           (["--take", "q", "--out", str(m1)], "is a file")):
        args = [str(m0), str(m1), *extra]
        if "--out" not in extra:
            args += ["--out", str(tmp_path / "x")]
        bad = subprocess.run([sys.executable, "benchmarks/splice_checkpoint.py", *args], capture_output=True,
                             text=True, cwd=ROOT)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr



def test_splice_checkpoint_set_changes_the_settings_a_fork_trains_with(tmp_path):
    """splice_checkpoint.py BASE --set: the output trains with the new γ, Polyak coefficient, critic learning rate and
    gradient steps (the critic optimizer's lr after a resumed update), keeps BASE's weights, and records the change in
    its config; bad keys and values are one line."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.save_util import load_from_zip_file

    from agents.softq import SoftQ

    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", temperature="auto", learning_starts=50, batch_size=16,
                  seed=0, policy_kwargs=dict(net_arch=[16, 16]))
    model.learn(100)
    base = tmp_path / "r0" / "checkpoints" / "m0.zip"
    model.save(base)
    model.save_replay_buffer(base.with_name("m0_replay_buffer.pkl"))
    (tmp_path / "r0" / "config.json").write_text(json.dumps({"env": "Pendulum-v1", "gamma": 0.99, "seed": 0}))
    r = run("benchmarks/splice_checkpoint.py", str(base), "--set", "gamma=0.95", "polyak=0.02", "critic_lr=0.001",
            "gradient_steps=2", "critic_pessimism=2", "--out", str(tmp_path / "s"))
    assert "with gamma=0.95; polyak=0.02; critic_lr=0.001; gradient_steps=2; critic_pessimism=2.0" in r.stdout, r.stdout
    out = tmp_path / "s" / "checkpoints" / "spliced.zip"
    data, _, _ = load_from_zip_file(out, load_data=True, device="cpu")
    assert (data["gamma"], data["tau"], data["learning_rate"], data["gradient_steps"]) == (0.95, 0.02, 0.001, 2)
    spliced = SoftQ.load(out, env=gym.make("Pendulum-v1"), device="cpu")
    assert spliced.policy.critic_pessimism == 2.0 and model.policy.critic_pessimism is None
    for name, value in spliced.policy.state_dict().items():
        assert torch.equal(value, model.policy.state_dict()[name]), name
    spliced.load_replay_buffer(out.with_name("spliced_replay_buffer.pkl"))
    n_updates = spliced._n_updates
    spliced.learn(5, reset_num_timesteps=False)
    assert spliced.critic.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    assert spliced._n_updates - n_updates == 2 * 5  # two gradient steps per env step
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["gamma"] == 0.95 and config["spliced"]["set"]["critic_lr"] == 0.001 and config["spliced"]["donor"] is None
    run("benchmarks/splice_checkpoint.py", str(base), "--set", "sampler_steps=2", "sampler_lr=0.002", "--out",
        str(tmp_path / "t"))
    sampled = SoftQ.load(tmp_path / "t" / "checkpoints" / "spliced.zip", env=gym.make("Pendulum-v1"), device="cpu")
    sampled.load_replay_buffer(tmp_path / "t" / "checkpoints" / "spliced_replay_buffer.pkl")
    trainer = sampled.sampler_trainer
    calls, update = [], trainer.update
    trainer.update = lambda *a, **k: (calls.append(1), update(*a, **k))[1]
    n_updates = sampled._n_updates
    sampled.learn(5, reset_num_timesteps=False)
    assert sampled.sampler_steps == 2 and len(calls) == 2 * (sampled._n_updates - n_updates) == 10
    lrs = {g["lr"] for o in (trainer.generator_optimizer, trainer.critic_optimizer, trainer.bridge_optimizer)
           for g in o.param_groups}
    assert lrs == {0.002} and trainer.config.lr_generator == trainer.config.lr_bridge == 0.002
    assert sampled.critic.optimizer.param_groups[0]["lr"] == pytest.approx(model.learning_rate)  # the critic keeps its lr
    for extra, message in ((["--set", "gamma=1.5"], "gamma must be a number in (0, 1]"),
                           (["--set", "polyak"], "takes KEY=VALUE"),
                           (["--set", "lr=1"], "unknown setting 'lr'"),
                           (["--set", "gradient_steps=0.5"], "must be an integer"),
                           ([], "nothing to change"),
                           (["--take", "q"], "a DONOR and --take go together"),
                           (["--set", "gamma=0.9", "--buffer", "donor"], "needs a DONOR")):
        bad = subprocess.run([sys.executable, "benchmarks/splice_checkpoint.py", str(base), *extra, "--out",
                              str(tmp_path / "x")], capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr

def test_critic_landscape_compares_critics_at_the_same_states(tmp_path):
    """critic_landscape.py: a checkpoint against itself reads correlation 1, the same best action and no loss; against
    another run's critic it reads less than 1; the policy's deterministic action is within the Q spread of the best
    candidate; bad input is one line."""
    from agents.softq import SoftQ

    paths = []
    for seed in (0, 1):
        model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", temperature="auto", learning_starts=50,
                      batch_size=16, seed=seed, policy_kwargs=dict(net_arch=[16, 16]))
        model.learn(150)
        paths.append(tmp_path / f"m{seed}.zip")
        model.save(paths[-1])
        model.save_replay_buffer(tmp_path / f"m{seed}_replay_buffer.pkl")
    r = run("benchmarks/critic_landscape.py", str(paths[0]), str(paths[0]), str(paths[1]), "--states", "64",
            "--candidates", "256")
    rows = [line.strip("|").split("|") for line in r.stdout.splitlines() if line.startswith(f"| {tmp_path}")]
    per_model, pairs = rows[:3], rows[3:]
    assert len(per_model) == 3 and len(pairs) == 2, r.stdout
    for row in per_model:
        gap, spread = float(row[2]), float(row[4])
        assert spread > 0 and -0.05 * spread <= gap <= spread, r.stdout
    same, other = ([float(x) for x in row[1:]] for row in pairs)
    assert same == [1.0, 0.0, 1.0, 0.0, 0.0], r.stdout
    assert other[0] < 0.99 and other[1] > 0, r.stdout
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "m.zip").write_bytes(paths[0].read_bytes())
    for args, message in (([str(tmp_path / "lone" / "m.zip")], "no replay buffer"),
                          ([str(tmp_path / "nope.zip")], "does not exist"),
                          ([str(paths[0]), "--states", "0"], "must be positive")):
        bad = subprocess.run([sys.executable, "benchmarks/critic_landscape.py", *args], capture_output=True,
                             text=True, cwd=ROOT)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_refit_sampler_readings_match_closed_forms():
    """refit_sampler.py's two readings: the target's mean score at samples shifted by δ from a Gaussian target is
    |δ| (zero at the target's own samples), and the Boltzmann gap of Q = −|a|²/2 at τ against a policy stuck at a₀
    is (|a₀|²/2 − τ·d/2)/τ (E_p[Q] = −τ·d/2 for the near-Gaussian p ∝ exp(Q/τ) in the box)."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from refit_sampler import boltzmann_gap, mean_score_norm

    torch.manual_seed(0)
    mu, delta = torch.tensor([0.3, -0.2]), torch.tensor([0.4, 0.3])
    for shift, expected in ((delta, 0.5), (torch.zeros(2), 0.0)):
        y = mu + shift + torch.randn(3, 20_000, 2)  # 3 states, samples from N(μ + shift, I)
        score = mu - y  # ∇ log N(y; μ, I)
        assert torch.allclose(mean_score_norm(score), torch.full((3,), expected), atol=0.03)
    tau, a0 = 0.01, torch.tensor([0.5, 0.0])
    candidates = torch.rand(200_000, 2) * 2 - 1
    q_c = (-0.5 * candidates.pow(2).sum(1)).expand(2, -1)
    q_s = torch.full((2, 4), -0.5 * float(a0.pow(2).sum()))
    assert torch.allclose(boltzmann_gap(q_c, q_s, tau), torch.full((2,), (0.125 - tau) / tau), atol=0.3)
    # a policy that samples p itself reads no gap: its samples' mean Q is E_p[Q]
    at_p = candidates[torch.multinomial(torch.softmax(q_c[0] / tau, 0), 4000, replacement=True)]
    assert abs(float(boltzmann_gap(q_c[:1], (-0.5 * at_p.pow(2).sum(1))[None], tau)[0])) < 0.1


def test_refit_sampler_fits_three_samplers_to_a_frozen_critic(tmp_path):
    """refit_sampler.py end to end on a tiny Pendulum U-GAN: a row per sampler and reading step, finite readings, the
    τ as saved, a report with its command; bad input is one line."""
    from agents.softq import SoftQ

    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan", temperature="auto", learning_starts=50,
                  batch_size=16, seed=0, policy_kwargs=dict(net_arch=[16, 16]))
    model.learn(150)
    path = tmp_path / "m.zip"
    model.save(path)
    model.save_replay_buffer(tmp_path / "m_replay_buffer.pkl")
    r = run("benchmarks/refit_sampler.py", str(path), "--env", "Pendulum-v1", "--steps", "8", "--batch", "16",
            "--states", "16", "--rollout-steps", "50", "--samples", "8", "--candidates", "256", "--out",
            str(tmp_path / "refit.md"))
    rows = [line.strip("|").split("|") for line in r.stdout.splitlines() if line.startswith(f"| {path}")]
    assert [(row[2].strip(), int(row[3])) for row in rows] == [(k, n) for k in ("own", "fresh", "gaussian")
                                                                 for n in (0, 2, 8)], r.stdout
    assert all(math.isfinite(float(x)) for row in rows for x in row[4:]), r.stdout
    assert len({row[1] for row in rows}) == 1  # the learned τ stays as saved: only samplers train
    report = (tmp_path / "refit.md").read_text()
    assert "Command: `python benchmarks/refit_sampler.py " in report and "| own | 8 |" in report
    assert "<!-- notes -->" in report
    (tmp_path / "lone").mkdir()
    (tmp_path / "lone" / "m.zip").write_bytes(path.read_bytes())
    for args, message in (([str(tmp_path / "lone" / "m.zip")], "no replay buffer beside"),
                          ([str(tmp_path / "nope.zip")], "does not exist"),
                          ([str(path), "--steps", "0"], "--steps must be positive")):
        bad = subprocess.run([sys.executable, "benchmarks/refit_sampler.py", *args], capture_output=True,
                             text=True, cwd=ROOT)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def _exact_bridge_sampler(bridge_scale: float):
    """A U-GAN sampler whose Gaussian generator has σ(s) = 1 and whose anchored bridge is ν(x|s) = N(x; μ(s),
    bridge_scale⁻² I) exactly: the MADE blocks' last layers give every feature the same scale and no shift."""
    import torch
    from softq_ugan.ugan import UGANConfig, UGANSampler

    torch.manual_seed(0)
    s = UGANSampler(UGANConfig(features=2, context_features=3, generator="gaussian", critic=False, bridge_anchor=True,
                               bridge_blocks=2, bridge_hidden=8, generator_hidden=(8,)))
    last = s.generator.gaussian.net[-1]
    with torch.no_grad():
        last.weight[2:].zero_()
        last.bias[2:].zero_()  # log σ(s) = 0
        for t in s.bridge.flow.flow._transform._transforms:
            if hasattr(t, "autoregressive_net"):  # scale softplus(b) + ε per block, two blocks
                t.autoregressive_net.final_layer.weight.zero_()
                t.autoregressive_net.final_layer.bias.zero_()
                t.autoregressive_net.final_layer.bias[0::2] = math.log(math.expm1(bridge_scale**0.5 - t._epsilon))
    return s


def test_generator_gradient_agrees_where_the_bridge_is_the_generators_density():
    """agreement() against closed forms: with ν = g the estimate's gradient is the exact one up to the draws' noise
    and its entropy error is 0; with ν₀ = N(0, ¼ I) against g = N(μ, I) the entropy error is
    d(s²/2 − 1/2 − log s) = 1.61 nats (s = 2, d = 2) and the gradient is far off."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generator_gradient import agreement

    c = torch.randn(32, 3)
    exact = _exact_bridge_sampler(1.0)
    x = exact.rsample(5, c)
    assert torch.allclose(exact.bridge_log_prob(x, c), exact.generator.log_prob(x, c), atol=1e-4)

    def target(x, c):
        return -2.0 * (x - 1).pow(2).sum(-1)

    torch.manual_seed(1)
    flat = agreement(exact, c, lambda x, c: torch.zeros(x.shape[:-1]), 1.0, 16)
    assert flat["cos_trained"] > 0.99 and flat["err_trained"] < 0.15 and flat["err_anchor_grad"] < 0.15, flat
    assert abs(flat["entropy"] - math.log(2 * math.pi * math.e)) < 0.1 and abs(flat["entropy_error"]) < 1e-4, flat
    torch.manual_seed(1)
    off = agreement(_exact_bridge_sampler(2.0), c, target, 1.0, 16)
    assert abs(off["entropy_error"] - 2 * (2.0 - 0.5 - math.log(2.0))) < 0.5 and off["err_trained"] > 0.5, off


def test_generator_gradient_tiny_and_its_bad_input(tmp_path):
    out = tmp_path / "gg.md"
    flags = ("--sampler-loss-tau --generator gaussian --generator-hidden 16 16 --learning-starts 200 --batch-size 32 "
             "--sampler-batch-size 32 --net-arch 32 32")
    r = run("benchmarks/generator_gradient.py", "--steps", "400", "--every", "100", "--states", "8", "--draws", "2",
            f"--flags={flags}", "--out", str(out))
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| 0 | ")]
    assert [int(row[1]) for row in rows] == [300, 400], out.read_text()
    assert all(-1 <= float(row[6]) <= 1 and float(row[7]) >= 0 and -1 <= float(row[8]) <= 1 for row in rows)
    assert "<!-- notes -->" in out.read_text() and "seed 0 step 300" in r.stdout
    bad = subprocess.run([sys.executable, "benchmarks/generator_gradient.py", "--flags=--sampler-loss-tau", "--out",
                          str(tmp_path / "no.md")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "error: --flags must include --generator gaussian: the exact log g the estimate is measured against")
    assert not (tmp_path / "no.md").exists()
