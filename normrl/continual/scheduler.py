"""TaskScheduler: train one agent on a stream of tasks and record the return matrix.

A *stream* is a list of :class:`Task` objects visited in order, ``cycles`` times. Task
``k`` of the list has task id ``k`` in every cycle (a game seen again keeps its id, so
per-task state such as AdaB²N's θ_k is shared across cycles). The scheduler is written
against the agent interface of ``normrl.agents`` by duck typing:

================================  ===================================================
``agent.set_env(env)``            required: train on this env (or data set) from now on
``agent.learn(steps)``            required: ``steps`` more env steps, counters continue
``agent.num_steps``               required: env steps done so far (int)
``agent.evaluate(env, episodes)`` required: mean return of ``episodes`` episodes
``agent.networks()``              optional: modules walked for the task hooks
``agent.on_task_start/end(id)``   optional: the agent's own task hooks (interventions)
``agent.task_id``                 optional: set to the current task id when tagging
``agent.optimizer``               optional: state reset by ``reset_optimizer=True``
``agent.lr_schedule``             optional: ``restart()`` called by ``restart_lr=True``
``agent.replay_buffer``           optional: ``clear()`` called by ``flush_replay=True``
``agent.writer``                  optional: a ``SummaryWriter`` for the tags below
================================  ===================================================

At every task switch (:func:`apply_task_switch`), in this order:

1. ``on_task_end(old_id)`` on every module that defines it (after the previous task);
2. the previous task's evaluation (below);
3. ``on_task_start(new_id)`` on every module that defines it;
4. optimizer state reset (``reset_optimizer``), LR schedule restart (``restart_lr``;
   by default the schedule's own ``on_task_start`` decides),
   replay flush (``flush_replay``), ``agent.task_id = new_id`` (``tag_task_id``).

The first task gets step 3-4 only (the optimizer, LR and buffer options act on switches,
not on the very first task); the last gets steps 1-2.

The **fresh-agent oracle** (``agent_factory``): instead of continuing one agent, the
scheduler builds a new one at the start of every visit (``agent_factory(visit=v, env=env,
step_offset=o)``, on the visit's env) and trains it for that visit only: new networks,
optimizer, schedule and buffers, so every visit is learned from scratch. It is the
reference against which loss of plasticity is measured (a continual agent that learns a
task worse than a fresh one has lost plasticity; e.g. Kumar et al. 2023, arXiv
2308.11958; Lyle et al. 2024, arXiv 2407.01800). The new agent gets the start hooks and
the task tag of a first task (no switch options: nothing is left to reset). Its own
``num_steps`` starts at 0 (a DQN's exploration and warm-up depend on it); the matrix's
``eval_steps`` add ``step_offset`` (the stream's env steps before the visit) so that they
count along the whole stream, and the factory should give the agent a writer that adds
the same offset (:class:`normrl.runs.StepOffsetWriter`).

After each task visit the agent is evaluated on every task seen so far, or only on the
visit's own task with ``eval_tasks="current"`` (``agent.task_id`` is set to the evaluated
task during its evaluation and restored after). The result is a
matrix ``returns[visit, task]`` (rows: task visits in training order; columns: the
distinct tasks of the stream; NaN where a task was not yet seen), lower-triangular in the
first cycle. TensorBoard tags (``agent.writer``): ``continual/eval/<task name>`` (that
task's return after every visit, x-axis env steps), ``continual/task_id`` (the task
being trained, at the start and end of every visit) and ``continual/eval_mean_seen``
(mean over the seen tasks). With ``logdir`` set, ``summary.json`` there receives the
result after every visit (key ``"continual"``).

Resumption: :meth:`TaskScheduler.state_dict` holds the visit index, the steps done
within it, whether its start hooks ran, and the matrix; saved beside the agent's own
checkpoint, :meth:`load_state_dict` + :meth:`run` continue exactly where training stopped.
"""
from __future__ import annotations

import inspect
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from normrl.continual.hooks import notify_task_switch
from normrl.continual.result import ContinualResult
from normrl.continual.task import Task
from normrl.utils.errors import EvaluationInterrupted

STATE_VERSION = 1
#: which tasks are evaluated after each visit
EVAL_TASKS = ("seen", "current")


def _accepts(fn, name: str) -> bool:
    """Whether callable ``fn`` takes a keyword argument ``name``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _hook_roots(agent) -> list:
    """What the task hooks walk: the agent's networks (every submodule) and the agent
    itself (its own ``on_task_start``/``on_task_end``, e.g. the plasticity
    interventions of normrl's agents)."""
    nets = agent.networks() if hasattr(agent, "networks") else []
    return [n for n in nets if isinstance(n, nn.Module)] + [agent]


def apply_task_switch(agent, old_task: int | None, new_task: int, *, reset_optimizer_state: bool = False,
                      restart_lr: bool | None = None, flush_replay: bool = False, tag_task_id: bool = True,
                      call_end_hooks: bool = True) -> None:
    """Everything that happens to ``agent`` when task ``new_task`` starts (module docstring).

    ``old_task=None`` marks the first task: only the start hooks and the task tag apply.
    ``restart_lr``: ``True`` calls ``agent.lr_schedule.restart()``; ``None`` calls
    ``agent.lr_schedule.on_task_start(new_task)`` if defined (the schedule's own
    ``restart_on_task_switch`` decides); ``False`` leaves the schedule alone.
    ``call_end_hooks=False`` skips ``on_task_end`` (the scheduler calls it earlier, before
    evaluating the finished task).
    """
    notify_task_switch(_hook_roots(agent), old_task if call_end_hooks else None, new_task)
    if old_task is not None:
        if reset_optimizer_state and getattr(agent, "optimizer", None) is not None:
            from normrl.normalization.optimizer_reset import reset_optimizer_state as reset_state

            reset_state(agent.optimizer)
        schedule = getattr(agent, "lr_schedule", None)
        if schedule is not None and restart_lr is True:
            schedule.restart()
        elif schedule is not None and restart_lr is None and callable(getattr(schedule, "on_task_start", None)):
            schedule.on_task_start(new_task)
        if flush_replay and getattr(agent, "replay_buffer", None) is not None:
            agent.replay_buffer.clear()
    if tag_task_id:
        agent.task_id = new_task


class TaskScheduler:
    """Train an agent on ``tasks`` in order, ``cycles`` times, evaluating after each visit.

    Args:
        tasks: the stream (list of :class:`Task`), at least one.
        cycles: passes over the list (default 1).
        name: the stream's name (recorded in the state and the result; default ``"custom"``).
        num_envs: parallel envs of each training env (default 8).
        device: device of the envs; ``None`` (default) uses ``agent.device`` if present,
            else CPU.
        seed: base seed: visit ``v`` of a task without its own seed trains on env seed
            ``seed + v``; evaluation of task ``k`` uses env seed ``seed + 1_000_003 + k``
            (the same episodes after every visit, so rows are comparable).
        reset_optimizer: reset the optimizer state at each switch (default ``False``).
        restart_lr: at each switch, ``True`` calls ``agent.lr_schedule.restart()``,
            ``False`` leaves the schedule alone, ``None`` (default) calls its
            ``on_task_start(task_id)`` so the schedule's own ``restart_on_task_switch``
            setting decides.
        flush_replay: clear ``agent.replay_buffer`` at each switch (default ``False``).
        tag_task_id: set ``agent.task_id`` to the current task id (default ``True``).
        eval_episodes: episodes per evaluation (default 10); 0 disables evaluation.
        eval_num_envs: envs of each evaluation env (default ``eval_episodes``: every
            episode runs at once, one per sub-env, so an evaluation lasts as long as its
            longest episode rather than the sum of the episodes a sub-env runs).
        eval_epsilon: ε of ε-greedy evaluation (default 0.0: greedy); passed to
            ``agent.evaluate(..., epsilon=, epsilon_seed=)`` with the task's evaluation
            seed, when the agent's ``evaluate`` takes them (ValueError otherwise).
        eval_tasks: ``"seen"`` (default) evaluates every task seen so far after each
            visit; ``"current"`` only the visit's own task (the matrix keeps its
            diagonal entries, NaN elsewhere: what a plasticity study needs, at a fraction
            of the cost; no ``continual/eval_mean_seen`` tag then).
        chunk_steps: train in chunks of at most this many steps, calling ``callback``
            after each (e.g. to checkpoint); default ``None``: one chunk per visit.
        logdir: if set, ``summary.json`` there is rewritten after every visit.
        learn_kwargs: extra keyword arguments of every ``agent.learn`` call (e.g.
            ``{"progress": False}`` when the caller shows its own progress bar; default none).
        agent_factory: the fresh-agent oracle (module docstring): a callable
            ``(visit=, env=, step_offset=) -> agent`` that builds the agent of every visit
            [None: one agent continues through the stream].
    """

    def __init__(self, tasks: list[Task], cycles: int = 1, *, name: str = "custom", num_envs: int = 8,
                 device: str | torch.device | None = None, seed: int = 0, reset_optimizer: bool = False,
                 restart_lr: bool | None = None, flush_replay: bool = False, tag_task_id: bool = True,
                 eval_episodes: int = 10, eval_num_envs: int | None = None, eval_epsilon: float = 0.0,
                 eval_tasks: str = "seen", chunk_steps: int | None = None,
                 logdir: str | None = None, learn_kwargs: dict[str, Any] | None = None,
                 agent_factory: Callable[..., Any] | None = None):
        tasks = list(tasks)
        if not tasks or not all(isinstance(t, Task) for t in tasks):
            raise ValueError("tasks must be a non-empty list of Task")
        for label, value, low in (("cycles", cycles, 1), ("num_envs", num_envs, 1), ("eval_episodes", eval_episodes, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
        if chunk_steps is not None and (not isinstance(chunk_steps, int) or chunk_steps < 1):
            raise ValueError(f"chunk_steps must be a positive int or None, got {chunk_steps!r}")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be distinct, got {names}")
        self.tasks = tasks
        self.cycles = cycles
        self.name = name
        self.num_envs = num_envs
        self.device = device
        self.seed = int(seed)
        self.reset_optimizer = reset_optimizer
        self.restart_lr = restart_lr
        self.flush_replay = flush_replay
        self.tag_task_id = tag_task_id
        self.eval_episodes = eval_episodes
        if not isinstance(eval_epsilon, (int, float)) or isinstance(eval_epsilon, bool) or not 0.0 <= eval_epsilon <= 1.0:
            raise ValueError(f"eval_epsilon must be a float in [0, 1], got {eval_epsilon!r}")
        self.eval_num_envs = eval_num_envs if eval_num_envs is not None else max(1, eval_episodes)
        self.eval_epsilon = float(eval_epsilon)
        if eval_tasks not in EVAL_TASKS:
            raise ValueError(f"eval_tasks must be one of {', '.join(EVAL_TASKS)}, got {eval_tasks!r}")
        self.eval_tasks = eval_tasks
        self.chunk_steps = chunk_steps
        self.logdir = logdir
        self.learn_kwargs = dict(learn_kwargs or {})
        if agent_factory is not None and not callable(agent_factory):
            raise ValueError(f"agent_factory must be callable or None, got {agent_factory!r}")
        self.agent_factory = agent_factory
        # position
        self.visit = 0
        self.steps_done = 0
        self.started = False
        self.task_ended = False  # the visit's on_task_end hooks ran (its evaluation may not have)
        self.returns: list[list[float]] = []
        self.eval_steps: list[int] = []
        # wall time spent in agent.learn and in evaluations (kept across resumes)
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self._stop = False

    # -- schedule ----------------------------------------------------------------------
    @property
    def num_visits(self) -> int:
        return len(self.tasks) * self.cycles

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def visit_task_id(self, visit: int) -> int:
        """The task id trained at visit ``visit`` (``visit % len(tasks)``)."""
        return visit % len(self.tasks)

    @property
    def done(self) -> bool:
        return self.visit >= self.num_visits

    @property
    def current_task_id(self) -> int | None:
        return None if self.done else self.visit_task_id(self.visit)

    def total_steps(self) -> int:
        """Env steps over the whole stream (sum of every visit's ``steps``)."""
        return sum(t.steps for t in self.tasks) * self.cycles

    def steps_completed(self) -> int:
        """Env steps trained so far, counted by the schedule (resumes with the state)."""
        per_cycle = [t.steps for t in self.tasks]
        return sum(per_cycle[self.visit_task_id(v)] for v in range(min(self.visit, self.num_visits))) + self.steps_done

    @property
    def fresh_agents(self) -> bool:
        """Whether every visit trains a new agent (``agent_factory`` given)."""
        return self.agent_factory is not None

    @property
    def step_offset(self) -> int:
        """Env steps of the stream before the current agent's first step: the last
        evaluated row's step with fresh agents, else 0 (one agent counts them all)."""
        return self.eval_steps[-1] if (self.fresh_agents and self.eval_steps) else 0

    def request_stop(self) -> None:
        """Make :meth:`run` return after the current chunk (e.g. from a signal handler)."""
        self._stop = True

    # -- running -------------------------------------------------------------------------
    def _device(self, agent):
        if self.device is not None:
            return torch.device(self.device)
        return torch.device(getattr(agent, "device", "cpu"))

    def _train_seed(self, visit: int) -> int:
        task = self.tasks[self.visit_task_id(visit)]
        return task.seed if task.seed is not None else self.seed + visit

    def _eval_seed(self, task_id: int) -> int:
        task = self.tasks[task_id]
        base = task.seed if task.seed is not None else self.seed
        return base + 1_000_003 + task_id

    def _log(self, agent, tag: str, value: float) -> None:
        writer = getattr(agent, "writer", None)
        if writer is not None:
            writer.add_scalar(tag, value, int(agent.num_steps))

    def _seen_tasks(self) -> list[int]:
        return sorted({self.visit_task_id(v) for v in range(self.visit + 1)})

    def _evaluated_tasks(self) -> list[int]:
        return self._seen_tasks() if self.eval_tasks == "seen" else [self.visit_task_id(self.visit)]

    def _evaluate_row(self, agent, device) -> None:
        """Evaluate on every task seen so far (or the visit's own, ``eval_tasks="current"``)
        and append the matrix row. A stop
        requested meanwhile raises EvaluationInterrupted (between tasks, or within one
        when ``agent.evaluate`` takes ``should_stop``); nothing is logged or appended
        then, so the resumed run evaluates the whole row once."""
        row = [math.nan] * len(self.tasks)
        if self.eval_episodes > 0:
            stop_kwargs = {"should_stop": lambda: self._stop} if _accepts(agent.evaluate, "should_stop") else {}
            if self.eval_epsilon > 0 and not _accepts(agent.evaluate, "epsilon"):
                raise ValueError(f"eval_epsilon={self.eval_epsilon} needs agent.evaluate(..., epsilon=, epsilon_seed=)")
            saved_task_id = getattr(agent, "task_id", None)
            try:
                for k in self._evaluated_tasks():
                    if self._stop:
                        raise EvaluationInterrupted("stop requested between task evaluations")
                    env = self.tasks[k].make(self.eval_num_envs, device, self._eval_seed(k))
                    try:
                        if self.tag_task_id:
                            agent.task_id = k
                        eps_kwargs = {"epsilon": self.eval_epsilon, "epsilon_seed": self._eval_seed(k)} if self.eval_epsilon > 0 else {}
                        row[k] = float(agent.evaluate(env, self.eval_episodes, **stop_kwargs, **eps_kwargs))
                    finally:
                        env.close()
            finally:
                if self.tag_task_id and saved_task_id is not None:
                    agent.task_id = saved_task_id
            for k in self._evaluated_tasks():
                self._log(agent, f"continual/eval/{self.tasks[k].name}", row[k])
            if self.eval_tasks == "seen":
                seen = [row[k] for k in self._seen_tasks()]
                self._log(agent, "continual/eval_mean_seen", sum(seen) / len(seen))
        self.returns.append(row)
        self.eval_steps.append(self.step_offset + int(agent.num_steps))

    def result(self) -> ContinualResult:
        """The matrix so far."""
        visits = [self.visit_task_id(v) for v in range(len(self.returns))]
        return ContinualResult(self.task_names, visits, [list(r) for r in self.returns], list(self.eval_steps), self.done)

    def _write_summary(self) -> None:
        if self.logdir is None:
            return
        from normrl.utils.run_dir import write_summary

        write_summary(self.logdir, {"stream": self.name, "cycles": self.cycles, "continual": self.result().to_dict(),
                                    "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                                    "status": "running"})

    def make_visit_env(self, device: str | torch.device | None = None):
        """The training env of the current visit (what :meth:`run` would build).

        Build the agent on it, restore a checkpoint into the agent (which restores this
        env's state), then pass it as ``run(agent, env=...)``: the visit then continues
        bit for bit instead of starting fresh episodes. Only do this mid-visit
        (``state_dict()["started"]`` true); at a visit boundary pass no env, so the visit
        starts on a fresh env as it would have without the interruption.
        """
        if self.done:
            raise ValueError("the stream is finished: no visit left")
        device = torch.device(device if device is not None else (self.device or "cpu"))
        return self.tasks[self.visit_task_id(self.visit)].make(self.num_envs, device, self._train_seed(self.visit))

    def run(self, agent=None, callback: Callable[["TaskScheduler", Any], Any] | None = None, env=None) -> ContinualResult:
        """Train ``agent`` on the rest of the stream and return the matrix.

        With ``agent_factory``, every visit that starts here trains a new agent from the
        factory; ``agent`` is then only needed when resuming inside a visit (the
        restored agent of that visit) and may be None otherwise.

        ``callback(scheduler, agent)`` runs after every training chunk and after every
        visit's evaluation (a consistent point to save ``agent`` and ``state_dict()``).
        It may return ``False`` (or :meth:`request_stop` may be called) to stop early;
        :meth:`run` then returns the partial result (``completed=False``).

        ``env``: the current visit's env from :meth:`make_visit_env` (optional); when the
        agent already trains on it (``agent.env is env``), ``set_env`` is not called, so
        the agent's restored rollout state is kept. Later visits build their own envs.
        """
        if agent is None and not (self.fresh_agents and (self.done or not self.started)):
            raise ValueError("run() needs the agent (only a fresh-agent scheduler at a visit boundary builds its own)")
        device = self._device(agent)
        self._stop = False
        given_env = env
        while not self.done:
            task_id = self.visit_task_id(self.visit)
            task = self.tasks[task_id]
            if given_env is not None:
                env, given_env = given_env, None
            else:
                env = task.make(self.num_envs, device, self._train_seed(self.visit))
            try:
                if not self.started:
                    old = None if self.visit == 0 else self.visit_task_id(self.visit - 1)
                    if self.fresh_agents:
                        # the oracle: a new agent for this visit, started as on a first task
                        agent = self.agent_factory(visit=self.visit, env=env, step_offset=self.step_offset)
                        old = None
                    apply_task_switch(agent, old, task_id, reset_optimizer_state=self.reset_optimizer,
                                      restart_lr=self.restart_lr, flush_replay=self.flush_replay,
                                      tag_task_id=self.tag_task_id, call_end_hooks=False)
                    self.started = True
                    self._log(agent, "continual/task_id", task_id)
                elif self.tag_task_id:
                    # resumed mid-visit: the hooks ran and the visit's start was logged before the save
                    agent.task_id = task_id
                if getattr(agent, "env", None) is not env:
                    agent.set_env(env)
                while self.steps_done < task.steps:
                    chunk = task.steps - self.steps_done
                    if self.chunk_steps is not None:
                        chunk = min(chunk, self.chunk_steps)
                    before, t_learn = int(agent.num_steps), time.perf_counter()
                    agent.learn(chunk, **self.learn_kwargs)
                    self.train_seconds += time.perf_counter() - t_learn
                    progress = int(agent.num_steps) - before
                    if progress <= 0:
                        raise RuntimeError(f"agent.learn({chunk}) made no progress (num_steps stayed at {before})")
                    self.steps_done = min(task.steps, self.steps_done + progress)
                    if callback is not None and callback(self, agent) is False:
                        self._stop = True
                    if self._stop:
                        return self.result()
                if not self.task_ended:  # else logged before an interrupted evaluation
                    self._log(agent, "continual/task_id", task_id)
            finally:
                env.close()
            if not self.task_ended:
                notify_task_switch(_hook_roots(agent), task_id, None)
                self.task_ended = True
            t0 = time.perf_counter()
            try:
                self._evaluate_row(agent, device)
            except EvaluationInterrupted:
                self.eval_seconds += time.perf_counter() - t0
                # a consistent point too: the visit is trained and ended, its row not yet
                # evaluated (a resumed run evaluates it without calling the end hooks again)
                if callback is not None:
                    callback(self, agent)
                return self.result()
            self.eval_seconds += time.perf_counter() - t0
            self.visit += 1
            self.steps_done = 0
            self.started = False
            self.task_ended = False
            self._write_summary()
            if callback is not None and callback(self, agent) is False:
                self._stop = True
            if self._stop:
                break
        return self.result()

    # -- checkpointing -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Position in the stream and the matrix so far (plain JSON-ready values; NaN as ``None``)."""
        return {
            "version": STATE_VERSION,
            "stream": self.name,
            "task_names": self.task_names,
            "task_steps": [t.steps for t in self.tasks],
            "cycles": self.cycles,
            "visit": self.visit,
            "steps_done": self.steps_done,
            "started": self.started,
            "task_ended": self.task_ended,
            "returns": [[None if math.isnan(v) else v for v in row] for row in self.returns],
            "eval_steps": list(self.eval_steps),
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "fresh_agents": self.fresh_agents,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict` of a scheduler over the same stream.

        Raises ``ValueError`` when the state is malformed or belongs to another stream
        (different task names, steps or cycles).
        """
        required = ("version", "task_names", "task_steps", "cycles", "visit", "steps_done", "started", "returns", "eval_steps")
        if not isinstance(state, dict) or any(k not in state for k in required):
            missing = [k for k in required if not isinstance(state, dict) or k not in state]
            raise ValueError(f"scheduler state is missing {missing}")
        if state["version"] != STATE_VERSION:
            raise ValueError(f"scheduler state version {state['version']!r} is not supported (expected {STATE_VERSION})")
        mine = (self.task_names, [t.steps for t in self.tasks], self.cycles)
        theirs = (list(state["task_names"]), list(state["task_steps"]), state["cycles"])
        if mine != theirs:
            raise ValueError(f"scheduler state is for another stream: tasks/steps/cycles {theirs} != {mine}")
        if bool(state.get("fresh_agents", False)) != self.fresh_agents:  # absent before the oracle existed
            raise ValueError(f"scheduler state is for {'fresh agents per visit' if state.get('fresh_agents') else 'one agent'}, "
                             f"this scheduler {'builds fresh agents' if self.fresh_agents else 'continues one agent'}")
        visit, steps_done = state["visit"], state["steps_done"]
        if not (0 <= visit <= self.num_visits) or len(state["returns"]) != visit or len(state["eval_steps"]) != visit:
            raise ValueError(f"scheduler state is inconsistent: visit {visit} with {len(state['returns'])} matrix rows")
        if not (0 <= steps_done <= (self.tasks[self.visit_task_id(visit)].steps if visit < self.num_visits else 0)):
            raise ValueError(f"scheduler state is inconsistent: steps_done {steps_done} at visit {visit}")
        self.visit = int(visit)
        self.steps_done = int(steps_done)
        self.started = bool(state["started"])
        self.task_ended = bool(state.get("task_ended", False))  # absent in states saved before it existed
        self.returns = [[math.nan if v is None else float(v) for v in row] for row in state["returns"]]
        self.eval_steps = [int(s) for s in state["eval_steps"]]
        self.train_seconds = float(state.get("train_seconds", 0.0))  # absent in states saved before they existed
        self.eval_seconds = float(state.get("eval_seconds", 0.0))
