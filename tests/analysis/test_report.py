"""normrl report on hand-written run directories (config.json + summary.json): arms and
tasks, IQM and bootstrap intervals against closed forms, return matrices and forgetting,
excluded and diverged runs, a TensorBoard score tag and the plots."""
import json
from pathlib import Path

import pytest

from normrl.analysis.report import build_report, write_report
from normrl.analysis.return_matrix import mean_matrix, task_forgetting
from normrl.analysis.run_dirs import arm_labels, find_runs

REPS = 20_000


def _env_run(root, name, env, norm, seed, score, *, lr=1e-3, finished=True, status=None):
    d = root / name
    d.mkdir(parents=True)
    config = {"config": {"seed": seed, "norm": norm, "learning_rate": lr, "hidden": [64, 64]},
              "run": {"env_id": env, "algo": "ppo", "norm": norm, "seed": seed, "steps": 1000, "num_envs": 4,
                      "env_kwargs": {}}}
    summary = {"algo": "ppo", "steps": 1000, "mean_return_last_100": score, "finished": finished, "signal": None}
    if status is not None:
        summary["status"] = status
    (d / "config.json").write_text(json.dumps(config))
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def _stream_run(root, name, norm, seed, returns, completed=True):
    d = root / name
    d.mkdir(parents=True)
    config = {"config": {"seed": seed, "norm": norm}, "algo": "dqn",
              "continual": {"stream": "s2", "algo": "dqn", "norm": norm, "seed": seed, "steps_per_task": 100,
                            "cycles": 1}}
    continual = {"task_names": ["A", "B"], "visit_tasks": [0, 1], "returns": returns, "eval_steps": [100, 200],
                 "completed": completed}
    (d / "config.json").write_text(json.dumps(config))
    (d / "summary.json").write_text(json.dumps({"stream": "s2", "continual": continual, "signal": None}))


@pytest.fixture
def two_games(tmp_path):
    """Two games, two arms, two seeds; on both games every nap run beats every none run.
    Game A: none {0, 10}, nap {20, 30}; game B: none {100, 300}, nap {500, 700}."""
    for env, scores in (("GameA", {"none": (0.0, 10.0), "nap": (20.0, 30.0)}),
                        ("GameB", {"none": (100.0, 300.0), "nap": (500.0, 700.0)})):
        for norm, values in scores.items():
            for seed, score in enumerate(values):
                _env_run(tmp_path, f"{env}/{norm}/seed_{seed}", env, norm, seed, score)
    return tmp_path


def test_per_task_and_aggregate_numbers_match_closed_forms(two_games):
    data = build_report(two_games, reps=REPS, plots=False)
    (sec,) = data["sections"]
    assert sec["arms"] == ["none", "nap"] and sec["tasks"] == ["GameA", "GameB"] and sec["baseline"] == "none"
    # Two runs: the IQM trims int(0.25 * 2) = 0 runs, so it is their mean. A resampled mean
    # of {a, b} is a, (a+b)/2 or b with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5%
    # percentiles are exactly a and b.
    a = sec["per_task"]["none"]["GameB"]
    assert a["n"] == 2 and a["iqm"] == {"point": 200.0, "low": 100.0, "high": 300.0}
    assert sec["per_task"]["nap"]["GameA"]["iqm"] == {"point": 25.0, "low": 20.0, "high": 30.0}
    # Normalized per game over all its runs (A: 0..30, B: 100..700): none -> {0, 1/3} on
    # both games, nap -> {2/3, 1}. Pooled IQM of none {0, 0, 1/3, 1/3} trims one run at
    # each end: 1/6. The stratified mean of two games is an average of two independent
    # {0, 1/6, 1/3} draws (p = 1/4, 1/2, 1/4): P(0) = P(1/3) = 1/16 > 2.5%, so its 95%
    # interval is [0, 1/3].
    none = sec["aggregate"]["none"]
    assert none["tasks"] == 2 and none["runs"] == 4
    assert none["iqm"]["point"] == pytest.approx(1 / 6)
    assert none["mean"] == pytest.approx({"point": 1 / 6, "low": 0.0, "high": 1 / 3})
    assert none["median"]["point"] == pytest.approx(1 / 6)
    assert sec["aggregate"]["nap"]["mean"] == pytest.approx({"point": 5 / 6, "low": 2 / 3, "high": 1.0})
    # every nap run beats every none run on both games
    assert sec["improvement"]["nap"] == {"tasks": 2, "point": 1.0, "low": 1.0, "high": 1.0}
    assert data["excluded"] == []


def test_iqm_trims_a_quarter_of_the_runs(tmp_path):
    for seed, score in enumerate([1.0, 2.0, 3.0, 10.0]):
        _env_run(tmp_path, f"G/none/seed_{seed}", "G", "none", seed, score)
    (sec,) = build_report(tmp_path, reps=REPS, plots=False)["sections"]
    cell = sec["per_task"]["none"]["G"]
    assert cell["iqm"]["point"] == 2.5          # mean of 2, 3 after trimming 1 and 10
    assert cell["mean"]["point"] == 4.0
    assert 1.0 <= cell["iqm"]["low"] <= 2.5 <= cell["iqm"]["high"] <= 10.0
    assert not sec["normalized"] and sec["aggregate"]["none"]["iqm"]["point"] == 2.5  # one task: raw scores


def test_unfinished_runs_are_excluded_and_diverged_ones_flagged(two_games):
    _env_run(two_games, "GameA/nap/seed_2", "GameA", "nap", 2, 1e6, finished=False)
    _env_run(two_games, "GameA/none/seed_2", "GameA", "none", 2, -5.0, status="diverged")
    data = build_report(two_games, reps=REPS, plots=False)
    assert [(r["run"], r["status"]) for r in data["excluded"]] == [("GameA/nap/seed_2", "stopped")]
    (sec,) = data["sections"]
    assert sec["per_task"]["nap"]["GameA"]["n"] == 2
    assert sorted(sec["per_task"]["none"]["GameA"]["scores"]) == [-5.0, 0.0, 10.0]
    assert sec["diverged"] == {"none": ["GameA/none/seed_2"]}


def test_arm_labels_name_the_settings_that_differ(tmp_path):
    for lr in (1e-4, 3e-4):
        for seed in (0, 1):
            _env_run(tmp_path, f"G/lr{lr}/seed_{seed}", "G", "nap", seed, 1.0, lr=lr)
    runs = find_runs(tmp_path)
    assert sorted(set(arm_labels(runs).values())) == ["nap learning_rate=0.0001", "nap learning_rate=0.0003"]


def test_one_arm_spans_tasks_whose_presets_differ(two_games):
    """GameB's runs use another preset learning rate than GameA's: that is a setting of
    the task, not of the arm, so each arm still covers both games."""
    for run in find_runs(two_games):
        if run.task == "GameB":
            config = json.loads((run.path / "config.json").read_text())
            config["config"]["learning_rate"] = 5e-4
            (run.path / "config.json").write_text(json.dumps(config))
    (sec,) = build_report(two_games, reps=REPS, plots=False)["sections"]
    assert sec["arms"] == ["none", "nap"] and sec["aggregate"]["nap"]["tasks"] == 2


def test_return_matrix_mean_and_forgetting():
    seed0 = {"task_names": ["A", "B"], "visit_tasks": [0, 1], "returns": [[1.0, None], [0.5, 2.0]]}
    seed1 = {"task_names": ["A", "B"], "visit_tasks": [0, 1], "returns": [[3.0, None], [1.0, 4.0]]}
    # F_A = max over rows [0, V-2] of R[., A] minus the last row; B is first seen in the last row
    assert task_forgetting(seed0) == [0.5, None] and task_forgetting(seed1) == [2.0, None]
    assert mean_matrix([seed0["returns"], seed1["returns"]]) == [[2.0, None], [0.75, 3.0]]
    cycles = {"task_names": ["A", "B"], "visit_tasks": [0, 1, 0, 1],
              "returns": [[1.0, None], [0.5, 2.0], [3.0, 1.5], [2.0, 2.5]]}
    # A: max(1, 0.5, 3) - 2 = 1; B: max(2, 1.5) - 2.5 = -0.5 (the second visit improved on it)
    assert task_forgetting(cycles) == [1.0, -0.5]


def test_continual_runs_get_final_row_scores_matrices_and_forgetting(tmp_path):
    _stream_run(tmp_path, "s2/none/seed_0", "none", 0, [[1.0, None], [0.5, 2.0]])
    _stream_run(tmp_path, "s2/none/seed_1", "none", 1, [[3.0, None], [1.0, 4.0]])
    _stream_run(tmp_path, "s2/none/seed_2", "none", 2, [[3.0, None]], completed=False)
    data = write_report(tmp_path, reps=REPS, plots=False)
    (sec,) = data["sections"]
    assert sec["title"] == "Continual runs: s2" and sec["tasks"] == ["A", "B"]
    assert sec["per_task"]["none"]["A"]["scores"] == [0.5, 1.0]   # the last row
    assert sec["per_task"]["none"]["B"]["iqm"] == {"point": 3.0, "low": 2.0, "high": 4.0}
    mat = sec["matrices"]["none"]
    assert mat["n"] == 2 and mat["mean"] == [[2.0, None], [0.75, 3.0]]
    assert mat["forgetting"] == [1.25, None] and mat["mean_forgetting"] == 1.25
    assert [r["run"] for r in data["excluded"]] == ["s2/none/seed_2"]
    text = (tmp_path / "report.md").read_text()
    assert "| 2: B | 0.75 | 3.00 |" in text and "| **forgetting** | 1.25 | – |" in text


def test_report_md_tables(two_games):
    write_report(two_games, reps=REPS, plots=False)
    text = (two_games / "report.md").read_text()
    assert "| GameB | 200.00 [100.00, 300.00] (2) | 600.00 [500.00, 700.00] (2) |" in text
    assert "| none | 2 | 4 | 0.167 [0.000, 0.333] | 0.167 [0.000, 0.333] |" in text
    assert text.rstrip().endswith("| GameB/none/seed_1 | GameB | 1 | finished | 300.00 |")
    assert json.loads((two_games / "report.json").read_text())["sections"][0]["arms"] == ["none", "nap"]


def test_a_tensorboard_score_tag_and_the_plots(two_games):
    from torch.utils.tensorboard import SummaryWriter

    # GameA/none/seed_0 logs returns 0..9 at steps 100..1000: the last 4 values average 7.5
    with SummaryWriter(str(two_games / "GameA/none/seed_0")) as writer:
        for k in range(10):
            writer.add_scalar("charts/episode_return", float(k), (k + 1) * 100)
    data = write_report(two_games, reps=REPS, score_tag="charts/episode_return", score_window=4,
                        tags=("charts/episode_return",))
    (sec,) = data["sections"]
    assert sec["per_task"] == {"none": {"GameA": sec["per_task"]["none"]["GameA"]}}  # the only run with the tag
    assert sec["per_task"]["none"]["GameA"]["scores"] == [7.5]
    (png,) = sec["plots"]["charts/episode_return"]
    assert png.endswith("env_GameA_episode_return.png") and Path(png).stat().st_size > 1000
    assert "](report_figures/env_GameA_episode_return.png)" in (two_games / "report.md").read_text()


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directories"):
        build_report(tmp_path)
