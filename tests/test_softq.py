"""SB3's set for SoftQ: short runs, save/load, seeding, callbacks, learning a tiny task."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from agents import SoftQ
from softq_ugan.metrics import ess

SMALL = dict(learning_starts=50, batch_size=32, value_particles=8, policy_kwargs=dict(net_arch=[32, 32]))


@pytest.mark.parametrize("sampler, proposal", [("ugan", "uniform"), ("ugan", "bridge"), ("svgd", "uniform"),
                                              ("ugan-nocritic", "uniform"), ("maf", "bridge"),
                                              ("ugan-oneway", "generator"), ("maf", "generator"),
                                              ("ugan", "generator"), ("gaussian", "generator")])
def test_short_run_on_swimmer(sampler, proposal):
    model = SoftQ("MlpPolicy", "Swimmer-v4", sampler=sampler, proposal=proposal, seed=0, **SMALL)
    model.learn(120)
    logged = model.logger.name_to_value
    keys = ["train/q_loss", "train/soft_value", "train/is_ess"]
    keys += {"ugan": ["sampler/generator_loss", "sampler/critic_loss", "sampler/bridge_nll", "sampler/lambda"],
             "ugan-nocritic": ["sampler/generator_loss", "sampler/bridge_nll", "sampler/entropy"],
             "ugan-oneway": ["sampler/generator_loss", "sampler/entropy", "sampler/entropy_critic_bridge"],
             "maf": ["sampler/loss", "sampler/entropy", "sampler/lambda"],
             "gaussian": ["sampler/loss", "sampler/entropy", "sampler/kl_estimate"],
             "svgd": ["sampler/generator_loss"]}[sampler]
    assert ("sampler/critic_loss" in logged) == (sampler in ("ugan", "ugan-oneway"))
    for key in keys:
        assert np.isfinite(logged[key]), key
    assert 0 < logged["train/is_ess"] <= 1
    action, _ = model.predict(model.env.observation_space.sample())
    assert model.action_space.contains(action[0] if action.ndim > 1 else action)


def test_vec_env_and_sb3_callbacks(tmp_path):
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = SoftQ("MlpPolicy", env, seed=0, **SMALL)
    eval_cb = EvalCallback(gym.make("Pendulum-v1"), eval_freq=50, n_eval_episodes=1, log_path=str(tmp_path))
    ckpt_cb = CheckpointCallback(50, str(tmp_path / "ckpt"), name_prefix="sq", save_replay_buffer=True)
    model.learn(200, callback=CallbackList([eval_cb, ckpt_cb]))
    assert eval_cb.evaluations_results and np.isfinite(eval_cb.last_mean_reward)
    assert list((tmp_path / "ckpt").glob("sq_*_steps.zip"))
    assert list((tmp_path / "ckpt").glob("sq_replay_buffer_*_steps.pkl"))


def test_save_load_gives_equal_predictions(tmp_path):
    model = SoftQ("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.learn(150)
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "m.zip")
    loaded = SoftQ.load(tmp_path / "m.zip")
    after, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)
    assert loaded._n_updates == model._n_updates and loaded.reward_scale == model.reward_scale
    for name in ("generator_optimizer", "critic_optimizer", "bridge_optimizer"):  # optimizer state round-trips
        a = getattr(model.policy.sampler_trainer, name).state_dict()["state"]
        b = getattr(loaded.policy.sampler_trainer, name).state_dict()["state"]
        assert a.keys() == b.keys() and all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)
    stoch, _ = loaded.predict(obs, deterministic=False)
    assert stoch.shape == before.shape
    assert loaded.critic.optimizer.defaults["fused"] and loaded.critic.optimizer.state_dict()["state"]  # fused Adam


def test_critic_optimizer_is_fused_adam_unless_the_user_says_otherwise():
    assert SoftQ("MlpPolicy", "Pendulum-v1", **SMALL).critic.optimizer.defaults["fused"]
    small = {k: v for k, v in SMALL.items() if k != "policy_kwargs"}
    mine = SoftQ("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(optimizer_kwargs=dict(foreach=True)), **small)
    assert mine.critic.optimizer.defaults["foreach"] and not mine.critic.optimizer.defaults["fused"]
    rms = SoftQ("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(optimizer_class=torch.optim.RMSprop), **small)
    assert isinstance(rms.critic.optimizer, torch.optim.RMSprop)


def test_maf_policy_save_load_and_deterministic_best_of_k(tmp_path):
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="maf", seed=0, **SMALL)
    model.learn(120)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    before, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(before, model.predict(obs, deterministic=True)[0])  # a function of s
    with torch.no_grad():  # the deterministic action is the best-Q of the flow's fixed-noise candidates
        p = model.policy
        obs_t = torch.as_tensor(obs)
        cands = torch.tanh(p.sampler.from_noise(p.eval_noise.expand(8, -1, -1), p.context(obs_t)))
        best = cands[torch.arange(8), p.q_min(obs_t, cands).argmax(1)]
    np.testing.assert_allclose(before, 2 * best.numpy(), atol=1e-5)  # Pendulum's action box is [-2, 2]
    model.save(tmp_path / "m.zip")
    after, _ = SoftQ.load(tmp_path / "m.zip").predict(obs, deterministic=True)
    np.testing.assert_allclose(before, after, rtol=0, atol=1e-6)


def test_same_seed_gives_same_actions():
    def run():
        model = SoftQ("MlpPolicy", "Pendulum-v1", seed=3, **SMALL)
        model.learn(100)
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=0)
        return np.concatenate([model.predict(obs, deterministic=d)[0] for d in (True, False, False)])

    np.testing.assert_array_equal(run(), run())


@pytest.mark.parametrize("delay", [1, 3])
def test_policy_delay_updates_the_sampler_every_nth_q_update(delay):
    model = SoftQ("MlpPolicy", "Pendulum-v1", seed=0, policy_delay=delay, **SMALL)
    trainer, clocks = model.sampler_trainer, []
    update = trainer.update

    def counted(*args, **kwargs):
        clocks.append(trainer.num_updates)
        return update(*args, **kwargs)

    trainer.update = counted
    model.learn(110)  # Q updates at env steps 51..110 (learning_starts=50)
    assert model._n_updates == 60
    assert clocks == list(range(delay - 1, 60, delay))  # the annealing clock counts Q updates
    with pytest.raises(ValueError, match="policy_delay must be >= 1"):
        SoftQ("MlpPolicy", "Pendulum-v1", policy_delay=0)


@pytest.mark.parametrize("steps, delay", [(2, 1), (3, 2)])
def test_sampler_steps_take_that_many_sampler_and_temperature_steps_per_sampler_update(steps, delay):
    model = SoftQ("MlpPolicy", "Pendulum-v1", seed=0, sampler_steps=steps, policy_delay=delay, temperature="auto",
                  sampler="maf", **SMALL)
    trainer, contexts = model.sampler_trainer, []
    update, step_q = trainer.update, model.critic.optimizer.step
    q_steps, tau_steps = [], []

    def recorded(log_prob, context):
        contexts.append(context.clone())
        return update(log_prob, context)

    trainer.update = recorded
    model.critic.optimizer.step = lambda *a, **k: (q_steps.append(1), step_q(*a, **k))[1]
    step_tau = model.temperature_optimizer.step
    model.temperature_optimizer.step = lambda *a, **k: (tau_steps.append(1), step_tau(*a, **k))[1]
    model.learn(62)  # 12 Q updates after learning_starts=50
    n_sampler = 12 // delay * steps
    assert len(q_steps) == 12 and len(contexts) == n_sampler
    assert len(tau_steps) == n_sampler + (12 - 12 // delay)  # a delayed Q step still steps τ once
    for first, extra in zip(contexts[::steps], contexts[1::steps]):  # a further step takes a fresh minibatch's states
        assert first.shape == extra.shape and not torch.equal(first, extra)
    with pytest.raises(ValueError, match="sampler_steps must be >= 1"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler_steps=0)


@pytest.mark.parametrize("sampler_batch_size, states", [(16, 16), (64, 32)])  # SMALL's minibatch is 32
def test_sampler_update_takes_its_states_from_the_q_minibatch(sampler_batch_size, states):
    model = SoftQ("MlpPolicy", "Pendulum-v1", seed=0, sampler_batch_size=sampler_batch_size, **SMALL)
    trainer, contexts = model.sampler_trainer, []
    update = trainer.update

    def recorded(log_prob, context):
        contexts.append(tuple(context.shape))
        return update(log_prob, context)

    trainer.update = recorded
    model.learn(60)  # 10 Q updates after learning_starts=50
    assert contexts == [(states, 3)] * 10  # Pendulum's 3-D observation as each state's context
    with pytest.raises(ValueError, match="sampler_batch_size must be >= 1"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler_batch_size=0)


@pytest.mark.parametrize("sampler", ["ugan", "maf", "ugan-oneway", "gaussian"])  # the update's own log-densities (ugan: log ν + D)
@pytest.mark.parametrize("target, direction", [(-5.0, -1), (5.0, +1)])
def test_learned_temperature_moves_toward_the_target_entropy(target, direction, sampler):
    """SAC's rule: τ falls while the policy's entropy exceeds the target and rises while it falls short.

    Pendulum's 1-D actions lie in (-1, 1), whose entropy is at most log 2: the target 5 is always above it,
    −5 far below a fresh sampler's."""
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler=sampler, temperature="auto_0.5", target_entropy=target, seed=0,
                  **SMALL)
    model.learn(150)
    logged = model.logger.name_to_value
    assert model.log_temperature is not None and np.isfinite(logged["train/entropy"])
    if sampler != "ugan":  # an exact density respects the action box; the U-GAN's log ν + D is an estimate whose
        # critic needs more than 150 steps to correct log ν at the generator's samples (it reads ~1.8 > log 2 here)
        assert logged["train/entropy"] <= np.log(2) + 0.05
    tau = model.log_temperature.exp().item()
    assert np.sign(tau - 0.5) == direction and model.policy.temperature == pytest.approx(tau)
    assert abs(np.log(tau / 0.5)) > 0.01  # 100 Adam steps of lr 3e-4 move log τ by ~0.03


@pytest.mark.parametrize("sampler", ["maf", "ugan-oneway", "ugan", "gaussian"])
def test_sampler_update_reports_the_policy_log_density_of_its_samples(sampler):
    """A sampler with its own density (the U-GAN's: log ν + D) gives E log π(a|s) from its update's samples (the
    temperature reuses it, as SAC reuses its actor step's log π): it matches a fresh Monte Carlo estimate."""
    # the U-GAN's step moves its critic D before the generator's samples are scored: hold D still (lr 0) so that
    # the fresh estimate and the step's one use the same D
    kwargs = dict(batch_size=512, **({"lr_critic": 0.0} if sampler == "ugan" else {}))
    model = SoftQ("MlpPolicy", "Swimmer-v4", sampler=sampler, temperature="auto", seed=0,
                  policy_kwargs=dict(net_arch=[32, 32], sampler_kwargs=kwargs))
    torch.manual_seed(0)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    with torch.no_grad():
        fresh = model.policy_log_prob(obs, num_samples=4096).mean().item()
        spread = model.policy_log_prob(obs, num_samples=512).std().item()
    _, reused = model._update_sampler(obs)
    assert reused is not None and abs(reused - fresh) < 4 * spread / np.sqrt(8 * 512)


def test_learned_temperature_stops_on_an_infinite_log_density():
    """A folded one-way generator has log|det J| = −inf somewhere: the temperature step names it, not a NaN later."""
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="ugan-oneway", temperature="auto", seed=0, **SMALL)
    obs = torch.zeros(4, 3)
    with pytest.raises(FloatingPointError, match="log-density is inf"):
        model._update_temperature(obs, mean_log_pi=float("inf"))
    assert np.isfinite(model.log_temperature.item())


def _temperature_moved(spike: float | None, clip: float | None) -> tuple[float, SoftQ]:
    """log τ's movement over 1000 steps whose entropy is 1 nat short of the target, after 1000 such steps and, between
    them, one step whose E log π is ``spike``."""
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="maf", temperature="auto_0.5", target_entropy=-1.0, seed=0,
                  temperature_grad_clip=clip, **SMALL)
    obs = torch.zeros(2, 3)
    for _ in range(1000):
        model._update_temperature(obs, 2.0)  # gradient −(2 − 1) = −1: τ rises
    if spike is not None:
        model._update_temperature(obs, spike)
    start = model.log_temperature.item()
    for _ in range(1000):
        model._update_temperature(obs, 2.0)
    return model.log_temperature.item() - start, model


def test_learned_temperature_keeps_moving_after_a_log_density_spike():
    """One E log π of 1e10 (an unbounded log ν or tanh correction far out) fills Adam's second moment so that τ stops
    moving for tens of thousands of steps (seed 60 in swimmer_tuning.md, session 50); the bound on the gradient
    (50 per action dimension, above anything SB3's SAC can give) keeps the spike's sign, not its size."""
    normal, plain = _temperature_moved(None, 50.0)
    assert normal > 0.2 and plain.temperature_clipped == 0 and plain.temperature_grad_max == pytest.approx(1.0)
    bounded, model = _temperature_moved(1e10, 50.0)
    assert bounded > 0.5 * normal  # Adam's second moment holds 50², not 1e20
    assert model.temperature_clipped == 1 and model.temperature_grad_max == pytest.approx(1e10)
    unbounded, _ = _temperature_moved(1e10, None)
    assert unbounded < 0.05 * normal  # the freeze the bound prevents
    model.learn(60)
    logged = model.logger.name_to_value
    assert logged["train/temperature_clipped"] == 1 and logged["train/temperature_grad_max"] == pytest.approx(1e10)
    with pytest.raises(ValueError, match="temperature_grad_clip must be a finite number > 0 or None"):
        SoftQ("MlpPolicy", "Pendulum-v1", temperature="auto", temperature_grad_clip=0.0)


def test_learned_temperature_step_is_autograds():
    """The τ step sets ∂/∂log τ of −log τ·(E log π + H̄) directly: the same Adam step, to the bit, as backward gives."""
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="maf", temperature="auto_0.3", target_entropy=-1.0, seed=0,
                  **SMALL)
    log_tau = model.log_temperature.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([log_tau], lr=model.lr_schedule(1))
    for mean_log_pi in (0.7, -2.3, 0.123456789):
        model._update_temperature(torch.zeros(2, 3), mean_log_pi)
        optimizer.zero_grad()
        (-log_tau * (mean_log_pi - 1.0)).sum().backward()
        optimizer.step()
        assert torch.equal(model.log_temperature.detach(), log_tau.detach())
    assert model.policy.temperature == pytest.approx(log_tau.exp().item()) and log_tau.item() != pytest.approx(np.log(0.3))


def test_learned_temperature_survives_save_load(tmp_path):
    model = SoftQ("MlpPolicy", "Pendulum-v1", sampler="maf", temperature="auto", seed=0, **SMALL)
    model.learn(100)
    model.save(tmp_path / "m.zip")
    loaded = SoftQ.load(tmp_path / "m.zip")
    assert loaded.log_temperature.item() == model.log_temperature.item() != 0.0
    assert loaded.policy.temperature == pytest.approx(model.policy.temperature) != 1.0  # before any training
    assert loaded.target_entropy == model.target_entropy == -1.0  # SAC's −dim(A)
    state = loaded.temperature_optimizer.state_dict()["state"]
    assert state and torch.equal(state[0]["exp_avg"], model.temperature_optimizer.state_dict()["state"][0]["exp_avg"])
    loaded.set_env(model.get_env())
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.policy.temperature == pytest.approx(loaded.log_temperature.exp().item())


def test_bad_arguments_raise():
    for bad in ("autox", "auto_-1", -1.0, 0, "hot"):
        with pytest.raises(ValueError, match="temperature must be a positive number, 'auto'"):
            SoftQ("MlpPolicy", "Pendulum-v1", temperature=bad)
    with pytest.raises(ValueError, match="temperature 'auto' needs a sampler with a density"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler="svgd", temperature="auto")
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler="nope")
    with pytest.raises(ValueError, match="unknown proposal"):
        SoftQ("MlpPolicy", "Pendulum-v1", proposal="gauss")
    with pytest.raises(ValueError, match="needs a sampler with a MAF bridge"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler="svgd", proposal="bridge")
    with pytest.raises(ValueError, match="needs a sampler with a density"):
        SoftQ("MlpPolicy", "Pendulum-v1", sampler="svgd", proposal="generator")
    with pytest.raises(ValueError, match="value_qmc applies to the uniform and bridge proposals, not generator"):
        SoftQ("MlpPolicy", "Pendulum-v1", proposal="generator", value_qmc=True)
    with pytest.raises(AssertionError):  # SB3's own check of the action space
        SoftQ("MlpPolicy", "CartPole-v1")


def test_nan_reward_stops_training_with_clear_error():
    class NaNReward(gym.Wrapper):
        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            return obs, float("nan"), term, trunc, info

    model = SoftQ("MlpPolicy", NaNReward(gym.make("Pendulum-v1")), **SMALL)
    with pytest.raises(FloatingPointError, match="Q loss is nan"):
        model.learn(100)


@pytest.mark.slow
def test_learns_multigoal_with_several_goals():
    """SQL's four-goal task: a multimodal policy reaches goals, and more than one of them (SPEC §5)."""
    import envs  # noqa: F401  (registers MultiGoal-v0)

    model = SoftQ("MlpPolicy", "MultiGoal-v0", seed=1, learning_starts=1000, gamma=0.99, reward_scale=0.1)
    model.learn(12_000)
    env = gym.make("MultiGoal-v0")
    goals = []
    for episode in range(100):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        goals.append(info["goal"])
    goals = np.array(goals)
    assert (goals >= 0).mean() >= 0.9, np.bincount(goals + 1)
    assert len(set(goals[goals >= 0])) >= 3, np.bincount(goals + 1)


def test_target_critic_update_is_sb3s_polyak_update():
    """SoftQ's one-op Polyak step gives SB3's polyak_update, on critics whose parameters are views of FlatAdam's buffer."""
    import copy

    from stable_baselines3.common.utils import polyak_update

    model = SoftQ("MlpPolicy", "Pendulum-v1", seed=0, tau=0.05, **SMALL)
    with torch.no_grad():
        for p in model.critic.parameters():
            p.add_(torch.randn_like(p))
    critic, target = copy.deepcopy(model.critic), copy.deepcopy(model.critic_target)
    start = [p.clone() for p in target.parameters()]
    for _ in range(3):
        model._polyak_update()
        polyak_update(critic.parameters(), target.parameters(), 0.05)
    for a, b, b0 in zip(model.critic_target.parameters(), target.parameters(), start):
        assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(b, b0)  # the same step, and a step
    # its parameter lists are kept between calls, but follow the modules when they are replaced
    model.critic, model.critic_target = critic, target
    before = [p.clone() for p in target.parameters()]
    model._polyak_update()
    assert all(not torch.equal(p, p0) for p, p0 in zip(target.parameters(), before))


@pytest.mark.parametrize("proposal", ["uniform", "bridge"])
def test_sobol_value_particles_train_and_survive_save_load(tmp_path, proposal):
    model = SoftQ("MlpPolicy", "Pendulum-v1", proposal=proposal, value_qmc=True, seed=0, **SMALL)
    model.learn(120)
    assert np.isfinite(model.logger.name_to_value["train/soft_value"])
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(64)]))
    with torch.no_grad():
        v_qmc = torch.stack([model.soft_value(obs)[0] for _ in range(50)])
        model.value_qmc = False
        v_mc = torch.stack([model.soft_value(obs)[0] for _ in range(50)])
    # the same estimate on average, with a smaller spread (Q is smooth in a after 70 updates)
    assert (v_qmc.mean(0) - v_mc.mean(0)).abs().median() < 3 * v_mc.std(0).median() / np.sqrt(50)
    assert v_qmc.std(0).median() < v_mc.std(0).median()
    model.value_qmc = True
    model.save(tmp_path / "m")
    assert SoftQ.load(tmp_path / "m").value_qmc is True


def test_fitted_proposal_learns_the_boltzmann_policy_and_survives_save_load(tmp_path):
    """proposal="fitted": a MAF fitted to exp(Q̄/τ) by forward KL on the soft value's own particles; its importance
    weights even out as it trains (ESS from its untrained start past the uniform proposal's)."""
    model = SoftQ("MlpPolicy", "Pendulum-v1", proposal="fitted", temperature=0.1, seed=0, **SMALL)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(256)]))
    model.learn(50)
    with torch.no_grad():
        start = ess(model.soft_value(obs)[1]).mean().item()
    model.learn(650, reset_num_timesteps=False)
    assert np.isfinite(model.logger.name_to_value["train/proposal_loss"])
    with torch.no_grad():
        fitted = ess(model.soft_value(obs)[1]).mean().item()
        uniform = ess(model.soft_value(obs, "uniform")[1]).mean().item()
    assert fitted > start + 0.2 and fitted > uniform, (start, fitted, uniform)
    model.save(tmp_path / "m")
    loaded = SoftQ.load(tmp_path / "m")
    for a, b in zip(model.policy.fitted_flow.parameters(), loaded.policy.fitted_flow.parameters()):
        assert torch.equal(a, b)
    assert loaded.policy.fitted_flow_optimizer.state_dict()["state"]  # Adam's moments came back too
    with pytest.raises(ValueError, match="proposal 'fitted': this model has no such flow"):
        SoftQ("MlpPolicy", "Pendulum-v1", **SMALL).soft_value(obs, "fitted")
