"""Bias and spread of the soft value V(s) = τ log ∫ exp(Q̄(s,a)/τ) da: uniform vs MAF-bridge proposal.

    python benchmarks/soft_value.py CHECKPOINT.zip [CHECKPOINT.zip ...] [--labels NAME ...]

For each trained SoftQ checkpoint (with a U-GAN or MAF sampler) it takes states from the checkpoint's
replay buffer (beside it: ``<name>_replay_buffer.pkl``, SB3's ``<prefix>_replay_buffer_<n>_steps.pkl``
or the benchmarks' ``replay_buffer.pkl``), computes a reference V with 100,000 uniform samples, and for
M ∈ {4, 16, 64} repeats each estimator R times: bias = mean(V̂ − V_ref), sd = std(V̂), and the
normalized ESS of the importance weights; each proposal with i.i.d. particles (MC) and with randomized
Sobol particles (RQMC, ``SoftQ(value_qmc=True)``); with ``--refit STEPS`` also a copy of the bridge
refitted to exp(Q/τ) itself by forward KL (an offline diagnostic). Medians over states; results in
benchmarks/results/soft_value.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from softq_ugan.cli import check_args, fail  # noqa: E402
from report_notes import NOTES, write_report  # noqa: E402  (beside this script; hand-written notes survive a rerun)


@torch.no_grad()
def estimates(model, obs: torch.Tensor, proposal: str, M: int, repeats: int,
              qmc: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """V̂ ``(repeats, S)`` and mean ESS ``(S,)`` from ``repeats`` independent M-particle estimates."""
    from softq_ugan.metrics import ess

    model.value_particles, model.value_qmc = M, qmc
    obs_rep = obs.repeat(repeats, 1)
    v, log_w = model.soft_value(obs_rep, proposal=proposal)
    return v.reshape(repeats, -1).numpy(), ess(log_w).reshape(repeats, -1).mean(0).numpy()


@torch.no_grad()
def reference(model, obs: torch.Tensor, n: int = 100_000, chunk: int = 10_000) -> np.ndarray:
    """V with n uniform particles (Q evaluated in chunks, then the same estimator as the agent's)."""
    from softq_ugan.soft_value import soft_value, uniform_log_proposal

    p = model.policy
    q = torch.cat([p.q_min(obs, torch.rand(obs.shape[0], chunk, p.action_dim) * 2 - 1, target=True)
                   for _ in range(n // chunk)], 1)
    return soft_value(q, uniform_log_proposal(p.action_dim), p.temperature)[0].numpy()


@contextlib.contextmanager
def swapped_bridge(model, flow):
    """``flow`` in place of the sampler's bridge for the block, the bridge put back however the block ends."""
    bridge, model.policy.sampler.bridge = model.policy.sampler.bridge, flow
    try:
        yield
    finally:
        model.policy.sampler.bridge = bridge


def refit_forward_kl(model, steps: int, lr: float = 1e-3, states: int = 256, particles: int = 16):
    """A copy of the checkpoint's bridge fitted to its Boltzmann policy exp(Q̄/τ) itself, by forward KL: ``steps`` Adam
    steps on −Σ_j w̄_j log q(y_j|s), with y_j drawn from the copy and w̄ their self-normalized importance weights
    (the cross-entropy method's update), on ``states`` replay states × ``particles`` per step. An offline diagnostic:
    how well the bridge's family can serve as the soft value's proposal when it fits the target, not the generator."""
    import copy

    from softq_ugan.soft_value import boltzmann_log_prob, forward_kl_proposal_loss

    p = model.policy
    flow = copy.deepcopy(p.proposal_flow)
    inner = getattr(flow, "flow", flow)  # an anchored bridge keeps its location G(0; s): fit the spread around it
    opt = torch.optim.Adam(inner.parameters(), lr=lr)
    for _ in range(steps):
        obs = model.replay_buffer.sample(states).observations
        ctx = p.context(obs)
        with torch.no_grad():
            y, log_q = flow.rsample_and_log_prob(particles, ctx)
            y = y.clamp(-10.0, 10.0)
            log_target = boltzmann_log_prob(p.q_min(obs, torch.tanh(y), target=True), y, p.temperature)
        loss = forward_kl_proposal_loss(log_target - log_q, flow.log_prob(y, ctx))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return flow


def replay_buffer_of(ckpt: Path) -> Path:
    """The replay buffer saved beside a checkpoint, under any of the names this project's runs give it."""
    stem = ckpt.name.removesuffix(".zip")
    prefix, _, rest = stem.partition("_")
    names = [f"{stem}_replay_buffer.pkl", "replay_buffer.pkl"]
    if rest.endswith("_steps"):  # SB3's CheckpointCallback: <prefix>_<n>_steps.zip, <prefix>_replay_buffer_<n>_steps.pkl
        names.insert(1, f"{prefix}_replay_buffer_{rest}.pkl")
    for name in names:
        if (ckpt.parent / name).is_file():
            return ckpt.parent / name
    fail(f"no replay buffer beside {ckpt} (looked for {', '.join(names)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--labels", nargs="+", help="a name per checkpoint for the table (default: its path)")
    ap.add_argument("--states", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--particles", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--refit", type=int, default=0, metavar="STEPS",
                    help="also measure a copy of the bridge refitted to exp(Q/τ) by forward KL for STEPS steps (U-GAN)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soft_value.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)  # the replay buffer draws its states with numpy
    from agents import SoftQ

    if args.labels and len(args.labels) != len(args.checkpoints):
        fail(f"{len(args.labels)} labels for {len(args.checkpoints)} checkpoints")
    check_args(positive={"--states": args.states, "--repeats": args.repeats, "--particles": min(args.particles)})
    if args.refit < 0:
        fail(f"--refit must be >= 0 steps, got {args.refit}")
    for ckpt in args.checkpoints:
        if not Path(ckpt).is_file():
            fail(f"checkpoint {ckpt} does not exist")
    rows, ratios = [], []
    for i, ckpt in enumerate(args.checkpoints):
        model = SoftQ.load(ckpt, device="cpu")
        model.load_replay_buffer(replay_buffer_of(Path(ckpt)))
        obs = model.replay_buffer.sample(args.states).observations
        label = args.labels[i] if args.labels else ckpt
        ref = reference(model, obs)
        flows = [name for name, flow in (("bridge", model.policy.proposal_flow), ("fitted", model.policy.fitted_flow))
                 if flow is not None]  # "fitted": the model was trained with proposal="fitted"
        arms = [(name, qmc) for qmc in (False, True) for name in ("uniform", *flows)]
        refit = args.refit and hasattr(model.policy.sampler, "bridge")
        if refit:
            fitted = refit_forward_kl(model, args.refit)
            arms += [("refit", False), ("refit", True)]
        for M in args.particles:
            sd_uniform = None
            for proposal, qmc in arms:
                if proposal == "refit":  # the copy stands in for the bridge while it is measured
                    with swapped_bridge(model, fitted):
                        v, e = estimates(model, obs, "bridge", M, args.repeats, qmc)
                    proposal = f"bridge refit ({args.refit} steps)"
                else:
                    v, e = estimates(model, obs, proposal, M, args.repeats, qmc)
                bias, sd = v.mean(0) - ref, np.median(v.std(0))
                sd_uniform = sd if sd_uniform is None else sd_uniform
                rows.append(f"| {label} | {model.policy.temperature:.3g} | {M} | {proposal} | {'RQMC' if qmc else 'MC'} "
                            f"| {np.median(bias):+.4f} | {np.median(np.abs(bias)):.4f} | {sd:.4f} | {sd / sd_uniform:.2f} "
                            f"| {np.median(e):.3f} |")
                if M == 16 and proposal != "uniform":
                    ratios.append(f"{label}: {sd / sd_uniform:.2f} ({proposal}, {'RQMC' if qmc else 'MC'})")
            print("\n".join(rows[-len(arms):]), flush=True)
    text = (
        "# Soft value: uniform vs bridge proposal\n\n" + NOTES + "\n\n"
        f"Command: `python benchmarks/soft_value.py {shlex.join(sys.argv[1:])}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread. {args.states} states from each "
        f"checkpoint's replay buffer; reference V from 100,000 uniform particles; {args.repeats} repeats per "
        f"estimator; medians over states. Generated {time.strftime('%Y-%m-%d %H:%M')}.\n\n"
        "Each row's sd is the median over states of the estimate's standard deviation; \"÷ uniform MC\" divides it by "
        "the uniform proposal's with i.i.d. particles at the same M (SQL's estimator; issue 4's bar for the bridge at "
        "M = 16: ≤ 0.2). τ: the checkpoint's temperature (V is in its units).\n\n"
        "| checkpoint | τ | M | proposal | particles | bias (median) | abs bias (median) | sd (median) | ÷ uniform MC "
        "| ESS (median) |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Bridge sd ÷ uniform MC sd at M = 16: " + "; ".join(ratios) + ".\n"
    )
    print(write_report(args.out, text))


if __name__ == "__main__":
    main()
