"""Seaquest against the reference ``minatar`` package (rules, lockstep, episode statistics)."""
import numpy as np
import pytest
import torch
from scipy import stats

import oracle  # tests/envs/minatar is on sys.path (pytest rootdir-less import); see oracle.py
from normrl.envs.minatar.seaquest import LISTS, SeaquestEnv


def _slots(items, prefix):
    """A reference list as our stacked slot array ``(capacity, valid + fields)``."""
    capacity, names = LISTS[prefix]
    assert len(items) <= capacity, f"{prefix}: {len(items)} entries exceed capacity {capacity}"
    out = np.zeros((capacity, 1 + len(names)), dtype=np.int64)
    for i, item in enumerate(items):
        out[i] = [1] + [int(v) for v in item]
    return {prefix: out}


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


def test_immortal_stress_rollout_matches_reference_and_stays_within_capacity():
    """Worst-case crowding (a spawn every step, slowest enemies, oxygen topped up and
    deaths ignored on both sides) for many steps: the whole state, list order included,
    matches the reference every step, and no list comes near its capacity."""
    n, steps = 6, 150
    games = oracle.collect_reference_states("seaquest", n, seed=8)
    for g in games:
        g.e_spawn_speed, g.move_speed, g.e_spawn_timer, g.d_spawn_timer = 1, 5, 0, 0
    env = SeaquestEnv(num_envs=n, seed=9, full_action_space=True)
    state = oracle.stack_rows(env, [ADAPTER.read_reference(g) for g in games])
    gen = np.random.RandomState(10)
    scripted = oracle.ScriptedRandom()
    peak = {p: 0 for p in LISTS}
    for t in range(steps):
        for g in games:
            g.terminal, g.oxygen, g.random = False, 200, scripted
        state["oxygen"].fill_(200)
        actions = gen.randint(6, size=n)
        draws = env.sample_draws()["step"]
        state, reward, _ = env.transition(state, torch.as_tensor(actions), draws)
        for i, g in enumerate(games):
            scripted.load(ADAPTER.step_script(oracle.row(draws, i)))
            r, _ = g.act(int(actions[i]))
            assert float(reward[i]) == float(r), f"env {i} step {t}"
            theirs = ADAPTER.read_reference(g)
            ours = oracle.row(state, i)
            for k in theirs:
                np.testing.assert_array_equal(ours[k], theirs[k], err_msg=f"env {i} step {t} {k}")
        for p in LISTS:
            peak[p] = max(peak[p], int(state[p][..., 0].sum(1).max()))
    # the documented bounds (module docstring) and proof that the stress reached crowding
    assert peak["fish"] <= 60 and peak["esub"] <= 60 and peak["e_bullet"] <= 68
    assert peak["f_bullet"] <= 2 and peak["diver"] <= 2
    assert peak["fish"] + peak["esub"] >= 30


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
    state["oxygen"] = torch.tensor([151])
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


def test_state_dict_resume_is_exact():
    env = SeaquestEnv(num_envs=3, seed=11)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        env.step(torch.randint(6, (3,), generator=gen))
    saved = env.state_dict()
    actions = [torch.randint(6, (3,), generator=gen) for _ in range(60)]
    first = [env.step(a) for a in actions]
    env.load_state_dict(saved)
    second = [env.step(a) for a in actions]
    for (o1, r1, t1, _, _), (o2, r2, t2, _, _) in zip(first, second):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2)


def test_dynamic_capacity_widens_and_narrows_with_identical_outcomes():
    """A crowded rollout (a spawn every step, oxygen topped up) with on-demand list widths
    gives exactly the observations, rewards, terminals and (padded) states of full widths;
    the widths grow past their start while crowded and shrink back after a reset."""
    n = 16
    dyn = SeaquestEnv(num_envs=n, seed=12, dynamic_capacity=True)
    full = SeaquestEnv(num_envs=n, seed=12, dynamic_capacity=False)
    assert all(dyn.capacity[p] < LISTS[p][0] for p in ("fish", "esub", "e_bullet"))
    assert full.capacity == {p: cap for p, (cap, _) in LISTS.items()}
    gen = torch.Generator().manual_seed(13)
    widest = dict(dyn.capacity)
    for t in range(160):
        for env in (dyn, full):
            env.state["e_spawn_speed"] = torch.ones_like(env.state["e_spawn_speed"])
            env.state["e_spawn_timer"] = env.state["e_spawn_timer"].clamp(max=1)
            env.state["oxygen"] = torch.full_like(env.state["oxygen"], 200)
        actions = torch.randint(6, (n,), generator=gen)
        draws = full.sample_draws()
        out_dyn = dyn.step_with_draws(actions, draws)
        out_full = full.step_with_draws(actions, draws)
        for a, b in zip(out_dyn[:4], out_full[:4]):
            assert torch.equal(a, b), f"step {t}"
        for k, v in full.state.items():
            ours = dyn.state[k]
            if k in LISTS:  # the full list beyond our width holds only empty (zero) slots
                ours, v = ours, v[:, : ours.shape[1]] if not v[:, ours.shape[1]:].any() else v
            assert torch.equal(ours, v), f"step {t} {k}"
        widest = {p: max(w, dyn.capacity[p]) for p, w in widest.items()}
    assert widest["fish"] >= 12 and widest["esub"] >= 8 and widest["e_bullet"] >= 6
    dyn.reset(seed=1)
    for _ in range(3):
        dyn.step(torch.zeros(n, dtype=torch.int64))
    assert dyn.capacity["fish"] == dyn.capacity["esub"] == 4 and dyn.capacity["e_bullet"] <= 6


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
