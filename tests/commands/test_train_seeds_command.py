"""``normrl train --seeds``: the seed list's parsing, its one-line errors, and the run
directories of a stacked run, each as the single run of its seed writes it."""
import json

import pytest
import torch

from normrl.agents import PPO
from normrl.cli import main
from normrl.commands.train import parse_seeds

TINY = ["--algo", "ppo", "--env", "CartPole-v1", "--steps", "192", "--num-envs", "2", "--num-steps", "32",
        "--monitor-every", "0", "--no-progress"]


@pytest.mark.parametrize("text, seeds", [
    ("0-3", [0, 1, 2, 3]), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), ("4", [4]), (" 1 - 2 , 9", [1, 2, 9]),
])
def test_seed_lists_parse(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "3-1"], "--seeds takes non-negative seeds and ranges like 0-15, 0,3,5 or 0-3,8; got '3-1'"),
    (["--seeds", "a,b"], "--seeds takes non-negative seeds"),
    (["--seeds", "-1"], "--seeds takes non-negative seeds"),
    (["--seeds", ""], "--seeds takes non-negative seeds"),
    (["--seeds", "0-2,2"], "--seeds lists a seed twice"),
    (["--seeds", "0-1", "--seed", "4"], "give either --seed or --seeds"),
    (["--seeds", "0-1", "--resume"], "--resume with --seeds is not supported yet"),
    (["--seeds", "0-1", "--norm", "batchnorm"], "the seed axis supports norms without running statistics (none, layernorm"),
    (["--seeds", "0-1", "--intervention", "redo"], "does not support plasticity interventions"),
])
def test_bad_seed_options_are_one_line_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", *TINY, *argv, "--logdir", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("normrl train: error: ") and err.count("\n") == 1
    assert message in err
    assert not list(tmp_path.glob("run/seed_*/summary.json"))


def test_dqn_seeds_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--algo", "dqn", "--env", "CartPole-v1", "--steps", "10", "--seeds", "0-1", "--logdir", str(tmp_path)])
    assert exc.value.code == 2
    assert "supports algo 'ppo' only so far" in capsys.readouterr().err


def test_each_seed_writes_the_run_directory_of_its_single_run(tmp_path, capsys):
    assert main(["train", *TINY, "--seeds", "0,3", "--logdir", str(tmp_path / "stacked")]) == 0
    assert "2 seeds x 192 steps" in capsys.readouterr().out
    assert main(["train", *TINY, "--seed", "3", "--logdir", str(tmp_path / "single")]) == 0
    seed3, single = tmp_path / "stacked" / "seed_3", tmp_path / "single"
    config, config_single = (json.loads((d / "config.json").read_text()) for d in (seed3, single))
    assert config["config"] == config_single["config"] and config["config"]["seed"] == 3
    assert config["config"]["num_seeds"] == 1 and config["run"]["seed_axis"] == {"seeds": [0, 3]}
    summary, summary_single = (json.loads((d / "summary.json").read_text()) for d in (seed3, single))
    for key in ("steps", "updates", "episodes", "seed", "finished"):
        assert summary[key] == summary_single[key]
    assert summary["return_curve"] == summary_single["return_curve"]
    assert summary["seed_axis"]["aggregate_steps_per_second"] > 0
    assert list(seed3.glob("events.out.tfevents.*"))
    nets = [PPO.from_checkpoint(next((d / "checkpoints").glob("step_*")) / "agent.pt").network for d in (seed3, single)]
    assert max((a - b).abs().max().item() for a, b in zip(*(n.parameters() for n in nets))) < 5e-4
    seed0 = json.loads((tmp_path / "stacked" / "seed_0" / "summary.json").read_text())
    assert seed0["seed"] == 0 and seed0["return_curve"] != summary["return_curve"]


def test_num_seeds_in_the_config_trains_consecutive_seeds(tmp_path):
    from normrl.agents import PPOConfig
    from normrl.runs import train_single

    config = PPOConfig(seed=4, num_seeds=2, num_envs=2, num_steps=32, monitor_every=0)
    result = train_single("ppo", "CartPole-v1", 64, tmp_path, config=config, progress=False)
    assert result["seeds"] == [4, 5] and result["aggregate_steps_per_second"] > 0
    for seed in (4, 5):
        summary = json.loads((tmp_path / f"seed_{seed}" / "summary.json").read_text())
        assert summary["seed"] == seed and summary["steps"] == 64 and summary["finished"]


def test_a_diverging_seed_stops_the_stacked_run_with_exit_status_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *TINY, "--seeds", "2,7", "--learning-rate", "1e30", "--logdir", str(tmp_path)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("normrl train: error: seed 2: ") and err.count("\n") == 1
    first, second = (json.loads((tmp_path / f"seed_{s}" / "summary.json").read_text()) for s in (2, 7))
    assert first["status"] == "diverged" and first["divergence"]["seed"] == 2
    assert second["seed_axis"]["stopped_by_divergence_of_seed"] == 2
    # lr 1e30 breaks seed 7 too: the save finds its non-finite parameters and writes no checkpoint of them
    assert second["status"] == "diverged" and second["divergence"]["cause"] == "parameters"
    assert not list(tmp_path.glob("seed_*/checkpoints/step_*"))
