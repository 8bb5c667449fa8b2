"""Shrink & perturb: one event equals shrink·θ + perturb·θ_fresh with a fresh draw."""
import copy

import pytest
import torch

from normrl.plasticity import create_intervention
from normrl.plasticity.layers import owns_parameters

from .nets import ln_mlp, snapshot, train_step


def _expected_fresh(model, generator_state):
    """θ_fresh recomputed from the intervention's generator state before the event: the
    seed it draws, then every parameter-owning module's reset_parameters() in order
    (modules without one: their initial value, LayerNorm gain 1 and offset 0)."""
    g = torch.Generator()
    g.set_state(generator_state)
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=g).item())
    fresh = {}
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    for name, module in model.named_modules():
        if not owns_parameters(module):
            continue
        copy_ = copy.deepcopy(module)
        if hasattr(copy_, "reset_parameters"):
            copy_.reset_parameters()
        else:
            with torch.no_grad():
                copy_.weight.fill_(1.0)
                copy_.bias.zero_()
        for pname, p in copy_.named_parameters(recurse=False):
            fresh[f"{name}.{pname}"] = p.detach()
    torch.set_rng_state(rng)
    return fresh


def test_one_step_equals_shrink_theta_plus_perturb_fresh():
    model, opt = ln_mlp()
    iv = create_intervention("shrink_perturb", shrink=0.9, perturb=0.3, every=1, seed=5)
    iv.attach(model, opt)
    for s in range(1, 3):
        train_step(model, opt, None, s)  # moves the LayerNorm parameters away from (1, 0) too
    before = snapshot(model)
    fresh = _expected_fresh(model, iv.generator.get_state())
    rng_before = torch.get_rng_state()
    iv.after_step(3)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training run's RNG is untouched
    assert iv.last_event == {"perturbed/params": float(len(before))}
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), 0.9 * before[name] + 0.3 * fresh[name], rtol=0, atol=1e-6)


def test_every_event_draws_a_new_perturbation():
    model, opt = ln_mlp()
    iv = create_intervention("shrink_perturb", shrink=0.0, perturb=1.0, every=1, seed=5)
    iv.attach(model, opt)
    iv.after_step(1)
    first = snapshot(model)
    iv.after_step(2)
    second = snapshot(model)
    weight = "0.weight"
    assert not torch.equal(first[weight], second[weight])  # not a fixed copy of the initial weights
    assert torch.equal(first["1.weight"], second["1.weight"])  # LayerNorm's fresh init is deterministic


def test_schedules_and_their_defaults():
    model, opt = ln_mlp()
    per_step = create_intervention("shrink_perturb", every=3)
    assert (per_step.shrink, per_step.perturb) == (0.999, 0.01)
    task_end = create_intervention("shrink_perturb", at="task_end")
    assert (task_end.shrink, task_end.perturb) == (0.4, 0.1)
    for iv in (per_step, task_end):
        iv.attach(model, opt)
    acted = []
    for step in range(1, 7):
        before = snapshot(model)
        per_step.after_step(step)
        task_end.after_step(step)
        acted.append(not torch.equal(before["0.weight"], model[0].weight))
    assert acted == [False, False, True, False, False, True]
    before = snapshot(model)
    task_end.on_task_end(0)
    assert task_end.last_event and not torch.equal(before["0.weight"], model[0].weight)
    with pytest.raises(ValueError, match="either every"):
        create_intervention("shrink_perturb", every=2, at="task_end")
    with pytest.raises(ValueError, match="at must be one of"):
        create_intervention("shrink_perturb", at="task_start")


def test_frozen_and_excluded_norm_parameters_are_left_alone():
    model, opt = ln_mlp()
    model[0].weight.requires_grad_(False)
    iv = create_intervention("shrink_perturb", shrink=0.5, perturb=0.5, include_norm=False)
    iv.attach(model, opt)
    before = snapshot(model)
    iv.after_step(1)
    assert torch.equal(model[0].weight, before["0.weight"])
    assert torch.equal(model[1].weight, before["1.weight"])  # LayerNorm gain
    assert not torch.equal(model[3].weight, before["3.weight"])
