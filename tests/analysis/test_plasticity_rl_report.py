"""The continual-RL plasticity report: per-visit records from a return matrix and logged
scalars, the plasticity-retained arithmetic and its paired bootstrap, the gate, and a
report written from run directories alone."""
import json
import math

import numpy as np
import pytest

from normrl.analysis.plasticity_rl_report import (RLRun, arm_rows, gate, load_rl_runs, retained_interval, visit_records,
                                                  visit_spans, write_rl_report)
from normrl.analysis.results import NOTES_MARKER

CONTINUAL = {"task_names": ["t0", "t1", "t2"], "visit_tasks": [0, 1, 2],
             "returns": [[2.0, None, None], [None, 5.0, None], [None, None, 7.0]], "eval_steps": [100, 200, 300],
             "completed": True}


def test_visit_spans():
    assert visit_spans([100, 250, 300]) == [(0, 100), (100, 250), (250, 300)]


def test_visit_records_take_the_tail_mean_the_diagonal_and_the_last_metric_of_each_visit():
    scalars = {
        # visit 0 spans (0, 100]: its last quarter is (75, 100] -> mean of 4 and 6
        "charts/episode_return": [(10, 1.0), (80, 4.0), (100, 6.0), (150, 9.0), (190, 3.0), (200, 5.0)],
        "plasticity/dormant_ratio/all": [(50, 0.1), (90, 0.2), (210, 0.5)],
        "plasticity/weight_norm/all": [(100, 7.0), (300, 9.0)],
    }
    recs = visit_records(CONTINUAL, scalars, tail=0.25)
    assert [r["train_return"] for r in recs[:2]] == [5.0, 4.0]  # visit 1: (175, 200] -> 3, 5
    assert math.isnan(recs[2]["train_return"])  # nothing logged in (275, 300]
    assert [r["eval_return"] for r in recs] == [2.0, 5.0, 7.0]
    assert recs[0]["dormant_ratio"] == 0.2 and math.isnan(recs[1]["dormant_ratio"]) and recs[2]["dormant_ratio"] == 0.5
    assert [r["weight_norm"] for r in recs] == [7.0, pytest.approx(math.nan, nan_ok=True), 9.0]
    assert [(r["visit"], r["task"], r["task_name"]) for r in recs] == [(0, 0, "t0"), (1, 1, "t1"), (2, 2, "t2")]
    assert visit_records(CONTINUAL, scalars, tail=1.0)[0]["train_return"] == pytest.approx(11 / 3)
    with pytest.raises(ValueError, match="tail"):
        visit_records(CONTINUAL, scalars, tail=0)


def test_retained_is_a_ratio_of_means_with_a_paired_bootstrap():
    arm, oracle = [1.0, 3.0], [2.0, 2.0]
    iv = retained_interval(arm, oracle, reps=20_000)
    assert iv.point == pytest.approx(4.0 / 4.0)
    # two seeds: resamples are (0,0), (0,1), (1,0), (1,1), each with probability 1/4, so
    # the 2.5% and 97.5% percentiles are the two single-seed ratios 0.5 and 1.5
    assert iv.low == pytest.approx(0.5) and iv.high == pytest.approx(1.5)
    same = retained_interval([2.0, 4.0, 3.0], [2.0, 4.0, 3.0])
    assert (same.point, same.low, same.high) == (1.0, 1.0, 1.0)  # paired: the same seeds in both means
    assert retained_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]).point == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same positive length"):
        retained_interval([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        retained_interval([1.0], [1.0], confidence=1.5)


def _run(seed, train, eval_=None, arm="none", norm="none", fresh=False):
    tasks = [{"visit": k, "task": k, "train_return": v, "eval_return": (eval_ or train)[k], "dormant_ratio": 0.1 * k,
              "weight_norm": 5.0 + k} for k, v in enumerate(train)]
    return RLRun(seed, None, {"finished": True, "tasks": tasks, "arm": {"name": arm, "norm": norm, "fresh": fresh},
                              "config": {"seed": seed}, "wall_seconds": 60.0}, {})


def test_arm_rows_and_gate():
    runs = {
        "fresh": [_run(s, [6.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], arm="fresh") for s in (0, 1, 2)],
        "none": [_run(s, [6.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]) for s in (0, 1, 2)],
        "nap": [_run(s, [6.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0 + s], arm="nap", norm="nap") for s in (0, 1)],
        "fresh-nap": [_run(s, [6.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0], arm="fresh-nap", norm="nap", fresh=True)
                      for s in (0, 1, 2)],
    }
    rows = arm_rows(runs, reps=2000)
    assert [r["arm"] for r in rows] == ["fresh", "none", "nap", "fresh-nap"]
    by = {r["arm"]: r for r in rows}
    assert by["fresh"]["retained"].point == 1.0
    assert by["none"]["retained"].point == pytest.approx(5.0 / 10.0)
    assert by["none"]["first"] == pytest.approx(11.0 / 5) and by["none"]["last"] == 1.0
    assert by["nap"]["retained"].point == pytest.approx(10.5 / 10.0)  # on the seeds it shares with the oracle
    assert by["nap"]["retained_same"].point == pytest.approx(10.5 / 20.0)  # against fresh NaP agents
    assert by["none"]["retained_same"] is None and by["fresh-nap"]["retained_same"] is None
    assert by["none"]["dormant"] == pytest.approx(0.6) and by["none"]["weight_norm"] == 11.0
    g = gate(runs, rows, skip_first=1)  # the oracle's tasks 1-5 against its last 5: flat
    assert g["passed"] and len(g["checks"]) == 2
    assert not gate(runs, rows)["passed"]  # with task 0 (6.0) the oracle's first 5 are 40% higher: not flat
    assert not gate({"fresh": runs["fresh"]}, arm_rows({"fresh": runs["fresh"]}, reps=10))["passed"]


def test_report_from_run_directories_alone(tmp_path):
    root = tmp_path / "root"
    for arm, train in (("fresh", [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]), ("none", [3.0, 2.0, 1.5, 1.0, 1.0, 0.5]),
                       ("none+redo:every=64", [3.0, 2.0, 2.0, 1.5, 1.5, 1.5])):
        for seed in (0, 1, 2):
            run = _run(seed, [t + 0.1 * seed for t in train], arm=arm)
            d = root / "prob" / arm.replace(":", "_") / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps(run.summary))
    unfinished = root / "prob" / "nap" / "seed0"
    unfinished.mkdir(parents=True)
    (unfinished / "summary.json").write_text(json.dumps({"continual": {"completed": False}}))
    runs = load_rl_runs(root, "prob")
    assert sorted(runs) == ["fresh", "none", "none+redo:every=64"] and [r.seed for r in runs["none"]] == [0, 1, 2]
    out = tmp_path / "docs" / "report.md"
    out.parent.mkdir()
    out.write_text("old\n" + NOTES_MARKER + "\nkept notes\n")
    res = write_rl_report(root, "prob", out, title="T", setup="S", reps=500, skip_first=1)
    text = out.read_text()
    assert text.startswith("# T\n\nS\n") and "`none+redo:every=64`" in text and text.endswith("\nkept notes\n")
    assert "Gate (PASSED)" in text
    assert [p.name for p in res["plots"]] == ["report_returns.png", "report_retained.png", "report_plasticity.png"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in res["plots"])
    none = next(r for r in res["rows"] if r["arm"] == "none")
    want = np.mean([np.mean([t + 0.1 * s for t in [2.0, 1.5, 1.0, 1.0, 0.5]]) for s in (0, 1, 2)]) / \
        np.mean([np.mean([t + 0.1 * s for t in [2.0] * 5]) for s in (0, 1, 2)])
    assert none["retained"].point == pytest.approx(want)
    with pytest.raises(FileNotFoundError):
        write_rl_report(root, "other", out, title="T")
