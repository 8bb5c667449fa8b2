"""Task streams with SB3 models: a VecEnv over normrl's TensorEnvs and the adapter that
lets :class:`normrl.continual.TaskScheduler` drive an SB3 model."""
from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv

from normrl.integrations.sb3.callbacks import TaskScheduleCallback

__all__ = ["TensorVecEnv", "SB3StreamAgent", "learn_stream"]


class TensorVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a normrl TensorEnv (numpy in/out, one host copy per step).

    Finished sub-envs are reset by the TensorEnv inside the step; ``infos[i]`` then holds
    ``"terminal_observation"`` (from ``info["final_obs"]`` when the env provides it, else
    the returned observation), ``"TimeLimit.truncated"`` and ``"episode"`` (``{"r": return,
    "l": length}``, what SB3's Monitor provides for ``ep_info_buffer``).

    Args:
        tensor_env: the TensorEnv (closing this VecEnv closes it).
        observation_space: report this space instead of the env's own [None]; it must
            have the same shape and dtype. The tasks of a stream share shapes but not
            always bounds (a permuted observation permutes the bounds), while SB3's
            ``set_env`` demands equal spaces: :class:`SB3StreamAgent` passes the model's.
    """

    def __init__(self, tensor_env, observation_space: Optional[gym.Space] = None):
        from normrl.envs.base import TensorEnv

        if not isinstance(tensor_env, TensorEnv):
            raise ValueError(f"TensorVecEnv needs a normrl TensorEnv, got {type(tensor_env).__name__}")
        own = tensor_env.single_observation_space
        if observation_space is not None and (observation_space.shape != own.shape or observation_space.dtype != own.dtype):
            raise ValueError(f"observation_space {observation_space} does not have the env's shape/dtype ({own})")
        self.env = tensor_env
        super().__init__(tensor_env.num_envs, observation_space or own, tensor_env.single_action_space)
        self._actions: Optional[torch.Tensor] = None
        self._dtype = getattr(self.observation_space, "dtype", None)

    def _np_obs(self, obs: torch.Tensor) -> np.ndarray:
        return obs.detach().cpu().numpy().astype(self._dtype if self._dtype is not None else np.float32, copy=True)

    def reset(self):
        seed = self._seeds[0]
        obs = self.env.reset(seed=None if seed is None else int(seed))
        self._reset_seeds()
        self._reset_options()
        return self._np_obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        a = torch.as_tensor(np.asarray(actions), device=self.env.device)
        if isinstance(self.action_space, gym.spaces.Discrete):
            a = a.long().reshape(self.num_envs)
        self._actions = a

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        obs_np = self._np_obs(obs)
        term = terminated.cpu().numpy().astype(bool)
        trunc = truncated.cpu().numpy().astype(bool)
        dones = term | trunc
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = self._np_obs(info["final_obs"]) if "final_obs" in info else obs_np
            ret = info["episode_return"].cpu().numpy()
            length = info["episode_length"].cpu().numpy()
            for i in np.flatnonzero(dones):
                infos[i] = {"terminal_observation": final[i], "TimeLimit.truncated": bool(trunc[i] and not term[i]),
                            "episode": {"r": float(ret[i]), "l": int(length[i])}}
        return obs_np, reward.detach().cpu().numpy().astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":  # TensorEnvs do not render
            value = getattr(self.env, attr_name, None)
        else:
            value = getattr(self.env, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.env, method_name)(*method_args, **method_kwargs)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class _ReplayFlush:
    def __init__(self, buffer):
        self.buffer = buffer

    def clear(self) -> None:
        self.buffer.reset()


class SB3StreamAgent:
    """Adapts an SB3 model to the agent interface :class:`normrl.continual.TaskScheduler`
    drives (``set_env``, ``learn``, ``num_steps``, ``evaluate``, ``networks``, …).

    Args:
        model: a constructed SB3 algorithm (PPO, A2C, DQN, …) whose spaces match the
            stream's (sequential streams share observation and action shapes).
        callback: extra SB3 callback(s) for every ``learn`` call (e.g.
            :class:`PlasticityCallback`) [None].
        deterministic: greedy actions during evaluation [True].

    Each task's TensorEnv is wrapped in :class:`TensorVecEnv` (reporting the model's
    observation space when shape and dtype agree, so bounds may differ) and given to
    ``model.set_env`` (which resets it at the next ``learn``); ``learn(steps)`` is
    ``model.learn(steps, reset_num_timesteps=False)``. ``networks()`` is
    ``[model.policy]``, so the scheduler calls the task hooks on its modules;
    ``optimizer`` is the policy's optimizer (``reset_optimizer=True``); DQN's replay
    buffer is flushed with ``flush_replay=True``; ``writer`` is the run's TensorBoard
    writer once ``learn`` has set up SB3's logger.
    """

    def __init__(self, model, callback=None, deterministic: bool = True):
        self.model = model
        self.callback = callback
        self.deterministic = deterministic
        self.task_id: Optional[int] = None
        self.env = None
        self.scheduler = None

    @property
    def num_steps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def optimizer(self):
        return self.model.policy.optimizer

    @property
    def replay_buffer(self):
        buf = getattr(self.model, "replay_buffer", None)
        return None if buf is None else _ReplayFlush(buf)

    @property
    def writer(self):
        logger = getattr(self.model, "_logger", None)
        for fmt in getattr(logger, "output_formats", []) if logger is not None else []:
            if isinstance(fmt, TensorBoardOutputFormat):
                return fmt.writer
        return None

    def networks(self) -> list[nn.Module]:
        return [self.model.policy]

    def _callbacks(self) -> list:
        if self.callback is None:
            return []
        return list(self.callback) if isinstance(self.callback, (list, tuple)) else [self.callback]

    def on_task_start(self, task_id: int) -> None:
        """Forward to the callbacks that have task hooks (an :class:`InterventionCallback`)."""
        for cb in self._callbacks():
            if callable(getattr(cb, "on_task_start", None)):
                cb.on_task_start(task_id)

    def on_task_end(self, task_id: int) -> None:
        """Forward to the callbacks that have task hooks."""
        for cb in self._callbacks():
            if callable(getattr(cb, "on_task_end", None)):
                cb.on_task_end(task_id)

    def set_env(self, env) -> None:
        self.env = env
        space = self.model.observation_space
        own = env.single_observation_space
        same_layout = getattr(space, "shape", None) == own.shape and getattr(space, "dtype", None) == own.dtype
        self.model.set_env(TensorVecEnv(env, observation_space=space if same_layout else None))

    def learn(self, steps: int, **kwargs) -> None:
        callbacks = self._callbacks()
        if self.scheduler is not None:
            callbacks.append(TaskScheduleCallback(self.scheduler))
        self.model.learn(steps, reset_num_timesteps=False, callback=CallbackList(callbacks) if callbacks else None, **kwargs)

    def evaluate(self, env, episodes: int) -> float:
        """Mean return of the first ``episodes`` episodes finished on the TensorEnv
        ``env`` (all sub-envs run in parallel; actions from ``model.predict``)."""
        obs = env.reset()
        returns: list[float] = []
        while len(returns) < episodes:
            actions, _ = self.model.predict(obs.detach().cpu().numpy(), deterministic=self.deterministic)
            obs, _r, terminated, truncated, info = env.step(torch.as_tensor(actions, device=env.device))
            done = (terminated | truncated).cpu().numpy()
            if done.any():
                ret = info["episode_return"].cpu().numpy()
                returns.extend(float(ret[i]) for i in np.flatnonzero(done))
        return float(np.mean(returns[:episodes]))


def learn_stream(model, scheduler, callback=None, deterministic: bool = True, run_callback=None):
    """Train an SB3 ``model`` through ``scheduler``'s task stream; returns its
    :class:`~normrl.continual.ContinualResult` (the evaluation matrix).

    Equivalent to ``scheduler.run(SB3StreamAgent(model, callback), run_callback)`` with a
    :class:`TaskScheduleCallback` in every ``learn`` call. ``callback``: SB3 callback(s)
    for every ``learn`` call (e.g. a :class:`PlasticityCallback`, which keeps its monitor
    across tasks); ``run_callback(scheduler, agent)``: the scheduler's own callback
    (after every chunk and visit; return False to stop).
    """
    agent = SB3StreamAgent(model, callback=callback, deterministic=deterministic)
    agent.scheduler = scheduler
    return scheduler.run(agent, run_callback)
