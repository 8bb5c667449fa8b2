"""CLI smoke runs of scripts/train_minatar.py and scripts/train_atari.py per preset, with
tiny budgets; the written config.json / summary.json are checked field by field."""
import json
import runpy
import sys
from pathlib import Path

import pytest

from normrl.agents.presets import PRESETS, atari_env_id, game_preset, preset_config
from normrl.commands._game_script import main
from normrl.runs.checkpoints import load_latest

ROOT = Path(__file__).resolve().parents[2]


def _read(logdir):
    return json.loads((logdir / "config.json").read_text()), json.loads((logdir / "summary.json").read_text())


def test_minatar_ppo_smoke_run_writes_config_and_summary(tmp_path):
    logdir = tmp_path / "run"
    rc = main("minatar", ["--game", "breakout", "--algo", "ppo", "--norm", "nap", "--steps", "64", "--num-envs", "2",
                          "--num-steps", "16", "--seed", "3", "--logdir", str(logdir), "--no-progress"])
    assert rc == 0
    config, summary = _read(logdir)
    assert config["run"] == {"env_id": "MinAtar/Breakout", "algo": "ppo", "norm": "nap", "seed": 3, "steps": 64,
                             "num_envs": 2, "env_kwargs": {}}
    assert config["config"]["num_steps"] == 16 and config["config"]["norm"] == "nap"
    assert config["config"]["schedule_horizon"] == 64  # decays over the whole run, not one chunk
    # the library MinAtar PPO preset stays in force for fields not given
    assert config["config"]["clip_coef"] == 0.1 and config["config"]["ent_coef"] == 0.01
    # 64 steps = 2 rollouts of 2 envs x 16 steps; 4 epochs x 4 minibatches each
    assert summary["steps"] == 64 and summary["trained_steps"] == 64 and summary["updates"] == 2 * 4 * 4
    assert summary["finished"] is True and summary["signal"] is None
    assert summary["norm"] == "nap" and summary["seed"] == 3 and summary["env"] == "MinAtar/Breakout"
    assert (logdir / "checkpoints" / "latest.json").is_file()
    assert list(logdir.glob("events.out.tfevents.*"))


def test_minatar_dqn_update_count_and_resume_rules(tmp_path, capsys):
    logdir = tmp_path / "dqn"
    args = ["--game", "Asterix", "--algo", "dqn", "--steps", "50", "--learning-starts", "10", "--buffer-size", "100",
            "--batch-size", "4", "--logdir", str(logdir), "--no-progress"]
    assert main("minatar", args) == 0
    config, summary = _read(logdir)
    # MinAtar DQN preset: one env, one update per step from step 10 on -> steps 10..50
    assert config["config"]["train_freq"] == 1 and config["config"]["num_envs"] == 1
    assert config["config"]["target_update_interval"] == 1000 and config["config"]["loss"] == "huber"
    assert summary["steps"] == 50 and summary["updates"] == 41
    # an existing run is never overwritten without --resume
    with pytest.raises(SystemExit) as exc:
        main("minatar", args)
    assert exc.value.code == 2 and "--resume" in capsys.readouterr().err
    # a resumed finished run trains nothing more and keeps its counters
    assert main("minatar", args + ["--resume"]) == 0
    _, summary = _read(logdir)
    assert summary["steps"] == 50 and summary["trained_steps"] == 0 and summary["updates"] == 41
    # changed options are refused on resume
    with pytest.raises(SystemExit):
        main("minatar", [*args[:-3], "--seed", "1", "--logdir", str(logdir), "--no-progress", "--resume"])
    assert "options differ" in capsys.readouterr().err


def test_sigterm_stop_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    import os
    import signal

    import torch

    from normrl.agents import PPO
    from normrl.runs import train_single

    kw = dict(overrides={"norm": "layernorm", "seed": 1, "num_envs": 2, "num_steps": 8}, progress=False,
              progress_every=16, checkpoint_every=1000)
    full = train_single("ppo", "MinAtar/Freeway", 64, tmp_path / "full", **kw)

    original = PPO.learn
    calls = []

    def learn_then_sigterm(self, *a, **k):
        out = original(self, *a, **k)
        calls.append(1)
        if len(calls) == 2:  # the signal arrives during the second chunk (steps 16..32)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(PPO, "learn", learn_then_sigterm)
    stopped = train_single("ppo", "MinAtar/Freeway", 64, tmp_path / "part", **kw)
    assert stopped["finished"] is False and stopped["signal"] == signal.SIGTERM and stopped["steps"] == 32
    monkeypatch.setattr(PPO, "learn", original)
    resumed = train_single("ppo", "MinAtar/Freeway", 64, tmp_path / "part", resume=True, **kw)
    assert resumed["finished"] is True and resumed["steps"] == full["steps"] == 64 and resumed["trained_steps"] == 32
    assert resumed["updates"] == full["updates"] and resumed["episodes"] == full["episodes"]
    a = torch.load(load_latest(tmp_path / "full")[0] / "agent.pt", weights_only=True)
    b = torch.load(load_latest(tmp_path / "part")[0] / "agent.pt", weights_only=True)
    assert a["network"].keys() == b["network"].keys() and len(a["network"]) > 0
    for k, v in a["network"].items():
        assert torch.equal(v, b["network"][k]), k


def test_unknown_game_and_norm_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main("minatar", ["--game", "pong", "--steps", "8", "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "valid: breakout, asterix, freeway, seaquest, space_invaders" in err
    with pytest.raises(SystemExit) as exc:
        main("atari", ["--game", "Pongg", "--steps", "8", "--no-progress"])
    assert exc.value.code == 2 and "Pong" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main("minatar", ["--game", "breakout", "--norm", "nosuchnorm", "--steps", "8", "--no-progress"])
    assert exc.value.code == 2 and "layernorm" in capsys.readouterr().err


def test_atari_presets_name_their_sources_values():
    dqn = game_preset("atari", "pong")
    assert dqn["env_id"] == "ALE/Pong-v5" and dqn["steps"] == 10_000_000
    assert dqn["env_kwargs"] == {"episodic_life": True, "clip_rewards": True}
    c = preset_config("dqn", dqn["env_id"])  # rl-baselines3-zoo dqn.yml "atari"
    assert (c.learning_rate, c.batch_size, c.buffer_size, c.learning_starts) == (1e-4, 32, 100_000, 100_000)
    assert (c.train_freq, c.target_update_interval, c.exploration_steps, c.end_eps) == (4, 1000, 1_000_000, 0.01)
    p = preset_config("ppo", game_preset("atari", "Breakout")["env_id"])  # zoo ppo.yml "atari" = CleanRL ppo_atari
    assert (p.num_envs, p.num_steps, p.update_epochs, p.num_minibatches) == (8, 128, 4, 4)
    assert (p.learning_rate, p.clip_coef, p.ent_coef, p.lr_schedule) == (2.5e-4, 0.1, 0.01, "linear")
    assert atari_env_id("ms_pacman") == "ALE/MsPacman-v5"
    assert game_preset("minatar", "SpaceInvaders")["env_id"] == "MinAtar/SpaceInvaders"
    with pytest.raises(ValueError, match="valid: atari, minatar"):
        game_preset("procgen", "coinrun")


def test_atari_dqn_smoke_run_through_the_script_file(tmp_path, monkeypatch):
    logdir = tmp_path / "pong"
    argv = ["train_atari.py", "--game", "Pong", "--algo", "dqn", "--norm", "layernorm", "--steps", "40",
            "--learning-starts", "20", "--buffer-size", "64", "--batch-size", "4", "--logdir", str(logdir), "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "scripts" / "train_atari.py"), run_name="__main__")
    assert exc.value.code == 0
    config, summary = _read(logdir)
    assert config["run"]["env_id"] == "ALE/Pong-v5"
    assert config["run"]["env_kwargs"] == {"episodic_life": True, "clip_rewards": True}
    for key in ("learning_rate", "target_update_interval", "exploration_steps", "end_eps", "max_grad_norm", "loss"):
        assert config["config"][key] == PRESETS[("dqn", "ALE")][key], key
    assert config["config"]["buffer_size"] == 64 and config["config"]["norm"] == "layernorm"
    # one update every 4 steps from step 20: at 20, 24, ..., 40
    assert summary["steps"] == 40 and summary["updates"] == 6 and summary["finished"] is True


def test_atari_ppo_smoke_run(tmp_path):
    logdir = tmp_path / "ppo"
    assert main("atari", ["--game", "Breakout", "--algo", "ppo", "--steps", "16", "--num-envs", "2", "--num-steps", "8",
                          "--logdir", str(logdir), "--no-progress"]) == 0
    config, summary = _read(logdir)
    assert config["run"]["num_envs"] == 2 and config["config"]["update_epochs"] == 4
    assert summary["steps"] == 16 and summary["updates"] == 4 * 4
