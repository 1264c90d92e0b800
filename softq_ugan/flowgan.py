"""Flow-GAN (FG): a NICE / RealNVP generator trained by MLE, adversarially (WGAN-GP) or by the hybrid
objective ``V(G, D) − λ E_data[log p_θ(x)]`` (FG eq. 7), with exact test log-likelihoods.

Command line (progress bar, TensorBoard logs, sample grids, singular-value CDF, metrics.json):

    python -m softq_ugan.flowgan --data digits --flow nice --objective hybrid --lam 0.1 --steps 3000 --out DIR

Also here: the Gaussian-mixture (Parzen) baseline with a bandwidth line search on validation NLL
(FG §3.4) and the generator-Jacobian diagnostics of FG §5.1.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from softq_ugan.flows.couplings import FLOWS, CouplingFlow, make_flow
from softq_ugan.gan.losses import gradient_penalty, wgan_critic_loss, wgan_generator_loss
from softq_ugan.nets import MLP, check_finite, optimizer_step, require_positive
from softq_ugan.cli import add_run_args, fail, start_run, training_images

__all__ = [
    "OBJECTIVES",
    "FlowGANConfig",
    "FlowGAN",
    "flowgan_generator_loss",
    "mean_nll",
    "generator_jacobian_stats",
    "parzen_log_prob",
    "parzen_line_search",
    "parzen_sample",
    "main",
]

OBJECTIVES = ("mle", "adv", "hybrid")


@dataclass
class FlowGANConfig:
    """Hyperparameters of a Flow-GAN."""

    features: int
    """Data dimension d (flattened image)."""
    flow: str = "nice"
    """Generator: ``nice`` (logistic prior) or ``realnvp`` (Gaussian prior)."""
    objective: str = "mle"
    """``mle`` (FG eq. 1), ``adv`` (WGAN-GP, FG eq. 5) or ``hybrid`` (FG eq. 7)."""
    lam: float = 0.1
    """λ of the hybrid objective (weight of the data log-likelihood)."""
    flow_layers: int = 4
    """Coupling layers."""
    flow_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of each coupling network."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the WGAN critic (an MLP on flattened images)."""
    critic_steps: int = 5
    """Critic updates per generator update (WGAN-GP uses 5)."""
    gp_weight: float = 10.0
    """Gradient-penalty weight (Gulrajani et al. 2017)."""
    batch_size: int = 64
    """Images per batch, real and generated."""
    lr: float = 1e-4
    """Adam learning rate of the flow."""
    lr_critic: float = 1e-4
    """Adam learning rate of the critic."""
    betas: tuple[float, float] = (0.5, 0.9)
    """Adam betas (WGAN-GP's)."""
    max_grad_norm: float | None = 100.0
    """Gradient clipping of every update (None: off)."""
    data_init: bool = True
    """Initialize the flow's diagonal layer from the first real batch (per-dimension standardization)."""

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow {self.flow!r}; choose one of: {', '.join(FLOWS)}")
        require_positive(self, "features", "flow_layers", "critic_steps", "batch_size")
        if self.lam < 0:
            raise ValueError(f"FlowGANConfig: lam must be >= 0, got {self.lam}")


def flowgan_generator_loss(objective: str, fake_scores: Tensor | None, log_prob_real: Tensor | None, lam: float) -> Tensor:
    """Generator loss of each objective; ``fake_scores`` = critic on G(z), ``log_prob_real`` = log p_θ(data)."""
    if objective == "mle":
        return -log_prob_real.mean()  # max E_data log p_θ(x) (FG eq. 1)
    adv = wgan_generator_loss(fake_scores)  # min_θ −E_z D(G(z)) (FG eq. 5)
    if objective == "adv":
        return adv
    if objective == "hybrid":
        return adv - lam * log_prob_real.mean()  # V(G, D) − λ E_data log p_θ(x) (FG eq. 7)
    raise ValueError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")


class FlowGAN:
    """Holds the flow, the critic (ADV / hybrid) and their optimizers; :meth:`update` is one generator step."""

    def __init__(self, config: FlowGANConfig) -> None:
        c = self.config = config
        self.flow: CouplingFlow = make_flow(c.flow, c.features, num_layers=c.flow_layers, hidden=tuple(c.flow_hidden))
        self.opt = torch.optim.Adam(self.flow.parameters(), lr=c.lr, betas=c.betas, foreach=True)
        self.critic: nn.Module | None = None
        if c.objective != "mle":
            self.critic = MLP(c.features, 1, tuple(c.critic_hidden), nn.LeakyReLU)
            self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=c.lr_critic, betas=c.betas, foreach=True)
        self.num_updates = 0

    def _score(self, x: Tensor) -> Tensor:
        return self.critic(x).squeeze(-1)

    def update(self, next_batch: Callable[[], Tensor]) -> dict[str, float]:
        """One generator update (after ``critic_steps`` critic updates for ADV / hybrid).

        Args:
            next_batch: returns a fresh batch of dequantized real images ``(batch_size, d)``.
        """
        c, stats = self.config, {}
        if self.num_updates == 0 and c.data_init:
            self.flow.initialize_from_data(torch.cat([next_batch() for _ in range(8)]))
        if self.critic is not None:
            for _ in range(c.critic_steps):
                real = next_batch()
                with torch.no_grad():
                    fake = self.flow.sample(real.shape[0])
                w_loss = wgan_critic_loss(self._score(real), self._score(fake))
                gp = gradient_penalty(self._score, real, fake, weight=c.gp_weight)
                optimizer_step(self.opt_critic, w_loss + gp, self.critic.parameters(), c.max_grad_norm)
            stats["critic/wasserstein"] = check_finite("critic loss", -w_loss.item(), self.num_updates)
            stats["critic/gp"] = gp.item()
        real = next_batch()
        log_prob = self.flow.log_prob(real) if c.objective != "adv" else None
        fake_scores = self._score(self.flow.rsample(real.shape[0])) if self.critic is not None else None
        loss = flowgan_generator_loss(c.objective, fake_scores, log_prob, c.lam)
        optimizer_step(self.opt, loss, self.flow.parameters(), c.max_grad_norm)
        stats["generator/loss"] = check_finite("generator loss", loss.item(), self.num_updates)
        if log_prob is not None:
            stats["generator/train_nll_batch"] = -log_prob.mean().item()
        self.num_updates += 1
        return stats


# -- evaluation ----------------------------------------------------------------------------------
@torch.no_grad()
def mean_nll(log_prob: Callable[[Tensor], Tensor], x: Tensor, chunk: int = 500) -> float:
    """Mean −log p(x) in nats over the rows of ``x`` (chunked)."""
    return float(-torch.cat([log_prob(x[i : i + chunk]) for i in range(0, len(x), chunk)]).double().mean())


def generator_jacobian_stats(flow: CouplingFlow, num_points: int = 64, num_logdet: int = 1000, seed: int = 0) -> dict:
    """FG §5.1: singular values of ∂G/∂z at ``num_points`` prior draws and the mean log|det ∂G/∂z|.

    Returns ``singular_values`` (flat numpy array, for the CDF of FG Fig. 4) and ``mean_logdet``.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = flow.prior_sample(num_points).double()
        zl = flow.prior_sample(num_logdet)
    f64 = copy.deepcopy(flow).double()
    jac = torch.func.vmap(torch.func.jacrev(lambda v: f64(v[None])[0]))(z)
    sv = torch.linalg.svdvals(jac)
    with torch.no_grad():
        logdet = flow.from_latent(zl)[1]
    return {"singular_values": sv.detach().flatten().numpy(), "mean_logdet": float(logdet.double().mean())}


def parzen_log_prob(x: Tensor, centers: Tensor, sigma: float, chunk: int = 256) -> Tensor:
    """log of the equal-weight isotropic Gaussian mixture centred on ``centers`` (FG §3.4)."""
    x, centers = x.double(), centers.double()
    d = x.shape[1]
    cc = (centers**2).sum(1)
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        d2 = ((xb**2).sum(1)[:, None] + cc[None] - 2 * xb @ centers.T).clamp_min(0)
        out.append(torch.logsumexp(-0.5 * d2 / sigma**2, 1))
    return torch.cat(out) - math.log(len(centers)) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def parzen_line_search(train: Tensor, val: Tensor, sigmas=None) -> tuple[float, list[tuple[float, float]]]:
    """Bandwidth σ ∈ (0, 1] with the lowest validation NLL (FG §3.4); returns ``(σ*, [(σ, val NLL)])``."""
    sigmas = np.geomspace(0.01, 1.0, 25) if sigmas is None else sigmas
    curve = [(float(s), mean_nll(lambda x, s=s: parzen_log_prob(x, train, float(s)), val)) for s in sigmas]
    best = min(curve, key=lambda t: t[1])[0]
    fine = np.linspace(best / 1.25, min(1.0, best * 1.25), 11)  # refine around the grid optimum
    curve += [(float(s), mean_nll(lambda x, s=s: parzen_log_prob(x, train, float(s)), val)) for s in fine]
    return min(curve, key=lambda t: t[1])[0], sorted(curve)


def parzen_sample(train: Tensor, sigma: float, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
    """Samples of the Parzen mixture: a random training point plus N(0, σ² I) noise."""
    idx = torch.randint(len(train), (num_samples,), generator=generator)
    return train[idx].double() + sigma * torch.randn(num_samples, train.shape[1], generator=generator, dtype=torch.float64)


# -- command line --------------------------------------------------------------------------------
def save_image_grid(x: Tensor, shape: tuple[int, int], path, nrow: int = 10, title: str | None = None) -> None:
    """Flat images ``(N, H*W)`` in [0, 1] as an ``nrow``-wide grid PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = torch.as_tensor(x).detach().double().clamp(0, 1).reshape(-1, *shape).numpy()
    n = len(x)
    rows = math.ceil(n / nrow)
    h, w = shape
    canvas = np.ones((rows * (h + 1) + 1, nrow * (w + 1) + 1))
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i]
    fig, ax = plt.subplots(figsize=(nrow * 0.6, rows * 0.6 + (0.3 if title else 0)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_singular_value_cdf(curves: dict, path, title: str = "Generator Jacobian singular values") -> None:
    """CDF of singular-value magnitudes on a log axis (FG Fig. 4); ``curves`` = {label: values}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, sv in curves.items():
        sv = np.sort(np.asarray(sv))
        ax.plot(sv, np.arange(1, len(sv) + 1) / len(sv), label=label, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("singular value")
    ax.set_ylabel("CDF")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    from softq_ugan.data.images import DATASETS

    p = argparse.ArgumentParser(prog="python -m softq_ugan.flowgan", description="Train a Flow-GAN (MLE / ADV / hybrid) on images.")
    p.add_argument("--data", default="digits", help=f"dataset: {', '.join(DATASETS)} (default digits)")
    p.add_argument("--flow", default="nice", help=f"generator: {', '.join(FLOWS)} (default nice)")
    p.add_argument("--objective", default="mle", help=f"{', '.join(OBJECTIVES)} (default mle)")
    p.add_argument("--lam", type=float, default=0.1, help="hybrid λ (default 0.1)")
    p.add_argument("--steps", type=int, default=3000, help="generator updates (default 3000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4, help="flow learning rate (default 1e-4)")
    p.add_argument("--lr-critic", type=float, default=1e-4, help="critic learning rate (default 1e-4)")
    p.add_argument("--critic-steps", type=int, default=5)
    p.add_argument("--layers", type=int, default=4, help="coupling layers (default 4)")
    p.add_argument("--hidden", type=int, default=256, help="coupling-network width (default 256)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers per coupling network (default 2)")
    p.add_argument("--eval-every", type=int, default=500, help="validation NLL and sample scores every N updates")
    p.add_argument("--eval-samples", type=int, default=1000, help="generated images per sample-quality evaluation")
    p.add_argument("--parzen", action="store_true", help="also fit the Parzen (GMM) baseline")
    add_run_args(p, "runs/flowgan")
    return p


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate and plot; returns the metrics written to ``metrics.json``."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from softq_ugan.data.images import bits_per_dim, dequantize
    from softq_ugan.image_metrics import ImageScorer

    start_run(args)
    data, train = training_images(args)
    val, test = data.dequantized("val", seed=1), data.dequantized("test", seed=2)
    scorer = ImageScorer(data)
    config = FlowGANConfig(
        features=data.dim, flow=args.flow, objective=args.objective, lam=args.lam, flow_layers=args.layers,
        flow_hidden=(args.hidden,) * args.depth, critic_steps=args.critic_steps, batch_size=args.batch_size,
        lr=args.lr, lr_critic=args.lr_critic,
    )
    gan = FlowGAN(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out / "tb"))
    writer.add_text("config", "|field|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in {**vars(args), **asdict(config)}.items()))
    g = torch.Generator().manual_seed(args.seed)

    def next_batch() -> Tensor:
        idx = torch.randint(len(train), (args.batch_size,), generator=g)
        return dequantize(train[idx], data.levels, generator=g).float()

    def evaluate(step: int) -> dict:
        gan.flow.eval()
        with torch.no_grad():
            x = gan.flow.sample(args.eval_samples).clamp(0, 1)
        row = {"step": step, "val_nll": mean_nll(gan.flow.log_prob, val), **scorer.score(x)}
        gan.flow.train()
        for k, v in row.items():
            if k != "step":
                writer.add_scalar(f"eval/{k}", v, step)
        return row

    history, evals, best_val, best_mode = {}, [], (math.inf, None), (-math.inf, None, None)
    interrupted, start = False, time.perf_counter()
    bar = tqdm(range(args.steps), desc=f"{args.objective} {args.flow} {args.data}", disable=args.quiet, mininterval=1.0)
    try:
        for t in bar:
            stats = gan.update(next_batch)
            if t % 25 == 0:
                for k, v in stats.items():
                    writer.add_scalar(k, v, t)
                    history.setdefault(k, []).append((t, v))
            if (t + 1) % args.eval_every == 0 or t + 1 == args.steps:
                row = evaluate(t + 1)
                evals.append(row)
                if row["val_nll"] < best_val[0]:
                    best_val = (row["val_nll"], copy.deepcopy(gan.flow.state_dict()))
                if row["mode"] > best_mode[0]:
                    best_mode = (row["mode"], row, copy.deepcopy(gan.flow.state_dict()))
                bar.set_postfix(val_nll=f"{row['val_nll']:.1f}", mode=f"{row['mode']:.2f}", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted at update {gan.num_updates}; writing results so far", file=sys.stderr)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if not evals:
        evals.append(evaluate(gan.num_updates))
        best_val = (evals[-1]["val_nll"], copy.deepcopy(gan.flow.state_dict()))
        best_mode = (evals[-1]["mode"], evals[-1], copy.deepcopy(gan.flow.state_dict()))

    final_state = copy.deepcopy(gan.flow.state_dict())
    gan.flow.load_state_dict(best_val[1])  # FG Table 1: test NLL of the best validated model
    test_nll = mean_nll(gan.flow.log_prob, test)
    jac = generator_jacobian_stats(gan.flow, num_points=64 if data.dim <= 100 else 16, seed=args.seed)
    gan.flow.load_state_dict(best_mode[2])
    with torch.no_grad():
        save_image_grid(gan.flow.sample(100), data.shape, out / "samples.png",
                        title=f"{args.objective} {args.flow}: MODE {best_mode[0]:.2f}")
    gan.flow.load_state_dict(final_state)
    plot_singular_value_cdf({args.objective: jac["singular_values"]}, out / "singular_values.png")
    np.save(out / "singular_values.npy", jac["singular_values"])
    metrics = {
        "data": args.data, "flow": args.flow, "objective": args.objective, "lam": args.lam,
        "test_nll_nats": test_nll, "test_bits_per_dim": bits_per_dim(test_nll, data.dim, data.levels),
        "best_val_nll": best_val[0], "best_mode": best_mode[0],
        "best_mode_row": best_mode[1], "final": evals[-1], "evals": evals,
        "mean_logdet_jacobian": jac["mean_logdet"],
        "classifier_test_accuracy": scorer.accuracy,
        "steps": gan.num_updates, "seconds": round(seconds, 2), "interrupted": interrupted,
        "config": {k: v for k, v in vars(args).items() if k != "quiet"},
    }
    if args.parzen:
        sigma, curve = parzen_line_search(train.double() / data.levels + 0.5 / data.levels, val.double())
        centers = train.double() / data.levels + 0.5 / data.levels
        x = parzen_sample(centers, sigma, args.eval_samples, generator=torch.Generator().manual_seed(args.seed)).clamp(0, 1)
        metrics["parzen"] = {"sigma": sigma, "test_nll_nats": mean_nll(lambda v: parzen_log_prob(v, centers, sigma), test),
                             "curve": curve, **scorer.score(x.float())}
    for k, v in (("test_nll", test_nll), ("best_mode", best_mode[0])):
        writer.add_scalar(f"final/{k}", v, gan.num_updates)
    writer.close()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> None:
    from softq_ugan.data.images import DATASETS, DatasetUnavailable

    args = build_parser().parse_args(argv)
    if args.data not in DATASETS:
        fail(f"unknown dataset '{args.data}'; choose one of: {', '.join(DATASETS)}")
    if args.flow not in FLOWS:
        fail(f"unknown flow '{args.flow}'; choose one of: {', '.join(FLOWS)}")
    if args.objective not in OBJECTIVES:
        fail(f"unknown objective '{args.objective}'; choose one of: {', '.join(OBJECTIVES)}")
    if min(args.steps, args.batch_size, args.critic_steps, args.layers, args.hidden, args.depth, args.eval_every) < 1 or args.lam < 0:
        fail("--steps, --batch-size, --critic-steps, --layers, --hidden, --depth, --eval-every must be >= 1 and --lam >= 0")
    try:
        m = run(args)
    except DatasetUnavailable as e:
        fail(str(e).splitlines()[0])
    print(f"{args.objective} {args.flow} {args.data}: test NLL {m['test_nll_nats']:.1f} nats "
          f"({m['test_bits_per_dim']:.3f} bits/dim), best MODE {m['best_mode']:.2f}, "
          f"mean log|det J| {m['mean_logdet_jacobian']:.1f} in {m['seconds']:.0f}s → {args.out}")


if __name__ == "__main__":
    main()
