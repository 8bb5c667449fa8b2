"""LR schedules: closed-form values, restart at task switches, state round trip."""
import math

import pytest
import torch

from normrl.normalization import LRSchedule, make_lr_schedule
from normrl.normalization.schedules import NAP_SEQUENTIAL_ALE_WARMUP_STEPS, nap_sequential_schedule


def test_warmup_is_a_linear_ramp_from_zero():
    s = make_lr_schedule("cosine", 1e-3, total_steps=1100, warmup_steps=100)
    assert s(0) == 0.0
    assert s(25) == pytest.approx(0.25e-3)
    assert s(99) == pytest.approx(0.99e-3)
    assert s(100) == pytest.approx(1e-3)


def test_cosine_closed_form():
    base, final = 2e-3, 0.1
    s = make_lr_schedule("cosine", base, total_steps=1100, warmup_steps=100, final_lr_fraction=final)
    f = final * base
    assert s(600) == pytest.approx((base + f) / 2)  # midpoint of the decay
    assert s(350) == pytest.approx(f + (base - f) * (1 + math.cos(math.pi / 4)) / 2)
    assert s(1100) == pytest.approx(f)
    assert s(5000) == pytest.approx(f)  # stays at the end value


def test_linear_and_constant_closed_forms():
    lin = make_lr_schedule("linear", 1.0, total_steps=10, final_lr_fraction=0.2)
    assert [lin(t) for t in (0, 5, 10, 20)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    const = make_lr_schedule("constant", 0.5, total_steps=10, warmup_steps=4)
    assert [const(t) for t in (0, 2, 4, 100)] == pytest.approx([0.0, 0.25, 0.5, 0.5])


def test_step_apply_and_restart_at_task_switch():
    s = make_lr_schedule("linear", 1.0, total_steps=4, restart_on_task_switch=True)
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": params}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=9.0)
    s.on_task_start(0)  # the first task's start is not a switch
    assert s.t == 0 and s.num_restarts == 0
    assert s.apply(opt) == 1.0 and [g["lr"] for g in opt.param_groups] == [1.0, 1.0]
    assert [s.step() for _ in range(3)] == pytest.approx([0.75, 0.5, 0.25])
    s.apply(opt)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.25)
    s.on_task_start(1)
    assert s.t == 0 and s.lr == 1.0 and s.num_restarts == 1
    no_restart = make_lr_schedule("linear", 1.0, total_steps=4)
    no_restart.step()
    no_restart.on_task_start(1)
    assert no_restart.t == 1


def test_state_round_trip():
    s = make_lr_schedule("cosine", 1e-3, total_steps=50, warmup_steps=5, restart_on_task_switch=True)
    for _ in range(7):
        s.step()
    s.restart()
    for _ in range(3):
        s.step()
    fresh = make_lr_schedule("cosine", 1e-3, total_steps=50, warmup_steps=5, restart_on_task_switch=True)
    fresh.load_state_dict(s.state_dict())
    assert (fresh.t, fresh.num_restarts, fresh.lr) == (3, 1, s.lr)
    with pytest.raises(ValueError, match="total_steps"):
        make_lr_schedule("cosine", 1e-3, total_steps=60, warmup_steps=5, restart_on_task_switch=True).load_state_dict(s.state_dict())


def test_nap_sequential_preset():
    s = nap_sequential_schedule(6.25e-5, steps_per_task=10_000)
    assert isinstance(s, LRSchedule) and s.name == "cosine" and s.restart_on_task_switch
    assert s.warmup_steps == NAP_SEQUENTIAL_ALE_WARMUP_STEPS == 1000
    assert s(500) == pytest.approx(6.25e-5 / 2)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="constant, linear, cosine"):
        make_lr_schedule("step", 1e-3, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_lr_schedule("cosine", 1e-3, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="base_lr"):
        make_lr_schedule("linear", 0.0, 10)
    with pytest.raises(ValueError, match="final_lr_fraction"):
        make_lr_schedule("linear", 1e-3, 10, final_lr_fraction=1.5)
    with pytest.raises(ValueError, match="step"):
        make_lr_schedule("linear", 1e-3, 10)(-1)
