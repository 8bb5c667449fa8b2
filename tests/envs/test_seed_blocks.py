"""SeedBlocks: S envs as one env of S*N sub-envs, block k stepping as env k alone; and
its functional view (the seed axis's batched step) equal to the blocks stepped one by one."""
import pytest
import torch

from normrl.agents.common.functional_env import functional_env
from normrl.envs import SeedBlocks, make_env, make_seed_env


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout"])
def test_blocks_step_as_their_envs_alone(env_id):
    blocks = make_seed_env(env_id, 3, [4, 9])
    alone = [make_env(env_id, 3, "cpu", seed=s) for s in (4, 9)]
    assert blocks.num_envs == 6 and blocks.envs_per_seed == 3
    assert torch.equal(blocks.reset(), torch.cat([e.reset() for e in alone]))
    actions = torch.randint(blocks.single_action_space.n, (40, 6), generator=torch.Generator().manual_seed(0))
    for t in range(40):
        got = blocks.step(actions[t])
        want = [e.step(a) for e, a in zip(alone, actions[t].view(2, 3))]
        for i in range(4):
            assert torch.equal(got[i], torch.cat([w[i] for w in want]))
        assert torch.equal(got[4]["done"], torch.cat([w[4]["done"] for w in want]))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout"])
def test_functional_view_steps_the_blocks_as_one_batch(env_id):
    blocks = make_seed_env(env_id, 3, [4, 9])
    alone = [make_env(env_id, 3, "cpu", seed=s) for s in (4, 9)]
    blocks.reset(), [e.reset() for e in alone]
    fenv = functional_env(blocks)
    actions = torch.randint(blocks.single_action_space.n, (20, 6), generator=torch.Generator().manual_seed(1))
    state, noise, done = fenv.get_state(), fenv.draw(20), 0
    for t in range(20):
        state, obs, reward, terminated, truncated, info = fenv.step(state, actions[t], noise[t])
        want = [e.step(a) for e, a in zip(alone, actions[t].view(2, 3))]
        assert torch.equal(obs, torch.cat([w[0] for w in want])) and torch.equal(reward, torch.cat([w[1] for w in want]))
        done += int(info["done"].sum())
    fenv.set_state(state)
    blocks.sync_blocks()  # the blocks get their parts back: stepping them alone continues the same episodes
    for block, e in zip(blocks.blocks, alone):
        a = torch.zeros(3, dtype=torch.long)
        assert torch.equal(block.step(a)[0], e.step(a)[0])
    assert done > 0 or env_id == "MinAtar/Breakout"


def test_blocks_must_be_distinct_envs_of_one_kind():
    env = make_env("CartPole-v1", 2, "cpu")
    with pytest.raises(ValueError, match="distinct env objects"):
        SeedBlocks([env, env])
    with pytest.raises(ValueError, match="envs of one kind"):
        SeedBlocks([env, make_env("CartPole-v1", 3, "cpu")])
    with pytest.raises(ValueError, match="at least one seed"):
        make_seed_env("CartPole-v1", 2, [])
