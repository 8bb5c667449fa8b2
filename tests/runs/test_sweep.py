"""run_sweep on the shared local Ray (2 CPUs) and on local processes: trial directories,
sweep.json, the report, a stop and a re-run that completes only the missing trials, a
failing grid point, and resuming a checkpointed trial."""
import json
import signal
import threading
from pathlib import Path

import pytest

from normrl.runs.sweep import (DIVERGED, FAILED, FINISHED, PENDING, SWEEP_FILE, TRIAL_LOG, load_sweep_state,
                               run_sweep, run_trial)
from normrl.runs.sweep_spec import SweepSpec
from normrl.utils.errors import UserError

STEPS = 1024  # one PPO update of the CartPole preset (32 envs x 32 steps)


def _spec(**kw):
    return SweepSpec.from_dict({"algo": "ppo", "env": "CartPole-v1", "steps": STEPS, **kw})


def _summary(logdir: Path, name: str) -> dict:
    return json.loads((logdir / name / "summary.json").read_text())


def test_two_norms_two_seeds_give_four_run_directories_and_a_report(local_ray, tmp_path):
    lines = []
    result = run_sweep(_spec(norm="none,nap", seeds="0-1"), tmp_path, progress=False, echo=lines.append)
    names = ["CartPole-v1/none/seed_0", "CartPole-v1/nap/seed_0", "CartPole-v1/none/seed_1", "CartPole-v1/nap/seed_1"]
    assert list(result.trials) == names and result.exit_status == 0
    state = load_sweep_state(tmp_path)
    assert state["spec"]["norm"] == ["none", "nap"] and state["counts"] == {FINISHED: 4}
    for name in names:
        summary = _summary(tmp_path, name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert summary["finished"] and summary["steps"] == STEPS
        assert config["config"]["norm"] == name.split("/")[1] and config["config"]["seed"] == int(name[-1])
        rec = state["trials"][name]
        assert rec["status"] == FINISHED and rec["score"] == summary["mean_return_last_100"] and rec["wall_s"] > 0
        assert any(line.startswith("finished") and name in line for line in lines)
    report = json.loads((tmp_path / "report.json").read_text())
    (section,) = report["sections"]
    assert section["arms"] == ["none", "nap"]
    for norm in ("none", "nap"):
        cell = section["per_task"][norm]["CartPole-v1"]
        scores = [_summary(tmp_path, f"CartPole-v1/{norm}/seed_{s}")["mean_return_last_100"] for s in (0, 1)]
        assert cell["n"] == 2 and cell["iqm"]["point"] == pytest.approx(sum(scores) / 2)  # IQM of 2 = their mean
    assert (tmp_path / "report.md").read_text().startswith("# Report")
    assert (tmp_path / "report_figures" / "env_CartPole-v1_episode_return.png").is_file()


def test_a_stopped_sweep_reruns_only_the_missing_trials(local_ray, tmp_path):
    spec = _spec(norm="none,nap", seeds="0-1")
    stop = threading.Event()

    def echo(line):
        if line.startswith("finished"):
            stop.set()  # stop as soon as the first trial ends

    first = run_sweep(spec, tmp_path, stop_event=stop, progress=False, echo=echo, report=False)
    assert first.stopped and first.exit_status == 130
    done = {n for n, r in first.trials.items() if r["status"] == FINISHED}
    # 2 trials ran at once; the second one is finished or checkpointed; the seed-1 trials never started
    assert done and first.trials["CartPole-v1/none/seed_1"]["status"] == PENDING
    assert not (tmp_path / "CartPole-v1/nap/seed_1").exists()
    mtimes = {n: (tmp_path / n / "summary.json").stat().st_mtime_ns for n in done}

    lines = []
    second = run_sweep(spec, tmp_path, progress=False, echo=lines.append, report=False)
    assert second.exit_status == 0 and set(second.ran) == set(first.trials) - done
    assert all(r["status"] == FINISHED for r in second.trials.values())
    assert {n: (tmp_path / n / "summary.json").stat().st_mtime_ns for n in done} == mtimes
    assert sorted(line.split()[1] for line in lines if line.startswith("skip")) == sorted(done)
    assert len(load_sweep_state(tmp_path)["invocations"]) == 2
    # a third run has nothing to do
    assert run_sweep(spec, tmp_path, progress=False, echo=lambda _: None, report=False).ran == []


def test_a_failing_grid_point_is_reported_and_the_others_finish(local_ray, tmp_path):
    result = run_sweep(_spec(set={"learning_rate": "-1,0.001"}), tmp_path, progress=False, echo=lambda _: None,
                       report=False)
    bad, good = "CartPole-v1/none_learning_rate=-1.0/seed_0", "CartPole-v1/none_learning_rate=0.001/seed_0"
    assert result.trials[good]["status"] == FINISHED and result.exit_status == 1
    rec = load_sweep_state(tmp_path)["trials"][bad]
    assert rec["status"] == FAILED and rec["error"] == "ValueError: learning_rate must be > 0, got -1.0"
    assert rec["log"] == str(tmp_path / bad / TRIAL_LOG)
    assert "Traceback" in Path(rec["log"]).read_text()


def test_another_spec_in_the_same_logdir_is_refused(local_ray, tmp_path):
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"spec": _spec(norm="none,nap").to_dict(), "trials": {},
                                                   "invocations": []}))
    with pytest.raises(UserError, match="steps: sweep has 1024, now 4096.*--spec"):
        run_sweep(_spec(norm="none,nap", steps=4096), tmp_path, progress=False, report=False)
    with pytest.raises(UserError, match=r"norm: the sweep also has \['nap'\]"):
        run_sweep(_spec(norm="none"), tmp_path, progress=False, report=False)


def test_run_trial_resumes_a_checkpointed_run(tmp_path, monkeypatch):
    """A trial stopped by a signal left a checkpoint: run_trial continues it (resume=True)
    and trains only the remaining steps."""
    from normrl.runs import single
    from normrl.runs.signals import StopSignals

    class StopAfterOneChunk(StopSignals):
        """A SIGINT that arrives during the first training chunk."""
        checks = 0

        @property
        def requested(self):
            StopAfterOneChunk.checks += 1
            if StopAfterOneChunk.checks == 2 and not self.received:
                self.received.append(signal.SIGINT)
            return bool(self.received)

    steps, logdir = 4096, tmp_path / "trial"
    train = {"algo": "ppo", "env_id": "CartPole-v1", "steps": steps, "overrides": {"update_epochs": 2}, "env_kwargs": {}}
    with monkeypatch.context() as patch:
        patch.setattr(single, "StopSignals", StopAfterOneChunk)
        partial = single.train_single("ppo", "CartPole-v1", steps, logdir, overrides={"update_epochs": 2},
                                      progress_every=1024, progress=False)
    assert partial["signal"] == signal.SIGINT and not partial["finished"]
    done_before = partial["steps"]
    out = run_trial(kind="env", logdir=str(logdir), progress=False, train=train)
    assert out["resumed"] is True and out["status"] == "finished" and out["steps"] == steps
    assert json.loads((logdir / "summary.json").read_text())["trained_steps"] == steps - done_before
    # a finished trial is returned as it is
    again = run_trial(kind="env", logdir=str(logdir), progress=False, train=train)
    assert again == {**out, "resumed": False}


def test_the_local_engine_runs_without_ray(tmp_path):
    lines = []
    result = run_sweep(_spec(set={"learning_rate": "-1,0.001"}), tmp_path, engine="local", num_cpus=2,
                       progress=False, echo=lines.append, report=False)
    bad, good = "CartPole-v1/none_learning_rate=-1.0/seed_0", "CartPole-v1/none_learning_rate=0.001/seed_0"
    assert result.trials[good]["status"] == FINISHED and _summary(tmp_path, good)["finished"]
    assert result.trials[bad]["status"] == FAILED
    assert result.trials[bad]["error"] == "ValueError: learning_rate must be > 0, got -1.0"
    assert result.exit_status == 1 and len(lines) == 3 and lines[0].startswith("sweep: 2 of 2 trials to run")
    assert lines[0].endswith(f"normrl sweep --spec {tmp_path / SWEEP_FILE} --logdir {tmp_path} --engine local --num-cpus 2")


def test_engine_options_are_checked(tmp_path):
    with pytest.raises(UserError, match="valid: ray, local"):
        run_sweep(_spec(), tmp_path, engine="dask")
    with pytest.raises(UserError, match="--engine local"):
        run_sweep(_spec(), tmp_path, engine="local", gpus_per_trial=0.5)


def test_finished_and_diverged_trials_are_not_run_again(tmp_path):
    """Trials whose summary.json is final are skipped without starting an engine; a
    diverged one makes the exit status 1."""
    spec = _spec(norm="none,nap")
    (tmp_path / "CartPole-v1/none/seed_0").mkdir(parents=True)
    (tmp_path / "CartPole-v1/none/seed_0/summary.json").write_text(json.dumps({"finished": True}))
    (tmp_path / "CartPole-v1/nap/seed_0").mkdir(parents=True)
    (tmp_path / "CartPole-v1/nap/seed_0/summary.json").write_text(json.dumps({"finished": False, "status": "diverged"}))
    lines = []
    result = run_sweep(spec, tmp_path, engine="local", progress=False, echo=lines.append, report=False)
    assert result.ran == [] and result.exit_status == 1
    assert {n: r["status"] for n, r in result.trials.items()} == {"CartPole-v1/none/seed_0": FINISHED,
                                                                   "CartPole-v1/nap/seed_0": "diverged"}
    assert lines == ["skip      CartPole-v1/none/seed_0  (finished already)",
                     "skip      CartPole-v1/nap/seed_0  (diverged already)"]


def test_a_diverging_trial_is_reported_as_diverged_not_failed(tmp_path):
    """learning_rate 1e30 diverges in the first PPO rollout (the guard stops it), -1 is
    refused by the config (a crash of the trial): sweep.json, the printed lines and the
    report keep the two apart."""
    lines = []
    result = run_sweep(_spec(set={"learning_rate": "-1,1e30,0.001"}), tmp_path, engine="local", num_cpus=2,
                       progress=False, echo=lines.append)
    bad = "CartPole-v1/none_learning_rate=-1.0/seed_0"
    huge = "CartPole-v1/none_learning_rate=1e+30/seed_0"
    good = "CartPole-v1/none_learning_rate=0.001/seed_0"
    assert set(result.trials) == {bad, huge, good}
    state = load_sweep_state(tmp_path)
    assert state["counts"] == {FAILED: 1, DIVERGED: 1, FINISHED: 1}
    rec = state["trials"][huge]
    summary = _summary(tmp_path, huge)
    assert rec["status"] == DIVERGED and rec["error"] is None and summary["status"] == "diverged"
    assert rec["divergence"] == summary["divergence"] and rec["divergence"]["env_step"] == STEPS
    assert rec["divergence"]["cause"] == "loss or gradient norm" and rec["divergence"]["last_checkpoint"] is None
    assert state["trials"][bad]["status"] == FAILED and result.exit_status == 1
    (line,) = [l for l in lines if huge in l]
    assert line.startswith("diverged  ") and f"(non-finite loss or gradient norm at env step {STEPS}, update" in line
    report = json.loads((tmp_path / "report.json").read_text())
    (section,) = report["sections"]
    assert list(section["diverged"].values()) == [[huge]]  # {arm label: runs}
    statuses = {r["run"]: r["status"] for r in report["runs"]}
    assert statuses[huge] == "diverged" and statuses[good] == "finished"
    assert bad not in statuses or statuses[bad] not in ("finished", "diverged")
    text = (tmp_path / "report.md").read_text()
    assert "diverged" in text.lower() and huge in text
