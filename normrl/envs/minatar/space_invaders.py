"""MinAtar SpaceInvaders as a batched torch environment (arXiv 1903.03176; rules of ``minatar`` 1.0.15).

A cannon on the bottom row shoots upward at a 4x6 block of aliens (rows 0-3, columns
2-7 at the start of every wave). The block steps sideways every ``alien_move_timer``
expiry; when a step would push an alien past the edge it instead drops one row and
turns around. Each alien hit by a friendly bullet gives +1 and is removed (all
bullets move one cell per step). The alien nearest to the cannon's column (ties: the
lower column) fires from the lowest alien of that column every 10 steps. The episode
ends when an enemy bullet or an alien reaches the cannon's cell, or when the block
has to drop while an alien is already on the bottom row.

Timing (reference constants): at most one friendly shot per 5 steps (cool-down 5);
the block moves when its timer is 0, and the timer restarts at
``min(number of aliens, enemy_move_interval)``, so the block moves every that many
steps (a thinning wave speeds up);
``enemy_move_interval`` starts at 12 and, with difficulty ramping, drops by one per
cleared wave down to 6. ``difficulty_ramping=False`` keeps it at 12.

Order of events in one step: fire or move the cannon; friendly bullets up, enemy
bullets down (hit check); alien hit check, alien move (hit check); alien shot; kills;
timers; refill of a cleared wave. As in the reference, the step continues after a
terminal condition is found (a kill on the terminal step still scores).

Channels (in order): 0 ``cannon``, 1 ``alien``, 2 ``alien_left``, 3 ``alien_right``
(the aliens again, in the plane of their direction), 4 ``friendly_bullet``,
5 ``enemy_bullet``.
Minimal action set: no-op, left, right, fire (full indices 0, 1, 3, 5).
Randomness: none (the game is deterministic given the actions).
"""
from __future__ import annotations

import torch

from normrl.envs.minatar.common import FIRE, GRID, LEFT, NOOP, RIGHT, MinAtarEnv, State, paint

SHOT_COOL_DOWN = 5
ENEMY_MOVE_INTERVAL = 12
MIN_ENEMY_MOVE_INTERVAL = 6
ENEMY_SHOT_INTERVAL = 10


def _wave(device: torch.device) -> torch.Tensor:
    wave = torch.zeros((GRID, GRID), dtype=torch.bool, device=device)
    wave[0:4, 2:8] = True
    return wave


class SpaceInvadersEnv(MinAtarEnv):
    """Batched MinAtar SpaceInvaders; options as :class:`normrl.envs.minatar.common.MinAtarEnv`.

    State keys (all ``(num_envs, ...)``): ``pos`` (cannon column), bool 10x10 maps
    ``alien_map``, ``f_bullet_map``, ``e_bullet_map``; ``alien_dir`` (-1 left, +1
    right); timers ``shot_timer``, ``alien_move_timer``, ``alien_shot_timer``;
    ``enemy_move_interval`` and ``ramp_index`` (number of speed-ups so far).
    """

    game = "space_invaders"
    channel_names = ("cannon", "alien", "alien_left", "alien_right", "friendly_bullet", "enemy_bullet")
    minimal_action_set = (NOOP, LEFT, RIGHT, FIRE)
    reset_draw_shapes = {}
    step_draw_shapes = {}

    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        n, device = self.num_envs, self.device

        def full(value: int) -> torch.Tensor:
            return torch.full((n,), value, dtype=torch.int64, device=device)

        empty = torch.zeros((n, GRID, GRID), dtype=torch.bool, device=device)
        return {
            "pos": full(5),
            "alien_map": _wave(device).expand(n, GRID, GRID).clone(),
            "f_bullet_map": empty,
            "e_bullet_map": empty.clone(),
            "alien_dir": full(-1),
            "enemy_move_interval": full(ENEMY_MOVE_INTERVAL),
            "alien_move_timer": full(ENEMY_MOVE_INTERVAL),
            "alien_shot_timer": full(ENEMY_SHOT_INTERVAL),
            "ramp_index": full(0),
            "shot_timer": full(0),
        }

    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        device = action.device
        n = action.shape[0]
        batch = torch.arange(n, device=device)
        cols = torch.arange(GRID, device=device)
        pos = state["pos"]
        shot_timer = state["shot_timer"]
        aliens = state["alien_map"]
        direction = state["alien_dir"]
        interval = state["enemy_move_interval"]

        fire = (action == FIRE) & (shot_timer == 0)
        f_map = state["f_bullet_map"].clone()
        f_map[batch, GRID - 1, pos] |= fire
        shot_timer = torch.where(fire, SHOT_COOL_DOWN, shot_timer)
        pos = torch.where(action == LEFT, (pos - 1).clamp(min=0), pos)
        pos = torch.where(action == RIGHT, (pos + 1).clamp(max=GRID - 1), pos)

        # Bullets: friendly ones rise and leave through the top, enemy ones fall off the bottom.
        no_row = torch.zeros_like(f_map[:, :1])
        f_map = torch.cat([f_map[:, 1:], no_row], dim=1)
        e_map = torch.cat([no_row, state["e_bullet_map"][:, :-1]], dim=1)
        terminal = e_map[batch, GRID - 1, pos] | aliens[batch, GRID - 1, pos]

        move = state["alien_move_timer"] == 0
        count = aliens.sum(dim=(1, 2))
        move_timer = torch.where(move, torch.minimum(count, interval), state["alien_move_timer"])
        at_left = aliens[:, :, 0].any(dim=1)
        at_right = aliens[:, :, GRID - 1].any(dim=1)
        turn = move & ((at_left & (direction < 0)) | (at_right & (direction > 0)))
        side = move & ~turn
        terminal |= turn & aliens[:, GRID - 1].any(dim=1)
        # The reference rolls (wraps) the map; a drop with an alien on the bottom row ends
        # the episode and that alien wraps to the top row, which the last frame shows.
        dropped = torch.roll(aliens, 1, dims=1)
        sideways = torch.where((direction > 0).view(n, 1, 1), torch.roll(aliens, 1, dims=2), torch.roll(aliens, -1, dims=2))
        aliens = torch.where(turn.view(n, 1, 1), dropped, torch.where(side.view(n, 1, 1), sideways, aliens))
        direction = torch.where(turn, -direction, direction)
        terminal |= move & aliens[batch, GRID - 1, pos]

        # The alien that shoots: nearest non-empty column to the cannon (ties: lower
        # column), lowest alien in it. A wave is never empty here (it refills at the end
        # of the step that clears it).
        shoot = state["alien_shot_timer"] == 0
        occupied = aliens.any(dim=1)
        key = (cols - pos.unsqueeze(1)).abs() * GRID + cols
        col = torch.where(occupied, key, 2 * GRID * GRID).argmin(dim=1)
        rows_in_col = aliens[batch, :, col]
        row = torch.where(rows_in_col, torch.arange(GRID, device=device), -1).amax(dim=1)
        e_map = e_map.clone()
        e_map[batch, row.clamp(min=0), col] |= shoot & occupied.any(dim=1)
        shot_timer_alien = torch.where(shoot, ENEMY_SHOT_INTERVAL, state["alien_shot_timer"])

        kills = aliens & f_map
        reward = kills.sum(dim=(1, 2)).to(torch.float32)
        aliens = aliens & ~kills
        f_map = f_map & ~kills

        shot_timer = shot_timer - (shot_timer > 0).long()
        move_timer = move_timer - 1
        shot_timer_alien = shot_timer_alien - 1
        cleared = ~aliens.flatten(1).any(dim=1)
        ramp = cleared & (interval > MIN_ENEMY_MOVE_INTERVAL) & self.difficulty_ramping
        interval = interval - ramp.long()
        aliens = torch.where(cleared.view(n, 1, 1), _wave(device), aliens)

        next_state = {
            "pos": pos,
            "alien_map": aliens,
            "f_bullet_map": f_map,
            "e_bullet_map": e_map,
            "alien_dir": direction,
            "enemy_move_interval": interval,
            "alien_move_timer": move_timer,
            "alien_shot_timer": shot_timer_alien,
            "ramp_index": state["ramp_index"] + ramp.long(),
            "shot_timer": shot_timer,
        }
        return next_state, reward, terminal

    def render(self, state: State) -> torch.Tensor:
        pos = state["pos"]
        n = pos.shape[0]
        planes = paint(n, len(self.channel_names), [(0, torch.full_like(pos, GRID - 1), pos, None)], pos.device)
        aliens = state["alien_map"].to(torch.float32)
        left = (state["alien_dir"] < 0).view(n, 1, 1)
        planes[:, 1] = aliens
        planes[:, 2] = torch.where(left, aliens, 0.0)
        planes[:, 3] = torch.where(left, 0.0, aliens)
        planes[:, 4] = state["f_bullet_map"].to(torch.float32)
        planes[:, 5] = state["e_bullet_map"].to(torch.float32)
        return planes
