"""TensorToGymVectorEnv: gymnasium vector-env API checks, SAME_STEP autoreset infos,
and random-policy episode statistics against gymnasium's own vector CartPole."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.passive_env_checker import check_obs, data_shares_objects
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from normrl.envs import TensorEnv, TensorToGymVectorEnv, make_env
from normrl.envs.cartpole import THETA_THRESHOLD, X_THRESHOLD
from normrl.envs.registry import ENV_IDS


def _adapter(num_envs=4, seed=0):
    return TensorToGymVectorEnv(make_env("CartPole-v1", num_envs, seed=seed))


def test_spaces_dtypes_shapes_and_metadata():
    env = _adapter(4)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.num_envs == 4
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_observation_space == gym.make("CartPole-v1").observation_space
    assert env.observation_space.shape == (4, 4) and env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2, 2, 2])
    obs, infos = env.reset(seed=3)
    assert infos == {}
    check_obs(obs, env.observation_space, "reset")
    env.action_space.seed(0)
    for _ in range(30):
        obs, rewards, terms, truncs, infos = env.step(env.action_space.sample())
        check_obs(obs, env.observation_space, "step")
        assert rewards.shape == (4,) and rewards.dtype == np.float64
        assert terms.dtype == np.bool_ and truncs.dtype == np.bool_ and terms.shape == truncs.shape == (4,)
        assert np.all(rewards == 1.0)
    env.close()
    assert env.closed


def test_reset_and_step_determinism_and_no_data_reuse():
    first, second = _adapter(3), _adapter(3)
    obs1, _ = first.reset(seed=42)
    obs2, _ = second.reset(seed=42)
    assert data_equivalence(obs1, obs2, exact=True)
    assert not data_equivalence(first.reset(seed=43)[0], obs1)
    first.reset(seed=42)
    rng = np.random.default_rng(0)
    previous = None
    for _ in range(60):
        actions = rng.integers(0, 2, size=3)
        out1, out2 = first.step(actions), second.step(actions)
        assert data_equivalence(out1, out2, exact=True)
        if previous is not None:
            assert not data_shares_objects(previous, out1[0])
        previous = out1[0]


def test_same_step_autoreset_infos_and_record_episode_statistics():
    n = 5
    env = RecordEpisodeStatistics(_adapter(n, seed=1))
    obs, _ = env.reset(seed=1)
    counted = np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(1)
    finished = 0
    for _ in range(200):
        obs, rewards, terms, truncs, infos = env.step(rng.integers(0, 2, size=n))
        counted += 1
        done = terms | truncs
        if not done.any():
            assert "final_obs" not in infos
            continue
        finished += int(done.sum())
        np.testing.assert_array_equal(infos["_final_obs"], done)
        np.testing.assert_array_equal(infos["_final_info"], done)
        final_info = infos["final_info"]
        np.testing.assert_array_equal(final_info["episode_length"][done], counted[done])
        np.testing.assert_array_equal(final_info["episode_return"][done], counted[done].astype(float))
        # gymnasium's own statistics wrapper agrees (it supports SAME_STEP)
        np.testing.assert_array_equal(infos["episode"]["l"][done], counted[done])
        np.testing.assert_array_equal(infos["episode"]["r"][done], counted[done].astype(float))
        for i in range(n):
            if done[i]:
                terminal = infos["final_obs"][i]
                assert terminal.shape == (4,) and terminal.dtype == np.float32
                assert abs(terminal[0]) > X_THRESHOLD or abs(terminal[2]) > THETA_THRESHOLD
                assert np.abs(obs[i]).max() <= 0.05  # the new episode's first obs
            else:
                assert infos["final_obs"][i] is None
        counted[done] = 0
    assert finished >= 20


def _random_policy_episode_lengths(env, episodes, seed):
    env = RecordEpisodeStatistics(env)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    lengths = []
    while len(lengths) < episodes:
        *_, infos = env.step(env.action_space.sample())
        if "episode" in infos:
            lengths.extend(infos["episode"]["l"][infos["_episode"]].tolist())
    return np.array(lengths[:episodes])


def test_random_policy_episode_lengths_match_gymnasium_vector_cartpole():
    ours = _random_policy_episode_lengths(_adapter(64, seed=0), 3000, seed=0)
    reference_env = gym.make_vec("CartPole-v1", num_envs=64, vectorization_mode="vector_entry_point")
    reference = _random_policy_episode_lengths(reference_env, 3000, seed=0)
    # a uniformly random policy balances CartPole for about 22 steps on average;
    # the standard error of each mean is about 0.2
    assert abs(ours.mean() - 22.3) < 1.5
    assert abs(reference.mean() - 22.3) < 1.5
    assert abs(ours.mean() - reference.mean()) < 1.0
    assert abs(np.median(ours) - np.median(reference)) <= 2
    # falling from |theta| <= 0.05 past 12 degrees takes several steps (8 at least in both samples)
    assert ours.min() >= 8 and reference.min() >= 8


def test_invalid_inputs():
    env = _adapter(2)
    with pytest.raises(ValueError, match="not supported"):
        env.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"low": -0.1})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="integers"):
        env.step(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="TensorEnv"):
        TensorToGymVectorEnv(gym.make("CartPole-v1"))


@pytest.mark.parametrize("env_id", [*ENV_IDS, "ALE/Pong-v5"])
def test_every_env_id_through_the_adapter(env_id):
    env = TensorToGymVectorEnv(make_env(env_id, 2, seed=0))
    obs, _ = env.reset(seed=0)
    check_obs(obs, env.observation_space, "reset")
    env.action_space.seed(0)
    previous = obs
    for _ in range(20):
        obs, rewards, terms, truncs, infos = env.step(env.action_space.sample())
        check_obs(obs, env.observation_space, "step")
        assert obs.dtype == env.single_observation_space.dtype
        assert rewards.shape == terms.shape == truncs.shape == (2,)
        # returned arrays are never overwritten by later steps
        assert not data_shares_objects(previous, obs)
        previous = obs
    env.close()


class _BufferReusingEnv(TensorEnv):
    """A TensorEnv that writes every observation into one buffer (as ale-py does)."""

    def __init__(self):
        self.num_envs, self.device = 2, torch.device("cpu")
        self.single_observation_space = gym.spaces.Box(0, 255, (3,), dtype=np.uint8)
        self.single_action_space = gym.spaces.Discrete(2)
        self.buffer = torch.zeros(2, 3, dtype=torch.uint8)
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        self.buffer.fill_(0)
        return self.buffer

    def step(self, actions):
        self.t += 1
        self.buffer.fill_(self.t)
        flags = torch.zeros(2, dtype=torch.bool)
        info = {"done": flags, "episode_return": torch.zeros(2), "episode_length": torch.full((2,), self.t)}
        return self.buffer, torch.zeros(2), flags, flags, info


def test_observations_are_copied_out_of_reused_env_buffers():
    env = TensorToGymVectorEnv(_BufferReusingEnv())
    first, _ = env.reset()
    second = env.step(np.zeros(2, dtype=np.int64))[0]
    third = env.step(np.zeros(2, dtype=np.int64))[0]
    assert first.max() == 0 and second.min() == second.max() == 1 and third.min() == third.max() == 2
