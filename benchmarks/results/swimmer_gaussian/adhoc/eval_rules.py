"""Ad-hoc: the final checkpoints of swimmer_gaussian under three action rules, 10 episodes each."""
import sys, os
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
import numpy as np, torch
torch.set_num_threads(1)
from agents import SoftQ
from envs import make_env

def episode_returns(model, rule, seed, n=10):
    env = make_env("Swimmer-v4", seed=seed)
    out = []
    for _ in range(n):
        obs, _ = env.reset()
        done, total = False, 0.0
        while not done:
            if rule == "best32":
                a = model.predict(obs, deterministic=True)[0]
            elif rule == "stochastic":
                a = model.predict(obs, deterministic=False)[0]
            else:  # SAC's: tanh of the mean
                with torch.no_grad():
                    o = torch.as_tensor(obs[None], dtype=torch.float32)
                    mean, _ = model.policy.sampler.mean_and_log_std(model.policy.context(o))
                    a = torch.tanh(mean)[0].numpy()
            obs, r, term, trunc, _ = env.step(a)
            total += r
            done = term or trunc
        out.append(total)
    return out

for path in sys.argv[1:]:
    model = SoftQ.load(path, device="cpu")
    seed = int(path.rstrip("/").split("/")[-2].rsplit("_", 1)[1])
    row = []
    for rule in ("best32", "mean", "stochastic"):
        r = episode_returns(model, rule, seed + 10_000)
        row.append(f"{rule} {np.mean(r):.1f} [{min(r):.1f}, {max(r):.1f}]")
    print(path, "|", " | ".join(row), flush=True)
