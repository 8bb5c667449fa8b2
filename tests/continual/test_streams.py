"""The stream catalogue: names, tasks, shapes, distinct permutations, env_kwargs."""

import pytest
import torch

from normrl.continual.streams import ATARI_DEFAULT_GAMES, MINATAR_GAMES, list_streams, stream_tasks
from normrl.envs import make_env
from normrl.utils.permutation import make_permutation


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
