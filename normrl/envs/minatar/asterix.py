"""MinAtar Asterix as a batched torch environment (arXiv 1903.03176; rules of ``minatar`` 1.0.15).

The player moves in the four directions inside rows 1-8. Enemies and gold enter from
the left or right edge into a free lane (lane ``i`` is row ``i + 1``, at most one
entity per lane) and cross the screen. Touching gold gives +1 and removes it;
touching an enemy ends the episode.

Timing (reference constants): a spawn every ``spawn_speed`` steps (initially 10),
entities move every ``move_speed`` steps (initially 5). With difficulty ramping, a
ramp timer starts at 100 and counts down by one per step; on the step after it has
reached -1 it is reset to 100 and the game speeds up (so every 102 steps):
``spawn_speed`` drops by one (down to 1) and, on every other speed-up (when the ramp
index before it is odd), ``move_speed`` drops by one (down to 1). Ramping stops once
both speeds are 1. ``difficulty_ramping=False`` keeps the initial speeds.

Order of events in one step: spawn (if its timer is 0), player move, collisions,
entity move (if its timer is 0) and collisions again, timers, ramp.

Channels (in order): 0 ``player``, 1 ``enemy``, 2 ``trail`` (the cell behind each
entity, showing its direction), 3 ``gold``.
Minimal action set: no-op, left, up, right, down (full indices 0-4).
Randomness per spawn: side (left edge moving right with probability 1/2), gold with
probability 1/3, lane uniform among the free lanes (no spawn if none is free).
"""
from __future__ import annotations

import torch

from normrl.envs.minatar.common import DOWN, GRID, LEFT, NOOP, RIGHT, UP, MinAtarEnv, State, paint, uniform_to_int

N_LANES = 8
RAMP_INTERVAL = 100
INIT_SPAWN_SPEED = 10
INIT_MOVE_SPEED = 5
GOLD_PROB = 1 / 3


class AsterixEnv(MinAtarEnv):
    """Batched MinAtar Asterix; options as :class:`normrl.envs.minatar.common.MinAtarEnv`.

    State keys (all ``(num_envs, ...)``): ``player_x``, ``player_y``; per lane
    (``(num_envs, 8)``): ``active``, ``x``, ``right`` (moving right), ``gold`` (an
    inactive lane holds ``x=0, right=False, gold=False``); timers ``spawn_speed``,
    ``spawn_timer``, ``move_speed``, ``move_timer``, ``ramp_timer``, ``ramp_index``.
    """

    game = "asterix"
    channel_names = ("player", "enemy", "trail", "gold")
    minimal_action_set = (NOOP, LEFT, UP, RIGHT, DOWN)
    reset_draw_shapes = {}
    step_draw_shapes = {"spawn_side": (), "spawn_gold": (), "spawn_lane": ()}

    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        n, device = self.num_envs, self.device

        def full(value: int) -> torch.Tensor:
            return torch.full((n,), value, dtype=torch.int64, device=device)

        lanes_false = torch.zeros((n, N_LANES), dtype=torch.bool, device=device)
        return {
            "player_x": full(5),
            "player_y": full(5),
            "active": lanes_false,
            "x": torch.zeros((n, N_LANES), dtype=torch.int64, device=device),
            "right": lanes_false.clone(),
            "gold": lanes_false.clone(),
            "spawn_speed": full(INIT_SPAWN_SPEED),
            "spawn_timer": full(INIT_SPAWN_SPEED),
            "move_speed": full(INIT_MOVE_SPEED),
            "move_timer": full(INIT_MOVE_SPEED),
            "ramp_timer": full(RAMP_INTERVAL),
            "ramp_index": full(0),
        }

    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        active, x, right, gold = state["active"], state["x"], state["right"], state["gold"]
        spawn_speed, move_speed = state["spawn_speed"], state["move_speed"]

        # Spawn into the k-th free lane, k uniform over the free lanes.
        spawn = state["spawn_timer"] == 0
        free = ~active
        n_free = free.sum(dim=1)
        k = uniform_to_int(draws["spawn_lane"], 0, n_free.clamp(min=1))
        rank = free.long().cumsum(dim=1) - 1
        new = free & (rank == k.unsqueeze(1)) & spawn.unsqueeze(1)
        new_right = (draws["spawn_side"] < 0.5).unsqueeze(1).expand_as(new)
        new_gold = (draws["spawn_gold"] < GOLD_PROB).unsqueeze(1).expand_as(new)
        active = active | new
        x = torch.where(new, torch.where(new_right, 0, GRID - 1), x)
        right = torch.where(new, new_right, right)
        gold = torch.where(new, new_gold, gold)
        spawn_timer = torch.where(spawn, spawn_speed, state["spawn_timer"])

        px, py = state["player_x"], state["player_y"]
        px = torch.where(action == LEFT, (px - 1).clamp(min=0), px)
        px = torch.where(action == RIGHT, (px + 1).clamp(max=GRID - 1), px)
        py = torch.where(action == UP, (py - 1).clamp(min=1), py)
        py = torch.where(action == DOWN, (py + 1).clamp(max=N_LANES), py)

        player_lane = torch.arange(N_LANES, device=px.device) == (py - 1).unsqueeze(1)
        touch = player_lane & active & (x == px.unsqueeze(1))
        collected = touch & gold
        killed = touch & ~gold
        active = active & ~collected

        move = state["move_timer"] == 0
        moving = active & move.unsqueeze(1)
        x = torch.where(moving, x + torch.where(right, 1, -1), x)
        active = active & ((x >= 0) & (x < GRID))
        touch = player_lane & moving & active & (x == px.unsqueeze(1))
        collected = collected | (touch & gold)
        killed = killed | (touch & ~gold)
        active = active & ~(touch & gold)
        move_timer = torch.where(move, move_speed, state["move_timer"])

        # Canonical empty lanes, so states compare exactly.
        x = torch.where(active, x, 0)
        right = right & active
        gold = gold & active

        ramp_timer, ramp_index = state["ramp_timer"], state["ramp_index"]
        if self.difficulty_ramping:
            ramping = (spawn_speed > 1) | (move_speed > 1)
            level_up = ramping & (ramp_timer < 0)
            move_speed = torch.where(level_up & (move_speed > 1) & (ramp_index % 2 == 1), move_speed - 1, move_speed)
            spawn_speed = torch.where(level_up & (spawn_speed > 1), spawn_speed - 1, spawn_speed)
            ramp_index = torch.where(level_up, ramp_index + 1, ramp_index)
            ramp_timer = torch.where(level_up, RAMP_INTERVAL, torch.where(ramping, ramp_timer - 1, ramp_timer))

        next_state = {
            "player_x": px,
            "player_y": py,
            "active": active,
            "x": x,
            "right": right,
            "gold": gold,
            "spawn_speed": spawn_speed,
            "spawn_timer": spawn_timer - 1,
            "move_speed": move_speed,
            "move_timer": move_timer - 1,
            "ramp_timer": ramp_timer,
            "ramp_index": ramp_index,
        }
        reward = collected.any(dim=1).to(torch.float32)
        return next_state, reward, killed.any(dim=1)

    def render(self, state: State) -> torch.Tensor:
        active, x, right, gold = state["active"], state["x"], state["right"], state["gold"]
        rows = torch.arange(1, N_LANES + 1, device=x.device).expand_as(x)
        return paint(x.shape[0], len(self.channel_names), [
            (0, state["player_y"], state["player_x"], None),
            (torch.where(gold, 3, 1), rows, x, active),  # gold or enemy
            (2, rows, x - torch.where(right, 1, -1), active),  # trail
        ], x.device, self.obs_dtype)
