"""Bayesian logistic regression with the U-GAN sampler against particle SVGD, SGLD and MAP (VA §5.3, Table 3).

    python -m softq_ugan.bayeslr --data heart --method ugan|svgd|sgld|mala|map --seed 0 [--out DIR]

prints the test NLL (of the posterior predictive, nats per test point) and accuracy and writes
DIR/metrics.json (and DIR/samples.npy). Ctrl-C stops a sampler early and evaluates what it has.

Every sampler works on the posterior of :class:`~softq_ugan.targets.BayesianLogisticRegression`
with θ = (w, log α). Shared ingredients:

- MAP (type-II): log α̂ maximizes the Laplace-approximate marginal posterior of log α on a grid (MacKay's
  evidence), then w = argmax p(w | α̂, D) by L-BFGS (float64). The joint mode over (w, log α) is
  degenerate on sonar and german (w ≈ 0, α ≈ 3,000: the funnel of the hierarchical prior). The Laplace
  std of w at α̂ (and the grid-posterior std of log α) is a fixed diagonal preconditioner s for U-GAN,
  SGLD and MALA.
- U-GAN (VA §5.3 "MAP estimate to initialize"): the generator samples x and θ = θ_MAP + s⊙x, an exact
  affine change of variables of the target (constant Jacobian). The generator is initialized at the
  MAP: its last layer is rescaled so its outputs start centred at x = 0 (θ = θ_MAP) with spread
  ``init_std`` Laplace stds, and the MAF bridge is fitted to that initial generator before training
  (``bridge_warmup`` MLE steps). The target is the minibatch log-density (fresh minibatch per step).
- particle SVGD (Liu & Wang 2016, their BLR code): ``num_particles`` particles from the prior, RBF
  kernel with the median bandwidth, AdaGrad-style step (running mean of squared directions, decay 0.9).
- SGLD (Welling & Teh 2011): parallel chains from the MAP, diagonal preconditioner s², step size
  ε_t = ε0 (1 + t/τ)^-0.55, first half discarded, thinned; the reference for test NLL.
- MALA: Metropolis-adjusted Langevin on the full-data posterior (exact up to Monte Carlo error),
  step size tuned to ~0.57 acceptance during burn-in: an unbiased check on the SGLD reference.

Gradient evaluations are counted as (samples or particles or chains) × (data rows) per gradient of
the log-likelihood, so U-GAN and SVGD with equal steps, samples and minibatch cost the same.
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
from torch import Tensor
from tqdm.auto import tqdm

from softq_ugan.data.tabular import DATASETS, TabularSplit, load_dataset
from softq_ugan.targets import BayesianLogisticRegression
from softq_ugan.ugan import UGAN, UGANConfig
from softq_ugan.cli import fail

METHODS = ("ugan", "svgd", "sgld", "mala", "map")


# ---------------------------------------------------------------------------------- configs
@dataclass
class MAPConfig:
    """Type-II MAP (evidence-maximizing α, then the mode of w): the initializer of U-GAN, SGLD and MALA."""

    max_iter: int = 200
    """L-BFGS iterations per grid point (w at fixed α, full-data log-posterior)."""
    log_alpha_min: float = -6.0
    """Smallest log α of the evidence grid."""
    log_alpha_max: float = 8.0
    """Largest log α of the evidence grid."""
    log_alpha_step: float = 0.25
    """Spacing of the evidence grid."""


@dataclass
class UGANRunConfig:
    """U-GAN on the Bayesian-LR posterior (unconditional; VA §5.3)."""

    steps: int = 1000
    """Generator updates."""
    num_samples: int = 100
    """Generator samples per update (as many as SVGD's particles: equal gradient evaluations)."""
    batch_size: int = 100
    """Data rows per minibatch estimate of the log-posterior (VA §5.3)."""
    lr: float = 2e-3
    """Adam learning rate of generator, critic and bridge; the generator's decays linearly to lr·lr_final."""
    lr_final: float = 0.1
    """Final fraction of the generator's learning rate."""
    hidden: int = 64
    """Width of the two hidden layers of generator, critic and each MAF block."""
    bridge_blocks: int = 4
    """Affine MAF blocks in the bridge."""
    bridge_steps: int = 2
    """MLE updates of the bridge per generator update."""
    critic: bool = False
    """Use the critic D ≈ log ρ/ν (the full U-GAN; each critic step samples the MAF, d sequential passes)."""
    schedule: str = "none"
    """Annealing schedule of λ_t (none, static, pma, nma, exp, oa, geo)."""
    lambda0: float = 0.0
    """Initial annealing weight λ_0."""
    init_std: float = 1.0
    """Initial generator spread, in Laplace standard deviations around the MAP."""
    bridge_warmup: int = 300
    """MLE steps fitting the bridge to the initial generator before training."""
    eval_samples: int = 2000
    """Generator samples used for the posterior predictive."""


@dataclass
class SVGDRunConfig:
    """Particle SVGD (Liu & Wang 2016) with their AdaGrad-style step."""

    steps: int = 1000
    """SVGD iterations (as many as U-GAN's updates: equal gradient evaluations)."""
    num_particles: int = 100
    """Particles (Liu & Wang: 100)."""
    batch_size: int = 100
    """Data rows per minibatch score."""
    step_size: float = 0.05
    """Master step size of the AdaGrad step (Liu & Wang's BLR code: 0.05)."""
    decay: float = 0.9
    """Decay of the running mean of squared directions."""
    init: str = "prior"
    """'prior': Liu & Wang's initialization in θ; 'map': particles in the U-GAN's Laplace coordinates
    θ = θ_MAP + s⊙x, starting from x ~ N(0, I) (the same information the U-GAN gets)."""


@dataclass
class SGLDConfig:
    """Preconditioned SGLD with a decaying step, parallel chains, burn-in and thinning (the reference)."""

    steps: int = 20000
    """Iterations per chain."""
    chains: int = 20
    """Parallel chains, started at the MAP plus Laplace noise."""
    batch_size: int = 100
    """Data rows per minibatch gradient."""
    step_size: float = 0.1
    """ε0 in Laplace-preconditioned units (the update is θ += ε/2 s²∇ + √ε s ξ)."""
    decay_steps: float = 200.0
    """τ of the decay ε_t = ε0 (1 + t/τ)^-0.55 (Welling & Teh 2011)."""
    burn_in: float = 0.5
    """Fraction of iterations discarded."""
    thin: int = 50
    """Keep every ``thin``-th iterate after burn-in."""


@dataclass
class MALAConfig:
    """Preconditioned MALA on the full-data posterior (exact stationary law)."""

    steps: int = 4000
    """Iterations per chain (first half: burn-in and step-size adaptation)."""
    chains: int = 20
    """Parallel chains, started at the MAP plus Laplace noise."""
    step_size: float = 0.5
    """Initial step in Laplace-preconditioned units (adapted towards 0.57 acceptance in burn-in)."""
    thin: int = 10
    """Keep every ``thin``-th iterate after burn-in."""


# ---------------------------------------------------------------------------------- pure helpers
def make_target(split: TabularSplit, batch_size: int | None = None, seed: int = 0) -> BayesianLogisticRegression:
    """The posterior of ``split``'s training data (minibatch estimate when ``batch_size`` is set)."""
    gen = torch.Generator().manual_seed(seed)
    return BayesianLogisticRegression(split.x_train, split.y_train, batch_size=batch_size, generator=gen)


def predictive_metrics(target: BayesianLogisticRegression, theta: Tensor, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Test NLL −mean log p(y|x, D) of the posterior predictive p(y=1|x) = mean_s σ(xᵀw_s), and accuracy."""
    p = target.predict_proba(theta.double(), torch.as_tensor(x)).clamp(1e-12, 1 - 1e-12).numpy()
    nll = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
    return {"test_nll": float(nll), "test_acc": float(np.mean((p > 0.5) == (y == 1)))}


def grad_log_prob(log_prob, theta: Tensor) -> tuple[Tensor, Tensor]:
    """(log u(θ), ∇ log u(θ)) for a batch θ (N, d)."""
    theta = theta.detach().requires_grad_(True)
    lp = log_prob(theta)
    return lp.detach(), torch.autograd.grad(lp.sum(), theta)[0]


def particle_svgd_direction(x: Tensor, score: Tensor) -> Tensor:
    """φ(x_i) = 1/n Σ_j [k(x_j, x_i) ∇log u(x_j) + ∇_{x_j} k(x_j, x_i)] (Liu & Wang eq. 8) for particles (n, d).

    Same kernel as :func:`softq_ugan.svgd.rbf_kernel` (k = exp(−‖x_j − x_i‖²/h), h = med‖x_j − x_i‖²/log n)
    in matrix form: Σ_j ∇_{x_j} k(x_j, x_i) = 2/h (x_i Σ_j k_ji − Σ_j k_ji x_j), with no (n, n, d) tensor.
    """
    sq = (x * x).sum(-1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    h = (dist2.median() / math.log(x.shape[0])).clamp_min(1e-8)
    kappa = torch.exp(-dist2 / h)  # symmetric
    repulsion = 2.0 / h * (x * kappa.sum(0)[:, None] - kappa @ x)
    return (kappa @ score + repulsion) / x.shape[0]


def _fit_weights(target: BayesianLogisticRegression, log_alpha: float, w0: Tensor, max_iter: int) -> tuple[Tensor, int]:
    """argmax_w log p(w, log α | D) at fixed α (L-BFGS, float64); returns (w, function evaluations)."""
    w = w0.clone().requires_grad_(True)
    la = torch.full((1,), log_alpha, dtype=torch.float64)
    opt = torch.optim.LBFGS([w], max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = -target.log_prob_full(torch.cat([w, la]))
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), evals


def fit_map(target: BayesianLogisticRegression, config: MAPConfig = MAPConfig()) -> tuple[Tensor, Tensor, int]:
    """Type-II MAP: log α̂ maximizing the Laplace-approximate marginal posterior of log α on a grid, then
    w = argmax p(w | α̂, D). Returns θ = (w, log α̂) (float64), a preconditioner s (the Laplace std of w at α̂;
    for log α the std of its grid posterior) and the function evaluations used.

    The joint mode over (w, log α) is degenerate when p is large against n (sonar, german: w ≈ 0,
    α ≈ (p/2 + a0)/b0, the hierarchical prior's funnel), so the joint MAP is no initializer there.
    """
    grid = torch.arange(config.log_alpha_min, config.log_alpha_max + 1e-9, config.log_alpha_step, dtype=torch.float64)
    w = torch.zeros(target.num_weights, dtype=torch.float64)
    evals, scores, weights = 0, [], []
    x = target.x
    for la in grid.tolist():  # warm-started from the previous grid point
        w, e = _fit_weights(target, la, w, config.max_iter)
        evals += e
        theta = torch.cat([w, torch.tensor([la], dtype=torch.float64)])
        p = torch.sigmoid(x @ w)
        hess = x.T @ (x * (p * (1 - p))[:, None]) + math.exp(la) * torch.eye(target.num_weights, dtype=torch.float64)
        # Laplace: log p(log α | D) ≈ log p(w*, log α, D) + p/2 log 2π − ½ log det H (MacKay's evidence)
        score = target.log_prob_full(theta) + 0.5 * target.num_weights * math.log(2 * math.pi) - 0.5 * torch.logdet(hess)
        scores.append(score.item())
        weights.append((w.clone(), hess))
    scores_t = torch.tensor(scores, dtype=torch.float64)
    best = int(scores_t.argmax())
    post = torch.softmax(scores_t, 0)
    mean = (post * grid).sum()
    sd_alpha = ((post * (grid - mean) ** 2).sum()).sqrt().clamp_min(config.log_alpha_step)
    w, hess = weights[best]
    std = torch.cat([hess.diagonal().rsqrt(), sd_alpha[None]])
    return torch.cat([w, grid[best : best + 1]]), std, evals


class _Loop:
    """Progress-bar iteration over ``steps``; used as ``with loop: for t in loop: ...``, Ctrl-C ends the
    loop early (keeping the results so far) when ``interruptible``, else propagates."""

    def __init__(self, steps: int, desc: str, progress: bool, interruptible: bool) -> None:
        self.steps, self.desc, self.progress, self.interruptible = steps, desc, progress, interruptible
        self.interrupted, self.done = False, 0
        self.bar = tqdm(total=steps, desc=desc, disable=not progress, mininterval=1.0)

    def __iter__(self):
        for t in range(self.steps):
            yield t
            self.done = t + 1
            self.bar.update()

    def __enter__(self) -> "_Loop":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.bar.close()
        if exc_type is KeyboardInterrupt and self.interruptible:
            self.interrupted = True
            print(f"\ninterrupted at step {self.done}; evaluating what was computed", file=sys.stderr)
            return True
        return False


# ---------------------------------------------------------------------------------- samplers
def run_ugan(target: BayesianLogisticRegression, config: UGANRunConfig, seed: int = 0, progress: bool = False,
             interruptible: bool = False, map_result=None) -> tuple[Tensor, dict[str, float]]:
    """Train a U-GAN on the minibatch posterior; returns (θ samples (S, d), stats)."""
    c = config
    torch.manual_seed(seed)
    theta_map, std, map_evals = map_result if map_result is not None else fit_map(target)
    shift, scale = theta_map.float(), std.float()
    d = target.dim
    trainer = UGAN(UGANConfig(
        features=d, generator_hidden=(c.hidden, c.hidden), critic_hidden=(c.hidden, c.hidden),
        bridge_blocks=c.bridge_blocks, bridge_hidden=c.hidden, critic=c.critic, bridge_steps=c.bridge_steps,
        batch_size=c.num_samples, lr_generator=c.lr, lr_critic=c.lr, lr_bridge=c.lr,
        schedule=c.schedule, lambda0=c.lambda0, total_steps=c.steps))
    s = trainer.sampler
    # initialize at the MAP: centre the generator's outputs at x = 0 with spread init_std (VA §5.3)
    last = s.generator.net[-1]
    with torch.no_grad():
        x0 = s.generator.rsample(4096)
        ratio = c.init_std / x0.std(0).clamp_min(1e-6)
        last.weight.mul_(ratio[:, None])
        last.bias.mul_(ratio).sub_(x0.mean(0) * ratio)
    for _ in range(c.bridge_warmup):  # fit ν to the initial generator so it tracks ρ from the start
        with torch.no_grad():
            x = s.generator.rsample(c.num_samples)
        loss = -s.bridge.log_prob(x).mean()
        trainer.bridge_optimizer.zero_grad()
        loss.backward()
        trainer.bridge_optimizer.step()

    def log_u(x: Tensor, context=None) -> Tensor:
        return target.log_prob(shift + scale * x)  # θ = θ_MAP + s⊙x: exact change of variables

    sched = torch.optim.lr_scheduler.LambdaLR(
        trainer.generator_optimizer, lambda t: 1.0 - (1.0 - c.lr_final) * min(t / c.steps, 1.0))
    loop = _Loop(c.steps, "ugan", progress, interruptible)
    stats: dict[str, float] = {}
    start = time.perf_counter()
    with loop:
        for _ in loop:
            stats = trainer.update(log_u)
            sched.step()
    seconds = time.perf_counter() - start
    theta = shift + scale * trainer.sample(c.eval_samples)
    m = target.batch_size or target.num_data
    out = {f"ugan_{k}": float(v) for k, v in stats.items()}
    out.update(seconds=seconds, steps=float(loop.done), interrupted=float(loop.interrupted),
               grad_evals=float(loop.done * c.num_samples * m + map_evals * target.num_data))
    return theta.double(), out


def _prior_particles(target: BayesianLogisticRegression, n: int, gen: torch.Generator) -> Tensor:
    """Liu & Wang's BLR initialization: α ~ Gamma(shape a0, *scale* b0), w ~ N(0, α⁻¹ I).

    Their code draws α with b0 as a scale (mean 0.01, so wide w) though the model uses it as a rate;
    a draw from the model's own prior (α mean 100, w ≈ 0) starts SVGD inside the funnel of the
    hierarchical prior, where it stays on sonar and german.
    """
    alpha = torch.distributions.Gamma(target.a0, 1.0 / target.b0).sample((n,)).double()  # global RNG
    w = torch.randn(n, target.num_weights, generator=gen, dtype=torch.float64) / alpha.sqrt()[:, None]
    return torch.cat([w, alpha.log()[:, None]], dim=1)


def run_svgd(target: BayesianLogisticRegression, config: SVGDRunConfig, seed: int = 0, progress: bool = False,
             interruptible: bool = False, map_result=None) -> tuple[Tensor, dict[str, float]]:
    """Particle SVGD; returns (particles (n, d), stats)."""
    c = config
    if c.init not in ("prior", "map"):
        raise ValueError(f"unknown SVGD init {c.init!r}; choose one of: prior, map")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    map_evals = 0
    shift = torch.zeros(target.dim, dtype=torch.float64)
    scale = torch.ones(target.dim, dtype=torch.float64)
    if c.init == "map":  # particles x in Laplace coordinates θ = θ_MAP + s⊙x, x ~ N(0, I) at the start
        shift, scale, map_evals = map_result if map_result is not None else fit_map(target)
        x = torch.randn(c.num_particles, target.dim, generator=gen, dtype=torch.float64)
    else:
        x = _prior_particles(target, c.num_particles, gen)
    hist = None
    loop = _Loop(c.steps, "svgd", progress, interruptible)
    start = time.perf_counter()
    with loop:
        for _ in loop:
            _, score = grad_log_prob(target.log_prob, shift + scale * x)
            phi = particle_svgd_direction(x, scale * score)  # Liu & Wang eq. 8 (score in x-coordinates)
            hist = phi**2 if hist is None else c.decay * hist + (1 - c.decay) * phi**2  # AdaGrad-style
            x = x + c.step_size * phi / (1e-6 + hist.sqrt())
    seconds = time.perf_counter() - start
    m = target.batch_size or target.num_data
    return (shift + scale * x).detach(), {
        "seconds": seconds, "steps": float(loop.done), "interrupted": float(loop.interrupted),
        "grad_evals": float(loop.done * c.num_particles * m + map_evals * target.num_data)}


def run_sgld(target: BayesianLogisticRegression, config: SGLDConfig, seed: int = 0, progress: bool = False,
             interruptible: bool = False, map_result=None) -> tuple[Tensor, dict[str, float]]:
    """Preconditioned SGLD chains; returns (thinned samples after burn-in, stats)."""
    c = config
    gen = torch.Generator().manual_seed(seed)
    theta_map, std, map_evals = map_result if map_result is not None else fit_map(target)
    precond = std**2
    theta = theta_map + std * torch.randn(c.chains, target.dim, generator=gen, dtype=torch.float64)
    keep_from = int(c.burn_in * c.steps)
    kept: list[Tensor] = []
    loop = _Loop(c.steps, "sgld", progress, interruptible)
    start = time.perf_counter()
    with loop:
        for t in loop:
            eps = c.step_size * (1.0 + t / c.decay_steps) ** -0.55  # Welling & Teh's polynomial decay
            _, g = grad_log_prob(target.log_prob, theta)
            noise = torch.randn(theta.shape, generator=gen, dtype=torch.float64)
            theta = theta + 0.5 * eps * precond * g + math.sqrt(eps) * std * noise  # Welling & Teh eq. 4, preconditioned
            if t >= keep_from and (t - keep_from) % c.thin == 0:
                kept.append(theta.detach().clone())
    seconds = time.perf_counter() - start
    samples = torch.cat(kept) if kept else theta.detach()
    m = target.batch_size or target.num_data
    return samples, {"seconds": seconds, "steps": float(loop.done), "interrupted": float(loop.interrupted),
                     "grad_evals": float(loop.done * c.chains * m + map_evals * target.num_data),
                     "num_samples": float(samples.shape[0])}


def run_mala(target: BayesianLogisticRegression, config: MALAConfig, seed: int = 0, progress: bool = False,
             interruptible: bool = False, map_result=None) -> tuple[Tensor, dict[str, float]]:
    """Preconditioned MALA on the full-data posterior; returns (thinned samples, stats incl. acceptance)."""
    c = config
    gen = torch.Generator().manual_seed(seed)
    theta_map, std, map_evals = map_result if map_result is not None else fit_map(target)
    m_diag = std**2
    theta = theta_map + std * torch.randn(c.chains, target.dim, generator=gen, dtype=torch.float64)
    lp, g = grad_log_prob(target.log_prob_full, theta)
    eps, burn = c.step_size, c.steps // 2
    kept: list[Tensor] = []
    accepted = 0.0

    def log_q(to: Tensor, frm: Tensor, g_frm: Tensor, e: float) -> Tensor:  # log N(to; frm + e/2 M g, e M)
        return -((to - frm - 0.5 * e * m_diag * g_frm) ** 2 / m_diag).sum(-1) / (2 * e)

    loop = _Loop(c.steps, "mala", progress, interruptible)
    start = time.perf_counter()
    with loop:
        for t in loop:
            noise = torch.randn(theta.shape, generator=gen, dtype=torch.float64)
            prop = theta + 0.5 * eps * m_diag * g + math.sqrt(eps) * std * noise
            lp_p, g_p = grad_log_prob(target.log_prob_full, prop)
            log_acc = lp_p - lp + log_q(theta, prop, g_p, eps) - log_q(prop, theta, g, eps)
            acc = torch.rand(c.chains, generator=gen, dtype=torch.float64).log() < log_acc
            theta = torch.where(acc[:, None], prop, theta)
            lp, g = torch.where(acc, lp_p, lp), torch.where(acc[:, None], g_p, g)
            rate = acc.double().mean().item()
            if t < burn:
                eps *= math.exp(0.05 * (rate - 0.57))  # Robbins-Monro step adaptation towards 0.57 acceptance
            else:
                accepted += rate
                if (t - burn) % c.thin == 0:
                    kept.append(theta.clone())
    seconds = time.perf_counter() - start
    samples = torch.cat(kept) if kept else theta
    after = max(1, loop.done - burn)
    return samples, {"seconds": seconds, "steps": float(loop.done), "interrupted": float(loop.interrupted),
                     "grad_evals": float(2 * loop.done * c.chains * target.num_data + map_evals * target.num_data),
                     "acceptance": accepted / after, "step_size": eps, "num_samples": float(samples.shape[0])}


def run_map(target: BayesianLogisticRegression, config: MAPConfig, seed: int = 0, progress: bool = False,
            interruptible: bool = False, map_result=None) -> tuple[Tensor, dict[str, float]]:
    """The MAP point (plug-in predictive); returns (θ_MAP (1, d), stats)."""
    start = time.perf_counter()
    theta, _, evals = map_result if map_result is not None else fit_map(target, config)
    return theta[None], {"seconds": time.perf_counter() - start, "steps": float(evals), "interrupted": 0.0,
                         "grad_evals": float(evals * target.num_data)}


RUNNERS = {"ugan": (run_ugan, UGANRunConfig), "svgd": (run_svgd, SVGDRunConfig), "sgld": (run_sgld, SGLDConfig),
           "mala": (run_mala, MALAConfig), "map": (run_map, MAPConfig)}


def evaluate(data: str, method: str, seed: int = 0, config=None, progress: bool = False,
             interruptible: bool = False, map_config: MAPConfig | None = None) -> tuple[Tensor, dict[str, float]]:
    """Split ``data`` with ``seed``, run ``method``, and return (samples, metrics incl. test NLL/accuracy).

    ``map_config`` sets the MAP fit that U-GAN, SGLD, MALA (and SVGD with ``init='map'``) start from.
    """
    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}; choose one of: {', '.join(DATASETS)}")
    if method not in RUNNERS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    runner, config_cls = RUNNERS[method]
    config = config_cls() if config is None else config
    split = load_dataset(data, seed)
    batch = getattr(config, "batch_size", None)
    target = make_target(split, batch, seed)
    start = time.perf_counter()
    map_result = None
    if method in ("ugan", "sgld", "mala") or (method == "svgd" and config.init == "map"):
        map_result = fit_map(make_target(split), map_config or MAPConfig())
    theta, stats = runner(target, config, seed=seed, progress=progress, interruptible=interruptible,
                          map_result=map_result)
    stats["total_seconds"] = time.perf_counter() - start
    stats.update(predictive_metrics(target, theta, split.x_test, split.y_test))
    stats["train_nll"] = predictive_metrics(target, theta, split.x_train, split.y_train)["test_nll"]
    return theta, stats


# ---------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m softq_ugan.bayeslr",
                                description="Bayesian logistic regression: U-GAN against SVGD, SGLD, MALA and MAP (VA §5.3).")
    p.add_argument("--data", default="heart", help=f"dataset: {', '.join(DATASETS)} (default heart)")
    p.add_argument("--method", default="ugan", help=f"sampler: {', '.join(METHODS)} (default ugan)")
    p.add_argument("--seed", type=int, default=0, help="split and sampler seed (default 0)")
    p.add_argument("--steps", type=int, default=None, help="iterations (default: the method's config)")
    p.add_argument("--batch-size", type=int, default=None, help="data minibatch (default: the method's config)")
    p.add_argument("--critic", action="store_true", help="U-GAN: train the critic D ≈ log ρ/ν (full U-GAN)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=None, help="folder for metrics.json and samples.npy (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = build_parser().parse_args(argv)
    if args.data not in DATASETS:
        fail(f"unknown dataset '{args.data}'; choose one of: {', '.join(DATASETS)}")
    if args.method not in METHODS:
        fail(f"unknown method '{args.method}'; choose one of: {', '.join(METHODS)}")
    if (args.steps is not None and args.steps < 1) or (args.batch_size is not None and args.batch_size < 1):
        fail("--steps and --batch-size must be >= 1")
    torch.set_num_threads(args.threads)
    config = RUNNERS[args.method][1]()
    if args.steps is not None:
        if args.method == "map":
            config.max_iter = args.steps
        else:
            config.steps = args.steps
    if args.batch_size is not None and hasattr(config, "batch_size"):
        config.batch_size = args.batch_size
    if args.critic and args.method == "ugan":
        config.critic = True
    try:
        theta, metrics = evaluate(args.data, args.method, args.seed, config, progress=not args.quiet, interruptible=True)
    except ImportError as err:
        fail(str(err))
    except KeyboardInterrupt:  # before the sampler's loop began (data, MAP fit): nothing to keep
        print("\ninterrupted before sampling started; nothing written", file=sys.stderr)
        raise SystemExit(130) from None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        record = dict(metrics, data=args.data, method=args.method, seed=args.seed, config=asdict(config))
        (out / "metrics.json").write_text(json.dumps(record, indent=2))
        np.save(out / "samples.npy", theta.numpy())
    print(f"{args.method} {args.data} seed {args.seed}: test NLL {metrics['test_nll']:.4f}, accuracy "
          f"{metrics['test_acc']:.3f}, {metrics['seconds']:.1f}s, {metrics['grad_evals'] / 1e6:.1f}M gradient evaluations")
    return metrics


if __name__ == "__main__":
    main()
