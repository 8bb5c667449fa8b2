"""``run_sweep``: run every trial of a :class:`~normrl.runs.sweep_spec.SweepSpec` as an
ordinary run directory, on Ray (local or a cluster) or on local processes, resumably.

Each trial is ``LOGDIR/<trial name>/`` (see :mod:`normrl.runs.sweep_spec` for names),
written by :func:`normrl.runs.train_single` (``env`` sweeps) or
:func:`normrl.runs.train_stream` (``stream`` sweeps) -- the code path of ``normrl
train`` / ``normrl continual`` -- plus ``trial.log`` (the trial's output and, on failure,
its traceback).

Engines:

* ``"ray"`` (default; the ``normrl[ray]`` extra): :func:`normrl.runs.ray_engine.run_trials`
  on an embedded local Ray (``num_cpus`` CPUs, default all of the machine's), or on an
  existing cluster with ``address="auto"`` / ``"HOST:PORT"``. Each trial reserves
  ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs (fractions allowed) and runs with
  ``max(1, int(cpus_per_trial))`` torch threads. On a cluster, LOGDIR must be a path every
  node can write and the driver can read (a shared filesystem), because the trials write
  their run directories there and the driver reads them back to skip finished trials.
* ``"local"``: :func:`normrl.runs.local_jobs.run_local_jobs` -- one spawned process per
  trial on this machine, ``num_cpus // cpus_per_trial`` at a time, no Ray needed. No
  GPU sharing and no cluster.

Reliability: a trial whose ``summary.json`` says it finished (or diverged) is skipped;
one with a checkpoint is resumed with ``resume=True`` (the trainers check that it is the
same run); an interrupted start without a checkpoint starts over (its files except
``trial.log`` are removed). A trial that raises is reported with its error and log path
and the others go on. A trial stopped by the agents' divergence guard is ``diverged``,
not ``failed``: its trainer writes ``summary.json`` (``status: "diverged"`` and the
facts: env step, update, cause, first non-finite parameter) before raising
:class:`~normrl.utils.errors.TrainingDiverged`, and :func:`run_trial` returns that
summary as the trial's result. The first SIGINT/SIGTERM starts no more trials and interrupts the
running ones, whose training loops save a checkpoint and return; a re-run continues them.

``LOGDIR/sweep.json`` holds the spec and every trial's status (``finished``, ``failed``
with its error, ``diverged`` with its ``divergence`` facts, ``cancelled`` (stopped with
a checkpoint), ``pending`` (not run yet)), wall time, score and log path; it is rewritten as each trial ends. A
re-run in the same LOGDIR must be the same sweep or one that only adds trials (more
norms, interventions, seeds or ``set`` values; same ``set`` keys and every other field
equal); anything else is refused, because trials with the same name but other settings
would be skipped as finished or fail their resume checks.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from normrl.analysis.run_dirs import summary_score, summary_status
from normrl.runs.status import DIVERGED as RUN_DIVERGED
from normrl.runs.status import DONE, RESUME, run_status
from normrl.runs.sweep_spec import SweepSpec, Trial
from normrl.utils.errors import TrainingDiverged, UserError

SWEEP_FILE = "sweep.json"
TRIAL_LOG = "trial.log"  # the name ray_engine.TRIAL_LOG_NAME uses too
_LOCAL_RESULT = "trial_result.json"  # the local engine's way back from a worker process
ENGINES = ("ray", "local")
FINISHED, FAILED, DIVERGED, CANCELLED, PENDING = "finished", "failed", "diverged", "cancelled", "pending"
#: Trial states that a re-run does not run again.
FINAL = (FINISHED, DIVERGED)


# -- the trial function (runs in the worker) ----------------------------------------------------------------------
def _trial_steps(summary: dict) -> int | None:
    if "steps" in summary:
        return summary["steps"]
    return (summary.get("agent") or {}).get("steps")


def _clear_interrupted_start(logdir: Path) -> None:
    """Remove what a start without a checkpoint left (config.json, TensorBoard events),
    keeping ``trial.log``, so that the new start has one set of event files."""
    if not logdir.is_dir():
        return
    for child in logdir.iterdir():
        if child.name == TRIAL_LOG:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_trial(*, kind: str, logdir: str, train: dict, threads: int = 1, device: str = "cpu",
              progress: bool = True) -> dict[str, Any]:
    """Run one sweep trial in ``logdir`` and return its result (``status``, ``score``,
    ``steps``, ``signal``, ``resumed``): ``train_single(**train)`` for ``kind="env"``,
    ``train_stream(**train)`` for ``kind="stream"``, resumed when ``logdir`` holds a
    checkpoint, returned as is when it already finished or diverged."""
    import torch

    torch.set_num_threads(threads)
    path = Path(logdir)
    state = run_status(path)
    resumed = state == RESUME
    summary = None
    if (path / "summary.json").is_file():
        saved = json.loads((path / "summary.json").read_text())
        if state == DONE or summary_status(saved) == "diverged":  # final: return it as it is
            summary, resumed = saved, False
    if summary is None:
        if not resumed:
            _clear_interrupted_start(path)
        if kind == "env":
            from normrl.runs.single import train_single as trainer
        elif kind == "stream":
            from normrl.runs.stream import train_stream as trainer
        else:
            raise ValueError(f"unknown trial kind {kind!r}; valid: env, stream")
        try:
            summary = trainer(logdir=path, resume=resumed, device=device, progress=progress, **train)
        except TrainingDiverged:
            # the trainer wrote summary.json (status "diverged", the facts) before raising:
            # a diverged trial is a result of the grid, not a crash
            summary = json.loads((path / "summary.json").read_text())
    return {"status": summary_status(summary), "score": summary_score(summary), "steps": _trial_steps(summary),
            "signal": summary.get("signal"), "resumed": resumed, "divergence": summary.get("divergence")}


def _local_trial(trial_fn: Callable[..., dict], **kwargs) -> None:
    """The local engine's job: ``trial_fn(**kwargs)`` (:func:`run_trial`), with its result
    or error written to ``<logdir>/trial_result.json`` for the driver (a process exit
    status carries no data)."""
    from normrl.utils.run_dir import write_json

    target = Path(kwargs["logdir"]) / _LOCAL_RESULT
    try:
        result = trial_fn(**kwargs)
    except BaseException as exc:
        write_json(target, {"ok": False, "error_type": type(exc).__name__, "error_message": str(exc)})
        raise
    write_json(target, {"ok": True, "result": result})


# -- sweep.json -----------------------------------------------------------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def load_sweep_state(logdir: str | Path) -> dict | None:
    """The parsed ``LOGDIR/sweep.json``, or None when there is none."""
    path = Path(logdir) / SWEEP_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); move it away to start the sweep's bookkeeping afresh") from None


def _open_state(logdir: Path, spec: SweepSpec) -> dict:
    """sweep.json's content for this run: the old one (if this spec only adds trials to
    it) with the new spec, else a new one."""
    state = load_sweep_state(logdir)
    if state is None:
        return {"version": 1, "spec": spec.to_dict(), "trials": {}, "invocations": []}
    try:
        old = SweepSpec.from_dict(state["spec"])
    except (KeyError, TypeError, UserError) as exc:
        raise UserError(f"{logdir / SWEEP_FILE} has no readable spec ({exc}); choose another --logdir") from None
    problems = spec.added_trials_only(old)
    if problems:
        raise UserError(
            f"{logdir} holds another sweep: " + "; ".join(problems) + ". A re-run in the same --logdir may only add "
            f"trials (more norms, interventions, seeds or --set values). Continue the saved sweep with "
            f"`normrl sweep --spec {logdir / SWEEP_FILE} --logdir {logdir}`, or choose another --logdir")
    state["spec"] = spec.to_dict()
    return state


def _existing_final(logdir: Path) -> str | None:
    """``finished`` / ``diverged`` when the run directory's summary says so, else None."""
    return {DONE: FINISHED, RUN_DIVERGED: DIVERGED}.get(run_status(logdir))


# -- the sweep ------------------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        logdir: the sweep's directory.
        trials: trial name -> its record in ``sweep.json`` (``status``, ``wall_s``,
            ``score``, ``error``, ``log``, ...).
        ran: names of the trials run by this call (the others were already final).
        stopped: whether a SIGINT/SIGTERM or ``stop_event`` stopped the sweep.
        report: the path of ``report.md`` when one was written.
    """

    logdir: Path
    trials: dict[str, dict]
    ran: list[str] = field(default_factory=list)
    stopped: bool = False
    report: Path | None = None

    def names(self, status: str) -> list[str]:
        """The trials with ``status``."""
        return [n for n, r in self.trials.items() if r["status"] == status]

    @property
    def exit_status(self) -> int:
        """130 when stopped, 1 when a trial failed or diverged, else 0."""
        if self.stopped:
            return 130
        return 1 if self.names(FAILED) or self.names(DIVERGED) else 0


def resume_command(logdir: str | Path, *, engine: str = "ray", address: str | None = None,
                   num_cpus: int | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
                   device: str | None = None) -> str:
    """The command line that continues the sweep in ``logdir`` from its ``sweep.json``."""
    logdir = Path(logdir)
    argv = ["normrl", "sweep", "--spec", str(logdir / SWEEP_FILE), "--logdir", str(logdir)]
    if engine != "ray":
        argv += ["--engine", engine]
    if address is not None:
        argv += ["--address", address]
    if num_cpus is not None:
        argv += ["--num-cpus", str(num_cpus)]
    if cpus_per_trial != 1:
        argv += ["--cpus-per-trial", f"{cpus_per_trial:g}"]
    if gpus_per_trial:
        argv += ["--gpus-per-trial", f"{gpus_per_trial:g}"]
    if device is not None:
        argv += ["--device", device]
    return shlex.join(argv)


def _line(name: str, record: dict) -> str:
    status = record["status"]
    text = f"{status:<9} {name}"
    if status == FAILED:
        text += f"  {record.get('error')}  (log: {record.get('log')})"
        return text
    if record.get("score") is not None:
        text += f"  score {record['score']:.2f}"
    if record.get("steps") is not None:
        text += f"  steps {record['steps']}"
    if record.get("wall_s") is not None:
        text += f"  {record['wall_s']:.1f}s"
    if status == CANCELLED:
        text += "  (checkpointed; a re-run continues it)"
    facts = record.get("divergence")
    if status == DIVERGED and facts:
        text += f"  (non-finite {facts.get('cause')} at env step {facts.get('env_step')}, update {facts.get('update')})"
    return text


def run_sweep(spec: SweepSpec, logdir: str | Path, *, engine: str = "ray", address: str | None = None,
              num_cpus: int | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
              device: str | None = None, stop_event: threading.Event | None = None, progress: bool = True,
              report: bool = True, echo: Callable[[str], Any] | None = None,
              trial_fn: Callable[..., dict] | None = None) -> SweepResult:
    """Run the trials of ``spec`` under ``logdir`` that are not finished yet; return a
    :class:`SweepResult` (its ``exit_status`` is the CLI's).

    Args:
        engine: ``"ray"`` or ``"local"`` (see the module docstring).
        address: Ray cluster to join (``"auto"``, ``"HOST:PORT"``); None starts a local Ray.
        num_cpus: CPUs of the local Ray or of the local engine [all of the machine's].
        cpus_per_trial, gpus_per_trial: resources each trial reserves [1, 0].
        device: torch device of every trial [``"cuda"`` with ``gpus_per_trial > 0``, else
            ``"cpu"``].
        stop_event: setting it stops the sweep like SIGINT.
        progress: show the trials' progress bar.
        report: write ``LOGDIR/report.md`` (:func:`normrl.analysis.report.write_report`)
            at the end when any trial has a summary.
        echo: receives one line per skipped and per ended trial [``tqdm.write`` with the
            progress bar, else ``print``].
        trial_fn: what each trial runs [:func:`run_trial`]; a stand-in must take the
            same keywords and return the same keys (benchmarks of the engine's overhead
            use a function that returns at once). It must be importable by the workers.
    """
    if engine not in ENGINES:
        raise UserError(f"unknown --engine {engine!r}; valid: {', '.join(ENGINES)}")
    if engine == "local" and (address is not None or gpus_per_trial):
        raise UserError("--engine local runs on this machine's CPUs: --address and --gpus-per-trial need --engine ray")
    if not cpus_per_trial > 0 or gpus_per_trial < 0:
        raise UserError(f"--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got {cpus_per_trial}, {gpus_per_trial}")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise UserError(f"--num-cpus must be an integer >= 1, got {num_cpus!r}")
    if device is not None:
        import torch

        try:  # the syntax only: the trials may run on other machines than this one
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise UserError(f"bad --device {device!r}: {exc}") from None
    if echo is None:
        if progress:
            from tqdm.auto import tqdm

            echo = tqdm.write
        else:
            echo = print
    logdir = Path(logdir)
    default_device = "cuda" if gpus_per_trial > 0 else "cpu"
    device = device or default_device
    trials = spec.trials()
    state = _open_state(logdir, spec)
    records: dict[str, dict] = state["trials"]
    todo: list[Trial] = []
    for trial in trials:
        final = _existing_final(logdir / trial.name)
        record = records.setdefault(trial.name, {"status": PENDING, "log": str(logdir / trial.name / TRIAL_LOG)})
        if final is not None:
            if record["status"] != final:
                record.update(status=final, error=None)
            echo(f"skip      {trial.name}  ({final} already)")
        else:
            record.update(status=PENDING, error=None)
            todo.append(trial)
    # records of trials this spec no longer has cannot exist (the spec only adds trials)
    state["trials"] = {t.name: records[t.name] for t in trials}
    records = state["trials"]
    invocation = {"started": _now(), "engine": engine, "address": address, "cpus_per_trial": cpus_per_trial,
                  "gpus_per_trial": gpus_per_trial, "device": device, "trials_to_run": len(todo)}
    state["invocations"].append(invocation)
    state["resume_command"] = resume_command(logdir, engine=engine, address=address, num_cpus=num_cpus,
                                             cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                             device=None if device == default_device else device)
    _write_state(logdir, state)
    if todo:
        echo(f"sweep: {len(todo)} of {len(trials)} trials to run in {logdir}; to continue it later: "
             f"{state['resume_command']}")

    trial_fn = trial_fn or run_trial
    threads = max(1, int(cpus_per_trial))
    jobs = [(t.name, {**t.kwargs, "logdir": str(logdir / t.name), "threads": threads, "device": device,
                      "progress": True}) for t in todo]
    lock = threading.Lock()

    def record_outcome(name: str, status: str, result: dict | None, wall_s, error: str | None, node=None) -> None:
        with lock:
            rec = records[name]
            rec.update(status=status, wall_s=wall_s, error=error, ended=_now(), node=node)
            if result is not None:
                rec.update(score=result.get("score"), steps=result.get("steps"), resumed=result.get("resumed"))
                if result.get("divergence"):
                    rec["divergence"] = result["divergence"]
            _write_state(logdir, state)
            if status != PENDING:
                echo(_line(name, rec))

    stopped = False
    if jobs:
        if engine == "ray":
            stopped = _run_on_ray(jobs, trial_fn, record_outcome, address=address, num_cpus=num_cpus,
                                  cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                  stop_event=stop_event, progress=progress)
        else:
            stopped = _run_locally(jobs, trial_fn, record_outcome, num_cpus=num_cpus, cpus_per_trial=cpus_per_trial,
                                   threads=threads, stop_event=stop_event, progress=progress)
    invocation["ended"] = _now()
    invocation["stopped"] = stopped
    _write_state(logdir, state)
    result = SweepResult(logdir, records, ran=[t.name for t in todo], stopped=stopped)
    if report and any((logdir / t.name / "summary.json").is_file() for t in trials):
        from normrl.analysis.report import write_report

        try:
            result.report = write_report(logdir)["path"]
        except (UserError, ValueError, OSError) as exc:  # the sweep's outcome stands; the report can be rerun
            echo(f"report: not written ({exc}); run `normrl report {logdir}` after fixing it")
    return result


def _write_state(logdir: Path, state: dict) -> None:
    from normrl.utils.run_dir import write_json

    counts: dict[str, int] = {}
    for rec in state["trials"].values():
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    state["counts"] = counts
    state["updated"] = _now()
    write_json(logdir / SWEEP_FILE, state)


def _run_on_ray(jobs, trial_fn, record_outcome, *, address, num_cpus, cpus_per_trial, gpus_per_trial, stop_event,
                progress) -> bool:
    import importlib.util

    from normrl.runs import ray_engine

    if importlib.util.find_spec("ray") is None:
        raise UserError('the Ray engine needs Ray: pip install "normrl[ray]"; or run without Ray: --engine local')
    def on_result(outcome) -> None:
        if outcome.status == ray_engine.FAILED:
            record_outcome(outcome.name, FAILED, None, outcome.wall_s,
                           f"{outcome.error_type}: {outcome.error_message}", outcome.node)
        elif outcome.result is None:
            # cancelled before it started, or killed before it could return
            status = PENDING if outcome.wall_s is None and outcome.error_type is None else CANCELLED
            record_outcome(outcome.name, status, None, outcome.wall_s, None, outcome.node)
        else:
            status = {"finished": FINISHED, "diverged": DIVERGED}.get(outcome.result["status"], CANCELLED)
            record_outcome(outcome.name, status, outcome.result, outcome.wall_s, None, outcome.node)

    try:
        outcomes = ray_engine.run_trials(jobs, trial_fn, address=address, num_cpus=num_cpus,
                                         cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                         on_result=on_result, stop_event=stop_event, progress=progress)
    except ConnectionError as exc:
        if address is None and not os.environ.get("RAY_ADDRESS"):
            raise
        # Ray >= 2.59 turns token authentication on for clusters it considers local; a
        # driver that does not use the same mode and token is refused
        raise UserError(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {exc}. Check "
                        "`ray status` there; if the cluster uses token authentication, run the sweep with "
                        "RAY_AUTH_MODE=token and the cluster's token (docs/sweeps.md)") from None
    return any(o.status == ray_engine.CANCELLED for o in outcomes.values())


def _run_locally(jobs, trial_fn, record_outcome, *, num_cpus, cpus_per_trial, threads, stop_event, progress) -> bool:
    from normrl.runs.local_jobs import Job, run_local_jobs

    cpus = num_cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    parallel = max(1, math.floor(cpus / cpus_per_trial + 1e-9))
    stop = stop_event if stop_event is not None else threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="trial", desc="trials", dynamic_ncols=True)
    counts = {"done": 0, "failed": 0}
    ended: set[str] = set()

    def on_end(job, exitcode: int, wall_s: float) -> None:
        ended.add(job.name)
        try:
            payload = json.loads((Path(job.kwargs["logdir"]) / _LOCAL_RESULT).read_text())
        except (OSError, ValueError):
            payload = None
        if payload is not None and payload["ok"]:
            result = payload["result"]
            status = {"finished": FINISHED, "diverged": DIVERGED}.get(result["status"], CANCELLED)
            record_outcome(job.name, status, result, wall_s, None)
        elif stop.is_set():
            status = CANCELLED  # interrupted before its training loop could catch the signal
            record_outcome(job.name, status, None, wall_s, None)
        else:
            status = FAILED
            error = (f"{payload['error_type']}: {payload['error_message']}" if payload is not None
                     else f"worker process exited with status {exitcode}")
            record_outcome(job.name, status, None, wall_s, error)
        if status in (FINISHED, DIVERGED, FAILED):
            counts["failed" if status == FAILED else "done"] += 1
        if bar is not None:
            bar.update(1)
            running = 0 if stop.is_set() else min(parallel, len(jobs) - len(ended))
            bar.set_postfix_str(f"done {counts['done']} failed {counts['failed']} running {running}")

    local_jobs = []
    for name, kwargs in jobs:
        (Path(kwargs["logdir"]) / _LOCAL_RESULT).unlink(missing_ok=True)
        local_jobs.append(Job(name, _local_trial, {"trial_fn": trial_fn, **kwargs}, Path(kwargs["logdir"]) / TRIAL_LOG))
    try:
        run_local_jobs(local_jobs, parallel, threads_per_job=threads, echo=lambda line: None, stop_event=stop,
                       on_end=on_end)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
    for name, _ in jobs:
        if name not in ended:
            record_outcome(name, PENDING, None, None, None)
    return stop.is_set()
