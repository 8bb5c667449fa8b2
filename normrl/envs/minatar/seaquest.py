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

Layout. The reference keeps Python lists; here each kind of entity lives in fixed
slots (:mod:`normrl.envs.minatar.entity_slots`) that keep the lists' spawn order
without ever compacting. Fish and enemy subs share one ``enemy`` ring: an enemy is
written at the ring's tail and stays in its slot until it is removed, and its place in
spawn order is its slot's rank counted from the tail (a ``sub`` field tells the kinds
apart; the rules only ever order entities of one kind, so interleaving them changes
nothing). Friendly bullets and divers, a few at a time, are shift slots: slot 0 holds
the newest, and a new one shifts the others one slot older. Every rule is a few
tensor ops over all slots at once; the only loops run over the 4 friendly-bullet and
the 4 diver slots. The capacities follow from the rules:

* ``enemy``: 64 slots. An enemy leaves the grid after 10 moves, the first
  ``move_speed`` <= 5 steps after its spawn and then one every <= 6 steps, so it
  lives at most 59 steps; at most one enemy spawns per step, so the oldest live enemy
  is at most 59 spawns older than a new one: 60 <= 64 slots in use.
* ``e_bullet``: one slot per enemy slot, holding the bullet last fired by that
  slot's submarine (order does not matter for enemy bullets). A sub fires every 11
  steps and a bullet leaves the grid within 10, so a sub's previous bullet is always
  gone when it fires; a slot taken over by a new enemy still carries its old bullet
  until that leaves, which happens before the new enemy's first shot (10 steps).
* ``f_bullet``: 4 slots. The player fires at most every 5 steps and a bullet lives at
  most 10, so a bullet is gone before 3 more are fired: at most 2 are alive, and at
  most the 2 newest slots are used (a state loaded with 3 still fits).
* ``diver``: 4 slots. One spawns every 30 steps and lives at most 59, so at most 2,
  in the 2 newest slots.

The per-step work scales with the enemy ring's width, and random play rarely has more
than a few enemies alive, so on CPU the ring is kept only as wide as the batch needs
(``dynamic_capacity``, see :class:`SeaquestEnv`); outcomes do not depend on it.

One reference quirk is not reproduced: the reference removes list entries by value,
so when two entities of one kind are identical in every field (same cell, heading and
timers) it may drop the older twin instead of the one that was hit and move the
survivor twice. The surviving values are the same; only the list order of such twins
can differ, which matters only for a later tie between overlapping enemies. (Play
never creates such twins: two enemies in one cell always differ in their move
countdown.)

Channels (in order): 0 ``sub_front``, 1 ``sub_back``, 2 ``friendly_bullet``, 3 ``trail``
(the cell behind each enemy and diver), 4 ``enemy_bullet``, 5 ``enemy_fish``,
6 ``enemy_sub``, 7 ``oxygen_guage`` (row 9, ``oxygen * 10 // 200`` cells from the left),
8 ``diver_guage`` (row 9, one cell per diver ending at column 8), 9 ``diver``.
Minimal action set: all six actions (no-op, left, up, right, down, fire).
"""
from __future__ import annotations

import torch

from normrl.envs.minatar.common import DOWN, FIRE, GRID, LEFT, NOOP, RIGHT, UP, MinAtarEnv, State, uniform_to_int
from normrl.envs.minatar.entity_slots import (any_slot, blend, check_width, pack, reorder_ring, ring_append, ring_rank,
                                              shift_append, step_x, unpack)

U8 = torch.uint8
MAX_OXYGEN = 200
INIT_SPAWN_SPEED = 20
DIVER_SPAWN_SPEED = 30
INIT_MOVE_SPEED = 5
SHOT_COOL_DOWN = 5
ENEMY_SHOT_INTERVAL = 10
DIVER_MOVE_INTERVAL = 5
MAX_DIVERS = 6

#: each slot list: (slots, fields), every field uint8: ``valid`` and ``sub`` 0/1, the
#: column ``x`` and row ``y``, the heading ``dx`` (1 right, 255 = -1 left), countdowns
#: ``move`` and ``shot``; ``enemy`` and ``e_bullet`` hold at most this many slots (see
#: the module docstring for the bounds)
LISTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "f_bullet": (4, ("valid", "x", "y", "dx")),
    "diver": (4, ("valid", "x", "y", "dx", "move")),
    "enemy": (64, ("valid", "x", "y", "dx", "sub", "move", "shot")),
    "e_bullet": (64, ("valid", "x", "y", "dx")),
}
#: the lists kept as rings (the others are shift slots, newest first), and their tail's
#: state key (``e_bullet`` slots shadow the ``enemy`` slots)
TAILS: dict[str, str] = {"enemy": "enemy_tail", "e_bullet": "enemy_tail"}
#: per-sub-env values of a fresh episode and their dtypes (``oxygen`` drops to -1 on the
#: step oxygen runs out; ``diver_count`` goes below 0 after a full rescue, see above)
INITIAL: dict[str, tuple[int | bool, torch.dtype]] = {
    "player_x": (5, U8), "player_y": (0, U8), "player_right": (False, torch.bool),
    "oxygen": (MAX_OXYGEN, torch.int16), "diver_count": (0, torch.int32), "shot_timer": (0, U8),
    "surface": (True, torch.bool), "e_spawn_speed": (INIT_SPAWN_SPEED, U8), "e_spawn_timer": (INIT_SPAWN_SPEED, U8),
    "d_spawn_timer": (DIVER_SPAWN_SPEED, U8), "move_speed": (INIT_MOVE_SPEED, U8), "ramp_index": (0, U8),
    "enemy_tail": (0, U8),
}
#: narrowest enemy ring of ``dynamic_capacity`` (a power of two, as every ring width)
MIN_ENEMY_SLOTS = 4
#: the enemy ring is widened to hold what the next step may need plus this many slots,
#: and narrowed (by at least half) once that fits in a quarter of it
ENEMY_SLOT_SLACK = 2
#: sub-envs rendered together (about 1 MB of uint8 planes, which stay in cache between
#: their clearing and their last write)
RENDER_BLOCK = 1024


def _next_power_of_two(k: int) -> int:
    return 1 << max(0, k - 1).bit_length()


class SeaquestEnv(MinAtarEnv):
    """Batched MinAtar Seaquest; options as :class:`normrl.envs.minatar.common.MinAtarEnv`, plus:

    Args:
        dynamic_capacity: keep the enemy ring only as wide as the batch needs (default
            None: True on CPU without ``compile``, else False). The per-step work scales
            with the ring's width, random play rarely has more than a few enemies alive,
            and the proven bound is 64 slots. Before each :meth:`step` the env reads
            how far back the batch's oldest live enemy and enemy bullet are (one host
            read of 2 integers) and widens the ring (up to 64 slots, in powers of two)
            when the step could overflow it, or narrows it again (down to
            :data:`MIN_ENEMY_SLOTS`) when most of it is empty. Outcomes are identical
            either way; False keeps 64 slots and never reads the host (what a CUDA
            rollout wants: no per-step synchronization). With ``compile=True`` every
            width change would retrace the compiled step, hence the default.

    State keys (all ``(num_envs, ...)``; dtypes in :data:`INITIAL`): player
    ``player_x``, ``player_y``, ``player_right`` (heading), ``oxygen``, ``diver_count``,
    ``shot_timer``, ``surface`` (already surfaced, no refill until it dives again);
    spawn and speed ``e_spawn_speed``, ``e_spawn_timer``, ``d_spawn_timer``,
    ``move_speed``, ``ramp_index``. The lists :data:`LISTS` ``f_bullet``, ``diver``
    (shift slots, slot 0 the newest), ``enemy`` and ``e_bullet`` (a ring whose tail is
    ``enemy_tail``, the number of enemies ever written modulo 256) are uint8 tensors
    ``(num_envs, slots, fields)`` (views of env-innermost memory, see
    :mod:`normrl.envs.minatar.entity_slots`), with the fields in the order
    :data:`LISTS` gives; empty slots hold zeros. The current widths are :attr:`capacity`.
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
            # A width change retraces a compiled step, so compiled envs keep fixed widths.
            dynamic_capacity = torch.device(device).type == "cpu" and not kwargs.get("compile", False)
        self.dynamic_capacity = dynamic_capacity
        #: current width (slots per sub-env) of each list
        self.capacity = {p: cap for p, (cap, _) in LISTS.items()}
        if dynamic_capacity:
            self.capacity["enemy"] = self.capacity["e_bullet"] = MIN_ENEMY_SLOTS
        # The gauges (row 9 of channels 7 and 8) as 20 cells, by (oxygen cells 0-10, divers 0-6 on board).
        cols = torch.arange(GRID)
        oxygen_cells, divers = torch.arange(11).view(-1, 1, 1), torch.arange(MAX_DIVERS + 1).view(1, -1, 1)
        oxygen_row = (cols < oxygen_cells).expand(-1, MAX_DIVERS + 1, -1)
        diver_row = ((cols >= GRID - 1 - divers) & (cols < GRID - 1)).expand(11, -1, -1)
        self._gauge_cells = torch.cat([oxygen_row, diver_row], dim=2).reshape(-1, 2 * GRID).to(device)
        row_9 = (GRID - 1) * GRID + cols
        self._gauge_index = torch.cat([7 * GRID * GRID + row_9, 8 * GRID * GRID + row_9]).view(1, -1).to(device)
        super().__init__(num_envs, device, seed, **kwargs)

    # ------------------------------------------------------------------ ring width
    def _fit_capacity(self) -> None:
        """Widen (or narrow) the enemy ring of ``self.state`` so the next step cannot overflow it.

        A step writes at most one enemy, at the tail slot, which must be free: the ring
        needs one slot more than the span from the oldest live enemy to the newest.
        Narrowing keeps every slot that still carries a live enemy bullet.
        """
        width = self.capacity["enemy"]
        rank = ring_rank(self.state["enemy_tail"], width).to(torch.int16)
        spans = []
        for p in ("enemy", "e_bullet"):
            valid = self.state[p][:, :, 0].t().to(torch.int16)
            oldest = (rank + (1 - valid) * width).amin(0)
            spans.append((width - oldest).amax())
        enemy_span, bullet_span = torch.stack(spans).tolist()
        need = max(enemy_span + 1, bullet_span)
        target = min(LISTS["enemy"][0], max(MIN_ENEMY_SLOTS, _next_power_of_two(need + ENEMY_SLOT_SLACK)))
        if need > width or target * 4 <= width:
            self._set_enemy_width(target)

    def _set_enemy_width(self, width: int) -> None:
        tail = self.state["enemy_tail"]
        for p in ("enemy", "e_bullet"):
            self.state[p] = reorder_ring(self.state[p], tail, width)
            self.capacity[p] = width
        self.state["enemy_tail"] = torch.zeros_like(tail)

    def step_with_draws(self, actions, draws):
        if self.dynamic_capacity:
            self._fit_capacity()
        return super().step_with_draws(actions, draws)

    def load_state_dict(self, state) -> None:
        """As :meth:`MinAtarEnv.load_state_dict`; the enemy ring keeps the saved width, or
        is widened to 64 slots when this env has fixed widths."""
        lists = state.get("state", {})
        for p, (most, _) in LISTS.items():
            width = lists[p].shape[1] if p in lists else most
            check_width(width)
            if width > most or (p not in TAILS and width != most):
                raise ValueError(f"state list {p!r} has {width} slots; this env takes "
                                 + (f"at most {most}" if p in TAILS else str(most)))
        if "enemy" in lists and "e_bullet" in lists and lists["enemy"].shape[1] != lists["e_bullet"].shape[1]:
            raise ValueError("state lists 'enemy' and 'e_bullet' must have the same number of slots")
        super().load_state_dict(state)
        for p in LISTS:  # back to env-innermost memory (the layout the step's ops are fast on)
            self.state[p] = self.state[p].permute(2, 1, 0).contiguous().permute(2, 1, 0)
            self.capacity[p] = self.state[p].shape[1]
        if not self.dynamic_capacity and self.capacity["enemy"] != LISTS["enemy"][0]:
            self._set_enemy_width(LISTS["enemy"][0])

    # ------------------------------------------------------------------ episodes
    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        n, device = self.num_envs, self.device
        state = {k: torch.full((n,), value, dtype=dtype, device=device) for k, (value, dtype) in INITIAL.items()}
        for p, (_, fields) in LISTS.items():
            state[p] = torch.zeros((len(fields), self.capacity[p], n), dtype=U8, device=device).permute(2, 1, 0)
        return state

    def merge_reset(self, done: torch.Tensor, next_state: State, reset_draws: dict[str, torch.Tensor]) -> State:
        """The fresh state is constant: empty lists and :data:`INITIAL`, merged in arithmetically."""
        keep = (~done).view(U8)
        merged = {}
        for key, value in next_state.items():
            if key in LISTS:
                merged[key] = value * keep.view(-1, 1, 1)
                continue
            fresh, dtype = INITIAL[key]
            if dtype == torch.bool:
                merged[key] = value | done if fresh else value & ~done
            else:
                merged[key] = blend(done, fresh, value)
        return merged

    # ------------------------------------------------------------------ rules
    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        width = state["enemy"].shape[1]
        if width > LISTS["enemy"][0] or width != state["e_bullet"].shape[1]:
            raise ValueError(f"the enemy and e_bullet lists must share one width <= {LISTS['enemy'][0]}")
        c = _Constants(state["player_x"], state["diver_count"])
        out = dict(state)
        rank = ring_rank(state["enemy_tail"], width)
        enemy, placed, diver, out["e_spawn_timer"], out["d_spawn_timer"] = _spawn(state, rank, draws, c)
        out["enemy_tail"] = state["enemy_tail"] + placed.view(U8)
        rank = (rank - placed.view(U8)) & (width - 1)
        f_bullet, out["player_x"], out["player_y"], out["player_right"], out["shot_timer"] = _player(state, action, c)
        px, py = out["player_x"], out["player_y"]
        f_bullet, enemy, diver = (unpack(lst, LISTS[p][1]) for lst, p in ((f_bullet, "f_bullet"), (enemy, "enemy"),
                                                                          (diver, "diver")))
        e_bullet = unpack(state["e_bullet"], LISTS["e_bullet"][1])
        order = rank | enemy["sub"] * 64  # spawn order: fish before subs, then oldest first (ranks < 64)
        reward = _friendly_bullets(f_bullet, enemy, order, c)
        out["diver_count"] = _divers(diver, px, py, state["diver_count"], c)
        terminal, hits = _enemies(enemy, e_bullet, f_bullet, order, px, py, state["move_speed"], c)
        terminal = terminal | _enemy_bullets(e_bullet, px, py, c)
        surfacing = _timers_and_surface(out, self.difficulty_ramping, c)
        reward = surfacing.pop("reward") + (reward + hits)
        terminal = terminal | surfacing.pop("terminal")
        out.update(surfacing)
        for p, fields in (("f_bullet", f_bullet), ("diver", diver), ("enemy", enemy), ("e_bullet", e_bullet)):
            out[p] = pack(fields, LISTS[p][1])
        return out, reward.to(torch.float32), terminal

    # ------------------------------------------------------------------ observation
    def render(self, state: State) -> torch.Tensor:
        px, py, right = state["player_x"], state["player_y"], state["player_right"].view(U8)
        n, device = px.shape[0], px.device
        lists = {p: unpack(state[p], LISTS[p][1]) for p in LISTS}
        nine = torch.full_like(px, GRID - 1)
        back_x = px + 1 - right - right
        pieces = [  # (channel, rows, columns, drawn) per group of cells; each (slots or 1, n) uint8
            (1, py, back_x, (back_x <= nine).view(U8)),
            (2, lists["f_bullet"]["y"], lists["f_bullet"]["x"], lists["f_bullet"]["valid"]),
            (4, lists["e_bullet"]["y"], lists["e_bullet"]["x"], lists["e_bullet"]["valid"]),
        ]
        for p, channel in (("enemy", 5), ("diver", 9)):
            ent = lists[p]
            # an enemy sub's cell in channel 6 is its fish cell 10 rows further on
            rows = ent["y"] + GRID * ent["sub"] if p == "enemy" else ent["y"]
            trail_x = ent["x"] - ent["dx"]  # the cell behind; 255 or 10 when off the grid
            pieces.append((channel, rows, ent["x"], ent["valid"]))
            pieces.append((3, ent["y"], trail_x, ent["valid"] & (trail_x <= nine).view(U8)))
        rows = torch.cat([y.view(-1, n) for _, y, _, _ in pieces])
        cols = torch.cat([x.view(-1, n) for _, _, x, _ in pieces])
        drawn = torch.cat([v.view(-1, n) for _, _, _, v in pieces])
        channel = torch.cat([torch.full((y.view(-1, n).shape[0], 1), c * GRID * GRID, dtype=torch.int16, device=device)
                             for c, y, _, _ in pieces])
        # Cells of empty slots go to the player's front cell (channel 0), which is set anyway.
        front = (py * GRID + px).to(torch.int16)
        index = torch.cat([front.view(1, n), (channel - front + (rows * GRID + cols)) * drawn + front])
        dtype = self.obs_dtype
        canvas = U8 if dtype == torch.bool else dtype
        oxygen_cells = torch.div(state["oxygen"].clamp(min=0) * 10, MAX_OXYGEN, rounding_mode="floor")
        gauge = oxygen_cells.long() * (MAX_DIVERS + 1) + state["diver_count"].clamp(0, MAX_DIVERS).long()
        gauges = self._gauge_cells.to(canvas).index_select(0, gauge)
        planes = torch.empty((n, self.n_channels * GRID * GRID), dtype=canvas, device=device)
        one = torch.ones((1, 1), dtype=canvas, device=device)
        # Eager on CPU: in blocks of sub-envs whose planes stay in cache from clearing to the last write.
        size = RENDER_BLOCK if device.type == "cpu" and not torch.compiler.is_compiling() else n
        for a in range(0, n, size):
            block, cells = planes[a:a + size], index[:, a:a + size].t().contiguous().long()
            block.zero_()
            block.scatter_(1, cells, one.expand_as(cells))
            block.scatter_(1, self._gauge_index.expand(block.shape[0], -1), gauges[a:a + size])
        planes = planes.view(n, self.n_channels, GRID, GRID)
        return planes.view(torch.bool) if dtype == torch.bool else planes


#: marks OR-ed into cell codes (``y * 10 + x`` < 100): an enemy not there (removed, or
#: not moving onto a cell) and a missing bullet; the two never match each other or a cell
GONE, NO_BULLET = 128, 255


class _Constants:
    """Per-sub-env constant vectors for one step: on CPU, comparing a ``(K, num_envs)``
    tensor with a ``(num_envs,)`` one is a fast elementwise op, while comparing with a
    Python number takes a slow scalar path."""

    def __init__(self, like_u8: torch.Tensor, like_count: torch.Tensor):
        self.zero = torch.zeros_like(like_u8)
        self.one = torch.ones_like(like_u8)
        self.nine = torch.full_like(like_u8, GRID - 1)
        self.eight = torch.full_like(like_u8, GRID - 2)
        self.max_divers = torch.full_like(like_count, MAX_DIVERS)
        self.bit7 = torch.full_like(like_u8, 128)


def _cells(fields: dict[str, torch.Tensor], there: torch.Tensor, mark: int) -> torch.Tensor:
    """One uint8 code per slot for its cell, ``y * 10 + x``, with ``mark`` OR-ed in where
    not ``there`` (a slot off the grid must not be ``there``: its code is some other cell's)."""
    return (fields["y"] * GRID + fields["x"]) | (~there).view(U8) * mark


def _spawn(state: State, rank: torch.Tensor, draws: dict[str, torch.Tensor], c: _Constants):
    """Enemy, then diver spawns, written whole into the packed lists; returns ``(enemy,
    placed, diver, e_spawn_timer, d_spawn_timer)`` (``placed``: an enemy was written)."""
    # u < 1/3 in float32 is u < 1/3 exactly: no float32 lies in [1/3, float32(1/3)).
    lr = (draws["enemy_side"] < 0.5).view(U8)
    is_sub = (draws["enemy_is_sub"] < 1 / 3).view(U8)
    row = (draws["enemy_row"] * 8).to(U8) + 1  # uniform_to_int(u, 1, 9): u * 8 is exact, below 8
    dx = lr + lr - 1
    enemy = unpack(state["enemy"], LISTS["enemy"][1])
    spawn = state["e_spawn_timer"] == c.zero
    blocked = any_slot(enemy["valid"].view(torch.bool) & (enemy["y"] == row) & (enemy["dx"] != dx))
    placed = spawn & ~blocked
    new_enemy = torch.stack([c.one, c.nine - c.nine * lr, row, dx, is_sub, state["move_speed"],
                             is_sub * ENEMY_SHOT_INTERVAL])
    enemy = ring_append(state["enemy"], rank, placed, new_enemy)
    e_spawn_timer = blend(spawn, state["e_spawn_speed"], state["e_spawn_timer"])

    d_spawn = state["d_spawn_timer"] == c.zero
    d_lr = (draws["diver_side"] < 0.5).view(U8)
    new_diver = torch.stack([c.one, c.nine - c.nine * d_lr, (draws["diver_row"] * 8).to(U8) + 1, d_lr + d_lr - 1,
                             torch.full_like(c.one, DIVER_MOVE_INTERVAL)])
    diver = shift_append(state["diver"], d_spawn, new_diver)
    d_spawn_timer = blend(d_spawn, DIVER_SPAWN_SPEED, state["d_spawn_timer"])
    return enemy, placed, diver, e_spawn_timer, d_spawn_timer


def _player(state: State, action: torch.Tensor, c: _Constants):
    """Fire (if the gun is ready) or move; returns ``(f_bullet, x, y, right, shot_timer)``."""
    px, py, heading = state["player_x"], state["player_y"], state["player_right"]
    fire = (action == FIRE) & (state["shot_timer"] == c.zero)
    dx = heading.view(U8) * 2 - 1
    f_bullet = shift_append(state["f_bullet"], fire, torch.stack([c.one, px, py, dx]))
    shot_timer = blend(fire, SHOT_COOL_DOWN, state["shot_timer"])
    left, right = action == LEFT, action == RIGHT
    px = px - (left & (px > c.zero)).view(U8) + (right & (px < c.nine)).view(U8)
    py = py - ((action == UP) & (py > c.zero)).view(U8) + ((action == DOWN) & (py < c.eight)).view(U8)
    return f_bullet, px, py, (heading & ~left) | right, shot_timer


def _friendly_bullets(f_bullet: dict, enemy: dict, order: torch.Tensor, c: _Constants) -> torch.Tensor:
    """Friendly bullets move; newest first, each takes the first fish at its cell, else
    the first enemy sub (``order``: smallest first). Returns the hits (uint8 ``(num_envs,)``)."""
    valid = f_bullet["valid"].view(torch.bool)
    f_bullet["x"] = step_x(f_bullet["x"], f_bullet["dx"], valid)
    flying = valid & (f_bullet["x"] <= c.nine)
    bullets = list(flying.unbind(0))
    targets = _cells(f_bullet, flying, NO_BULLET)
    cells = _cells(enemy, enemy["valid"].view(torch.bool), GONE)
    unmatched = order | 128  # keys of enemies not at the bullet's cell; order < 128
    hits = c.zero
    for r, bullet in enumerate(bullets):  # slot 0 is the newest
        key = unmatched - (cells == targets[r]).view(U8) * 128
        first = key.amin(0)
        hit = first < c.bit7
        cells = cells | ((key == first) & hit).view(U8) * GONE
        bullets[r] = bullet & ~hit
        hits = hits + hit.view(U8)
    f_bullet["valid"] = torch.stack(bullets).view(U8)
    enemy["valid"] = (cells < c.bit7).view(U8)
    return hits


def _divers(diver: dict, px: torch.Tensor, py: torch.Tensor, diver_count: torch.Tensor, c: _Constants) -> torch.Tensor:
    """Divers, newest first: picked up at the player's cell (before or after their move)
    while fewer than 6 are on board. Returns the new diver count."""
    valid = diver["valid"].view(torch.bool)
    row = valid & (diver["y"] == py)
    due = diver["move"] == c.zero
    ahead = diver["x"] + diver["dx"]
    want = row & ((diver["x"] == px) | (due & (ahead == px)))
    taken = []
    for wants in want.unbind(0):  # slot 0 is the newest
        take = wants & (diver_count < c.max_divers)
        diver_count = diver_count + take.to(diver_count.dtype)
        taken.append(take)
    diver["x"] = blend(due, ahead, diver["x"])
    diver["move"] = blend(due, DIVER_MOVE_INTERVAL, diver["move"] - 1)
    diver["valid"] = (valid & ~torch.stack(taken) & ~(due & (ahead > c.nine))).view(U8)
    return diver_count


def _enemies(enemy: dict, e_bullet: dict, f_bullet: dict, order: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
             move_speed: torch.Tensor, c: _Constants):
    """Enemy subs, then fish: contact, move, contact or hit by a friendly bullet at the
    new cell; subs shoot. Returns ``(terminal, hits)``.

    Subs and fish move at once: their steps in the reference interact only through the
    friendly bullets (the subs' turn comes first) and the terminal flag (an or).
    """
    valid = enemy["valid"].view(torch.bool)
    shooters = valid & enemy["sub"].view(torch.bool)  # every sub in the list now shoots on schedule
    player_row = valid & (enemy["y"] == py)
    contact = any_slot(player_row & (enemy["x"] == px))
    due = valid & (enemy["move"] == c.zero)
    x = enemy["x"] = step_x(enemy["x"], enemy["dx"], due)
    enemy["move"] = blend(due, move_speed, enemy["move"] - valid.view(U8))
    off = due & (x > c.nine)
    meets = due & player_row & (x == px)
    # The oldest live friendly bullet at a cell goes to the first enemy to move onto it
    # (subs before fish, newest first), the next oldest to the next, ...
    priority = order + 1  # largest first: subs before fish, then newest
    moved = due & ~off & ~meets
    seeking = _cells(enemy, moved, GONE)
    targets = _cells(f_bullet, f_bullet["valid"].view(torch.bool), NO_BULLET)
    bullets = list(f_bullet["valid"].view(torch.bool).unbind(0))
    hits = c.zero
    for r in reversed(range(len(bullets))):  # the last slot is the oldest
        key = (seeking == targets[r]).view(U8) * priority
        top = key.amax(0)
        hit = top != c.zero
        seeking = seeking | ((key == top) & hit).view(U8) * GONE
        bullets[r] = bullets[r] & ~hit
        hits = hits + hit.view(U8)
    f_bullet["valid"] = torch.stack(bullets).view(U8)
    shot_down = (seeking >= c.bit7) & moved
    enemy["valid"] = (valid & ~off & ~shot_down).view(U8)
    fires = shooters & (enemy["shot"] == c.zero)
    enemy["shot"] = blend(fires, ENEMY_SHOT_INTERVAL, enemy["shot"] - shooters.view(U8))
    # A sub's previous bullet is gone when it fires (module docstring): its slot is empty
    # (all zeros). A shot fired from off the grid leaves it at once.
    new = (fires & ~off).view(U8)
    e_bullet["valid"] = e_bullet["valid"] | new
    for k in ("x", "y", "dx"):
        e_bullet[k] = e_bullet[k] + new * enemy[k]
    return contact | any_slot(meets), hits


def _enemy_bullets(e_bullet: dict, px: torch.Tensor, py: torch.Tensor, c: _Constants) -> torch.Tensor:
    """Enemy bullets: contact before and after moving. Returns the terminal flags."""
    valid = e_bullet["valid"].view(torch.bool)
    row = valid & (e_bullet["y"] == py)
    before = any_slot(row & (e_bullet["x"] == px))
    x = e_bullet["x"] = step_x(e_bullet["x"], e_bullet["dx"], valid)
    inside = x <= c.nine
    e_bullet["valid"] = (valid & inside).view(U8)
    return before | any_slot(row & inside & (x == px))


def _timers_and_surface(s: State, difficulty_ramping: bool, c: _Constants) -> State:
    """Timers, oxygen and surfacing on the step's state ``s`` (player already moved);
    returns the changed entries plus ``reward`` (int16) and ``terminal``."""
    out = {k: s[k] - (s[k] > c.zero).view(U8) for k in ("e_spawn_timer", "d_spawn_timer", "shot_timer")}
    oxygen, diver_count, py = s["oxygen"], s["diver_count"], s["player_y"]
    terminal = oxygen <= 0
    under = py > c.zero
    arrives = ~under & ~s["surface"]
    no_divers = diver_count == 0
    terminal = terminal | (arrives & no_divers)
    surfaces = arrives & ~no_divers
    full_load = surfaces & (diver_count == c.max_divers)
    out["reward"] = full_load.view(U8) * torch.div(oxygen * 10, MAX_OXYGEN, rounding_mode="floor")
    out["diver_count"] = blend(full_load, 0, diver_count) - surfaces.to(diver_count.dtype)
    out["oxygen"] = blend(surfaces, MAX_OXYGEN, oxygen - under.to(oxygen.dtype))
    out["surface"] = (s["surface"] & ~under) | surfaces
    e_spawn_speed, move_speed, ramp_index = s["e_spawn_speed"], s["move_speed"], s["ramp_index"]
    slow_spawn, slow_move = e_spawn_speed > 1, move_speed > 2
    ramp = surfaces & (slow_spawn | slow_move) & difficulty_ramping
    out["move_speed"] = move_speed - (ramp & slow_move & (ramp_index & 1).bool()).view(U8)
    out["e_spawn_speed"] = e_spawn_speed - (ramp & slow_spawn).view(U8)
    out["ramp_index"] = ramp_index + ramp.view(U8)
    out["terminal"] = terminal
    return out
