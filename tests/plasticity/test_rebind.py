"""rebind_optimizer / rebind_projector on hand-made structural changes."""
import torch
import torch.nn as nn

from normrl.networks import MLP
from normrl.normalization import NaPProjector, ProjectedOptimizer
from normrl.normalization.layers.nap_layernorm import NaPLayerNorm
from normrl.plasticity import rebind_optimizer


def test_new_params_join_as_one_group_with_group_zero_hyperparameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    sched.step()
    removed = model[2]
    model[2] = nn.Linear(4, 2)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    model.append(frozen)
    assert rebind_optimizer(opt, model) == {"added": 2, "removed": 2}
    assert len(opt.param_groups) == 2
    g0, g1 = opt.param_groups
    for key in ("lr", "betas", "eps", "weight_decay", "initial_lr"):
        assert g1[key] == g0[key], key
    assert [id(p) for p in g1["params"]] == [id(p) for p in model[2].parameters()]
    assert all(p not in opt.state for p in removed.parameters())
    assert all(p in opt.state for p in model[0].parameters())
    sched.step()  # an existing scheduler drives the new group too
    assert g1["lr"] == g0["lr"] == 3e-4 * 0.25
    model(torch.randn(3, 4)).sum().backward()
    before = model[2].weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model[2].weight)


def test_projector_keeps_old_targets_and_adopts_new_normalized_layers():
    torch.manual_seed(0)
    model = MLP(4, 2, hidden=(8,), norm="nap")  # 0 Linear, 1 NaPLayerNorm, 2 ReLU, 3 Linear
    opt = ProjectedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), NaPProjector(model))
    target = opt.projector.initial_weight_norms()["0"].clone()
    with torch.no_grad():
        model[0].weight.mul_(3.0)  # drifted; the target must stay the recorded one
    extra = nn.Sequential(nn.Linear(2, 5, bias=False), NaPLayerNorm(5), nn.ReLU(), nn.Linear(5, 2))
    model.append(extra)
    rebind_optimizer(opt, model)
    proj = opt.projector
    assert proj.layer_names == ["0", "4.0"]
    assert torch.equal(proj.initial_weight_norms()["0"], target)
    torch.testing.assert_close(proj.initial_weight_norms()["4.0"], extra[0].weight.norm())
    assert proj.norm_layer_names == ["1", "4.1"]
    proj.project()
    torch.testing.assert_close(model[0].weight.norm(), target)


def test_projector_keeps_output_option_and_recorded_output_targets():
    torch.manual_seed(0)
    model = MLP(4, 2, hidden=(8,), norm="nap")  # 3 Linear is the output layer
    opt = ProjectedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), NaPProjector(model, output="relax", output_rate=0.5))
    head_target = opt.projector.initial_output_weight_norms()["3"].clone()
    with torch.no_grad():
        model[3].weight.mul_(3.0)
    extra = nn.Sequential(nn.Linear(2, 5, bias=False), NaPLayerNorm(5), nn.ReLU(), nn.Linear(5, 2))
    model.append(extra)
    rebind_optimizer(opt, model)
    proj = opt.projector
    assert (proj.output, proj.output_rate) == ("relax", 0.5)
    assert proj.output_layer_names == ["3", "4.3"]
    assert torch.equal(proj.initial_output_weight_norms()["3"], head_target)  # recorded, not the drifted 3x
    torch.testing.assert_close(proj.initial_output_weight_norms()["4.3"], extra[3].weight.norm())
    proj.project()  # relax: half the excess over the target removed
    torch.testing.assert_close(model[3].weight.norm(), head_target * 2.0)
