"""normrl inside Stable-Baselines3: normalized policies, NaP, plasticity logging, task streams.

Supported SB3 versions: 2.x with the gymnasium API; tested with 2.9.2 (the newest at
the time of writing). This package is the only part of normrl that imports
``stable_baselines3`` (install the ``normrl[sb3]`` extra). One module per concern:
:mod:`~normrl.integrations.sb3.policies`, :mod:`~normrl.integrations.sb3.callbacks`,
:mod:`~normrl.integrations.sb3.streams`.

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
* :class:`InterventionCallback` — plasticity interventions (ReDo, Shrink & Perturb,
  L2-init, ...; :mod:`normrl.plasticity`) through the policy optimizer's step hooks.
* :class:`PlasticityCallback` — the ``plasticity/*`` metrics of
  :class:`normrl.metrics.PlasticityMonitor` after every ``every``-th optimizer step,
  into the run's TensorBoard log.
* :func:`learn_stream` / :class:`SB3StreamAgent` / :class:`TaskScheduleCallback` — train
  an SB3 model through a :class:`normrl.continual.TaskScheduler` stream (``model.set_env`` +
  ``learn(..., reset_num_timesteps=False)`` per task, ``on_task_start``/``on_task_end``
  hooks on the policy's modules, evaluation matrix).

Batch-dependent norms keep their statistics in buffers named ``running_*``, so SB3's DQN
copies them to the target network at every target update (SB3 collects them with
``get_parameters_by_name(q_net, ["running_"])``).
"""
from normrl.integrations.sb3.callbacks import InterventionCallback, PlasticityCallback, TaskScheduleCallback
from normrl.integrations.sb3.policies import NormMLPExtractor, NormNatureCNNExtractor, norm_policy_kwargs
from normrl.integrations.sb3.streams import SB3StreamAgent, TensorVecEnv, learn_stream

__all__ = [
    "norm_policy_kwargs",
    "NormMLPExtractor",
    "NormNatureCNNExtractor",
    "PlasticityCallback",
    "InterventionCallback",
    "TaskScheduleCallback",
    "SB3StreamAgent",
    "TensorVecEnv",
    "learn_stream",
]
