"""How far a U-GAN SoftQ checkpoint's MAF bridge is from its generator, at states of its own replay buffer.

    python benchmarks/policy_spread.py runs/recipe_ugan_k4/Swimmer-v4/ugan_10 --steps 50000 100000 150000

For each saved step (``checkpoints/<sampler>_<step>_steps.zip`` and its replay buffer, as ``train_rl.py`` writes
them): the per-state standard deviation of actions drawn from the generator and from the bridge, the target
critic's min Q̄ at each and at the buffer's own actions, and the mean reward of the sampled transitions. The bridge
is the soft value's proposal and the temperature's entropy gauge with ``--proposal bridge``; this says how well it
stands in for the policy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spread(run: Path, step: int, states: int, samples: int, seed: int) -> dict[str, float]:
    import torch

    from agents import SoftQ

    ckpts = run / "checkpoints"
    matches = sorted(ckpts.glob(f"*_{step}_steps.zip"))
    if not matches:
        raise FileNotFoundError(f"{ckpts}: no checkpoint for step {step}")
    model = SoftQ.load(matches[0], device="cpu")
    name = matches[0].name.removesuffix(f"_{step}_steps.zip")
    model.load_replay_buffer(ckpts / f"{name}_replay_buffer_{step}_steps.pkl")
    p = model.policy
    if p.proposal_flow is None or p.proposal_flow is p.sampler:
        raise ValueError(f"{run}: the {model.sampler} sampler has no separate MAF bridge")
    torch.manual_seed(seed)
    data = model.replay_buffer.sample(states)
    obs = data.observations
    with torch.no_grad():
        c = p.context(obs)
        a_g = torch.tanh(p.sampler.rsample(samples, c).clamp(-10, 10))
        a_b = torch.tanh(p.proposal_flow.rsample(samples, c).clamp(-10, 10))
        q = {k: p.q_min(obs, a, target=True).mean().item()
             for k, a in (("generator", a_g), ("bridge", a_b), ("buffer", data.actions.unsqueeze(1)))}
    return dict(step=step, std_generator=a_g.std(1).mean().item(), std_bridge=a_b.std(1).mean().item(),
                q_generator=q["generator"], q_bridge=q["bridge"], q_buffer=q["buffer"],
                reward_per_1k=1000 * data.rewards.mean().item())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a train_rl.py run folder with checkpoints/")
    p.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps to read")
    p.add_argument("--states", type=int, default=512, help="replay states (default 512)")
    p.add_argument("--samples", type=int, default=64, help="actions per state from each (default 64)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print(f"{args.run}: {args.states} replay states, {args.samples} actions per state\n")
    print("| step | action std, generator | action std, bridge | Q̄ at generator | Q̄ at bridge | Q̄ at buffer | reward × 1000 |")
    print("|---|---|---|---|---|---|---|")
    for step in args.steps:
        try:
            r = spread(args.run, step, args.states, args.samples, args.seed)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"| {r['step']} | {r['std_generator']:.3f} | {r['std_bridge']:.3f} | {r['q_generator']:.1f} | "
              f"{r['q_bridge']:.1f} | {r['q_buffer']:.1f} | {r['reward_per_1k']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
