"""Plasticity retained (closed forms), the loss-of-plasticity gate, and the report
regenerated from run directories alone."""

import json

import numpy as np
import pytest

from normrl.analysis.plasticity_report import (gate, load_suite, plasticity_retained, window_mean,
                                               write_plasticity_report)
from normrl.analysis.results import NOTES_MARKER


def test_window_means():
    assert window_mean([1, 2, 3, 4, 5, 6, 7], "first") == 3.0
    assert window_mean([1, 2, 3, 4, 5, 6, 7], "last") == 5.0
    assert window_mean([2, 4], "last") == 3.0
    with pytest.raises(ValueError, match="'first' or 'last'"):
        window_mean([1], "middle")


def test_retained_is_the_ratio_of_last_window_means():
    oracle = np.array([[0.9] * 3 + [1.0] * 5, [0.4] * 3 + [0.5] * 5])
    # early tasks do not count, only the last 5
    arm = np.array([[0.0] * 3 + [0.5] * 5, [0.0] * 3 + [0.3] * 5])
    r = plasticity_retained(arm, oracle, reps=4000)
    assert r.point == pytest.approx(0.4 / 0.75)
    # the interval lies between the per-seed ratios (the extreme resamples)
    assert 0.5 - 1e-12 <= r.low <= r.point <= r.high <= 0.6 + 1e-12
    # an arm that is c times the oracle on every seed: exactly c, a degenerate interval
    c = plasticity_retained(0.7 * oracle, oracle, reps=500)
    assert (c.point, c.low, c.high) == pytest.approx((0.7, 0.7, 0.7))
    # errors: the oracle's error over the arm's, so twice the error retains one half
    e = plasticity_retained(2.0 * oracle, oracle, higher_is_better=False, reps=500)
    assert (e.point, e.low, e.high) == pytest.approx((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="same positive number of seeds"):
        plasticity_retained(arm[:1], oracle)


def _write_run(root, problem, arm, seed, values, kind="classification", extra=None):
    d = root / problem / arm.replace(":", "_") / f"seed{seed}"
    d.mkdir(parents=True)
    key = "train_accuracy" if kind == "classification" else "train_loss"
    tasks = []
    for t, v in enumerate(values):
        rec = {"task": t, "train_accuracy": None, "train_loss": 1.0, "online_accuracy": None, "online_loss": 1.0,
               "dormant_ratio": 0.1 * t, "srank": 10.0, "weight_norm": 5.0 + t, "output_weight_norm": 1.0 + t,
               "effective_lr": 0.01, "seconds": 0.1}
        rec[key] = v
        if kind == "classification":
            rec["online_accuracy"] = v
        rec.update(extra or {})
        tasks.append(rec)
    summary = {"finished": True, "arm": {"name": arm}, "kind": kind, "tasks": tasks, "train_seconds": 2.0, "cpu_seconds": 1.0,
               "config": {"seed": seed}}
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "config.json").write_text(json.dumps({"problem_kwargs": {"num_tasks": len(values), "seed": seed},
                                               "resolved": {"hidden": [8], "lr": 0.001}, "protocol": {"source": "test"}}))


def _suite(root, plain_last=0.3, oracle_last=0.6, problem="random-labels"):
    for seed in (0, 1, 2):
        _write_run(root, problem, "fresh", seed, [0.6] * 5 + [oracle_last] * 5)
        _write_run(root, problem, "none", seed, [0.6] * 5 + [plain_last] * 5)
        _write_run(root, problem, "none+redo:tau=0.1", seed, [0.6] * 5 + [0.55] * 5)


def test_gate_passes_only_when_plain_drops_and_oracle_stays_flat(tmp_path):
    _suite(tmp_path / "a")
    runs = load_suite(tmp_path / "a")["random-labels"]
    assert sorted(runs) == ["fresh", "none", "none+redo:tau=0.1"] and [r.seed for r in runs["none"]] == [0, 1, 2]
    g = gate(runs, "classification")
    assert g["passed"] and [ok for _, ok in g["checks"]] == [True, True, True]
    _suite(tmp_path / "b", plain_last=0.5)  # 0.5 > 0.8 x 0.6 = 0.48: not enough of a drop
    assert not gate(load_suite(tmp_path / "b")["random-labels"], "classification")["passed"]
    _suite(tmp_path / "c", oracle_last=0.65)  # the oracle moved by 0.05
    assert not gate(load_suite(tmp_path / "c")["random-labels"], "classification")["passed"]
    for seed in (0, 1):
        _write_run(tmp_path / "d", "bit-flipping", "fresh", seed, [1.0] * 5 + [1.2] * 5, kind="regression")
        _write_run(tmp_path / "d", "bit-flipping", "none", seed, [1.0] * 5 + [1.2 * 1.3] * 5, kind="regression")
        _write_run(tmp_path / "e", "bit-flipping", "fresh", seed, [1.0] * 5 + [1.2] * 5, kind="regression")
        _write_run(tmp_path / "e", "bit-flipping", "none", seed, [1.0] * 5 + [1.2 * 1.2] * 5, kind="regression")
    # the plain error grew 30% relative to the oracle's on the same tasks: loss; 20%: not enough
    assert gate(load_suite(tmp_path / "d")["bit-flipping"], "regression")["passed"]
    assert not gate(load_suite(tmp_path / "e")["bit-flipping"], "regression")["passed"]


def test_report_is_regenerated_from_run_directories_and_keeps_notes(tmp_path):
    _suite(tmp_path / "runs")
    out = tmp_path / "docs" / "suite.md"
    res = write_plasticity_report(tmp_path / "runs", out, title="T", reps=500)
    text = out.read_text()
    assert "| `fresh` | 3 | 0.600 | 0.600 | 1.00 [1.00, 1.00] |" in text
    assert "| `none` | 3 | 0.600 | 0.300 | 0.50 [0.50, 0.50] |" in text
    assert "Gate (PASSED)" in text and res["random-labels"]["rows"][1]["retained"].point == pytest.approx(0.5)
    for p in res["random-labels"]["plots"]:
        assert p.exists() and p.stat().st_size > 1000 and f"]({p.name})" in text
    out.write_text(out.read_text() + "hand-written analysis\n")
    write_plasticity_report(tmp_path / "runs", out, title="T", reps=500)
    assert out.read_text().count(NOTES_MARKER) == 1 and out.read_text().endswith("hand-written analysis\n")
    with pytest.raises(FileNotFoundError, match="no finished plasticity run"):
        write_plasticity_report(tmp_path / "empty", tmp_path / "x.md")
