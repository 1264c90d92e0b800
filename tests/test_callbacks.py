"""The SB3 callbacks: a U-GAN sampler trained against a SAC/TD3 critic, and action-density figures."""

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC, TD3
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.callbacks import (
    ActionDensityCallback,
    UGANSamplerCallback,
    action_density_figure,
    critic_q_min,
)
from agents.critics import pessimistic_q

SMALL_UGAN = dict(generator_hidden=(32, 32), critic_hidden=(32, 32), bridge_blocks=2, bridge_hidden=32)
SAC_SMALL = dict(learning_starts=100, batch_size=64, policy_kwargs=dict(net_arch=[64, 64]), seed=0)


@pytest.fixture(scope="module")
def sac_run():
    """A short SAC run on Pendulum-v1 with the sampler callback (τ small: the Boltzmann policy concentrates)."""
    torch.manual_seed(0)
    model = SAC("MlpPolicy", "Pendulum-v1", **SAC_SMALL)
    cb = UGANSamplerCallback(temperature=0.1, num_states=32, train_every=2, ugan_kwargs=SMALL_UGAN)
    model.learn(600, callback=cb)
    # the count of the run itself: other tests here call cb.update() on the shared fixture, and pytest-xdist's
    # worksteal may run them first
    return model, cb, cb.ugan.num_updates


def test_sampler_callback_logs_during_sac(sac_run):
    model, cb, learn_updates = sac_run
    logged = model.logger.name_to_value
    for key in ("sampler/generator_loss", "sampler/critic_loss", "sampler/bridge_nll", "sampler/lambda"):
        assert np.isfinite(logged[key]), key
    assert 240 <= learn_updates <= 251  # every 2nd step once 100 transitions are stored
    assert cb.sampler is cb.ugan.sampler
    assert cb.sampler.context_features == 3 and cb.sampler.features == 1


def test_sampler_beats_uniform_on_frozen_critic(sac_run):
    model, cb, _ = sac_run
    torch.manual_seed(1)
    for _ in range(300):  # the model is frozen: only the sampler trains
        cb.update()
    obs = model.replay_buffer.sample(256).observations
    with torch.no_grad():
        a_sampler = torch.tanh(cb.sampler.sample(16, cb.context(obs)))
        a_uniform = torch.rand_like(a_sampler) * 2 - 1
        q_sampler, q_uniform = cb.q_min(obs, a_sampler).mean(), cb.q_min(obs, a_uniform).mean()
        grid = torch.linspace(-1, 1, 101).expand(256, 101).unsqueeze(-1)
        q_best = cb.q_min(obs, grid).max(dim=1).values.mean()  # the greedy action's Q (d = 1)
    assert q_sampler > q_uniform, (q_sampler, q_uniform)
    # τ = 0.1: the Boltzmann policy sits near the greedy action; measured 0.7-0.8 of the gap on 4 seeds
    assert (q_sampler - q_uniform) > 0.5 * (q_best - q_uniform), (q_sampler, q_uniform, q_best)


def test_critic_unchanged_by_sampler_update(sac_run):
    model, cb, _ = sac_run
    before = [p.detach().clone() for p in model.critic.parameters()]
    grads = [p.grad for p in model.critic.parameters()]
    flags = [p.requires_grad for p in model.critic.parameters()]
    gen_before = [p.detach().clone() for p in cb.sampler.generator.parameters()]
    cb.update()
    for p, b, g, f in zip(model.critic.parameters(), before, grads, flags):
        assert torch.equal(p, b)
        assert p.grad is g or torch.equal(p.grad, g)  # no gradient accumulated into the critic
        assert p.requires_grad == f
    assert any(not torch.equal(p, b) for p, b in zip(cb.sampler.generator.parameters(), gen_before))


def test_sample_actions_in_env_scale_and_save_load(sac_run, tmp_path):
    model, cb, _ = sac_run
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    actions = cb.sample_actions(obs, 7)
    assert actions.shape == (5, 7, 1)
    assert np.all(np.abs(actions) <= 2.0)  # Pendulum's torque range is [-2, 2]
    assert cb.sample_actions(torch.as_tensor(obs), 3).shape == (5, 3, 1)
    assert cb.sample_actions(obs[0], 4).shape == (1, 4, 1)

    path = tmp_path / "sampler.pt"
    cb.save(path)
    other = UGANSamplerCallback(temperature=0.1, ugan_kwargs=SMALL_UGAN)
    other.load(path)  # before the model is known: applied when the sampler is built
    other.init_callback(model)
    for a, b in zip(cb.sampler.state_dict().values(), other.sampler.state_dict().values()):
        assert torch.equal(a, b)


def test_sampler_callback_with_td3():
    model = TD3("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32,
                policy_kwargs=dict(net_arch=[32, 32], n_critics=1), seed=0)
    cb = UGANSamplerCallback(num_states=16, ugan_kwargs=SMALL_UGAN)
    model.learn(100, callback=cb)
    assert np.isfinite(model.logger.name_to_value["sampler/generator_loss"])
    assert cb.ugan.num_updates > 0


def test_critic_q_min_shapes():
    q1, q2 = torch.tensor([[1.0], [5.0]]), torch.tensor([[2.0], [3.0]])
    assert torch.equal(critic_q_min((q1, q2)), torch.tensor([1.0, 3.0]))
    assert torch.equal(critic_q_min((q1,)), torch.tensor([1.0, 5.0]))
    quantiles = torch.tensor([[[0.0, 2.0], [3.0, 3.0]]])  # TQC: (N, n_critics, n_quantiles)
    assert torch.equal(critic_q_min(quantiles), torch.tensor([1.0]))


def test_pessimistic_q_closed_forms():
    """mean − c·std over critics: two critics at c = 1 give their minimum, c = 0 their mean, c = 2 the minimum less
    half the gap; three critics 1, 2, 6 (mean 3, population std √(14/3)) at c = 1."""
    q1, q2 = torch.tensor([[1.0], [5.0]]), torch.tensor([[2.0], [3.0]])
    assert torch.allclose(critic_q_min((q1, q2), pessimism=1.0), torch.tensor([1.0, 3.0]))
    assert torch.allclose(critic_q_min((q1, q2), pessimism=0.0), torch.tensor([1.5, 4.0]))
    assert torch.allclose(critic_q_min((q1, q2), pessimism=2.0), torch.tensor([0.5, 2.0]))
    three = torch.tensor([[1.0, 2.0, 6.0]])
    assert torch.allclose(pessimistic_q(three, 1.0), torch.tensor([3.0 - (14 / 3) ** 0.5]))
    assert torch.equal(pessimistic_q(three), torch.tensor([1.0]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="temperature"):
        UGANSamplerCallback(temperature=0.0)
    with pytest.raises(ValueError, match="num_particles"):
        UGANSamplerCallback(num_particles=0)
    with pytest.raises(ValueError, match="shape"):
        action_density_figure(np.zeros((3, 2)))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_action_density_figure(d):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 50, d))
    fig = action_density_figure(actions, titles=["a", "b", "c"])
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    fig.canvas.draw()


def test_action_density_callback_writes_tensorboard_image(tmp_path):
    import envs  # noqa: F401  (registers MultiGoal-v0)

    model = SAC("MlpPolicy", "MultiGoal-v0", learning_starts=30, batch_size=32,
                policy_kwargs=dict(net_arch=[32, 32]), tensorboard_log=str(tmp_path), seed=0)
    states = np.array([[0.0, 0.0], [2.5, 0.0]], dtype=np.float32)

    def sample_fn(obs, k):  # stochastic SAC actions, (S, k, d) in [-1, 1]
        return model.actor(obs.repeat_interleave(k, 0)).reshape(len(states), k, -1)

    cb = ActionDensityCallback(states, sample_fn=sample_fn, num_samples=100, log_every=45)
    model.learn(60, callback=cb, log_interval=1, tb_log_name="density")  # episodes of 30 steps: dumps at 30, 60

    files = list(tmp_path.rglob("events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(str(files[0].parent), size_guidance={"images": 0})
    acc.Reload()
    assert "policy/action_density" in acc.Tags()["images"]
    image = acc.Images("policy/action_density")[0]
    assert image.width > 0 and image.height > 0


def test_action_density_default_sample_fn_is_softq_policy():
    import envs  # noqa: F401

    from agents import SoftQ

    model = SoftQ("MlpPolicy", "MultiGoal-v0", policy_kwargs=dict(net_arch=[32, 32]), seed=0)
    cb = ActionDensityCallback(np.zeros((2, 2), dtype=np.float32), num_samples=20)
    cb.init_callback(model)
    actions = cb.sample()
    assert actions.shape == (2, 20, 2)
    assert np.all(np.abs(actions) <= 1.0)


def test_eval_recorder_keeps_the_step_grid_after_a_resume(tmp_path):
    """A run resumed off the grid (here at 150 with evals every 100) evaluates at 200 and 300, as an uninterrupted
    run would, not 100 steps after the resume; evals.json keeps the earlier record."""
    import json

    import gymnasium as gym

    from agents.callbacks import EvalRecorder

    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=1000, policy_kwargs=dict(net_arch=[8]), seed=0)

    def recorder(resume_step=None):
        return EvalRecorder(gym.make("Pendulum-v1"), tmp_path, "sac", 0, eval_freq=100, n_eval_episodes=1,
                            checkpoint=False, resume_step=resume_step)

    model.learn(150, callback=recorder())
    model.learn(150, callback=recorder(resume_step=150), reset_num_timesteps=False)
    steps = [step for step, _ in json.loads((tmp_path / "evals.json").read_text())["evals"]]
    assert steps == [100, 200, 300]


def test_grid_checkpoint_keeps_the_step_grid_after_a_resume(tmp_path):
    """Periodic checkpoints of a run resumed off the grid (at 150, saving every 100) land at 200 and 300, not at 250;
    SB3's own CheckpointCallback counts from each learn() call."""
    from agents.callbacks import GridCheckpoint

    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=1000, policy_kwargs=dict(net_arch=[8]), seed=0)
    model.learn(150, callback=GridCheckpoint(100, str(tmp_path), name_prefix="run"))
    model.learn(150, callback=GridCheckpoint(100, str(tmp_path), name_prefix="run"), reset_num_timesteps=False)
    saved = sorted(int(p.stem.split("_")[1]) for p in tmp_path.glob("run_*_steps.zip"))
    assert saved == [100, 200, 300]


def test_eval_recorder_counts_the_seconds_up_to_an_interrupt_on_resume(tmp_path):
    """A run paused at 150 (evals every 100) and resumed from there starts its training seconds from the pause,
    not from the 100-step evaluation, so the steps in between are not counted without their seconds."""
    import json

    import gymnasium as gym

    from agents.callbacks import EvalRecorder

    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=1000, policy_kwargs=dict(net_arch=[8]), seed=0)

    def recorder(resume_step=None):
        return EvalRecorder(gym.make("Pendulum-v1"), tmp_path, "sac", 0, eval_freq=100, n_eval_episodes=1,
                            checkpoint=False, resume_step=resume_step)

    first = recorder()
    model.learn(150, callback=first)
    first.pause()
    saved = json.loads((tmp_path / "evals.json").read_text())
    step, seconds = saved["paused_at"]
    assert step == 150 and seconds > saved["wall"][-1] > 0.0
    assert recorder(resume_step=150).record["seconds"] == seconds
    assert recorder(resume_step=120).record["seconds"] == saved["wall"][-1]  # a checkpoint from elsewhere


def test_eval_recorder_of_a_fork_records_the_step_it_started_at(tmp_path):
    """A run resumed into a new folder (no evals.json there) records ``start``, kept when that fork is resumed in
    turn, so its seconds can be set against its own steps; a run from scratch has none."""
    import json

    import gymnasium as gym

    from agents.callbacks import EvalRecorder

    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=1000, policy_kwargs=dict(net_arch=[8]), seed=0)

    def recorder(folder, resume_step=None):
        return EvalRecorder(gym.make("Pendulum-v1"), tmp_path / folder, "sac", 0, eval_freq=100, n_eval_episodes=1,
                            checkpoint=False, resume_step=resume_step)

    model.learn(100, callback=recorder("source"))
    assert "start" not in json.loads((tmp_path / "source" / "evals.json").read_text())
    model.learn(100, callback=recorder("fork", resume_step=100), reset_num_timesteps=False)
    fork = json.loads((tmp_path / "fork" / "evals.json").read_text())
    assert fork["start"] == 100 and [t for t, _ in fork["evals"]] == [200] and fork["steps"] == 200
    model.learn(100, callback=recorder("fork", resume_step=200), reset_num_timesteps=False)
    fork = json.loads((tmp_path / "fork" / "evals.json").read_text())
    assert fork["start"] == 100 and [t for t, _ in fork["evals"]] == [200, 300]
