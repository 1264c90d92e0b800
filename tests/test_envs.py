"""MultiGoal-v0 against hand-computed dynamics and rewards; make_env's env checks and one-line errors."""

import gymnasium
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import envs  # noqa: E402  (registers MultiGoal-v0)
from envs import GOALS, MultiGoalEnv, check_env_id, goal_reached, make_env, plot_paths  # noqa: E402

UNIT = {0: (1.0, 0.0), 1: (-1.0, 0.0), 2: (0.0, 1.0), 3: (0.0, -1.0)}


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(MultiGoalEnv(), skip_render_check=True)
    check_env(MultiGoalEnv(dynamics_noise=0.1, init_sigma=0.1), skip_render_check=True)


def test_sb3_env_checker():
    from stable_baselines3.common.env_checker import check_env

    check_env(MultiGoalEnv(), warn=True)


def test_reset_starts_at_origin():
    env = MultiGoalEnv()
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (2,)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert info["goal"] == -1


def test_first_step_reward_by_hand():
    env = MultiGoalEnv()
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(obs, [1.0, 0.0])
    np.testing.assert_allclose(info["pos"], [1.0, 0.0])
    assert reward == pytest.approx(-30.0 * 1.0 - 4.0)  # actuation 30‖a‖², distance to (5,0) is 4
    assert not terminated and not truncated and info["goal"] == -1


def test_action_is_clipped_before_move_and_cost():
    env = MultiGoalEnv()
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([3.0, 0.0]))
    np.testing.assert_allclose(obs, [1.0, 0.0])
    assert reward == pytest.approx(-34.0)
    obs, reward, *_ = env.step(np.array([0.5, -2.0]))  # clipped to (0.5, -1) → (1.5, -1)
    np.testing.assert_allclose(obs, [1.5, -1.0])
    expected = -30.0 * (0.25 + 1.0) - np.hypot(3.5, 1.0)  # nearest goal (5, 0), not (0, -5) at 4.27
    assert reward == pytest.approx(expected)


def test_five_unit_steps_reach_goal_zero():
    env = MultiGoalEnv()
    env.reset(seed=0)
    for t in range(4):  # (4, 0) is exactly goal_threshold away: not reached (strict <)
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0]))
        assert not terminated and info["goal"] == -1
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
    np.testing.assert_allclose(obs, GOALS[0])
    assert terminated and not truncated and info["goal"] == 0
    assert reward == pytest.approx(-30.0 - 0.0 + 10.0)


@pytest.mark.parametrize("goal", range(4))
def test_each_goal_reached_by_straight_path(goal):
    env = gymnasium.make("MultiGoal-v0")
    env.reset(seed=0)
    action = np.array(UNIT[goal], dtype=np.float32)
    for t in range(5):
        obs, reward, terminated, truncated, info = env.step(action)
        assert terminated == (t == 4) and not truncated
    assert info["goal"] == goal
    np.testing.assert_allclose(obs, GOALS[goal])
    assert reward == pytest.approx(-30.0 + 10.0)
    env.close()


def test_positions_stay_in_box():
    env = MultiGoalEnv(dynamics_noise=0.3)
    env.reset(seed=1)
    action = np.array([1.0, 1.0])  # the diagonal passes between goals and never terminates
    for _ in range(20):
        obs, _, terminated, _, info = env.step(action)
        assert np.all(np.abs(obs) <= 7.0) and np.all(np.abs(info["pos"]) <= 7.0)
    assert not terminated
    np.testing.assert_allclose(info["pos"], [7.0, 7.0], atol=2.0)  # noise may pull it off the corner
    rng = np.random.default_rng(0)
    env.reset(seed=2)
    for _ in range(200):
        obs, *_ = env.step(rng.uniform(-3, 3, size=2))
        assert env.observation_space.contains(obs)


def test_time_limit_truncates_through_registry():
    env = gymnasium.make("MultiGoal-v0")
    env.reset(seed=0)
    for t in range(30):
        obs, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated
        assert truncated == (t == 29)
        assert reward == pytest.approx(-5.0)  # at the origin every goal is 5 away
    env.close()


def test_goal_reached_helper():
    assert GOALS.shape == (4, 2)
    for i, g in enumerate(GOALS):
        assert goal_reached(g) == i
        assert goal_reached(g + [0.6, 0.6]) == i  # distance 0.85 < 1
    assert goal_reached(np.zeros(2)) == -1
    assert goal_reached([3.0, 3.0]) == -1


def test_dynamics_noise_is_seeded():
    def rollout(seed):
        env = MultiGoalEnv(dynamics_noise=0.1)
        env.reset(seed=seed)
        return np.array([env.step(np.array([0.3, 0.2]))[0] for _ in range(5)])

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.allclose(rollout(3), rollout(4))


def test_plot_paths_and_render():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    paths = [np.cumsum(np.tile(UNIT[i], (5, 1)), axis=0) for i in range(4)]
    assert plot_paths(paths, ax=ax) is ax
    fig.canvas.draw()
    assert plot_paths([]).figure is not None  # makes its own figure

    env = MultiGoalEnv(render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([0.5, 0.5]))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert MultiGoalEnv().render() is None


def test_register_is_idempotent():
    import importlib

    importlib.reload(envs)
    assert "MultiGoal-v0" in gymnasium.registry
    assert gymnasium.registry["MultiGoal-v0"].max_episode_steps == 30


def test_make_env_multigoal():
    env = make_env("MultiGoal-v0", seed=0)
    assert isinstance(env.action_space, gymnasium.spaces.Box) and env.action_space.shape == (2,)
    env.close()


@pytest.mark.filterwarnings("ignore")
def test_make_env_swimmer_is_seeded():
    env = make_env("Swimmer-v4", seed=0)
    assert isinstance(env.action_space, gymnasium.spaces.Box) and env.action_space.shape == (2,)
    obs0, _ = env.reset(seed=5)
    assert obs0.shape == (8,)
    obs1, _ = env.reset(seed=5)
    np.testing.assert_array_equal(obs0, obs1)
    other = make_env("Swimmer-v4", seed=0)
    np.testing.assert_array_equal(env.action_space.sample(), other.action_space.sample())
    env.close()
    other.close()


def _one_line_error(env_id):
    with pytest.raises(ValueError) as excinfo:
        make_env(env_id)
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_make_env_misspelled_id_suggests():
    message = _one_line_error("Swimer-v4")
    assert "Swimmer-v4" in message and "did you mean" in message


def test_make_env_discrete_rejected():
    message = _one_line_error("CartPole-v1")
    assert "Discrete" in message and "CartPole-v1" in message


@pytest.mark.parametrize("env_id", ["xyz-v9", "!!!", "ALE/Pong-v5", "Swimmer-v9", "nomodule:Env-v0", ""])
def test_make_env_nonsense_ids(env_id):
    _one_line_error(env_id)


def test_make_env_missing_dependency_is_one_line():
    try:
        import Box2D  # noqa: F401
    except ImportError:
        assert "not installed" in _one_line_error("LunarLanderContinuous-v3")
    else:
        pytest.skip("Box2D is installed")


def test_make_env_unbounded_box_rejected():
    class Unbounded(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(-1, 1, (1,), np.float32)
        action_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    gymnasium.register("TestUnboundedAction-v0", entry_point=Unbounded)
    try:
        assert "unbounded" in _one_line_error("TestUnboundedAction-v0")
    finally:
        del gymnasium.registry["TestUnboundedAction-v0"]


def test_check_env_id():
    assert check_env_id("MultiGoal-v0") == "MultiGoal-v0"
    with pytest.raises(ValueError, match="MultiGoal-v0"):
        check_env_id("Multigoal-v0")
