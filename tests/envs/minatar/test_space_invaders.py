"""SpaceInvaders against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import pytest
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.space_invaders import SpaceInvadersEnv


class SpaceInvadersAdapter(oracle.Adapter):
    game = "space_invaders"
    env_cls = SpaceInvadersEnv

    def read_reference(self, g):
        return {
            "pos": g.pos,
            "alien_map": np.asarray(g.alien_map, dtype=bool),
            "f_bullet_map": np.asarray(g.f_bullet_map, dtype=bool),
            "e_bullet_map": np.asarray(g.e_bullet_map, dtype=bool),
            "alien_dir": g.alien_dir, "enemy_move_interval": g.enemy_move_interval,
            "alien_move_timer": g.alien_move_timer, "alien_shot_timer": g.alien_shot_timer,
            "ramp_index": g.ramp_index, "shot_timer": g.shot_timer,
        }

    def step_script(self, step_draws):
        return {}

    def reset_script(self, reset_draws):
        return {}


ADAPTER = SpaceInvadersAdapter()


def _collect(seed, n, ramping=True):
    games = oracle.collect_reference_states("space_invaders", n, seed=seed, difficulty_ramping=ramping)
    # Random play rarely thins a wave, brings it to the bottom, or clears it; make such
    # states from real ones.
    rng = np.random.RandomState(seed)
    for g in games[::3]:  # thinned, lowered waves: speed-up, nearest-shooter choice, drops, bottom row
        keep = rng.rand(10, 10) < rng.choice([0.05, 0.2, 0.5])
        g.alien_map = np.roll(g.alien_map * keep, int(rng.randint(0, 7)), axis=0)
        if not g.alien_map.any():
            g.alien_map[int(rng.randint(0, 10)), int(rng.randint(0, 10))] = 1
        g.alien_move_timer = int(rng.randint(0, 2))
        g.alien_shot_timer = int(rng.randint(0, 2))
        g.enemy_move_interval = int(rng.randint(6, 13))
    for g in games[1::6]:  # a single alien under a rising bullet: the wave clears and refills
        g.alien_map = np.zeros((10, 10))
        y, x = int(rng.randint(0, 8)), int(rng.randint(0, 10))
        g.alien_map[y, x] = 1
        g.f_bullet_map[y + 1, x] = 1
        g.alien_move_timer = 1
        g.enemy_move_interval = int(rng.randint(5, 13))
    for g in games[2::6]:  # enemy bullets falling around the cannon
        g.e_bullet_map[8, max(0, g.pos - 1): g.pos + 2] = 1
    return games


@pytest.mark.parametrize("ramping", [True, False])
def test_one_step_from_reference_states(ramping):
    counts = oracle.check_one_step(ADAPTER, _collect(1, 600, ramping), seed=2, difficulty_ramping=ramping)
    assert counts["rewards"] > 50 and counts["terminals"] > 50


def test_lockstep_rollout_with_sticky_actions_and_resets():
    counts = oracle.check_lockstep(ADAPTER, num_envs=8, steps=400, seed=3)
    assert counts["terminals"] > 5 and counts["rewards"] > 50 and counts["sticky"] > 150


def test_lockstep_full_action_space_without_ramping():
    counts = oracle.check_lockstep(ADAPTER, num_envs=4, steps=300, seed=7, full_action_space=True,
                                   difficulty_ramping=False, sticky_action_prob=0.0)
    assert counts["terminals"] > 2 and counts["rewards"] > 20


def test_random_policy_episode_distributions_match_reference():
    ref_returns, ref_lengths = oracle.reference_episodes("space_invaders", 200, seed=4)
    returns, lengths = oracle.torch_episodes(SpaceInvadersEnv(num_envs=200, seed=5), seed=6)
    for ours, theirs in ((returns, ref_returns), (lengths, ref_lengths)):
        se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se
        assert stats.ks_2samp(ours, theirs).pvalue > 0.001


def test_action_sets():
    minimal = SpaceInvadersEnv(num_envs=1, seed=0)
    full = SpaceInvadersEnv(num_envs=1, seed=0, full_action_space=True)
    assert minimal.single_action_space.n == 4 and full.single_action_space.n == 6
    assert minimal.action_set.tolist() == [0, 1, 3, 5]
    assert full.action_set.tolist() == list(range(6))


def _clear_waves(env, waves):
    """Clear ``waves`` waves by hand: each time leave one alien directly above a rising bullet."""
    for _ in range(waves):
        s = {k: v.clone() for k, v in env.state.items()}
        s["alien_map"].zero_()
        s["alien_map"][:, 3, 4] = True
        s["f_bullet_map"].zero_()
        s["f_bullet_map"][:, 4, 4] = True
        s["alien_move_timer"].fill_(5)
        env.state = s
        _, reward, _, _, _ = env.step(torch.zeros(env.num_envs, dtype=torch.long))
        assert reward.tolist() == [1.0] * env.num_envs
        assert env.state["alien_map"].sum().item() == 24 * env.num_envs  # a fresh wave


def test_difficulty_ramp_speeds_up_each_wave_down_to_six():
    env = SpaceInvadersEnv(num_envs=2, seed=0, sticky_action_prob=0.0)
    intervals = []
    for _ in range(8):
        _clear_waves(env, 1)
        intervals.append(env.state["enemy_move_interval"].tolist())
    assert intervals == [[11] * 2, [10] * 2, [9] * 2, [8] * 2, [7] * 2, [6] * 2, [6] * 2, [6] * 2]
    assert env.state["ramp_index"].tolist() == [6, 6]
    flat = SpaceInvadersEnv(num_envs=2, seed=0, sticky_action_prob=0.0, difficulty_ramping=False)
    _clear_waves(flat, 3)
    assert flat.state["enemy_move_interval"].tolist() == [12, 12] and flat.state["ramp_index"].tolist() == [0, 0]


def test_state_dict_resume_is_exact():
    env = SpaceInvadersEnv(num_envs=3, seed=11)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        env.step(torch.randint(4, (3,), generator=gen))
    saved = env.state_dict()
    actions = [torch.randint(4, (3,), generator=gen) for _ in range(60)]
    first = [env.step(a) for a in actions]
    env.load_state_dict(saved)
    second = [env.step(a) for a in actions]
    for (o1, r1, t1, _, _), (o2, r2, t2, _, _) in zip(first, second):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2)
