"""Ad-hoc: how saturated are the final Gaussian policies? |μ| and σ in y-space, at the states of the last 10k steps."""
import sys, os
os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
import numpy as np, torch
torch.set_num_threads(1)
from agents import SoftQ
from stable_baselines3.common.save_util import load_from_pkl
for path in sys.argv[1:]:
    model = SoftQ.load(path, device="cpu")
    buf = load_from_pkl(path.replace("model.zip", "replay_buffer.pkl"))
    n = buf.pos if not buf.full else buf.buffer_size
    obs = torch.as_tensor(buf.observations[n - 10000:n, 0], dtype=torch.float32)
    acts = buf.actions[n - 10000:n, 0]
    with torch.no_grad():
        mean, log_std = model.policy.sampler.mean_and_log_std(model.policy.context(obs))
        y = mean + log_std.exp() * torch.randn_like(mean)
        ld = torch.log(1 - torch.tanh(y) ** 2)  # exact per-dim log-det, what SB3 caps at log(1e-6) = -13.8
    print(path.split("/")[-2], f"tau {model.policy.temperature:.4f} |mu| median {mean.abs().median():.2f} 90% {mean.abs().quantile(0.9):.2f} "
          f"sigma median {log_std.exp().median():.3f} | buffer |a|>0.99: {(np.abs(acts) > 0.99).mean():.2f} "
          f"| log-det per dim median {ld.median():.2f}, 10% {ld.quantile(0.1):.2f}, share < -13.8: {(ld < -13.8).float().mean():.3f}")
