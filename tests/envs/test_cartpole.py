"""Batched torch CartPole vs gymnasium's CartPole-v1: transitions, truncation, reset
distribution, seeding, auto-reset bookkeeping and exact resumption."""
import io
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymCartPole

from normrl.envs.cartpole import THETA_THRESHOLD, X_THRESHOLD, CartPoleEnv, cartpole_dynamics


def _random_states(n, seed, dtype):
    """States spread over (and beyond) the non-terminal region, so many steps terminate."""
    rng = np.random.default_rng(seed)
    scale = np.array([2.6, 3.0, 0.25, 3.0])
    states = rng.uniform(-1.0, 1.0, size=(n, 4)) * scale
    actions = rng.integers(0, 2, size=n)
    return torch.as_tensor(states, dtype=dtype), torch.as_tensor(actions, dtype=torch.int64)


def _gym_step_from(states64: np.ndarray, actions: np.ndarray):
    """gymnasium's raw CartPoleEnv stepped once from each given float64 state."""
    genv = GymCartPole()
    genv.reset(seed=0)
    next_states, obs, rewards, terminated = [], [], [], []
    for state, action in zip(states64, actions):
        genv.state = state.copy()
        genv.steps_beyond_terminated = None
        o, r, term, trunc, _ = genv.step(int(action))
        assert trunc is False
        next_states.append(genv.state.copy())
        obs.append(o)
        rewards.append(r)
        terminated.append(term)
    return np.array(next_states), np.array(obs), np.array(rewards), np.array(terminated)


def _near_threshold(next_states64, margin):
    return (np.abs(np.abs(next_states64[:, 0]) - X_THRESHOLD) < margin) | (
        np.abs(np.abs(next_states64[:, 2]) - THETA_THRESHOLD) < margin
    )


def _install_state(env: CartPoleEnv, states: torch.Tensor):
    env.reset(seed=0)
    env.state = states.to(env.dtype).clone()


def test_float32_transitions_match_gymnasium_through_step():
    n = 3000
    states, actions = _random_states(n, seed=1, dtype=torch.float32)
    env = CartPoleEnv(num_envs=n, seed=0)
    _install_state(env, states)
    _, reward, terminated, truncated, info = env.step(actions)
    # gymnasium starts from the very same (float32-representable) states
    g_next, g_obs, g_reward, g_term = _gym_step_from(states.double().numpy(), actions.numpy())
    assert 0.2 < g_term.mean() < 0.9, "the state sample must exercise both outcomes"
    np.testing.assert_allclose(info["final_obs"].numpy(), g_obs, rtol=1e-5, atol=1e-5)
    assert info["final_obs"].dtype == torch.float32
    np.testing.assert_array_equal(reward.numpy(), g_reward.astype(np.float32))
    assert reward.dtype == torch.float32
    # flags may only differ where float32 rounding straddles a threshold
    clear = ~_near_threshold(g_next, 1e-5)
    assert clear.sum() > 0.99 * n
    np.testing.assert_array_equal(terminated.numpy()[clear], g_term[clear])
    assert not truncated.any()
    np.testing.assert_array_equal(info["done"].numpy(), terminated.numpy())
    np.testing.assert_array_equal(info["episode_return"].numpy(), np.ones(n, np.float32))
    np.testing.assert_array_equal(info["episode_length"].numpy(), np.ones(n, np.int64))


def test_float64_transitions_follow_gymnasium_arithmetic():
    states, actions = _random_states(2000, seed=2, dtype=torch.float64)
    next_state, terminated = cartpole_dynamics(states, actions)
    g_next, _, _, g_term = _gym_step_from(states.numpy(), actions.numpy())
    # float64 with folded constants: equal to a few units in the last place
    np.testing.assert_allclose(next_state.numpy(), g_next, rtol=1e-13, atol=1e-14)
    clear = ~_near_threshold(g_next, 1e-12)
    np.testing.assert_array_equal(terminated.numpy()[clear], g_term[clear])


def test_float64_trajectories_match_gymnasium_with_the_same_reset_states():
    env = CartPoleEnv(num_envs=1, seed=3, dtype=torch.float64)
    genv = GymCartPole()
    genv.reset(seed=0)
    rng = np.random.default_rng(3)
    env.reset()
    genv.state = env.state[0].numpy().copy()
    genv.steps_beyond_terminated = None
    episodes = 0
    for _ in range(400):
        action = int(rng.integers(0, 2))
        obs, reward, terminated, truncated, info = env.step(torch.tensor([action]))
        g_obs, g_reward, g_term, _, _ = genv.step(action)
        np.testing.assert_allclose(info["final_obs"][0].numpy(), g_obs, rtol=1e-6, atol=1e-7)
        assert bool(terminated[0]) == g_term and float(reward[0]) == g_reward
        if g_term:
            episodes += 1
            genv.state = env.state[0].numpy().copy()  # our drawn reset state
            genv.steps_beyond_terminated = None
    assert episodes >= 5


def _balancing_action(obs: torch.Tensor) -> torch.Tensor:
    """A linear controller that keeps the pole up (and the cart near 0) for 500+ steps."""
    x, x_dot, theta, theta_dot = obs.unbind(-1)
    return (theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0).long()


def test_truncation_at_exactly_step_500_like_gymnasium_time_limit():
    env = CartPoleEnv(num_envs=3, seed=4)
    obs = env.reset()
    for t in range(1, 501):
        obs, reward, terminated, truncated, info = env.step(_balancing_action(obs))
        assert not terminated.any()
        if t < 500:
            assert not truncated.any() and not info["done"].any()
    assert truncated.all() and info["done"].all()
    assert info["episode_length"].tolist() == [500] * 3
    assert info["episode_return"].tolist() == [500.0] * 3
    # truncated envs restarted: fresh states, not the final ones
    assert obs.abs().max() <= 0.05
    assert not torch.equal(obs, info["final_obs"])
    # gymnasium's CartPole-v1 under the same controller truncates at the same step
    genv = gym.make("CartPole-v1")
    g_obs, _ = genv.reset(seed=4)
    for t in range(1, 501):
        g_obs, _, g_term, g_trunc, _ = genv.step(int(_balancing_action(torch.as_tensor(g_obs))))
        assert not g_term
        assert g_trunc == (t == 500)


def test_reset_distribution_is_uniform_in_plus_minus_0_05():
    env = CartPoleEnv(num_envs=20000, seed=5)
    obs = env.reset()
    assert obs.shape == (20000, 4) and obs.dtype == torch.float32
    assert obs.min() >= -0.05 and obs.max() <= 0.05
    assert obs.min() < -0.0499 and obs.max() > 0.0499
    # uniform(-0.05, 0.05): mean 0, std 0.1 / sqrt(12) per coordinate
    assert obs.mean(0).abs().max() < 0.002
    torch.testing.assert_close(obs.std(0), torch.full((4,), 0.1 / math.sqrt(12)), atol=6e-4, rtol=0)


def _rollout(env, steps, action_seed):
    gen = torch.Generator().manual_seed(action_seed)
    out = []
    for _ in range(steps):
        actions = torch.randint(0, 2, (env.num_envs,), generator=gen)
        obs, reward, terminated, truncated, info = env.step(actions)
        out.append((obs, terminated, truncated, info["episode_return"], info["final_obs"]))
    return out


def _same(a, b):
    return all(torch.equal(x, y) for step_a, step_b in zip(a, b) for x, y in zip(step_a, step_b))


def test_seeding_same_seed_same_trajectory_different_seed_differs():
    first, second, other = CartPoleEnv(8, seed=11), CartPoleEnv(8, seed=11), CartPoleEnv(8, seed=12)
    first.reset(), second.reset(), other.reset()
    run1, run2, run3 = _rollout(first, 120, 0), _rollout(second, 120, 0), _rollout(other, 120, 0)
    assert sum(int(step[1].sum()) for step in run1) >= 8, "auto-resets must be exercised"
    assert _same(run1, run2)
    assert not _same(run1, run3)
    # reset(seed) reseeds: a differently constructed env reset with seed 11 matches
    reseeded = CartPoleEnv(8, seed=99)
    reseeded.reset(seed=11)
    assert _same(_rollout(reseeded, 120, 0), run1)


def test_auto_reset_episode_stats_and_final_obs():
    n = 6
    env = CartPoleEnv(num_envs=n, seed=6)
    obs = env.reset()
    counted = torch.zeros(n, dtype=torch.int64)
    finished = 0
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        actions = torch.randint(0, 2, (n,), generator=gen)
        prev_obs = obs
        obs, reward, terminated, truncated, info = env.step(actions)
        counted += 1
        done = info["done"]
        final = info["final_obs"]
        # the transition started where the previous step left off
        torch.testing.assert_close(final, cartpole_dynamics(prev_obs, actions)[0])
        torch.testing.assert_close(obs[~done], final[~done])
        if done.any():
            finished += int(done.sum())
            assert torch.equal(info["episode_length"][done], counted[done])
            assert torch.equal(info["episode_return"][done], counted[done].float())
            # terminal observations lie beyond a threshold; returned obs are fresh
            beyond = (final[done, 0].abs() > X_THRESHOLD) | (final[done, 2].abs() > THETA_THRESHOLD)
            assert beyond.all()
            assert obs[done].abs().max() <= 0.05
            counted[done] = 0
        assert torch.equal(info["episode_length"][~done], counted[~done])
    assert finished >= 30


def test_state_dict_round_trip_resumes_exactly():
    env = CartPoleEnv(num_envs=5, seed=7)
    env.reset()
    _rollout(env, 37, action_seed=2)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = _rollout(env, 150, action_seed=3)
    buffer.seek(0)
    resumed = CartPoleEnv(num_envs=5, seed=123)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert _same(_rollout(resumed, 150, action_seed=3), expected)
    with pytest.raises(ValueError, match="shape"):
        CartPoleEnv(num_envs=4).load_state_dict(env.state_dict())
    with pytest.raises(ValueError, match="missing"):
        resumed.load_state_dict({"state": env.state})


def test_spaces_and_input_validation():
    env = CartPoleEnv(num_envs=3, seed=0)
    genv = GymCartPole()
    assert env.single_observation_space == genv.observation_space
    assert env.single_action_space == gym.spaces.Discrete(2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(3, dtype=torch.int64))
    obs = env.reset()
    assert all(env.single_observation_space.contains(o) for o in obs.numpy())
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(torch.zeros(3, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="integer"):
        env.step(torch.zeros(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        env.step([0, 1, 0])
    with pytest.raises(ValueError, match="float32 or torch.float64"):
        CartPoleEnv(2, dtype=torch.float16)
    with pytest.raises(ValueError, match="positive int"):
        CartPoleEnv(0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        CartPoleEnv(2, max_episode_steps=0)
    # returned observations are copies: writing into them does not change the env
    obs.fill_(1.0)
    assert env.state.abs().max() <= 0.05
    obs, *_ = env.step(torch.zeros(3, dtype=torch.int64))
    before = env.state.clone()
    obs.fill_(1.0)
    assert torch.equal(env.state, before)


@pytest.mark.slow  # torch.compile takes ~15 s on a small CPU
def test_compiled_step_matches_eager():
    eager, compiled = CartPoleEnv(64, seed=8), CartPoleEnv(64, seed=8, compile=True)
    eager.reset(), compiled.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        actions = torch.randint(0, 2, (64,), generator=gen)
        out_e, out_c = eager.step(actions), compiled.step(actions)
        # the compiled kernel may round sin/cos differently in the last bit
        torch.testing.assert_close(out_c[0], out_e[0], rtol=1e-5, atol=1e-6)
        for a, b in zip(out_c[1:4], out_e[1:4]):
            assert torch.equal(a, b)
        torch.testing.assert_close(out_c[4]["final_obs"], out_e[4]["final_obs"], rtol=1e-5, atol=1e-6)
        assert torch.equal(out_c[4]["episode_length"], out_e[4]["episode_length"])
