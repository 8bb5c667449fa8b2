"""Asterix against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import pytest
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.asterix import AsterixEnv


class AsterixAdapter(oracle.Adapter):
    game = "asterix"
    env_cls = AsterixEnv

    def read_reference(self, g):
        lanes = g.entities
        for i, e in enumerate(lanes):
            assert e is None or e[1] == i + 1
        return {
            "player_x": g.player_x, "player_y": g.player_y,
            "active": np.array([e is not None for e in lanes]),
            "x": np.array([0 if e is None else e[0] for e in lanes]),
            "right": np.array([e is not None and bool(e[2]) for e in lanes]),
            "gold": np.array([e is not None and bool(e[3]) for e in lanes]),
            "spawn_speed": g.spawn_speed, "spawn_timer": g.spawn_timer,
            "move_speed": g.move_speed, "move_timer": g.move_timer,
            "ramp_timer": g.ramp_timer, "ramp_index": g.ramp_index,
        }

    def step_script(self, step_draws):
        return {"_spawn_entity": [step_draws["spawn_side"], step_draws["spawn_gold"], step_draws["spawn_lane"]]}

    def reset_script(self, reset_draws):
        return {}


ADAPTER = AsterixAdapter()


def _collect(seed, n, ramping=True):
    games = oracle.collect_reference_states("asterix", n, seed=seed, difficulty_ramping=ramping)
    # Late-game states (fast spawns, full lanes, ramp boundaries) are rare under random
    # play; make some by fast-forwarding the timers of real states.
    rng = np.random.RandomState(seed)
    for g in games[::4]:
        g.spawn_speed = int(rng.randint(1, 11))
        g.move_speed = int(rng.randint(1, 6))
        g.spawn_timer = int(rng.randint(0, g.spawn_speed + 1))
        g.move_timer = int(rng.randint(0, g.move_speed + 1))
        g.ramp_timer = int(rng.choice([-1, 0, 1, 50]))
        g.ramp_index = int(rng.randint(0, 12))
    for g in games[1::8]:  # crowded lanes: spawns with few or no free lanes
        for lane in range(8):
            if g.entities[lane] is None and rng.rand() < 0.8 and lane + 1 != g.player_y:
                g.entities[lane] = [int(rng.randint(10)), lane + 1, bool(rng.rand() < 0.5), bool(rng.rand() < 1 / 3)]
        g.spawn_timer = 0
    for g in games[2::4]:  # an entity next to the player, heading for it: pickups and deaths
        lane = g.player_y - 1
        right = bool(rng.rand() < 0.5)
        g.entities[lane] = [g.player_x + int(rng.choice([-1, 0, 1])) * (-1 if right else 1), g.player_y,
                            right, bool(rng.rand() < 0.5)]
        if not 0 <= g.entities[lane][0] <= 9:
            g.entities[lane] = None
        g.move_timer = int(rng.choice([0, 1]))
    return games


@pytest.mark.parametrize("ramping", [True, False])
def test_one_step_from_reference_states(ramping):
    counts = oracle.check_one_step(ADAPTER, _collect(1, 500, ramping), seed=2, difficulty_ramping=ramping)
    assert counts["rewards"] > 5 and counts["terminals"] > 5


def test_lockstep_rollout_with_sticky_actions_and_resets():
    counts = oracle.check_lockstep(ADAPTER, num_envs=8, steps=400, seed=3)
    assert counts["terminals"] > 10 and counts["rewards"] > 10 and counts["sticky"] > 150


def test_random_policy_episode_distributions_match_reference():
    ref_returns, ref_lengths = oracle.reference_episodes("asterix", 300, seed=4)
    returns, lengths = oracle.torch_episodes(AsterixEnv(num_envs=300, seed=5), seed=6)
    for ours, theirs in ((returns, ref_returns), (lengths, ref_lengths)):
        se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se
        assert stats.ks_2samp(ours, theirs).pvalue > 0.001


def test_difficulty_ramp_schedule_matches_reference():
    """Speeds after many steps of a player that never dies (no enemy can reach it when
    all spawns are gold) equal the reference's ramp, with and without ramping."""
    for ramping in (True, False):
        env = AsterixEnv(num_envs=1, seed=0, sticky_action_prob=0.0, difficulty_ramping=ramping)
        ref = oracle.make_reference("asterix", difficulty_ramping=ramping)
        scripted = oracle.install_script(ref)
        for t in range(1500):
            draws = env.sample_draws()
            draws["step"]["spawn_gold"].zero_()  # every spawn is gold
            env.step_with_draws(torch.tensor([0]), draws)
            scripted.load({"act": [0.5], **ADAPTER.step_script(oracle.row(draws["step"], 0))})
            ref.act(0)
            if t % 100 == 0 or t == 1499:
                row = oracle.row(env.state, 0)
                assert (int(row["spawn_speed"]), int(row["move_speed"]), int(row["ramp_index"])) == (
                    ref.env.spawn_speed, ref.env.move_speed, ref.env.ramp_index), t
        expected = (1, 1, 9) if ramping else (10, 5, 0)
        assert (ref.env.spawn_speed, ref.env.move_speed, ref.env.ramp_index) == expected
