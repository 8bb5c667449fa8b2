"""run_trials on a local Ray with 2 CPUs: results come back, a raising trial is reported
while the others finish, and a stop interrupts running trials (they receive
KeyboardInterrupt or their own SIGINT handler runs, and have time to checkpoint)."""
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (the normrl[ray] extra)")

from normrl.runs.ray_engine import CANCELLED, FAILED, FINISHED, TRIAL_LOG_NAME, run_trials  # noqa: E402

# pytest imports this file as a top-level module the Ray workers cannot import: send the
# trial functions by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square(x, logdir=None):
    print(f"squaring {x}")
    return {"x": x, "square": x * x, "pid": os.getpid()}


def explode(x, logdir=None):
    print("about to fail")
    raise ValueError(f"bad seed {x}")


def die(code, attempts):
    with open(attempts, "a") as f:
        f.write("x")
    os._exit(code)  # the worker process dies without a Python exception


def sleep_then_checkpoint(workdir, seconds=60.0):
    """Sleeps in small steps; on KeyboardInterrupt takes 0.5 s to 'checkpoint', writes
    the marker, and re-raises."""
    workdir = Path(workdir)
    (workdir / "started").write_text("1")
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
    except KeyboardInterrupt:
        time.sleep(0.5)
        (workdir / "interrupted").write_text("KeyboardInterrupt")
        raise
    return {"slept": seconds}


def sleep_with_own_handler(workdir, seconds=60.0):
    """Installs its own SIGINT handler (as normrl's training loops do) and returns a
    partial summary when it fires."""
    workdir = Path(workdir)
    fired = []
    signal.signal(signal.SIGINT, lambda signum, frame: fired.append(signum))
    (workdir / "started").write_text("1")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not fired:
        time.sleep(0.02)
    (workdir / "interrupted").write_text("handler")
    return {"interrupted": bool(fired)}


def _run(name, **kwargs):
    return {"square": square, "explode": explode, "die": die, "sleep": sleep_then_checkpoint,
            "handler": sleep_with_own_handler}[name](**kwargs)


def test_four_trials_finish_with_their_results(local_ray):
    seen = []
    trials = [(f"t{i}", {"name": "square", "x": i}) for i in range(4)]
    out = run_trials(trials, _run, on_result=seen.append, progress=False)
    assert list(out) == ["t0", "t1", "t2", "t3"]
    for i in range(4):
        assert out[f"t{i}"].status == FINISHED
        assert out[f"t{i}"].result["square"] == i * i
        assert out[f"t{i}"].result["pid"] != os.getpid()  # ran in a Ray worker
        assert out[f"t{i}"].wall_s >= 0 and out[f"t{i}"].error_type is None
    assert sorted(o.name for o in seen) == ["t0", "t1", "t2", "t3"]


def test_a_raising_trial_is_reported_and_the_others_finish(local_ray, tmp_path):
    trials = [("ok0", {"name": "square", "x": 2, "logdir": str(tmp_path / "ok0")}),
              ("bad", {"name": "explode", "x": 3, "logdir": str(tmp_path / "bad")}),
              ("ok1", {"name": "square", "x": 5, "logdir": str(tmp_path / "ok1")})]
    out = run_trials(trials, _run, progress=False)
    assert [out[n].status for n in ("ok0", "bad", "ok1")] == [FINISHED, FAILED, FINISHED]
    assert out["ok1"].result["square"] == 25
    bad = out["bad"]
    assert bad.error_type == "ValueError" and bad.error_message == "bad seed 3"
    assert "in explode" in bad.traceback and bad.result is None
    assert bad.log_path == str(tmp_path / "bad" / TRIAL_LOG_NAME)
    log = Path(bad.log_path).read_text()
    assert "about to fail" in log and "ValueError: bad seed 3" in log
    assert "squaring 2" in (tmp_path / "ok0" / TRIAL_LOG_NAME).read_text()


def test_a_dead_worker_is_reported_and_not_retried(local_ray, tmp_path):
    attempts = tmp_path / "attempts"
    trials = [("dead", {"name": "die", "code": 3, "attempts": str(attempts)}), ("ok", {"name": "square", "x": 4})]
    out = run_trials(trials, _run, progress=False)
    assert out["ok"].status == FINISHED and out["ok"].result["square"] == 16
    assert out["dead"].status == FAILED and out["dead"].result is None
    assert out["dead"].error_type == "WorkerCrashedError", out["dead"].error_message
    assert attempts.read_text() == "x"  # Ray's default would retry it 3 times


def _stop_when_started(workdirs, stop, timeout=60.0):
    def wait_then_stop():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all((w / "started").exists() for w in workdirs):
            time.sleep(0.05)
        stop()

    thread = threading.Thread(target=wait_then_stop, daemon=True)
    thread.start()
    return thread


def _sleeper_trials(tmp_path):
    dirs = {n: tmp_path / n for n in ("kbi", "handler", "queued")}
    for d in dirs.values():
        d.mkdir()
    trials = [("kbi", {"name": "sleep", "workdir": str(dirs["kbi"])}),
              ("handler", {"name": "handler", "workdir": str(dirs["handler"])}),
              ("queued", {"name": "sleep", "workdir": str(dirs["queued"])})]
    return trials, dirs


def _assert_interrupted_not_killed(out, dirs):
    assert {n: o.status for n, o in out.items()} == {"kbi": CANCELLED, "handler": CANCELLED,
                                                     "queued": CANCELLED}
    # the KeyboardInterrupt trial finished its 0.5 s "checkpoint" before it ended
    assert (dirs["kbi"] / "interrupted").read_text() == "KeyboardInterrupt"
    # the trial with its own handler returned its partial summary
    assert out["handler"].result == {"interrupted": True}
    assert (dirs["handler"] / "interrupted").read_text() == "handler"
    # 2 CPUs: the third trial was never started
    assert not (dirs["queued"] / "started").exists() and out["queued"].result is None


def test_stop_event_interrupts_running_trials_and_skips_queued_ones(local_ray, tmp_path):
    trials, dirs = _sleeper_trials(tmp_path)
    stop = threading.Event()
    thread = _stop_when_started([dirs["kbi"], dirs["handler"]], stop.set)
    out = run_trials(trials, _run, stop_event=stop, progress=False)
    thread.join()
    _assert_interrupted_not_killed(out, dirs)


def test_sigint_in_the_driver_cancels_gracefully(local_ray, tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    trials, dirs = _sleeper_trials(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    thread = _stop_when_started([dirs["kbi"], dirs["handler"]],
                                lambda: os.kill(os.getpid(), signal.SIGINT))
    out = run_trials(trials, _run, progress=False)
    thread.join()
    _assert_interrupted_not_killed(out, dirs)
    assert signal.getsignal(signal.SIGINT) is before  # the engine restored the handler


def test_a_stop_before_the_start_runs_nothing(local_ray, tmp_path):
    stop = threading.Event()
    stop.set()
    out = run_trials([("a", {"name": "square", "x": 1})], _run, stop_event=stop, progress=False)
    assert out["a"].status == CANCELLED and out["a"].result is None


@pytest.mark.parametrize("kwargs, match", [
    ({"gpus_per_trial": 1.5}, "whole number"),
    ({"cpus_per_trial": 0}, "cpus_per_trial"),
    ({"address": "auto", "num_cpus": 2}, "num_cpus"),
])
def test_bad_resources_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_trials([("a", {"x": 1})], _run, **kwargs)


def test_duplicate_trial_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        run_trials([("a", {"x": 1}), ("a", {"x": 2})], _run)


def _interrupt_main_then_wait(marker):
    import _thread

    try:
        _thread.interrupt_main()  # what ray.cancel(force=False) calls in the worker
        for _ in range(500):
            time.sleep(0.01)
    except KeyboardInterrupt:
        Path(marker).write_text("interrupted")
        raise
    return "not interrupted"


def test_a_worker_that_ignores_sigint_still_gets_the_interrupt(tmp_path):
    """Workers of a Ray started from a background job inherit an ignored SIGINT, which
    makes ``_thread.interrupt_main`` (ray.cancel) a no-op; the trial wrapper restores
    Python's handler for the trial and puts the ignored one back afterwards."""
    from normrl.runs.ray_engine import _execute_trial

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            _execute_trial(_interrupt_main_then_wait, {"marker": str(tmp_path / "m")}, None)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "m").read_text() == "interrupted"
