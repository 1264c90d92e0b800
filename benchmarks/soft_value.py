"""Bias and spread of the soft value V(s) = τ log ∫ exp(Q̄(s,a)/τ) da: uniform vs MAF-bridge proposal.

    python benchmarks/soft_value.py CHECKPOINT.zip [CHECKPOINT.zip ...]

For each trained SoftQ checkpoint (with a U-GAN sampler) it takes states from the checkpoint's
replay buffer (``<name>_replay_buffer.pkl`` beside it), computes a reference V with 100,000 uniform
samples, and for M ∈ {4, 16, 64} repeats each estimator R times: bias = mean(V̂ − V_ref),
sd = std(V̂), and the normalized ESS of the importance weights. Medians over states; results in
benchmarks/results/soft_value.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@torch.no_grad()
def estimates(model, obs: torch.Tensor, proposal: str, M: int, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """V̂ ``(repeats, S)`` and mean ESS ``(S,)`` from ``repeats`` independent M-particle estimates."""
    from softq_ugan.metrics import ess

    model.value_particles = M
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--states", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--particles", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soft_value.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from agents import SoftQ

    rows = []
    for ckpt in args.checkpoints:
        model = SoftQ.load(ckpt, device="cpu")
        buffer = Path(ckpt.removesuffix(".zip") + "_replay_buffer.pkl")
        if not buffer.is_file():
            sys.exit(f"error: no replay buffer beside {ckpt} (expected {buffer})")
        model.load_replay_buffer(buffer)
        obs = model.replay_buffer.sample(args.states).observations
        env_name = Path(ckpt).parts[-4] if len(Path(ckpt).parts) >= 4 else ckpt
        ref = reference(model, obs)
        for M in args.particles:
            for proposal in ("uniform", "bridge"):
                v, e = estimates(model, obs, proposal, M, args.repeats)
                bias, sd = v.mean(0) - ref, v.std(0)
                rows.append(f"| {env_name} | {M} | {proposal} | {np.median(bias):+.3f} | {np.median(np.abs(bias)):.3f} "
                            f"| {np.median(sd):.3f} | {np.median(e):.3f} |")
        print("\n".join(rows[-2 * len(args.particles):]), flush=True)
    text = (
        "# Soft value: uniform vs bridge proposal\n\n"
        f"Command: `python benchmarks/soft_value.py {' '.join(sys.argv[1:])}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread. {args.states} states from each "
        f"checkpoint's replay buffer; reference V from 100,000 uniform particles; {args.repeats} repeats per "
        f"estimator; medians over states. Generated {time.strftime('%Y-%m-%d %H:%M')}.\n\n"
        "| checkpoint | M | proposal | bias (median) | abs bias (median) | sd (median) | ESS (median) |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
