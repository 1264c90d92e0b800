"""train_rl.py as a user runs it: TensorBoard tags, one-line errors, interrupt and resume."""

import copy
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import interactive_sigint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
CMD = [sys.executable, str(ROOT / "train_rl.py")]
TAGS = ["rollout/ep_rew_mean", "eval/mean_reward", "train/q_loss", "sampler/critic_loss", "sampler/generator_loss",
        "sampler/bridge_nll", "sampler/lambda", "train/soft_value", "train/is_ess", "train/temperature", "time/fps"]
FAST = ["--learning-starts", "100", "--batch-size", "32", "--value-particles", "8", "--quiet"]


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_writes_tensorboard_tags_and_checkpoints(tmp_path):
    r = subprocess.run(CMD + ["--env", "MultiGoal-v0", "--sampler", "ugan", "--steps", "400", "--eval-every", "200",
                              "--logdir", str(tmp_path), *FAST], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "MultiGoal-v0" / "ugan_0"
    acc = events(run_dir)
    missing = [t for t in TAGS if t not in acc.Tags()["scalars"]]
    assert not missing, (missing, acc.Tags()["scalars"])
    assert any("hyperparameters" in t for t in acc.Tags()["tensors"])
    assert "policy/action_density" in acc.Tags()["images"]
    assert (run_dir / "checkpoints" / "last.zip").exists()
    assert (run_dir / "checkpoints" / "last_replay_buffer.pkl").exists()
    assert "tensorboard --logdir" in r.stderr
    # resuming without --sampler continues the checkpoint's sampler (ugan), not the default (maf), in its folder
    last = str(run_dir / "checkpoints" / "last.zip")
    common = ["--env", "MultiGoal-v0", "--eval-every", "200", "--logdir", str(tmp_path), *FAST]
    r = subprocess.run(CMD + ["--steps", "600", "--resume", last, *common], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert [t for t, _ in json.loads((run_dir / "evals.json").read_text())["evals"]] == [200, 400, 600]
    assert sorted(p.name for p in (tmp_path / "MultiGoal-v0").iterdir()) == ["ugan_0"]
    for args, expected in (([*common, "--sampler", "maf"], "was trained with --sampler ugan, not maf"),
                           (["--env", "MultiGoal-v0", "--algo", "sac", "--logdir", str(tmp_path)], "cannot resume sac from")):
        r = subprocess.run(CMD + ["--steps", "800", "--resume", last, *args], capture_output=True, text=True, timeout=300,
                           cwd=ROOT)
        lines = [line for line in r.stderr.strip().splitlines() if "eprecation" not in line]
        assert r.returncode == 2 and len(lines) == 1 and expected in lines[0], r.stderr


def test_short_swimmer_run_with_learned_temperature(tmp_path):
    r = subprocess.run(CMD + ["--env", "Swimmer-v4", "--steps", "300", "--eval-every", "300", "--eval-episodes", "1",
                              "--tau", "auto_0.5", "--target-entropy", "-3", "--temperature-grad-clip", "20", "--logdir", str(tmp_path), *FAST],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "Swimmer-v4" / "ugan-nocritic_0"  # Swimmer's default sampler
    tags = events(run_dir).Tags()["scalars"]
    assert {"eval/mean_reward", "train/entropy", "train/temperature", "train/temperature_clipped",
            "train/temperature_grad_max"} <= set(tags)
    temps = [e.value for e in events(run_dir).Scalars("train/temperature")]
    assert temps and all(0 < t < 0.5 for t in temps)  # a fresh sampler's entropy is far above −3: τ falls
    config = json.loads((run_dir / "config.json").read_text())
    assert config["temperature"] == "auto_0.5" and config["target_entropy"] == -3
    assert config["temperature_grad_clip"] == 20
    assert config["sampler"] == "ugan-nocritic"  # Swimmer's benchmarked preset (issue 4); maf elsewhere (issue 8)
    assert config["sampler_particles"] == 1 and config["bridge_anchor"] is True  # the preset's, where no flag is given


@pytest.mark.parametrize("args, expected", [
    (["--env", "Swimer-v4"], "did you mean: Swimmer-v4"),
    (["--env", "CartPole-v1"], "Discrete action space"),
    (["--steps", "-5"], "--steps must be positive"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--sampler", "hmc"], "unknown sampler 'hmc'"),
    (["--algo", "ppo"], "unknown algo 'ppo'"),
    (["--algo", "sac", "--reward-scale", "3"], "--reward-scale applies to --algo softq only"),
    (["--schedule", "cosine"], "unknown schedule 'cosine'"),
    (["--sampler", "svgd", "--lambda0", "1"], "not svgd"),
    (["--policy-delay", "0"], "--policy-delay must be positive"),
    (["--sampler-steps", "0"], "--sampler-steps must be positive"),
    (["--sampler-particles", "0"], "--sampler-particles must be positive"),
    (["--sampler", "svgd", "--sampler-particles", "4"], "--sampler-particles applies to the U-GAN and MAF samplers"),
    (["--algo", "td3", "--policy-delay", "2"], "--policy-delay applies to --algo softq only"),
    (["--tau", "hot"], "--tau must be a positive number, auto or auto_<initial τ>"),
    (["--sampler", "svgd", "--tau", "auto"], "--tau auto needs a sampler with a density"),
    (["--tau", "1", "--target-entropy", "-2"], "--target-entropy applies to a learned temperature only"),
    (["--env", "MultiGoal-v0", "--target-entropy", "-2"], "--target-entropy applies to a learned temperature only"),
    (["--sampler", "svgd", "--target-entropy", "-2"], "--target-entropy applies to a learned temperature only"),
    (["--tau", "1", "--temperature-grad-clip", "5"], "--temperature-grad-clip applies to a learned temperature only"),
    (["--temperature-grad-clip", "-1"], "--temperature-grad-clip must be a finite number >= 0 (0: no bound), got -1.0"),
    (["--temperature-grad-clip", "inf"], "--temperature-grad-clip must be a finite number >= 0"),
    (["--algo", "sac", "--temperature-grad-clip", "5"], "--temperature-grad-clip applies to --algo softq only"),
    (["--net-arch", "64", "0"], "--net-arch widths must be positive, got 64 0"),
    (["--n-critics", "0"], "--n-critics must be positive, got 0"),
    (["--sampler", "svgd", "--proposal", "bridge"], "proposal 'bridge' needs a sampler with a MAF bridge; 'svgd' has none"),
    (["--sampler", "svgd", "--proposal", "generator"], "proposal 'generator' needs a sampler with a density"),
    (["--sampler-batch-size", "0"], "--sampler-batch-size must be positive, got 0"),
    (["--algo", "sac", "--sampler-batch-size", "32"], "--sampler-batch-size applies to --algo softq only"),
    (["--sampler", "maf", "--bridge-anchor"], "--bridge-anchor applies to the U-GAN samplers, not maf"),
    (["--algo", "sac", "--bridge-anchor"], "--bridge-anchor applies to --algo softq only"),
    (["--sampler-grad-clip", "-1"], "--sampler-grad-clip must be >= 0 (0: no clip), got -1.0"),
    (["--sampler-grad-clip", "nan"], "--sampler-grad-clip must be >= 0"),
    (["--algo", "sac", "--sampler-grad-clip", "5"], "--sampler-grad-clip applies to --algo softq only"),
    (["--generator-lr", "0"], "--generator-lr must be positive, got 0.0"),
    (["--sampler", "maf", "--shared-bridge-step"], "--shared-bridge-step applies to the U-GAN samplers, not maf"),
    (["--algo", "sac", "--shared-bridge-step"], "--shared-bridge-step applies to --algo softq only"),
    (["--sampler", "maf", "--generator-lr", "1e-4"], "--generator-lr applies to the U-GAN samplers, not maf"),
    (["--sampler", "svgd", "--generator-lr", "1e-4"], "--generator-lr applies to the U-GAN samplers, not svgd"),
    (["--sampler", "maf", "--generator-hidden", "256"], "--generator-hidden applies to the U-GAN samplers, not maf"),
    (["--sampler", "ugan", "--generator-hidden", "256", "0"], "--generator-hidden widths must be positive, got 256 0"),
    (["--bridge-steps", "0"], "--bridge-steps must be positive, got 0"),
    (["--sampler", "maf", "--bridge-steps", "2"], "--bridge-steps applies to the U-GAN samplers, not maf"),
    (["--algo", "sac", "--bridge-steps", "2"], "--bridge-steps applies to --algo softq only"),
    (["--sampler", "ugan", "--generator", "flow"], "unknown generator 'flow'; choose one of: mlp, gaussian"),
    (["--sampler", "ugan-oneway", "--generator", "gaussian"], "--generator applies to ugan and ugan-nocritic, not ugan-oneway"),
    (["--algo", "td3", "--generator", "gaussian"], "--generator applies to --algo softq only"),
    (["--generator", "gaussian", "--exact-density", "all"], "unknown --exact-density 'all'; choose one of: none, loss, density, both"),
    (["--exact-density", "loss"], "--exact-density applies with --generator gaussian only"),
    (["--generator", "gaussian", "--exact-density", "both", "--shared-bridge-step"], "--exact-density both leaves log ν out"),
    (["--sampler", "svgd", "--sampler-loss-tau"],
     "--sampler-loss-tau applies to the samplers with a loss (ugan, ugan-nocritic, ugan-oneway, maf, gaussian), not svgd"),
    (["--algo", "sac", "--sampler-loss-tau"], "--sampler-loss-tau applies to --algo softq only"),
    (["--env", "Swimmer-v4", "--sampler", "ugan", "--sampler-batch-size", "512"],
     "--sampler-batch-size 512 exceeds the Q minibatch (256)"),
])
def test_bad_input_exits_2_with_one_line(args, expected, tmp_path, capsys):
    # in-process (train_rl.main is what the script runs); the next test runs one of them as a user does
    sys.path.insert(0, str(ROOT))
    from train_rl import main

    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not any(tmp_path.iterdir())  # no run folder left behind


def test_bad_input_from_the_shell_exits_2_with_one_line(tmp_path):
    r = subprocess.run(CMD + ["--env", "Swimer-v4", "--logdir", str(tmp_path)], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if "DeprecationWarning" not in line and "deprecation(" not in line]
    assert len(lines) == 1 and "did you mean: Swimmer-v4" in lines[0], r.stderr
    assert not any(tmp_path.iterdir())


def test_sigint_saves_checkpoint_and_resume_continues(tmp_path):
    args = ["--env", "MultiGoal-v0", "--eval-every", "100000", "--logdir", str(tmp_path), *FAST]
    p = subprocess.Popen(CMD + ["--steps", "100000", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, preexec_fn=interactive_sigint)
    run_dir = tmp_path / "MultiGoal-v0" / "maf_0"  # the default sampler
    deadline = time.time() + 240
    while not (run_dir / "progress.csv").exists() and time.time() < deadline:
        time.sleep(0.5)
    while (run_dir / "progress.csv").stat().st_size < 2000 and time.time() < deadline:  # some episodes done
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=240)
    assert p.returncode == 130, err
    assert "interrupted at step" in err
    last = run_dir / "checkpoints" / "last.zip"
    assert last.exists() and (run_dir / "checkpoints" / "last_replay_buffer.pkl").exists()
    from agents import SoftQ

    stopped_at = SoftQ.load(last).num_timesteps
    assert 0 < stopped_at < 100000
    assert json.loads((run_dir / "evals.json").read_text())["paused_at"][0] == stopped_at  # its seconds, for resume
    r = subprocess.run(CMD + ["--steps", str(stopped_at + 150), "--resume", str(last), *args],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"resumed from {last} at step {stopped_at}" in r.stderr
    assert SoftQ.load(last).num_timesteps == stopped_at + 150
    # the first stretch's CSV log is kept beside the new one (SB3's logger starts progress.csv afresh), and
    # runs_table reads the two as one log
    import csv

    kept = run_dir / f"progress_before_{stopped_at}.csv"
    first, second = ([int(float(row["time/total_timesteps"])) for row in csv.DictReader(f.open())
                      if row.get("time/total_timesteps")] for f in (kept, run_dir / "progress.csv"))
    assert first and second and max(first) <= stopped_at < min(second), (first, second)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from runs_table import load, scalar_log

    assert [t for t, _ in scalar_log(load(run_dir))] == first + second


def test_sac_baseline_records_evals_and_resumes_from_eval_checkpoint(tmp_path):
    """--algo sac runs SB3's SAC on the same footing: evals.json + a checkpoint at each eval, resumable."""
    import json

    args = ["--algo", "sac", "--env", "MultiGoal-v0", "--eval-every", "150", "--eval-episodes", "1",
            "--learning-starts", "100", "--batch-size", "32", "--checkpoint-every", "300", "--logdir", str(tmp_path),
            "--quiet"]
    r = subprocess.run(CMD + ["--steps", "300", *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "MultiGoal-v0" / "sac_0"
    record = json.loads((run_dir / "evals.json").read_text())
    assert record["algo"] == "sac" and [t for t, _ in record["evals"]] == [150, 300]
    assert len(record["wall"]) == 2 and 0 < record["wall"][0] <= record["wall"][1] == pytest.approx(record["seconds"], abs=1e-3)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["gamma"] == 0.999 and config["buffer_size"] == 300  # zoo's SAC γ; a buffer sized to --steps
    import torch

    from softq_ugan.cli import build_info

    build = build_info()  # the software the run computed with, one entry per build its stretches ran on
    assert config["builds"] == [build] and build["torch"] == torch.__version__ and build["cpu"]
    other = {**build, "torch": "0.0.1"}  # as if its first stretch had run on another torch
    (run_dir / "config.json").write_text(json.dumps({**config, "builds": [other]}))
    ckpt = run_dir / "checkpoints" / "eval.zip"
    assert ckpt.exists() and (run_dir / "checkpoints" / "eval_replay_buffer.pkl").exists()
    r = subprocess.run(CMD + ["--steps", "450", "--resume", str(ckpt), *args], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "at step 300" in r.stderr
    record = json.loads((run_dir / "evals.json").read_text())
    assert [t for t, _ in record["evals"]] == [150, 300, 450] and record["steps"] == 450
    assert re.search(r"with its replay buffer \((299|300) transitions\)", r.stderr), r.stderr  # 299: saved before step 300's
    # the first run's buffer was sized to its --steps 300; asking for 450 enlarges it, every transition kept
    assert "replay buffer had 300 slots (its run's --buffer-size); enlarged to 450" in r.stderr, r.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["buffer_size"] == 450 and config["builds"] == [other, build]  # this stretch's build added
    from stable_baselines3 import SAC

    resumed = SAC.load(ckpt)
    resumed.load_replay_buffer(run_dir / "checkpoints" / "eval_replay_buffer.pkl")
    assert resumed.buffer_size == resumed.replay_buffer.buffer_size == 450
    assert resumed.replay_buffer.size() >= 448 and not resumed.replay_buffer.full  # 299 kept + 149 new: each eval
    # checkpoint is saved before its own step's transition (see above)
    # a numbered checkpoint (SB3's <prefix>_<N>_steps.zip) finds its <prefix>_replay_buffer_<N>_steps.pkl; a lone
    # zip resumes, saying loudly that its buffer is empty
    numbered = run_dir / "checkpoints" / "sac_300_steps.zip"
    assert numbered.exists() and (run_dir / "checkpoints" / "sac_replay_buffer_300_steps.pkl").exists()
    lone = tmp_path / "lone" / "sac.zip"
    lone.parent.mkdir()
    lone.write_bytes(numbered.read_bytes())
    for ckpt, expected in ((numbered, "with its replay buffer (2"), (lone, "WITHOUT a replay buffer")):
        again = ["--logdir", str(tmp_path / f"again_{ckpt.parent.name}")]
        r = subprocess.run(CMD + ["--steps", "350", "--resume", str(ckpt), *args[:-3], *again, "--quiet"],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0 and expected in r.stderr, r.stderr
    # --resume with another --seed forks the run: its own folder and the new seed's random streams from the state;
    # resuming that fork without --seed keeps its seed (and folder), not the default 0
    fork = ["--logdir", str(tmp_path / "fork")]
    r = subprocess.run(CMD + ["--steps", "350", "--resume", str(numbered), "--seed", "7", *args[:-3], *fork, "--quiet"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0 and "continuing a seed-0 checkpoint with --seed 7: a new draw" in r.stderr, r.stderr
    fork_dir = tmp_path / "fork" / "MultiGoal-v0" / "sac_7"
    assert SAC.load(fork_dir / "checkpoints" / "last.zip").seed == 7
    # the fork's folder records the settings of the run it came from, with its own seed and where it came from
    source, forked = (json.loads((d / "config.json").read_text()) for d in (run_dir, fork_dir))
    assert source["algo"] == "sac" and source["env"] == "MultiGoal-v0"
    assert forked.pop("buffer_size") == 350 and source.pop("buffer_size") == 450  # each run's own
    assert forked == {**source, "seed": 7, "steps": 350, "resumed_from": str(numbered)}, forked
    assert forked["builds"] == [other, build]  # a resumed stretch on the same build adds none
    r = subprocess.run(CMD + ["--steps", "350", "--resume", str(numbered), "--seed", "8", *args[:-3], *fork, "--quiet"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    # two forks of one state train differently (they once shared the checkpoint's random streams)
    seven, eight = (SAC.load(tmp_path / "fork" / "MultiGoal-v0" / f"sac_{k}" / "checkpoints" / "last.zip")
                    for k in (7, 8))
    assert not torch.equal(seven.actor.mu.weight, eight.actor.mu.weight)
    (tmp_path / "fork" / "MultiGoal-v0" / "sac_8").rename(tmp_path / "sac_8")
    r = subprocess.run(CMD + ["--steps", "400", "--resume", str(fork_dir / "checkpoints" / "last.zip"), *args[:-3],
                              *fork, "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0 and "new draw" not in r.stderr, r.stderr
    assert sorted(d.name for d in fork_dir.parent.iterdir()) == ["sac_7"]
    assert SAC.load(fork_dir / "checkpoints" / "last.zip").num_timesteps == 400


def test_enlarge_replay_buffer_keeps_transitions_oldest_first():
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from train_rl import enlarge_replay_buffer

    box = spaces.Box(-100, 100, (1,), np.float32)
    buf = ReplayBuffer(4, box, box, device="cpu")
    for i in range(6):  # wraps: slots hold 4, 5, 2, 3 and pos = 2
        buf.add(np.array([[i]]), np.array([[i + 1]]), np.array([[i / 10]]), np.array([i]), np.array([i % 2]), [{}])
    model = type("Model", (), dict(replay_buffer=buf, buffer_size=4))()
    assert enlarge_replay_buffer(model, 10)
    assert model.buffer_size == buf.buffer_size == 10 and buf.pos == 4 and not buf.full
    assert buf.observations[:, 0, 0].tolist() == [2, 3, 4, 5, 0, 0, 0, 0, 0, 0]
    assert buf.next_observations[:4, 0, 0].tolist() == [3, 4, 5, 6] and buf.rewards[:4, 0].tolist() == [2, 3, 4, 5]
    assert buf.dones[:4, 0].tolist() == [0, 1, 0, 1] and buf.actions[:4, 0, 0] == pytest.approx([0.2, 0.3, 0.4, 0.5])
    buf.add(np.array([[6]]), np.array([[7]]), np.array([[0.6]]), np.array([6]), np.array([0]), [{}])
    assert buf.observations[4, 0, 0] == 6 and buf.size() == 5  # the next transition goes after the kept ones
    assert not enlarge_replay_buffer(model, 8)  # never shrinks
    assert buf.buffer_size == 10


@pytest.mark.parametrize("algo", ["softq", "sac"])
def test_net_arch_sets_the_hidden_widths(algo):
    """--net-arch reaches the Q networks (softq) or SB3's actor and critics (sac), and the run's config."""
    import torch

    sys.path.insert(0, str(ROOT))
    from train_rl import build_model, build_parser

    from envs import make_env

    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--algo", algo, "--net-arch", "48", "24", "--steps", "500"])
    if algo == "softq":
        args.sampler = "ugan"
    model, config = build_model(args, make_env("MultiGoal-v0", seed=0))
    assert config["net_arch"] == [48, 24]
    critic = model.policy.critic
    widths = [m.out_features for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    assert widths[:3] == [48, 24, 1]  # the first Q network: 48 → 24 → Q
    if algo == "sac":
        assert [m.out_features for m in model.policy.actor.latent_pi.modules() if isinstance(m, torch.nn.Linear)] == [48, 24]


@pytest.mark.parametrize("algo", ["softq", "sac", "td3"])
def test_n_critics_sets_the_number_of_q_networks_and_each_is_trained(algo):
    """--n-critics reaches SoftQ's twin (here triple) critic or SB3's, keeps the zoo's TD3 network, is recorded, and a
    few updates move every Q network (the Bellman loss covers all of them; the target takes their minimum)."""
    import torch

    sys.path.insert(0, str(ROOT))
    from train_rl import build_model, build_parser

    from envs import make_env

    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--algo", algo, "--n-critics", "3", "--steps", "500",
                                      "--learning-starts", "20", "--batch-size", "16"])
    if algo == "softq":
        args.sampler = "ugan"
    model, config = build_model(args, make_env("MultiGoal-v0", seed=0))
    assert config["n_critics"] == 3 and len(model.policy.critic.q_networks) == 3
    if algo == "td3":
        assert [m.out_features for m in model.policy.actor.mu.modules() if isinstance(m, torch.nn.Linear)][:2] == [400, 300]
    before = [[p.detach().clone() for p in q.parameters()] for q in model.policy.critic.q_networks]
    model.learn(40)
    for q, params in zip(model.policy.critic.q_networks, before):
        assert any(not torch.equal(p, p0) for p, p0 in zip(q.parameters(), params))


def test_sampler_steps_reaches_the_model_and_its_record():
    sys.path.insert(0, str(ROOT))
    from train_rl import build_model, build_parser

    from envs import make_env

    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--sampler", "ugan", "--sampler-steps", "2",
                                      "--steps", "500", "--learning-starts", "20", "--batch-size", "16"])
    model, config = build_model(args, make_env("MultiGoal-v0", seed=0))
    assert config["sampler_steps"] == 2 and model.sampler_steps == 2
    calls, update = [], model.sampler_trainer.update
    model.sampler_trainer.update = lambda *a, **k: (calls.append(1), update(*a, **k))[1]
    model.learn(30)  # 10 Q updates after learning_starts=20
    assert model._n_updates == 10 and len(calls) == 20


@pytest.mark.parametrize("sampler", ["gaussian", "ugan-nocritic"])
def test_sampler_loss_tau_weights_each_sampler_step_by_tau_and_survives_a_checkpoint(tmp_path, sampler):
    sys.path.insert(0, str(ROOT))
    from train_rl import build_model, build_parser

    from agents.softq import SoftQ
    from envs import make_env

    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--sampler", sampler, "--sampler-loss-tau", "--tau",
                                      "auto_0.5", "--steps", "500", "--learning-starts", "20", "--batch-size", "16"])
    model, config = build_model(args, make_env("MultiGoal-v0", seed=0))
    assert config["sampler_loss_tau"] is True and model.sampler_loss_tau
    weights, update = [], model.sampler_trainer.update

    def recorded(*a, weight=1.0, **k):
        weights.append((weight, model.policy.temperature))
        return update(*a, weight=weight, **k)

    model.sampler_trainer.update = recorded
    model.learn(30)
    assert len(weights) == 10 and all(w == t for w, t in weights)
    assert weights[0][0] == pytest.approx(0.5) and weights[-1][0] != weights[0][0]  # τ moved, the weight with it
    model.save(tmp_path / "m.zip")
    assert SoftQ.load(tmp_path / "m.zip").sampler_loss_tau


def test_critic_pessimism_reaches_the_soft_value_and_survives_a_checkpoint(tmp_path):
    """--critic-pessimism C makes the soft value's Q mean − C·std over the target critics (checked against the
    critics' own outputs), is recorded, survives save/load, and is refused for SAC and for C < 0."""
    import torch

    sys.path.insert(0, str(ROOT))
    from agents.softq import SoftQ
    from train_rl import build_model, build_parser

    from envs import make_env

    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--sampler", "ugan", "--critic-pessimism", "2",
                                      "--steps", "500", "--learning-starts", "20", "--batch-size", "16"])
    model, config = build_model(args, make_env("MultiGoal-v0", seed=0))
    assert config["critic_pessimism"] == 2.0 and model.policy.critic_pessimism == 2.0
    model.learn(40)
    p = model.policy
    # the logged train/q_pessimistic is the batch mean of mean − 2·std over the online critics before the step
    critic_before, state = copy.deepcopy(p.critic), np.random.get_state()
    model.train(gradient_steps=1, batch_size=16)
    np.random.set_state(state)
    batch = model.replay_buffer.sample(16)
    with torch.no_grad():
        q1, q2 = critic_before(batch.observations, batch.actions)
    logged = model.logger.name_to_value["train/q_pessimistic"]
    assert logged == pytest.approx((torch.minimum(q1, q2) - (q1 - q2).abs() / 2).mean().item(), rel=1e-5, abs=1e-5)
    obs, actions = torch.randn(5, 2), torch.rand(5, 3, 2) * 2 - 1
    with torch.no_grad():
        q1, q2 = (q.reshape(5, 3) for q in p.critic_target(obs.repeat_interleave(3, 0), actions.reshape(15, 2)))
        expected = torch.minimum(q1, q2) - (q1 - q2).abs() / 2  # mean − 2·(|q1 − q2|/2)
        assert torch.allclose(p.q_min(obs, actions, target=True), expected, atol=1e-5)
    model.save(tmp_path / "m.zip")
    assert SoftQ.load(tmp_path / "m.zip").policy.critic_pessimism == 2.0
    for flags, message in ((["--algo", "sac", "--critic-pessimism", "1"], "applies to --algo softq only"),
                           (["--critic-pessimism", "-1"], "must be a finite number >= 0")):
        result = subprocess.run([sys.executable, str(ROOT / "train_rl.py"), "--steps", "10", *flags],
                                capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode != 0 and message in result.stderr


@pytest.mark.parametrize("sampler", ["ugan", "maf", "svgd"])
def test_sampler_grad_clip_reaches_the_sampler_trainer(sampler):
    """--sampler-grad-clip sets every sampler network's gradient-norm clip (0: none); the default stays 10."""
    sys.path.insert(0, str(ROOT))
    from envs import make_env
    from train_rl import build_model, build_parser

    def clip(*flags):
        args = build_parser().parse_args(["--env", "MultiGoal-v0", "--steps", "1000", "--sampler", sampler, *flags])
        model, config = build_model(args, make_env("MultiGoal-v0"))
        return model.policy.sampler_trainer.config.max_grad_norm, config.get("max_grad_norm", "unset")

    assert clip() == (10.0, "unset")
    assert clip("--sampler-grad-clip", "2.5") == (2.5, 2.5)
    assert clip("--sampler-grad-clip", "0") == (None, None)


def test_generator_lr_reaches_the_generator_optimizer_alone():
    """--generator-lr sets the U-GAN generator's Adam step size; its critic and bridge keep --lr."""
    sys.path.insert(0, str(ROOT))
    from envs import make_env
    from train_rl import build_model, build_parser

    def lrs(*flags):
        args = build_parser().parse_args(["--env", "MultiGoal-v0", "--steps", "1000", "--sampler", "ugan", *flags])
        model, config = build_model(args, make_env("MultiGoal-v0"))
        trainer = model.policy.sampler_trainer
        return tuple(opt.param_groups[0]["lr"] for opt in
                     (trainer.generator_optimizer, trainer.critic_optimizer, trainer.bridge_optimizer)), config

    (gen, critic, bridge), config = lrs("--lr", "3e-4")
    assert (gen, critic, bridge) == (3e-4, 3e-4, 3e-4) and "lr_generator" not in config
    (gen, critic, bridge), config = lrs("--lr", "3e-4", "--generator-lr", "1e-4")
    assert (gen, critic, bridge) == (1e-4, 3e-4, 3e-4) and config["lr_generator"] == 1e-4


def test_generator_hidden_sets_the_generator_widths_alone():
    """--generator-hidden sizes the U-GAN generator's hidden layers; its critic keeps 128 128 and the run's config
    records the widths."""
    sys.path.insert(0, str(ROOT))
    from torch import nn

    from envs import make_env
    from train_rl import build_model, build_parser

    def widths(*flags):
        args = build_parser().parse_args(["--env", "MultiGoal-v0", "--steps", "1000", "--sampler", "ugan", *flags])
        model, config = build_model(args, make_env("MultiGoal-v0"))
        sampler = model.policy.sampler
        out = {name: [m.out_features for m in getattr(sampler, name).modules() if isinstance(m, nn.Linear)]
               for name in ("generator", "critic")}
        return out, config

    out, config = widths()
    assert out == {"generator": [128, 128, 2], "critic": [128, 128, 1]} and "generator_hidden" not in config
    out, config = widths("--generator-hidden", "256", "256", "64")
    assert out == {"generator": [256, 256, 64, 2], "critic": [128, 128, 1]}
    assert config["generator_hidden"] == (256, 256, 64)


def test_gaussian_generator_flag_builds_sacs_family_inside_the_ugan():
    """--generator gaussian: the U-GAN's generator is μ(s) + σ(s)·z from one MLP of the state (SAC's actor family,
    widths from --generator-hidden), the bridge and its estimate stay; the run's config records it, and the agent
    trains and acts with it (the deterministic rule's fixed noise goes through the same generator)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from torch import nn

    from envs import make_env
    from softq_ugan.ugan import GaussianGenerator
    from train_rl import build_model, build_parser

    env = make_env("MultiGoal-v0")
    args = build_parser().parse_args(["--env", "MultiGoal-v0", "--steps", "300", "--learning-starts", "100",
                                      "--sampler", "ugan-nocritic", "--generator", "gaussian",
                                      "--generator-hidden", "64", "64"])
    model, config = build_model(args, env)
    sampler = model.policy.sampler
    assert isinstance(sampler.generator, GaussianGenerator) and sampler.critic is None
    assert [m.out_features for m in sampler.generator.modules() if isinstance(m, nn.Linear)] == [64, 64, 4]
    assert config["generator"] == "gaussian" and config["generator_hidden"] == (64, 64)
    model.learn(300)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def test_shared_bridge_step_flag_reaches_the_ugan_config():
    sys.path.insert(0, str(ROOT))
    from envs import make_env
    from train_rl import build_model, build_parser

    def shared(env_id, *flags):
        args = build_parser().parse_args(["--env", env_id, "--steps", "1000", "--sampler", "ugan", *flags])
        model, config = build_model(args, make_env(env_id))
        return model.policy.sampler_trainer.config.shared_bridge_step, config.get("shared_bridge_step", "unset")

    # no preset: the UGANConfig default (separate bridge step); the Swimmer-v4 preset takes the shared step
    assert shared("Pendulum-v1") == (False, "unset")
    assert shared("Pendulum-v1", "--shared-bridge-step") == (True, True)
    assert shared("Swimmer-v4") == (True, True)
    assert shared("Swimmer-v4", "--no-shared-bridge-step") == (False, False)
    # --exact-density loss leaves log ν out of the generator's loss: the preset's shared step gives way; downstream
    # only, the loss keeps log ν and the shared step
    assert shared("Swimmer-v4", "--generator", "gaussian", "--exact-density", "loss") == (False, False)
    assert shared("Swimmer-v4", "--generator", "gaussian", "--exact-density", "density") == (True, True)


def test_bridge_steps_flag_reaches_the_ugan_config_and_each_step_moves_the_bridge():
    """--bridge-steps sets the U-GAN's MLE steps per generator step (RL's default 1, the Swimmer preset's shared one);
    with 3, one update takes the shared step and two of its own, so the bridge moves further than with 1."""
    sys.path.insert(0, str(ROOT))
    import torch
    from envs import make_env
    from train_rl import build_model, build_parser

    def build(*flags):
        args = build_parser().parse_args(["--env", "Swimmer-v4", "--steps", "1000", "--sampler", "ugan-nocritic", *flags])
        return build_model(args, make_env("Swimmer-v4"))

    model, config = build()
    assert model.policy.sampler_trainer.config.bridge_steps == 1 and "bridge_steps" not in config
    moved = {}
    for n in (1, 3):
        torch.manual_seed(0)
        model, config = build("--bridge-steps", str(n))
        trainer = model.policy.sampler_trainer
        assert trainer.config.bridge_steps == n and config["bridge_steps"] == n
        bridge = trainer.sampler.bridge
        before = [p.detach().clone() for p in bridge.parameters()]
        trainer.update(lambda x, c: -0.5 * x.pow(2).sum(-1), torch.randn(4, 8))  # Swimmer's 8-dim state
        moved[n] = sum((p.detach() - b).abs().sum().item() for p, b in zip(bridge.parameters(), before))
    assert moved[3] > 1.5 * moved[1] > 0, moved


def test_swimmer_presets_for_maf_and_ugan_and_sqls_defaults_elsewhere():
    """Swimmer-v4 with maf or ugan gets SAC's soft value and temperature with the sampler's own density
    (swimmer_tuning.md); every other sampler and environment keeps SQL's (τ = 1, M = 16 uniform particles, delay 1);
    a flag given beats any preset."""
    sys.path.insert(0, str(ROOT))
    from envs import make_env
    from train_rl import build_model, build_parser

    def build(env_id, *flags):
        args = build_parser().parse_args(["--env", env_id, "--steps", "1000", *flags])
        return build_model(args, make_env(env_id))

    model, config = build("Swimmer-v4", "--sampler", "maf")
    assert (config["temperature"], config["proposal"], config["value_particles"], config["reward_scale"]) == (
        "auto", "generator", 1, 1.0)
    assert model.log_temperature is not None and (model.proposal, model.value_particles) == ("generator", 1)
    assert model.policy.net_arch == [256, 256] and model.batch_size == 256
    trainer = model.policy.sampler_trainer
    assert trainer.config.batch_size == 8 and trainer.config.schedule == "none"
    model, config = build("Swimmer-v4", "--sampler", "ugan")
    assert (config["temperature"], config["proposal"], config["value_particles"], config["sampler_particles"]) == (
        "auto", "generator", 1, 1)
    assert model.policy.net_arch == [256, 256] and model.batch_size == 256
    ugan = model.policy.sampler_trainer.config
    assert ugan.batch_size == 1 and ugan.schedule == "none" and ugan.max_grad_norm is None
    assert model.sampler_batch_size == 256 == config["sampler_batch_size"]  # SAC's actor batch: 256 states × 1
    assert ugan.shared_bridge_step and ugan.bridge_anchor and config["shared_bridge_step"] is config["bridge_anchor"] is True
    model, config = build("Swimmer-v4", "--sampler", "ugan", "--sampler-batch-size", "64", "--sampler-particles", "4",
                          "--sampler-grad-clip", "10", "--no-bridge-anchor")  # sessions 22-30's preset, spelled out
    ugan = model.policy.sampler_trainer.config
    assert (model.sampler_batch_size, ugan.batch_size, ugan.max_grad_norm, ugan.bridge_anchor) == (64, 4, 10.0, False)
    model, config = build("Swimmer-v4", "--sampler", "ugan", "--no-shared-bridge-step")
    assert not model.policy.sampler_trainer.config.shared_bridge_step
    model, config = build("Swimmer-v4", "--sampler", "ugan-nocritic")  # Swimmer's default: the preset without D
    assert model.policy.sampler.critic is None and config["sampler_batch_size"] == 256
    assert model.policy.sampler_trainer.config.bridge_anchor and config["proposal"] == "generator"
    for env_id, sampler in (("Swimmer-v4", "svgd"), ("Swimmer-v4", "ugan-oneway"),
                            ("MultiGoal-v0", "ugan"), ("MultiGoal-v0", "maf")):
        model, config = build(env_id, "--sampler", sampler)
        assert (config["temperature"], config["proposal"], config["policy_delay"], config["value_particles"]) == (
            1.0, "uniform", 1, 16)
        assert (model.temperature, model.proposal, model.policy_delay) == (1.0, "uniform", 1)
        assert model.policy.net_arch == [128, 128] and model.batch_size == 128
    model, config = build("Swimmer-v4", "--sampler", "maf", "--tau", "0.5", "--proposal", "uniform", "--net-arch", "64",
                          "64", "--sampler-particles", "2")
    assert (config["temperature"], config["proposal"], config["net_arch"], config["sampler_particles"]) == (
        0.5, "uniform", [64, 64], 2)
    assert model.log_temperature is None and model.policy.sampler_trainer.config.batch_size == 2
    assert config["sampler_batch_size"] == 64 == model.sampler_batch_size  # SoftQ's default: 64 of the 256 states
    model, config = build("MultiGoal-v0", "--sampler", "ugan", "--batch-size", "32")
    assert config["sampler_batch_size"] == 32  # the whole minibatch when it is smaller than the default 64


def test_resume_with_another_runs_replay_buffer(tmp_path):
    """--replay-buffer: a checkpoint's networks continue on another saved buffer (the buffer is what they train on);
    one-line errors without --resume, for a missing file, and for a buffer of another environment's shapes."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
    from gymnasium import spaces

    args = ["--algo", "sac", "--env", "MultiGoal-v0", "--eval-every", "200", "--eval-episodes", "1",
            "--learning-starts", "100", "--batch-size", "32", "--checkpoint-every", "200", "--quiet"]
    r = subprocess.run(CMD + ["--steps", "200", "--logdir", str(tmp_path), *args], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    ckpts = tmp_path / "MultiGoal-v0" / "sac_0" / "checkpoints"
    other = load_from_pkl(ckpts / "last_replay_buffer.pkl")
    n = other.size()
    other.rewards[:n] = 123.0  # another run's data, told apart by its rewards
    save_to_pkl(tmp_path / "other.pkl", other)
    fork = ["--logdir", str(tmp_path / "fork"), "--seed", "3"]
    r = subprocess.run(CMD + ["--steps", "250", "--resume", str(ckpts / "last.zip"), "--replay-buffer",
                              str(tmp_path / "other.pkl"), *fork, *args], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"with the replay buffer {tmp_path / 'other.pkl'} ({n} transitions)" in r.stderr, r.stderr
    # settings flags given with --resume do not change the checkpoint's, and the run says so
    assert "note: --batch-size --learning-starts not applied: a resumed run keeps" in r.stderr, r.stderr
    run_dir = tmp_path / "fork" / "MultiGoal-v0" / "sac_3"
    assert json.loads((run_dir / "config.json").read_text())["replay_buffer_from"] == str(tmp_path / "other.pkl")
    model = SAC.load(run_dir / "checkpoints" / "last.zip")
    model.load_replay_buffer(run_dir / "checkpoints" / "last_replay_buffer.pkl")
    rewards = model.replay_buffer.rewards[: model.replay_buffer.size(), 0]
    assert (rewards[:n] == 123.0).all() and not (rewards[n:] == 123.0).any() and len(rewards) >= n + 49
    # a buffer of another environment's observations
    box = spaces.Box(-1, 1, (5,), np.float32)
    save_to_pkl(tmp_path / "wrong.pkl", ReplayBuffer(10, box, spaces.Box(-1, 1, (2,), np.float32), device="cpu"))
    for extra, message in ((["--replay-buffer", str(tmp_path / "other.pkl")], "--replay-buffer applies with --resume only"),
                           (["--resume", str(ckpts / "last.zip"), "--replay-buffer", str(tmp_path / "none.pkl")],
                            "replay buffer '" + str(tmp_path / "none.pkl") + "' does not exist"),
                           (["--resume", str(ckpts / "last.zip"), "--replay-buffer", str(tmp_path / "wrong.pkl")],
                            "holds observations of shape (5,), not (2,)")):
        r = subprocess.run(CMD + ["--steps", "250", *extra, *fork, *args], capture_output=True, text=True,
                           timeout=600, cwd=ROOT)
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
