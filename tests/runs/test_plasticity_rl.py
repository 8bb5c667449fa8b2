"""The continual-RL plasticity runner: arm strings, run directories, skipping finished
runs, resuming checkpointed ones, and one real tiny run per reference arm."""
import json

import pytest

import normrl.runs.plasticity_rl as prl
from normrl.runs.plasticity_rl import RLPlan, RLProblem, parse_rl_arm, parse_rl_arms, run_rl_plasticity, train_rl_arm

TINY = RLProblem(name="tiny", stream="permuted-obs:CartPole-v1:2", algo="ppo", steps_per_task=128,
                 overrides={"num_envs": 4, "num_steps": 16, "update_epochs": 1, "monitor_every": 1,
                            "lr_schedule": "constant"},
                 env_kwargs={"max_episode_steps": 20}, eval_episodes=2)


def test_arm_strings():
    assert parse_rl_arm("fresh") == prl.RLArm("fresh", "none", (), True)
    arm = parse_rl_arm("layernorm+redo:every=64,tau=0.1+l2_init")
    assert (arm.norm, arm.interventions, arm.fresh) == ("layernorm", ("redo:every=64,tau=0.1", "l2_init"), False)
    assert arm.dirname == "layernorm+redo_every=64_tau=0.1+l2_init"
    assert parse_rl_arm("fresh-nap") == prl.RLArm("fresh-nap", "nap", (), True)
    with pytest.raises(ValueError, match="no interventions"):
        parse_rl_arm("fresh+redo")
    with pytest.raises(ValueError, match="'napp' is not a norm"):
        parse_rl_arm("fresh-napp")
    with pytest.raises(ValueError, match="norms: .*layernorm"):
        parse_rl_arm("batchnormz")
    with pytest.raises(ValueError, match="redo"):
        parse_rl_arm("none+not_an_intervention")
    with pytest.raises(ValueError, match="empty part"):
        parse_rl_arm("none++redo")
    assert [a.name for a in parse_rl_arms(["nap", "none"])] == ["fresh", "none", "nap"]
    with pytest.raises(ValueError, match="twice"):
        parse_rl_arms(["nap", "nap"])


def _finished(d, arm, seed, tasks=True, steps=128, **saved_options):
    d.mkdir(parents=True)
    summary = {"continual": {"task_names": ["a"], "visit_tasks": [0], "returns": [[1.0]], "eval_steps": [steps],
                             "completed": True}}
    if tasks:
        summary.update({"finished": True, "tasks": [{"train_return": 1.0}], "arm": {"name": arm}, "config": {"seed": seed}})
    (d / "summary.json").write_text(json.dumps(summary))
    options = {"stream": TINY.stream, "steps_per_task": steps, "cycles": 1, "eval_episodes": TINY.eval_episodes,
               **saved_options}  # no eval_epsilon: a run saved before train_stream had it (greedy)
    (d / "config.json").write_text(json.dumps({"continual": options}))


def test_finished_runs_are_skipped_unfinished_resumed_or_restarted(tmp_path, monkeypatch):
    plan = RLPlan(tmp_path, TINY, parse_rl_arms(["nap", "none+l2_init"]), seeds=(0,))
    _finished(plan.run_dir(plan.arms[0], 0), "fresh", 0)
    _finished(plan.run_dir(plan.arms[1], 0), "none", 0, tasks=False)  # stream done, bookkeeping not
    resumable = plan.run_dir(plan.arms[2], 0)
    (resumable / "checkpoints").mkdir(parents=True)
    (resumable / "checkpoints" / "latest.json").write_text("{}")
    junk = plan.run_dir(plan.arms[3], 0)
    junk.mkdir(parents=True)
    (junk / "partial.txt").write_text("an interrupted start")
    launched = []
    monkeypatch.setattr(prl, "run_local_jobs", lambda jobs, n, echo: launched.extend(jobs) or {j.name: 0 for j in jobs})
    lines = []
    status = run_rl_plasticity(plan, jobs=2, echo=lines.append)
    assert status == {("fresh", 0): 0, ("none", 0): 0, ("nap", 0): 0, ("none+l2_init", 0): 0}
    assert lines == ["skip fresh seed 0: finished", "skip none seed 0: finished"]
    assert [(j.name, j.kwargs["resume"]) for j in launched] == [("nap seed 0 (resume)", True), ("none+l2_init seed 0", False)]
    assert not junk.exists()  # restarted from scratch
    assert launched[1].kwargs["arm"] == {"name": "none+l2_init", "norm": "none", "interventions": ["l2_init"], "fresh": False}
    assert launched[0].log == resumable / "worker.log"
    # the run whose stream had finished got its records and identity without retraining
    done = json.loads((plan.run_dir(plan.arms[1], 0) / "summary.json").read_text())
    assert done["finished"] is True and done["arm"]["name"] == "none" and done["config"] == {"seed": 0}
    assert len(done["tasks"]) == 1 and done["tasks"][0]["eval_return"] == 1.0
    assert done["tasks"][0]["train_return"] is None  # no TensorBoard events here: null, not NaN


def test_a_root_holds_one_budget(tmp_path, monkeypatch):
    plan = RLPlan(tmp_path, TINY, seeds=(0,))
    _finished(plan.run_dir(plan.arms[0], 0), "fresh", 0, steps=999)
    monkeypatch.setattr(prl, "run_local_jobs", lambda jobs, n, echo: {})
    with pytest.raises(ValueError, match="another configuration"):
        run_rl_plasticity(plan)
    # the evaluation is part of the configuration: greedy, whatever train_stream's default
    assert TINY.eval_epsilon == 0.0 and prl.RL_PROBLEMS["permuted-breakout"].eval_epsilon == 0.0
    _finished(plan.run_dir(plan.arms[0], 0).parent / "seed1", "fresh", 1, eval_epsilon=0.05)
    with pytest.raises(ValueError, match="eval_epsilon: saved 0.05, planned 0.0"):
        run_rl_plasticity(RLPlan(tmp_path, TINY, seeds=(1,)))
    with pytest.raises(ValueError, match="jobs"):
        run_rl_plasticity(plan, jobs=0)


@pytest.mark.parametrize("arm", ["fresh", "none"])
def test_tiny_real_run_writes_the_suite_layout(tmp_path, arm):
    plan = RLPlan(tmp_path, TINY, seeds=(3,))
    parsed = parse_rl_arm(arm)
    summary = train_rl_arm(**plan.run_kwargs(parsed, 3, resume=False))
    d = plan.run_dir(parsed, 3)
    assert json.loads((d / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["finished"] is True and summary["kind"] == "rl" and summary["problem"] == "tiny"
    assert summary["fresh_agent"] is (arm == "fresh") and summary["config"] == {"seed": 3}
    assert [t["visit"] for t in summary["tasks"]] == [0, 1]
    for t in summary["tasks"]:
        assert t["train_return"] is not None and 1.0 <= t["train_return"] <= 20.0  # CartPole, 20-step cap
        assert t["eval_return"] is not None and 0.0 <= t["dormant_ratio"] <= 1.0 and t["weight_norm"] > 0.0
    options = json.loads((d / "config.json").read_text())["continual"]
    assert options["eval_tasks"] == "current" and options["fresh_agent"] is (arm == "fresh")
    assert options["eval_epsilon"] == 0.0 and options["eval_episodes"] == TINY.eval_episodes
    assert summary["continual"]["returns"][1][0] is None  # only the visit's own task is evaluated
