import json

import pytest

from normrl.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--algo", "dqn", "--env", "CartPole-v1", "--steps", "10", "--num-steps", "3"], "--num-steps is not a dqn option"),
        (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--gamma", "2"], "gamma must be in [0, 1], got 2.0"),
        (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--num-minibatches", "3"], "must be divisible by num_minibatches (3)"),
        (["--algo", "dqn", "--env", "Nope-v0", "--steps", "10"], "unknown env id 'Nope-v0'"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--steps", "0"], "--steps must be >= 1"),
        (["--algo", "dqn", "--env", "CartPole-v1", "--steps", "10", "--loss", "l1"], "loss must be one of mse, huber"),
        (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--norm", "no-such-norm"], "unknown norm 'no-such-norm'"),
        # --compile is a generated config flag; what compile=True cannot reproduce is refused before training
        (["--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--compile", "--norm", "batchnorm"],
         "compile=True needs a network without buffers"),
    ],
)
def test_bad_values_are_one_line_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv, "--logdir", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("normrl train: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_unknown_flag_and_bad_type_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "10", "--learning-rate", "fast"])
    assert exc.value.code == 2
    assert "--learning-rate: invalid float value: 'fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--algo", "sac", "--env", "CartPole-v1", "--steps", "10"])
    assert "invalid choice: 'sac'" in capsys.readouterr().err


def _scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_ppo_run_writes_config_summary_and_tensorboard(tmp_path, capsys):
    logdir = tmp_path / "run"
    rc = main(["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "512", "--num-envs", "8", "--seed", "4",
               "--num-steps", "32", "--update-epochs", "1", "--hidden", "16", "16", "--no-norm-adv", "--target-kl", "none",
               "--monitor-every", "0", "--logdir", str(logdir), "--no-progress"])
    assert rc == 0
    config = json.loads((logdir / "config.json").read_text())
    assert config["run"]["algo"] == "ppo" and config["run"]["env_id"] == "CartPole-v1" and config["run"]["steps"] == 512
    c = config["config"]
    assert c["num_envs"] == 8 and c["seed"] == 4 and c["num_steps"] == 32 and c["hidden"] == [16, 16]
    assert c["norm_adv"] is False and c["target_kl"] is None and c["update_epochs"] == 1
    assert c["learning_rate"] == 1e-3 and c["gae_lambda"] == 0.8  # CartPole preset kept for unset flags
    summary = json.loads((logdir / "summary.json").read_text())
    assert summary["steps"] == summary["trained_steps"] == 512
    assert summary["updates"] == 2 * 4  # 2 rollouts x 1 epoch x 4 minibatches
    assert summary["train_seconds"] > 0 and summary["eval_seconds"] == 0 and summary["steps_per_second"] > 0
    assert summary["finished"] is True and summary["signal"] is None
    assert summary["episodes"] > 0 and 8 <= summary["mean_return_last_100"] <= 500
    assert [s for s, _ in summary["return_curve"]] == [256, 512]
    assert (logdir / "checkpoints" / "latest.json").is_file()
    assert "ppo CartPole-v1: 512 steps" in capsys.readouterr().out
    tags = _scalars(logdir)
    assert {"charts/episode_return", "charts/episode_length", "charts/sps", "charts/learning_rate",
            "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac"} <= tags


def test_dqn_run_resumes_from_its_logdir_checkpoint(tmp_path, capsys):
    common = ["train", "--algo", "dqn", "--env", "CartPole-v1", "--num-envs", "4", "--learning-starts", "40",
              "--log-interval", "40", "--hidden", "16", "--monitor-every", "0", "--no-progress", "--logdir", str(tmp_path)]
    assert main([*common, "--steps", "80"]) == 0
    with pytest.raises(SystemExit) as exc:  # never overwritten without --resume
        main([*common, "--steps", "120"])
    assert exc.value.code == 2 and "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the total budget is part of the run
        main([*common, "--steps", "120", "--resume"])
    assert exc.value.code == 2 and "options differ" in capsys.readouterr().err
    assert main([*common, "--steps", "80", "--resume"]) == 0  # finished: trains nothing more
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 80 and summary["trained_steps"] == 0 and summary["finished"] is True
    assert {"charts/epsilon", "charts/learning_rate", "losses/td_loss", "losses/q_values", "charts/sps"} <= _scalars(tmp_path)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_plasticity_monitor_logs_by_default(algo, tmp_path):
    """monitor_every > 0 with a logdir: PlasticityMonitor tags beside the returns."""
    extra = ["--num-steps", "16", "--update-epochs", "1"] if algo == "ppo" else ["--learning-starts", "32", "--train-freq", "8"]
    assert main(["train", "--algo", algo, "--env", "CartPole-v1", "--steps", "256", "--num-envs", "8", "--monitor-every", "2",
                 "--logdir", str(tmp_path), "--no-progress", *extra]) == 0
    tags = _scalars(tmp_path)
    assert any(t.startswith("plasticity/dormant_ratio/") for t in tags), sorted(tags)
    assert any(t.startswith("plasticity/effective_lr/") for t in tags)
    if algo == "ppo":
        assert "plasticity/policy_entropy" in tags
