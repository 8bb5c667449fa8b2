"""Batched CartPole-v1 in torch: gymnasium's ``CartPole-v1`` stepped for many
sub-environments at once, on any device.

The dynamics, constants and rules are gymnasium's ``CartPoleEnv`` (Barto, Sutton &
Anderson 1983, as fixed by gymnasium's ``CartPole-v1`` with its 500-step ``TimeLimit``):

* state ``(x, x_dot, theta, theta_dot)``; action 0 pushes the cart left with force
  10 N, action 1 pushes it right (like gymnasium, any action other than 1 pushes left;
  action values are not checked, which would need a host sync);
* gravity 9.8, cart mass 1.0, pole mass 0.1, pole half-length 0.5, ``tau`` 0.02 s,
  explicit Euler integration (gymnasium's default ``"euler"`` integrator);
* terminated when ``|x| > 2.4`` or ``|theta| > 12°`` (``12 * 2 * pi / 360`` rad),
  tested on the state after the step;
* reward 1.0 on every step, including the terminating one;
* truncated when the episode reaches ``max_episode_steps`` (default 500) steps, set as
  gymnasium's ``TimeLimit`` does: on the 500th step, whether or not it also terminates;
* reset state uniform(-0.05, 0.05) for all four variables.

Precision: gymnasium integrates in float64 and casts observations to float32. This env
keeps its state in ``dtype`` (default ``torch.float32``), so one step from the same state
matches gymnasium to float32 rounding (~1e-7 relative) and long trajectories drift
apart at that rate (the termination test sees the float32 state, so a state within
float32 rounding of a threshold can end one step earlier or later). With
``dtype=torch.float64`` the state equals gymnasium's float64 state to a few units in the
last place (constants are folded and ``sin``/``cos`` may round differently); the
fidelity tests use it to compare with gymnasium tightly. Observations are always float32, as in gymnasium's
observation space.

Randomness: reset states come from a ``torch.Generator`` on the env's device, seeded by
``seed`` (constructor) or ``reset(seed)``. Every ``step`` draws a full batch of
candidate reset states and passes it to the pure function :func:`cartpole_transition`,
which picks them for the sub-envs that finished; the random stream therefore does not
depend on which envs finished, and the transition has no RNG inside (no graph breaks
for ``torch.compile`` or CUDA graphs). Nothing in ``step`` synchronizes with the host.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from normrl.envs.base import TensorEnv
from normrl.envs.episode_stats import EpisodeStats

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_POLE + MASS_CART
HALF_LENGTH = 0.5  # gymnasium's ``length``: half the pole's length
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_LOW, RESET_HIGH = -0.05, 0.05
MAX_EPISODE_STEPS = 500

_OBS_HIGH = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)


def cartpole_dynamics(state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the cart-pole physics, batched.

    ``state`` is ``(..., 4)`` (``x, x_dot, theta, theta_dot``) in any float dtype,
    ``action`` the matching integer tensor ``(...)``. Returns ``(next_state, terminated)``,
    terminated being tested on ``next_state``.

    gymnasium's formulas, with its constants folded (``L * (4/3 - m * cos^2 / M)`` is
    computed as ``L * 4/3 - (L * m / M) * cos^2``, and likewise for ``xacc``): in float64
    the result equals gymnasium's to a few units in the last place.
    """
    x_dot, theta, theta_dot = state[..., 1], state[..., 2], state[..., 3]
    force = torch.where(action == 1, FORCE_MAG, -FORCE_MAG).to(state.dtype)
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    temp = torch.addcmul(force, theta_dot * theta_dot, sintheta, value=POLE_MASS_LENGTH).div_(TOTAL_MASS)
    numerator = torch.addcmul(GRAVITY * sintheta, costheta, temp, value=-1.0)
    denominator = (costheta * costheta).mul_(-HALF_LENGTH * MASS_POLE / TOTAL_MASS).add_(HALF_LENGTH * 4.0 / 3.0)
    thetaacc = numerator.div_(denominator)
    xacc = torch.addcmul(temp, thetaacc, costheta, value=-POLE_MASS_LENGTH / TOTAL_MASS)
    # explicit Euler: every variable moves by tau times its derivative at the old state
    derivative = torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=-1)
    next_state = state + TAU * derivative
    # |v| > t is exactly gymnasium's v < -t or v > t
    terminated = (next_state[..., 0].abs() > X_THRESHOLD) | (next_state[..., 2].abs() > THETA_THRESHOLD)
    return next_state, terminated


def cartpole_transition(
    state: torch.Tensor,
    action: torch.Tensor,
    reset_state: torch.Tensor,
    episode_length: torch.Tensor,
    max_episode_steps: int = MAX_EPISODE_STEPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The full batched CartPole-v1 step as a pure function (no RNG, no host sync).

    Args:
        state: ``(N, 4)`` current states.
        action: ``(N,)`` integer actions.
        reset_state: ``(N, 4)`` states to start from where an episode ends (drawn by
            the caller; only the rows of finished sub-envs are used).
        episode_length: ``(N,)`` steps taken so far in the current episodes.
        max_episode_steps: the time limit (gymnasium's ``TimeLimit``: 500 for v1).

    Returns:
        ``(new_state, reward, terminated, truncated, final_state)``: ``new_state`` is
        the post-step state with finished sub-envs replaced by ``reset_state``;
        ``final_state`` the post-step state before that replacement (both ``(N, 4)``);
        reward is float32 ones.
    """
    final_state, terminated = cartpole_dynamics(state, action)
    truncated = episode_length >= max_episode_steps - 1  # the step about to be counted is the last
    new_state = torch.where((terminated | truncated).unsqueeze(-1), reset_state, final_state)
    reward = torch.ones_like(terminated, dtype=torch.float32)
    return new_state, reward, terminated, truncated, final_state


class CartPoleEnv(TensorEnv):
    """``num_envs`` copies of gymnasium's CartPole-v1 as batched tensor code.

    Args:
        num_envs: number of sub-environments.
        device: where state and outputs live (default CPU).
        seed: seed of the env's ``torch.Generator``; ``None`` draws a random seed.
        max_episode_steps: truncation step (default 500, CartPole-v1's time limit).
        dtype: dtype of the physics state, ``torch.float32`` (default) or
            ``torch.float64`` (equals gymnasium's float64 numbers to a few ulp).
        compile: wrap :func:`cartpole_transition` in ``torch.compile`` (default False).

    ``reset(seed=None)`` returns float32 observations ``(num_envs, 4)``; ``step(actions)``
    takes integer actions of shape ``(num_envs,)`` and returns
    ``(obs, reward, terminated, truncated, info)`` with auto-reset and the
    ``info`` keys of :class:`normrl.envs.episode_stats.EpisodeStats` (``done``,
    ``episode_return``, ``episode_length``, ``final_obs``). See the module docstring for
    the rules and the float32 note.
    """

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(max_episode_steps, int) or isinstance(max_episode_steps, bool) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_episode_steps = max_episode_steps
        self.dtype = dtype
        self.single_observation_space = gym.spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self.stats = EpisodeStats(num_envs, self.device)
        self._transition = torch.compile(cartpole_transition) if compile else cartpole_transition
        #: ``(num_envs, 4)`` physics state in ``dtype``; replaced (never written into) by each step
        self.state: torch.Tensor | None = None

    def _draw_reset_states(self) -> torch.Tensor:
        states = torch.empty((self.num_envs, 4), device=self.device, dtype=self.dtype)
        return states.uniform_(RESET_LOW, RESET_HIGH, generator=self.generator)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start new episodes in every sub-env; ``seed`` (if given) reseeds the generator."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self.state = self._draw_reset_states()
        self.stats.reset()
        return self.state.to(torch.float32, copy=True)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every sub-env with ``actions`` (integer tensor ``(num_envs,)``)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if not isinstance(actions, torch.Tensor):
            raise ValueError(f"actions must be a torch.Tensor of shape ({self.num_envs},), got {type(actions).__name__}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(actions.shape)}")
        if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
            raise ValueError(f"actions must be an integer tensor (e.g. torch.int64), got {actions.dtype}")
        actions = actions.to(self.device, non_blocking=True)
        reset_state = self._draw_reset_states()
        self.state, reward, terminated, truncated, final_state = self._transition(
            self.state, actions, reset_state, self.stats.lengths, self.max_episode_steps
        )
        # final_state is a fresh tensor the env does not keep: no copy needed
        info = self.stats.update(reward, terminated, truncated, final_obs=final_state.to(torch.float32))
        return self.state.to(torch.float32, copy=True), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: state, episode totals, generator state."""
        if self.state is None:
            raise RuntimeError("call reset() before state_dict(): the env has no state yet")
        return {
            "state": self.state.clone(),
            "stats": self.stats.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from an env with the same ``num_envs``."""
        missing = {"state", "stats", "generator"} - set(state)
        if missing:
            raise ValueError(f"CartPoleEnv state is missing {sorted(missing)}; expected 'state', 'stats', 'generator'")
        if tuple(state["state"].shape) != (self.num_envs, 4):
            raise ValueError(f"CartPoleEnv state has shape {tuple(state['state'].shape)}, expected ({self.num_envs}, 4)")
        self.stats.load_state_dict(state["stats"])
        self.generator.set_state(state["generator"].cpu())
        self.state = state["state"].to(device=self.device, dtype=self.dtype).clone()
