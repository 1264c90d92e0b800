"""How far the U-GAN generator's gradient from the bridge's estimate log ν is from the one from its exact density.

    python benchmarks/generator_gradient.py --seeds 0 3 --steps 24000 --every 1000 \
        --flags="--sampler-loss-tau --generator gaussian --generator-hidden 256 256"

With a Gaussian generator (``--generator gaussian``: SAC's family μ(s) + σ(s)·z inside the U-GAN) the exact log g is
known beside the bridge's estimate. Each seed trains a fresh Swimmer-v4 run as ``benchmarks/swimmer.py`` builds it
(``softq-ugan-nocritic`` with ``--flags``); every ``--every`` env steps after learning starts it takes ``--states``
replay states and, over ``--draws`` noise draws, the mean gradient in the generator's parameters of the loss
E[τ·L(x) − τ log u(x)] (log u = Q/τ in tanh space, SoftQ's target; the τ scale of ``--sampler-loss-tau``) with
L = log g (SAC's actor loss), L = log ν as the U-GAN trains it (anchor detached) and, with an anchored bridge, log ν
differentiated through the anchor G(0; s) too. It reports each estimate's cosine and relative error against the exact
one, and the bridge's entropy error −E log ν − (−E log g) (VA §3.2's estimate with no critic). The measurement
restores torch's and numpy's random states, so it does not move the run it watches. Results in
benchmarks/results/generator_gradient.md.
"""

from __future__ import annotations

import argparse
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

DEFAULT_FLAGS = "--sampler-loss-tau --generator gaussian --generator-hidden 256 256"


def agreement(sampler, context: torch.Tensor, log_u, tau: float, draws: int) -> dict[str, float]:
    """Cosine and relative error of the mean generator gradient with log ν (as trained; with the anchor's gradient
    when the bridge is anchored) against the one with the exact log g, over ``draws`` noise draws, one sample per
    state each; and the bridge's entropy error in nats."""
    params = list(sampler.generator.parameters())
    kinds = ["exact", "trained"] + (["anchor_grad"] if sampler.anchored else [])
    sums = {k: [torch.zeros_like(p) for p in params] for k in kinds}
    for r in range(draws):
        state = torch.get_rng_state()  # the same noise for every kind of this draw
        for kind in kinds:
            torch.set_rng_state(state)
            x, anchor = sampler.rsample_and_anchor(1, context)
            if kind == "exact":
                log_density = sampler.generator.log_prob(x, context)
            elif kind == "trained":
                log_density = sampler.bridge_log_prob(x, context, anchor)
            else:  # log ν₀(x − G(0; s)) with G(0; s) keeping its gradient
                log_density = sampler.bridge.flow.log_prob(x - sampler.anchor(context).unsqueeze(1), context)
            loss = tau * (log_density - log_u(x, context)).mean()
            for acc, g in zip(sums[kind], torch.autograd.grad(loss, params)):
                acc.add_(g, alpha=1.0 / draws)
    flat = {k: torch.cat([g.flatten() for g in v]) for k, v in sums.items()}
    ref = flat.pop("exact")
    out = {"grad_norm": ref.norm().item()}
    for kind, g in flat.items():
        out[f"cos_{kind}"] = torch.nn.functional.cosine_similarity(g, ref, dim=0).item()
        out[f"err_{kind}"] = ((g - ref).norm() / ref.norm().clamp_min(1e-12)).item()
    with torch.no_grad():
        x, anchor = sampler.rsample_and_anchor(16, context)
        exact = -sampler.generator.log_prob(x, context).mean().item()
        out["entropy"] = exact
        out["entropy_error"] = -sampler.bridge_log_prob(x, context, anchor).mean().item() - exact
    return out


def measure(model, states: int, draws: int) -> dict[str, float]:
    """:func:`agreement` at ``states`` replay states of a SoftQ model, leaving every random state as it found it."""
    from agents.critics import boltzmann_target

    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    try:
        policy = model.policy
        obs = model.replay_buffer.sample(states).observations
        tau = float(policy.temperature)
        out = agreement(policy.sampler, policy.context(obs).detach(), boltzmann_target(policy.q_min, obs, tau), tau, draws)
        return {"step": model.num_timesteps, "tau": tau, **out}
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)


def run_seed(seed: int, steps: int, every: int, states: int, draws: int, flags: list[str]) -> list[dict]:
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from swimmer import make_model

    model = make_model("softq-ugan-nocritic", gym.make("Swimmer-v4"), seed, 150_000, flags)
    rows: list[dict] = []

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            t = self.num_timesteps
            if t > self.model.learning_starts and t % every == 0:
                rows.append(measure(self.model, states, draws))
                r = rows[-1]
                print(f"seed {seed} step {t}: τ {r['tau']:.4f}, entropy error {r['entropy_error']:+.3f}, "
                      f"cos {r['cos_trained']:+.3f}" + (f" (anchor grad {r['cos_anchor_grad']:+.3f})"
                                                        if "cos_anchor_grad" in r else ""), flush=True)
            return True

    model.learn(steps, callback=Watch())
    return rows


def report(results: dict[int, list[dict]], command: str, flags: list[str]) -> str:
    anchored = any("cos_anchor_grad" in r for rows in results.values() for r in rows)
    head = "| seed | step | τ | exact entropy | bridge's entropy error | ‖∇ exact‖ | cos, as trained | rel. error |"
    head += " cos, anchor grad | rel. error |" if anchored else ""
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for seed, rows in results.items():
        for r in rows:
            line = (f"| {seed} | {r['step']} | {r['tau']:.4f} | {r['entropy']:+.3f} | {r['entropy_error']:+.3f} | "
                    f"{r['grad_norm']:.3g} | {r['cos_trained']:+.3f} | {r['err_trained']:.3f} |")
            if anchored:
                line += f" {r['cos_anchor_grad']:+.3f} | {r['err_anchor_grad']:.3f} |"
            lines.append(line)
    summary = []
    for seed, rows in results.items():
        if rows:
            cos = np.array([r["cos_trained"] for r in rows])
            summary.append(f"- seed {seed}: cosine as trained, median {np.median(cos):+.3f}, lowest {cos.min():+.3f} "
                           f"(step {rows[int(cos.argmin())]['step']}), over {len(rows)} checkpoints")
    return (f"# The U-GAN generator's gradient from log ν against the exact log g (Gaussian generator, Swimmer-v4)\n\n"
            f"{NOTES}\n\nCommand: `{command}`\n\ntrain_rl.py flags: `{' '.join(flags)}`; machine: "
            f"{torch.__version__}, {time.strftime('%Y-%m-%d')}\n\n" + "\n".join(summary) + "\n\n" + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=24_000, help="env steps of each run (Swimmer starts learning at 10k)")
    p.add_argument("--every", type=int, default=1000, help="env steps between measurements")
    p.add_argument("--states", type=int, default=256, help="replay states per measurement")
    p.add_argument("--draws", type=int, default=16, help="noise draws per measurement")
    p.add_argument("--flags", default=DEFAULT_FLAGS, help=f"train_rl.py flags of the runs (default: {DEFAULT_FLAGS})")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generator_gradient.md"))
    args = p.parse_args(argv)
    check_args(seeds={"--seeds": args.seeds},
               positive={"--steps": args.steps, "--every": args.every, "--states": args.states, "--draws": args.draws})
    flags = args.flags.split()
    from train_rl import build_parser, validate

    parsed = build_parser().parse_args(["--env", "Swimmer-v4", "--sampler", "ugan-nocritic", *flags])
    validate(parsed)
    if parsed.generator != "gaussian":
        fail("--flags must include --generator gaussian: the exact log g the estimate is measured against")
    torch.set_num_threads(1)
    results = {seed: run_seed(seed, args.steps, args.every, args.states, args.draws, flags) for seed in args.seeds}
    command = shlex.join(["python", "benchmarks/generator_gradient.py", *(argv if argv is not None else sys.argv[1:])])
    write_report(args.out, report(results, command, flags))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
