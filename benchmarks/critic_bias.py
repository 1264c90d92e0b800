"""How far a checkpoint's critic is from the returns its own policy earns: mean min-Q(s_t, a_t) against Monte-Carlo
discounted returns along one long rollout.

    python benchmarks/critic_bias.py benchmarks/results/swimmer_ugan/softq-ugan_1/model.zip \\
        benchmarks/results/swimmer_ugan/sac_1/model.zip
    python benchmarks/critic_bias.py runs/ugan_anchor/Swimmer-v4/ugan_12/checkpoints/ugan_{25000,50000}_steps.zip
    python benchmarks/critic_bias.py benchmarks/results/swimmer_ugan_shared/softq-ugan_2/model.zip --bellman 4096

Each checkpoint (a SoftQ of ``train_rl.py`` or an SB3 SAC/TD3, told apart by the policy class it saved) runs one
episode of ``--rollout-steps`` steps (the environment's time limit lifted to that), once with stochastic and once
with deterministic actions. For t < ``--horizon``, G_t = Σ_k γ^k r_{t+k} (γ the model's; the rollout's end cuts off at
most γ^(rollout − horizon) of the tail) and Q_t = min_i Q_i(s_t, a_t) of the online critics. For a soft critic
the two differ also by the entropy bonus, about τ·H/(1 − γ) (−20 at τ = 0.01, H = −2, γ = 0.999), which lowers
the soft Q: Q well above G means the critic overestimates. Rewards enter unscaled: give ``--reward-scale`` for a
model trained on scaled rewards (train_rl.py's Swimmer presets use 1).

``--bellman N`` adds, for each SoftQ checkpoint saved with its replay buffer, the soft Bellman target's terms on N of
its transitions: whether the critic sits at its own target (Q − target ≈ 0 however far Q is from the returns) and
which term of V(s') = E[Q(s', a') − τ log π(a')] carries it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softq_ugan.cli import fail  # noqa: E402  (the standard library only)


def discounted_returns(rewards, gamma: float) -> np.ndarray:
    """G_t = Σ_{k ≥ 0} γ^k r_{t+k} over the given rewards (nothing after the last)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    out, g = np.empty_like(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def load(path: Path):
    """The model saved in ``path`` (SoftQ, SAC or TD3, by the policy class in the zip) and its algorithm's name."""
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.save_util import load_from_zip_file

    from agents import SoftQ

    data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    module = getattr(data.get("policy_class"), "__module__", "")
    for name, package, cls in (("softq", "agents", SoftQ), ("sac", "stable_baselines3.sac", SAC),
                               ("td3", "stable_baselines3.td3", TD3)):
        if module.startswith(package):
            return name, cls.load(path, device="cpu")
    raise ValueError(f"{path}: a {module or 'unknown'} policy; expected a SoftQ, SAC or TD3 checkpoint")


def min_q(name: str, model, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    import torch

    o, a = torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(actions, dtype=torch.float32)
    with torch.no_grad():
        if name == "softq":
            return model.policy.q_min(o, a.unsqueeze(1)).squeeze(1).numpy()
        return torch.min(torch.cat(model.critic(o, a), dim=1), dim=1).values.numpy()


def temperature(name: str, model) -> float:
    """τ of a SoftQ (learned or fixed), α of a SAC, 0 for TD3."""
    if name == "softq":
        return model.log_temperature.exp().item() if model.log_temperature is not None else model.policy.temperature
    if name == "sac":
        return model.log_ent_coef.exp().item() if model.log_ent_coef is not None else model.ent_coef_tensor.item()
    return 0.0


def rollout(model, env_id: str, steps: int, deterministic: bool, seed: int) -> tuple[list, list, list]:
    """One episode of ``model``'s policy, the time limit lifted to ``steps``: its observations, actions, rewards."""
    import gymnasium as gym

    env = gym.make(env_id, max_episode_steps=steps)
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    for _ in range(steps):
        action = model.predict(obs, deterministic=deterministic)[0]
        observations.append(obs), actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    return observations, actions, rewards


def measure(name: str, model, env_id: str, rollout_steps: int, horizon: int, deterministic: bool, seed: int,
            reward_scale: float) -> dict[str, float]:
    observations, actions, rewards = rollout(model, env_id, rollout_steps, deterministic, seed)
    rewards = [reward_scale * r for r in rewards]
    n = min(horizon, len(rewards))
    g = discounted_returns(rewards, model.gamma)[:n]
    q = min_q(name, model, np.asarray(observations[:n]), np.asarray(actions[:n]))
    return dict(reward=float(np.mean(rewards[:n])), mc=float(g.mean()), q=float(q.mean()))


def find_buffer(path: Path) -> Path | None:
    """The replay buffer saved with a checkpoint: train_rl.py's names, or benchmarks/swimmer.py's replay_buffer.pkl."""
    from train_rl import replay_buffer_candidates

    return next((c for c in [*replay_buffer_candidates(path), path.with_name("replay_buffer.pkl")] if c.is_file()), None)


def bellman_terms(model, buffer: Path, n: int, seed: int) -> dict[str, float]:
    """The soft Bellman target's terms on ``n`` transitions of a SoftQ's own replay buffer: r, min Q(s, a), the target
    r_scale·r + γ(1 − d)V(s') (SPEC §5, the agent's own soft value), and, with one action a' ~ π(·|s') of the sampler,
    min Q_target(s', a') and −τ log π(a') (the U-GAN's log π is the estimate log ν + D, VA §3.2; D's 1st and 99th
    percentiles given), and the spread of the online critics at (s, a): their population std, which is what the min of
    two (std) or ``critic_pessimism`` c (c·std) takes off their mean."""
    import torch

    from agents.critics import critic_q_min
    from softq_ugan.soft_value import tanh_log_proposal
    from softq_ugan.ugan import UGANSampler

    model.load_replay_buffer(buffer)
    np.random.seed(seed), torch.manual_seed(seed)
    data = model.replay_buffer.sample(n)
    p, tau = model.policy, model.policy.temperature
    with torch.no_grad():
        qs = torch.cat(p.critic(data.observations, data.actions), dim=1)  # (N, n_critics): one pass for both
        q_sa = critic_q_min(qs, p.critic_pessimism)
        spread = qs.std(dim=1, correction=0)
        v_next, _ = model.soft_value(data.next_observations)
        target = model.reward_scale * data.rewards.squeeze(1) + (1 - data.dones.squeeze(1)) * model.gamma * v_next
        out = dict(reward=data.rewards.mean().item(), q=q_sa.mean().item(), target=target.mean().item(),
                   q_next=float("nan"), entropy_term=float("nan"), d_lo=float("nan"), d_hi=float("nan"),
                   critic_std=spread.mean().item())
        if p.generator_density:
            context = p.context(data.next_observations)
            y, log_rho = p.sample_and_log_prob(1, context)
            y = y.clamp(-10.0, 10.0)
            out["q_next"] = p.q_min(data.next_observations, torch.tanh(y), target=True).mean().item()
            out["entropy_term"] = (-tau * tanh_log_proposal(log_rho, y)).mean().item()
            if isinstance(p.sampler, UGANSampler):
                d = p.sampler.log_ratio(y, context).flatten().numpy()
                out["d_lo"], out["d_hi"] = np.percentile(d, 1), np.percentile(d, 99)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", type=Path, nargs="+", help="SoftQ / SAC / TD3 checkpoint .zip files")
    p.add_argument("--env", default="Swimmer-v4", help="gymnasium id the checkpoints were trained on (default Swimmer-v4)")
    p.add_argument("--rollout-steps", type=int, default=5000, help="steps of the one rollout per mode (default 5000)")
    p.add_argument("--horizon", type=int, default=1000, help="average Q and G over t < horizon (default 1000)")
    p.add_argument("--reward-scale", type=float, default=1.0, help="the reward scale the model trained with (default 1)")
    p.add_argument("--seed", type=int, default=7, help="the rollouts' reset seed (default 7)")
    p.add_argument("--bellman", type=int, default=0, metavar="N",
                   help="also tabulate the soft Bellman target's terms on N transitions of each SoftQ checkpoint's "
                        "saved replay buffer (default 0: off)")
    args = p.parse_args(argv)
    if args.horizon < 1 or args.rollout_steps < args.horizon:
        fail("--horizon must be >= 1 and --rollout-steps >= --horizon")
    if args.bellman < 0:
        fail("--bellman must be >= 0")
    import gymnasium as gym
    import torch

    torch.set_num_threads(1)
    if args.env not in gym.registry:
        fail(f"unknown environment '{args.env}'")
    missing = [str(path) for path in args.checkpoints if not path.is_file()]
    if missing:
        fail(f"no such checkpoint: {', '.join(missing)}")
    rows, bellman_rows = [], []
    for path in args.checkpoints:
        try:
            name, model = load(path)
        except ValueError as e:
            fail(str(e))
        if args.bellman and name == "softq":
            buffer = find_buffer(path)
            if buffer is None:
                print(f"{path}: no replay buffer saved beside it; no Bellman terms", file=sys.stderr)
            else:
                b = bellman_terms(model, buffer, args.bellman, args.seed)
                cell = lambda v, spec: format(v, spec) if np.isfinite(v) else "–"  # noqa: E731
                bellman_rows.append(f"| {path} | {b['reward']:.3f} | {b['q']:.2f} | {b['target']:.2f} | "
                                    f"{b['q'] - b['target']:+.2f} | {cell(b['q_next'], '.2f')} | "
                                    f"{cell(b['entropy_term'], '+.3f')} | {cell(b['d_lo'], '+.2f')} / "
                                    f"{cell(b['d_hi'], '+.2f')} | {b['critic_std']:.3f} |")
        tail = model.gamma ** (args.rollout_steps - args.horizon)
        for deterministic in (False, True):
            r = measure(name, model, args.env, args.rollout_steps, args.horizon, deterministic, args.seed, args.reward_scale)
            rows.append(f"| {path} | {name} | {model.num_timesteps} | {temperature(name, model):.4f} | "
                        f"{'deterministic' if deterministic else 'stochastic'} | {r['reward']:.3f} | {r['mc']:.1f} | "
                        f"{r['q']:.1f} | {r['q'] - r['mc']:+.1f} |")
        print(f"{path}: γ = {model.gamma}, the rollout's cut-off drops at most γ^{args.rollout_steps - args.horizon} = "
              f"{tail:.3f} of each G_t's tail", file=sys.stderr)
    print(f"{args.env}, one {args.rollout_steps}-step rollout per policy (reset seed {args.seed}), means over t < "
          f"{args.horizon}\n")
    print("| checkpoint | algo | steps | τ | policy | reward / step | G (MC return) | min Q(s, a) | Q − G |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if bellman_rows:
        print(f"\nSoft Bellman target on {args.bellman} transitions of each SoftQ's replay buffer (means; a' ~ π(·|s'), "
              f"one per s'; D: the U-GAN's log-density-ratio estimate)\n")
        print("| checkpoint | r | min Q(s, a) | r + γ V(s') | Q − target | min Q_targ(s', a') | −τ log π(a') | D 1% / 99% "
              "| std over critics (s, a) |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(bellman_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
