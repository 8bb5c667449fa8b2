"""Real Atari 2600 games from ale-py, adapted to the TensorEnv contract.

:class:`AtariEnv` wraps ``ale_py.vector_env.AtariVectorEnv`` (ale-py >= 0.10: the
emulators step in C++ threads) and hands out torch tensors on ``device``. It is what
``make_env("ALE/<Game>-v5", num_envs=N, device=...)`` builds.

Preprocessing (the DQN recipe of Mnih et al. 2015 with the ALE v5 evaluation protocol
of Machado et al. 2018, arXiv 1709.06009), all done by ale-py's C++ vector interface:

* 84x84 grayscale frames, a stack of the last 4 (observation ``(4, 84, 84)`` uint8);
* frameskip 4 with a max-pool over the last 2 emulator frames of each step;
* sticky actions with ``repeat_action_probability=0.25`` (the v5 default);
* up to ``noop_max=30`` random no-op actions at the start of every episode, and FIRE
  at reset in games that need it (``use_fire_reset``, ale-py's default);
* episodes truncated after ``max_episode_frames=108_000`` emulator frames (30 minutes
  of play, 27,000 agent steps).

Training-time options that do not change the reported score:

* ``clip_rewards`` — the returned ``reward`` is ``sign(r)`` in {-1, 0, 1};
* ``episodic_life`` — ``terminated`` is also true on the step a life is lost (the
  emulator keeps running: no reset happens), so value targets stop bootstrapping there.

Whatever the options, ``info["episode_return"]`` / ``info["episode_length"]`` /
``info["done"]`` describe *game* episodes: the sum of the raw (unclipped) game rewards
and the agent-step count up to the true game over or truncation, not up to a life loss.
``info["lives"]`` (int64) holds the lives left and ``info["final_obs"]`` the observation
each transition produced before any automatic reset (the terminal frame stack where
``done``; the returned observation elsewhere).

Automatic reset follows the TensorEnv contract ("same step"): on the step where a game
ends, the returned observation is already the first observation of the next episode.
ale-py is run in its ``SameStep`` autoreset mode, which does exactly that.

Action sets: ``full_action_space=False`` (default) gives the game's minimal action set;
``True`` gives all 18 ALE actions, so one network can play a sequence of games.

Transfers: every step moves the actions to the host once (ale-py needs them there),
and moves the observation batch to the device once, from a page-locked (pinned) host
buffer with ``non_blocking=True`` when the device is CUDA (two buffers alternate, each
guarded by a CUDA event, so the host never overwrites a buffer still being copied).
Rewards, flags and episode totals travel together in one small packed buffer. On a CPU
device the observation array that ale-py returns is wrapped without any copy.
"""
from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from normrl.envs.base import TensorEnv

#: Columns of the packed per-step scalar buffer (float64 keeps large scores exact).
_REWARD, _TERMINATED, _TRUNCATED, _DONE, _EP_RETURN, _EP_LENGTH, _LIVES = range(7)
_NUM_COLUMNS = 7


def _rom_ids() -> list[str]:
    from ale_py import roms

    return list(roms.get_all_rom_ids())


def _camel(rom_id: str) -> str:
    """``"space_invaders"`` -> ``"SpaceInvaders"`` (gymnasium's ``ALE/<Game>-v5`` spelling)."""
    return "".join(part[:1].upper() + part[1:] for part in rom_id.split("_"))


def list_atari_games() -> list[str]:
    """The game names that ale-py ships ROMs for, spelled as in ``ALE/<Game>-v5``."""
    return sorted(_camel(rom) for rom in _rom_ids())


def ale_env_id(game: str) -> str:
    """gymnasium's ``ALE/<Game>-v5`` id of ``game`` (any spelling :func:`rom_id` takes)."""
    return f"ALE/{_camel(rom_id(game))}-v5"


def rom_id(game: str) -> str:
    """ale-py's ROM id of ``game`` (``"MsPacman"``, ``"ms_pacman"`` or ``"ALE/MsPacman-v5"``).

    Raises ``ValueError`` naming close matches and the valid games when no ROM exists.
    """
    if not isinstance(game, str) or not game:
        raise ValueError(f"game must be a non-empty string, got {game!r}")
    name = game
    if name.startswith("ALE/") and name.endswith("-v5"):
        name = name[len("ALE/"):-len("-v5")]
    by_camel = {_camel(rom): rom for rom in _rom_ids()}
    if name in by_camel:
        return by_camel[name]
    if name in by_camel.values():
        return name
    close = difflib.get_close_matches(name, list(by_camel), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown Atari game {game!r}.{hint} Valid games: {', '.join(sorted(by_camel))}")


class AtariEnv(TensorEnv):
    """``num_envs`` copies of one Atari game, stepped by ale-py, as a TensorEnv.

    Args:
        game: game name as in ``ALE/<Game>-v5`` (``"Pong"``, ``"MsPacman"``) or ale-py's
            ROM id (``"ms_pacman"``).
        num_envs: number of emulators (default 1).
        device: device of every returned tensor (default CPU).
        seed: seed of the first :meth:`reset` when it is called without one; sub-env
            ``i`` is seeded with ``seed + i``. ``None`` (default): ale-py picks seeds.
        full_action_space: all 18 actions (``True``) or the game's minimal set
            (``False``, default).
        repeat_action_probability: sticky-action probability (default 0.25, as v5).
        frameskip: emulator frames per agent step (default 4).
        frame_stack: number of stacked frames (default 4).
        noop_max: maximum random no-ops at episode start (default 30).
        max_episode_frames: emulator frames after which an episode is truncated
            (default 108_000).
        episodic_life: report ``terminated`` on life loss too (default ``False``).
        clip_rewards: return ``sign(reward)`` (default ``False``); episode returns stay raw.
        use_fire_reset: press FIRE after reset in games that need it (default ``True``).
        num_threads: emulator threads; 0 (default) lets ale-py choose.

    ``step`` takes integer actions of shape ``(num_envs,)`` (any device) and returns
    ``obs`` uint8 ``(num_envs, frame_stack, 84, 84)``, ``reward`` float32, ``terminated``
    and ``truncated`` bool, and ``info`` with ``done``, ``episode_return`` (float32),
    ``episode_length`` (int64), ``lives`` (int64) and ``final_obs``.

    Emulator state is not checkpointed (``checkpointable = False``): an agent restored
    from a checkpoint resets this env and starts fresh games.
    """

    checkpointable = False

    def __init__(
        self,
        game: str,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        *,
        full_action_space: bool = False,
        repeat_action_probability: float = 0.25,
        frameskip: int = 4,
        frame_stack: int = 4,
        noop_max: int = 30,
        max_episode_frames: int = 108_000,
        episodic_life: bool = False,
        clip_rewards: bool = False,
        use_fire_reset: bool = True,
        num_threads: int = 0,
    ):
        from ale_py.vector_env import AtariVectorEnv

        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not 0.0 <= repeat_action_probability <= 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability!r}")
        for name, value, low in (("frameskip", frameskip, 1), ("frame_stack", frame_stack, 1),
                                 ("noop_max", noop_max, 0), ("max_episode_frames", max_episode_frames, 1),
                                 ("num_threads", num_threads, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.game = game
        self.rom = rom_id(game)
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.seed = seed
        self.full_action_space = bool(full_action_space)
        self.episodic_life = bool(episodic_life)
        self.clip_rewards = bool(clip_rewards)
        self._vec = AtariVectorEnv(
            self.rom,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=max_episode_frames,
            repeat_action_probability=float(repeat_action_probability),
            full_action_space=self.full_action_space,
            autoreset_mode="SameStep",
            img_height=84,
            img_width=84,
            grayscale=True,
            stack_num=frame_stack,
            frameskip=frameskip,
            maxpool=True,
            noop_max=noop_max,
            # Life loss and reward clipping are applied here, so that the C++ side always
            # reports raw rewards and true game overs for the episode statistics.
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=use_fire_reset,
        )
        self.single_observation_space = gym.spaces.Box(0, 255, (frame_stack, 84, 84), dtype=np.uint8)
        self.single_action_space = gym.spaces.Discrete(int(self._vec.single_action_space.n))
        #: names of the actions, in action-index order (e.g. ``["NOOP", "FIRE", ...]``)
        self.action_names = [a.name for a in self._vec.ale.get_action_set()]
        self._cuda = self.device.type == "cuda"
        obs_shape = (num_envs, *self.single_observation_space.shape)
        if self._cuda:
            self._obs_host = [torch.empty(obs_shape, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
            self._scalars_host = [torch.empty((_NUM_COLUMNS, num_envs), dtype=torch.float64, pin_memory=True) for _ in range(2)]
            self._copy_done = [None, None]
            self._slot = 0
        self._ep_return = np.zeros(num_envs, dtype=np.float64)
        self._ep_length = np.zeros(num_envs, dtype=np.int64)
        self._lives = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = True
        self._closed = False

    # -- transfers -------------------------------------------------------------------
    def _host_slot(self) -> int:
        """A pinned buffer pair whose previous asynchronous copy has finished."""
        slot = self._slot
        self._slot = 1 - slot
        event = self._copy_done[slot]
        if event is not None:
            event.synchronize()
        return slot

    def _to_device(self, obs: np.ndarray, scalars: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Observation batch and packed scalars on the device: one copy each."""
        if not self._cuda:
            return torch.from_numpy(obs), torch.from_numpy(scalars).to(self.device)
        slot = self._host_slot()
        obs_host, scalars_host = self._obs_host[slot], self._scalars_host[slot]
        np.copyto(obs_host.numpy(), obs)
        np.copyto(scalars_host.numpy(), scalars)
        obs_dev = torch.empty(obs_host.shape, dtype=torch.uint8, device=self.device)
        obs_dev.copy_(obs_host, non_blocking=True)
        scalars_dev = scalars_host.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._copy_done[slot] = event
        return obs_dev, scalars_dev

    # -- TensorEnv -------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new episode in every sub-env; sub-env ``i`` is seeded ``seed + i``.

        Without ``seed`` the constructor's ``seed`` is used for the first reset and
        ale-py's own seeding afterwards.
        """
        self._check_open()
        if seed is None and self._needs_reset and self.seed is not None:
            seed = self.seed
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        obs, info = self._vec.reset(seed=None if seed is None else int(seed))
        self._ep_return[:] = 0
        self._ep_length[:] = 0
        self._lives = info["lives"].astype(np.int64)
        self._needs_reset = False
        scalars = np.zeros((_NUM_COLUMNS, self.num_envs), dtype=np.float64)
        scalars[_LIVES] = self._lives
        obs_dev, _ = self._to_device(obs, scalars)
        return obs_dev

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every sub-env by one agent step (``frameskip`` emulator frames)."""
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("AtariEnv.step called before reset(); call env.reset(seed) first")
        acts = torch.as_tensor(actions).detach().reshape(-1).to("cpu", torch.int64).numpy()
        if acts.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(torch.as_tensor(actions).shape)}")
        n = self.single_action_space.n
        if acts.size and (acts.min() < 0 or acts.max() >= n):
            raise ValueError(f"actions must be integers in [0, {n}), got min {acts.min()} max {acts.max()}")
        obs, raw_reward, game_over, truncated, info = self._vec.step(acts)
        game_over = game_over.astype(bool)
        truncated = truncated.astype(bool) & ~game_over
        done = game_over | truncated
        lives = info["lives"].astype(np.int64)
        # On a done step ale-py already reports the next episode's lives.
        life_lost = (lives < self._lives) & ~done
        self._lives = lives

        ep_return = self._ep_return + raw_reward
        ep_length = self._ep_length + 1
        self._ep_return = np.where(done, 0.0, ep_return)
        self._ep_length = np.where(done, 0, ep_length)

        scalars = np.empty((_NUM_COLUMNS, self.num_envs), dtype=np.float64)
        scalars[_REWARD] = np.sign(raw_reward) if self.clip_rewards else raw_reward
        scalars[_TERMINATED] = game_over | (life_lost if self.episodic_life else False)
        scalars[_TRUNCATED] = truncated
        scalars[_DONE] = done
        scalars[_EP_RETURN] = ep_return
        scalars[_EP_LENGTH] = ep_length
        scalars[_LIVES] = lives
        obs_dev, s = self._to_device(obs, scalars)
        if done.any():
            # ale-py's final_obs rows of unfinished sub-envs are not meaningful: use obs there.
            final = obs.copy()
            final[done] = info["final_obs"][done]
            final_dev = torch.from_numpy(final).to(self.device)
        else:
            final_dev = obs_dev
        flags = s[_TERMINATED:_DONE + 1].bool()
        out_info = {
            "done": flags[2],
            "episode_return": s[_EP_RETURN].float(),
            "episode_length": s[_EP_LENGTH].long(),
            "lives": s[_LIVES].long(),
            "final_obs": final_dev,
        }
        return obs_dev, s[_REWARD].float(), flags[0], flags[1], out_info

    def close(self) -> None:
        """Stop the emulator threads and release the pinned buffers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._vec.close()
        if self._cuda:
            for event in self._copy_done:
                if event is not None:
                    event.synchronize()
            self._obs_host = self._scalars_host = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("AtariEnv is closed")

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"AtariEnv(game={self.game!r}, num_envs={self.num_envs}, device={self.device}, "
                f"actions={self.single_action_space.n}, clip_rewards={self.clip_rewards}, "
                f"episodic_life={self.episodic_life})")
