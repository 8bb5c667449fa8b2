"""normrl inside Stable-Baselines3: normalized policies, NaP, plasticity logging, task streams.

Supported SB3 versions: 2.x with the gymnasium API; tested with 2.9.2 (the newest at
the time of writing). This module is the only part of normrl that imports
``stable_baselines3`` (install the ``normrl[sb3]`` extra).

* :func:`norm_policy_kwargs` — ``policy_kwargs`` that make PPO, A2C and DQN (``MlpPolicy``
  and ``CnnPolicy``) build their hidden layers with any registered norm, including
  ``"nap"`` (Normalize-and-Project, arXiv 2407.01800: norm before every hidden
  nonlinearity, bias-free feeding layers, and SB3's optimizer wrapped in the NaP weight
  projection). SB3's own ``MlpExtractor`` has no norm hook, so the hidden layers live in
  a features extractor (:class:`NormMLPExtractor`, :class:`NormNatureCNNExtractor`)
  and the policy's ``net_arch`` is empty: the heads (``action_net``, ``value_net``,
  DQN's output layer) read the extractor's features directly. The architecture equals
  SB3's default one (same widths, separate actor/critic torsos for PPO/A2C with MLPs,
  shared NatureCNN for images), plus the norm layers.
* :class:`PlasticityCallback` — the ``plasticity/*`` metrics of
  :class:`normrl.metrics.PlasticityMonitor` after every ``every``-th optimizer step,
  into the run's TensorBoard log.
* :func:`learn_stream` / :class:`SB3StreamAgent` / :class:`TaskScheduleCallback` — train
  an SB3 model through a :class:`normrl.envs.TaskScheduler` stream (``model.set_env`` +
  ``learn(..., reset_num_timesteps=False)`` per task, ``on_task_start``/``on_task_end``
  hooks on the policy's modules, evaluation matrix).

Batch-dependent norms keep their statistics in buffers named ``running_*``, so SB3's DQN
copies them to the target network at every target update (SB3 collects them with
``get_parameters_by_name(q_net, ["running_"])``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv

from normrl.metrics.monitor import PlasticityMonitor

__all__ = [
    "norm_policy_kwargs",
    "NormMLPExtractor",
    "NormNatureCNNExtractor",
    "PlasticityCallback",
    "TaskScheduleCallback",
    "SB3StreamAgent",
    "TensorVecEnv",
    "learn_stream",
]

ALGOS = ("ppo", "a2c", "dqn")
FEATURES = ("mlp", "nature_cnn")


def _is_nap(norm: Any) -> bool:
    from normrl.networks.blocks import resolve_norm

    return resolve_norm(norm)[1]


class NormMLPExtractor(BaseFeaturesExtractor):
    """Flatten, then ``normrl.networks.MLP`` hidden layers ``Linear -> Norm -> activation``.

    Args:
        observation_space: the (flattenable) observation space.
        norm: any registered norm name/class/partial, ``"nap"``, or None [``"layernorm"``].
        net_arch: hidden widths [(64, 64), SB3's MlpPolicy default]; the features are the
            last hidden layer (``features_dim = net_arch[-1]``).
        activation: hidden nonlinearity name [``"tanh"``, SB3's PPO/A2C default].
        norm_kwargs: extra keywords for every norm layer [None].
    """

    def __init__(self, observation_space: gym.Space, norm: Any = "layernorm", net_arch: Sequence[int] = (64, 64),
                 activation: str = "tanh", norm_kwargs: Optional[dict] = None):
        from normrl.networks import MLP

        net_arch = tuple(net_arch)
        if not net_arch:
            raise ValueError("net_arch must list at least one hidden width for the MLP features extractor")
        super().__init__(observation_space, features_dim=net_arch[-1])
        self.flatten = nn.Flatten()
        self.mlp = MLP(get_flattened_obs_dim(observation_space), None, hidden=net_arch, norm=norm, activation=activation,
                       norm_kwargs=norm_kwargs)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.flatten(observations.float()))


class NormNatureCNNExtractor(BaseFeaturesExtractor):
    """``normrl.networks.NatureCNN`` torso (3 convs + Linear 512, each ``-> Norm ->
    activation``), optionally followed by more hidden Linear layers.

    Args:
        observation_space: a channel-first image ``Box`` (SB3 transposes channel-last
            images with ``VecTransposeImage`` before the policy sees them).
        norm: any registered norm, ``"nap"``, or None [``"layernorm"``]; conv norms use
            the channels-first layout.
        net_arch: extra hidden widths after the 512 features [(): SB3's CnnPolicy].
        activation: hidden nonlinearity name [``"relu"``].
        norm_kwargs: extra keywords for every norm layer [None].

    SB3 already scales uint8 images to [0, 1] (``normalize_images=True``); the torso
    passes float input through unchanged.
    """

    def __init__(self, observation_space: gym.Space, norm: Any = "layernorm", net_arch: Sequence[int] = (),
                 activation: str = "relu", norm_kwargs: Optional[dict] = None):
        from normrl.networks import MLP, NatureCNN

        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"NormNatureCNNExtractor needs a (C, H, W) image Box space, got {observation_space}")
        if not is_image_space(observation_space, check_channels=False, normalized_image=True):
            raise ValueError(f"NormNatureCNNExtractor needs a channel-first image space, got {observation_space}")
        net_arch = tuple(net_arch)
        c, h, w = observation_space.shape
        cnn = NatureCNN(c, None, norm=norm, activation=activation, input_size=(h, w), norm_kwargs=norm_kwargs)
        super().__init__(observation_space, features_dim=net_arch[-1] if net_arch else cnn.features_dim)
        self.cnn = cnn
        self.mlp = (MLP(cnn.features_dim, None, hidden=net_arch, norm=norm, activation=activation, norm_kwargs=norm_kwargs)
                    if net_arch else nn.Identity())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.cnn(observations))


def norm_policy_kwargs(
    norm: Any = "layernorm",
    net_arch: Optional[Sequence[int]] = None,
    features: str = "mlp",
    *,
    algo: str = "ppo",
    activation: Optional[str] = None,
    norm_kwargs: Optional[dict] = None,
    nap_every: int = 1,
    optimizer_class: Optional[type] = None,
    optimizer_kwargs: Optional[dict] = None,
    share_features_extractor: Optional[bool] = None,
) -> dict[str, Any]:
    """``policy_kwargs`` for SB3's ``PPO``/``A2C``/``DQN`` with normalized hidden layers.

    Example::

        model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs=norm_policy_kwargs("nap"))
        model = DQN("CnnPolicy", atari_env, policy_kwargs=norm_policy_kwargs("nap", features="nature_cnn", algo="dqn"))

    Args:
        norm: registered norm (``normrl norms`` lists them), class, partial, ``"nap"``
            or None [``"layernorm"``].
        net_arch: hidden widths of the MLP [``features="mlp"``: (64, 64), SB3's
            default; ``"nature_cnn"``: (), i.e. the CNN's 512 features feed the heads].
        features: ``"mlp"`` (flattened vector observations) or ``"nature_cnn"`` (images;
            use with ``CnnPolicy``) [``"mlp"``].
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"`` [``"ppo"``]; selects SB3's defaults
            (activation, optimizer) and whether actor and critic get separate torsos.
        activation: hidden nonlinearity [MLP: ``"tanh"`` for PPO/A2C, ``"relu"`` for DQN
            (SB3's defaults); CNN: ``"relu"``].
        norm_kwargs: extra keywords of every norm layer [None].
        nap_every: with ``"nap"``, project after every ``nap_every``-th optimizer step [1].
        optimizer_class, optimizer_kwargs: the inner optimizer [SB3's: Adam with
            ``eps=1e-5`` for PPO, RMSprop(alpha=0.99, eps=1e-5) for A2C, Adam for DQN].
            With ``"nap"`` it is wrapped: ``optimizer_class`` becomes
            ``ProjectedOptimizer.wrapping(inner=..., every=nap_every, output="free")`` (a
            NaP optimizer that finds the policy from the ``self.parameters()`` SB3 passes
            it; the heads stay free, value and Q heads being regression outputs).
        share_features_extractor: PPO/A2C only [MLP: False (separate actor and critic
            torsos, like SB3's MlpPolicy); CNN: True (like CnnPolicy)].

    Returns a new dict; the policy's own ``net_arch`` is ``[]`` (the hidden layers are
    the features extractor).
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if not isinstance(nap_every, int) or isinstance(nap_every, bool) or nap_every < 1:
        raise ValueError(f"nap_every must be a positive int, got {nap_every!r}")
    from normrl.normalization.registry import get_norm_layer

    if norm is not None and not (isinstance(norm, str) and norm.lower() == "none"):
        get_norm_layer(norm)  # fail now, with the valid names, not inside SB3
    if features == "mlp":
        arch = (64, 64) if net_arch is None else tuple(net_arch)
        act = activation or ("relu" if algo == "dqn" else "tanh")
        extractor = NormMLPExtractor
        share = False if share_features_extractor is None else share_features_extractor
    else:
        arch = () if net_arch is None else tuple(net_arch)
        act = activation or "relu"
        extractor = NormNatureCNNExtractor
        share = True if share_features_extractor is None else share_features_extractor
    kwargs: dict[str, Any] = {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {"norm": norm, "net_arch": arch, "activation": act, "norm_kwargs": norm_kwargs},
        "net_arch": [],
    }
    if algo != "dqn":
        kwargs["share_features_extractor"] = share
    elif share_features_extractor is not None:
        raise ValueError("share_features_extractor applies to PPO/A2C only (DQN has one network)")
    inner_kwargs = dict(optimizer_kwargs or {})
    inner = optimizer_class
    if inner is None:
        if algo == "a2c":
            inner = torch.optim.RMSprop
            for k, v in {"alpha": 0.99, "eps": 1e-5, "weight_decay": 0}.items():
                inner_kwargs.setdefault(k, v)
        else:
            inner = torch.optim.Adam
            if algo == "ppo":
                inner_kwargs.setdefault("eps", 1e-5)
    if _is_nap(norm):
        from normrl.normalization.projected_optimizer import ProjectedOptimizer

        # Heads stay free: SB3's value and Q heads are regression outputs whose range a
        # projected head would cap (docs/results/nap_output_layer.md).
        kwargs["optimizer_class"] = ProjectedOptimizer.wrapping(inner=inner, every=nap_every, output="free")
        kwargs["optimizer_kwargs"] = inner_kwargs
    elif optimizer_class is not None or algo == "a2c" or inner_kwargs:
        kwargs["optimizer_class"] = inner
        kwargs["optimizer_kwargs"] = inner_kwargs
    return kwargs


# -- plasticity metrics ---------------------------------------------------------------
def _monitored_module(policy: nn.Module) -> nn.Module:
    """DQN: the online Q-network only (the target is a copy); otherwise the policy."""
    q_net = getattr(policy, "q_net", None)
    return q_net if isinstance(q_net, nn.Module) else policy


def _probe_forward(module: nn.Module, obs: torch.Tensor) -> None:
    """Run ``module`` deterministically on ``obs`` (no action sampling)."""
    if hasattr(module, "get_distribution") and hasattr(module, "predict_values"):
        module.get_distribution(obs)
        module.predict_values(obs)
    else:
        module(obs)


class _LoggerWriter:
    """``add_scalar`` onto an SB3 logger: written at once, at the given step, to the
    logger's TensorBoard output (so no event is lost between SB3's dumps), and recorded
    (TensorBoard excluded) for SB3's stdout/CSV tables at its next dump."""

    def __init__(self, logger):
        self.logger = logger

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.logger.record(tag, value, exclude="tensorboard")
        for fmt in getattr(self.logger, "output_formats", []):
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        for fmt in getattr(self.logger, "output_formats", []):
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.flush()


def _buffer_observations(model, size: int) -> Optional[np.ndarray]:
    """The first ``size`` stored observations of the model's rollout/replay buffer."""
    buf = getattr(model, "rollout_buffer", None)
    if buf is not None and getattr(buf, "observations", None) is not None and (buf.full or buf.pos > 0):
        n = buf.buffer_size if buf.full else buf.pos
        obs = buf.observations[:n]
    else:
        buf = getattr(model, "replay_buffer", None)
        if buf is None or not isinstance(getattr(buf, "observations", None), np.ndarray) or not (buf.full or buf.pos > 0):
            return None
        n = buf.buffer_size if buf.full else buf.pos
        obs = buf.observations[:n]
    # (steps, envs, *shape), or (steps*envs, *shape) once PPO's buffer was flattened
    return obs.reshape(-1, *model.observation_space.shape)[:size]


class PlasticityCallback(BaseCallback):
    """Logs the ``plasticity/*`` metrics (``docs/metrics.md``) of an SB3 model's policy.

    A :class:`~normrl.metrics.PlasticityMonitor` watches the policy (DQN: its online
    ``q_net``) and is called after every optimizer step through a step post-hook on
    ``model.policy.optimizer``, so ``every`` counts gradient steps exactly as in
    normrl's own agents and the gradient norms are those of the step just taken. The
    probe is the first ``probe_size`` observations of the rollout/replay buffer at the
    first logging event; actor-critic policies also log ``plasticity/policy_entropy``
    (mean entropy of the action distribution on the probe). Values go to the run's
    TensorBoard log (``tensorboard_log=``) at ``model.num_timesteps``, and into SB3's
    logger tables.

    Args:
        every: log every ``every``-th optimizer step [1000].
        tau: ReDo dormancy threshold [0.025].
        probe_size: probe rows [256].
        layers: module names (relative to the monitored module) overriding the default
            hidden-activation rule [None].

    The monitor persists across ``learn`` calls of the same model (the initial-weights
    snapshot is taken when the callback first sees the model); ``self.monitor`` holds it
    and ``self.last_logged`` the last logged ``{tag: value}``.
    """

    def __init__(self, every: int = 1000, tau: float = 0.025, probe_size: int = 256, layers: Optional[Sequence[str]] = None,
                 verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every = every
        self.tau = tau
        self.probe_size = probe_size
        self.layers = layers
        self.monitor: Optional[PlasticityMonitor] = None
        self.last_logged: Optional[dict[str, float]] = None
        self._policy = None
        self._hook = None

    def _init_callback(self) -> None:
        policy = self.model.policy
        if self.monitor is None or self._policy is not policy:
            self.monitor = PlasticityMonitor(_monitored_module(policy), every=self.every, tau=self.tau,
                                             probe_size=self.probe_size, layers=self.layers, forward=_probe_forward)
            self._policy = policy
        self.monitor.writer = _LoggerWriter(self.logger)

    def _on_training_start(self) -> None:
        if self._hook is None:
            self._hook = self.model.policy.optimizer.register_step_post_hook(self._after_step)

    def _on_training_end(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.monitor.writer.flush()

    def _on_step(self) -> bool:
        return True

    def _after_step(self, _optimizer, _args, _kwargs) -> None:
        mon = self.monitor
        entropy = None
        if mon.next_update_logs:
            if mon.probe is None:
                obs = _buffer_observations(self.model, mon.probe_size)
                if obs is not None:
                    mon.set_probe(torch.as_tensor(obs, device=self.model.device))
            if mon.probe is not None and hasattr(self.model.policy, "get_distribution"):
                entropy = self._probe_entropy(mon.probe)
        logged = mon.after_update(self.model.num_timesteps, policy_entropy=entropy)
        if logged is not None:
            self.last_logged = logged

    @torch.no_grad()
    def _probe_entropy(self, probe: torch.Tensor) -> torch.Tensor:
        policy = self.model.policy
        modes = [(m, m.training) for m in policy.modules()]
        policy.set_training_mode(False)
        try:
            return policy.get_distribution(probe).entropy().mean()
        finally:
            for m, mode in modes:
                m.training = mode


# -- task streams ------------------------------------------------------------------------
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


class TaskScheduleCallback(BaseCallback):
    """SB3 callback used by :func:`learn_stream` inside every ``learn`` call.

    Records the current task (``continual/task_id``) in SB3's logger at every rollout
    end, and stops ``learn`` early when the scheduler was asked to stop
    (``scheduler.request_stop()``).

    Args:
        scheduler: the running :class:`normrl.envs.TaskScheduler`.
    """

    def __init__(self, scheduler, verbose: int = 0):
        super().__init__(verbose)
        self.scheduler = scheduler

    def _on_step(self) -> bool:
        return not getattr(self.scheduler, "_stop", False)

    def _on_rollout_end(self) -> None:
        task = self.scheduler.current_task_id
        if task is not None:
            self.logger.record("continual/task_id", task)


class _ReplayFlush:
    def __init__(self, buffer):
        self.buffer = buffer

    def clear(self) -> None:
        self.buffer.reset()


class SB3StreamAgent:
    """Adapts an SB3 model to the agent interface :class:`normrl.envs.TaskScheduler`
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

    def set_env(self, env) -> None:
        self.env = env
        space = self.model.observation_space
        own = env.single_observation_space
        same_layout = getattr(space, "shape", None) == own.shape and getattr(space, "dtype", None) == own.dtype
        self.model.set_env(TensorVecEnv(env, observation_space=space if same_layout else None))

    def learn(self, steps: int, **kwargs) -> None:
        callbacks = [] if self.callback is None else (list(self.callback) if isinstance(self.callback, (list, tuple)) else [self.callback])
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
    :class:`~normrl.envs.scheduler.ContinualResult` (the evaluation matrix).

    Equivalent to ``scheduler.run(SB3StreamAgent(model, callback), run_callback)`` with a
    :class:`TaskScheduleCallback` in every ``learn`` call. ``callback``: SB3 callback(s)
    for every ``learn`` call (e.g. a :class:`PlasticityCallback`, which keeps its monitor
    across tasks); ``run_callback(scheduler, agent)``: the scheduler's own callback
    (after every chunk and visit; return False to stop).
    """
    agent = SB3StreamAgent(model, callback=callback, deterministic=deterministic)
    agent.scheduler = scheduler
    return scheduler.run(agent, run_callback)
