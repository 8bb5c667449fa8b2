"""AtariEnv on real ROMs: shapes, auto-reset, raw episode returns, clipping, life loss,
action sets and errors. Few envs and steps, one emulator thread."""
import numpy as np
import pytest
import torch

from normrl.envs import make_env
from normrl.envs.atari import AtariEnv, list_atari_games, rom_id

pytest.importorskip("ale_py")


def _atari(game, **kw):
    kw.setdefault("num_threads", 1)
    return make_env(f"ALE/{game}-v5", num_envs=kw.pop("num_envs", 2), seed=kw.pop("seed", 7), **kw)


def _actions(gen, n_actions, num_envs):
    return torch.randint(0, n_actions, (num_envs,), generator=gen)


def test_shapes_dtypes_and_spaces():
    env = _atari("Pong")
    try:
        assert env.single_observation_space.shape == (4, 84, 84)
        assert env.single_observation_space.dtype == np.uint8
        assert env.single_action_space.n == 6  # Pong's minimal set
        assert env.action_names[:2] == ["NOOP", "FIRE"]
        obs = env.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8 and obs.device.type == "cpu"
        # a fresh episode's stack holds only its first frame; older slots are zero
        assert obs[:, :3].sum() == 0 and obs[:, 3].float().mean() > 0
        obs, reward, terminated, truncated, info = env.step(torch.zeros(2, dtype=torch.int64))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == torch.uint8
        assert reward.shape == (2,) and reward.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        assert info["done"].dtype == torch.bool
        assert info["episode_return"].dtype == torch.float32
        assert info["episode_length"].dtype == torch.int64 and info["episode_length"].tolist() == [1, 1]
        assert info["final_obs"].shape == obs.shape
        # the new frame is pushed into the stack: after one step the last two slots are filled
        assert obs[:, :2].sum() == 0 and obs[:, 2].float().mean() > 0
    finally:
        env.close()


def test_full_action_space_has_18_actions():
    minimal = _atari("Breakout", num_envs=1)
    full = _atari("Breakout", num_envs=1, full_action_space=True)
    try:
        assert minimal.single_action_space.n == 4
        assert minimal.action_names == ["NOOP", "FIRE", "RIGHT", "LEFT"]
        assert full.single_action_space.n == 18
        assert full.action_names[0] == "NOOP" and len(set(full.action_names)) == 18
        full.reset()
        full.step(torch.tensor([17]))  # the last full-set action is legal
        minimal.reset()
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            minimal.step(torch.tensor([4]))
    finally:
        minimal.close()
        full.close()


def test_autoreset_and_raw_episode_return_with_clipping():
    """Same seed and actions: the clipped env's rewards are sign(raw), both report the raw
    score; the episode totals equal the sums of raw rewards; after done the obs is the next
    episode's first stack while final_obs holds the terminal one."""
    raw_env = _atari("SpaceInvaders", seed=3)
    clip_env = _atari("SpaceInvaders", seed=3, clip_rewards=True)
    gen = torch.Generator().manual_seed(0)
    try:
        raw_env.reset()
        clip_env.reset()
        running = torch.zeros(2, dtype=torch.float64)
        steps = torch.zeros(2, dtype=torch.int64)
        finished = []
        saw_big_reward = False
        for _ in range(700):
            actions = _actions(gen, 6, 2)
            obs, r, term, trunc, info = raw_env.step(actions)
            cobs, cr, cterm, ctrunc, cinfo = clip_env.step(actions)
            assert torch.equal(obs, cobs)
            assert torch.equal(cr, torch.sign(r))
            assert set(cr.tolist()) <= {-1.0, 0.0, 1.0}
            saw_big_reward |= bool((r > 1).any())
            running += r.double()
            steps += 1
            done = info["done"]
            assert torch.equal(done, term | trunc)
            assert torch.equal(cinfo["episode_return"], info["episode_return"])
            assert torch.equal(info["episode_length"], steps)
            assert torch.allclose(info["episode_return"].double(), running)
            for i in done.nonzero().flatten().tolist():
                finished.append(running[i].item())
                assert obs[i, :3].sum() == 0, "obs after done must be the next episode's first stack"
                assert info["final_obs"][i, :3].float().mean() > 0
                assert not torch.equal(info["final_obs"][i], obs[i])
            not_done = ~done
            assert torch.equal(info["final_obs"][not_done], obs[not_done])
            running[done] = 0
            steps[done] = 0
        assert saw_big_reward, "SpaceInvaders scores 5..30 per invader; raw rewards must exceed 1"
        assert len(finished) >= 2 and max(finished) > 1
    finally:
        raw_env.close()
        clip_env.close()


def test_episodic_life_terminates_on_life_loss_but_episode_runs_to_game_over():
    plain = _atari("Breakout", num_envs=1, seed=11)
    lifey = _atari("Breakout", num_envs=1, seed=11, episodic_life=True)
    gen = torch.Generator().manual_seed(1)
    try:
        plain.reset()
        lifey.reset()
        life_losses = 0
        game_overs = 0
        for _ in range(600):
            a = _actions(gen, 4, 1)
            obs, r, term, trunc, info = plain.step(a)
            lobs, lr, lterm, ltrunc, linfo = lifey.step(a)
            assert torch.equal(obs, lobs) and torch.equal(r, lr)
            assert torch.equal(info["episode_return"], linfo["episode_return"])
            assert torch.equal(linfo["done"], info["done"])
            assert torch.equal(term, info["done"] & ~trunc)  # no life signal without the option
            if lterm.item() and not linfo["done"].item():
                life_losses += 1
            game_overs += int(info["done"].item())
        assert life_losses >= 4  # Breakout has 5 lives
        assert game_overs >= 1
    finally:
        plain.close()
        lifey.close()


def test_same_seed_same_trajectory_and_reseed():
    a, b = _atari("Pong", num_envs=1, seed=5), _atari("Pong", num_envs=1, seed=5)
    try:
        a.reset()
        b.reset()
        for t in range(60):
            act = torch.tensor([t % 6])
            oa = a.step(act)[0]
            ob = b.step(act)[0]
            assert torch.equal(oa, ob)
    finally:
        a.close()
        b.close()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="Did you mean Pong"):
        make_env("ALE/Pnog-v5")
    with pytest.raises(ValueError, match="Valid games: .*SpaceInvaders"):
        AtariEnv("NotAGame")
    with pytest.raises(ValueError, match="repeat_action_probability"):
        AtariEnv("Pong", repeat_action_probability=1.5)
    env = _atari("Pong", num_envs=2)
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(torch.zeros(2, dtype=torch.int64))
        env.reset()
        with pytest.raises(ValueError, match=r"shape \(2,\)"):
            env.step(torch.zeros(3, dtype=torch.int64))
    finally:
        env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_game_name_spellings():
    assert rom_id("MsPacman") == "ms_pacman"
    assert rom_id("ms_pacman") == "ms_pacman"
    assert rom_id("ALE/SpaceInvaders-v5") == "space_invaders"
    games = list_atari_games()
    assert {"Pong", "Breakout", "MontezumaRevenge", "Pitfall2"} <= set(games)


def test_adapter_passes_ale_data_through_unchanged():
    """Same seed and actions as ale-py's own vector env: identical frames and rewards."""
    from ale_py.vector_env import AtariVectorEnv

    ref = AtariVectorEnv("breakout", 2, num_threads=1, autoreset_mode="SameStep", reward_clipping=False,
                         repeat_action_probability=0.25)
    env = AtariEnv("Breakout", num_envs=2, seed=21, num_threads=1)
    gen = torch.Generator().manual_seed(3)
    try:
        ref_obs, _ = ref.reset(seed=21)
        assert np.array_equal(env.reset().numpy(), ref_obs)
        for _ in range(150):
            a = _actions(gen, 4, 2)
            ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a.numpy())
            obs, r, term, trunc, info = env.step(a)
            assert np.array_equal(obs.numpy(), ref_obs)
            assert np.array_equal(r.numpy(), ref_r.astype(np.float32))
            assert np.array_equal(info["done"].numpy(), ref_term | ref_trunc)
    finally:
        ref.close()
        env.close()


def test_sequential_atari_stream_through_the_scheduler():
    """Two games with the full action set share spaces, so one agent moves between them."""
    from normrl.continual import TaskScheduler, stream_tasks

    class RandomAgent:
        def __init__(self):
            self.num_steps, self.task_id, self.env, self.spaces = 0, 0, None, []

        def set_env(self, env):
            self.env = env
            self.spaces.append((env.single_observation_space.shape, env.single_action_space.n, env.game))
            self.obs = env.reset()

        def learn(self, steps):
            gen = torch.Generator().manual_seed(self.num_steps)
            for _ in range(steps):
                self.obs = self.env.step(_actions(gen, 18, self.env.num_envs))[0]
            self.num_steps += steps

        def evaluate(self, env, episodes):
            raise AssertionError("eval_episodes=0 must not evaluate")

    agent = RandomAgent()
    sched = TaskScheduler(stream_tasks("atari-Pong,Breakout", 20), cycles=1, num_envs=1, eval_episodes=0)
    result = sched.run(agent)
    assert agent.spaces == [((4, 84, 84), 18, "Pong"), ((4, 84, 84), 18, "Breakout")]
    assert agent.num_steps == 40 and result.completed and result.matrix.shape == (2, 2)
