"""softq_ugan.sweep: the config parser (always) and a tiny local Ray Tune sweep (with the `sweep` extra)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from softq_ugan.sweep import SweepConfigError, load_spec, parse_spec, report

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(name="t", env="MultiGoal-v0", algos=["softq-ugan", "sac"], seeds=[0, 1], steps=600, eval_every=200)


def test_grid_runs_every_config_on_every_seed_and_drops_inapplicable_keys():
    spec = parse_spec({**BASE, "algos": ["softq-ugan", "softq-svgd", "sac"],
                       "search": {"space": {"reward_scale": [1, 10], "schedule": ["nma", "oa"]}}})
    trials = spec.trials()
    by_algo = {a: [t for t in trials if t.algo == a] for a in spec.algos}
    assert len(by_algo["softq-ugan"]) == 2 * 2 * 2  # reward scale × schedule × seeds
    assert len(by_algo["softq-svgd"]) == 2 * 2  # SVGD does not anneal: the schedule axis collapses
    assert len(by_algo["sac"]) == 2 and all(t.params == {} for t in by_algo["sac"])  # SAC has neither
    assert len({t.trial_id for t in trials}) == len(trials)
    t = next(t for t in by_algo["softq-ugan"] if t.params == {"reward_scale": 10.0, "schedule": "oa"})
    argv = t.argv(600, 200, 5)
    assert argv[argv.index("--sampler") + 1] == "ugan" and argv[argv.index("--reward-scale") + 1] == "10.0"
    assert argv[argv.index("--schedule") + 1] == "oa" and t.run_subdir() == f"MultiGoal-v0/ugan_{t.seed}"


def test_learned_temperature_passes_through_to_the_command_line():
    spec = parse_spec({**BASE, "algos": ["softq-ugan"], "search": {"space": {"tau": ["auto", "auto_0.1", 1]}},
                       "fixed": {"target_entropy": -4}})
    taus = sorted(str(t.params["tau"]) for t in spec.trials() if t.seed == 0)
    assert taus == ["1.0", "auto", "auto_0.1"]
    argv = next(t for t in spec.trials() if t.params["tau"] == "auto_0.1").argv(600, 200, 5)
    assert argv[argv.index("--tau") + 1] == "auto_0.1" and argv[argv.index("--target-entropy") + 1] == "-4.0"


def test_random_search_is_seeded_shared_across_seeds_and_in_range():
    raw = {**BASE, "algos": ["softq-ugan"], "search": {"method": "random", "num_samples": 5, "seed": 3, "space": {
        "tau": {"loguniform": ["1e-1", 1.0]}, "gamma": {"uniform": [0.9, 0.99]}, "value_particles": {"randint": [4, 32]},
        "schedule": ["nma", "oa"]}}}
    a, b = parse_spec(raw), parse_spec(raw)
    assert a.configs == b.configs and len(a.configs) == 5
    for c in a.configs:
        assert 0.1 <= c["tau"] <= 1.0 and 0.9 <= c["gamma"] <= 0.99 and 4 <= c["value_particles"] <= 32
        assert isinstance(c["value_particles"], int) and c["schedule"] in ("nma", "oa")
    assert len(a.trials()) == 5 * 2  # each sampled configuration on both seeds


@pytest.mark.parametrize("patch, key", [
    ({"sedes": [0]}, "sedes"),
    ({"algos": ["ppo"]}, "algos"),
    ({"steps": 0}, "steps"),
    ({"eval_every": 10_000}, "eval_every"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"search": {"space": {"temperature": [1]}}}, "search.space.temperature"),
    ({"search": {"space": {"gamma": [0.9, 1.5]}}}, "search.space.gamma"),
    ({"search": {"space": {"tau": [1.0]}, "sampler": "tpe"}}, "search.sampler"),
    ({"search": {"method": "random", "num_samples": 2, "space": {"tau": {"loguniform": [0, 1]}}}},
     "search.space.tau.loguniform"),
    ({"search": {"method": "random", "num_samples": 2, "space": {"lr": {"uniform": [1e-3, 1e-4]}}}},
     "search.space.lr.uniform"),
    ({"search": {"method": "random", "space": {"lr": [1e-3]}}}, "search.num_samples"),
    ({"search": {"space": {"lr": 1e-3}}}, "search.space.lr"),
    ({"search": {"space": {"tau": ["auto_0"]}}}, "search.space.tau"),
    ({"search": {"space": {"tau": ["autox"]}}}, "search.space.tau"),
    ({"trial": {"gpus": 1}}, "trial.gpus"),
    ({"fixed": {"batch_size": 0}}, "fixed.batch_size"),
])
def test_bad_keys_and_ranges_name_the_key(patch, key):
    raw = {**BASE, **patch}
    with pytest.raises(SweepConfigError) as e:
        parse_spec(raw)
    message = str(e.value)
    assert message.startswith(key + ":") and "\n" not in message, message


def test_cli_one_line_errors_and_dry_run(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nenv: MultiGoal-v0\nsteps: 100\nsearch:\n  space:\n    gamma: [2]\n")
    r = subprocess.run([sys.executable, "-m", "softq_ugan.sweep", str(bad)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "search.space.gamma" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "softq_ugan.sweep", str(tmp_path / "none.yaml")], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: x\nenv: MultiGoal-v0\nalgos: [softq-ugan, sac]\nseeds: [0, 1]\nsteps: 100\n"
                  "search:\n  space:\n    reward_scale: [0.1, 1]\n")
    r = subprocess.run([sys.executable, "-m", "softq_ugan.sweep", str(ok), "--dry-run"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "6 trials" in r.stderr, r.stderr  # 2 × 2 SoftQ, 2 SAC


def test_example_configs_parse():
    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert len(files) >= 2
    for f in files:
        assert load_spec(f).trials()


def _fake_sweep(tmp_path: Path) -> Path:
    """A sweep folder as run_trial leaves it: trial.json + the run's evals.json."""
    for cfg, seed, final in [("reward_scale=1.0", 0, 10.0), ("reward_scale=1.0", 1, 30.0),
                             ("reward_scale=10.0", 0, 50.0), ("reward_scale=10.0", 1, 70.0)]:
        tid = f"MultiGoal-v0_softq-ugan_{cfg}_s{seed}"
        run = tmp_path / tid / "MultiGoal-v0" / f"ugan_{seed}"
        run.mkdir(parents=True)
        (tmp_path / tid / "trial.json").write_text(json.dumps(dict(
            trial_id=tid, env="MultiGoal-v0", algo="softq-ugan", seed=seed,
            params={"reward_scale": float(cfg.split("=")[1])}, config=cfg, steps=200)))
        (run / "evals.json").write_text(json.dumps(dict(algo="softq-ugan", seed=seed, evals=[[100, 0.0], [200, final]],
                                                        wall=[1.0, 2.0], seconds=2.0, steps=200)))
    return tmp_path


def test_report_medians_and_best_configuration(tmp_path):
    text = report(_fake_sweep(tmp_path))
    assert "**Best configuration:** MultiGoal-v0 · softq-ugan · reward_scale=10.0 (final median 60.0)" in text
    assert "| 200 | 60.0 [55.0, 65.0] (n=2) | 20.0 [15.0, 25.0] (n=2) |" in text
    assert "| 10.0 |" in text  # wall seconds per 1,000 steps: 2 s for 200 steps
    r = subprocess.run([sys.executable, "-m", "softq_ugan.sweep", "report", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.md").is_file() and (tmp_path / "curves.png").stat().st_size > 5000


TINY = """name: tiny
env: MultiGoal-v0
algos: [softq-ugan, sac]
seeds: [0]
steps: {steps}
eval_every: 300
eval_episodes: 1
fixed: {{learning_starts: 100, batch_size: 32}}
trial: {{max_failures: 2}}
"""


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parents[2].name: json.loads(p.read_text()) for p in sweep.glob("*/*/*/evals.json")}


def test_tiny_local_sweep_survives_a_killed_worker(tmp_path):
    """Two trials on a local Ray runtime; one trial's worker is killed mid-run and resumes from its checkpoint."""
    pytest.importorskip("ray", reason="the sweep extra is not installed (pip install -e '.[sweep]')")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(steps=1500))
    out = tmp_path / "sweeps"
    proc = subprocess.Popen([sys.executable, "-m", "softq_ugan.sweep", str(config), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    trial = out / "tiny" / "MultiGoal-v0_softq-ugan_c00_s0"
    deadline = time.time() + 600
    # wait until Tune's driver has taken in a checkpointed result (progress.csv gets its row)
    while time.time() < deadline and proc.poll() is None:
        rows = (trial / "progress.csv").read_text().strip().splitlines() if (trial / "progress.csv").exists() else []
        if len(rows) >= 2 and list(trial.glob("checkpoint_*")):
            break
        time.sleep(0.5)
    child = subprocess.run(["pgrep", "-f", f"train_rl.py.*--sampler ugan.*{trial}"], capture_output=True, text=True)
    assert child.stdout.strip(), "train_rl.py of the trial is not running"
    worker = int(subprocess.run(["ps", "-o", "ppid=", "-p", child.stdout.split()[0]], capture_output=True,
                                text=True).stdout)
    os.kill(worker, signal.SIGKILL)  # the Ray worker process of that trial
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    records = _records(out / "tiny")
    assert {r["steps"] for r in records.values()} == {1500}, records
    log = (trial / "train_rl.log").read_text()
    assert log.count("$ ") == 2 and "resumed from" in log, log[-2000:]
    steps = [t for t, _ in records["MultiGoal-v0_softq-ugan_c00_s0"]["evals"]]
    assert steps == [300, 600, 900, 1200, 1500]
    text = (out / "tiny" / "report.md").read_text()
    assert "softq-ugan" in text and "sac" in text and (out / "tiny" / "curves.png").is_file()
