"""The stream catalogue: built-in continual-learning streams as lists of :class:`~normrl.continual.Task`.

Stream names (``list_streams()``; ``K`` is the number of tasks, default 10):

* ``minatar`` — the five MinAtar games in the order Breakout, Asterix, Freeway,
  Seaquest, SpaceInvaders, each with ``full_action_space=True, pad_channels_to=10`` so
  that all share observation ``(10, 10, 10)`` and ``Discrete(6)``.
* ``atari-default`` — the ten games of :data:`ATARI_DEFAULT_GAMES` (see there for the
  source), full 18-action set.
* ``atari-<Game1>,<Game2>,...`` — those ALE games in that order, full 18-action set
  (e.g. ``atari-Pong,Breakout``).
* ``permuted-obs:<env_id>[:K]`` — ``K`` tasks of one env whose observation elements are
  reordered by a fixed permutation per task (task 0 unpermuted).
* ``permuted-actions:<env_id>[:K]`` — ``K`` tasks of one env whose discrete actions are
  relabelled per task (task 0 unpermuted).
* ``permuted-digits[:K]`` / ``label-permuted-digits[:K]`` — supervised tasks on
  scikit-learn's 8x8 digits with permuted pixels / permuted labels (dataset tasks: the
  learner's ``set_env`` receives a :class:`~normrl.data.SupervisedTask`).
"""
from __future__ import annotations

import functools
import re

from normrl.continual.task import Task
from normrl.data.supervised import permuted_digits_tasks
from normrl.envs.wrappers import PermutedActions, PermutedObservations

MINATAR_GAMES: tuple[str, ...] = ("Breakout", "Asterix", "Freeway", "Seaquest", "SpaceInvaders")
#: keyword arguments that give every MinAtar game the same observation/action shape
#: MinAtar has no time limit, and a greedy policy can stall forever (a Seaquest sub that
#: never dives never runs out of oxygen), which would hang the evaluation after each
#: task; the stream therefore truncates episodes at 10,000 steps (Freeway's own episodes
#: last 2,500), with the terminal observation in ``info["final_obs"]`` for bootstrapping.
MINATAR_MAX_EPISODE_STEPS = 10_000
MINATAR_STREAM_KWARGS = {"full_action_space": True, "pad_channels_to": 10, "max_episode_steps": MINATAR_MAX_EPISODE_STEPS}

#: Default ten-game sequential-Atari stream: the "Atari-10" subset of Aitchison, Sweetser
#: & Hutter, "Atari-5: Distilling the Arcade Learning Environment down to Five Games"
#: (ICML 2023, arXiv 2210.02019): Atari-5 (BattleZone, DoubleDunk, NameThisGame, Phoenix,
#: Qbert) plus Amidar, Bowling, Frostbite, KungFuMaster, Riverraid, chosen there to be
#: predictive of scores over all 57 games. Lyle et al. 2024 (NaP, arXiv 2407.01800)
#: train on a ten-game sequence too, but its game list could not be confirmed from the
#: sources available when this was written (see docs/continual.md); pass
#: ``atari-<Game1>,...`` to reproduce any published order exactly.
ATARI_DEFAULT_GAMES: tuple[str, ...] = (
    "BattleZone", "DoubleDunk", "NameThisGame", "Phoenix", "Qbert",
    "Amidar", "Bowling", "Frostbite", "KungFuMaster", "Riverraid",
)

STREAM_PATTERNS: tuple[str, ...] = (
    "minatar",
    "atari-default",
    "atari-<Game1>,<Game2>,...",
    "permuted-obs:<env_id>[:K]",
    "permuted-actions:<env_id>[:K]",
    "permuted-digits[:K]",
    "label-permuted-digits[:K]",
)
DEFAULT_NUM_TASKS = 10


def list_streams() -> list[str]:
    """The stream names :func:`stream_tasks` accepts (patterns in angle brackets)."""
    return list(STREAM_PATTERNS)


def _unknown(name: str, why: str = "") -> ValueError:
    detail = f" ({why})" if why else ""
    return ValueError(f"unknown stream {name!r}{detail}; valid streams: {', '.join(STREAM_PATTERNS)}")


def _num_tasks(name: str, text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_NUM_TASKS
    if not text.isdigit() or int(text) < 1:
        raise _unknown(name, f"task count {text!r} is not a positive integer")
    return int(text)


def _atari_tasks(games: list[str], steps: int, name: str) -> list[Task]:
    from normrl.envs.atari import rom_id

    tasks = []
    for game in games:
        try:
            rom_id(game)
        except ValueError as exc:
            raise ValueError(f"stream {name!r}: {exc}") from None
        tasks.append(Task(f"ALE/{game}-v5", steps, name=game, env_kwargs={"full_action_space": True}))
    return tasks


def _wrap_with(wrapper, permutation_seed):
    return functools.partial(wrapper, permutation_seed=permutation_seed)


def stream_tasks(name: str, steps_per_task: int, seed: int = 0, env_kwargs: dict | None = None) -> list[Task]:
    """The tasks of stream ``name``, each trained for ``steps_per_task`` env steps.

    ``seed`` fixes the permutations of the permuted streams (task ``k > 0`` uses
    permutation seed ``seed * 1000 + k``). ``env_kwargs`` are added to every env
    task's ``make_env`` keywords, over the stream's own (e.g.
    ``{"max_episode_steps": 1000}``); dataset streams refuse them. Unknown names raise
    ``ValueError`` listing the valid ones.
    """
    tasks = _catalogue_tasks(name, steps_per_task, seed)
    if env_kwargs:
        if any(t.env_id is None for t in tasks):
            raise ValueError(f"stream {name!r} is a dataset stream: env_kwargs do not apply")
        for t in tasks:
            t.env_kwargs = {**t.env_kwargs, **env_kwargs}
    return tasks


def _catalogue_tasks(name: str, steps_per_task: int, seed: int) -> list[Task]:
    if not isinstance(name, str):
        raise _unknown(repr(name))
    if name == "minatar":
        return [Task(f"MinAtar/{g}", steps_per_task, name=g, env_kwargs=dict(MINATAR_STREAM_KWARGS)) for g in MINATAR_GAMES]
    if name == "atari-default":
        return _atari_tasks(list(ATARI_DEFAULT_GAMES), steps_per_task, name)
    if name.startswith("atari-"):
        games = [g.strip() for g in name[len("atari-"):].split(",") if g.strip()]
        if not games:
            raise _unknown(name, "no games listed")
        return _atari_tasks(games, steps_per_task, name)
    match = re.fullmatch(r"permuted-(obs|actions):([^:]+)(?::(\w*))?", name)
    if match:
        kind, env_id, count = match.groups()
        from normrl.envs.registry import ALE_PATTERN, ENV_IDS

        if env_id not in ENV_IDS and not ALE_PATTERN.match(env_id):
            raise _unknown(name, f"unknown env id {env_id!r}")
        wrapper = PermutedObservations if kind == "obs" else PermutedActions
        tasks = []
        for k in range(_num_tasks(name, count)):
            perm_seed = None if k == 0 else seed * 1000 + k
            tasks.append(Task(env_id, steps_per_task, name=f"{env_id}#{kind}-perm{k}",
                              wrapper=_wrap_with(wrapper, perm_seed)))
        return tasks
    match = re.fullmatch(r"(label-)?permuted-digits(?::(\w*))?", name)
    if match:
        label, count = match.groups()
        mode = "label" if label else "input"
        return [Task(t, steps_per_task, name=t.name) for t in permuted_digits_tasks(_num_tasks(name, count), mode, seed)]
    raise _unknown(name)
