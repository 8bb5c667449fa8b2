"""The shared MinAtar machinery: spaces, action sets, sticky actions, padding,
auto-reset, episode statistics, truncation, seeding and checkpoints."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs import make_env
from normrl.envs.minatar.asterix import AsterixEnv
from normrl.envs.minatar.breakout import BreakoutEnv
from normrl.envs.minatar.common import FULL_ACTION_NAMES, uniform_to_int
from normrl.envs.minatar.freeway import FreewayEnv

GAMES = [BreakoutEnv, FreewayEnv, AsterixEnv]


@pytest.mark.parametrize("cls", GAMES)
def test_spaces_and_action_sets_match_reference(cls):
    ref = oracle.make_reference(cls.game)
    env = cls(num_envs=3, seed=0)
    c = ref.state_shape()[2]
    assert env.single_observation_space == gym.spaces.Box(0, 1, (c, 10, 10), np.uint8)  # one byte per cell by default
    assert len(cls.channel_names) == c
    assert env.action_set.tolist() == ref.minimal_action_set()
    assert env.single_action_space == gym.spaces.Discrete(len(ref.minimal_action_set()))
    obs = env.reset(seed=1)
    assert obs.shape == (3, c, 10, 10) and obs.dtype == torch.uint8
    assert env.single_observation_space.contains(obs[0].numpy())
    as_float = cls(num_envs=3, seed=0, obs_dtype="float32")
    assert as_float.single_observation_space == gym.spaces.Box(0.0, 1.0, (c, 10, 10), np.float32)
    assert torch.equal(as_float.reset(seed=1), obs.float())
    full = cls(num_envs=3, seed=0, full_action_space=True)
    assert full.single_action_space == gym.spaces.Discrete(6) and full.action_set.tolist() == list(range(6))
    assert FULL_ACTION_NAMES == tuple(ref.env.action_map)


def test_minimal_actions_map_to_full_indices():
    """Policy action i of the minimal set executes full action action_set[i]: the
    paddle moves exactly as with the full-set index."""
    minimal = BreakoutEnv(num_envs=3, seed=0, sticky_action_prob=0.0)
    full = BreakoutEnv(num_envs=3, seed=0, sticky_action_prob=0.0, full_action_space=True)
    minimal.step(torch.tensor([0, 1, 2]))  # n, l, r
    full.step(torch.tensor([0, 1, 3]))
    assert minimal.state["pos"].tolist() == full.state["pos"].tolist() == [4, 3, 5]
    assert minimal.last_action.tolist() == [0, 1, 3]


def test_sticky_actions_repeat_the_previous_action_with_probability_p():
    env = BreakoutEnv(num_envs=4000, seed=0, sticky_action_prob=0.1, full_action_space=True)
    gen = torch.Generator().manual_seed(0)
    repeated = changed = 0
    for _ in range(5):
        previous = env.last_action.clone()
        chosen = torch.randint(6, (env.num_envs,), generator=gen)
        env.step(chosen)
        differs = chosen != previous
        repeated += int(((env.last_action == previous) & differs).sum())
        changed += int(differs.sum())
        assert bool(((env.last_action == chosen) | (env.last_action == previous)).all())
    rate = repeated / changed
    assert abs(rate - 0.1) < 4 * np.sqrt(0.1 * 0.9 / changed)


@pytest.mark.parametrize("p, expected", [(0.0, [3, 3]), (1.0, [0, 0])])
def test_sticky_extremes(p, expected):
    env = BreakoutEnv(num_envs=2, seed=0, sticky_action_prob=p, full_action_space=True)
    env.step(torch.tensor([3, 3]))
    assert env.last_action.tolist() == expected  # p=1 keeps the initial no-op forever


def test_channel_padding_adds_zero_planes():
    plain = AsterixEnv(num_envs=5, seed=3)
    padded = AsterixEnv(num_envs=5, seed=3, pad_channels_to=10)
    assert padded.single_observation_space.shape == (10, 10, 10)
    for _ in range(30):
        a = torch.randint(5, (5,))
        o1, *_ = plain.step(a)
        o2, *_ = padded.step(a)
        assert o2.shape == (5, 10, 10, 10)
        assert torch.equal(o2[:, :4], o1) and not o2[:, 4:].any()
    with pytest.raises(ValueError, match="pad_channels_to"):
        AsterixEnv(pad_channels_to=3)


def test_auto_reset_and_episode_stats():
    env = BreakoutEnv(num_envs=16, seed=0)
    first = env.reset(seed=0)
    ret = torch.zeros(16)
    length = torch.zeros(16, dtype=torch.int64)
    episodes = 0
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(torch.randint(3, (16,)))
        ret += reward
        length += 1
        done = info["done"]
        assert torch.equal(done, terminated | truncated) and not truncated.any()
        assert torch.equal(info["episode_return"], ret) and torch.equal(info["episode_length"], length)
        # A finished sub-env shows a fresh episode: ball on row 3 at a wall, full bricks, paddle at 4.
        for i in torch.nonzero(done).flatten().tolist():
            assert obs[i, 3].sum() == 30 and obs[i, 0, 9, 4] == 1 and obs[i, 1, 3].sum() == 1
            assert obs[i, 1, 3, 0] + obs[i, 1, 3, 9] == 1
        episodes += int(done.sum())
        ret[done] = 0
        length[done] = 0
    assert episodes > 100
    assert first[:, 3].sum() == 16 * 30


def test_truncation_reports_final_observation():
    limited = FreewayEnv(num_envs=3, seed=1, max_episode_steps=7)
    free = FreewayEnv(num_envs=3, seed=1)
    for t in range(1, 8):
        draws = limited.sample_draws()
        actions = torch.tensor([1, 1, 2])
        obs, _, terminated, truncated, info = limited.step_with_draws(actions, draws)
        free_obs, *_ = free.step_with_draws(actions, draws)
        assert torch.equal(info["final_obs"], free_obs)
        assert not terminated.any()
        assert truncated.tolist() == [t == 7] * 3
    assert info["episode_length"].tolist() == [7, 7, 7]
    assert limited.state["terminate_timer"].tolist() == [2500] * 3  # fresh episodes
    assert torch.equal(obs[:, 0], free_obs[:, 0].new_zeros(3, 10, 10).index_put_(
        (torch.arange(3), torch.tensor([9, 9, 9]), torch.tensor([4, 4, 4])), torch.tensor(1, dtype=obs.dtype)))


@pytest.mark.parametrize("cls", GAMES)
def test_seeded_runs_are_identical_and_state_dict_resumes_exactly(cls):
    a = cls(num_envs=6, seed=11)
    b = cls(num_envs=6, seed=11)
    actions = torch.randint(a.single_action_space.n, (80, 6))
    for t in range(40):
        oa = a.step(actions[t])
        ob = b.step(actions[t])
        assert all(torch.equal(x, y) for x, y in zip(oa[:4], ob[:4]))
    saved = a.state_dict()
    after = [a.step(actions[t]) for t in range(40, 80)]
    c = cls(num_envs=6, seed=999)
    c.load_state_dict(saved)
    for t in range(40, 80):
        oc = c.step(actions[t])
        oa = after[t - 40]
        assert all(torch.equal(x, y) for x, y in zip(oa[:4], oc[:4]))
        assert torch.equal(oa[4]["episode_return"], oc[4]["episode_return"])
    with pytest.raises(ValueError, match="game"):
        (BreakoutEnv if cls is not BreakoutEnv else FreewayEnv)(num_envs=6).load_state_dict(saved)


def test_reset_with_seed_reproduces_and_different_seeds_differ():
    env = FreewayEnv(num_envs=4, seed=0)
    o1 = env.reset(seed=5)
    s1 = env.state["car_speed"].clone()
    env.step(torch.zeros(4, dtype=torch.int64))
    o2 = env.reset(seed=5)
    assert torch.equal(o1, o2) and torch.equal(s1, env.state["car_speed"])
    env.reset(seed=6)
    assert not torch.equal(s1, env.state["car_speed"])


def test_make_env_builds_the_games_with_options():
    env = make_env("MinAtar/Asterix", num_envs=2, seed=0, full_action_space=True, pad_channels_to=10)
    assert isinstance(env, AsterixEnv) and env.spec_id == "MinAtar/Asterix"
    assert env.single_action_space.n == 6 and env.single_observation_space.shape == (10, 10, 10)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([5, 0]))
    assert obs.shape == (2, 10, 10, 10) and reward.dtype == torch.float32 and terminated.dtype == torch.bool


@pytest.mark.parametrize("kwargs, match", [
    ({"num_envs": 0}, "num_envs"),
    ({"sticky_action_prob": 1.5}, "sticky_action_prob"),
    ({"max_episode_steps": 0}, "max_episode_steps"),
])
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BreakoutEnv(**kwargs)


def test_uniform_to_int_edges_and_per_env_ranges():
    u = torch.tensor([0.0, 0.2, 0.5, 0.9999999], dtype=torch.float32)
    assert uniform_to_int(u, 1, 6).tolist() == [1, 2, 3, 5]
    assert uniform_to_int(u, 0, torch.tensor([1, 2, 4, 8])).tolist() == [0, 0, 2, 7]
    counts = torch.bincount(uniform_to_int(torch.rand(50_000), 0, 5), minlength=5).float() / 50_000
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.01)


def test_paint_and_one_hot_grid_set_exactly_the_valid_cells():
    from normrl.envs.minatar.common import one_hot_grid, paint

    y = torch.tensor([[0, 9, 3], [5, -1, 10]])
    x = torch.tensor([[0, 9, 4], [5, 2, 2]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    planes = paint(2, 3, [(torch.tensor([[0, 2, 1], [1, 1, 1]]), y, x, valid), (2, y[:, 0], x[:, 0], None)], "cpu")
    expected = torch.zeros(2, 3, 10, 10)
    expected[0, 0, 0, 0] = expected[0, 2, 9, 9] = expected[0, 2, 0, 0] = 1  # (0, 3, 4) not valid
    expected[1, 1, 5, 5] = expected[1, 2, 5, 5] = 1  # rows -1 and 10 are off the grid
    assert torch.equal(planes, expected)
    grids = one_hot_grid(y, x, valid)
    assert grids.shape == (2, 3, 10, 10)
    assert grids.sum().item() == 3 and grids[0, 0, 0, 0] and grids[0, 1, 9, 9] and grids[1, 0, 5, 5]


@pytest.mark.parametrize("cls", GAMES)
@pytest.mark.parametrize("name, dtype", [("uint8", torch.uint8), ("bool", torch.bool)])
def test_one_byte_observations_hold_the_float32_values(cls, name, dtype):
    """obs_dtype changes only the dtype: same 0/1 values as float32, step by step,
    across automatic resets, padding and final_obs; the space says the dtype."""
    kwargs = {"seed": 4, "pad_channels_to": 10, "max_episode_steps": 9}
    ref = cls(num_envs=8, **kwargs)
    small = cls(num_envs=8, obs_dtype=name, **kwargs)
    assert small.single_observation_space == gym.spaces.Box(0, 1, (10, 10, 10), np.dtype(name))
    assert small.reset(seed=4).dtype == dtype
    ref.reset(seed=4)
    actions = torch.randint(ref.single_action_space.n, (30, 8), generator=torch.Generator().manual_seed(0))
    for t in range(30):
        o_ref, r_ref, _, _, i_ref = ref.step(actions[t])
        o, r, _, _, i = small.step(actions[t])
        assert o.dtype == dtype and i["final_obs"].dtype == dtype and small.single_observation_space.contains(o[0].numpy())
        assert torch.equal(o.to(torch.float32), o_ref) and torch.equal(i["final_obs"].to(torch.float32), i_ref["final_obs"])
        assert torch.equal(r, r_ref)
    assert BreakoutEnv(num_envs=2, obs_dtype=torch.uint8).observe().dtype == torch.uint8


def test_bad_obs_dtype_names_the_choices():
    with pytest.raises(ValueError, match="float32, uint8, bool"):
        BreakoutEnv(obs_dtype="float16")
    with pytest.raises(ValueError, match="float32, uint8, bool"):
        BreakoutEnv(obs_dtype=torch.int64)


def test_paint_other_dtypes_and_cell_zero_not_cleared_by_left_out_cells():
    """Left-out cells must not clear a painted cell (0, 0) of channel 0, in every dtype."""
    from normrl.envs.minatar.common import paint

    y, x = torch.tensor([[0, -1, 0]]), torch.tensor([[0, 0, 0]])
    valid = torch.tensor([[True, True, False]])
    for dtype in (torch.float32, torch.uint8, torch.bool):
        planes = paint(1, 2, [(0, y, x, valid)], "cpu", dtype)
        assert planes.dtype == dtype and planes.is_contiguous() and planes.shape == (1, 2, 10, 10)
        assert planes[0, 0, 0, 0] == 1 and int(planes.to(torch.int64).sum()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("cls, kwargs", [
    (BreakoutEnv, {"max_episode_steps": 12, "pad_channels_to": 10, "obs_dtype": "uint8"}),
    (FreewayEnv, {}),
    (AsterixEnv, {"full_action_space": True}),
])
def test_compiled_step_equals_eager_step(cls, kwargs):
    """compile=True (torch.compile of pure_step, fullgraph) gives the eager step's
    outputs, info and next state exactly, with the same draws, across resets."""
    eager = cls(num_envs=16, seed=2, **kwargs)
    compiled = cls(num_envs=16, seed=2, compile=True, **kwargs)
    gen = torch.Generator().manual_seed(1)
    resets = 0
    for _ in range(60):
        actions = torch.randint(eager.single_action_space.n, (16,), generator=gen)
        draws = eager.sample_draws()
        out_e = eager.step_with_draws(actions, draws)
        out_c = compiled.step_with_draws(actions, draws)
        for a, b in zip(out_e[:4], out_c[:4]):
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert out_e[4].keys() == out_c[4].keys()
        assert all(torch.equal(out_e[4][k], out_c[4][k]) for k in out_e[4])
        assert all(torch.equal(eager.state[k], compiled.state[k]) for k in eager.state)
        assert torch.equal(eager.last_action, compiled.last_action)
        resets += int(out_e[4]["done"].sum())
    if cls is not FreewayEnv:  # Freeway episodes last 2,501 steps
        assert resets > 0
