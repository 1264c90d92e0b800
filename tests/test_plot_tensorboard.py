"""scripts/plot_tensorboard.py: reads scalars back from event files; the CLI writes a PNG or exits 2 with one line."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "plot_tensorboard.py"

_spec = importlib.util.spec_from_file_location("plot_tensorboard", SCRIPT)
plot_tensorboard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_tensorboard)


def write_run(folder: Path, points: dict[str, list[tuple[int, float]]], sub: str = "SAC_1") -> Path:
    writer = SummaryWriter(str(folder / sub))
    for tag, series in points.items():
        for step, value in series:
            writer.add_scalar(tag, value, step)
    writer.close()
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    a = write_run(base / "ugan", {"eval/mean_reward": [(0, -5.0), (100, -2.0), (200, 1.5)],
                                 "train/q_loss": [(0, 1.0), (50, 0.5)]})
    b = write_run(base / "svgd", {"eval/mean_reward": [(0, -6.0), (100, -4.0)]})
    extra = {f"extra/tag_{i:02d}": [(0, float(i))] for i in range(20)}
    c = write_run(base / "many", extra)
    return a, b, c


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_read_scalars(runs):
    a, b, _ = runs
    assert plot_tensorboard.read_scalars(a, "eval/mean_reward") == [(0, -5.0), (100, -2.0), (200, 1.5)]
    assert plot_tensorboard.read_scalars(a, "train/q_loss") == [(0, 1.0), (50, 0.5)]
    assert plot_tensorboard.read_scalars(b, "eval/mean_reward") == [(0, -6.0), (100, -4.0)]


def test_read_scalars_merges_event_files(tmp_path):
    write_run(tmp_path, {"x": [(0, 1.0), (2, 3.0)]}, sub="SAC_1")
    write_run(tmp_path, {"x": [(1, 2.0)]}, sub="nested/SAC_2")
    assert plot_tensorboard.read_scalars(tmp_path, "x") == [(0, 1.0), (1, 2.0), (2, 3.0)]


def test_read_scalars_errors(runs, tmp_path):
    with pytest.raises(plot_tensorboard.TagNotFoundError, match="train/q_loss"):
        plot_tensorboard.read_scalars(runs[0], "missing/tag")
    with pytest.raises(FileNotFoundError):
        plot_tensorboard.read_scalars(tmp_path, "eval/mean_reward")


def test_cli_writes_png(runs, tmp_path):
    a, b, _ = runs
    out = tmp_path / "plots" / "curve.png"
    result = run_cli(str(a), str(b), "--tag", "eval/mean_reward", "--out", str(out), "--title", "MultiGoal",
                     "--label", "U-GAN", "--label", "SVGD")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000


def test_cli_several_tags_one_panel_each(runs, tmp_path):
    out = tmp_path / "two.png"
    plot_tensorboard.main([str(runs[0]), "--tag", "eval/mean_reward", "--tag", "train/q_loss", "--out", str(out)])
    assert out.stat().st_size > 1000


def test_cli_missing_tag_exits_2_listing_tags(runs, tmp_path):
    out = tmp_path / "none.png"
    result = run_cli(str(runs[0]), "--tag", "nope", "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tag 'nope'")
    assert "eval/mean_reward" in lines[0] and "train/q_loss" in lines[0]
    assert not out.exists()


def test_missing_tag_list_is_truncated(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        plot_tensorboard.main([str(runs[2]), "--tag", "nope", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "extra/tag_14" in err and "extra/tag_15" not in err and "(5 more)" in err


def test_cli_no_events_exits_2(tmp_path):
    result = run_cli(str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no TensorBoard events file" in result.stderr


def test_cli_label_count_mismatch_exits_2(runs, tmp_path):
    with pytest.raises(SystemExit) as exc:
        plot_tensorboard.main([str(runs[0]), str(runs[1]), "--label", "only-one", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
