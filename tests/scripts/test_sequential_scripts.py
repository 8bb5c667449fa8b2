"""scripts/sequential_minatar.py (--quick comparison end to end on a small stream, and its
skip/resume rules) and scripts/sequential_atari.py (the continual command it runs)."""
import json
import runpy
from pathlib import Path

import pytest

from normrl.runs.comparison import ComparisonPlan, run_state
from normrl.analysis.results import mean_std, visit_returns

ROOT = Path(__file__).resolve().parents[2]


def _script(name):
    return runpy.run_path(str(ROOT / "scripts" / name))


def test_quick_comparison_writes_the_table_of_its_runs_and_skips_them_after(tmp_path, capsys):
    mod = _script("sequential_minatar.py")
    root, report = tmp_path / "runs", tmp_path / "docs" / "seq.md"
    argv = ["--quick", "--stream", "permuted-obs:CartPole-v1:2", "--norms", "nap", "--seeds", "0", "1",
            "--root", str(root), "--report", str(report), "--jobs", "2"]
    assert mod["main"](argv) == 0
    text = report.read_text()
    for norm in ("nap",):
        for seed in (0, 1):
            d = root / norm / f"seed{seed}"
            config = json.loads((d / "config.json").read_text())
            assert config["continual"]["steps_per_task"] == 256 and config["continual"]["cycles"] == 2
            assert config["config"]["monitor_every"] == 1 and config["config"]["num_steps"] == 32
            assert config["config"]["norm"] == norm and config["config"]["seed"] == seed
            assert len(json.loads((d / "summary.json").read_text())["continual"]["visit_tasks"]) == 4
        # the table cell is the mean ± std of the runs' own after-visit returns
        per_seed = [visit_returns(json.loads((root / norm / f"seed{s}" / "summary.json").read_text())["continual"])
                    for s in (0, 1)]
        for game in per_seed[0]:
            m1, s1, _ = mean_std([r[game][0] for r in per_seed])
            m2, s2, _ = mean_std([r[game][1] for r in per_seed])
            assert f"| {game} | {norm} | {m1:.2f} ± {s1:.2f} | {m2:.2f} ± {s2:.2f} | {m2 - m1:+.2f} |" in text
    for suffix in ("returns", "dormant", "weight_norm"):
        assert (report.parent / f"sequential_minatar_{suffix}.png").stat().st_size > 1000
    capsys.readouterr()
    # a second call skips every finished run and rewrites the same table
    assert mod["main"](argv) == 0
    out = capsys.readouterr().out
    assert out.count("skip ") == 2 and "start " not in out
    # another budget in the same root is refused rather than mixed in
    with pytest.raises(SystemExit) as exc:
        mod["main"](argv + ["--steps-per-task", "512"])
    assert exc.value.code == 2 and "steps per task" in capsys.readouterr().err


def test_run_state_and_run_kwargs(tmp_path):
    d = tmp_path / "r"
    assert run_state(d, 4) == "fresh"
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "latest.json").write_text("{}")
    assert run_state(d, 4) == "resume"
    (d / "summary.json").write_text(json.dumps({"continual": {"visit_tasks": [0, 1, 0], "completed": False}}))
    assert run_state(d, 4) == "resume"  # 3 of 4 visits: not done
    (d / "summary.json").write_text(json.dumps({"continual": {"visit_tasks": [0, 1, 0, 1], "completed": True}}))
    assert run_state(d, 4) == "done"
    (d / "config.json").write_text(json.dumps({"continual": {"steps_per_task": 8}}))
    with pytest.raises(ValueError, match="8 steps per task, not 4"):
        run_state(d, 4)
    plan = ComparisonPlan(root=tmp_path, norms=("nap",), seeds=(2,), steps_per_task=4096, num_envs=16)
    kw = plan.run_kwargs("nap", 2, resume=True)
    assert kw["overrides"] == {"monitor_every": 16, "norm": "nap", "seed": 2, "num_envs": 16}
    assert kw["env_kwargs"] == {"max_episode_steps": 1000}  # MinAtar: truncate stalled greedy episodes
    assert (kw["stream"], kw["algo"], kw["steps_per_task"], kw["cycles"], kw["resume"]) == ("minatar", "ppo", 4096, 2, True)
    assert kw["logdir"] == str(tmp_path / "nap" / "seed2") and kw["progress"] is False
    assert ComparisonPlan(root=tmp_path, stream="permuted-obs:CartPole-v1:2").env_kwargs == {}


def test_sequential_atari_stream_names():
    mod = _script("sequential_atari.py")
    assert mod["stream_name"]("Pong, Breakout") == "atari-Pong,Breakout"
    assert mod["stream_name"]("default") == "atari-default"
    args = mod["build_parser"]().parse_args([])
    assert (args.games, args.algo, args.norm, args.steps_per_task) == ("default", "ppo", "nap", 1_000_000)


def test_sequential_atari_two_game_smoke_run(tmp_path, monkeypatch, capsys):
    mod = _script("sequential_atari.py")
    logdir = tmp_path / "seq"
    rc = mod["main"](["--games", "Pong,Breakout", "--algo", "ppo", "--steps-per-task", "8", "--num-envs", "1",
                      "--eval-episodes", "0", "--logdir", str(logdir), "--no-progress"])
    assert rc == 0
    summary = json.loads((logdir / "summary.json").read_text())
    assert summary["continual"]["task_names"] == ["Pong", "Breakout"]
    assert summary["continual"]["visit_tasks"] == [0, 1]
    assert json.loads((logdir / "config.json").read_text())["continual"]["stream"] == "atari-Pong,Breakout"
