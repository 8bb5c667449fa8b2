import pytest
import torch

from normrl.agents.common.replay_buffer import ReplayBuffer


def _fill(rb, rewards, terminated, truncated, task_id=0):
    """Add one single-env step per reward; obs = step index, next_obs = index + 100."""
    for i, (r, te, tr) in enumerate(zip(rewards, terminated, truncated)):
        rb.add(torch.tensor([[float(i)]]), torch.tensor([i % 2]), torch.tensor([r]), torch.tensor([[i + 100.0]]),
               torch.tensor([te]), torch.tensor([tr]), task_id)


def _by_start(sample):
    return {int(o): (float(r), float(n), float(d)) for o, r, n, d in zip(sample.obs[:, 0], sample.rewards, sample.next_obs[:, 0], sample.discounts)}


def test_n_step_returns_hand_computed():
    gamma = 0.5
    rb = ReplayBuffer(16, 1, (1,))
    # steps:      0    1    2(term) 3    4(trunc) 5    6    7
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    term = [False, False, True, False, False, False, False, False]
    trunc = [False, False, False, False, True, False, False, False]
    _fill(rb, rewards, term, trunc)
    got = _by_start(rb.sample(2000, n_step=3, gamma=gamma, generator=torch.Generator().manual_seed(0)))
    # starts 0..5 are valid (start + 2 <= 7); 6 and 7 are not.
    assert sorted(got) == [0, 1, 2, 3, 4, 5]
    # start 0: 1 + .5*2 + .25*4, ends at terminal step 2 -> no bootstrap
    assert got[0] == (3.0, 102.0, 0.0)
    # start 1: 2 + .5*4 (terminal at 2) -> m=2, discount 0
    assert got[1] == (4.0, 102.0, 0.0)
    # start 2: terminal immediately
    assert got[2] == (4.0, 102.0, 0.0)
    # start 3: 8 + .5*16, truncated at 4 -> bootstrap from next_obs of step 4, gamma^2
    assert got[3] == (16.0, 104.0, 0.25)
    # start 4: truncated at once -> gamma^1
    assert got[4] == (16.0, 104.0, 0.5)
    # start 5: 32 + .5*64 + .25*128, full 3 steps -> gamma^3, next_obs of step 7
    assert got[5] == (32.0 + 32.0 + 32.0, 107.0, 0.125)


def test_one_step_discount_and_task_ids():
    rb = ReplayBuffer(8, 1, (1,))
    _fill(rb, [1.0, 2.0], [False, True], [False, False], task_id=3)
    s = rb.sample(100, gamma=0.9, generator=torch.Generator().manual_seed(1))
    got = _by_start(s)
    assert got[0] == (1.0, 100.0, pytest.approx(0.9))
    assert got[1] == (2.0, 101.0, 0.0)
    assert (s.task_ids == 3).all()


def test_ring_wraps_and_samples_only_the_newest_rows():
    rb = ReplayBuffer(8, 2, (1,))  # 4 rows of 2 envs
    assert rb.capacity == 8 and rb.rows == 4
    for i in range(6):  # rows 0..5 -> rows 2..5 survive
        obs = torch.tensor([[float(i)], [float(i) + 0.5]])
        rb.add(obs, torch.zeros(2, dtype=torch.long), torch.zeros(2), obs, torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool), task_id=torch.tensor([i, i]))
    assert len(rb) == 8
    s = rb.sample(500, generator=torch.Generator().manual_seed(0))
    assert set(s.obs[:, 0].tolist()) == {2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5}
    assert torch.equal(s.task_ids, s.obs[:, 0].floor().long())
    # 2-step returns cannot start at the newest row (5)
    s2 = rb.sample(500, n_step=2, generator=torch.Generator().manual_seed(0))
    assert set(s2.obs[:, 0].tolist()) == {2.0, 2.5, 3.0, 3.5, 4.0, 4.5}
    rb.clear()
    assert len(rb) == 0
    with pytest.raises(ValueError, match="add more transitions"):
        rb.sample(1)


def test_uint8_storage_round_trips_frames():
    rb = ReplayBuffer(4, 2, (3, 2), obs_dtype=torch.uint8)
    frames = torch.randint(0, 256, (2, 3, 2), dtype=torch.uint8)
    rb.add(frames, torch.tensor([1, 0]), torch.ones(2), frames.flip(0), torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool))
    assert rb.obs.dtype == torch.uint8 and rb.obs.element_size() == 1
    s = rb.sample(50, generator=torch.Generator().manual_seed(0))
    for o, a, n in zip(s.obs, s.actions, s.next_obs):
        i = 0 if a == 1 else 1
        assert torch.equal(o, frames[i]) and torch.equal(n, frames.flip(0)[i])


def test_state_dict_round_trip_and_episode_boundary():
    rb = ReplayBuffer(6, 1, (1,))
    _fill(rb, [1.0, 2.0, 4.0], [False] * 3, [False] * 3)
    rb.mark_episode_boundary()  # e.g. set_env: the next row starts a new series
    rb.add(torch.tensor([[3.0]]), torch.tensor([0]), torch.tensor([8.0]), torch.tensor([[103.0]]), torch.tensor([False]), torch.tensor([False]))
    got = _by_start(rb.sample(300, n_step=2, gamma=0.5, generator=torch.Generator().manual_seed(0)))
    assert got[1] == (2.0 + 0.5 * 4.0, 102.0, 0.25)
    assert got[2] == (4.0, 102.0, 0.5)  # cut at the boundary, bootstraps from its own next_obs
    rb2 = ReplayBuffer(6, 1, (1,))
    rb2.load_state_dict(rb.state_dict())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = rb.sample(32, 2, 0.5, g1), rb2.sample(32, 2, 0.5, g2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="shape mismatch"):
        ReplayBuffer(8, 1, (1,)).load_state_dict(rb.state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(1, 2, (1,))
    with pytest.raises(ValueError, match="num_envs"):
        ReplayBuffer(4, 0, (1,))


@pytest.mark.parametrize("n_step", [1, 3])
def test_channels_last_storage_samples_the_same_batches(n_step):
    """Frames stored (H, W, C) come out equal to the standard layout's, channels-last,
    across ring wrap-around, n-step returns and a state_dict round trip between layouts."""
    g = torch.Generator().manual_seed(0)
    plain = ReplayBuffer(24, 3, (4, 5, 6), obs_dtype=torch.uint8)
    fast = ReplayBuffer(24, 3, (4, 5, 6), obs_dtype=torch.uint8, channels_last=True)
    for step in range(11):  # 11 rows into an 8-row ring
        obs = torch.randint(0, 256, (3, 4, 5, 6), dtype=torch.uint8, generator=g)
        nxt = torch.randint(0, 256, (3, 4, 5, 6), dtype=torch.uint8, generator=g)
        args = (obs, torch.randint(0, 4, (3,), generator=g), torch.rand(3, generator=g), nxt,
                torch.rand(3, generator=g) < 0.2, torch.rand(3, generator=g) < 0.1, step)
        plain.add(*args)
        fast.add(*args)
    assert fast.obs.shape == plain.obs.shape and torch.equal(fast.obs, plain.obs)
    a = plain.sample(64, n_step, 0.9, torch.Generator().manual_seed(1))
    b = fast.sample(64, n_step, 0.9, torch.Generator().manual_seed(1))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert b.obs.is_contiguous(memory_format=torch.channels_last) and b.next_obs.is_contiguous(memory_format=torch.channels_last)
    restored = ReplayBuffer(24, 3, (4, 5, 6), obs_dtype=torch.uint8, channels_last=True)
    restored.load_state_dict(plain.state_dict())
    c = restored.sample(64, n_step, 0.9, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, c))
    with pytest.raises(ValueError, match="channels_last"):
        ReplayBuffer(4, 1, (3,), channels_last=True)
