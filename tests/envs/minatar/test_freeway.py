"""Freeway against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.freeway import FreewayEnv

# A random policy that mostly walks up, so that crossings (rewards) happen often.
UP_HEAVY = [0.15, 0.7, 0.15]  # over the minimal set (no-op, up, down)


class FreewayAdapter(oracle.Adapter):
    game = "freeway"
    env_cls = FreewayEnv

    def read_reference(self, g):
        assert [c[1] for c in g.cars] == list(range(1, 9))
        return {
            "pos": g.pos, "move_timer": g.move_timer, "terminate_timer": g.terminate_timer,
            "car_x": np.array([c[0] for c in g.cars]), "car_timer": np.array([c[2] for c in g.cars]),
            "car_speed": np.array([c[3] for c in g.cars]),
        }

    def step_script(self, step_draws):
        return {"_randomize_cars": [step_draws["speed"], step_draws["direction"]]}

    def reset_script(self, reset_draws):
        return {"_randomize_cars": [reset_draws["speed"], reset_draws["direction"]]}


ADAPTER = FreewayAdapter()


def _up_heavy(rng, actions):
    return actions[int(np.searchsorted(np.cumsum(UP_HEAVY), rng.rand(), side="right"))]


def test_one_step_from_reference_states():
    games = oracle.collect_reference_states("freeway", 400, seed=1, max_gap=40, policy=_up_heavy)
    # Put some states right before the time limit so that termination is exercised.
    for g in games[::20]:
        g.terminate_timer = 0
    for g in games[3::10]:  # one step below the top, free to move: "up" crosses
        g.pos, g.move_timer = 1, 0
    # All 6 actions, half of them "up" so that crossings happen.
    rng = np.random.RandomState(2)
    actions = [2 if i % 2 else int(rng.randint(6)) for i in range(len(games))]
    counts = oracle.check_one_step(ADAPTER, games, seed=2, actions=actions)
    assert counts["rewards"] >= 30 and counts["terminals"] == 20


def test_lockstep_rollout_with_sticky_actions_crossings_and_time_limit():
    counts = oracle.check_lockstep(ADAPTER, num_envs=2, steps=2600, seed=3)
    assert counts["terminals"] == 2 and counts["rewards"] >= 1 and counts["sticky"] > 300


def test_episode_length_is_the_time_limit_and_return_distribution_matches_reference():
    ref_returns, ref_lengths = oracle.reference_episodes("freeway", 60, seed=4, action_probs=UP_HEAVY)
    returns, lengths = oracle.torch_episodes(FreewayEnv(num_envs=60, seed=5), seed=6, action_probs=UP_HEAVY)
    assert set(ref_lengths.tolist()) == {2501} and set(lengths.tolist()) == {2501}
    se = np.sqrt(returns.var() / len(returns) + ref_returns.var() / len(ref_returns))
    assert ref_returns.mean() > 5
    assert abs(returns.mean() - ref_returns.mean()) < 4 * se
    assert stats.ks_2samp(returns, ref_returns).pvalue > 0.001


def test_speed_draws_cover_one_to_five_in_both_directions():
    env = FreewayEnv(num_envs=500, seed=0)
    speed = env.state["car_speed"]
    assert set(speed.unique().tolist()) == {-5, -4, -3, -2, -1, 1, 2, 3, 4, 5}
    assert torch.equal(env.state["car_timer"], speed.abs())
