"""Is a stuck run's critic hard to follow, or is its sampler behind? Fit samplers to a SoftQ checkpoint's frozen
critic and read how closely each then follows the critic's Boltzmann policy.

    python benchmarks/refit_sampler.py benchmarks/results/swimmer_preset/softq-ugan_8/model.zip \\
        benchmarks/results/swimmer_nocritic/softq-ugan-nocritic_1/model.zip --steps 4000 --out refit.md

For each checkpoint (a SoftQ of ``train_rl.py`` or ``benchmarks/swimmer.py``, with its replay buffer beside it), the
critic and τ stay as saved, and three samplers each take ``--steps`` steps toward exp(min Q(s,·)/τ) on batches of
its replay states (``--batch`` states, one sample each, as the Swimmer preset's sampler does):

- ``own``: the checkpoint's own sampler, with its optimizer states, continued (its own update: the U-GAN's
  generator, bridge and critic D);
- ``fresh``: a new sampler of the same kind and settings, from its initialisation;
- ``gaussian``: a SAC-style tanh-Gaussian policy (SoftQ's ``gaussian`` sampler: two hidden layers of
  ``--gaussian-hidden``, Adam at the checkpoint's learning rate) trained by the reverse KL
  E[log π(y|s) − log u(y|s)], the objective SAC's actor descends over τ.

Before the first step and after a quarter and all of ``--steps``, at two sets of states (``replay``: ``--states``
replay states; ``visited``: every 10th state of one ``--rollout-steps`` rollout of the checkpoint's stochastic
policy, the states it walks now), each sampler's ``--samples`` y-space samples per state give two readings,
medians over states:

- **score**: |E_π ∇_y log u(y|s)|, with log u the target in y-space (Q/τ plus the tanh's log-Jacobian). The target's
  score has mean zero under the target itself (a Stein identity), so a large mean score says the samples sit to
  one side of where the critic puts its mass.
- **gap**: (E_p[Q] − E_π[Q]) / τ in nats, E_p under the Boltzmann policy p ∝ exp(Q/τ) estimated with ``--candidates``
  uniform actions in the box. After 4000 steps on Swimmer: 0.4–1.1 for an escaped run's samplers; 2.4–5.9
  at replay states and 3.3–13.2 at visited states for two stuck runs' (``benchmarks/results/refit_sampler.md``).

Where the fresh samplers fall no lower than the own one, the critic's landscape is what they cannot follow.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from critic_bias import find_buffer, rollout  # noqa: E402  (beside this script)
from report_notes import write_report  # noqa: E402
from softq_ugan.cli import build_info, build_text, error_line, fail  # noqa: E402

SAMPLERS = ("own", "fresh", "gaussian")


def mean_score_norm(score):
    """|mean over samples of ∇_y log u| per state: ``score`` (B, K, d) → (B,). Zero in expectation when the K
    samples follow the target (E_u ∇ log u = 0 for a density that vanishes at the boundary)."""
    return score.mean(1).norm(dim=-1)


def boltzmann_gap(q_candidates, q_samples, tau: float):
    """(E_p[Q] − E_π[Q]) / τ per state, p ∝ exp(Q/τ) on the box estimated by self-normalised weights over uniform
    candidates: ``q_candidates`` (B, C) at the candidates, ``q_samples`` (B, K) at the policy's samples → (B,)."""
    import torch

    w = torch.softmax(q_candidates / tau, dim=1)
    return ((w * q_candidates).sum(1) - q_samples.mean(1)) / tau


def readings(model, obs, candidates, sample_y, k: int) -> tuple[float, float]:
    """(median score, median gap) of the sampler ``sample_y(obs, k) → (B, k, d)`` at the states ``obs``."""
    import torch

    policy, tau = model.policy, float(model.policy.temperature)
    y = sample_y(obs, k).detach().requires_grad_(True)
    log_u = policy.boltzmann_log_prob(obs)(y, policy.context(obs))
    (score,) = torch.autograd.grad(log_u.sum(), y)
    with torch.no_grad():
        q_c = policy.q_min(obs, candidates.expand(len(obs), -1, -1))
        q_s = policy.q_min(obs, torch.tanh(y))
    return float(mean_score_norm(score).median()), float(boltzmann_gap(q_c, q_s, tau).median())


def refit(path: Path, kinds: list[str], args) -> list[str]:
    """Table rows: each of ``kinds``' readings at the checkpoints of its ``--steps`` steps against ``path``'s critic,
    all read at the same replay states, visited states and candidates (drawn once per checkpoint)."""
    import numpy as np
    import torch
    from stable_baselines3.common.save_util import load_from_pkl

    from agents.policies import RL_DEFAULTS, SAMPLERS as BUILDERS
    from agents.softq import SoftQ

    torch.manual_seed(args.seed)
    model = SoftQ.load(path, device="cpu")
    buffer = load_from_pkl(find_buffer(path))
    rng = np.random.default_rng(args.seed)
    n = buffer.buffer_size if buffer.full else buffer.pos
    replay = torch.as_tensor(buffer.observations[rng.choice(n, min(args.states, n), replace=False), 0],
                             dtype=torch.float32)
    # every 10th state of one rollout of the stochastic policy: the states it walks now
    visited = torch.as_tensor(np.array(rollout(model, args.env, args.rollout_steps, False, args.seed)[0][::10]),
                              dtype=torch.float32)
    dim = model.action_space.shape[0]
    candidates = torch.as_tensor(rng.uniform(-1.0, 1.0, (args.candidates, dim)), dtype=torch.float32)
    rows = []
    for kind in kinds:
        model = SoftQ.load(path, device="cpu")  # each sampler starts from the checkpoint as saved
        policy, lr = model.policy, model.lr_schedule(1)
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)  # SB3's replay buffer draws its minibatches from numpy's global state
        if kind != "own":  # a new sampler in the policy: its own kind, or SoftQ's gaussian (SAC's actor)
            name, kwargs = (policy.sampler_name, {**RL_DEFAULTS.get(policy.sampler_name, {}), **policy.sampler_kwargs}) \
                if kind == "fresh" else ("gaussian", dict(hidden=(args.gaussian_hidden,) * 2))
            policy.sampler, model.sampler_trainer = BUILDERS[name](
                policy.action_dim, policy.features_dim, lr, policy.anneal_steps, **kwargs)
            policy.sampler_trainer = model.sampler_trainer
        sample_y = lambda o, k: policy.sampler.rsample(k, policy.context(o))  # noqa: E731
        done, start = 0, time.perf_counter()
        for target in sorted({0, args.steps // 4, args.steps}):
            while done < target:
                model._update_sampler(torch.as_tensor(buffer.sample(args.batch).observations, dtype=torch.float32))
                done += 1
            cells = [readings(model, states, candidates, sample_y, args.samples) for states in (replay, visited)]
            if not all(np.isfinite(c) for pair in cells for c in pair):
                fail(f"{path}: a non-finite reading for the {kind} sampler after {done} steps")
            rows.append(f"| {path} | {float(policy.temperature):.4f} | {kind} | {done} | "
                        + " | ".join(f"{s:.2f} | {g:.2f}" for s, g in cells) + " |")
        print(f"{path} {kind}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="SoftQ checkpoint .zip files, each with its replay buffer beside it")
    p.add_argument("--env", default="Swimmer-v4", help="the checkpoints' environment, for the rollout")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    p.add_argument("--steps", type=int, default=4000, help="sampler steps against the frozen critic (default 4000)")
    p.add_argument("--batch", type=int, default=256, help="replay states per step (default 256)")
    p.add_argument("--states", type=int, default=256, help="replay states read (default 256)")
    p.add_argument("--rollout-steps", type=int, default=1000, help="rollout for the visited states (default 1000)")
    p.add_argument("--samples", type=int, default=32, help="samples per state for the readings (default 32)")
    p.add_argument("--candidates", type=int, default=4096, help="uniform actions per state for E_p[Q] (default 4096)")
    p.add_argument("--gaussian-hidden", type=int, default=256, help="the Gaussian policy's width (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the table, with the command and machine, to this .md")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "states", "rollout_steps", "samples", "candidates", "gaussian_hidden"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for path in map(Path, args.checkpoints):
        if not path.is_file():
            fail(f"checkpoint '{path}' does not exist")
        if find_buffer(path) is None:
            fail(f"no replay buffer beside {path}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from agents.softq import SoftQ

    torch.set_num_threads(1)
    for path in args.checkpoints:
        try:
            SoftQ.load(path, device="cpu")
        except Exception as e:  # an SB3 SAC checkpoint, a truncated file
            fail(f"cannot load {path} as a SoftQ checkpoint: {error_line(e)}")
    lines = ["| checkpoint | τ | sampler | steps | replay: score | replay: gap (nats) | visited: score | "
             "visited: gap (nats) |", "|---|---|---|---|---|---|---|---|"]
    for path in map(Path, args.checkpoints):
        lines += refit(path, args.samplers, args)
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = shlex.join(["python", "benchmarks/refit_sampler.py", *(sys.argv[1:] if argv is None else argv)])
        write_report(args.out,
            "# Samplers refitted to frozen critics\n\n" + __doc__.split("\n\n", 1)[0] + "\n\n"
            f"Command: `{command}`\n\nMachine: {platform.machine()}, {os.cpu_count()} cores, one torch thread; "
            f"{build_text(build_info())}. Seed {args.seed} (replay states, candidates, rollout, initialisations). "
            f"Medians over states. Generated {time.strftime('%Y-%m-%d %H:%M')}.\n\n{table}\n\n"
            "<!-- notes -->\n<!-- /notes -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
