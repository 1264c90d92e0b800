"""The benchmark scripts run end to end in a tiny configuration (issue 4): a few hundred steps, one seed."""

import json
import subprocess
import sys
from pathlib import Path

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
    text = (tmp_path / "swimmer.md").read_text()
    assert "| 400 |" in text and "softq-ugan" in text and "sac" in text
    assert (tmp_path / "swimmer.png").stat().st_size > 5000
    again = run(*args)
    assert "0 runs to do" in again.stdout


def test_samplers_benchmark_tiny(tmp_path):
    run("benchmarks/samplers.py", "--samplers", "maf", "--seeds", "0", "--steps", "1100", "--episodes", "5",
        "--jobs", "1", "--results", str(tmp_path))
    result = json.loads((tmp_path / "samplers" / "multigoal_maf_0.json").read_text())
    assert result["episodes"] == 5 and sum(result["goal_counts"]) <= 5
    assert "maf" in (tmp_path / "samplers.md").read_text()


def test_soft_value_benchmark_tiny(tmp_path):
    run("train_rl.py", "--env", "MultiGoal-v0", "--steps", "300", "--learning-starts", "100", "--batch-size", "32",
        "--eval-every", "300", "--eval-episodes", "1", "--logdir", str(tmp_path), "--quiet")
    ckpt = tmp_path / "MultiGoal-v0" / "ugan_0" / "checkpoints" / "last.zip"
    out = tmp_path / "soft_value.md"
    run("benchmarks/soft_value.py", str(ckpt), "--states", "4", "--repeats", "8", "--particles", "4", "16",
        "--out", str(out))
    text = out.read_text()
    assert "16" in text and "bridge" in text and "uniform" in text
