"""Breakout against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import torch
from scipy import stats

from normrl.envs.minatar.breakout import BreakoutEnv
import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py


class BreakoutAdapter(oracle.Adapter):
    game = "breakout"
    env_cls = BreakoutEnv

    def read_reference(self, g):
        return {
            "ball_x": g.ball_x, "ball_y": g.ball_y, "ball_dir": g.ball_dir, "pos": g.pos,
            "last_x": g.last_x, "last_y": g.last_y, "strike": bool(g.strike),
            "brick_map": np.asarray(g.brick_map, dtype=bool),
        }

    def step_script(self, step_draws):
        return {}

    def reset_script(self, reset_draws):
        return {"reset": [reset_draws["ball_start"]]}


ADAPTER = BreakoutAdapter()


def test_reset_matches_reference_for_both_ball_starts():
    env = BreakoutEnv(num_envs=2, seed=0)
    state = env.initial_state({"ball_start": torch.tensor([0.2, 0.7])})
    for i, u in enumerate((0.2, 0.7)):
        ref = oracle.make_reference("breakout")
        oracle.install_script(ref).load({"reset": [u]})
        ref.reset()
        np.testing.assert_array_equal(env.observe(state)[i].numpy(), oracle.reference_obs(ref.env))
        assert oracle.row(state, i).keys() == ADAPTER.read_reference(ref.env).keys()


def test_one_step_from_reference_states():
    games = oracle.collect_reference_states("breakout", 600, seed=1)
    # Random play rarely reaches late-game states: riddled brick walls (the ball inside
    # the wall, two brick contacts in a row with the `strike` rule) and cleared walls
    # (refill). Make them from real states.
    rng = np.random.RandomState(1)
    for g in games[::3]:
        g.brick_map = np.zeros((10, 10))
        g.brick_map[1:7] = rng.rand(6, 10) < 0.4
        g.strike = bool(rng.rand() < 0.5)
    for g in games[1::6]:
        g.brick_map = np.zeros((10, 10))
    counts = oracle.check_one_step(ADAPTER, games, seed=2)
    assert counts["rewards"] > 25 and counts["terminals"] > 5


def test_lockstep_rollout_with_sticky_actions_and_resets():
    counts = oracle.check_lockstep(ADAPTER, num_envs=8, steps=300, seed=3)
    assert counts["terminals"] > 10 and counts["rewards"] > 20 and counts["sticky"] > 100


def test_random_policy_episode_distributions_match_reference():
    ref_returns, ref_lengths = oracle.reference_episodes("breakout", 400, seed=4)
    returns, lengths = oracle.torch_episodes(BreakoutEnv(num_envs=400, seed=5), seed=6)
    for ours, theirs in ((returns, ref_returns), (lengths, ref_lengths)):
        se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se
        assert stats.ks_2samp(ours, theirs).pvalue > 0.001
