"""U-GAN and reverse-KL MAF and Gaussian samplers against known targets (distances to ground truth)."""

import pytest
import torch

from softq_ugan.baselines import MAFRKL, ConditionalGaussian, GaussianRKL, GaussianRKLConfig, MAFRKLConfig
from softq_ugan.metrics import evaluate_samples
from softq_ugan.targets import make_target
from softq_ugan.ugan import UGAN, UGANConfig

# smaller than the CLI defaults so the suite stays fast on 2 cores; still well inside the goals
FAST = dict(batch_size=128, bridge_blocks=4, bridge_hidden=48, generator_hidden=(64, 64), critic_hidden=(64, 64))


def train(trainer, log_prob, steps, context=None):
    for _ in range(steps):
        stats = trainer.update(log_prob, context)
    return stats


def test_ugan_samples_banana():
    torch.manual_seed(0)
    target = make_target("banana")
    trainer = UGAN(UGANConfig(features=2, total_steps=600, **FAST))
    stats = train(trainer, target.log_prob, 600)  # MMD² 0.0002, -0.0001, 0.0005 on seeds 0-2 at 600 updates
    assert set(stats) >= {"critic_loss", "generator_loss", "bridge_nll", "lambda", "kl_estimate"}
    assert all(isinstance(v, float) for v in stats.values())
    m = evaluate_samples(trainer.sample(2000), target, n_ref=2000, seed=1)
    assert m["mmd2"] <= 0.005, m


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_shared_bridge_step_is_the_bridge_nll_gradient_on_the_generators_samples(weight):
    """shared_bridge_step: UGAN.update's one backward of the generator loss gives the generator its gradient and the
    bridge the gradient of its NLL at the same samples (the loss holds +log ν, VA §3.2), exactly; a loss weight
    (SoftQ's τ) scales the generator's gradient and leaves the bridge's NLL gradient as it is."""
    torch.manual_seed(0)
    config = UGANConfig(features=2, context_features=3, shared_bridge_step=True, bridge_steps=1, critic=False,
                        max_grad_norm=None, **{**FAST, "batch_size": 7})
    trainer, context = UGAN(config), torch.randn(5, 3)
    s = trainer.sampler
    for optimizer in (trainer.generator_optimizer, trainer.bridge_optimizer):
        optimizer.param_groups[0]["lr"] = 0.0  # the step leaves the gradients to compare

    def log_u(x, c):  # a standard normal target
        return -0.5 * x.pow(2).sum(-1)

    torch.manual_seed(1)
    x = s.rsample(7, context)  # the samples update draws (no critic step before it)
    loss = (s.log_prob(x, context) - log_u(x, context)).mean()
    want_g = torch.autograd.grad(weight * loss, list(s.generator.parameters()))
    want_nu = torch.autograd.grad(-s.bridge.log_prob(x.detach(), context).mean(), list(s.bridge.parameters()))
    torch.manual_seed(1)
    stats = trainer.update(log_u, context, weight=weight)  # bridge_steps=1: the shared step is the bridge's only one
    assert stats["generator_loss"] == pytest.approx(weight * loss.item(), rel=1e-5)
    for want, params in ((want_g, s.generator.parameters()), (want_nu, s.bridge.parameters())):
        for w, p in zip(want, params):
            torch.testing.assert_close(p.grad, w)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="U-GAN: weight must be a finite number > 0"):
            trainer.update(log_u, context, weight=bad)


def test_ugan_weight_scales_the_generator_gradient_only():
    """With its critic and separate bridge steps, a weighted U-GAN update gives the generator weight × the gradient
    of the unweighted one and the critic and the bridge the same gradients (two trainers, same start, same noise)."""
    config = UGANConfig(features=2, context_features=3, bridge_steps=1, max_grad_norm=None, **{**FAST, "batch_size": 7})
    context, trainers = torch.randn(5, 3), []
    for _ in range(2):
        torch.manual_seed(0)
        trainers.append(UGAN(config))
        for optimizer in (trainers[-1].generator_optimizer, trainers[-1].critic_optimizer, trainers[-1].bridge_optimizer):
            optimizer.param_groups[0]["lr"] = 0.0  # the steps leave the gradients to compare

    def log_u(x, c):
        return -0.5 * x.pow(2).sum(-1)

    for trainer, weight in zip(trainers, (1.0, 0.3)):
        torch.manual_seed(1)
        trainer.update(log_u, context, weight=weight)
    plain, weighted = (t.sampler for t in trainers)
    assert any(p.grad.abs().max() > 0 for p in plain.generator.parameters())
    for name, scale in (("generator", 0.3), ("critic", 1.0), ("bridge", 1.0)):
        for p, q in zip(getattr(plain, name).parameters(), getattr(weighted, name).parameters()):
            torch.testing.assert_close(q.grad, scale * p.grad)


def test_shared_bridge_step_still_samples_banana():
    torch.manual_seed(0)
    target = make_target("banana")
    trainer = UGAN(UGANConfig(features=2, total_steps=600, shared_bridge_step=True, **FAST))
    train(trainer, target.log_prob, 600)  # MMD² -0.0001, -0.0001, 0.0002 on seeds 0-2 (unshared: 0.0002, -0.0001, 0.0005)
    m = evaluate_samples(trainer.sample(2000), target, n_ref=2000, seed=1)
    assert m["mmd2"] <= 0.005, m


def test_ugan_nma_covers_both_kidney_modes():
    torch.manual_seed(0)
    target = make_target("kidney")
    trainer = UGAN(UGANConfig(features=2, schedule="nma", lambda0=-1.0, total_steps=1200, **FAST))
    train(trainer, target.log_prob, 1200)
    m = evaluate_samples(trainer.sample(2000), target, seed=1)
    assert all(0.3 <= mass <= 0.7 for mass in m["mode_mass"]), m
    # MMD² over seeds 0-2: 0.0022 / 0.0010 / 0.0007 with foreach Adam, 0.0050 / 0.0007 / 0.0012 with fused (same update,
    # other rounding), so 0.005 sat on seed 0's edge; exact samples give 0.0002, one mode only 0.28, samples × 1.5 0.083
    assert m["mmd2"] <= 0.0075, m


def test_ugan_with_context_learns_a_conditional_target():
    """log u(x|c) = log N(x; W c, 0.3² I): K samples per context, means follow the context."""
    torch.manual_seed(0)
    W = torch.tensor([[1.0, 0.0, 0.5], [0.0, -1.0, 0.5]])

    def log_prob(x, c):  # x (B, K, 2), c (B, 3)
        return -0.5 * ((x - (c @ W.T).unsqueeze(1)) / 0.3).pow(2).sum(-1)

    cfg = UGANConfig(features=2, context_features=3, latent_features=2, **{**FAST, "batch_size": 16})
    trainer = UGAN(cfg)
    for _ in range(800):
        trainer.update(log_prob, torch.randn(32, 3))
    c = torch.randn(8, 3)
    x = trainer.sample(500, c)
    assert x.shape == (8, 500, 2)
    assert torch.allclose(x.mean(1), c @ W.T, atol=0.15)
    assert torch.allclose(x.std(1), torch.full((8, 2), 0.3), atol=0.08)


def test_critic_free_variant_and_maf_rkl_baseline_sample_banana():
    torch.manual_seed(1)
    target = make_target("banana")
    nocritic = UGAN(UGANConfig(features=2, critic=False, total_steps=800, **FAST))
    assert nocritic.sampler.critic is None
    stats = train(nocritic, target.log_prob, 800)
    assert "critic_loss" not in stats
    maf = MAFRKL(MAFRKLConfig(features=2, bridge_blocks=4, bridge_hidden=48, batch_size=128, total_steps=600))
    train(maf, target.log_prob, 600)
    for trainer in (nocritic, maf):
        m = evaluate_samples(trainer.sample(2000), target, seed=2)
        assert m["mmd2"] <= 0.01, (type(trainer).__name__, m)


def test_conditional_gaussian_log_prob_is_the_normal_density():
    """log_prob, rsample_and_log_prob and from_noise agree with torch's Normal at μ(c), σ(c) (the closed form)."""
    torch.manual_seed(0)
    g = ConditionalGaussian(2, 3, hidden=(16,))
    c = torch.randn(5, 3)
    mean, log_std = g.mean_and_log_std(c)
    normal = torch.distributions.Normal(mean.unsqueeze(1), log_std.exp().unsqueeze(1))
    x, log_p = g.rsample_and_log_prob(7, c)
    assert x.shape == (5, 7, 2) and log_p.shape == (5, 7)
    torch.testing.assert_close(log_p, normal.log_prob(x).sum(-1))
    torch.testing.assert_close(g.log_prob(x, c), log_p)
    z = torch.randn(5, 7, 2)
    torch.testing.assert_close(g.from_noise(z, c), normal.loc + normal.scale * z)
    free = ConditionalGaussian(2)  # no context: μ = 0, σ = 1 at initialisation
    x, log_p = free.rsample_and_log_prob(6)
    assert x.shape == (6, 2)
    torch.testing.assert_close(log_p, torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1))
    with pytest.raises(ValueError, match=r"context must have shape \(B, 3\)"):
        g.rsample(2, torch.randn(5, 4))
    with pytest.raises(ValueError, match="got no context"):
        g.rsample(2)
    with pytest.raises(ValueError, match="features must be >= 1"):
        GaussianRKLConfig(features=0)


def test_gaussian_rkl_learns_a_conditional_gaussian_target():
    """Reverse KL to log u(x|c) = log N(x; W c, 0.3² I) + const: the Gaussian family holds the target, so the fit's
    means and standard deviations reach it, and the reported entropy is the target's."""
    import math

    torch.manual_seed(0)
    W = torch.tensor([[1.0, 0.0, 0.5], [0.0, -1.0, 0.5]])

    def log_prob(x, c):
        return -0.5 * ((x - (c @ W.T).unsqueeze(1)) / 0.3).pow(2).sum(-1) + 3.0  # an unnormalized target

    trainer = GaussianRKL(GaussianRKLConfig(features=2, context_features=3, hidden=(64, 64), batch_size=8, lr=3e-3))
    for _ in range(800):
        stats = trainer.update(log_prob, torch.randn(64, 3))
    c = torch.randn(8, 3)
    x = trainer.sample(2000, c)
    assert x.shape == (8, 2000, 2)
    assert torch.allclose(x.mean(1), c @ W.T, atol=0.1)
    assert torch.allclose(x.std(1), torch.full((8, 2), 0.3), atol=0.05)
    assert abs(stats["entropy"] - math.log(2 * math.pi * math.e * 0.3**2)) < 0.2, stats


def test_oneway_generator_entropy_matches_a_gaussian_target():
    """UGANConfig(generator="oneway"): samples with a log-density (OW eq. 10); its entropy is the target's."""
    import math

    torch.manual_seed(0)
    sigma = 0.5
    trainer = UGAN(UGANConfig(features=2, generator="oneway", **{**FAST, "batch_size": 64}))
    stats = train(trainer, lambda x, c=None: -0.5 * (x / sigma).pow(2).sum(-1), 300)
    exact = math.log(2 * math.pi * math.e * sigma**2)  # entropy of N(0, σ²I) in 2-D
    assert abs(stats["entropy"] - exact) < 0.15, (stats, exact)
    x, log_g = trainer.sampler.rsample_and_log_prob(4000)
    assert torch.allclose(x.std(0), torch.full((2,), sigma), atol=0.05)
    assert abs(-log_g.mean().item() - exact) < 0.15 and log_g.shape == (4000,)
    with pytest.raises(ValueError, match="only a one-way generator"):
        UGAN(UGANConfig(features=2, **FAST)).sampler.rsample_and_log_prob(4)
    with pytest.raises(ValueError, match="unknown generator 'gan'"):
        UGANConfig(features=2, generator="gan")


def test_gaussian_generator_learns_a_conditional_gaussian_with_both_entropies():
    """UGANConfig(generator="gaussian"): SAC's family as the generator of the critic-free, anchored U-GAN of Swimmer's
    preset. Against log N(x; W c, σ² I) its means follow the context, its σ is the target's, and both its exact
    entropy (``entropy_generator``) and the estimate −E[log ν] that the losses use are the closed form's."""
    import math

    torch.manual_seed(0)
    sigma, W = 0.3, torch.tensor([[1.0, 0.0, 0.5], [0.0, -1.0, 0.5]])

    def log_prob(x, c):  # x (B, K, 2), c (B, 3)
        return -0.5 * ((x - (c @ W.T).unsqueeze(1)) / sigma).pow(2).sum(-1)

    cfg = UGANConfig(features=2, context_features=3, generator="gaussian", critic=False, bridge_anchor=True,
                     **{**FAST, "batch_size": 16})
    trainer = UGAN(cfg)
    for _ in range(600):
        stats = trainer.update(log_prob, torch.randn(32, 3))
    exact = math.log(2 * math.pi * math.e * sigma**2)  # entropy of N(·, σ²I) in 2-D
    assert abs(stats["entropy_generator"] - exact) < 0.15, stats
    assert abs(stats["entropy"] - exact) < 0.3, stats
    c = torch.randn(8, 3)
    x = trainer.sample(500, c)
    assert x.shape == (8, 500, 2) and not trainer.sampler.has_density
    assert torch.allclose(x.mean(1), c @ W.T, atol=0.1)
    assert torch.allclose(x.std(1), torch.full((8, 2), sigma), atol=0.05)
    z = torch.zeros(8, 1, 2)  # zero noise: the anchor is the mean
    assert torch.allclose(trainer.sampler.anchor(c), trainer.sampler.from_noise(z, c)[:, 0])
    with pytest.raises(ValueError, match="gaussian generator's noise"):
        UGANConfig(features=2, generator="gaussian", latent_features=3)


def test_gaussian_generator_entropy_is_read_before_its_step():
    """``entropy_generator`` is −E log g(x) at the step's own samples under the generator that drew them (a Monte
    Carlo estimate of its closed-form entropy Σ log σ(c) + d/2 log 2πe), not under the generator after its step,
    which read 17.8 nats where log σ ≤ 2 allows at most 6.8 on a Swimmer run whose generator jumped."""
    import math

    torch.manual_seed(0)
    cfg = UGANConfig(features=2, context_features=3, generator="gaussian", critic=False, lr_generator=0.5,
                     **{**FAST, "batch_size": 4096})
    trainer = UGAN(cfg)
    c = torch.randn(4, 3)
    with torch.no_grad():
        _, log_std = trainer.sampler.generator.gaussian.mean_and_log_std(c)
    closed = (log_std.sum(-1) + math.log(2 * math.pi * math.e)).mean().item()  # d/2 log 2πe with d = 2
    stats = trainer.update(lambda x, ctx: -0.5 * (x - 40.0).pow(2).sum(-1), c)  # a far target: a big first step
    assert abs(stats["entropy_generator"] - closed) < 0.1, (stats, closed)
    with torch.no_grad():
        after = -trainer.sampler.generator.log_prob(trainer.sample(4096, c), c).mean().item()
    assert abs(after - closed) > 0.5  # the step did move the generator's entropy


def _generator_step(exact_density, bridge_shift):
    """The generator's parameters after one U-GAN step (no critic, fixed seed), with the bridge's first-layer weights
    shifted by ``bridge_shift`` before the step."""
    torch.manual_seed(0)
    trainer = UGAN(UGANConfig(features=2, context_features=3, generator="gaussian", critic=False,
                              exact_density=exact_density, **{**FAST, "batch_size": 16}))
    with torch.no_grad():
        next(trainer.sampler.bridge.parameters()).add_(bridge_shift)
    torch.manual_seed(1)
    trainer.update(lambda x, c: -0.5 * x.pow(2).sum(-1), torch.randn(8, 3))
    return torch.cat([p.detach().flatten() for p in trainer.sampler.generator.parameters()])


def test_exact_density_loss_takes_the_generators_gradient_from_its_own_density():
    """exact_density="loss": the generator's step is SAC's reverse KL on its exact log g, so it does not depend on the
    bridge at all; with the U-GAN's estimate ("none") the same bridge change moves the step."""
    assert torch.equal(_generator_step("loss", 0.0), _generator_step("loss", 0.5))
    assert not torch.allclose(_generator_step("none", 0.0), _generator_step("none", 0.5))


def test_exact_density_downstream_and_loss_learn_a_conditional_gaussian():
    """The two halves of the ablation against log N(x; W c, σ² I): with "loss" the generator fits the target from its
    exact density while the bridge still tracks it (its estimate near the closed-form entropy); with "density" the
    samples' log-density (SoftQ's soft value and temperature) is the generator's exact one, and ``entropy`` reports
    it with the estimate kept beside it."""
    import math

    sigma, W = 0.3, torch.tensor([[1.0, 0.0, 0.5], [0.0, -1.0, 0.5]])
    exact = math.log(2 * math.pi * math.e * sigma**2)

    def log_prob(x, c):
        return -0.5 * ((x - (c @ W.T).unsqueeze(1)) / sigma).pow(2).sum(-1)

    for where in ("loss", "density"):
        torch.manual_seed(0)
        trainer = UGAN(UGANConfig(features=2, context_features=3, generator="gaussian", critic=False,
                                  bridge_anchor=True, exact_density=where, **{**FAST, "batch_size": 16}))
        for _ in range(600):
            stats = trainer.update(log_prob, torch.randn(32, 3))
        c = torch.randn(8, 3)
        x = trainer.sample(500, c)
        assert torch.allclose(x.mean(1), c @ W.T, atol=0.1), where
        assert torch.allclose(x.std(1), torch.full((8, 2), sigma), atol=0.05), where
        assert abs(stats["entropy_generator"] - exact) < 0.15, (where, stats)
        s = trainer.sampler
        y, log_density = s.rsample_and_log_density(64, c)
        if where == "loss":  # the estimate still serves downstream, and the bridge has kept up with the generator
            assert abs(stats["entropy"] - exact) < 0.3, stats
            estimate = s.bridge_log_prob(y, c, s.anchor(c))
            assert torch.allclose(log_density, estimate)
            assert not torch.allclose(log_density, s.generator.log_prob(y, c), atol=1e-3)
        else:
            assert stats["entropy"] == stats["entropy_generator"] and "entropy_critic_bridge" in stats
            assert torch.allclose(log_density, s.generator.log_prob(y, c), atol=1e-5)


def test_exact_density_both_is_the_gaussian_reverse_kl_step():
    """exact_density="both" with no critic: from the same weights and noise, the generator's loss and gradient are
    :class:`GaussianRKL`'s (SAC's actor step with a weight τ), and the step's entropy is its exact one; the bridge
    trains beside it and changes neither. (Gradients agree to float error, not bit for bit: the U-GAN evaluates
    log g at x = μ + σz, where the two paths through μ and σ cancel only up to rounding.)"""
    target = lambda x, c: -0.5 * (x - 1.0).pow(2).sum(-1) + c[:, :1]  # noqa: E731
    ugan = UGAN(UGANConfig(features=2, context_features=3, generator="gaussian", critic=False, exact_density="both",
                           generator_hidden=(32, 32), batch_size=4, max_grad_norm=None))
    rkl = GaussianRKL(GaussianRKLConfig(features=2, context_features=3, hidden=(32, 32), batch_size=4))
    rkl.gaussian.load_state_dict(ugan.sampler.generator.gaussian.state_dict())
    context = torch.randn(6, 3)
    torch.manual_seed(0)
    a = ugan.update(target, context, weight=0.2)
    torch.manual_seed(0)
    b = rkl.update(target, context, weight=0.2)
    assert a["generator_loss"] == pytest.approx(b["loss"], rel=1e-6)
    assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-6) and "entropy_critic_bridge" in a
    for p, q in zip(ugan.sampler.generator.gaussian.parameters(), rkl.gaussian.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-7)
    assert max(p.grad.abs().max().item() for p in rkl.gaussian.parameters()) > 1e-2  # a real step, not zeros


def test_exact_density_config_errors():
    with pytest.raises(ValueError, match="unknown exact_density 'all'"):
        UGANConfig(features=2, generator="gaussian", exact_density="all")
    with pytest.raises(ValueError, match="needs generator='gaussian'"):
        UGANConfig(features=2, exact_density="density")
    with pytest.raises(ValueError, match="set shared_bridge_step=False"):
        UGANConfig(features=2, generator="gaussian", exact_density="loss", shared_bridge_step=True)
    UGANConfig(features=2, generator="gaussian", exact_density="density", shared_bridge_step=True)  # the loss keeps log ν


def test_mlp_generator_density_estimate_matches_a_gaussian_target():
    """The MLP generator's log-density estimate log ν + D (VA §3.2), which the RL agent's soft value and learned τ
    use: at G's samples it matches the target's normalized log-density, and its mean gives the target's entropy."""
    import math

    torch.manual_seed(0)
    sigma = 0.5
    trainer = UGAN(UGANConfig(features=2, **{**FAST, "batch_size": 64}))
    train(trainer, lambda x, c=None: -0.5 * (x / sigma).pow(2).sum(-1), 300)
    x, log_rho = trainer.sampler.rsample_and_log_density(4000)
    exact = -0.5 * (x / sigma).pow(2).sum(-1) - math.log(2 * math.pi * sigma**2)  # log N(x; 0, σ²I)
    assert log_rho.shape == (4000,) and x.shape == (4000, 2)
    assert abs(-log_rho.mean().item() - math.log(2 * math.pi * math.e * sigma**2)) < 0.15
    assert (log_rho - exact).abs().median().item() < 0.2


def test_nan_target_stops_with_a_clear_error():
    trainer = UGAN(UGANConfig(features=2, **FAST))
    with pytest.raises(FloatingPointError, match="generator loss is nan"):
        trainer.update(lambda x, c: torch.full(x.shape[:-1], float("nan")))


def test_bad_config_and_context_raise():
    with pytest.raises(ValueError, match="unknown schedule"):
        UGANConfig(features=2, schedule="cosine")
    with pytest.raises(ValueError, match="bridge_steps"):
        UGANConfig(features=2, bridge_steps=0)
    trainer = UGAN(UGANConfig(features=2, context_features=3, **FAST))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        trainer.update(lambda x, c: -x.pow(2).sum(-1), torch.randn(4, 2))
    with pytest.raises(ValueError, match="unconditional"):
        UGAN(UGANConfig(features=2, **FAST)).sample(3, torch.randn(2, 3))


class _ThinGenerator(torch.nn.Module):
    """G(z; c) = μ(c) + σ z with μ nonlinear in c: a thin law per context whose location moves fast (Swimmer-like)."""

    latent_features = 2

    def __init__(self, sigma):
        super().__init__()
        self.sigma, self.dummy = sigma, torch.nn.Parameter(torch.zeros(()))

    def mu(self, c):
        return torch.stack([2 * torch.sin(2 * c[:, 0]) + c[:, 1], 1.5 * torch.cos(2 * c[:, 2])], -1)

    def forward(self, z, c):
        return self.mu(c).unsqueeze(1) + self.sigma * z + 0 * self.dummy

    def rsample(self, n, c):
        return self(torch.randn(c.shape[0], n, 2), c)


def test_anchored_bridge_is_the_shifted_density_and_leaves_the_generator_alone():
    """UGANConfig(bridge_anchor=True): ν(x|c) = ν₀(x − G(0; c) | c), a density for any G, with no gradient into G."""
    import math

    torch.manual_seed(0)
    s = UGAN(UGANConfig(features=2, context_features=3, bridge_anchor=True, **FAST)).sampler
    c = torch.randn(5, 3)
    m = s.anchor(c)
    assert torch.allclose(m, s.from_noise(torch.zeros(5, 1, 2), c)[:, 0]) and m.shape == (5, 2)
    x = torch.randn(5, 7, 2)
    assert torch.allclose(s.bridge.log_prob(x, c), s.bridge.flow.log_prob(x - m.unsqueeze(1), c))
    torch.manual_seed(3)
    y = s.bridge.rsample(6, c)
    torch.manual_seed(3)
    assert torch.allclose(y - m.unsqueeze(1), s.bridge.flow.rsample(6, c), atol=1e-6)
    # integrates to 1 around the anchor of one context (float64 grid, ±25: the fresh MAF's std is about 5)
    s = s.double()
    c1 = c[:1].double()
    g = torch.linspace(-25, 25, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(1, -1, 2) + s.anchor(c1).unsqueeze(1)
    mass = s.bridge.log_prob(grid, c1).exp().sum().item() * (g[1] - g[0]).item() ** 2
    assert math.isclose(mass, 1.0, abs_tol=0.01), mass
    s.bridge.log_prob(s.sample(4, c1), c1).sum().backward()  # fixed x: G enters only through the anchor
    # the shift is taken without gradient (the trainer's FlatAdam keeps zeroed gradient views, not None)
    assert all(p.grad is None or not p.grad.any() for p in s.generator.parameters())
    assert not set(map(id, s.bridge.parameters())) & set(map(id, s.generator.parameters()))


def test_samples_with_their_anchor_from_one_pass_of_the_generator():
    """rsample_and_anchor: G's samples and G(0; c) from one pass over [z, 0]; the anchor given to the bridge gives
    the log-density the bridge computes on its own, and rsample_and_log_density uses it."""
    torch.manual_seed(1)
    s = UGAN(UGANConfig(features=2, context_features=3, bridge_anchor=True, **FAST)).sampler
    c = torch.randn(5, 3)
    x, m = s.rsample_and_anchor(7, c)
    assert x.shape == (5, 7, 2) and m.shape == (5, 2) and torch.allclose(m, s.anchor(c), atol=1e-6)
    assert x.requires_grad and not m.requires_grad
    assert torch.allclose(s.bridge_log_prob(x, c, m), s.bridge.log_prob(x, c), atol=1e-5)
    assert x.std(dim=1).min() > 0  # fresh noise per sample, not the zero row
    torch.manual_seed(2)
    y, log_rho = s.rsample_and_log_density(4, c)
    assert torch.allclose(log_rho, s.log_prob(y, c), atol=1e-5)
    u = UGAN(UGANConfig(features=2, bridge_anchor=True, **FAST)).sampler
    x0, m0 = u.rsample_and_anchor(3)  # no context: the anchor is (1, d)
    assert x0.shape == (3, 2) and m0.shape == (1, 2) and torch.allclose(m0, u.anchor(), atol=1e-6)
    plain = UGAN(UGANConfig(features=2, context_features=3, **FAST)).sampler
    assert plain.rsample_and_anchor(7, c)[1] is None  # no anchor without an anchored bridge


def test_anchored_bridge_follows_thin_state_dependent_laws():
    """The bridge step alone (MLE, 64 contexts × 4 samples, as in RL) on a generator with thin laws N(μ(c), 0.05² I):
    the cross-entropy −E[log ν] at G's samples exceeds their exact entropy far less with the anchor."""
    import math

    exact = math.log(2 * math.pi * math.e * 0.05**2)
    gaps = {}
    for anchor in (False, True):
        torch.manual_seed(0)
        trainer = UGAN(UGANConfig(features=2, context_features=3, bridge_anchor=anchor, **FAST))
        s = trainer.sampler
        s.generator = _ThinGenerator(0.05)
        for _ in range(1000):
            c = torch.randn(64, 3)
            nll = -s.bridge.log_prob(s.sample(4, c), c).mean()
            trainer.bridge_optimizer.zero_grad()
            nll.backward()
            trainer.bridge_optimizer.step()
        c = torch.randn(512, 3)
        with torch.no_grad():
            gaps[anchor] = -s.bridge.log_prob(s.sample(16, c), c).mean().item() - exact
    assert gaps[True] < 0.3 and gaps[False] > gaps[True] + 0.5, gaps
