"""The results-table writer on synthetic summaries: every number checked by hand."""
import json
import math

import pytest

from normrl.analysis.results import (aggregate, format_table, mean_std, visit_returns,
                                        visit_training_returns, write_report)

# two tasks, two cycles; the diagonal entries (row = visit, column = its task) are the
# after-visit returns: A: 1.0 then 3.0, B: 2.0 then 2.5
CONTINUAL = {
    "task_names": ["A", "B"],
    "visit_tasks": [0, 1, 0, 1],
    "returns": [[1.0, None], [0.5, 2.0], [3.0, 1.5], [2.0, 2.5]],
    "eval_steps": [100, 200, 300, 400],
}


def test_visit_returns_reads_the_diagonal():
    assert visit_returns(CONTINUAL) == {"A": [1.0, 3.0], "B": [2.0, 2.5]}


def test_mean_std_is_sample_std_and_skips_nan():
    m, sd, n = mean_std([1.0, 3.0, float("nan")])
    assert (m, n) == (2.0, 2)
    assert sd == pytest.approx(math.sqrt(2.0))  # ((1-2)^2 + (3-2)^2) / (2-1) = 2
    assert mean_std([4.0]) == (4.0, 0.0, 1)
    m, sd, n = mean_std([])
    assert n == 0 and math.isnan(m)


def test_visit_training_returns_averages_the_last_half_of_each_visit():
    # visit 1 spans (0, 100]: last half (50, 100] holds 60 -> 4.0 and 100 -> 6.0 (10 -> 99.0 is excluded)
    points = [(10, 99.0), (60, 4.0), (100, 6.0), (180, 7.0), (260, 1.0), (390, 2.0), (400, 4.0)]
    out = visit_training_returns(points, CONTINUAL)
    assert out["A"] == [5.0, 1.0]        # visit 3 spans (200, 300]: (250, 300] holds 260 -> 1.0
    assert out["B"] == [7.0, 3.0]        # visit 2: (150, 200] -> 7.0; visit 4: (350, 400] -> (2+4)/2
    empty = visit_training_returns([], CONTINUAL)
    assert all(math.isnan(v) for vs in empty.values() for v in vs)


def test_aggregate_and_table_numbers():
    seed0 = visit_returns(CONTINUAL)
    seed1 = {"A": [3.0, 1.0], "B": [2.0, 3.5]}
    table = aggregate({"nap": [seed0, seed1]})
    mA1, sA1, nA1 = table["nap"]["A"][1]
    assert (mA1, nA1) == (2.0, 2) and sA1 == pytest.approx(math.sqrt(2.0))
    assert table["nap"]["A"][2][:2] == (2.0, pytest.approx(math.sqrt(2.0)))
    assert table["nap"]["B"][2][0] == pytest.approx(3.0)
    text = format_table(table, train_table=aggregate({"nap": [{"A": [1.0, 2.0], "B": [0.0, 0.5]}]}))
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:2]: line for line in text.splitlines()[2:]}
    a = [c.strip() for c in rows[("A", "nap")].strip("|").split("|")]
    assert a == ["A", "nap", "2.00 ± 1.41", "2.00 ± 1.41", "+0.00", "1.00 ± 0.00", "2.00 ± 0.00", "+1.00"]
    b = [c.strip() for c in rows[("B", "nap")].strip("|").split("|")]
    assert b[2:5] == ["2.00 ± 0.00", "3.00 ± 0.71", "+1.00"]
    assert b[5:] == ["0.00 ± 0.00", "0.50 ± 0.00", "+0.50"]


def test_single_visit_has_no_change_column():
    text = format_table({"none": {"A": {1: (1.0, 0.0, 1)}}})
    assert text.splitlines()[2] == "| A | none | 1.00 ± 0.00 | – | – |"


def test_write_report_from_run_directories(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for norm, offset in (("none", 0.0), ("nap", 10.0)):
        for seed in (0, 1):
            d = tmp_path / "runs" / norm / f"seed{seed}"
            d.mkdir(parents=True)
            cont = json.loads(json.dumps(CONTINUAL))
            cont["returns"] = [[None if v is None else v + offset + seed for v in row] for row in cont["returns"]]
            (d / "summary.json").write_text(json.dumps({"continual": cont}))
            w = SummaryWriter(str(d))
            for step in range(25, 401, 25):
                w.add_scalar("charts/episode_return", offset + seed, step)
                w.add_scalar("plasticity/dormant_ratio/all", 0.1 * seed, step)
                w.add_scalar("plasticity/weight_norm/all", 5.0 + offset, step)
            w.close()
    out = write_report(tmp_path / "runs", tmp_path / "doc" / "r.md", norms=("none", "nap"), seeds=(0, 1, 2),
                       title="T", setup="S", total_steps=400, switch_steps=[100, 200, 300])
    assert out["runs"] == {"none": [0, 1], "nap": [0, 1]}
    # none: A first visit = mean(1.0, 2.0) = 1.5, std sqrt(0.5); nap adds 10
    assert out["table"]["none"]["A"][1][0] == pytest.approx(1.5)
    assert out["table"]["nap"]["A"][1][0] == pytest.approx(11.5)
    assert out["table"]["none"]["A"][1][1] == pytest.approx(math.sqrt(0.5))
    # training return = offset + seed in every visit -> nap mean 10.5
    assert out["train_table"]["nap"]["B"][2][0] == pytest.approx(10.5)
    text = (tmp_path / "doc" / "r.md").read_text()
    assert "| A | nap | 11.50 ± 0.71 | 13.50 ± 0.71 | +2.00 | 10.50 ± 0.71 | 10.50 ± 0.71 | +0.00 |" in text
    for suffix in ("returns", "dormant", "weight_norm"):
        png = tmp_path / "doc" / f"sequential_minatar_{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.name})" in text
    # hand-written notes below the marker survive a rewrite
    from normrl.analysis.results import NOTES_MARKER

    (tmp_path / "doc" / "r.md").write_text(text + "Discussion: kept.\n")
    write_report(tmp_path / "runs", tmp_path / "doc" / "r.md", norms=("none", "nap"), seeds=(0, 1),
                 title="T2", setup="S", total_steps=400, switch_steps=[100, 200, 300])
    again = (tmp_path / "doc" / "r.md").read_text()
    assert again.startswith("# T2") and again.endswith(NOTES_MARKER + "\nDiscussion: kept.\n")
