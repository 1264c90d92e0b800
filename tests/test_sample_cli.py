"""The sampling command line as a user runs it: files written, errors in one line, Ctrl-C keeps results; the
result-file writer every command line shares."""

import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import interactive_sigint

CMD = [sys.executable, "-m", "softq_ugan.sample"]


def test_writes_figures_and_metrics(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(
        CMD + ["--target", "kidney", "--schedule", "oa", "--steps", "40", "--snapshots", "3", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    for name in ("samples.png", "training.png", "curves.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"mmd2", "modes_covered", "hq_fraction", "mode_mass", "seconds"} <= set(m)
    assert len(m["mode_mass"]) == 2 and m["steps"] == 40 and not m["interrupted"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--target", "moons"], "unknown target 'moons'; choose one of: banana, grid25, kidney, ring8"),
        (["--schedule", "cosine"], "unknown schedule 'cosine'; choose one of: exp, geo, nma, none, oa, oa-linear, pma, static"),
        (["--method", "svgd"], "unknown method 'svgd'"),
        (["--steps", "-3"], "--steps"),
    ],
)
def test_bad_names_exit_2_with_one_line(args, expected, tmp_path):
    r = subprocess.run(CMD + args + ["--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_interrupt_still_writes_results(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen(CMD + ["--target", "banana", "--steps", "100000", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interactive_sigint)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: p.stderr.read(64), "")), daemon=True)
    reader.start()
    deadline = time.time() + 240
    # interrupt once the progress bar shows updates done (a fixed sleep raced a loaded machine)
    while not re.search(r"\| *[1-9]\d*/100000", "".join(chunks)) and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)
    reader.join(timeout=10)
    stderr = "".join(chunks)
    assert p.returncode == 0, stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["interrupted"] and 0 < m["steps"] < 100000
    assert (out / "samples.png").exists()


def test_write_json_replaces_whole_files_only(tmp_path):
    from softq_ugan.cli import write_json

    path = tmp_path / "run" / "evals.json"  # the folder does not exist yet
    write_json(path, {"evals": [[10, 1.5]]})
    write_json(path, {"evals": [[10, 1.5], [20, 2.5]]})
    assert json.loads(path.read_text()) == {"evals": [[10, 1.5], [20, 2.5]]}
    with pytest.raises(TypeError):  # a record that cannot be written leaves the last whole file in place
        write_json(path, {"evals": object()})
    assert json.loads(path.read_text()) == {"evals": [[10, 1.5], [20, 2.5]]}
    assert [p.name for p in path.parent.iterdir()] == ["evals.json"]  # no temporary file left beside it


def test_error_line_is_the_type_and_first_line_of_the_message():
    from softq_ugan.cli import error_line

    assert error_line(ValueError("bad shape\ntraceback detail")) == "ValueError: bad shape"
    assert error_line(KeyError()) == "KeyError: "
