"""Run library calls in parallel worker processes on this machine, each logging to a file.

The local engine behind the sequential comparison and the plasticity suite (``--jobs``):
every job is a top-level function and its keyword arguments, executed in a fresh
``spawn``-ed process with its stdout/stderr redirected to the job's log file and a fixed
number of torch threads (one by default, so ``jobs`` processes share the cores without
oversubscribing them). A job that raises is logged with its traceback and reported by
its exit status; the others go on. (Sweeps across machines use Ray instead:
:mod:`normrl.runs.sweep`.)
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class Job:
    """One unit of work: ``fn(**kwargs)`` with its output in ``log``."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None


def _child(fn, kwargs: dict, log: str | None, threads: int) -> None:
    if log is not None:
        handle = open(log, "a", buffering=1)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        sys.stdout = sys.stderr = handle
    import torch

    torch.set_num_threads(threads)
    try:
        fn(**kwargs)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        raise SystemExit(1)
    sys.stdout.flush()


def run_local_jobs(jobs: list[Job], max_parallel: int = 2, *, threads_per_job: int = 1,
                   echo: Callable[[str], Any] = print, stop_event: threading.Event | None = None,
                   on_end: Callable[[Job, int, float], Any] | None = None) -> dict[str, int]:
    """Run ``jobs``, at most ``max_parallel`` at a time; return ``{name: exit status}``
    (0 finished, 1 raised, another value: killed or exited with it). ``echo`` receives
    one line per job start and end; ``on_end(job, exit status, seconds)`` is called as
    each job ends. Setting ``stop_event`` starts no more jobs (they are left out of the
    result) and sends SIGINT to the running ones once (normrl's training loops then
    checkpoint and return); the call returns when they have exited."""
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValueError(f"max_parallel must be a positive int, got {max_parallel!r}")
    ctx = multiprocessing.get_context("spawn")
    pending, running, status = list(jobs), [], {}
    interrupted = False
    while pending or running:
        if stop_event is not None and stop_event.is_set():
            pending.clear()
            if not interrupted:
                interrupted = True
                for _, proc, _ in running:
                    if proc.exitcode is None:
                        os.kill(proc.pid, signal.SIGINT)
        while pending and len(running) < max_parallel:
            job = pending.pop(0)
            if job.log is not None:
                job.log.parent.mkdir(parents=True, exist_ok=True)
            proc = ctx.Process(target=_child, args=(job.fn, job.kwargs, None if job.log is None else str(job.log),
                                                    threads_per_job), name=job.name)
            proc.start()
            echo(f"start {job.name}")
            running.append((job, proc, time.time()))
        time.sleep(0.2)
        for item in list(running):
            job, proc, t0 = item
            if proc.exitcode is not None:
                running.remove(item)
                status[job.name] = proc.exitcode
                echo(f"end {job.name}: exit {proc.exitcode} after {time.time() - t0:.0f}s")
                if on_end is not None:
                    on_end(job, proc.exitcode, time.time() - t0)
    return status


def report_failed(status: dict[str, int]) -> int:
    """Exit status of a command that ran ``status`` (:func:`run_local_jobs`' result): 0 when
    every job finished, else 1 after one stderr line naming the failed jobs' exit statuses."""
    failed = {k: v for k, v in status.items() if v != 0}
    if not failed:
        return 0
    print(f"failed runs (exit status): {failed}; see worker.log in their run directories", file=sys.stderr)
    return 1
