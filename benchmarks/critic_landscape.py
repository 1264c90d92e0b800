"""What SoftQ critics prefer over the action box, at the same replay states: does each policy follow its critic, and
do two critics prefer the same actions?

    python benchmarks/critic_landscape.py runs/a/Swimmer-v4/ugan_24/checkpoints/ugan_100000_steps.zip \\
        runs/a/Swimmer-v4/ugan_25/checkpoints/ugan_100000_steps.zip

At ``--states`` states drawn from the first checkpoint's replay buffer (or ``--buffer``), every checkpoint's min-Q is
read at the same ``--candidates`` actions drawn uniformly from the box (in the [-1, 1] units the critics and the
replay buffer use). Per checkpoint: the learned τ, how far below
the best candidate its deterministic action's Q lies (in Q and in nats, ÷ τ: how much the policy leaves to its
critic), the spread of Q over the box, and the share of states whose best candidate sits at the box's edge
(|a_i| > 0.95 in some coordinate). Per pair (each checkpoint against the first): the median per-state correlation of
their Q over the candidates, the median distance between their best candidates, the share of states where the best
candidates have the same signs, and how much each loses at the other's best candidate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softq_ugan.cli import error_line, fail  # noqa: E402  (the standard library only)


def landscapes(models, obs, candidates):
    """min-Q of each model at ``obs`` (B, o) × ``candidates`` (C, d) → list of (B, C)."""
    import torch

    with torch.no_grad():
        return [m.policy.q_min(obs, candidates.expand(len(obs), -1, -1)) for m in models]


def compare(qa, qb, candidates) -> dict[str, float]:
    """Two critics' landscapes (B, C) over the same ``candidates`` (C, d), medians over states: the per-state
    correlation, the distance between their best candidates, the share of states where those have the same signs,
    and each one's loss at the other's best candidate."""
    import torch

    rows = torch.arange(len(qa))
    ca, cb = qa - qa.mean(1, keepdim=True), qb - qb.mean(1, keepdim=True)
    corr = (ca * cb).sum(1) / (ca.norm(dim=1) * cb.norm(dim=1)).clamp_min(1e-12)
    ia, ib = qa.argmax(1), qb.argmax(1)
    best_a, best_b = candidates[ia], candidates[ib]
    return dict(corr=float(corr.median()), distance=float((best_a - best_b).norm(dim=1).median()),
                same_signs=float((torch.sign(best_a) == torch.sign(best_b)).all(1).float().mean()),
                loss_a=float((qa.max(1).values - qa[rows, ib]).median()),
                loss_b=float((qb.max(1).values - qb[rows, ia]).median()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="SoftQ checkpoint .zip files of one environment")
    p.add_argument("--buffer", default=None, help="replay buffer .pkl to draw states from (default: the first "
                                                   "checkpoint's, saved beside it)")
    p.add_argument("--states", type=int, default=256, help="replay states (default 256)")
    p.add_argument("--candidates", type=int, default=2048, help="uniform actions per state (default 2048)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.states <= 0 or args.candidates <= 0:
        fail("--states and --candidates must be positive")
    for path in args.checkpoints:
        if not Path(path).is_file():
            fail(f"checkpoint '{path}' does not exist")

    import numpy as np
    import torch
    from stable_baselines3.common.save_util import load_from_pkl

    from agents.softq import SoftQ
    from train_rl import replay_buffer_candidates

    torch.set_num_threads(1)
    models = []
    for path in args.checkpoints:
        try:
            models.append(SoftQ.load(path, device="cpu"))
        except Exception as e:  # an SB3 SAC checkpoint, a truncated file
            fail(f"cannot load {path} as a SoftQ checkpoint: {error_line(e)}")
    spaces = {(m.observation_space.shape, m.action_space.shape) for m in models}
    if len(spaces) > 1:
        fail("the checkpoints have different observation or action shapes")
    buffer = Path(args.buffer) if args.buffer else next(
        (b for b in replay_buffer_candidates(Path(args.checkpoints[0])) if b.is_file()), None)
    if buffer is None or not buffer.is_file():
        fail(f"no replay buffer: give --buffer (none beside {args.checkpoints[0]})")
    buf = load_from_pkl(buffer)
    n = buf.buffer_size if buf.full else buf.pos
    if n == 0:
        fail(f"replay buffer {buffer} is empty")
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(n, min(args.states, n), replace=False)
    obs = torch.as_tensor(buf.observations[idx, 0], dtype=torch.float32)
    # the critics see actions as the replay buffer stores them: squashed into [-1, 1] (SB3's scale_action)
    dim = models[0].action_space.shape[0]
    candidates = torch.as_tensor(rng.uniform(-1.0, 1.0, (args.candidates, dim)), dtype=torch.float32)
    qs = landscapes(models, obs, candidates)

    print(f"{len(obs)} states from {buffer}, {args.candidates} uniform candidate actions each; medians over states\n")
    print("| checkpoint | τ | best candidate − Q(deterministic action) | ÷ τ (nats) | Q spread over the box | best at the edge |")
    print("|---|---|---|---|---|---|")
    for path, m, q in zip(args.checkpoints, models, qs):
        with torch.no_grad():
            det = m.policy.scale_action(m.predict(obs.numpy(), deterministic=True)[0])  # env units -> [-1, 1]
            det = torch.as_tensor(det, dtype=torch.float32)
            q_det = m.policy.q_min(obs, det[:, None])[:, 0]
        tau = float(m.policy.temperature)  # the learned τ, restored on load
        gap = q.max(1).values - q_det
        at_edge = (candidates[q.argmax(1)].abs() > 0.95).any(1).float().mean()
        print(f"| {path} | {tau:.4f} | {float(gap.median()):.3f} | {float((gap / tau).median()):.1f} | "
              f"{float((q.max(1).values - q.min(1).values).median()):.3f} | {float(at_edge):.2f} |")
    if len(models) > 1:
        print(f"\nAgainst the first checkpoint ({args.checkpoints[0]}):\n")
        print("| checkpoint | correlation of Q over the box | distance between best candidates | same signs | "
              "first's loss at its best | its loss at the first's best |")
        print("|---|---|---|---|---|---|")
        for path, q in zip(args.checkpoints[1:], qs[1:]):
            c = compare(qs[0], q, candidates)
            print(f"| {path} | {c['corr']:.2f} | {c['distance']:.3f} | {c['same_signs']:.2f} | {c['loss_a']:.3f} | "
                  f"{c['loss_b']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
