"""The plasticity suite's arms, its skip-finished behaviour, and a tiny end-to-end run of
``normrl plasticity`` (the CI smoke test: seconds)."""

import json
import os

import pytest

from normrl.runs.plasticity_arms import load_arms_file, parse_arm, parse_arm_list, with_references
from normrl.runs.plasticity_suite import SuitePlan, run_suite


def test_arm_grammar():
    a = parse_arm("nap+redo:tau=0.1,every=500+crelu@lr=1e-4,per_row=true")
    assert (a.norm, a.interventions, a.activation, a.fresh) == ("nap", ("redo:tau=0.1,every=500",), "crelu", False)
    assert a.options == {"lr": 1e-4} and a.nap_options == {"per_row": True}
    assert a.dirname == "nap+redo_tau=0.1_every=500+crelu_lr=1e-4_per_row=true"
    assert a.config_overrides() == {"norm": "nap", "interventions": ["redo:tau=0.1,every=500"], "fresh_per_task": False,
                                    "activation": "crelu", "nap_options": {"per_row": True}, "lr": 1e-4}
    assert parse_arm("crelu").activation == "crelu" and parse_arm("fresh").fresh
    ln_oracle = parse_arm("layernorm+fresh")
    assert (ln_oracle.norm, ln_oracle.fresh, ln_oracle.interventions) == ("layernorm", True, ())
    assert parse_arm("none@optimizer=sgd,lr=0.01").options == {"optimizer": "sgd", "lr": 0.01}
    arms = parse_arm_list("none,none+redo:tau=0.1,every=500,layernorm,nap@per_row=true,lr=1e-4")
    assert [x.name for x in arms] == ["none", "none+redo:tau=0.1,every=500", "layernorm", "nap@per_row=true,lr=1e-4"]
    assert [x.name for x in with_references(parse_arm_list("nap,none"))] == ["fresh", "none", "nap"]


@pytest.mark.parametrize("text, match", [
    ("batchnorm2", "is not a norm, 'crelu' or 'fresh'; norms:"),
    ("none+redoo", "unknown intervention 'redoo'; valid names:"),
    ("none+redo:taux=1", "has no option 'taux'"),
    ("none@per_row=true", "is a NaP option, but the norm is 'none'"),
    ("none@momentom=0.9", "unknown option 'momentom'; valid: optimizer, lr"),
    ("none@optimizer=rmsprop", "optimizer must be 'adam' or 'sgd'"),
])
def test_bad_arms_name_the_valid_choices(text, match):
    with pytest.raises(ValueError, match=match):
        parse_arm(text)


def test_arms_file_and_duplicates(tmp_path):
    path = tmp_path / "arms.json"
    path.write_text(json.dumps(["layernorm", {"name": "ln-sgd", "norm": "layernorm", "options": {"optimizer": "sgd", "lr": 0.05}}]))
    arms = load_arms_file(path)
    assert [a.name for a in arms] == ["layernorm", "ln-sgd"] and arms[1].config_overrides()["lr"] == 0.05
    with pytest.raises(ValueError, match="given twice"):
        parse_arm_list("nap,nap")


def _plan(root, arms="none+l2_init"):
    return SuitePlan(root=root, problems=("random-labels",), arms=parse_arm_list(arms), seeds=(0,),
                     problem_kwargs={"random-labels": {"num_tasks": 2, "num_inputs": 32}},
                     learner={"random-labels": {"hidden": (8,), "epochs": 1, "batch_size": 16}})


def test_suite_skips_finished_runs_and_restarts_unfinished_ones(tmp_path):
    plan = _plan(tmp_path)
    lines = []
    status = run_suite(plan, jobs=0, echo=lines.append)
    assert status == {("random-labels", a, 0): 0 for a in ("fresh", "none", "none+l2_init")}
    summaries = {a.name: plan.run_dir("random-labels", a, 0) / "summary.json" for a in plan.arms}
    assert all(p.is_file() for p in summaries.values()) and len([x for x in lines if x.startswith("[")]) == 3
    data = json.loads(summaries["none+l2_init"].read_text())
    assert data["finished"] is True and len(data["tasks"]) == 2 and data["config"]["interventions"] == ["l2_init"]
    mtimes = {a: p.stat().st_mtime_ns for a, p in summaries.items()}
    # an interrupted run: a config.json and no summary -> removed and run again
    os.remove(summaries["none"])
    lines.clear()
    status = run_suite(plan, jobs=0, echo=lines.append)
    assert status == {("random-labels", a, 0): 0 for a in ("fresh", "none", "none+l2_init")}
    assert sorted(x for x in lines if x.startswith("skip")) == ["skip random-labels fresh seed 0: finished",
                                                                "skip random-labels none+l2_init seed 0: finished"]
    assert summaries["fresh"].stat().st_mtime_ns == mtimes["fresh"] and summaries["none"].is_file()
    # a finished run with other settings is not silently reused
    other = _plan(tmp_path)
    other.learner["random-labels"]["epochs"] = 2
    with pytest.raises(ValueError, match="holds a finished run with other settings"):
        run_suite(other, jobs=0, echo=lines.append)


def test_plasticity_command_end_to_end(tmp_path, capsys):
    from normrl.cli import main

    logdir = tmp_path / "suite"
    code = main(["plasticity", "--quick", "--problem", "random-labels,bit-flipping", "--seeds", "0-1",
                 "--arms", "none+shrink_perturb", "--tasks", "5", "--jobs", "2", "--logdir", str(logdir)])
    out = capsys.readouterr().out
    assert code == 0, out
    report = (logdir / "report.md").read_text()
    for arm in ("`fresh`", "`none`", "`none+shrink_perturb`"):
        assert arm in report
    assert "## random-labels" in report and "## bit-flipping" in report and "oracle error / arm error" in report
    for problem in ("random-labels", "bit-flipping"):
        for suffix in ("tasks", "retained", "plasticity"):
            assert (logdir / f"report_{problem}_{suffix}.png").stat().st_size > 1000
    assert "[12/12]" in out and "gate:" in out
    # run again: everything is skipped, the report is rewritten from the run directories
    assert main(["plasticity", "--quick", "--problem", "random-labels,bit-flipping", "--seeds", "0-1",
                 "--arms", "none+shrink_perturb", "--tasks", "5", "--jobs", "2", "--logdir", str(logdir)]) == 0
    assert capsys.readouterr().out.count("skip ") == 12
