"""SoftQ with the ``gaussian`` sampler and ``sampler_loss_tau`` takes SB3's SAC gradient steps: from the same
weights, replay data and noise, the critics, the target critics, the actor and log τ agree after several steps.

This is what makes the gaussian sampler a control for the U-GAN (benchmarks/results/swimmer_gaussian.md): what is
left between it and SB3's SAC is the order of the random draws, the deterministic evaluation rule and SB3's
ε = 1e-6 in log(1 − tanh² + ε), which this test sets to 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from torch.distributions import Normal

from agents.softq import SoftQ
from softq_ugan.baselines import GaussianRKL, GaussianRKLConfig

# a learning rate of 0.01 moves log τ by about 0.01 a step, so that a loss scaled by 1/τ shows within a few steps
B, HIDDEN, STEPS, LR = 16, [32, 32], 4, 0.01


def _models(sampler_loss_tau: bool):
    common = dict(batch_size=B, learning_starts=0, gamma=0.999, seed=0, buffer_size=1000, learning_rate=LR)
    sac = SAC("MlpPolicy", "Swimmer-v4", policy_kwargs=dict(net_arch=HIDDEN), **common)
    softq = SoftQ("MlpPolicy", "Swimmer-v4", sampler="gaussian", temperature="auto", value_particles=1,
                  proposal="generator", sampler_batch_size=B, sampler_loss_tau=sampler_loss_tau,
                  policy_kwargs=dict(net_arch=HIDDEN, sampler_kwargs=dict(hidden=tuple(HIDDEN), batch_size=1)),
                  **common)
    for model in (sac, softq):
        model.set_logger(configure(None, [""]))
    sac.actor.action_dist.epsilon = 0.0  # SoftQ's tanh log-det is exact
    # SAC's weights into SoftQ: critics as they are (both are SB3 ContinuousCritics), the actor's trunk, μ and
    # log σ heads into the Gaussian's one MLP, whose last layer gives [μ, log σ]
    softq.critic.load_state_dict(sac.critic.state_dict())
    softq.critic_target.load_state_dict(sac.critic_target.state_dict())
    gaussian_net = softq.policy.sampler.net
    actor = sac.actor
    with torch.no_grad():
        for mine, theirs in zip(list(gaussian_net)[:-1:2], list(actor.latent_pi)[::2]):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        gaussian_net[-1].weight.copy_(torch.cat([actor.mu.weight, actor.log_std.weight]))
        gaussian_net[-1].bias.copy_(torch.cat([actor.mu.bias, actor.log_std.bias]))
    assert softq.log_temperature.item() == sac.log_ent_coef.item() == 0.0
    assert softq.target_entropy == sac.target_entropy == -2.0
    # the same transitions in both buffers
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs, next_obs = rng.normal(size=(2, 1, 8)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, 2)).astype(np.float32)
        reward, done = rng.normal(size=1).astype(np.float32), np.array([rng.random() < 0.05])
        for model in (sac, softq):
            model.replay_buffer.add(obs, next_obs, action, reward, done, [{}])
    return sac, softq


def _params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _actor_as_gaussian(actor) -> torch.Tensor:
    """SAC's actor's parameters in the Gaussian MLP's order (its μ and log σ heads stacked into one last layer)."""
    last = [torch.cat([actor.mu.weight, actor.log_std.weight]), torch.cat([actor.mu.bias, actor.log_std.bias])]
    return torch.cat([_params(actor.latent_pi), *(p.detach().flatten() for p in last)])


@pytest.mark.parametrize("sampler_loss_tau", [True, False])
def test_softq_gaussian_takes_sacs_steps(monkeypatch, sampler_loss_tau):
    """With the loss scaled by τ, SAC's steps to float precision; without, the same first step (Adam is invariant to
    a constant scale) and an actor that drifts from SAC's as τ moves."""
    sac, softq = _models(sampler_loss_tau)
    before = _params(sac.critic).clone()
    g = torch.Generator().manual_seed(1)
    noise = [(torch.randn(B, 2, generator=g), torch.randn(B, 2, generator=g)) for _ in range(STEPS)]  # (s, s')

    # SAC draws the actor's noise at s first, then at s' for the target; SoftQ draws at s' (its soft value) first
    sac_queue = [eps for pair in noise for eps in pair]
    softq_queue = [eps for pair in noise for eps in reversed(pair)]
    monkeypatch.setattr(Normal, "rsample", lambda self, sample_shape=torch.Size(): self.loc + self.scale * sac_queue.pop(0))
    np.random.seed(2)
    sac.train(gradient_steps=STEPS, batch_size=B)
    assert not sac_queue
    monkeypatch.undo()

    randn = torch.randn

    def queued_randn(*shape, **kwargs):  # the Gaussian sampler's draws (B, 1, 2); any other passes through
        if tuple(shape) == (B, 1, 2):
            return softq_queue.pop(0).unsqueeze(1)
        return randn(*shape, **kwargs)

    monkeypatch.setattr(torch, "randn", queued_randn)
    np.random.seed(2)  # the same minibatches
    softq.train(gradient_steps=STEPS, batch_size=B)
    monkeypatch.undo()
    assert not softq_queue

    assert (_params(sac.critic) - before).abs().max() > 1e-3  # the steps did something
    diffs = {name: (mine - theirs).abs().max().item() for name, mine, theirs in (
        ("critic", _params(softq.critic), _params(sac.critic)),
        ("target critic", _params(softq.critic_target), _params(sac.critic_target)),
        ("actor", _params(softq.policy.sampler.net), _actor_as_gaussian(sac.actor)))}
    assert softq.log_temperature.item() < -0.02  # entropy above −2 at the start: τ fell over the steps
    if sampler_loss_tau:
        assert max(diffs.values()) < 1e-6, diffs
        assert softq.log_temperature.item() == pytest.approx(sac.log_ent_coef.item(), abs=1e-6)
    else:
        assert diffs["actor"] > 1e-5, diffs


def test_reverse_kl_weight_scales_the_loss_and_refuses_nonpositive():
    # two unconditional Gaussians start at the same parameters (μ = 0, log σ = 0); the same noise for both
    plain_trainer, weighted_trainer = (GaussianRKL(GaussianRKLConfig(features=2, batch_size=64)) for _ in range(2))

    def target(x, context=None):
        return -0.5 * (x ** 2).sum(-1)

    torch.manual_seed(1)
    plain = plain_trainer.update(target)["loss"]
    torch.manual_seed(1)
    weighted = weighted_trainer.update(target, weight=0.25)["loss"]
    assert weighted == pytest.approx(0.25 * plain, rel=1e-5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="weight must be"):
            weighted_trainer.update(target, weight=bad)


def test_loss_weight_samplers_are_the_ones_whose_trainer_takes_a_weight():
    """LOSS_WEIGHT_SAMPLERS, which train_rl.py checks --sampler-loss-tau against, names exactly the registry's samplers
    whose trainer takes a loss weight (the check SoftQ itself makes): all but svgd."""
    from agents.policies import LOSS_WEIGHT_SAMPLERS, SAMPLERS, takes_loss_weight

    with_weight = {name for name, build in SAMPLERS.items() if takes_loss_weight(build(2, 3, 1e-3, 100)[1])}
    assert with_weight == set(LOSS_WEIGHT_SAMPLERS) == set(SAMPLERS) - {"svgd"}
