"""MinAtar Freeway as a batched torch environment (arXiv 1903.03176; rules of ``minatar`` 1.0.15).

A chicken in column 4 crosses eight lanes of traffic (rows 1-8, one car per lane)
from the bottom row to the top. It can move up or down at most once every 3 steps.
Reaching row 0 gives +1, sends the chicken back to row 9 and re-draws every car's
speed and direction; being hit by a car sends it back to row 9. Cars wrap around the
screen. The episode terminates after 2,500 steps (on the 2,501st ``step``), as in the
reference (a terminal, not a truncation).

Channels (in order): 0 ``chicken``, 1 ``car``, 2-6 ``speed1``..``speed5`` (the trail
cell behind each car, in the channel of its speed: a car with speed ``s`` moves one
cell every ``s`` steps).
Minimal action set: no-op, up, down (full indices 0, 2, 4).
Randomness: car speeds (uniform in 1..5) and directions (left/right with probability
1/2) at reset and after each crossing. No difficulty ramp.
"""
from __future__ import annotations

import torch

from normrl.envs.minatar.common import DOWN, GRID, NOOP, UP, MinAtarEnv, State, paint, uniform_to_int

PLAYER_COLUMN = 4
PLAYER_MOVE_INTERVAL = 3
TIME_LIMIT = 2500
N_CARS = 8
MAX_SPEED = 5


def _draw_speeds(draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Signed speeds (N, 8): magnitude uniform in 1..5, sign + with probability 1/2."""
    magnitude = uniform_to_int(draws["speed"], 1, MAX_SPEED + 1)
    return torch.where(draws["direction"] > 0.5, magnitude, -magnitude)


class FreewayEnv(MinAtarEnv):
    """Batched MinAtar Freeway; options as :class:`normrl.envs.minatar.common.MinAtarEnv`.

    State keys (all ``(num_envs, ...)``): ``pos`` (chicken row), ``move_timer`` (steps
    until the chicken may move), ``terminate_timer`` (steps left), and per car
    (``(num_envs, 8)``, car ``i`` drives in row ``i + 1``): ``car_x``, ``car_timer``
    (steps until it moves), ``car_speed`` (signed: + moves right).
    ``difficulty_ramping`` has no effect (Freeway does not ramp).
    """

    game = "freeway"
    channel_names = ("chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5")
    minimal_action_set = (NOOP, UP, DOWN)
    reset_draw_shapes = {"speed": (N_CARS,), "direction": (N_CARS,)}
    step_draw_shapes = {"speed": (N_CARS,), "direction": (N_CARS,)}

    def initial_state(self, draws: dict[str, torch.Tensor]) -> State:
        speed = _draw_speeds(draws)
        n, device = speed.shape[0], speed.device
        return {
            "pos": torch.full((n,), GRID - 1, dtype=torch.int64, device=device),
            "move_timer": torch.full((n,), PLAYER_MOVE_INTERVAL, dtype=torch.int64, device=device),
            "terminate_timer": torch.full((n,), TIME_LIMIT, dtype=torch.int64, device=device),
            "car_x": torch.zeros((n, N_CARS), dtype=torch.int64, device=device),
            "car_timer": speed.abs(),
            "car_speed": speed,
        }

    def transition(self, state: State, action: torch.Tensor, draws: dict[str, torch.Tensor]):
        pos, move_timer = state["pos"], state["move_timer"]
        ready = move_timer == 0
        up = ready & (action == UP)
        down = ready & (action == DOWN)
        pos = torch.where(up, (pos - 1).clamp(min=0), pos)
        pos = torch.where(down, (pos + 1).clamp(max=GRID - 1), pos)
        move_timer = torch.where(up | down, PLAYER_MOVE_INTERVAL, move_timer)

        crossed = pos == 0
        new_speed = _draw_speeds(draws)
        speed = torch.where(crossed.unsqueeze(1), new_speed, state["car_speed"])
        car_timer = torch.where(crossed.unsqueeze(1), new_speed.abs(), state["car_timer"])
        pos = torch.where(crossed, GRID - 1, pos)

        # Only the car in the chicken's lane can hit it, before or after that car moves.
        car_rows = torch.arange(1, N_CARS + 1, device=pos.device)
        in_lane = car_rows == pos.unsqueeze(1)
        car_x = state["car_x"]
        hit_before = in_lane & (car_x == PLAYER_COLUMN)
        moves = car_timer == 0
        car_x = torch.where(moves, torch.remainder(car_x + speed.sign(), GRID), car_x)
        car_timer = torch.where(moves, speed.abs(), car_timer - 1)
        hit_after = in_lane & moves & (car_x == PLAYER_COLUMN)
        pos = torch.where((hit_before | hit_after).any(dim=1), GRID - 1, pos)

        terminate_timer = state["terminate_timer"] - 1
        next_state = {
            "pos": pos,
            "move_timer": move_timer - (move_timer > 0).long(),
            "terminate_timer": terminate_timer,
            "car_x": car_x,
            "car_timer": car_timer,
            "car_speed": speed,
        }
        return next_state, crossed.to(torch.float32), terminate_timer < 0

    def render(self, state: State) -> torch.Tensor:
        pos, car_x, speed = state["pos"], state["car_x"], state["car_speed"]
        car_rows = torch.arange(1, N_CARS + 1, device=pos.device).expand_as(car_x)
        trail_x = torch.remainder(car_x - speed.sign(), GRID)
        return paint(pos.shape[0], len(self.channel_names), [
            (0, pos, torch.full_like(pos, PLAYER_COLUMN), None),
            (1, car_rows, car_x, None),
            (1 + speed.abs(), car_rows, trail_x, None),  # channel speed1..speed5
        ], pos.device, self.obs_dtype)
