"""Run a list of independent trials on Ray: an embedded local Ray by default, or an
existing cluster (``address="auto"`` or ``"HOST:PORT"``).

Why Ray core tasks and not Ray Tune
-----------------------------------
A normrl trial is an ordinary run directory (config.json, summary.json, TensorBoard
events, ``checkpoints/``) written by the same function as ``normrl train``; finished
and resumable trials are recognised from those files. Ray Tune would fight that layout:
it creates its own experiment directory (``storage_path/<experiment>/<trial>_<id>/``
with ``params.json``, ``result.json``, ``progress.csv`` and ``experiment_state.json``),
changes the worker's working directory into it (``RAY_CHDIR_TO_TRIAL_DIR``), persists
checkpoints only through ``tune.report(checkpoint=...)`` into its own storage and
resumes through ``Tuner.restore`` from its own experiment state. Tune's value is search
algorithms and early-stopping schedulers (ASHA, PBT), which a grid of seeds does not
use, and it needs the heavier ``ray[tune]`` extra (pandas, pyarrow, fsspec). Ray core
gives exactly what a grid needs with nothing imposed: one ``ray.remote`` task per
trial with per-task ``num_cpus``/``num_gpus`` (fractional GPUs allowed), ``ray.wait``
to collect trials as they end, and ``ray.cancel(ref, force=False)``, which raises
``KeyboardInterrupt`` in the trial's main thread through ``_thread.interrupt_main`` --
that is, it runs the trial's own SIGINT handler if it installed one (normrl's
training loops do: they save a checkpoint and return their summary), and Ray waits
for the task to return however long that checkpoint takes. Only the plain ``ray``
package is needed (no dashboard extra).

The engine keeps at most as many trials in flight as the cluster's CPUs/GPUs fit
(recomputed as nodes join), so "running" in the progress bar is what runs, and a stop
cancels trials that never started without scheduling them. A task that a crashed or
OOM-killed worker was running is not retried (``max_retries=0``): it is reported as
failed and a re-run of the sweep resumes it from its checkpoint.

``ray`` is imported only inside this module (the ``normrl[ray]`` extra).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (FINISHED, FAILED, CANCELLED)

_CAPACITY_REFRESH_S = 5.0  # how often the in-flight limit follows nodes joining or leaving

TRIAL_LOG_NAME = "trial.log"
"""A trial whose kwargs hold ``logdir`` has its stdout/stderr (and, on failure, its
traceback) appended to ``<logdir>/trial.log``."""


@dataclass
class TrialOutcome:
    """How one trial ended.

    Attributes:
        name: the trial's name.
        status: ``"finished"`` (``fn`` returned), ``"failed"`` (``fn`` raised, or its
            worker died) or ``"cancelled"`` (stopped by SIGINT/SIGTERM/``stop_event``,
            or never started because of it).
        result: what ``fn`` returned; also set for a cancelled trial whose own signal
            handler let it return its (partial) summary.
        error_type, error_message, traceback: the exception of a failed trial (for a
            dead worker, Ray's error type and message; its traceback is Ray's).
        log_path: ``<logdir>/trial.log`` when the trial's kwargs hold ``logdir``.
        wall_s: seconds ``fn`` ran in the worker (None when it never started or its
            worker died).
        node: ``hostname:pid`` of the worker that ran it.
    """

    name: str
    status: str
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    log_path: str | None = None
    wall_s: float | None = None
    node: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields (``result`` as returned; it should be JSON-ready itself)."""
        return dict(self.__dict__)


def _trial_log_path(kwargs: Mapping[str, Any]) -> str | None:
    logdir = kwargs.get("logdir")
    return None if logdir is None else str(Path(logdir) / TRIAL_LOG_NAME)


def _execute_trial(fn: Callable[..., Any], kwargs: dict, log_path: str | None) -> dict:
    """Runs in the Ray worker: call ``fn(**kwargs)``, turn an exception into data (so an
    unpicklable exception still reaches the driver with its traceback), and send the
    trial's output to its log file. ``KeyboardInterrupt`` (``ray.cancel``) propagates."""
    node = f"{socket.gethostname()}:{os.getpid()}"
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
            # ray.cancel interrupts through _thread.interrupt_main, which does nothing
            # while SIGINT is ignored -- as it is for a Ray started from a background job
            # (`normrl sweep ... &`), whose workers inherit the ignored disposition
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            stack.callback(signal.signal, signal.SIGINT, previous)
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(open(log_path, "a", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
        try:
            result = fn(**kwargs)
        except (Exception, SystemExit) as exc:
            text = traceback.format_exc()
            if log_path is not None:
                print(text, file=log)
            return {"ok": False, "error_type": type(exc).__name__, "error_message": str(exc),
                    "traceback": text, "wall_s": time.perf_counter() - start, "node": node}
    return {"ok": True, "result": result, "wall_s": time.perf_counter() - start, "node": node}


@dataclass
class _Counts:
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0

    def postfix(self) -> str:
        text = f"done {self.done} failed {self.failed} running {self.running}"
        return text + (f" cancelled {self.cancelled}" if self.cancelled else "")


def _validate(trials, cpus_per_trial, gpus_per_trial, address, num_cpus):
    names = [name for name, _ in trials]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"trial names must be unique; repeated: {dupes}")
    for name, kwargs in trials:
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"trial {name!r}: kwargs must be a mapping, got {type(kwargs).__name__}")
    if not cpus_per_trial > 0:
        raise ValueError(f"cpus_per_trial must be > 0, got {cpus_per_trial}")
    if gpus_per_trial < 0:
        raise ValueError(f"gpus_per_trial must be >= 0, got {gpus_per_trial}")
    if gpus_per_trial > 1 and gpus_per_trial != int(gpus_per_trial):
        raise ValueError(f"gpus_per_trial above 1 must be a whole number (Ray's rule), got {gpus_per_trial}")
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus applies to the embedded local Ray only; a cluster joined "
                         "with address= has its own CPUs (set them with `ray start --num-cpus`)")
    if num_cpus is not None and num_cpus < 1:
        raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")


def _capacity(ray, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials the cluster's total resources fit at once (at least 1)."""
    total = ray.cluster_resources()
    fits = math.floor(total.get("CPU", 0.0) / cpus_per_trial + 1e-9)
    if gpus_per_trial > 0:
        fits = min(fits, math.floor(total.get("GPU", 0.0) / gpus_per_trial + 1e-9))
    return max(fits, 1)


def _check_feasible(ray, cpus_per_trial: float, gpus_per_trial: float, local: bool) -> None:
    total = ray.cluster_resources()
    missing = []
    if cpus_per_trial > total.get("CPU", 0.0):
        missing.append(f"{cpus_per_trial} CPUs per trial but the cluster has {total.get('CPU', 0.0):g}")
    if gpus_per_trial > total.get("GPU", 0.0):
        missing.append(f"{gpus_per_trial} GPUs per trial but the cluster has {total.get('GPU', 0.0):g}")
    if missing and local:
        raise ValueError("no trial can be scheduled: " + "; ".join(missing))
    if missing:
        import warnings

        warnings.warn("trials wait for resources the cluster lacks now (an autoscaler may add "
                      "them): " + "; ".join(missing), RuntimeWarning, stacklevel=3)


def run_trials(
    trials: Iterable[tuple[str, Mapping[str, Any]]],
    fn: Callable[..., Any],
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    on_result: Callable[[TrialOutcome], None] | None = None,
    stop_event: threading.Event | None = None,
    progress: bool = True,
    log_to_driver: bool = False,
    poll_s: float = 0.5,
) -> dict[str, TrialOutcome]:
    """Run ``fn(**kwargs)`` for every ``(name, kwargs)`` trial as a Ray task; return
    ``{name: TrialOutcome}`` in trial order.

    Args:
        trials: ``(name, kwargs)`` pairs; names unique. A ``logdir`` key in kwargs names
            the trial's run directory: its output goes to ``<logdir>/trial.log``.
        fn: the trial function, a top-level function importable on every node (the
            installed ``normrl`` package on a cluster); it returns a summary (a dict).
        address: None starts an embedded local Ray (unless Ray is already initialised
            in this process, which is then used as is, or ``RAY_ADDRESS`` is set, which
            Ray then joins); ``"auto"`` joins the cluster started on this machine with
            ``ray start --head``; ``"HOST:PORT"`` joins a remote head node.
        num_cpus: CPUs of the embedded local Ray [all the machine's]; only with
            ``address=None``.
        cpus_per_trial, gpus_per_trial: Ray resources each trial reserves [1, 0];
            fractional GPUs (e.g. 0.25 runs four trials per GPU) are allowed, above 1
            whole numbers only. Ray sets ``CUDA_VISIBLE_DEVICES`` for the trial.
        on_result: called in the driver with each trial's outcome as the trial ends
            (finished, failed or cancelled); print with ``tqdm.tqdm.write`` so the
            progress bar stays intact.
        stop_event: setting it stops the sweep like a SIGINT does.
        progress: show a tqdm bar (trials done / failed / running, ETA).
        log_to_driver: stream the workers' output to this terminal too (Ray's default;
            off here because trials log to their own files).
        poll_s: longest wait between checks of ``stop_event`` and signals.

    Stopping: the first SIGINT or SIGTERM in the driver (or ``stop_event``) starts no
    more trials and cancels the running ones with ``ray.cancel(force=False)``: each
    receives a KeyboardInterrupt, or its own SIGINT handler runs, and the engine waits
    until every running trial has returned (so a trial can checkpoint). A second
    SIGINT/SIGTERM kills the remaining trials' workers (``force=True``). The signal
    handlers are installed only when called from the main thread, and restored on
    return. An embedded Ray started here is shut down on return.
    """
    try:
        import ray
        from ray.exceptions import TaskCancelledError
    except ImportError as exc:  # the normrl[ray] extra
        raise ImportError('run_trials needs Ray: pip install "normrl[ray]" (or "ray")') from exc

    trials = [(str(name), dict(kwargs)) for name, kwargs in trials]
    _validate(trials, cpus_per_trial, gpus_per_trial, address, num_cpus)
    if not trials:
        return {}

    started_here = False
    if not ray.is_initialized():
        joins = address is not None or bool(os.environ.get("RAY_ADDRESS"))
        if joins and num_cpus is not None:
            raise ValueError("num_cpus applies to the embedded local Ray only; RAY_ADDRESS is set, "
                             "so Ray would join that cluster")
        import logging

        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False,
                 log_to_driver=log_to_driver, logging_level=logging.WARNING)
        started_here = True
        local = not joins
    else:
        local = False  # an existing session: its owner decides
    try:
        _check_feasible(ray, cpus_per_trial, gpus_per_trial, local=local)
        return _schedule(ray, TaskCancelledError, trials, fn, cpus_per_trial, gpus_per_trial,
                         on_result, stop_event, progress, poll_s)
    finally:
        if started_here:
            ray.shutdown()


def _schedule(ray, cancelled_error, trials, fn, cpus_per_trial, gpus_per_trial, on_result,
              stop_event, progress, poll_s) -> dict[str, TrialOutcome]:
    """The driver loop of :func:`run_trials` on an initialised Ray."""
    remote_trial = ray.remote(_execute_trial)
    outcomes: dict[str, TrialOutcome] = {}

    signals: list[int] = []
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            signals.append(signum)

        for s in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[s] = signal.signal(s, on_signal)

    counts = _Counts()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(trials), unit="trial", desc="trials", dynamic_ncols=True)

    def finish(outcome: TrialOutcome) -> None:
        outcomes[outcome.name] = outcome
        counts.running = len(in_flight)
        if outcome.status == FINISHED:
            counts.done += 1
        elif outcome.status == FAILED:
            counts.failed += 1
        else:
            counts.cancelled += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(counts.postfix())
        if on_result is not None:
            on_result(outcome)

    pending = list(reversed(trials))  # pop() takes them in order
    in_flight: dict[Any, tuple[str, dict]] = {}
    cancel_sent: set[str] = set()
    forced = False
    stopping = False
    capacity, capacity_at = 0, -math.inf
    try:
        while pending or in_flight:
            if not stopping and (signals or (stop_event is not None and stop_event.is_set())):
                stopping = True
                for name, kwargs in reversed(pending):
                    finish(TrialOutcome(name, CANCELLED, log_path=_trial_log_path(kwargs)))
                pending.clear()
                for ref, (name, _) in in_flight.items():
                    # a trial that already returned is collected as finished below
                    if not ray.wait([ref], timeout=0)[0]:
                        ray.cancel(ref, force=False)
                        cancel_sent.add(name)
            if stopping and not forced and len(signals) >= 2:
                forced = True
                for ref, (name, _) in in_flight.items():
                    ray.cancel(ref, force=True)
                    cancel_sent.add(name)
            if not stopping and pending:
                if time.monotonic() - capacity_at > _CAPACITY_REFRESH_S:
                    capacity = _capacity(ray, cpus_per_trial, gpus_per_trial)
                    capacity_at = time.monotonic()
                room = capacity - len(in_flight)
                while room > 0 and pending:
                    name, kwargs = pending.pop()
                    ref = remote_trial.options(
                        num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0,
                        name=f"trial:{name}").remote(fn, kwargs, _trial_log_path(kwargs))
                    in_flight[ref] = (name, kwargs)
                    room -= 1
            counts.running = len(in_flight)
            if bar is not None:
                bar.set_postfix_str(counts.postfix())
            if not in_flight:
                continue
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_s)
            if ready:
                ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
            for ref in ready:
                name, kwargs = in_flight.pop(ref)
                finish(_collect(ray, cancelled_error, ref, name, kwargs, name in cancel_sent))
            counts.running = len(in_flight)
    finally:
        for ref in in_flight:  # only on an exception (e.g. from on_result)
            ray.cancel(ref, force=False)
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
    return {name: outcomes[name] for name, _ in trials}


def _collect(ray, cancelled_error, ref, name: str, kwargs: dict, cancel_sent: bool) -> TrialOutcome:
    log_path = _trial_log_path(kwargs)
    try:
        payload = ray.get(ref)
    except cancelled_error:
        return TrialOutcome(name, CANCELLED, log_path=log_path)
    except Exception as exc:  # a dead worker (crash, OOM kill, force-cancel) or a lost result
        if cancel_sent:
            return TrialOutcome(name, CANCELLED, error_type=type(exc).__name__,
                                error_message=str(exc), log_path=log_path)
        return TrialOutcome(name, FAILED, error_type=type(exc).__name__, error_message=str(exc),
                            traceback=traceback.format_exc(), log_path=log_path)
    if payload["ok"]:
        return TrialOutcome(name, CANCELLED if cancel_sent else FINISHED, result=payload["result"],
                            log_path=log_path, wall_s=payload["wall_s"], node=payload["node"])
    return TrialOutcome(name, FAILED, error_type=payload["error_type"],
                        error_message=payload["error_message"], traceback=payload["traceback"],
                        log_path=log_path, wall_s=payload["wall_s"], node=payload["node"])
