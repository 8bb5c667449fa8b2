"""normrl sweep / normrl report: flags into a SweepSpec, one-line errors, the exit status
and the listing of failed trials, and the report command on hand-written runs."""
import json
from pathlib import Path

import pytest

from normrl.cli import main
from normrl.runs import sweep as sweep_module
from normrl.runs.sweep import SweepResult


@pytest.mark.parametrize("argv, message", [
    (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--set", "lr=1"], "ppo has no config field 'lr'"),
    (["--algo", "ppo", "--stream", "minatar", "--steps", "10"], "--stream sweeps take --steps-per-task"),
    (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--seeds", "3-1"], "seed range '3-1' is empty"),
    (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--spec", "x.toml"], "--spec and grid flags exclude"),
    (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--set", "num_envs=4", "--set", "num_envs=8"],
     "--set num_envs given twice"),
])
def test_bad_sweeps_are_one_line_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *argv, "--logdir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("normrl sweep: error: ") and err.count("\n") == 1 and message in err


def test_flags_become_the_spec_and_failures_set_the_exit_status(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_run_sweep(spec, logdir, **kwargs):
        seen.update(spec=spec, logdir=logdir, **kwargs)
        (Path(logdir) / "sweep.json").write_text(json.dumps({"resume_command": "normrl sweep --spec S --logdir L"}))
        trials = {t.name: {"status": "finished"} for t in spec.trials()}
        trials["CartPole-v1/nap_learning_rate=0.0003/seed_1"] = {"status": "failed", "error": "ValueError: boom",
                                                                 "log": "L/trial.log"}
        return SweepResult(Path(logdir), trials)

    monkeypatch.setattr(sweep_module, "run_sweep", fake_run_sweep)
    code = main(["sweep", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "20000", "--norm", "none,nap",
                 "--seeds", "0-1", "--set", "learning_rate=1e-4,3e-4", "--env-kwarg", "max_episode_steps=200",
                 "--logdir", str(tmp_path), "--cpus-per-trial", "0.5", "--address", "auto"])
    assert code == 1
    spec = seen["spec"]
    assert (spec.norms, spec.seeds, spec.grid) == (("none", "nap"), (0, 1), {"learning_rate": (1e-4, 3e-4)})
    assert spec.env_kwargs == {"max_episode_steps": 200} and len(spec.trials()) == 8
    assert seen["address"] == "auto" and seen["cpus_per_trial"] == 0.5 and seen["engine"] == "ray"
    out = capsys.readouterr().out
    assert "7/8 trials finished" in out
    assert "failed: CartPole-v1/nap_learning_rate=0.0003/seed_1: ValueError: boom (log: L/trial.log)" in out
    assert "resume with: normrl sweep --spec S --logdir L" in out


def test_report_command_prints_the_tables(tmp_path, capsys):
    for norm, scores in (("none", (1.0, 3.0)), ("nap", (5.0, 7.0))):
        for seed, score in enumerate(scores):
            d = tmp_path / norm / f"seed_{seed}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({"config": {"seed": seed, "norm": norm}, "run": {
                "env_id": "CartPole-v1", "algo": "ppo", "norm": norm, "seed": seed, "steps": 100}}))
            (d / "summary.json").write_text(json.dumps({"mean_return_last_100": score, "finished": True}))
    assert main(["report", str(tmp_path), "--reps", "2000", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "| CartPole-v1 | 2.00 [1.00, 3.00] (2) | 6.00 [5.00, 7.00] (2) |" in out
    assert "| nap | 2 | 6.00 [5.00, 7.00] | 6.00 [5.00, 7.00] | 1.00 [1.00, 1.00] |" in out
    assert (tmp_path / "report.md").is_file() and "## Runs" not in out
