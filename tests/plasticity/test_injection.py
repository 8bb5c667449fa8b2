"""Plasticity injection: output unchanged, old head frozen, new head trains, optimizer
and NaP projector rebound, nested injections, structure replay on load."""
import io

import pytest
import torch
import torch.nn as nn

from normrl.plasticity import InjectedHead, build_interventions, create_intervention
from normrl.plasticity.injection import inject_head

from .nets import TwoHeads, batch, ln_mlp, nap_mlp, snapshot


def _loss(model, step):
    return (model(batch(step)) - 1.0).square().mean()


def _inject(model, opt, **kw):
    iv = create_intervention("plasticity_injection", seed=3, **kw)
    iv.attach(model, opt)
    return iv


def test_output_unchanged_old_frozen_new_trains():
    model, opt = ln_mlp(weight_decay=0.1)  # coupled decay would move a frozen param still in Adam
    x = batch(0)
    out_before = model(x)
    iv = _inject(model, opt)
    iv.on_task_start(0)
    assert iv.last_event == {}
    iv.on_task_start(1)
    assert iv.last_event == {"injected/6": 1.0}
    head = model[6]
    assert isinstance(head, InjectedHead) and head.depth == 1
    assert torch.equal(model(x), out_before)  # bit for bit
    assert not any(p.requires_grad for p in head.old.parameters())
    assert not any(p.requires_grad for p in head.new_frozen.parameters())
    assert all(torch.equal(a, b) for a, b in zip(head.new.parameters(), head.new_frozen.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(head.new.parameters(), head.old.parameters()))
    # Rebind: the new head is one new param group with group 0's hyperparameters; frozen ones left.
    groups = opt.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == groups[0]["lr"] and groups[1]["weight_decay"] == 0.1
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in head.new.parameters()]
    owned = {id(p) for g in groups for p in g["params"]}
    assert not owned & {id(p) for p in head.old.parameters()} and not owned & {id(p) for p in head.new_frozen.parameters()}
    before = snapshot(model)
    for step in range(1, 4):
        opt.zero_grad()
        _loss(model, step).backward()
        assert all(p.grad is None for p in head.old.parameters())
        assert all(p.grad is None for p in head.new_frozen.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.new.parameters())
        opt.step()
    after = snapshot(model)
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name.startswith("6.new.") or not name.startswith("6.")), name


def test_injection_on_top_and_depth_mismatch():
    model, opt = ln_mlp()
    iv = _inject(model, opt, repeat=True)
    iv.on_task_start(1)
    opt.zero_grad()
    _loss(model, 1).backward()
    opt.step()
    x = batch(5)
    out = model(x)
    iv.on_task_start(2)
    assert torch.equal(model(x), out)
    outer = model[6]
    assert isinstance(outer, InjectedHead) and isinstance(outer.old[0], InjectedHead)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("6.")]
    assert trainable == ["6.new.0.weight", "6.new.0.bias"]
    assert len(opt.param_groups) == 3 and opt.param_groups[1]["params"] == []
    with pytest.raises(ValueError, match="depth 1"):
        inject_head(model, k=2)


def test_step_trigger_and_actor_critic_chains():
    torch.manual_seed(0)
    model = TwoHeads()
    opt = torch.optim.Adam(model.parameters())
    iv = _inject(model, opt, step=2)
    iv.on_task_start(1)
    iv.after_step(1)
    assert iv.last_event == {}
    x = batch(0)
    out = model(x)
    iv.after_step(2)
    assert set(iv.last_event) == {"injected/actor.2", "injected/critic.2"}
    assert torch.equal(model(x), out)
    iv.after_step(4)
    assert iv.last_event == {} and len(iv.injections) == 1


def test_nap_depth_two_head_is_projected_to_its_norm_at_injection():
    model, opt = nap_mlp()
    comp = build_interventions(["plasticity_injection:k=2"], seed=0)
    comp.attach(model, opt)
    first_target = opt.projector.initial_weight_norms()["0"].clone()
    for step in range(1, 3):
        opt.zero_grad(); _loss(model, step).backward(); opt.step(); comp.after_step(step)
    comp.on_task_start(1)
    proj = opt.projector
    assert proj.layer_names == ["0", "3.new.0"]  # frozen old head no longer projected
    target = proj.initial_weight_norms()["3.new.0"]
    assert torch.allclose(target, model.get_submodule("3.new.0").weight.norm())
    assert torch.equal(proj.initial_weight_norms()["0"], first_target)  # kept across the rebind
    for step in range(3, 6):
        opt.zero_grad(); _loss(model, step).backward(); opt.step(); comp.after_step(step)
    for name, norm in proj.weight_norms().items():
        torch.testing.assert_close(norm, proj.initial_weight_norms()[name])
    assert not torch.equal(model.get_submodule("3.new.0").weight, model.get_submodule("3.new_frozen.0").weight)


def test_state_replays_the_structure_on_a_fresh_model():
    model, opt = nap_mlp()
    comp = build_interventions(["plasticity_injection:k=2,repeat=true"], seed=0)
    comp.attach(model, opt)
    comp.on_task_start(1)
    comp.on_task_start(2)
    for step in range(1, 3):
        opt.zero_grad(); _loss(model, step).backward(); opt.step(); comp.after_step(step)
    buf = io.BytesIO()
    torch.save({"iv": comp.state_dict(), "model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    model2, opt2 = nap_mlp(seed=1)
    comp2 = build_interventions(["plasticity_injection:k=2,repeat=true"], seed=0)
    comp2.attach(model2, opt2)
    comp2.load_state_dict(saved["iv"])
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert list(model2.state_dict()) == list(model.state_dict())
    assert opt2.projector.layer_names == opt.projector.layer_names
    for step in range(3, 6):
        for m, o, c in ((model, opt, comp), (model2, opt2, comp2)):
            o.zero_grad(); _loss(m, step).backward(); o.step(); c.after_step(step)
    for (n, p), (_, q) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(p, q), n
    comp.on_task_start(3)
    comp2.on_task_start(3)  # the generator continues identically: the same fresh head
    for (n, p), (_, q) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(p, q), n


def test_bad_options_raise():
    with pytest.raises(ValueError, match="k must be"):
        create_intervention("plasticity_injection", k=0)
    with pytest.raises(ValueError, match="step must be"):
        create_intervention("plasticity_injection", step=0)
    model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="fewer than k=2"):
        _inject(model, None, k=2)
