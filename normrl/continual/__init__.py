"""Continual learning: tasks, task hooks, the stream catalogue, the TaskScheduler for
continual RL, return/accuracy-matrix metrics, and the supervised online learner
(:mod:`normrl.continual.online`). Continual RL and continual supervised learning share
the task hooks (:func:`call_task_hooks`).

Public names: :class:`Task`, :class:`TaskScheduler`, :func:`stream_tasks`,
:func:`list_streams`, :func:`call_task_hooks`, :func:`notify_task_switch`,
:func:`apply_task_switch`, :class:`ContinualResult`, and the matrix metrics
:func:`final_average_accuracy`, :func:`average_forgetting`, :func:`backward_transfer`, and
the plasticity suite's learner :func:`train_task_sequence` / :class:`TaskSequenceConfig`.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "Task": "task",
    "TaskScheduler": "scheduler",
    "apply_task_switch": "scheduler",
    "stream_tasks": "streams",
    "list_streams": "streams",
    "call_task_hooks": "hooks",
    "notify_task_switch": "hooks",
    "ContinualResult": "result",
    "final_average_accuracy": "metrics",
    "average_forgetting": "metrics",
    "backward_transfer": "metrics",
    "TaskSequenceConfig": "task_sequence",
    "train_task_sequence": "task_sequence",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
