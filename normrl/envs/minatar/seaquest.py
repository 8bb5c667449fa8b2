"""MinAtar Seaquest as a batched torch environment (arXiv 1903.03176; rules of ``minatar`` 1.0.15).

The player steers a two-cell submarine (front and back show its heading) in rows 0-8
and fires bullets along its heading. Enemy fish and enemy submarines cross the rows
1-8; enemy submarines also fire bullets along their heading. Divers cross the same
rows; touching one picks it up (at most 6 on board). Each enemy hit by a friendly
bullet gives +1. Oxygen (200) drops by one per step under water. Coming up to row 0
with at least one diver refills the oxygen and drops one diver -- or, with 6 on board,
pays ``oxygen * 10 // 200`` and empties the diver bar -- and speeds the game up.
The episode ends when an enemy, an enemy bullet or an out-of-oxygen condition meets
the player, or when the player surfaces with no diver.

Rule details kept from the reference (they change observations and returns):

* Surfacing with 6 divers sets the count to 0 and then drops one more diver, so the
  count becomes -1 (an empty bar); surfacing again is then safe (-1 is not 0) and
  keeps counting down. Pickups still stop at 6.
* Enemies spawn every ``e_spawn_speed`` steps (20 at first) at the left edge moving
  right or the right edge moving left (probability 1/2 each), as a submarine with
  probability 1/3, in a row uniform in 1-8. The spawn is skipped when an enemy in
  that row heads the other way. Divers spawn every 30 steps (side 1/2, row 1-8).
* Enemies move one cell every ``move_speed + 1`` steps (their own countdown restarts
  at the current ``move_speed``), divers every 6 steps, bullets every step. Enemy
  submarines shoot every 11 steps -- including on the step they leave the screen or
  are shot while moving, from the cell they reached.
* With difficulty ramping, each surfacing with a diver lowers ``e_spawn_speed`` by
  one (down to 1) and, when the ramp index before it is odd, ``move_speed`` by one
  (down to 2). ``difficulty_ramping=False`` keeps the initial speeds.
* Order of events in one step: spawns; fire or move; friendly bullets move and hit
  (each takes the first fish at its cell in spawn order, else the first enemy sub;
  bullets are taken newest first); divers (newest first, pickup before and after
  their move); enemy subs (newest first: contact, move, contact or hit by the oldest
  bullet at their new cell, shot); enemy bullets (contact before and after moving);
  fish (as subs, no shot); timers, oxygen, surfacing.

Variable lists become fixed-capacity slot tensors kept in the reference's list order
(valid slots first, in spawn order; removals keep the order). Capacities, from the
rules: an enemy stays at most 59 steps on screen (10 moves, at most 6 steps apart)
and at most one spawns per step, so at most 60 fish and 60 enemy subs exist at once
(capacity 64 each); an enemy bullet lives at most 9 steps and a sub fires at most once
in 9 steps, so at most 68 enemy bullets (capacity 80); a friendly bullet lives at most
9 steps and the player fires at most every 5, so at most 2 (capacity 3); a diver lives
at most 59 steps and one spawns every 30, so at most 2 (capacity 4). The capacities
are therefore never reached. The per-step work grows with the list widths, so on CPU
the fish, sub and enemy-bullet lists are kept only as wide as the batch currently
needs (``dynamic_capacity``, see :class:`SeaquestEnv`); outcomes do not depend on it.

One reference quirk is not reproduced: the reference removes list entries by value,
so when two entities of one kind are identical in every field (same cell, heading and
timers) it may drop the older twin instead of the one that was hit and move the
survivor twice. The surviving values are the same; only the list order of such twins
can differ, which matters only for a later tie between overlapping enemies.

Channels (in order): 0 ``sub_front``, 1 ``sub_back``, 2 ``friendly_bullet``, 3 ``trail``
(the cell behind each enemy and diver), 4 ``enemy_bullet``, 5 ``enemy_fish``,
6 ``enemy_sub``, 7 ``oxygen_guage`` (row 9, ``oxygen * 10 // 200`` cells from the left),
8 ``diver_guage`` (row 9, one cell per diver ending at column 8), 9 ``diver``.
Minimal action set: all six actions (no-op, left, up, right, down, fire).
"""
from __future__ import annotations

import torch

from normrl.envs.minatar.common import DOWN, FIRE, GRID, LEFT, NOOP, RIGHT, UP, MinAtarEnv, State, paint, uniform_to_int

MAX_OXYGEN = 200
INIT_SPAWN_SPEED = 20
DIVER_SPAWN_SPEED = 30
INIT_MOVE_SPEED = 5
SHOT_COOL_DOWN = 5
ENEMY_SHOT_INTERVAL = 10
DIVER_MOVE_INTERVAL = 5
MAX_DIVERS = 6

#: most slots and per-entity fields of each variable-length list (the proven bounds, module docstring)
LISTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "f_bullet": (3, ("x", "y", "right")),
    "e_bullet": (80, ("x", "y", "right")),
    "fish": (64, ("x", "y", "right", "move")),
    "esub": (64, ("x", "y", "right", "move", "shot")),
    "diver": (4, ("x", "y", "right", "move")),
}
#: dtype of the stacked list tensors: every field fits (coordinates -1..10, countdowns <= 10),
#: and a quarter of int64's bytes makes compaction, resets and rendering cheaper
LIST_DTYPE = torch.int16
#: working capacity a fresh env starts with for the lists that grow on demand
#: (``dynamic_capacity``); random play rarely has more than a handful of each alive
INITIAL_CAPACITY: dict[str, int] = {"fish": 4, "esub": 4, "e_bullet": 4}
#: a list is widened to what the next step may need plus this many slots, and narrowed
#: (to the same) once three times as many are spare, so widths change rarely
CAPACITY_SLACK = 2


def _fields(prefix: str) -> tuple[str, ...]:
    return ("valid",) + LISTS[prefix][1]


def _unstack(packed: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """Field views of a stacked list tensor ``(n, capacity, fields)``; flags as bool."""
    columns = packed.unbind(2)  # strided views, no copy
    return {name: columns[j] != 0 if name in ("valid", "right") else columns[j]
            for j, name in enumerate(_fields(prefix))}


def _pack(prefix: str, parts: list[dict[str, torch.Tensor]], capacity: int) -> torch.Tensor:
    """Concatenate slot groups (in list order) and compact them into the list's stacked
    tensor ``(n, capacity, fields)``: valid slots first, in order; zeros behind.
    One scatter per list."""
    names = _fields(prefix)
    stacked = torch.stack([torch.cat([part[k] for part in parts], dim=1) if len(parts) > 1 else parts[0][k]
                           for k in names], dim=2).to(LIST_DTYPE)
    valid = stacked[..., 0] != 0
    dest = valid.long().cumsum(dim=1) - 1
    dest = torch.where(valid & (dest < capacity), dest, capacity)  # invalid slots go to the bin slot ``capacity``
    packed = torch.zeros((stacked.shape[0], capacity + 1, stacked.shape[2]), dtype=LIST_DTYPE, device=stacked.device)
    packed.scatter_(1, dest.unsqueeze(2).expand_as(stacked), stacked)
    return packed[:, :capacity]


def _resize(packed: torch.Tensor, width: int) -> torch.Tensor:
    """A compact list tensor ``(n, capacity, fields)`` cut or zero-padded to ``width`` slots
    (cutting only ever drops empty slots: callers keep ``width`` >= every list's length)."""
    if width <= packed.shape[1]:
        return packed[:, :width].contiguous()
    pad = packed.new_zeros((packed.shape[0], width - packed.shape[1], packed.shape[2]))
    return torch.cat([packed, pad], dim=1)


def _append(lst: dict[str, torch.Tensor], do: torch.Tensor, **values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Append one entity per sub-env (where ``do``) behind the valid slots of a compact list.

    A full list would drop the entity; the capacities make that impossible (module docstring).
    """
    valid = lst["valid"]
    slots = torch.arange(valid.shape[1], device=valid.device)
    at = (slots == valid.long().sum(1, keepdim=True)) & do.unsqueeze(1)
    out = {"valid": valid | at}
    for key, value in values.items():
        out[key] = torch.where(at, value.unsqueeze(1), lst[key])
    return out


def _step_x(x: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return x + torch.where(right, 1, -1)


def _off_grid(x: torch.Tensor) -> torch.Tensor:
    return (x < 0) | (x > GRID - 1)


class SeaquestEnv(MinAtarEnv):
    """Batched MinAtar Seaquest; options as :class:`normrl.envs.minatar.common.MinAtarEnv`, plus:

    Args:
        dynamic_capacity: keep the fish, enemy-sub and enemy-bullet lists only as wide as
            the batch needs (default None: True on CPU without ``compile``, else False). The per-step
            work scales with the list width, and random play rarely has more than a few
            of each alive at once, while the proven bounds are 64/64/80 slots. Before
            each :meth:`step` the env reads the batch's largest list lengths (one host
            read of 3 integers) and widens a list (up to :data:`LISTS`) when the step
            could overflow it, or narrows it again (down to :data:`INITIAL_CAPACITY`)
            when many slots are spare (:data:`CAPACITY_SLACK`). Outcomes are identical
            either way; False keeps the :data:`LISTS` widths and never reads the host
            (what a CUDA rollout wants: no per-step synchronization). With
            ``compile=True`` every width change retraces the compiled step (beyond
            torch's recompile limit the fullgraph compile fails), hence the default.

    State keys (all ``(num_envs, ...)``): player ``player_x``, ``player_y``,
    ``player_right`` (heading), ``oxygen``, ``diver_count``, ``shot_timer``, ``surface``
    (already surfaced, no refill until it dives again); spawn and speed ``e_spawn_speed``,
    ``e_spawn_timer``, ``d_spawn_timer``, ``move_speed``, ``ramp_index``. Each list
    ``f_bullet``, ``e_bullet``, ``fish``, ``esub``, ``diver`` is one :data:`LIST_DTYPE` (int16) tensor
    ``(num_envs, capacity, fields)`` with fields ``valid``, ``x``, ``y``, ``right``
    (+ ``move`` countdown for fish, subs, divers; + ``shot`` countdown for subs), in
    that order; see :data:`LISTS` for the largest capacities (the current widths are
    :attr:`capacity`). Valid slots come first in spawn order; empty slots hold zeros.
    :meth:`transition` keeps each list's width; it never drops an entity when every
    list has room for what one step can add (one fish, sub, diver and friendly bullet;
    one enemy bullet per sub, plus one), which full :data:`LISTS` widths always have.
    """

    game = "seaquest"
    channel_names = ("sub_front", "sub_back", "friendly_bullet", "trail", "enemy_bullet", "enemy_fish",
                     "enemy_sub", "oxygen_guage", "diver_guage", "diver")
    minimal_action_set = (NOOP, LEFT, UP, RIGHT, DOWN, FIRE)
    reset_draw_shapes = {}
    step_draw_shapes = {"enemy_side": (), "enemy_is_sub": (), "enemy_row": (), "diver_side": (), "diver_row": ()}

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", seed: int | None = None, *,
                 dynamic_capacity: bool | None = None, **kwargs):
        if dynamic_capacity is not None and not isinstance(dynamic_capacity, bool):
            raise ValueError(f"dynamic_capacity must be None, True or False, got {dynamic_capacity!r}")
        if dynamic_capacity is None:
            # Changing widths retrace a compiled step (one graph per width combination,
            # past torch's recompile limit), so compiled envs keep fixed widths.
            dynamic_capacity = torch.device(device).type == "cpu" and not kwargs.get("compile", False)
        self.dynamic_capacity = dynamic_capacity
        #: current width of each list tensor (slots per sub-env)
        self.capacity = {p: INITIAL_CAPACITY.get(p, cap) if dynamic_capacity else cap for p, (cap, _) in LISTS.items()}
        super().__init__(num_envs, device, seed, **kwargs)

    def _fit_capacity(self) -> None:
        """Widen (or narrow) the growable lists of ``self.state`` so the next step cannot overflow.

        One step adds at most one fish and one sub (the spawn) and one enemy bullet per
        sub whose shot countdown is 0 (a newly spawned sub waits 10 steps).
        """
        fish, esub, e_bullet = (self.state[p] for p in ("fish", "esub", "e_bullet"))
        shooters = (esub[:, :, 0] != 0) & (esub[:, :, 5] == 0)
        need = torch.stack([fish[:, :, 0].sum(1).amax() + 1, esub[:, :, 0].sum(1).amax() + 1,
                            (e_bullet[:, :, 0].sum(1) + shooters.sum(1)).amax()]).tolist()
        for p, n_need in zip(("fish", "esub", "e_bullet"), need):
            width, most = self.capacity[p], LISTS[p][0]
            if n_need > width:
                width = min(most, n_need + CAPACITY_SLACK)
            elif n_need + 3 * CAPACITY_SLACK <= width:
                width = max(INITIAL_CAPACITY[p], n_need + CAPACITY_SLACK)
            if width != self.capacity[p]:
                self.state[p] = _resize(self.state[p], width)
                self.capacity[p] = width

    def step_with_draws(self, actions, draws):
        if self.dynamic_capacity:
            self._fit_capacity()
        return super().step_with_draws(actions, draws)

    def load_state_dict(self, state) -> None:
        """As :meth:`MinAtarEnv.load_state_dict`; the lists keep the saved widths, or are
        padded to the full :data:`LISTS` widths when this env has fixed widths."""
        super().load_state_dict(state)
        for p, (most, _) in LISTS.items():
            if not self.dynamic_capacity and self.state[p].shape[1] != most:
                self.state[p] = _resize(self.state[p], most)
            self.capacity[p] = self.state[p].shape[1]

    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        n, device = self.num_envs, self.device

        def full(value: int, dtype=torch.int64) -> torch.Tensor:
            return torch.full((n,), value, dtype=dtype, device=device)

        state = {
            "player_x": full(5), "player_y": full(0), "player_right": full(False, torch.bool),
            "oxygen": full(MAX_OXYGEN), "diver_count": full(0), "shot_timer": full(0),
            "surface": full(True, torch.bool),
            "e_spawn_speed": full(INIT_SPAWN_SPEED), "e_spawn_timer": full(INIT_SPAWN_SPEED),
            "d_spawn_timer": full(DIVER_SPAWN_SPEED), "move_speed": full(INIT_MOVE_SPEED), "ramp_index": full(0),
        }
        for prefix, capacity in self.capacity.items():
            state[prefix] = torch.zeros((n, capacity, len(_fields(prefix))), dtype=LIST_DTYPE, device=device)
        return state

    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        n = action.shape[0]
        device = action.device
        L = {p: _unstack(state[p], p) for p in LISTS}
        zero = torch.zeros(n, dtype=torch.int64, device=device)
        reward = torch.zeros(n, dtype=torch.int64, device=device)
        terminal = torch.zeros(n, dtype=torch.bool, device=device)
        move_speed = state["move_speed"]

        # 1. Spawns (enemy, then diver).
        spawn_enemy = state["e_spawn_timer"] == 0
        lr = draws["enemy_side"].double() < 1 / 2
        is_sub = draws["enemy_is_sub"].double() < 1 / 3
        row = uniform_to_int(draws["enemy_row"], 1, 9)
        x0 = torch.where(lr, 0, GRID - 1)
        blocked = zero.bool()
        for p in ("esub", "fish"):
            blocked |= (L[p]["valid"] & (L[p]["y"] == row.unsqueeze(1)) & (L[p]["right"] != lr.unsqueeze(1))).any(1)
        place = spawn_enemy & ~blocked
        L["esub"] = _append(L["esub"], place & is_sub, x=x0, y=row, right=lr, move=move_speed,
                            shot=torch.full_like(row, ENEMY_SHOT_INTERVAL))
        L["fish"] = _append(L["fish"], place & ~is_sub, x=x0, y=row, right=lr, move=move_speed)
        e_spawn_timer = torch.where(spawn_enemy, state["e_spawn_speed"], state["e_spawn_timer"])

        spawn_diver = state["d_spawn_timer"] == 0
        d_lr = draws["diver_side"].double() < 1 / 2
        L["diver"] = _append(L["diver"], spawn_diver, x=torch.where(d_lr, 0, GRID - 1),
                             y=uniform_to_int(draws["diver_row"], 1, 9), right=d_lr,
                             move=torch.full_like(row, DIVER_MOVE_INTERVAL))
        d_spawn_timer = torch.where(spawn_diver, DIVER_SPAWN_SPEED, state["d_spawn_timer"])

        # 2. Player: fire (if the gun is ready) or move.
        px, py, pright = state["player_x"], state["player_y"], state["player_right"]
        fire = (action == FIRE) & (state["shot_timer"] == 0)
        L["f_bullet"] = _append(L["f_bullet"], fire, x=px, y=py, right=pright)
        shot_timer = torch.where(fire, SHOT_COOL_DOWN, state["shot_timer"])
        px = torch.where(action == LEFT, (px - 1).clamp(min=0), px)
        px = torch.where(action == RIGHT, (px + 1).clamp(max=GRID - 1), px)
        pright = torch.where(action == LEFT, False, torch.where(action == RIGHT, True, pright))
        py = torch.where(action == UP, (py - 1).clamp(min=0), py)
        py = torch.where(action == DOWN, (py + 1).clamp(max=GRID - 2), py)
        pxc, pyc = px.unsqueeze(1), py.unsqueeze(1)

        # 3. Friendly bullets move; newest first, each takes the first fish at its cell, else the first sub.
        fb = L["f_bullet"]
        fb["x"] = torch.where(fb["valid"], _step_x(fb["x"], fb["right"]), fb["x"])
        fb["valid"] = fb["valid"] & ~_off_grid(fb["x"])
        # Cells as codes y * 10 + x; a code that can match nothing marks an empty slot
        # (-1 for enemies, -2 for bullets) or an enemy already taken.
        b_code = torch.where(fb["valid"], fb["y"] * GRID + fb["x"], -2)
        codes = {p: torch.where(L[p]["valid"], L[p]["y"] * GRID + L[p]["x"], -1) for p in ("fish", "esub")}
        spent = [zero.bool()] * b_code.shape[1]
        for b in reversed(range(b_code.shape[1])):
            cell = b_code[:, b : b + 1]
            hit = zero.bool()
            for p in ("fish", "esub"):
                there = (codes[p] == cell) & ~hit.unsqueeze(1)
                first = there & (there.cumsum(1) == 1)
                codes[p] = codes[p].masked_fill(first, -1)
                L[p]["valid"] = L[p]["valid"] & ~first
                hit = hit | first.any(1)
            spent[b] = hit
            reward += hit.long()
        fb["valid"] = fb["valid"] & ~torch.stack(spent, 1)

        # 4. Divers, newest first: picked up at the player's cell (before or after their
        #    move) while fewer than 6 are on board.
        dv = L["diver"]
        d_move = dv["move"] == 0
        d_next = _step_x(dv["x"], dv["right"])
        d_at = dv["valid"] & (dv["x"] == pxc) & (dv["y"] == pyc)
        d_moves_on = dv["valid"] & ~d_at & d_move & (d_next == pxc) & (dv["y"] == pyc)
        want = d_at | d_moves_on
        newer_wanting = want.flip(1).long().cumsum(1).flip(1) - want.long()
        picked = want & (newer_wanting < (MAX_DIVERS - state["diver_count"]).unsqueeze(1))
        diver_count = state["diver_count"] + picked.long().sum(1)
        dv["x"] = torch.where(d_move, d_next, dv["x"])
        dv["move"] = torch.where(d_move, DIVER_MOVE_INTERVAL, dv["move"] - 1)
        dv["valid"] = dv["valid"] & ~picked & ~(d_move & _off_grid(d_next))

        # 5. Enemy subs, newest first: contact, move, contact or hit by a bullet, shot.
        def enemies_move(e: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            """Move enemies in place; returns (terminal, reward) contributions."""
            contact = (e["valid"] & (e["x"] == pxc) & (e["y"] == pyc)).any(1)
            moves = e["valid"] & (e["move"] == 0)
            e["x"] = torch.where(moves, _step_x(e["x"], e["right"]), e["x"])
            e["move"] = torch.where(moves, move_speed.unsqueeze(1), torch.where(e["valid"], e["move"] - 1, e["move"]))
            off = moves & _off_grid(e["x"])
            meets = moves & ~off & (e["x"] == pxc) & (e["y"] == pyc)
            seeking = moves & ~off & ~meets
            # The oldest live bullet at a cell goes to the newest enemy that moved onto it,
            # the next oldest to the next newest, ...
            code = torch.where(seeking, e["y"] * GRID + e["x"], -1)
            b_code = torch.where(fb["valid"], fb["y"] * GRID + fb["x"], -2)
            shot_down = torch.zeros_like(seeking)
            spent = [zero.bool()] * b_code.shape[1]
            for b in range(b_code.shape[1]):
                cand = code == b_code[:, b : b + 1]
                last = cand & (cand.cumsum(1) == cand.sum(1, keepdim=True))
                code = code.masked_fill(last, -1)
                shot_down = shot_down | last
                spent[b] = last.any(1)
            fb["valid"] = fb["valid"] & ~torch.stack(spent, 1)
            e["valid"] = e["valid"] & ~off & ~shot_down
            return contact | meets.any(1), shot_down.long().sum(1)

        es = L["esub"]
        shooters = es["valid"].clone()  # every sub in the list at this point shoots on schedule
        term, r = enemies_move(es)
        terminal |= term
        reward += r
        fires = shooters & (es["shot"] == 0)
        es["shot"] = torch.where(fires, ENEMY_SHOT_INTERVAL, torch.where(shooters, es["shot"] - 1, es["shot"]))
        # New enemy bullets are appended newest sub first.
        # (They stay behind the old ones, holes and all, until the compaction at the end.)
        new_bullets = {"valid": fires, "x": es["x"], "y": es["y"], "right": es["right"]}
        L["e_bullet"] = {k: torch.cat([v, new_bullets[k].flip(1)], dim=1) for k, v in L["e_bullet"].items()}

        # 6. Enemy bullets: contact before and after moving.
        eb = L["e_bullet"]
        terminal |= (eb["valid"] & (eb["x"] == pxc) & (eb["y"] == pyc)).any(1)
        eb["x"] = torch.where(eb["valid"], _step_x(eb["x"], eb["right"]), eb["x"])
        eb["valid"] = eb["valid"] & ~_off_grid(eb["x"])
        terminal |= (eb["valid"] & (eb["x"] == pxc) & (eb["y"] == pyc)).any(1)

        # 7. Fish, like subs without shots.
        term, r = enemies_move(L["fish"])
        terminal |= term
        reward += r

        # 8. Timers, oxygen and surfacing.
        e_spawn_timer = e_spawn_timer - (e_spawn_timer > 0).long()
        d_spawn_timer = d_spawn_timer - (d_spawn_timer > 0).long()
        shot_timer = shot_timer - (shot_timer > 0).long()
        oxygen = state["oxygen"]
        terminal |= oxygen <= 0
        under = py > 0
        arrives = ~under & ~state["surface"]
        terminal |= arrives & (diver_count == 0)
        surfaces = arrives & (diver_count != 0)
        full_load = surfaces & (diver_count == MAX_DIVERS)
        reward += torch.where(full_load, torch.div(oxygen * 10, MAX_OXYGEN, rounding_mode="floor"), 0)
        diver_count = torch.where(full_load, 0, diver_count) - surfaces.long()
        oxygen = torch.where(surfaces, MAX_OXYGEN, oxygen - under.long())
        surface = torch.where(under, False, torch.where(surfaces, True, state["surface"]))
        e_spawn_speed, ramp_index = state["e_spawn_speed"], state["ramp_index"]
        ramp = surfaces & ((e_spawn_speed > 1) | (move_speed > 2)) & self.difficulty_ramping
        move_speed = move_speed - (ramp & (move_speed > 2) & (ramp_index % 2 == 1)).long()
        e_spawn_speed = e_spawn_speed - (ramp & (e_spawn_speed > 1)).long()
        ramp_index = ramp_index + ramp.long()

        next_state = {
            "player_x": px, "player_y": py, "player_right": pright,
            "oxygen": oxygen, "diver_count": diver_count, "shot_timer": shot_timer, "surface": surface,
            "e_spawn_speed": e_spawn_speed, "e_spawn_timer": e_spawn_timer, "d_spawn_timer": d_spawn_timer,
            "move_speed": move_speed, "ramp_index": ramp_index,
        }
        for prefix, lst in L.items():
            next_state[prefix] = _pack(prefix, [lst], state[prefix].shape[1])
        return next_state, reward.to(torch.float32), terminal

    def render(self, state: State) -> torch.Tensor:
        px, py = state["player_x"], state["player_y"]
        n, device, dtype = px.shape[0], px.device, self.obs_dtype
        cells = [
            (0, py, px, None),
            (1, py, torch.where(state["player_right"], px - 1, px + 1), None),
        ]
        # Field views straight into the stacked lists (x, y, right are fields 1, 2, 3).
        for prefix, channel in (("f_bullet", 2), ("e_bullet", 4)):
            lst = state[prefix]
            cells.append((channel, lst[:, :, 2], lst[:, :, 1], lst[:, :, 0] != 0))
        for prefix, channel in (("fish", 5), ("esub", 6), ("diver", 9)):
            lst = state[prefix]
            valid, x, y = lst[:, :, 0] != 0, lst[:, :, 1], lst[:, :, 2]
            cells.append((channel, y, x, valid))
            cells.append((3, y, x + 1 - 2 * lst[:, :, 3], valid))  # the cell behind: x - 1 heading right
        planes = paint(n, len(self.channel_names), cells, device, dtype)
        # The gauges fill row 9 of their own channels: written directly, not scattered.
        cols = torch.arange(GRID, device=device)
        oxygen_cells = torch.div(state["oxygen"].clamp(min=0) * 10, MAX_OXYGEN, rounding_mode="floor")
        diver_from = GRID - 1 - state["diver_count"]
        planes[:, 7, GRID - 1] = (cols < oxygen_cells.unsqueeze(1)).to(dtype)
        planes[:, 8, GRID - 1] = ((cols >= diver_from.unsqueeze(1)) & (cols < GRID - 1)).to(dtype)
        return planes
