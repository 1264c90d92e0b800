"""How wide a SoftQ or SAC checkpoint's policy is, and how far a U-GAN's MAF bridge is from its generator, at states
of its own replay buffer.

    python benchmarks/policy_spread.py runs/recipe_ugan_k4/Swimmer-v4/ugan_10 --steps 50000 100000 150000
    python benchmarks/policy_spread.py benchmarks/results/swimmer_ugan/softq-ugan_0/model.zip

For each saved step (``checkpoints/<sampler>_<step>_steps.zip`` and its replay buffer, as ``train_rl.py`` writes
them): the per-state standard deviation of actions drawn from the generator and from the bridge, the target
critic's min Q̄ at each and at the buffer's own actions, and the mean reward of the sampled transitions. The bridge
is the soft value's proposal and the temperature's entropy gauge with ``--proposal bridge``; this says how well it
stands in for the policy.

A second table checks the U-GAN's density estimate log ρ̂ = log ν + D (VA §3.2), which the learned temperature and
the soft value read with ``--proposal generator``: at a few states, the gauge −E[log ν + D] at the generator's
samples against two estimates that need samples only, the Kozachenko-Leonenko kNN entropy and the entropy of the
Gaussian with the samples' covariance (an upper bound). All in y-space (before the tanh). A checkpoint .zip (such
as a benchmark's ``model.zip``) is read with its replay buffer beside it.

A first table, for any SoftQ sampler and for SB3's SAC, measures the policy's width at its own replay states: the
per-state standard deviation of its actions and the kNN entropy of its actions, in action space (what the learned
temperature aims at −dim(A)) and in y-space; for SAC it adds the exact y-space entropy of its Gaussian, a check of
the kNN estimate. So a U-GAN run's real entropy can be read beside SAC's on the same seed:

    python benchmarks/policy_spread.py runs/sac_s29/Swimmer-v4/sac_20 --steps 25000 50000 100000

``--critic-check STEPS`` adds, for a U-GAN, whether its critic D estimates log ρ/ν at all: per replay state, the
KL(ρ‖ν) of the generator's samples from the bridge's (−E_ρ log ν minus the kNN entropy) beside E_ρ[D] of the trained
critic, of a copy refit STEPS steps with the generator and bridge frozen, and of a fresh classifier of that one
state's samples (which reads the KL within about 0.1 at 2000 steps):

    python benchmarks/policy_spread.py runs/ugan_preset_s32/Swimmer-v4/ugan_25 --steps 50000 --critic-check 2000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softq_ugan.cli import checkpoint_data, fail  # noqa: E402  (the standard library only)


POLICY_MODULES = {"agents.policies": "softq", "stable_baselines3.sac.policies": "sac"}


def algorithm(ckpt: Path) -> str:
    """softq or sac, from the policy class an SB3 checkpoint .zip records; anything else is refused."""
    try:
        module = checkpoint_data(ckpt)["policy_class"].get("__module__", "?")
    except (KeyError, AttributeError) as e:
        raise ValueError(f"{ckpt}: not an SB3 checkpoint ({e})") from None
    if module not in POLICY_MODULES:
        raise ValueError(f"{ckpt}: a {module} policy; this reads SoftQ and SAC checkpoints only")
    return POLICY_MODULES[module]


def load(run: Path, step: int | None):
    """The SoftQ or SAC checkpoint of ``run`` at ``step`` (``run`` a train_rl.py run folder), or ``run`` itself (a
    .zip), with its replay buffer loaded."""
    from stable_baselines3 import SAC

    from agents import SoftQ
    from train_rl import replay_buffer_candidates

    if run.suffix == ".zip":
        if not run.is_file():
            raise FileNotFoundError(f"{run}: no such checkpoint")
        ckpt = run
        buffers = [*replay_buffer_candidates(run), run.with_name("replay_buffer.pkl")]  # + benchmarks/swimmer.py's
    else:
        matches = sorted((run / "checkpoints").glob(f"*_{step}_steps.zip"))
        if not matches:
            raise FileNotFoundError(f"{run / 'checkpoints'}: no checkpoint for step {step}")
        ckpt = matches[0]
        buffers = replay_buffer_candidates(ckpt)
    model = (SAC if algorithm(ckpt) == "sac" else SoftQ).load(ckpt, device="cpu")
    buffer = next((b for b in buffers if b.is_file()), None)
    if buffer is None:
        raise FileNotFoundError(f"{run}: no replay buffer beside it ({', '.join(b.name for b in buffers)})")
    model.load_replay_buffer(buffer)
    return model


def has_bridge(model) -> bool:
    """Whether ``model`` is a SoftQ whose sampler has a MAF bridge apart from itself (the U-GAN's)."""
    flow = getattr(model.policy, "proposal_flow", None)
    return flow is not None and flow is not model.policy.sampler


def seed_all(seed: int) -> None:
    """Seed torch (the policies' samples) and numpy (SB3's replay-buffer sampling) alike."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


def width(model, states: int, samples: int, seed: int) -> dict[str, float]:
    """Per-state action spread and kNN entropies (action space and y-space) of the policy's own samples, mean over
    ``states`` replay states; SAC's exact y-space entropy (its Gaussian's) beside them, NaN for SoftQ."""
    import torch

    from softq_ugan.metrics import knn_entropy

    seed_all(seed)
    obs = model.replay_buffer.sample(states).observations
    exact = math.nan
    with torch.no_grad():
        if hasattr(model, "actor") and hasattr(model.actor, "get_action_dist_params"):  # SAC: y ~ N(μ(s), σ(s)²)
            mean, log_std, _ = model.actor.get_action_dist_params(obs)
            y = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * torch.randn(mean.shape[0], samples, mean.shape[1])
            exact = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1).mean().item()
        else:
            p = model.policy
            y = p.sampler.rsample(samples, p.context(obs))
        a = torch.tanh(y.clamp(-10, 10))
    return dict(step=model.num_timesteps, std=a.std(1).mean().item(), knn_action=knn_entropy(a).mean().item(),
                knn_y=knn_entropy(y).mean().item(), exact_y=exact)


def spread(model, states: int, samples: int, seed: int) -> dict[str, float]:
    import torch

    p = model.policy
    seed_all(seed)
    data = model.replay_buffer.sample(states)
    obs = data.observations
    with torch.no_grad():
        c = p.context(obs)
        a_g = torch.tanh(p.sampler.rsample(samples, c).clamp(-10, 10))
        a_b = torch.tanh(p.proposal_flow.rsample(samples, c).clamp(-10, 10))
        q = {k: p.q_min(obs, a, target=True).mean().item()
             for k, a in (("generator", a_g), ("bridge", a_b), ("buffer", data.actions.unsqueeze(1)))}
    return dict(step=model.num_timesteps, std_generator=a_g.std(1).mean().item(), std_bridge=a_b.std(1).mean().item(),
                q_generator=q["generator"], q_bridge=q["bridge"], q_buffer=q["buffer"],
                reward_per_1k=1000 * data.rewards.mean().item())


def entropy_check(model, states: int, samples: int, seed: int) -> dict[str, float]:
    """The U-GAN's entropy gauge −E[log ν + D] at its generator's samples against sample-only entropies (y-space),
    each the mean over ``states`` replay states of ``samples`` samples each."""
    import torch

    from softq_ugan.metrics import gaussian_entropy_bound, knn_entropy

    p = model.policy
    seed_all(seed)
    obs = model.replay_buffer.sample(states).observations
    with torch.no_grad():
        c = p.context(obs)
        y = p.sampler.rsample(samples, c)
        log_nu, d = p.sampler.bridge.log_prob(y, c), p.sampler.log_ratio(y, c)
        y_nu = p.sampler.bridge.rsample(samples, c)  # ν's own entropy two ways: a check of the kNN estimate
        return dict(step=model.num_timesteps, gauge=-(log_nu + d).mean().item(), mean_d=d.mean().item(),
                    knn=knn_entropy(y).mean().item(), gaussian=gaussian_entropy_bound(y).mean().item(),
                    bridge_exact=-p.sampler.bridge.log_prob(y_nu, c).mean().item(),
                    bridge_knn=knn_entropy(y_nu).mean().item())


def critic_check(model, states: int, steps: int, seed: int, samples: int = 4000) -> list[dict[str, float]]:
    """Does the U-GAN's critic D estimate log ρ/ν? Per replay state (y-space): KL(ρ‖ν) from samples alone
    (−E_ρ log ν − the kNN entropy of ρ), the trained critic's E_ρ[D] and −E_ν[D], the same after ``steps`` more
    steps of a copy of it with the generator and bridge frozen (as training steps it: a replay minibatch, one sample
    of each per state), and a fresh classifier of this one state's samples trained ``steps`` steps
    (:func:`softq_ugan.metrics.classifier_kl`), whose E_ρ[D] and −E_ν[D] tend to KL(ρ‖ν) and KL(ν‖ρ)."""
    import copy

    import torch

    from softq_ugan.gan.losses import logistic_critic_loss
    from softq_ugan.metrics import classifier_kl, knn_entropy

    p = model.policy
    s = p.sampler
    seed_all(seed)
    context = p.context(model.replay_buffer.sample(states).observations)

    def critic_means(critic) -> list[tuple[float, float]]:
        seed_all(seed + 1)
        with torch.no_grad():
            y, anchor = s.rsample_and_anchor(samples, context)
            y_nu = s.bridge_rsample(samples, context, anchor)
            return list(zip(critic(y, context).mean(-1).tolist(), (-critic(y_nu, context).mean(-1)).tolist()))

    trained = critic_means(s.critic)
    refit = copy.deepcopy(s.critic)
    optimizer = torch.optim.Adam(refit.parameters(), 1e-3)
    seed_all(seed + 2)
    for _ in range(steps):
        with torch.no_grad():
            c = p.context(model.replay_buffer.sample(model.batch_size).observations)
            x_g, anchor = s.rsample_and_anchor(1, c)
            x_nu = s.bridge_rsample(1, c, anchor)
        loss = logistic_critic_loss(refit(x_g, c), refit(x_nu, c))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    refitted = critic_means(refit)
    rows = []
    seed_all(seed + 3)
    for i in range(states):
        c = context[i:i + 1]
        with torch.no_grad():
            y, anchor = s.rsample_and_anchor(samples, c)  # anchor: G(0; c) for an anchored bridge, else None
            kl_samples = (-s.bridge_log_prob(y, c, anchor).mean() - knn_entropy(y[0])).item()

        def draw_rho(n: int, c=c) -> torch.Tensor:
            return s.rsample(n, c)[0]

        def draw_nu(n: int, c=c, anchor=anchor) -> torch.Tensor:
            return s.bridge_rsample(n, c, anchor)[0]

        fit = classifier_kl(draw_rho, draw_nu, steps=steps, seed=seed + i)
        rows.append(dict(step=model.num_timesteps, state=i, kl_samples=kl_samples, trained=trained[i][0],
                         trained_qp=trained[i][1], refit=refitted[i][0], refit_qp=refitted[i][1],
                         fit=fit["kl_pq"], fit_qp=fit["kl_qp"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a train_rl.py run folder with checkpoints/, or a checkpoint .zip (SoftQ or SAC)")
    p.add_argument("--steps", type=int, nargs="+", help="checkpoint steps to read (a run folder)")
    p.add_argument("--states", type=int, default=512, help="replay states (default 512)")
    p.add_argument("--samples", type=int, default=64, help="actions per state from each (default 64)")
    p.add_argument("--entropy-states", type=int, default=16, help="replay states of the entropy check and the width table (default 16)")
    p.add_argument("--entropy-samples", type=int, default=2000,
                   help="samples per state of the entropy check and the width table (default 2000; the kNN estimate needs many)")
    p.add_argument("--critic-check", type=int, default=0, metavar="STEPS",
                   help="U-GAN: also check the critic against log ρ/ν per state, with STEPS steps of a refit copy of "
                        "it and of a one-state classifier (default 0: off; 2000 reads the KL within about 0.1)")
    p.add_argument("--critic-states", type=int, default=4, help="replay states of the critic check (default 4)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.run.suffix != ".zip" and not args.steps:
        fail(f"{args.run}: a run folder needs --steps (or give a checkpoint .zip)")
    if min(args.states, args.samples, args.entropy_states, args.critic_states) < 1 or args.entropy_samples < 10:
        fail("--states, --samples, --entropy-states and --critic-states must be >= 1, --entropy-samples >= 10")
    if args.critic_check < 0:
        fail(f"--critic-check must be >= 0 steps, got {args.critic_check}")
    import torch

    torch.set_num_threads(1)
    try:
        models = [load(args.run, step) for step in (args.steps or [None])]
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    print(f"Policy width at {args.entropy_states} replay states, {args.entropy_samples} actions each (kNN entropies in "
          "nats; the learned temperature aims the action-space entropy at −dim(A))\n")
    print("| step | action std per state | entropy, action space (kNN) | entropy, y-space (kNN) | y-space, exact |")
    print("|---|---|---|---|---|")
    for model in models:
        r = width(model, args.entropy_states, args.entropy_samples, args.seed)
        exact = "–" if math.isnan(r["exact_y"]) else f"{r['exact_y']:.2f}"
        print(f"| {r['step']} | {r['std']:.3f} | {r['knn_action']:.2f} | {r['knn_y']:.2f} | {exact} |")
    models = [m for m in models if has_bridge(m)]
    if not models:
        print("\nNo separate MAF bridge (not a U-GAN sampler): no bridge tables.")
        return 0
    print(f"\n{args.run}: {args.states} replay states, {args.samples} actions per state\n")
    print("| step | action std, generator | action std, bridge | Q̄ at generator | Q̄ at bridge | Q̄ at buffer | reward × 1000 |")
    print("|---|---|---|---|---|---|---|")
    for model in models:
        r = spread(model, args.states, args.samples, args.seed)
        print(f"| {r['step']} | {r['std_generator']:.3f} | {r['std_bridge']:.3f} | {r['q_generator']:.1f} | "
              f"{r['q_bridge']:.1f} | {r['q_buffer']:.1f} | {r['reward_per_1k']:.1f} |")
    print(f"\nEntropy in y-space (nats), mean over {args.entropy_states} replay states of {args.entropy_samples} samples "
          "each: the U-GAN's gauge −E[log ν + D] at the generator's samples, against sample-only estimates\n")
    print("| step | generator: gauge −E[log ν + D] | mean D | kNN entropy | Gaussian bound | gauge − kNN | "
          "bridge: −E log ν | bridge: kNN |")
    print("|---|---|---|---|---|---|---|---|")
    for model in models:
        r = entropy_check(model, args.entropy_states, args.entropy_samples, args.seed)
        print(f"| {r['step']} | {r['gauge']:.2f} | {r['mean_d']:+.3f} | {r['knn']:.2f} | {r['gaussian']:.2f} | "
              f"{r['gauge'] - r['knn']:+.2f} | {r['bridge_exact']:.2f} | {r['bridge_knn']:.2f} |")
    models = [m for m in models if m.policy.sampler.critic is not None] if args.critic_check else []
    if models:
        print(f"\nThe critic D against log ρ/ν (nats, y-space) at {args.critic_states} replay states: KL(ρ‖ν) from "
              "samples (−E_ρ log ν − kNN entropy of ρ); E_ρ[D] and −E_ν[D] (→ KL(ρ‖ν), KL(ν‖ρ) at the optimum) of the "
              f"trained critic, of a copy of it refit {args.critic_check} steps with G and ν frozen (replay "
              f"minibatches, one sample per state, as in training), and of a fresh one-state classifier trained "
              f"{args.critic_check} steps\n")
        print("| step | state | KL(ρ‖ν), samples | trained: E_ρ D | trained: −E_ν D | refit: E_ρ D | refit: −E_ν D | "
              "one-state: E_ρ D | one-state: −E_ν D |")
        print("|---|---|---|---|---|---|---|---|---|")
        for model in models:
            for r in critic_check(model, args.critic_states, args.critic_check, args.seed):
                print(f"| {r['step']} | {r['state']} | {r['kl_samples']:+.2f} | {r['trained']:+.2f} | "
                      f"{r['trained_qp']:+.2f} | {r['refit']:+.2f} | {r['refit_qp']:+.2f} | {r['fit']:+.2f} | "
                      f"{r['fit_qp']:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
