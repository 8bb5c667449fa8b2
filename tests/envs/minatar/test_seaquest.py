"""Seaquest against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import pytest
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.seaquest import INITIAL, LISTS, SeaquestEnv

SCALARS = tuple(k for k in INITIAL if not k.endswith("_tail"))


def _slots(items, prefix, start=0, newest_first=False):
    """Reference entries as our slots ``(slots, valid + fields)``: from slot ``start`` on
    (a ring), or newest in slot 0 (shift slots)."""
    capacity, names = LISTS[prefix]
    assert len(items) <= capacity, f"{prefix}: {len(items)} entries exceed capacity {capacity}"
    out = np.zeros((capacity, len(names)), dtype=np.int64)
    for i, item in enumerate(reversed(items) if newest_first else items):
        out[(start + i) % capacity] = [1] + [int(v) for v in item]
    return out


def _dx(right):
    """Our heading field from the reference's ``right`` flag: 1 right, 255 (-1) left."""
    return 1 if right else 255


def _in_order(slots, tail=None):
    """The live entries of slots, oldest first: a ring's by slot rank counted from its
    tail; shift slots' by slot, the last slot the oldest."""
    width = slots.shape[0]
    order = range(width - 1, -1, -1) if tail is None else sorted(range(width), key=lambda k: (k - int(tail)) % width)
    return [tuple(int(v) for v in slots[k, 1:]) for k in order if slots[k, 0]]


class SeaquestAdapter(oracle.Adapter):
    game = "seaquest"
    env_cls = SeaquestEnv

    def read_reference(self, g):
        """Our state row for a reference game: the fish, then the subs, in the enemy ring
        from slot 0 (tail behind them); enemy bullets in the free slots after them (no
        live sub shadows those, and a sub spawned into one fires only after the bullet
        has left); friendly bullets and divers newest first."""
        row = {
            "player_x": g.sub_x, "player_y": g.sub_y, "player_right": bool(g.sub_or),
            "oxygen": g.oxygen, "diver_count": g.diver_count, "shot_timer": g.shot_timer,
            "surface": bool(g.surface), "e_spawn_speed": g.e_spawn_speed, "e_spawn_timer": g.e_spawn_timer,
            "d_spawn_timer": g.d_spawn_timer, "move_speed": g.move_speed, "ramp_index": g.ramp_index,
        }
        enemies = [[x, y, _dx(lr), 0, move, 0] for x, y, lr, move in g.e_fish]
        enemies += [[x, y, _dx(lr), 1, move, shot] for x, y, lr, move, shot in g.e_subs]
        assert len(enemies) + len(g.e_bullets) < LISTS["enemy"][0]
        row["enemy"], row["enemy_tail"] = _slots(enemies, "enemy"), len(enemies)
        row["e_bullet"] = _slots([[x, y, _dx(lr)] for x, y, lr in g.e_bullets], "e_bullet", start=len(enemies))
        for prefix, items, adds in (("f_bullet", g.f_bullets, g.shot_timer == 0), ("diver", g.divers, g.d_spawn_timer == 0)):
            assert len(items) + adds <= LISTS[prefix][0], f"{prefix}: no room for the next step's entity"
            items = [[x, y, _dx(lr)] + rest for x, y, lr, *rest in items]
            row[prefix] = _slots(items, prefix, newest_first=True)
        return row

    def comparable(self, state_row):
        """Scalars as ints; each list in reference order (fish and subs apart); enemy
        bullets as a sorted multiset (their order has no effect on the game)."""
        out = {k: int(state_row[k]) for k in SCALARS}
        enemies = _in_order(state_row["enemy"], state_row["enemy_tail"])
        out["fish"] = [e[:3] + e[4:5] for e in enemies if not e[3]]
        out["esub"] = [e[:3] + e[4:] for e in enemies if e[3]]
        out["e_bullet"] = sorted(tuple(int(v) for v in b[1:]) for b in state_row["e_bullet"] if b[0])
        for prefix in ("f_bullet", "diver"):
            out[prefix] = _in_order(state_row[prefix])
        return out

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
            entity = entity + [int(rng.randint(0, 2))] if kind == 3 else entity[:3] if kind == 2 else entity
            if kind != 1 or len(g.divers) < 3:  # play has at most 2 divers; the ring holds 4 with a spawn
                [g.e_fish, g.divers, g.e_bullets, g.e_subs][kind].append(entity)
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


def _events(before, after, action, draws):
    """Rare situations one step from ``before`` went through (for coverage counts)."""
    row = int(draws["enemy_row"] * 8) + 1
    lr = float(draws["enemy_side"]) < 0.5
    enemies = before.e_fish + before.e_subs
    return {
        "spawn_blocked": before.e_spawn_timer == 0 and any(e[1] == row and e[2] != lr for e in enemies),
        "spawn_beside_same_heading": before.e_spawn_timer == 0 and any(e[1] == row and e[2] == lr for e in enemies),
        "full_load_surfacing": before.diver_count == 6 and after.diver_count == -1,
        "out_of_oxygen": before.oxygen <= 0,
        "fire_on_cooldown": action == 5 and before.shot_timer > 0,
        "enemy_shot_down": len(after.e_fish) + len(after.e_subs) < len(enemies) and len(after.f_bullets) < len(before.f_bullets),
        "sub_fires": any(s[4] == 0 for s in before.e_subs),
        "pickup": after.diver_count > before.diver_count,
        "two_enemies_in_a_cell": len({tuple(e[:2]) for e in enemies}) < len(enemies),
    }


@pytest.mark.parametrize("ramping, seed", [(True, 1), (False, 1), (True, 11)])
def test_one_step_from_reference_states(ramping, seed):
    counts = oracle.check_one_step(ADAPTER, _collect(seed, 800, ramping), seed=seed + 1, difficulty_ramping=ramping,
                                   events=_events)
    assert counts["rewards"] > 20 and counts["terminals"] > 50
    rare = {k: v for k, v in counts.items() if k not in ("steps", "rewards", "terminals")}
    assert len(rare) == 9 and min(rare.values()) >= 1, rare  # each situation compared at least once


def test_lockstep_rollout_with_sticky_actions_and_resets():
    counts = oracle.check_lockstep(ADAPTER, num_envs=8, steps=400, seed=3)
    assert counts["terminals"] > 10 and counts["rewards"] > 5 and counts["sticky"] > 150


def test_lockstep_full_action_space_without_ramping():
    counts = oracle.check_lockstep(ADAPTER, num_envs=4, steps=300, seed=7, full_action_space=True,
                                   difficulty_ramping=False, sticky_action_prob=0.0)
    assert counts["terminals"] > 3


def test_random_policy_episode_distributions_match_reference():
    ref_returns, ref_lengths = oracle.reference_episodes("seaquest", 300, seed=4)
    returns, lengths = oracle.torch_episodes(SeaquestEnv(num_envs=300, seed=5), seed=6)
    for ours, theirs in ((returns, ref_returns), (lengths, ref_lengths)):
        se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se
        assert stats.ks_2samp(ours, theirs).pvalue > 0.001


def _enemy_span(state):
    """Per sub-env: slots from the oldest live enemy to the tail (what the ring must hold)."""
    width = state["enemy"].shape[1]
    rank = (torch.arange(width).view(1, -1) - state["enemy_tail"].long().view(-1, 1)) % width
    oldest = torch.where(state["enemy"][:, :, 0].bool(), rank, width).amin(1)
    return width - oldest


@pytest.mark.parametrize("dynamic", [False, True])
def test_immortal_stress_rollout_matches_reference_and_stays_within_capacity(dynamic):
    """Worst-case crowding (a spawn every step, slowest enemies, oxygen topped up and
    deaths ignored on both sides) for many steps: the whole state, list order included,
    matches the reference every step; the enemy ring's tail wraps around its 256 counts
    (and, with ``dynamic``, the ring is re-laid out as it widens); nothing comes near a
    capacity."""
    n, steps = 6, 330
    games = oracle.collect_reference_states("seaquest", n, seed=8)
    for g in games:
        g.e_spawn_speed, g.move_speed, g.e_spawn_timer, g.d_spawn_timer = 1, 5, 0, 0
    env = SeaquestEnv(num_envs=n, seed=9, full_action_space=True, dynamic_capacity=dynamic)
    env.state = oracle.stack_rows(env, [ADAPTER.read_reference(g) for g in games])
    if dynamic:
        env._set_enemy_width(4)
    gen = np.random.RandomState(10)
    scripted = oracle.ScriptedRandom()
    peak = {"span": 0, "enemy": 0, "e_bullet": 0, "f_bullet": 0, "diver": 0, "spawned": 0, "width": 0}
    for t in range(steps):
        for g in games:
            g.terminal, g.oxygen, g.random = False, 200, scripted
        env.state["oxygen"] = torch.full_like(env.state["oxygen"], 200)
        if dynamic:
            env._fit_capacity()
        actions = gen.randint(6, size=n)
        draws = env.sample_draws()["step"]
        before_tail = env.state["enemy_tail"]
        env.state, reward, _ = env.transition(env.state, torch.as_tensor(actions), draws)
        peak["spawned"] += int((env.state["enemy_tail"] - before_tail).max())
        for i, g in enumerate(games):
            scripted.load(ADAPTER.step_script(oracle.row(draws, i)))
            r, _ = g.act(int(actions[i]))
            assert float(reward[i]) == float(r), f"env {i} step {t}"
            theirs = ADAPTER.comparable(ADAPTER.read_reference(g))
            ours = ADAPTER.comparable(oracle.row(env.state, i))
            assert ours == theirs, f"env {i} step {t}"
        peak["span"] = max(peak["span"], int(_enemy_span(env.state).max()))
        peak["width"] = max(peak["width"], env.state["enemy"].shape[1])
        for p in ("enemy", "e_bullet", "f_bullet", "diver"):
            peak[p] = max(peak[p], int(env.state[p][..., 0].sum(1).max()))
    # the documented bounds (module docstring) and proof that the stress reached crowding
    assert peak["span"] <= 60 and peak["f_bullet"] <= 2 and peak["diver"] <= 2
    assert peak["enemy"] >= 30 and peak["e_bullet"] >= 5 and peak["spawned"] > 256
    assert peak["width"] == 64


def _surface_once(env, state, divers=1):
    """Put every sub-env just below the surface with ``divers`` on board and step up."""
    state = dict(state)
    state["player_y"] = torch.ones_like(state["player_y"])
    state["surface"] = torch.zeros_like(state["surface"])
    state["diver_count"] = torch.full_like(state["diver_count"], divers)
    draws = {k: torch.full((env.num_envs,), 0.5) for k in env.step_draw_shapes}
    return env.transition(state, torch.full((env.num_envs,), 2), draws)  # action 2 = up


def test_difficulty_ramp_per_surfacing():
    env = SeaquestEnv(num_envs=2, seed=0)
    state = env.initial_state({})
    speeds = []
    for _ in range(22):
        state, reward, terminal = _surface_once(env, state)
        assert not terminal.any() and reward.tolist() == [0.0, 0.0]
        speeds.append((int(state["e_spawn_speed"][0]), int(state["move_speed"][0]), int(state["ramp_index"][0])))
    # spawn interval drops by one per surfacing (to 1); move interval drops after odd ramp indices (to 2)
    expected, s, m, k = [], 20, 5, 0
    for _ in range(22):
        if s > 1 or m > 2:
            m -= 1 if (m > 2 and k % 2) else 0
            s -= 1 if s > 1 else 0
            k += 1
        expected.append((s, m, k))
    assert speeds == expected
    assert expected[:6] == [(19, 5, 1), (18, 4, 2), (17, 4, 3), (16, 3, 4), (15, 3, 5), (14, 2, 6)]
    assert expected[-1] == (1, 2, 19)
    flat = SeaquestEnv(num_envs=2, seed=0, difficulty_ramping=False)
    state = flat.initial_state({})
    for _ in range(3):
        state, _, _ = _surface_once(flat, state)
    assert state["e_spawn_speed"].tolist() == [20, 20] and state["move_speed"].tolist() == [5, 5]


def test_surfacing_rules_full_load_reward_and_negative_diver_count():
    env = SeaquestEnv(num_envs=1, seed=0)
    state = env.initial_state({})
    state["oxygen"] = torch.tensor([151], dtype=state["oxygen"].dtype)
    state, reward, terminal = _surface_once(env, state, divers=6)
    # the surfacing step itself uses no oxygen: the reward is paid on the 151 left
    assert reward.item() == 151 * 10 // 200 and not terminal.item()
    assert state["diver_count"].item() == -1 and state["oxygen"].item() == 200
    assert env.observe(state)[0, 8].sum().item() == 0  # empty diver bar
    state, reward, terminal = _surface_once(env, state, divers=-1)
    assert not terminal.item() and state["diver_count"].item() == -2
    state, reward, terminal = _surface_once(env, state, divers=0)
    assert terminal.item()


def test_action_sets():
    minimal = SeaquestEnv(num_envs=1, seed=0)
    full = SeaquestEnv(num_envs=1, seed=0, full_action_space=True)
    assert minimal.single_action_space.n == full.single_action_space.n == 6
    assert minimal.action_set.tolist() == full.action_set.tolist() == list(range(6))
    assert minimal.single_observation_space.shape == (10, 10, 10)


def _crowded_steps(env, actions, draws=None):
    """Step ``env`` with a spawn every step and oxygen topped up (so enemies pile up and
    the enemy ring widens); returns the step outputs."""
    env.state["e_spawn_speed"] = torch.ones_like(env.state["e_spawn_speed"])
    env.state["e_spawn_timer"] = env.state["e_spawn_timer"].clamp(max=1)
    env.state["oxygen"] = torch.full_like(env.state["oxygen"], 200)
    return env.step(actions) if draws is None else env.step_with_draws(actions, draws)


def test_state_dict_resume_is_exact_across_ring_width_changes():
    env = SeaquestEnv(num_envs=6, seed=11)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        _crowded_steps(env, torch.randint(6, (6,), generator=gen))
    saved = env.state_dict()
    actions = [torch.randint(6, (6,), generator=gen) for _ in range(80)]
    first, widths = [], set()
    for a in actions:
        first.append(_crowded_steps(env, a))
        widths.add(env.capacity["enemy"])
    assert len(widths) > 1  # the resumed run goes through width changes
    resumed = SeaquestEnv(num_envs=6, seed=0)
    resumed.load_state_dict(saved)
    second = [_crowded_steps(resumed, a) for a in actions]
    for (o1, r1, t1, _, i1), (o2, r2, t2, _, i2) in zip(first, second):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2)
        assert torch.equal(i1["episode_return"], i2["episode_return"])


def test_dynamic_capacity_widens_and_narrows_with_identical_outcomes():
    """A crowded rollout with on-demand enemy ring widths gives exactly the
    observations, rewards, terminals and states (as lists) of the fixed 64-slot ring;
    the width grows while crowded and shrinks back after a reset."""
    n = 16
    dyn = SeaquestEnv(num_envs=n, seed=12, dynamic_capacity=True)
    full = SeaquestEnv(num_envs=n, seed=12, dynamic_capacity=False)
    assert dyn.capacity["enemy"] == dyn.capacity["e_bullet"] == 4
    assert full.capacity == {p: cap for p, (cap, _) in LISTS.items()}
    gen = torch.Generator().manual_seed(13)
    widest = 4
    for t in range(160):
        actions = torch.randint(6, (n,), generator=gen)
        draws = full.sample_draws()
        out_dyn = _crowded_steps(dyn, actions, draws)
        out_full = _crowded_steps(full, actions, draws)
        for a, b in zip(out_dyn[:4], out_full[:4]):
            assert torch.equal(a, b), f"step {t}"
        for i in range(n):
            assert ADAPTER.comparable(oracle.row(dyn.state, i)) == ADAPTER.comparable(oracle.row(full.state, i))
        widest = max(widest, dyn.capacity["enemy"])
    assert widest >= 16
    dyn.reset(seed=1)
    for _ in range(3):
        dyn.step(torch.zeros(n, dtype=torch.int64))
    assert dyn.capacity["enemy"] == dyn.capacity["e_bullet"] == 4


def test_dynamic_capacity_choices():
    assert SeaquestEnv(num_envs=1, seed=0).dynamic_capacity  # CPU default
    with pytest.raises(ValueError, match="dynamic_capacity"):
        SeaquestEnv(num_envs=1, seed=0, dynamic_capacity="yes")


def test_state_dict_moves_between_dynamic_and_fixed_widths():
    dyn = SeaquestEnv(num_envs=3, seed=14)
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        dyn.step(torch.randint(6, (3,), generator=gen))
    saved = dyn.state_dict()
    fixed = SeaquestEnv(num_envs=3, seed=0, dynamic_capacity=False)
    fixed.load_state_dict(saved)
    assert fixed.capacity == {p: cap for p, (cap, _) in LISTS.items()}
    assert all(fixed.state[p].shape[1] == cap for p, (cap, _) in LISTS.items())
    for _ in range(40):
        actions = torch.randint(6, (3,), generator=gen)
        a, b = dyn.step(actions), fixed.step(actions)
        assert all(torch.equal(x, y) for x, y in zip(a[:4], b[:4]))


def test_state_dict_rejects_lists_of_the_wrong_width():
    env = SeaquestEnv(num_envs=2, seed=0)
    saved = env.state_dict()
    saved["state"]["diver"] = torch.zeros((2, 8, 5), dtype=torch.uint8)
    with pytest.raises(ValueError, match="'diver' has 8 slots"):
        SeaquestEnv(num_envs=2, seed=0).load_state_dict(saved)
    saved = env.state_dict()
    saved["state"]["enemy"] = torch.zeros((2, 12, 7), dtype=torch.uint8)
    with pytest.raises(ValueError, match="power of two"):
        SeaquestEnv(num_envs=2, seed=0).load_state_dict(saved)


def test_observation_dtypes_hold_the_same_values():
    """uint8 (default), bool and float32 observations agree cell for cell, also in
    final_obs and with padding, across resets, in a crowded rollout."""
    kwargs = {"seed": 4, "pad_channels_to": 12, "max_episode_steps": 25}
    envs = {name: SeaquestEnv(num_envs=8, obs_dtype=name, **kwargs) for name in ("uint8", "bool", "float32")}
    gen = torch.Generator().manual_seed(0)
    for t in range(60):
        actions = torch.randint(6, (8,), generator=gen)
        draws = envs["float32"].sample_draws()
        outs = {name: _crowded_steps(env, actions, draws) for name, env in envs.items()}
        ref_obs, ref_final = outs["float32"][0], outs["float32"][4]["final_obs"]
        assert ref_obs.shape == (8, 12, 10, 10) and not ref_obs[:, 10:].any()
        for name, (obs, _, _, _, info) in outs.items():
            assert obs.dtype == envs[name].obs_dtype and obs.is_contiguous()
            assert torch.equal(obs.to(torch.float32), ref_obs) and torch.equal(info["final_obs"].to(torch.float32), ref_final)


@pytest.mark.slow
def test_compiled_step_equals_eager_step():
    """compile=True (fixed 64-slot ring, torch.compile of the whole step) gives the eager
    (dynamic-width) step's outputs exactly, across resets, in a crowded rollout."""
    eager = SeaquestEnv(num_envs=16, seed=2, max_episode_steps=40)
    compiled = SeaquestEnv(num_envs=16, seed=2, max_episode_steps=40, compile=True)
    assert not compiled.dynamic_capacity and compiled.capacity["enemy"] == 64
    gen = torch.Generator().manual_seed(1)
    resets = 0
    for _ in range(60):
        actions = torch.randint(6, (16,), generator=gen)
        draws = eager.sample_draws()
        out_e, out_c = _crowded_steps(eager, actions, draws), _crowded_steps(compiled, actions, draws)
        for a, b in zip(out_e[:4], out_c[:4]):
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert all(torch.equal(out_e[4][k], out_c[4][k]) for k in out_e[4])
        resets += int(out_e[4]["done"].sum())
    assert resets > 0
