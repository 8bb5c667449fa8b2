"""make_env: every registered id builds a TensorEnv that honours the contract;
unknown ids and bad num_envs are rejected with clear errors.

Ids whose implementing module does not exist yet are skipped with the module's name;
once the module exists, its env must pass (an import error inside it fails the test).
"""
import importlib
import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch

from normrl.envs import TensorEnv, list_envs, make_env
from normrl.envs.registry import ALE_FACTORY, ENV_IDS

ALE_ID = "ALE/Pong-v5"
ALL_IDS = [*ENV_IDS, ALE_ID]


def _require_module(env_id):
    target = ALE_FACTORY if env_id == ALE_ID else ENV_IDS[env_id]
    module = target.split(":")[0]
    importlib.import_module(module)  # every registered id must have its module


def _sample_actions(env, generator):
    space = env.single_action_space
    assert isinstance(space, gym.spaces.Discrete)
    return torch.randint(int(space.start), int(space.start + space.n), (env.num_envs,), generator=generator).to(env.device)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_id_builds_an_env_that_follows_the_contract(env_id):
    _require_module(env_id)
    env = make_env(env_id, 2, device="cpu", seed=0)
    try:
        assert isinstance(env, TensorEnv)
        assert env.spec_id == env_id and env.num_envs == 2 and env.device == torch.device("cpu")
        assert isinstance(env.single_observation_space, gym.spaces.Box)
        obs = env.reset(seed=1)
        assert isinstance(obs, torch.Tensor) and obs.device == env.device
        assert obs.shape == (2, *env.single_observation_space.shape)
        assert all(env.single_observation_space.contains(o) for o in obs.cpu().numpy())
        gen = torch.Generator().manual_seed(0)
        for _ in range(5):
            obs, reward, terminated, truncated, info = env.step(_sample_actions(env, gen))
            assert obs.shape == (2, *env.single_observation_space.shape)
            assert all(env.single_observation_space.contains(o) for o in obs.cpu().numpy())
            for flag in (terminated, truncated):
                assert flag.shape == (2,) and flag.dtype == torch.bool and flag.device == env.device
            assert reward.shape == (2,) and reward.dtype.is_floating_point
            assert info["done"].shape == (2,) and torch.equal(info["done"], terminated | truncated)
            assert info["episode_return"].shape == (2,) and info["episode_length"].shape == (2,)
        assert repr(env).startswith(type(env).__name__)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", [i for i in ALL_IDS if i != ALE_ID])
def test_same_seed_same_trajectory(env_id):
    _require_module(env_id)
    runs = []
    for _ in range(2):
        env = make_env(env_id, 3, seed=5)
        obs = [env.reset()]
        gen = torch.Generator().manual_seed(1)
        for _ in range(40):
            obs.append(env.step(_sample_actions(env, gen))[0])
        runs.append(torch.stack(obs))
    assert torch.equal(runs[0], runs[1])


def test_unknown_id_lists_the_valid_ids():
    with pytest.raises(ValueError, match="unknown env id 'CartPole-v0'") as excinfo:
        make_env("CartPole-v0", 1)
    for env_id in ENV_IDS:
        assert env_id in str(excinfo.value)
    assert "ALE/<Game>-v5" in str(excinfo.value)
    assert list_envs() == [*ENV_IDS, "ALE/<Game>-v5"]


@pytest.mark.parametrize("num_envs", [0, -3, 1.5, True, "4", None])
def test_num_envs_must_be_a_positive_int(num_envs):
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        make_env("CartPole-v1", num_envs)


def test_keyword_arguments_reach_the_constructor():
    env = make_env("CartPole-v1", 2, device=torch.device("cpu"), seed=0, max_episode_steps=3, dtype=torch.float64)
    env.reset()
    flags = [env.step(torch.ones(2, dtype=torch.int64))[3] for _ in range(3)]
    assert [bool(f.all()) for f in flags] == [False, False, True]
    assert env.state.dtype == torch.float64
    with pytest.raises(TypeError):
        make_env("CartPole-v1", 2, no_such_option=1)
    np.testing.assert_array_equal(env.single_observation_space.high[[0, 2]], np.float32([4.8, 0.41887903]))
