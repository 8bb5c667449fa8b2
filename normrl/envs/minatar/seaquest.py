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

Layout. The reference keeps Python lists; here each kind of entity lives in a ring of
slots (:mod:`normrl.envs.minatar.slot_ring`): an entity is written at the ring's tail
and stays in its slot until it is removed, so a step never compacts or shifts, and the
lists' spawn order is the slots' order read from the tail. Fish and enemy subs share
one ``enemy`` ring (a ``sub`` field tells them apart; the rules only ever order
entities of one kind, so interleaving the kinds changes nothing). Every rule is a few
tensor ops over all slots at once; the only loops run over the friendly-bullet ring's
3 ranks. The capacities follow from the rules:

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
  most 10, so at most 2 are alive (3 right after a shot when a loaded state holds 2).
* ``diver``: 4 slots. One spawns every 30 steps and lives at most 59, so at most 2.

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
from normrl.envs.minatar.slot_ring import SlotRing, any_slot, blend, check_width, reorder, step_x

U8 = torch.uint8
MAX_OXYGEN = 200
INIT_SPAWN_SPEED = 20
DIVER_SPAWN_SPEED = 30
INIT_MOVE_SPEED = 5
SHOT_COOL_DOWN = 5
ENEMY_SHOT_INTERVAL = 10
DIVER_MOVE_INTERVAL = 5
MAX_DIVERS = 6

#: each slot list: (most slots, fields), every field uint8 (flags 0/1, columns 0-9,
#: countdowns <= 10); see the module docstring for the bounds
LISTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "f_bullet": (4, ("valid", "x", "y", "right")),
    "diver": (4, ("valid", "x", "y", "right", "move")),
    "enemy": (64, ("valid", "x", "y", "right", "sub", "move", "shot")),
    "e_bullet": (64, ("valid", "x", "y", "right")),
}
#: the state key of each list's ring tail (``e_bullet`` slots shadow the ``enemy`` slots)
TAILS: dict[str, str] = {"f_bullet": "f_bullet_tail", "diver": "diver_tail", "enemy": "enemy_tail",
                         "e_bullet": "enemy_tail"}
#: per-sub-env values of a fresh episode and their dtypes (``oxygen`` drops to -1 on the
#: step oxygen runs out; ``diver_count`` goes below 0 after a full rescue, see above)
INITIAL: dict[str, tuple[int | bool, torch.dtype]] = {
    "player_x": (5, U8), "player_y": (0, U8), "player_right": (False, torch.bool),
    "oxygen": (MAX_OXYGEN, torch.int16), "diver_count": (0, torch.int32), "shot_timer": (0, U8),
    "surface": (True, torch.bool), "e_spawn_speed": (INIT_SPAWN_SPEED, U8), "e_spawn_timer": (INIT_SPAWN_SPEED, U8),
    "d_spawn_timer": (DIVER_SPAWN_SPEED, U8), "move_speed": (INIT_MOVE_SPEED, U8), "ramp_index": (0, U8),
    "f_bullet_tail": (0, U8), "diver_tail": (0, U8), "enemy_tail": (0, U8),
}
#: narrowest enemy ring of ``dynamic_capacity`` (a power of two, as every ring width)
MIN_ENEMY_SLOTS = 4
#: the enemy ring is widened to hold what the next step may need plus this many slots,
#: and narrowed (by at least half) once that fits in a quarter of it
ENEMY_SLOT_SLACK = 2
#: the diver gauge's cell 0 of row 0, which the reference never sets: rendering sends
#: the cells of empty slots there and clears it afterwards
SPARE_CELL = 8 * GRID * GRID


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
    ``move_speed``, ``ramp_index``. The lists :data:`LISTS` ``f_bullet``, ``diver``,
    ``enemy``, ``e_bullet`` are uint8 tensors ``(num_envs, slots, fields)`` (views of
    env-innermost memory, see :mod:`normrl.envs.minatar.slot_ring`), with the fields in
    the order :data:`LISTS` gives; empty slots hold zeros. Their ring tails are
    ``f_bullet_tail``, ``diver_tail`` and ``enemy_tail`` (the number of entities ever
    written, modulo 256; ``e_bullet`` follows ``enemy_tail``). The current ring widths
    are :attr:`capacity`.
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
        # Gauge rows (row 9 of channels 7 and 8) by (oxygen cells 0-10, divers 0-6 on board).
        cols = torch.arange(GRID)
        oxygen_cells, divers = torch.arange(11).view(-1, 1, 1), torch.arange(MAX_DIVERS + 1).view(1, -1, 1)
        oxygen_row = (cols < oxygen_cells).expand(-1, MAX_DIVERS + 1, -1)
        diver_row = ((cols >= GRID - 1 - divers) & (cols < GRID - 1)).expand(11, -1, -1)
        self._gauge_rows = torch.stack([oxygen_row, diver_row], dim=2).reshape(-1, 2, GRID).to(device)
        super().__init__(num_envs, device, seed, **kwargs)

    # ------------------------------------------------------------------ ring widths
    def _fit_capacity(self) -> None:
        """Widen (or narrow) the enemy ring of ``self.state`` so the next step cannot overflow it.

        A step writes at most one enemy, at the tail slot, which must be free: the ring
        needs one slot more than the span from the oldest live enemy to the newest.
        Narrowing keeps every slot that still carries a live enemy bullet.
        """
        width = self.capacity["enemy"]
        enemy = SlotRing.unpack(self.state["enemy"], self.state["enemy_tail"], LISTS["enemy"][1])
        rank = enemy.rank().to(torch.int16)
        spans = []
        for valid in (enemy["valid"], self.state["e_bullet"][:, :, 0].t()):
            oldest = (rank + (1 - valid.to(torch.int16)) * width).amin(0)
            spans.append((width - oldest).amax())
        enemy_span, bullet_span = torch.stack(spans).tolist()
        need = max(enemy_span + 1, bullet_span)
        target = min(LISTS["enemy"][0], max(MIN_ENEMY_SLOTS, _next_power_of_two(need + ENEMY_SLOT_SLACK)))
        if need > width or target * 4 <= width:
            self._set_enemy_width(target)

    def _set_enemy_width(self, width: int) -> None:
        tail = self.state["enemy_tail"]
        for p in ("enemy", "e_bullet"):
            self.state[p] = reorder(self.state[p], tail, width)
            self.capacity[p] = width
        self.state["enemy_tail"] = torch.zeros_like(tail)

    def step_with_draws(self, actions, draws):
        if self.dynamic_capacity:
            self._fit_capacity()
        return super().step_with_draws(actions, draws)

    def load_state_dict(self, state) -> None:
        """As :meth:`MinAtarEnv.load_state_dict`; the enemy ring keeps the saved width, or
        is widened to 64 slots when this env has fixed widths."""
        super().load_state_dict(state)
        for p, (most, _) in LISTS.items():
            width = self.state[p].shape[1]
            check_width(width)
            if width > most or (p in ("f_bullet", "diver") and width != most):
                raise ValueError(f"state list {p!r} has {width} slots; this env takes {most}"
                                 + ("" if p in ("f_bullet", "diver") else " at most"))
            # back to env-innermost memory (the layout the step's ops are fast on)
            self.state[p] = self.state[p].permute(2, 1, 0).contiguous().permute(2, 1, 0)
            self.capacity[p] = width
        if self.state["enemy"].shape[1] != self.state["e_bullet"].shape[1]:
            raise ValueError("state lists 'enemy' and 'e_bullet' must have the same number of slots")
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
                merged[key] = (value & ~done) | done if fresh else value & ~done
            else:
                merged[key] = blend(done, fresh, value)
        return merged

    # ------------------------------------------------------------------ rules
    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        rings = {p: SlotRing.unpack(state[p], state[TAILS[p]], LISTS[p][1]) for p in LISTS}
        if rings["enemy"].width > LISTS["enemy"][0] or rings["enemy"].width != rings["e_bullet"].width:
            raise ValueError(f"the enemy and e_bullet rings must share one width <= {LISTS['enemy'][0]}")
        nine = torch.full_like(state["player_x"], GRID - 1)
        out = dict(state)
        out["e_spawn_timer"], out["d_spawn_timer"] = _spawn(rings["enemy"], rings["diver"], state, draws, nine)
        out["player_x"], out["player_y"], out["player_right"], out["shot_timer"] = _player(
            rings["f_bullet"], state, action, nine)
        px, py = out["player_x"], out["player_y"]
        reward = _friendly_bullets(rings["f_bullet"], rings["enemy"], nine)
        out["diver_count"] = _divers(rings["diver"], px, py, state["diver_count"], nine)
        terminal, hits = _enemies(rings["enemy"], rings["e_bullet"], rings["f_bullet"], px, py,
                                  state["move_speed"], nine)
        terminal = terminal | _enemy_bullets(rings["e_bullet"], px, py, nine)
        surfacing = _timers_and_surface(out, self.difficulty_ramping)
        reward = surfacing.pop("reward") + (reward + hits)
        terminal = terminal | surfacing.pop("terminal")
        out.update(surfacing)
        for p, ring in rings.items():
            out[p] = ring.pack(LISTS[p][1])
        for p in ("f_bullet", "diver", "enemy"):
            out[TAILS[p]] = rings[p].tail
        return out, reward.to(torch.float32), terminal

    # ------------------------------------------------------------------ observation
    def render(self, state: State) -> torch.Tensor:
        px, py, right = state["player_x"], state["player_y"], state["player_right"].view(U8)
        n, device = px.shape[0], px.device
        rings = {p: SlotRing.unpack(state[p], state[TAILS[p]], LISTS[p][1]) for p in LISTS}
        nine = torch.full_like(px, GRID - 1)
        back_x = px + 1 - right - right
        ones = torch.ones_like(px)
        pieces = [  # (channel, rows, columns, drawn) per group of cells; each (slots or 1, n) uint8
            (0, py, px, ones), (1, py, back_x, (back_x <= nine).view(U8)),
            (2, rings["f_bullet"]["y"], rings["f_bullet"]["x"], rings["f_bullet"]["valid"]),
            (4, rings["e_bullet"]["y"], rings["e_bullet"]["x"], rings["e_bullet"]["valid"]),
        ]
        for p, channel in (("enemy", 5), ("diver", 9)):
            ring = rings[p]
            # an enemy sub's cell in channel 6 is its fish cell 10 rows further on
            rows = ring["y"] + GRID * ring["sub"] if p == "enemy" else ring["y"]
            trail_x = ring["x"] + 1 - ring["right"] - ring["right"]  # the cell behind; 255 or 10 when off the grid
            pieces.append((channel, rows, ring["x"], ring["valid"]))
            pieces.append((3, ring["y"], trail_x, ring["valid"] & (trail_x <= nine).view(U8)))
        rows = torch.cat([y.view(-1, n) for _, y, _, _ in pieces])
        cols = torch.cat([x.view(-1, n) for _, _, x, _ in pieces])
        drawn = torch.cat([v.view(-1, n) for _, _, _, v in pieces])
        base = torch.cat([torch.full((y.view(-1, n).shape[0], 1), c * GRID * GRID - SPARE_CELL, dtype=torch.int16)
                          for c, y, _, _ in pieces]).to(device)
        index = (base + (rows * GRID + cols)) * drawn + SPARE_CELL  # (cells, n) int16
        dtype = self.obs_dtype
        canvas = U8 if dtype == torch.bool else dtype
        planes = torch.zeros((n, self.n_channels * GRID * GRID), dtype=canvas, device=device)
        index = index.t().contiguous().long()
        planes.scatter_(1, index, torch.ones((1, 1), dtype=canvas, device=device).expand_as(index))
        planes[:, SPARE_CELL] = 0
        planes = planes.view(n, self.n_channels, GRID, GRID)
        oxygen_cells = torch.div(state["oxygen"].clamp(min=0) * 10, MAX_OXYGEN, rounding_mode="floor")
        gauge = oxygen_cells.long() * (MAX_DIVERS + 1) + state["diver_count"].clamp(0, MAX_DIVERS).long()
        planes[:, 7:9, GRID - 1] = self._gauge_rows.index_select(0, gauge).to(canvas)
        return planes.view(torch.bool) if dtype == torch.bool else planes


def _spawn(enemy: SlotRing, diver: SlotRing, state: State, draws: dict[str, torch.Tensor], nine: torch.Tensor):
    """Enemy, then diver spawns; returns the new ``(e_spawn_timer, d_spawn_timer)``."""
    spawn = ~state["e_spawn_timer"].bool()
    lr = (draws["enemy_side"].double() < 1 / 2).view(U8)
    is_sub = (draws["enemy_is_sub"].double() < 1 / 3).view(U8)
    row = uniform_to_int(draws["enemy_row"], 1, 9).to(U8)
    blocked = any_slot(enemy["valid"].view(torch.bool) & (enemy["y"] == row) & (enemy["right"] != lr))
    enemy.append(spawn & ~blocked, x=nine * (1 - lr), y=row, right=lr, sub=is_sub, move=state["move_speed"],
                 shot=is_sub * ENEMY_SHOT_INTERVAL)
    e_spawn_timer = blend(spawn, state["e_spawn_speed"], state["e_spawn_timer"])

    d_spawn = ~state["d_spawn_timer"].bool()
    d_lr = (draws["diver_side"].double() < 1 / 2).view(U8)
    diver.append(d_spawn, x=nine * (1 - d_lr), y=uniform_to_int(draws["diver_row"], 1, 9).to(U8), right=d_lr,
                 move=DIVER_MOVE_INTERVAL)
    d_spawn_timer = blend(d_spawn, DIVER_SPAWN_SPEED, state["d_spawn_timer"])
    return e_spawn_timer, d_spawn_timer


def _player(f_bullet: SlotRing, state: State, action: torch.Tensor, nine: torch.Tensor):
    """Fire (if the gun is ready) or move; returns ``(x, y, right, shot_timer)``."""
    px, py, heading = state["player_x"], state["player_y"], state["player_right"]
    fire = (action == FIRE) & ~state["shot_timer"].bool()
    f_bullet.append(fire, x=px, y=py, right=heading.view(U8))
    shot_timer = blend(fire, SHOT_COOL_DOWN, state["shot_timer"])
    left, right = action == LEFT, action == RIGHT
    px = px - (left & px.bool()).view(U8) + (right & (px < nine)).view(U8)
    py = py - ((action == UP) & py.bool()).view(U8) + ((action == DOWN) & (py < nine - 1)).view(U8)
    return px, py, (heading & ~left) | right, shot_timer


def _bullet_at_rank(f_bullet: SlotRing, valid: torch.Tensor, r: int):
    """The friendly bullet of ring rank ``r`` per sub-env: ``(slot one-hot, x, y, exists)``."""
    slot = f_bullet.at_rank(r) & valid
    weight = slot.view(U8)
    return slot, (weight * f_bullet["x"]).amax(0), (weight * f_bullet["y"]).amax(0), any_slot(slot)


def _friendly_bullets(f_bullet: SlotRing, enemy: SlotRing, nine: torch.Tensor) -> torch.Tensor:
    """Friendly bullets move; newest first, each takes the first fish at its cell, else
    the first enemy sub. Returns the hits (uint8 ``(num_envs,)``)."""
    valid = f_bullet["valid"].view(torch.bool)
    f_bullet["x"] = step_x(f_bullet["x"], f_bullet["right"], valid)
    valid = valid & ~(f_bullet["x"] > nine)
    alive = enemy["valid"].view(torch.bool)
    order = enemy.rank() | (enemy["sub"] << 6)  # smallest first: fish before subs, then oldest (rank < 64)
    hits = torch.zeros_like(nine)
    for r in range(f_bullet.width - 1, -1, -1):  # newest first
        slot, bx, by, exists = _bullet_at_rank(f_bullet, valid, r)
        target = alive & (enemy["x"] == bx) & (enemy["y"] == by) & exists
        key = order | ((~target).view(U8) << 7)
        first = key.amin(0)
        hit = ~(first >> 7).bool()
        alive = alive & ~(target & (key == first))
        valid = valid & ~(slot & hit)
        hits = hits + hit.view(U8)
    f_bullet["valid"], enemy["valid"] = valid.view(U8), alive.view(U8)
    return hits


def _divers(diver: SlotRing, px: torch.Tensor, py: torch.Tensor, diver_count: torch.Tensor,
            nine: torch.Tensor) -> torch.Tensor:
    """Divers, newest first: picked up at the player's cell (before or after their move)
    while fewer than 6 are on board. Returns the new diver count."""
    valid = diver["valid"].view(torch.bool)
    row = diver["y"] == py
    at = valid & (diver["x"] == px) & row
    due = ~diver["move"].bool()
    ahead = step_x(diver["x"], diver["right"], torch.ones_like(valid))
    want = at | (valid & due & (ahead == px) & row)
    picked = torch.zeros_like(valid)
    for r in range(diver.width - 1, -1, -1):  # newest first
        slot = diver.at_rank(r) & want
        take = any_slot(slot) & (diver_count < MAX_DIVERS)
        picked = picked | (slot & take)
        diver_count = diver_count + take.to(diver_count.dtype)
    diver["x"] = blend(due, ahead, diver["x"])
    diver["move"] = blend(due, DIVER_MOVE_INTERVAL, diver["move"] - 1)
    diver["valid"] = (valid & ~picked & ~(due & (ahead > nine))).view(U8)
    return diver_count


def _enemies(enemy: SlotRing, e_bullet: SlotRing, f_bullet: SlotRing, px: torch.Tensor, py: torch.Tensor,
             move_speed: torch.Tensor, nine: torch.Tensor):
    """Enemy subs, then fish: contact, move, contact or hit by a friendly bullet at the
    new cell; subs shoot. Returns ``(terminal, hits)``.

    Subs and fish move at once: their steps in the reference interact only through the
    friendly bullets (the subs' turn comes first) and the terminal flag (an or).
    """
    valid = enemy["valid"].view(torch.bool)
    shooters = valid & enemy["sub"].view(torch.bool)  # every sub in the list now shoots on schedule
    contact = any_slot(valid & (enemy["x"] == px) & (enemy["y"] == py))
    due = valid & ~enemy["move"].bool()
    enemy["x"] = step_x(enemy["x"], enemy["right"], due)
    enemy["move"] = blend(due, move_speed, enemy["move"] - valid.view(U8))
    off = due & (enemy["x"] > nine)
    meets = due & ~off & (enemy["x"] == px) & (enemy["y"] == py)
    seeking = due & ~off & ~meets
    # The oldest live friendly bullet at a cell goes to the first enemy to move onto it
    # (subs before fish, newest first), the next oldest to the next, ...
    priority = (enemy.rank() | (enemy["sub"] << 6)) + 1
    f_valid = f_bullet["valid"].view(torch.bool)
    shot_down = torch.zeros_like(valid)
    hits = torch.zeros_like(nine)
    for r in range(f_bullet.width):  # oldest first
        slot, bx, by, exists = _bullet_at_rank(f_bullet, f_valid, r)
        key = (seeking & (enemy["x"] == bx) & (enemy["y"] == by) & exists).view(U8) * priority
        top = key.amax(0)
        hit = top.bool()
        taken = key.bool() & (key == top)
        seeking, shot_down = seeking & ~taken, shot_down | taken
        f_valid = f_valid & ~(slot & hit)
        hits = hits + hit.view(U8)
    f_bullet["valid"] = f_valid.view(U8)
    enemy["valid"] = (valid & ~off & ~shot_down).view(U8)
    fires = shooters & ~enemy["shot"].bool()
    enemy["shot"] = blend(fires, ENEMY_SHOT_INTERVAL, enemy["shot"] - shooters.view(U8))
    new = fires & ~off  # a shot fired from off the grid leaves it at once
    e_bullet["valid"] = e_bullet["valid"] | new.view(U8)
    for k in ("x", "y", "right"):
        e_bullet[k] = blend(new, enemy[k], e_bullet[k])
    return contact | any_slot(meets), hits


def _enemy_bullets(e_bullet: SlotRing, px: torch.Tensor, py: torch.Tensor, nine: torch.Tensor) -> torch.Tensor:
    """Enemy bullets: contact before and after moving. Returns the terminal flags."""
    valid = e_bullet["valid"].view(torch.bool)
    before = any_slot(valid & (e_bullet["x"] == px) & (e_bullet["y"] == py))
    e_bullet["x"] = step_x(e_bullet["x"], e_bullet["right"], valid)
    valid = valid & ~(e_bullet["x"] > nine)
    e_bullet["valid"] = valid.view(U8)
    return before | any_slot(valid & (e_bullet["x"] == px) & (e_bullet["y"] == py))


def _timers_and_surface(s: State, difficulty_ramping: bool) -> State:
    """Timers, oxygen and surfacing on the step's state ``s`` (player already moved);
    returns the changed entries plus ``reward`` (int16) and ``terminal``."""
    out = {k: s[k] - s[k].bool().view(U8) for k in ("e_spawn_timer", "d_spawn_timer", "shot_timer")}
    oxygen, diver_count, py = s["oxygen"], s["diver_count"], s["player_y"]
    terminal = oxygen <= 0
    under = py.bool()
    arrives = ~under & ~s["surface"]
    no_divers = diver_count == 0
    terminal = terminal | (arrives & no_divers)
    surfaces = arrives & ~no_divers
    full_load = surfaces & (diver_count == MAX_DIVERS)
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
