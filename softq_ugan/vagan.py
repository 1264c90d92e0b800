"""Image VA-GAN (VA §3, §5.1): DCGAN-style nets, RKL / JSD / WGAN-GP objectives and the variational-
annealing regularizer ``−λ_t E[log μ(G(z))]`` through a DAE score on discriminator features.

The generator minimizes ``V(G, D) − λ_t E_z[R(z)]`` (VA eq. 9) with the stop-gradient surrogate
``R(z) = f(G(z))ᵀ StopGrad(s_σ(f(G(z))))`` (VA §3.1), where ``f`` are the discriminator's features and
``s_σ(f) = (φ_σ(f) − f)/σ²`` comes from a denoiser ``φ_σ`` trained on real features (VA eq. 10). No
gradient flows through the denoiser (VA §4.1), and the generator step updates the generator only.

Command line (progress bar, TensorBoard, checkpoints, metrics.json, samples.png):

    python -m softq_ugan.vagan --data digits --loss jsd --schedule oa --lambda0 1 --iters 2000 --out DIR
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

from softq_ugan.gan.losses import get_gan_loss, gradient_penalty
from softq_ugan.gan.schedules import make_schedule
from softq_ugan.gan.score import DAEScore, DAEScoreConfig, score_surrogate
from softq_ugan.nets import check_finite, optimizer_step, require_positive
from softq_ugan.cli import add_run_args, fail, start_run, training_images

__all__ = [
    "LOSSES",
    "VAGAN_SCHEDULES",
    "Generator",
    "Discriminator",
    "VAGANConfig",
    "VAGAN",
    "likelihood_regularizer",
    "vagan_generator_loss",
    "build_parser",
    "run",
    "main",
]

LOSSES = ("rkl", "jsd", "wgan-gp")
VAGAN_SCHEDULES = ("none", "static", "pma", "nma", "oa", "oa-linear")


# -- networks ------------------------------------------------------------------------------------
class Generator(nn.Module):
    """DCGAN generator after VA suppl. Table S1, scaled to ``(H, W)`` single-channel images.

    ``z → linear (2w·H/4·W/4), BN, ReLU → deconv4×4/2 (w), BN, ReLU → deconv4×4/2 (1) → sigmoid``;
    outputs ``(N, 1, H, W)`` in [0, 1]. H and W must be divisible by 4. (Table S1 has one more
    block per scale and a stride-1 output layer; dropped so 28×28 trains in tens of ms per step on a CPU.)
    """

    def __init__(self, shape: tuple[int, int], latent_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"Generator: image sides must be divisible by 4, got {shape}")
        self.shape, self.latent_dim, self.base = (h, w), latent_dim, (2 * width, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.base)), nn.BatchNorm1d(math.prod(self.base)), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).reshape(-1, *self.base))


class Discriminator(nn.Module):
    """DCGAN discriminator after VA suppl. Table S1: stride-2 convs (4×4; 3×3 on odd sides) doubling the
    channels from ``w`` until the side is ≤ 4 (28→14→7→4; 8→4→2), LeakyReLU(0.2), batch norm after all
    but the first (optional); the flattened last block is the feature ``f`` the denoiser sees, and a
    linear head gives the logit / critic score.

    Use ``batchnorm=False`` for WGAN-GP: its gradient penalty is per-sample (Gulrajani et al. 2017).
    """

    def __init__(self, shape: tuple[int, int], width: int = 16, batchnorm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        side, ch_in, ch = max(shape), 1, width
        while side > 4 or len(layers) < 4:
            k = 4 if side % 2 == 0 else 3
            layers.append(nn.Conv2d(ch_in, ch, k, 2, 1))
            if batchnorm and ch_in > 1:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            side, ch_in, ch = (side + 2 - k) // 2 + 1, ch, 2 * ch
        self.shape = tuple(shape)
        self.conv = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            self.num_features = self.conv.eval()(torch.zeros(1, 1, *shape)).shape[1]
        self.conv.train()
        self.head = nn.Linear(self.num_features, 1)

    def features(self, x: Tensor) -> Tensor:
        """Features ``(N, num_features)`` of images ``(N, 1, H, W)`` in [0, 1]."""
        return self.conv(x * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits / critic scores ``(N,)``."""
        return self.head(self.features(x)).squeeze(-1)


# -- losses --------------------------------------------------------------------------------------
def likelihood_regularizer(fake_features: Tensor, score: Tensor) -> Tensor:
    """``E_z[R(z)]`` with ``R = fᵀ StopGrad(s_σ(f))`` on fake features (VA §3.1); ``score`` is never differentiated."""
    # ∇θ R = (∇θ f(G(z)))ᵀ s_σ(f): the chain rule of ∇θ log μ(G(z; θ)) without backprop through φ_σ (VA §3.1, §4.1)
    return score_surrogate(fake_features, score).mean()


def vagan_generator_loss(loss: str, fake_out: Tensor, regularizer: Tensor | None, lam: float) -> Tensor:
    """``L_G(D(G(z))) − λ_t E[log μ(G(z))]`` (VA eq. 9), ``regularizer`` = :func:`likelihood_regularizer` or None."""
    adv = get_gan_loss(loss).generator_loss(fake_out)
    if regularizer is None or lam == 0.0:
        return adv
    return adv - lam * regularizer  # V(μ, ρ; D) − λ_t E_ρ[log μ] (VA eq. 9)


# -- trainer -------------------------------------------------------------------------------------
@dataclass
class VAGANConfig:
    """Hyperparameters of an image VA-GAN (one generator update per :meth:`VAGAN.update`)."""

    shape: tuple[int, int]
    """Image shape ``(H, W)``, single channel; both sides divisible by 4 (8×8 digits, 28×28 MNIST/Fashion)."""
    loss: str = "jsd"
    """GAN objective: ``rkl`` (f-GAN reverse KL, VA §2.1), ``jsd`` (non-saturating) or ``wgan-gp``."""
    schedule: str = "none"
    """λ_t schedule: none, static, pma, nma, oa, oa-linear (SPEC §4; ``none`` also skips the denoiser)."""
    lambda0: float = 1.0
    """Initial (static: constant) regularization weight λ_0; the sign is forced for pma (+) and nma (−)."""
    total_steps: int = 10000
    """T of the schedule: generator updates over which λ_t anneals to 0."""
    latent_dim: int = 64
    """Dimension of the generator's Gaussian input z."""
    gen_width: int = 16
    """Channels of the generator's hidden deconvolution block (2× that after the linear layer)."""
    disc_width: int = 16
    """Channels of the discriminator's first block (doubled at each stride-2 block)."""
    sigma: float = 1.0
    """Noise level σ of the feature denoiser (VA eq. 10) and of the score ``(φ_σ(f) − f)/σ²``."""
    dae_hidden: int = 256
    """Hidden width of the denoiser's residual MLP."""
    dae_layers: int = 2
    """Hidden layers of the denoiser's residual MLP."""
    lr_dae: float = 2e-4
    """Adam learning rate of the denoiser."""
    critic_steps: int = 1
    """Discriminator updates per generator update (on the same real batch)."""
    gp_weight: float = 10.0
    """Gradient-penalty weight for wgan-gp (Gulrajani et al. 2017)."""
    lr: float = 2e-4
    """Adam learning rate of the generator."""
    lr_critic: float = 2e-4
    """Adam learning rate of the discriminator."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of generator and discriminator (DCGAN's)."""
    max_grad_norm: float | None = None
    """Gradient clipping of the generator and discriminator updates (None: off)."""

    def __post_init__(self) -> None:
        get_gan_loss(self.loss)  # one-line ValueError listing the losses
        if self.schedule not in VAGAN_SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(VAGAN_SCHEDULES)}")
        require_positive(self, "total_steps", "latent_dim", "gen_width", "disc_width", "dae_hidden", "dae_layers", "critic_steps")
        if not self.sigma > 0:
            raise ValueError(f"VAGANConfig: sigma must be > 0, got {self.sigma}")
        self.shape = tuple(self.shape)


class VAGAN:
    """Holds generator, discriminator, feature denoiser, their optimizers and the λ_t schedule."""

    def __init__(self, config: VAGANConfig) -> None:
        c = self.config = config
        self.generator = Generator(c.shape, c.latent_dim, c.gen_width)
        self.gan_loss = get_gan_loss(c.loss)
        self.discriminator = Discriminator(c.shape, c.disc_width, batchnorm=not self.gan_loss.needs_gradient_penalty)
        self.schedule = make_schedule(c.schedule, c.lambda0, c.total_steps)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=c.betas, foreach=True)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_critic, betas=c.betas, foreach=True)
        self.denoiser: DAEScore | None = None
        if c.schedule != "none":
            self.denoiser = DAEScore(DAEScoreConfig(self.discriminator.num_features, c.sigma, c.dae_hidden, c.dae_layers, c.lr_dae))
        self.num_updates = 0

    def sample(self, n: int, chunk: int = 500) -> Tensor:
        """``n`` flat images ``(n, H*W)`` in [0, 1] from the generator in eval mode."""
        self.generator.eval()
        with torch.no_grad():
            x = torch.cat([self.generator(torch.randn(min(chunk, n - i), self.config.latent_dim)) for i in range(0, n, chunk)])
        self.generator.train()
        return x.flatten(1)

    def update(self, real_batch: Tensor) -> dict[str, float]:
        """One generator update after ``critic_steps`` discriminator updates and one denoiser update.

        Args:
            real_batch: dequantized real images in [0, 1], ``(N, H*W)`` or ``(N, 1, H, W)``.
        """
        c, step, stats = self.config, self.num_updates, {}
        real = real_batch.reshape(-1, 1, *c.shape)
        n = real.shape[0]
        lam = self.schedule(step)
        d = self.discriminator
        for _ in range(c.critic_steps):
            with torch.no_grad():
                fake = self.generator(torch.randn(n, c.latent_dim))
            real_features = d.features(real)
            out_real, out_fake = d.head(real_features).squeeze(-1), d(fake)
            d_loss = self.gan_loss.critic_loss(out_real, out_fake)
            if self.gan_loss.needs_gradient_penalty:
                gp = gradient_penalty(d, real, fake, weight=c.gp_weight)
                stats["critic/gp"] = gp.item()
                d_loss = d_loss + gp
            optimizer_step(self.opt_d, d_loss, d.parameters(), c.max_grad_norm)
        stats["critic/loss"] = check_finite("discriminator loss", d_loss.item(), step)
        if self.denoiser is not None:
            # φ_σ = argmin E||f − φ(f + ξ)||², ξ ~ N(0, σ²) on real features (VA eq. 10)
            stats["dae/loss"] = check_finite("denoiser loss", self.denoiser.update(real_features.detach())["dae_loss"], step)
        fake = self.generator(torch.randn(n, c.latent_dim))
        fake_features = d.features(fake)
        reg = None
        if self.denoiser is not None:
            reg = likelihood_regularizer(fake_features, self.denoiser.score(fake_features.detach()))
            stats["generator/regularizer"] = reg.item()
        g_loss = vagan_generator_loss(c.loss, d.head(fake_features).squeeze(-1), reg, lam)
        optimizer_step(self.opt_g, g_loss, self.generator.parameters(), c.max_grad_norm)  # G only: D, φ_σ untouched
        stats["generator/loss"] = check_finite("generator loss", g_loss.item(), step)
        stats["lambda"] = lam
        self.num_updates += 1
        return stats

    def state_dict(self) -> dict:
        """Networks, optimizers and the update count (for checkpoints)."""
        state = {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "num_updates": self.num_updates}
        if self.denoiser is not None:
            state["dae"], state["opt_dae"] = self.denoiser.dae.state_dict(), self.denoiser.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.denoiser is not None:
            self.denoiser.dae.load_state_dict(state["dae"])
            self.denoiser.optimizer.load_state_dict(state["opt_dae"])
        self.num_updates = int(state["num_updates"])


# -- command line --------------------------------------------------------------------------------
def image_grid(x: Tensor, shape: tuple[int, int], nrow: int = 8) -> np.ndarray:
    """Flat images ``(N, H*W)`` in [0, 1] tiled as an ``(1, rows·(H+1)+1, nrow·(W+1)+1)`` array (TensorBoard CHW)."""
    x = x.detach().clamp(0, 1).reshape(-1, *shape).numpy()
    h, w = shape
    rows = math.ceil(len(x) / nrow)
    canvas = np.ones((1, rows * (h + 1) + 1, nrow * (w + 1) + 1), dtype=np.float32)
    for i, img in enumerate(x):
        r, col = divmod(i, nrow)
        canvas[0, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = img
    return canvas


def build_parser() -> argparse.ArgumentParser:
    from softq_ugan.data.images import DATASETS

    p = argparse.ArgumentParser(prog="python -m softq_ugan.vagan", description="Train an image VA-GAN (VA §5.1).")
    p.add_argument("--data", default="digits", help=f"dataset: {', '.join(DATASETS)} (default digits)")
    p.add_argument("--loss", default="jsd", help=f"{', '.join(LOSSES)} (default jsd)")
    p.add_argument("--schedule", default="none", help=f"λ_t schedule: {', '.join(VAGAN_SCHEDULES)} (default none)")
    p.add_argument("--lambda0", type=float, default=1.0, help="initial / static λ (default 1)")
    p.add_argument("--iters", type=int, default=5000, help="generator updates (default 5000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4, help="generator learning rate (default 2e-4)")
    p.add_argument("--lr-critic", type=float, default=2e-4, help="discriminator learning rate (default 2e-4)")
    p.add_argument("--critic-steps", type=int, default=1)
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--gen-width", type=int, default=16)
    p.add_argument("--disc-width", type=int, default=16)
    p.add_argument("--sigma", type=float, default=1.0, help="denoiser noise level on features (default 1)")
    p.add_argument("--eval-every", type=int, default=500, help="FD and scores every N updates (default 500)")
    p.add_argument("--eval-samples", type=int, default=1000, help="generated images per evaluation")
    p.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N updates (default 1000)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    add_run_args(p, "runs/vagan")
    return p


def run(args: argparse.Namespace) -> dict:
    """Train and evaluate; returns the metrics written to ``OUT/metrics.json``."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from softq_ugan.data.images import dequantize
    from softq_ugan.flowgan import save_image_grid
    from softq_ugan.image_metrics import ImageScorer

    start_run(args)
    data, train = training_images(args)
    scorer = ImageScorer(data)
    config = VAGANConfig(
        shape=data.shape, loss=args.loss, schedule=args.schedule, lambda0=args.lambda0, total_steps=args.iters,
        latent_dim=args.latent_dim, gen_width=args.gen_width, disc_width=args.disc_width, sigma=args.sigma,
        critic_steps=args.critic_steps, lr=args.lr, lr_critic=args.lr_critic,
    )
    gan = VAGAN(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    g = torch.Generator().manual_seed(args.seed)
    evals, history, elapsed = [], {}, 0.0
    if args.resume:
        if not ckpt_path.exists():
            fail(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, weights_only=False)
        gan.load_state_dict(ckpt["gan"])
        g.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        evals, history, elapsed = ckpt["evals"], ckpt["history"], ckpt["seconds"]
    writer = SummaryWriter(str(out / "tb"))
    if gan.num_updates == 0:
        writer.add_text("config", "|field|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in {**vars(args), **asdict(config)}.items()))
    z_fixed = torch.randn(64, config.latent_dim, generator=torch.Generator().manual_seed(12345))

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"gan": gan.state_dict(), "data_rng": g.get_state(), "torch_rng": torch.get_rng_state(),
                    "evals": evals, "history": history, "seconds": elapsed + time.perf_counter() - start}, tmp)
        tmp.replace(ckpt_path)

    def evaluate(step: int) -> dict:
        row = {"step": step, **scorer.score(gan.sample(args.eval_samples))}
        for k, v in row.items():
            if k != "step":
                writer.add_scalar(f"eval/{k}", v, step)
        gan.generator.eval()
        with torch.no_grad():
            grid = image_grid(gan.generator(z_fixed).flatten(1), data.shape)
        gan.generator.train()
        writer.add_image("samples", grid, step)
        return row

    interrupted, start = False, time.perf_counter()
    bar = tqdm(range(gan.num_updates, args.iters), desc=f"{args.loss} {args.schedule} {args.data}",
               disable=args.quiet, mininterval=1.0, initial=gan.num_updates, total=args.iters)
    try:
        for t in bar:
            idx = torch.randint(len(train), (args.batch_size,), generator=g)
            stats = gan.update(dequantize(train[idx], data.levels, generator=g).float())
            if t % 25 == 0:
                for k, v in stats.items():
                    tag = k if "/" in k else f"schedule/{k}"
                    writer.add_scalar(tag, v, t)
                    history.setdefault(k, []).append((t, v))
            if (t + 1) % args.eval_every == 0 or t + 1 == args.iters:
                evals.append(evaluate(t + 1))
                bar.set_postfix(fd=f"{evals[-1]['fd']:.3f}", score=f"{evals[-1]['inception']:.2f}", refresh=False)
            if (t + 1) % args.ckpt_every == 0:
                save_checkpoint()
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted at update {gan.num_updates}; saving checkpoint and results so far", file=sys.stderr)
    finally:
        bar.close()
    seconds = elapsed + time.perf_counter() - start
    save_checkpoint()
    if not evals or evals[-1]["step"] != gan.num_updates:
        evals.append(evaluate(gan.num_updates))
    save_image_grid(gan.sample(100), data.shape, out / "samples.png",
                    title=f"{args.loss} {args.schedule} λ0={args.lambda0}: FD {evals[-1]['fd']:.3f}")
    best = min(evals, key=lambda r: r["fd"])
    metrics = {
        "data": args.data, "loss": args.loss, "schedule": args.schedule, "lambda0": args.lambda0, "seed": args.seed,
        "final": evals[-1], "best_fd": best["fd"], "best_fd_step": best["step"], "evals": evals,
        "classifier_test_accuracy": scorer.accuracy, "iters": gan.num_updates, "seconds": round(seconds, 2),
        "interrupted": interrupted, "config": {k: v for k, v in vars(args).items() if k != "quiet"},
    }
    writer.add_scalar("final/fd", evals[-1]["fd"], gan.num_updates)
    writer.close()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> None:
    from softq_ugan.data.images import DATASETS, DatasetUnavailable

    args = build_parser().parse_args(argv)
    if args.data not in DATASETS:
        fail(f"unknown dataset '{args.data}'; choose one of: {', '.join(DATASETS)}")
    if args.loss not in LOSSES:
        fail(f"unknown loss '{args.loss}'; choose one of: {', '.join(LOSSES)}")
    if args.schedule not in VAGAN_SCHEDULES:
        fail(f"unknown schedule '{args.schedule}'; choose one of: {', '.join(VAGAN_SCHEDULES)}")
    ints = ("iters", "batch_size", "critic_steps", "latent_dim", "gen_width", "disc_width", "eval_every", "eval_samples", "ckpt_every", "threads")
    if min(getattr(args, k) for k in ints) < 1:
        fail("--" + ", --".join(k.replace("_", "-") for k in ints) + " must be >= 1")
    if not args.sigma > 0 or not math.isfinite(args.lambda0):
        fail("--sigma must be > 0 and --lambda0 finite")
    if args.eval_samples < 2:
        fail("--eval-samples must be >= 2 (FD needs a covariance)")
    try:
        m = run(args)
    except DatasetUnavailable as e:
        fail(str(e).splitlines()[0])
    except FloatingPointError as e:
        fail(str(e).splitlines()[0])
    f = m["final"]
    print(f"{args.loss} {args.schedule} λ0={args.lambda0} {args.data}: FD {f['fd']:.4f} (best {m['best_fd']:.4f}), "
          f"score {f['inception']:.2f}, MODE {f['mode']:.2f} in {m['seconds']:.0f}s → {args.out}")


if __name__ == "__main__":
    main()
