"""Built-in streams and the permutation tasks: names, shapes, exact permutations."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from normrl.envs import make_env
from normrl.envs.base import TensorEnv
from normrl.envs.permuted import (
    PermutedActions,
    PermutedObservations,
    SupervisedTask,
    make_permutation,
    permuted_digits_tasks,
)
from normrl.envs.streams import ATARI_DEFAULT_GAMES, MINATAR_GAMES, list_streams, stream_tasks


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


def test_permuted_digits_input_and_label_modes():
    inp = permuted_digits_tasks(3, "input", seed=2)
    lab = permuted_digits_tasks(3, "label", seed=2)
    assert [t.name for t in inp] == ["digits-input-perm0", "digits-input-perm1", "digits-input-perm2"]
    t0, t1 = inp[0], inp[1]
    assert t0.x.shape[1] == 64 and t0.num_classes == 10 and t0.x.dtype == torch.float32
    assert t0.x.shape[0] + t0.x_test.shape[0] == 1797 and t0.x_test.shape[0] == 359
    assert float(t0.x.max()) == 1.0 and float(t0.x.min()) == 0.0
    perm = torch.tensor(t1.meta["permutation"])
    assert torch.equal(t1.x, t0.x[:, perm]) and torch.equal(t1.y, t0.y)
    assert torch.equal(t1.x_test, t0.x_test[:, perm])
    assert t0.meta["permutation"] == list(range(64))
    lperm = torch.tensor(lab[2].meta["permutation"])
    assert torch.equal(lab[2].y, lperm[lab[0].y]) and torch.equal(lab[2].x, lab[0].x)
    # the same seed gives the same tasks
    again = permuted_digits_tasks(3, "input", seed=2)
    assert torch.equal(again[2].x, inp[2].x)
    with pytest.raises(ValueError, match="'input' or 'label'"):
        permuted_digits_tasks(2, "pixels")


def test_supervised_task_batches_cover_one_epoch():
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(10)
    task = SupervisedTask(x, y, x[:2], y[:2], num_classes=10, name="toy")
    batches = list(task.batches(4, torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in batches)
    assert task.make(num_envs=4, device="cpu", seed=1).name == "toy"
    with pytest.raises(ValueError, match="same number of rows"):
        SupervisedTask(x, y[:3], x, y, 10)


def test_stream_names_and_tasks():
    names = list_streams()
    assert "minatar" in names and "atari-default" in names
    minatar = stream_tasks("minatar", 100)
    assert [t.name for t in minatar] == list(MINATAR_GAMES)
    assert all(t.env_kwargs == {"full_action_space": True, "pad_channels_to": 10, "max_episode_steps": 10_000} and t.steps == 100 for t in minatar)
    atari = stream_tasks("atari-default", 50)
    assert len(atari) == 10 and [t.name for t in atari] == list(ATARI_DEFAULT_GAMES)
    assert all(t.env_id == f"ALE/{t.name}-v5" and t.env_kwargs == {"full_action_space": True} for t in atari)
    custom = stream_tasks("atari-Pong,Breakout", 5)
    assert [t.env_id for t in custom] == ["ALE/Pong-v5", "ALE/Breakout-v5"]
    perm = stream_tasks("permuted-actions:CartPole-v1:4", 7)
    assert len(perm) == 4 and perm[0].name == "CartPole-v1#actions-perm0"
    assert len(stream_tasks("permuted-obs:CartPole-v1", 7)) == 10
    assert len(stream_tasks("label-permuted-digits:2", 7)) == 2
    for bad, match in (("atari-Pong,Pnog", "Did you mean Pong"), ("permuted-obs:NoEnv-v0", "unknown env id"),
                       ("permuted-obs:CartPole-v1:x", "positive integer"), ("atari-", "no games"),
                       ("mnist", "valid streams: minatar")):
        with pytest.raises(ValueError, match=match):
            stream_tasks(bad, 10)


def test_permuted_stream_tasks_build_distinct_permutations():
    tasks = stream_tasks("permuted-obs:CartPole-v1:3", 10, seed=1)
    envs = [t.make(num_envs=2, device="cpu", seed=0) for t in tasks]
    perms = [e.permutation.tolist() for e in envs]
    assert perms[0] == [0, 1, 2, 3]
    assert perms[1] == make_permutation(4, 1001).tolist() and perms[2] == make_permutation(4, 1002).tolist()
    base = make_env("CartPole-v1", num_envs=2, seed=0).reset()
    assert torch.equal(envs[2].reset(), base[:, envs[2].permutation])


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_minatar_stream_tasks_share_shapes(game):
    task = next(t for t in stream_tasks("minatar", 10) if t.name == game)
    env = task.make(num_envs=2, device="cpu", seed=0)
    assert env.reset().shape == (2, 10, 10, 10)
    assert env.single_action_space.n == 6


def test_atari_stream_task_builds_full_action_env():
    task = stream_tasks("atari-Pong", 10)[0]
    env = task.make(num_envs=1, device="cpu", seed=0)
    try:
        assert env.single_action_space.n == 18 and env.reset().shape == (1, 4, 84, 84)
    finally:
        env.close()
