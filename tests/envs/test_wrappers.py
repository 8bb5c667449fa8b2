"""Env wrappers: the seeded permutations and the permuted-observation/-action wrappers."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from normrl.envs import make_env
from normrl.envs.base import TensorEnv
from normrl.envs.wrappers import PermutedActions, PermutedObservations
from normrl.utils.permutation import make_permutation


def test_make_permutation_is_seeded_and_identity_without_seed():
    assert make_permutation(5, None).tolist() == [0, 1, 2, 3, 4]
    p = make_permutation(64, 3)
    assert sorted(p.tolist()) == list(range(64)) and p.tolist() != list(range(64))
    assert torch.equal(p, make_permutation(64, 3))
    assert not torch.equal(p, make_permutation(64, 4))
    with pytest.raises(ValueError, match="positive int"):
        make_permutation(0, 1)


def test_permuted_observations_reorder_cartpole_exactly():
    base = make_env("CartPole-v1", num_envs=3, seed=5)
    wrapped = PermutedObservations(make_env("CartPole-v1", num_envs=3, seed=5), permutation_seed=7)
    perm = wrapped.permutation
    assert sorted(perm.tolist()) == [0, 1, 2, 3] and perm.tolist() != [0, 1, 2, 3]
    assert torch.equal(wrapped.reset(), base.reset()[:, perm])
    # bounds follow the elements
    assert np.array_equal(wrapped.single_observation_space.high, base.single_observation_space.high[perm.numpy()])
    for t in range(40):
        a = torch.tensor([t % 2, 1, 0])
        o1, r1, te1, tr1, i1 = base.step(a)
        o2, r2, te2, tr2, i2 = wrapped.step(a)
        assert torch.equal(o2, o1[:, perm])
        assert torch.equal(i2["final_obs"], i1["final_obs"][:, perm])
        assert torch.equal(r1, r2) and torch.equal(te1, te2) and torch.equal(i1["done"], i2["done"])
    assert repr(wrapped).startswith("PermutedObservations(")


def test_permuted_observations_of_images_keep_shape_and_multiset():
    env = PermutedObservations(make_env("MinAtar/Breakout", num_envs=2, seed=0), permutation_seed=1)
    base = make_env("MinAtar/Breakout", num_envs=2, seed=0)
    obs, ref = env.reset(), base.reset()
    assert obs.shape == ref.shape and obs.dtype == ref.dtype
    assert torch.equal(obs.reshape(2, -1), ref.reshape(2, -1)[:, env.permutation])
    assert torch.equal(obs.reshape(2, -1).sort(dim=1).values, ref.reshape(2, -1).sort(dim=1).values)


def test_permuted_actions_relabel_cartpole_actions():
    base = make_env("CartPole-v1", num_envs=2, seed=9)
    wrapped = PermutedActions(make_env("CartPole-v1", num_envs=2, seed=9), permutation_seed=None)
    assert wrapped.permutation.tolist() == [0, 1]
    # find a seed whose 2-permutation swaps the actions
    seed = next(s for s in range(100) if make_permutation(2, s).tolist() == [1, 0])
    swapped = PermutedActions(make_env("CartPole-v1", num_envs=2, seed=9), permutation_seed=seed)
    base.reset(), wrapped.reset(), swapped.reset()
    for t in range(30):
        a = torch.tensor([t % 2, (t // 3) % 2])
        o_base = base.step(1 - a)[0]
        o_swapped = swapped.step(a)[0]
        o_identity = wrapped.step(1 - a)[0]
        assert torch.equal(o_base, o_swapped) and torch.equal(o_base, o_identity)
    with pytest.raises(ValueError, match="Discrete"):
        PermutedActions(_BoxActionEnv(), 1)


class _BoxActionEnv(TensorEnv):
    num_envs, device, spec_id = 1, torch.device("cpu"), "box"
    single_observation_space = gym.spaces.Box(0, 1, (2,))
    single_action_space = gym.spaces.Box(-1, 1, (1,))


def test_wrappers_reject_non_tensor_envs():
    with pytest.raises(TypeError, match="TensorEnv"):
        PermutedObservations(object(), 1)
