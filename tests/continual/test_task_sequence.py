"""The task-sequence learner: the oracle's first task is the plain network's, online
accuracy is measured before each update, task hooks and interventions are called in
order, and every task's data reaches the network exactly during that task's updates."""

import math

import pytest
import torch

from normrl.continual.task_sequence import TaskSequenceConfig, build_learner, train_task_sequence
from normrl.data.problems import RandomLabelDigits, SlowlyChangingRegression
from normrl.plasticity.base import Intervention


def _small_labels(**kw):
    return RandomLabelDigits(num_tasks=kw.pop("num_tasks", 3), num_inputs=kw.pop("num_inputs", 64), seed=kw.pop("seed", 0))


CFG = dict(hidden=(16, 16), epochs=2, batch_size=16)


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_oracle_task0_is_the_plain_networks_task0_and_runs_are_deterministic():
    problem = _small_labels()
    plain = train_task_sequence(problem, TaskSequenceConfig(**CFG, seed=5))
    oracle = train_task_sequence(problem, TaskSequenceConfig(**CFG, seed=5, fresh_per_task=True))
    again = train_task_sequence(problem, TaskSequenceConfig(**CFG, seed=5))
    assert _strip(plain["tasks"])[0] == _strip(oracle["tasks"])[0]
    assert _strip(plain["tasks"])[1] != _strip(oracle["tasks"])[1]
    assert _strip(plain["tasks"]) == _strip(again["tasks"])
    assert plain["steps_per_task"] == 2 * math.ceil(64 / 16)
    for r in plain["tasks"] + oracle["tasks"]:
        assert 0 <= r["train_accuracy"] <= 1 and 0 <= r["dormant_ratio"] <= 1
        assert r["weight_norm"] > r["output_weight_norm"] > 0 and r["srank"] >= 1 and r["effective_lr"] > 0


def test_online_accuracy_is_measured_before_each_update():
    # with a vanishing learning rate the network never changes, so the accuracy of each
    # minibatch before its update is the end-of-task accuracy on the same examples
    problem = _small_labels(num_tasks=2)
    res = train_task_sequence(problem, TaskSequenceConfig(hidden=(16,), epochs=1, batch_size=16, lr=1e-30))
    for r in res["tasks"]:
        assert r["online_accuracy"] == pytest.approx(r["train_accuracy"], abs=1e-9)
        assert r["online_loss"] == pytest.approx(r["train_loss"], rel=1e-5)


class Recorder(Intervention):
    """Records the order of the hooks it receives."""

    name = "recorder"

    def __init__(self):
        super().__init__()
        self.calls = []

    def after_step(self, step):
        super().after_step(step)
        self.calls.append(("step", step))

    def on_task_start(self, task_id):
        super().on_task_start(task_id)
        self.calls.append(("start", task_id))

    def on_task_end(self, task_id):
        super().on_task_end(task_id)
        self.calls.append(("end", task_id))


def test_task_hooks_and_interventions_run_in_order():
    rec = Recorder()
    problem = _small_labels(num_tasks=3)
    res = train_task_sequence(problem, TaskSequenceConfig(hidden=(8,), epochs=1, batch_size=32, interventions=(rec,)))
    steps = res["steps_per_task"]
    expected = []
    for t in range(3):
        expected += [("start", t)] + [("step", t * steps + k) for k in range(1, steps + 1)] + [("end", t)]
    assert steps == 2 and rec.calls == expected


def test_each_tasks_data_reaches_the_network_exactly_during_its_updates():
    problem = SlowlyChangingRegression(num_tasks=4, flip_after=50, seed=1)
    seen = []
    cfg = TaskSequenceConfig(seed=0)
    model, _, _ = build_learner(problem, cfg.resolved(problem), 0, 0)  # the learner builds its own; this checks widths
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [5, 1]
    orig = torch.nn.Linear.forward

    def spy(self, x):
        if self.in_features == 20 and x.shape[0] == 1:  # training batches only (probe and evaluation are larger)
            seen.append(x[0, :15].clone())
        return orig(self, x)

    torch.nn.Linear.forward = spy
    try:
        res = train_task_sequence(problem, cfg)
    finally:
        torch.nn.Linear.forward = orig
    assert len(seen) == 4 * 50 and res["steps_per_task"] == 50
    for i, bits in enumerate(seen):
        assert torch.equal(bits, problem.flipping_bits(i // 50)), f"update {i} saw another task's bits"
    assert all(r["train_accuracy"] is None and r["online_accuracy"] is None for r in res["tasks"])
    assert all(r["train_loss"] > 0 and r["online_loss"] > 0 for r in res["tasks"])


def test_crelu_nap_options_and_sgd_are_wired():
    problem = _small_labels(num_tasks=1)
    cfg = TaskSequenceConfig(norm="nap", nap_options={"per_row": True}, hidden=(20, 20), optimizer="sgd", lr=0.1,
                             momentum=0.9).resolved(problem)
    model, opt, _ = build_learner(problem, cfg, 0, 0)
    assert opt.projector.per_row is True and opt.param_groups[0]["momentum"] == 0.9
    crelu = TaskSequenceConfig(activation="crelu", hidden=(20, 20), **{k: v for k, v in CFG.items() if k != "hidden"})
    res = train_task_sequence(problem, crelu)
    widths = res["config"]["hidden"]
    assert tuple(widths) == (20, 20) and res["tasks"][0]["dormant_ratio"] is not None
    model, _, _ = build_learner(problem, crelu.resolved(problem), 0, 0)
    relu_params = sum(p.numel() for p in build_learner(problem, TaskSequenceConfig(hidden=(20, 20)).resolved(problem), 0, 0)[0].parameters())
    crelu_params = sum(p.numel() for p in model.parameters())
    assert abs(crelu_params - relu_params) / relu_params < 0.05  # equal-parameter widths


def test_bad_settings_name_the_valid_choices():
    problem = _small_labels(num_tasks=1)
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adam', 'sgd'\)"):
        TaskSequenceConfig(optimizer="rmsprop").resolved(problem)
    with pytest.raises(ValueError, match="nap_options apply to a NaP norm only"):
        TaskSequenceConfig(nap_options={"per_row": True}).resolved(problem)
    with pytest.raises(ValueError, match="unknown TaskSequenceConfig fields"):
        TaskSequenceConfig.from_dict({"learning_rate": 1e-3})
