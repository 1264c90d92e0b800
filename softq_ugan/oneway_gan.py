"""One-way-flow GAN (OW): an energy discriminator P_D ∝ exp(D/w) fitted by maximum likelihood with an
importance-sampled partition function, and a one-way-flow generator trained to match it.

* discriminator (OW eq. 3/16): min −E_data[D(x)/w] + log (1/S) Σ_j exp(D(y_j)/w − log P_G(y_j)),
* generator (OW eq. 12/17): min E_z[w log P_G(G(z)) − D(G(z))] = −(D + w·entropy) up to a constant,

with log P_G from OW eq. 10 (exact slogdet, or the jvp estimate of eq. 9).

Command line (progress bar, TensorBoard, scatter plot / sample grid, metrics.json):

    python -m softq_ugan.oneway_gan --data ring8 --steps 4000 --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from softq_ugan.flows.oneway import OneWayGenerator, log_partition
from softq_ugan.nets import MLP, check_finite, optimizer_step, require_positive, standard_normal_log_prob
from softq_ugan.cli import add_run_args, fail, start_run, training_images

__all__ = [
    "OneWayGANConfig",
    "OneWayGAN",
    "oneway_discriminator_loss",
    "oneway_generator_loss",
    "TOY_DATA",
    "main",
]

TOY_DATA = ("ring8", "grid25")


def oneway_discriminator_loss(d_real: Tensor, d_fake: Tensor, log_prob_fake: Tensor, w: float = 1.0) -> Tensor:
    """−E_data log P_D(x) with log ζ importance-sampled over the S generated points (OW eq. 3, 16)."""
    # −(1/w) D(x) + log (1/S) Σ exp(D(y)/w − log P_G(y)) (OW eq. 16)
    return -d_real.mean() / w + log_partition(d_fake / w, log_prob_fake.detach())


def oneway_generator_loss(d_fake: Tensor, log_prob_fake: Tensor, w: float = 1.0) -> Tensor:
    """w·KL(P_G ‖ P_D) up to a constant: E[w log P_G(y) − D(y)] (OW eq. 12, 17)."""
    # Σ [−w log|J| − D(y)] (OW eq. 17; log P_G = log N(z) + log N(r) − log|J|, eq. 10)
    return (w * log_prob_fake - d_fake).mean()


@dataclass
class OneWayGANConfig:
    """Hyperparameters of a one-way-flow GAN."""

    features: int
    """Data dimension n."""
    latent_features: int | None = None
    """Latent dimension d of z (default n; the noise r fills the remaining n − d)."""
    generator_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of g (each >= n, OW §2.4)."""
    discriminator_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the energy network D."""
    w: float = 1.0
    """Entropy weight w (OW App. C.1): P_D ∝ exp(D/w)."""
    num_samples: int = 512
    """S, generated points in the importance-sampled partition function (OW eq. 2)."""
    batch_size: int = 256
    """Real points per discriminator step and generated points per generator step."""
    discriminator_steps: int = 1
    """Discriminator updates per generator update."""
    lr_generator: float = 5e-4
    """Adam learning rate of the generator (OW App. C.2: 5e-4)."""
    lr_discriminator: float = 1e-4
    """Adam learning rate of D."""
    exact_logdet: bool | None = None
    """log|det J| by slogdet (True) or the jvp estimate (False); None: exact when n <= 16."""
    energy_penalty: float = 0.0
    """α of α·E[D(x)² + D(y)²] on real and generated points (keeps D from drifting where G has no samples; 0: off)."""
    max_grad_norm: float | None = 10.0
    """Gradient clipping of every update (None: off)."""
    lr_decay_steps: int | None = None
    """Decay both learning rates linearly to 0 over this many generator updates (None: constant)."""

    def __post_init__(self) -> None:
        require_positive(self, "features", "num_samples", "batch_size", "discriminator_steps")
        if self.lr_decay_steps is not None and self.lr_decay_steps < 1:
            raise ValueError(f"OneWayGANConfig: lr_decay_steps must be >= 1 or None, got {self.lr_decay_steps}")
        if self.energy_penalty < 0:
            raise ValueError(f"OneWayGANConfig: energy_penalty must be >= 0, got {self.energy_penalty}")
        if not self.w > 0:
            raise ValueError(f"OneWayGANConfig: w must be > 0, got {self.w}")


class OneWayGAN:
    """Holds generator, energy discriminator and optimizers; :meth:`update` is one generator step."""

    def __init__(self, config: OneWayGANConfig) -> None:
        c = self.config = config
        self.exact = c.features <= 16 if c.exact_logdet is None else c.exact_logdet
        self.generator = OneWayGenerator(c.latent_features or c.features, c.features, hidden=tuple(c.generator_hidden))
        self.discriminator = MLP(c.features, 1, tuple(c.discriminator_hidden), nn.LeakyReLU)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr_generator, betas=(0.5, 0.999), foreach=True)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_discriminator, betas=(0.5, 0.999), foreach=True)
        self.num_updates = 0

    def energy(self, x: Tensor) -> Tensor:
        """D(x), the unnormalized log-density of P_D times w."""
        return self.discriminator(x).squeeze(-1)

    def update(self, real_batches) -> dict[str, float]:
        """One generator update after ``discriminator_steps`` D updates.

        Args:
            real_batches: callable returning a fresh real batch ``(batch_size, n)``.
        """
        c, stats = self.config, {}
        if c.lr_decay_steps:  # linear decay to 0, so the last updates settle the oscillating pair
            frac = max(0.0, 1.0 - self.num_updates / c.lr_decay_steps)
            for opt, lr in ((self.opt_g, c.lr_generator), (self.opt_d, c.lr_discriminator)):
                for group in opt.param_groups:
                    group["lr"] = lr * frac
        for _ in range(c.discriminator_steps):
            real = real_batches()
            y, log_q = self.generator.rsample_and_log_prob(c.num_samples, exact=self.exact)
            d_fake, d_real = self.energy(y.detach()), self.energy(real)
            loss_d = oneway_discriminator_loss(d_real, d_fake, log_q, c.w)
            reg = c.energy_penalty * ((d_real**2).mean() + (d_fake**2).mean()) if c.energy_penalty else 0.0
            optimizer_step(self.opt_d, loss_d + reg, self.discriminator.parameters(), c.max_grad_norm)
        stats["discriminator/nll"] = check_finite("discriminator loss", loss_d.item(), self.num_updates)
        stats["discriminator/log_zeta"] = log_partition(d_fake.detach() / c.w, log_q.detach()).item()
        y, log_q = self.generator.rsample_and_log_prob(c.batch_size, exact=self.exact)
        loss_g = oneway_generator_loss(self.energy(y), log_q, c.w)
        optimizer_step(self.opt_g, loss_g, self.generator.parameters(), c.max_grad_norm)
        stats["generator/loss"] = check_finite("generator loss", loss_g.item(), self.num_updates)
        stats["generator/entropy"] = -log_q.mean().item()  # OW eq. 11
        self.num_updates += 1
        return stats

    @torch.no_grad()
    def sample(self, num_samples: int) -> Tensor:
        return self.generator.sample(num_samples)


# -- analysis --------------------------------------------------------------------------------------
def grid_log_zeta(energy, bounds, w: float = 1.0, n: int = 1001) -> float:
    """log ∫ exp(D(x)/w) dx over a 2-D box by the midpoint rule (ground truth for OW Fig. 2)."""
    (a0, b0), (a1, b1) = bounds
    gx = torch.linspace(a0, b0, n, dtype=torch.float64)
    gy = torch.linspace(a1, b1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="ij")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], -1).float()
    with torch.no_grad():
        e = torch.cat([energy(pts[i : i + 100_000]) for i in range(0, len(pts), 100_000)]).double() / w
    cell = (gx[1] - gx[0]).item() * (gy[1] - gy[0]).item()
    return float(torch.logsumexp(e, 0)) + math.log(cell)


@torch.no_grad()
def log_zeta_vs_samples(gan: OneWayGAN, sizes, repeats: int = 10, seed: int = 0) -> dict:
    """OW Fig. 2: log ζ estimates (mean, std over ``repeats``) for S in ``sizes``, with a N(0, I)
    proposal and with the generator as proposal."""
    w, n = gan.config.w, gan.config.features
    out = {"S": list(sizes), "normal": [], "generator": []}
    torch.manual_seed(seed)
    for S in sizes:
        est_n, est_g = [], []
        for _ in range(repeats):
            y = torch.randn(S, n)
            log_q = standard_normal_log_prob(y)
            est_n.append(log_partition(gan.energy(y) / w, log_q).item())
            with torch.enable_grad():
                yg, lg = gan.generator.rsample_and_log_prob(S, exact=gan.exact)
            est_g.append(log_partition(gan.energy(yg.detach()) / w, lg.detach()).item())
        out["normal"].append((float(np.mean(est_n)), float(np.std(est_n))))
        out["generator"].append((float(np.mean(est_g)), float(np.std(est_g))))
    return out


# -- command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from softq_ugan.data.images import DATASETS

    p = argparse.ArgumentParser(prog="python -m softq_ugan.oneway_gan", description="Train a one-way-flow GAN.")
    p.add_argument("--data", default="ring8", help=f"dataset: {', '.join(TOY_DATA + DATASETS)} (default ring8)")
    p.add_argument("--steps", type=int, default=4000, help="generator updates (default 4000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-samples", type=int, default=512, help="S, samples in the partition-function estimate")
    p.add_argument("--w", type=float, default=1.0, help="entropy weight w (default 1)")
    p.add_argument("--latent", type=int, default=None, help="latent dimension d (default: data dimension, 16 for images)")
    p.add_argument("--hidden", type=int, default=128, help="width of generator and discriminator layers (default 128)")
    p.add_argument("--lr-g", type=float, default=5e-4, help="generator learning rate (default 5e-4)")
    p.add_argument("--lr-d", type=float, default=1e-4, help="discriminator learning rate (default 1e-4)")
    p.add_argument("--d-steps", type=int, default=1, help="discriminator updates per generator update")
    p.add_argument("--lr-decay", action="store_true", help="decay both learning rates linearly to 0 over --steps")
    p.add_argument("--energy-penalty", type=float, default=0.0, help="α of α·E[D²] on real and generated points (default 0)")
    p.add_argument("--logdet", default="auto", help="exact | jvp | auto (exact when the dimension is <= 16)")
    p.add_argument("--eval-samples", type=int, default=2500, help="samples for the final metrics (OW: 2,500)")
    p.add_argument("--zeta-curve", action="store_true", help="toy data: log ζ vs S (OW Fig. 2) into metrics.json")
    add_run_args(p, "runs/oneway")
    return p


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate and plot; returns the metrics written to ``metrics.json``."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    start_run(args)
    toy = args.data in TOY_DATA
    g = torch.Generator().manual_seed(args.seed)
    if toy:
        from softq_ugan.targets import make_target

        target = make_target(args.data)
        dim, latent = target.dim, args.latent or target.dim
        ref = target.sample(100_000, generator=torch.Generator().manual_seed(12345))
        shift, scale = ref.mean(0), ref.std()  # train on standardized data, report in data units
        next_batch = lambda: (target.sample(args.batch_size, generator=g) - shift) / scale  # noqa: E731
    else:
        from softq_ugan.data.images import dequantize

        data, train = training_images(args)
        dim, latent = data.dim, args.latent or 16

        def next_batch() -> Tensor:
            idx = torch.randint(len(train), (args.batch_size,), generator=g)
            return dequantize(train[idx], data.levels, generator=g).float()

    hidden = max(args.hidden, dim)
    config = OneWayGANConfig(
        features=dim, latent_features=latent, generator_hidden=(hidden, hidden), discriminator_hidden=(args.hidden, args.hidden),
        w=args.w, num_samples=args.num_samples, batch_size=args.batch_size, discriminator_steps=args.d_steps,
        lr_generator=args.lr_g, lr_discriminator=args.lr_d, energy_penalty=args.energy_penalty,
        lr_decay_steps=args.steps if args.lr_decay else None,
        exact_logdet={"exact": True, "jvp": False, "auto": None}[args.logdet],
    )
    gan = OneWayGAN(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out / "tb"))
    writer.add_text("config", "|field|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in {**vars(args), **asdict(config)}.items()))
    history, interrupted, start = {}, False, time.perf_counter()
    bar = tqdm(range(args.steps), desc=f"oneway {args.data}", disable=args.quiet, mininterval=1.0)
    try:
        for t in bar:
            stats = gan.update(next_batch)
            if t % 25 == 0:
                for k, v in stats.items():
                    writer.add_scalar(k, v, t)
                    history.setdefault(k, []).append((t, v))
                bar.set_postfix(nll=f"{stats['discriminator/nll']:.2f}", H=f"{stats['generator/entropy']:.2f}", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted at update {gan.num_updates}; writing results so far", file=sys.stderr)
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    x = gan.sample(args.eval_samples)
    if toy:
        x = x * scale + shift
    metrics = {"data": args.data, "steps": gan.num_updates, "seconds": round(seconds, 2), "interrupted": interrupted,
               "exact_logdet": gan.exact, "config": {k: v for k, v in vars(args).items() if k != "quiet"}}
    if toy:
        from softq_ugan.metrics import evaluate_samples
        from softq_ugan.plots import plot_curves, plot_samples

        metrics.update(evaluate_samples(x, target, seed=args.seed))
        box = tuple(((a - 1.0 - m) / scale.item(), (b + 1.0 - m) / scale.item()) for (a, b), m in zip(target.bounds, shift.tolist()))
        metrics["log_zeta_grid"] = grid_log_zeta(gan.energy, box, config.w)  # in standardized units
        if args.zeta_curve:
            metrics["zeta_curve"] = log_zeta_vs_samples(gan, [1, 10, 100, 1000, 10000], seed=args.seed)
        np.save(out / "samples.npy", x.numpy())
        plot_samples(target, x, out / "samples.png",
                     title=f"one-way GAN on {args.data}: {metrics['modes_covered']} modes, {metrics['hq_fraction']:.1%} HQ")
        if history:
            plot_curves(history, out / "curves.png")
        summary = f"modes={metrics['modes_covered']}/{metrics['num_modes']} HQ={metrics['hq_fraction']:.1%}"
    else:
        from softq_ugan.flowgan import save_image_grid
        from softq_ugan.image_metrics import ImageScorer

        metrics.update(ImageScorer(data).score(x.clamp(0, 1)))
        save_image_grid(x[:100], data.shape, out / "samples.png", title=f"one-way GAN on {args.data}")
        summary = f"MODE={metrics['mode']:.2f} FD={metrics['fd']:.2f}"
    writer.close()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    metrics["summary"] = summary
    return metrics


def main(argv: list[str] | None = None) -> None:
    from softq_ugan.data.images import DATASETS, DatasetUnavailable

    args = build_parser().parse_args(argv)
    if args.data not in TOY_DATA + DATASETS:
        fail(f"unknown dataset '{args.data}'; choose one of: {', '.join(TOY_DATA + DATASETS)}")
    if args.logdet not in ("exact", "jvp", "auto"):
        fail(f"unknown --logdet '{args.logdet}'; choose one of: exact, jvp, auto")
    if min(args.steps, args.batch_size, args.num_samples, args.hidden, args.d_steps, args.eval_samples) < 1 or not args.w > 0:
        fail("--steps, --batch-size, --num-samples, --hidden, --d-steps, --eval-samples must be >= 1 and --w > 0")
    try:
        m = run(args)
    except DatasetUnavailable as e:
        fail(str(e).splitlines()[0])
    print(f"oneway {args.data}: {m['summary']} in {m['seconds']:.0f}s → {args.out}")


if __name__ == "__main__":
    main()
