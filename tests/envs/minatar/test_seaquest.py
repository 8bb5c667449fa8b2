"""Seaquest against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import pytest
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.seaquest import LISTS, SeaquestEnv


def _slots(items, prefix):
    """A reference list as our padded ``<prefix>_<field>`` slot arrays."""
    capacity, names = LISTS[prefix]
    assert len(items) <= capacity, f"{prefix}: {len(items)} entries exceed capacity {capacity}"
    out = {f"{prefix}_valid": np.array([i < len(items) for i in range(capacity)])}
    for j, name in enumerate(names):
        column = [int(item[j]) for item in items] + [0] * (capacity - len(items))
        out[f"{prefix}_{name}"] = np.array(column, dtype=bool if name == "right" else np.int64)
    return out


class SeaquestAdapter(oracle.Adapter):
    game = "seaquest"
    env_cls = SeaquestEnv

    def read_reference(self, g):
        row = {
            "player_x": g.sub_x, "player_y": g.sub_y, "player_right": bool(g.sub_or),
            "oxygen": g.oxygen, "diver_count": g.diver_count, "shot_timer": g.shot_timer,
            "surface": bool(g.surface), "e_spawn_speed": g.e_spawn_speed, "e_spawn_timer": g.e_spawn_timer,
            "d_spawn_timer": g.d_spawn_timer, "move_speed": g.move_speed, "ramp_index": g.ramp_index,
        }
        for prefix, items in (("f_bullet", g.f_bullets), ("e_bullet", g.e_bullets), ("fish", g.e_fish),
                              ("esub", g.e_subs), ("diver", g.divers)):
            row.update(_slots(items, prefix))
        return row

    def step_script(self, d):
        return {"_spawn_enemy": [d["enemy_side"], d["enemy_is_sub"], d["enemy_row"]],
                "_spawn_diver": [d["diver_side"], d["diver_row"]]}

    def reset_script(self, reset_draws):
        return {}


ADAPTER = SeaquestAdapter()


def _crowd(g, rng):
    """Make a late-game, crowded version of a real state: fast spawns and moves, many
    enemies (some overlapping), bullets, divers near the player, full diver bar."""
    g.e_spawn_speed = int(rng.randint(1, 21))
    g.move_speed = int(rng.randint(2, 6))
    g.ramp_index = int(rng.randint(0, 25))
    g.e_spawn_timer = int(rng.randint(0, 2))
    g.d_spawn_timer = int(rng.randint(0, 2))
    g.shot_timer = int(rng.randint(0, 2))
    g.sub_y = int(rng.randint(0, 9))
    for _ in range(rng.randint(0, 12)):
        y, lr = int(rng.randint(1, 9)), bool(rng.rand() < 0.5)
        entity = [int(rng.randint(0, 10)), y, lr, int(rng.randint(0, 3))]
        (g.e_subs.append(entity + [int(rng.randint(0, 3))]) if rng.rand() < 0.4 else g.e_fish.append(entity))
    for _ in range(rng.randint(0, 4)):  # entities next to the player, heading for it
        lr = bool(rng.rand() < 0.5)
        x = g.sub_x + (-1 if lr else 1) * int(rng.randint(0, 2))
        if 0 <= x <= 9 and 1 <= g.sub_y <= 8:
            kind = rng.randint(4)
            entity = [x, g.sub_y, lr, int(rng.randint(0, 2))]
            [g.e_fish, g.divers, g.e_bullets, g.e_subs][kind].append(
                entity + [int(rng.randint(0, 2))] if kind == 3 else entity[:3] if kind == 2 else entity)
    # friendly bullets in front of enemies
    for e in list(g.e_fish + g.e_subs)[: rng.randint(0, 3)]:
        if len(g.f_bullets) < 2:
            bx = e[0] + int(rng.choice([-2, -1, 1, 2]))
            if 0 <= bx <= 9:
                g.f_bullets.append([bx, e[1], bool(bx < e[0])])
    g.diver_count = int(rng.choice([-1, 0, 1, 5, 6]))
    g.oxygen = int(rng.choice([0, 1, 55, 150, 200]))
    g.surface = bool(rng.rand() < 0.5)


def _collect(seed, n, ramping=True):
    games = oracle.collect_reference_states("seaquest", n, seed=seed, difficulty_ramping=ramping)
    rng = np.random.RandomState(seed)
    for g in games[::2]:
        _crowd(g, rng)
    return games


@pytest.mark.parametrize("ramping", [True, False])
def test_one_step_from_reference_states(ramping):
    counts = oracle.check_one_step(ADAPTER, _collect(1, 800, ramping), seed=2, difficulty_ramping=ramping)
    assert counts["rewards"] > 20 and counts["terminals"] > 50
