"""Compose: stage order, events, penalties, NaP norms after every event, and the
save/load/resume round trip with every method at once."""
import io

import pytest
import torch

from normrl.plasticity import Compose, build_interventions, create_intervention

from .nets import batch, ln_mlp, nap_mlp, snapshot

# Every method configured to act often, so each kind of event happens in a short run.
ACTIVE = [
    "l2:lam=1e-3",
    "l2_init:lam=1e-3",
    "parseval:lam=1e-4",
    "shrink_perturb:every=2",
    "reset_layers:k=2,every=3",
    "plasticity_injection:k=2,repeat=true",
    "lines:from_task=0",
    "shrink_perturb:at=task_end",
    "reset_layers:at=task_end",
]


def _update(model, opt, comp, step):
    loss = (model(batch(step)) - 1.0).square().mean() + comp.penalty()
    opt.zero_grad()
    loss.backward()
    opt.step()
    comp.after_step(step)


def _assert_projected(opt):
    proj = opt.projector
    for name, norm in proj.weight_norms().items():
        torch.testing.assert_close(norm, proj.initial_weight_norms()[name], rtol=1e-5, atol=1e-6)
    initial_joint = dict(zip(proj.norm_layer_names, proj._norm_param_norms))
    for name, norm in proj.norm_param_norms().items():
        torch.testing.assert_close(norm, initial_joint[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", ACTIVE)
def test_projected_norms_hold_after_every_event(spec):
    model, opt = nap_mlp()
    comp = build_interventions([spec], seed=0)
    comp.attach(model, opt)
    events = 0
    step = 0
    for task in range(3):
        comp.on_task_start(task)
        events += bool(comp.last_event)
        _assert_projected(opt)
        for _ in range(4):
            step += 1
            _update(model, opt, comp, step)
            events += bool(comp.last_event)
            _assert_projected(opt)
        comp.on_task_end(task)
        events += bool(comp.last_event)
        _assert_projected(opt)
    if not spec.startswith(("l2", "parseval")):
        assert events >= 2, "the intervention never acted"


def test_all_methods_together_keep_norms_and_order_by_stage():
    model, opt = nap_mlp()
    comp = build_interventions(ACTIVE, seed=0)
    assert [iv.order for iv in comp] == sorted(iv.order for iv in comp)
    assert comp.labels[:3] == ["l2", "l2_init", "parseval"]
    assert "shrink_perturb#1" in comp.labels and "shrink_perturb#2" in comp.labels
    comp.attach(model, opt)
    comp.on_task_start(0)
    for step in range(1, 4):
        _update(model, opt, comp, step)
        _assert_projected(opt)
    comp.on_task_end(0)
    assert any(k.startswith("lines/scaled/") for k in comp.last_event)
    assert any(k.startswith("reset_layers#2/reset/") for k in comp.last_event)
    _assert_projected(opt)
    comp.on_task_start(1)
    assert any(k.startswith("plasticity_injection/injected/") for k in comp.last_event)
    _assert_projected(opt)


def test_penalty_is_the_sum_and_is_logged():
    model, opt = ln_mlp()
    parts = [create_intervention("l2", lam=0.1), create_intervention("parseval"), create_intervention("shrink_perturb")]
    comp = Compose(parts)
    comp.attach(model, opt)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.3)
    total = comp.penalty()
    torch.testing.assert_close(total, parts[0].penalty() + parts[1].penalty())
    assert set(comp.last_penalties) == {"l2", "parseval"}
    empty = Compose()
    empty.attach(model, opt)
    assert empty.penalty().item() == 0.0 and not empty
    empty.after_step(1)
    assert empty.last_event == {}


def test_structure_change_reaches_the_other_interventions():
    model, opt = ln_mlp()
    comp = build_interventions(["l2_init:lam=1.0", "plasticity_injection", "parseval"], seed=0)
    comp.attach(model, opt)
    assert comp.structure_version == 0
    comp.on_task_start(1)
    assert comp.structure_version == 1
    l2_init = comp.interventions[0]
    names = set(l2_init.initial_values)
    assert {"6.new.weight", "6.new.bias"} <= {n.replace(".0.", ".") for n in names}
    assert not any(".old." in n or "new_frozen" in n for n in names)  # frozen: not regularized
    assert l2_init.penalty().item() == pytest.approx(0.0, abs=1e-12)  # θ₀ of the new head = its value at injection


def _run(model, opt, comp, start, stop, tasks):
    for step in range(start, stop):
        if step in tasks:
            comp.on_task_end(tasks[step] - 1)
            comp.on_task_start(tasks[step])
        _update(model, opt, comp, step)


def test_save_load_resume_is_bit_exact():
    specs = ACTIVE + ["shrink_perturb:every=1,shrink=0.99"]
    tasks = {4: 1, 9: 2}
    model, opt = nap_mlp()
    comp = build_interventions(specs, seed=5)
    comp.attach(model, opt)
    comp.on_task_start(0)
    _run(model, opt, comp, 1, 7, tasks)
    buf = io.BytesIO()
    torch.save({"interventions": comp.state_dict(), "model": model.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    model2, opt2 = nap_mlp(seed=99)  # a different init: everything must come from the checkpoint
    comp2 = build_interventions(specs, seed=5)
    comp2.attach(model2, opt2)
    comp2.load_state_dict(saved["interventions"])
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["optimizer"])
    for a, b in zip(comp, comp2):
        if a.generator is not None:
            assert torch.equal(a.generator.get_state(), b.generator.get_state())

    _run(model, opt, comp, 7, 13, tasks)
    _run(model2, opt2, comp2, 7, 13, tasks)
    assert comp.last_event == comp2.last_event
    a, b = snapshot(model), snapshot(model2)
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_load_rejects_other_interventions():
    model, opt = ln_mlp()
    comp = build_interventions(["l2"])
    comp.attach(model, opt)
    other = build_interventions(["l2_init"])
    other.attach(model, opt)
    with pytest.raises(ValueError, match="do not match"):
        other.load_state_dict(comp.state_dict())
