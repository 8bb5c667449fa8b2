"""Normalize-and-Project (arXiv 2407.01800): apply_nap's rewrite and NaPProjector's math."""

import pytest
import torch
import torch.nn as nn

from normrl.normalization import NaPProjector, ProjectedOptimizer, apply_nap, create_norm_layer


def _mlp(in_dim=8, hidden=64, out_dim=1):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def _cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 4),
    )


def _regression(n=256, in_dim=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_dim, generator=g)
    y = torch.sin(2 * x[:, :1]) * x[:, 1:2] + 0.5 * x[:, 2:3] ** 2
    return x, y


def _train(model, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------------------- apply_nap


def test_apply_nap_inserts_norm_before_each_hidden_nonlinearity_of_mlp():
    model = _mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    weights = [lin.weight.detach().clone() for lin in linears]
    out_bias = linears[-1].bias.detach().clone()
    assert apply_nap(model) is model
    kinds = [type(m).__name__ for m in model]
    norm_cls = type(create_norm_layer("layernorm", 64)).__name__
    assert kinds == ["Linear", norm_cls, "ReLU", "Linear", norm_cls, "ReLU", "Linear"]
    assert [lin.bias is None for lin in linears] == [True, True, False]  # exactly the 2 hidden biases removed
    for lin, w in zip(linears, weights):
        assert torch.equal(lin.weight, w)  # weights preserved
    assert torch.equal(linears[-1].bias, out_bias)
    assert sum(p.numel() for p in model.parameters()) == (8 * 64 + 2 * 64) + (64 * 64 + 2 * 64) + (64 + 1)


def test_apply_nap_on_cnn_uses_channels_first_norms_and_counts():
    model = _cnn()
    apply_nap(model)
    conv_norm = type(create_norm_layer("layernorm", 8, layout="nchw"))
    lin_norm = type(create_norm_layer("layernorm", 16))
    assert [type(m) for m in model] == [
        nn.Conv2d, conv_norm, nn.ReLU, nn.Conv2d, conv_norm, nn.ReLU, nn.Flatten, nn.Linear, lin_norm, nn.ReLU, nn.Linear,
    ]
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is None for m in model) == 3
    assert model[-1].bias is not None
    # The conv norms are the nchw variant: same output as a freshly created one.
    x = torch.randn(2, 8, 5, 5)
    ref = create_norm_layer("layernorm", 8, layout="nchw")
    torch.testing.assert_close(model[1](x), ref(x))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_apply_nap_keeps_existing_norm_and_only_drops_bias():
    ln = nn.LayerNorm(16)
    model = nn.Sequential(nn.Linear(4, 16), ln, nn.ReLU(), nn.Linear(16, 2))
    apply_nap(model)
    assert len(model) == 4 and model[1] is ln
    assert model[0].bias is None and model[3].bias is not None


def test_apply_nap_handles_nested_sequentials_and_named_children():
    from collections import OrderedDict

    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 5), act1=nn.Tanh(), head=nn.Sequential(nn.Linear(5, 5), nn.ReLU()), out=nn.Linear(5, 1)))
    apply_nap(model)
    assert list(model._modules) == ["fc1", "fc1_norm", "act1", "head", "out"]
    assert len(model.head) == 3 and type(model.head[1]) is type(create_norm_layer("layernorm", 5))
    assert model.fc1.bias is None and model.head[0].bias is None and model.out.bias is not None


def test_apply_nap_errors_on_unsupported_structures():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x))

    with pytest.raises(ValueError, match="no hidden layer"):
        apply_nap(Custom())
    with pytest.raises(ValueError, match="Conv2d"):
        apply_nap(nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 1, 1)))
    with pytest.raises(ValueError, match="unknown norm"):
        apply_nap(_mlp(), norm="no-such-norm")


# ---------------------------------------------------------------------------- projection


def test_projection_keeps_hidden_norms_while_loss_falls_and_free_output_layer_moves():
    model = apply_nap(_mlp())
    projector = NaPProjector(model, output="free")
    assert projector.layer_names == ["0", "3"]  # the two hidden layers, not the output "6"
    init = {k: v.clone() for k, v in projector.initial_weight_norms().items()}
    out_norm0 = model[6].weight.norm().item()
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=1e-1), projector)
    x, y = _regression()
    losses = _train(model, opt, 500, x, y)
    assert sum(losses[-20:]) / 20 < 0.2 * losses[0]
    for name, norm in projector.weight_norms().items():
        torch.testing.assert_close(norm, init[name], rtol=1e-5, atol=0)
    assert abs(model[6].weight.norm().item() - out_norm0) / out_norm0 > 0.05  # output layer free
    assert projector.output_layer_names == [] and NaPProjector(model).output_layer_names == ["6"]  # default: projected


def test_without_projection_the_hidden_norms_grow():
    """The effect NaP removes: with norms but no projection, Adam grows ‖W‖."""
    model = apply_nap(_mlp())
    projector = NaPProjector(model)
    init = projector.initial_weight_norms()
    init = {k: v.clone() for k, v in init.items()}
    x, y = _regression()
    _train(model, torch.optim.Adam(model.parameters(), lr=1e-1), 200, x, y)
    for name, norm in projector.weight_norms().items():
        assert norm > 1.5 * init[name]


def test_output_invariant_to_scaling_a_projected_weight():
    model = apply_nap(_mlp()).eval()
    x = torch.randn(32, 8)
    before = model(x)
    with torch.no_grad():
        model[3].weight.mul_(3.7)
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        model[6].weight.mul_(3.7)  # the output layer is not scale-invariant
    assert not torch.allclose(model(x), before, rtol=1e-2, atol=1e-3)


def test_per_row_projection_keeps_each_row_norm():
    model = apply_nap(_cnn())
    projector = NaPProjector(model, per_row=True)
    init = {k: v.clone() for k, v in projector.initial_weight_norms().items()}
    assert [v.shape[0] for v in init.values()] == [8, 8, 16]
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=5e-2), projector)
    x = torch.randn(16, 3, 8, 8)
    y = torch.randn(16, 4)
    _train(model, opt, 30, x, y)
    for name, rows in projector.weight_norms().items():
        torch.testing.assert_close(rows, init[name], rtol=1e-5, atol=0)
    layer = model[0].weight.detach()
    torch.testing.assert_close(layer.flatten(1).norm(dim=1), init["0"], rtol=1e-5, atol=0)


def test_joint_norm_param_projection_keeps_joint_norm_and_free_does_not():
    x, y = _regression()
    for mode in ("joint", "free"):
        torch.manual_seed(0)
        model = apply_nap(_mlp())
        projector = NaPProjector(model, norm_params=mode)
        opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=1e-1), projector)
        _train(model, opt, 100, x, y)
        ln = model[1]
        joint = torch.sqrt(ln.weight.norm() ** 2 + ln.bias.norm() ** 2)
        if mode == "joint":
            assert projector.norm_layer_names == ["1", "4"]
            torch.testing.assert_close(joint, torch.tensor(64.0).sqrt(), rtol=1e-5, atol=0)  # γ=1, β=0 at init
            assert ln.bias.abs().max() > 1e-2  # the offset did move: mass shifts inside the pair
        else:
            assert projector.norm_layer_names == []
            assert abs(joint.item() - 8.0) > 1e-2


def test_every_k_projects_only_every_k_steps():
    model = apply_nap(_mlp())
    projector = NaPProjector(model)
    w0 = projector.initial_weight_norms()["3"].clone()
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=1e-1), projector, every=3)
    x, y = _regression()
    off = []
    for step in range(1, 7):
        _train(model, opt, 1, x, y)
        off.append(abs(model[3].weight.norm().item() - w0.item()) / w0.item() > 1e-4)
    assert off == [True, True, False, True, True, False]
    assert opt.num_steps == 6


def test_projector_state_dict_round_trip_restores_recorded_norms():
    model = apply_nap(_mlp())
    saved = NaPProjector(model).state_dict()
    with torch.no_grad():
        model[0].weight.mul_(2.0)
        model[1].weight.mul_(3.0)
    fresh = NaPProjector(model)  # records the changed norms
    fresh.load_state_dict(saved)
    fresh.project()
    torch.testing.assert_close(model[0].weight.norm(), saved["weight_norms"][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(model[1].weight.norm(), torch.tensor(8.0), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="per_row"):
        NaPProjector(model, per_row=True).load_state_dict(saved)


def test_projector_refuses_unnormalized_or_biased_layers():
    with pytest.raises(ValueError, match="apply_nap"):
        NaPProjector(_mlp())  # no normalization at all: projecting would change the function
    with pytest.raises(ValueError, match="bias"):
        NaPProjector(nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1)))
    with pytest.raises(ValueError, match="norm_params"):
        NaPProjector(apply_nap(_mlp()), norm_params="separate")


def test_include_and_exclude_override_the_rule():
    model = apply_nap(_mlp())
    assert NaPProjector(model, exclude=["3"]).layer_names == ["0"]
    assert NaPProjector(model, exclude=[model[0]]).layer_names == ["3"]
    assert NaPProjector(model, include=["6"]).layer_names == ["6"]
    with pytest.raises(ValueError, match="matches no module"):
        NaPProjector(model, include=["fc*"])
    with pytest.raises(ValueError, match="not part of the model"):
        NaPProjector(model, exclude=[nn.Linear(2, 2)])


def test_nap_demo_command_writes_config_and_summary(tmp_path, capsys):
    import json

    from normrl.cli import main

    assert main(["nap-demo", "--tasks", "2", "--steps-per-task", "5", "--logdir", str(tmp_path), "--device", "cpu", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"]["tasks"] == 2 and config["config"]["steps_per_task"] == 5
    init = summary["initial_hidden_weight_norms"]
    assert init["nap"] == init["plain"]  # same initial weights
    for task in summary["per_task"]["nap"]:
        assert task["hidden_weight_norms"] == pytest.approx(init["nap"], rel=1e-5)
    assert summary["per_task"]["plain"][-1]["hidden_weight_norms"] != pytest.approx(init["plain"], rel=1e-3)
    assert "plain loss" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["nap-demo", "--tasks", "0", "--logdir", str(tmp_path)])
    assert exc.value.code == 2


@pytest.mark.parametrize("build", ["mlp", "nature_cnn", "mlp_apply_nap"])
def test_projector_on_library_networks_selects_every_layer_but_the_head(build):
    from normrl.networks import MLP, NatureCNN

    model = {
        "mlp": lambda: MLP(8, 3, hidden=(32, 32), norm="nap"),
        "nature_cnn": lambda: NatureCNN(4, 18, norm="nap"),
        "mlp_apply_nap": lambda: apply_nap(MLP(8, 3, hidden=(32, 32))),
    }[build]()
    layers = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    projector = NaPProjector(model)
    assert projector.layer_names == layers[:-1]
    assert len(projector.norm_layer_names) == len(layers) - 1


# ---------------------------------------------------------------------------- output layer


def _classifier(seed=0):
    from normrl.networks import MLP

    torch.manual_seed(seed)
    return MLP(8, 4, hidden=(32, 32), norm="nap")


def _classification_data(n=128, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def _train_ce(model, opt, steps, x, y):
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("output", ["project", "project_rows"])
def test_output_projection_keeps_the_head_norm_while_the_loss_falls(output):
    model = _classifier()
    head = model[-1]
    projector = NaPProjector(model, output=output)
    assert projector.output_layer_names == ["6"] and projector.layer_names == ["0", "3"]
    w0 = head.weight.detach().clone()
    b0 = head.bias.detach().clone()
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=5e-2), projector)
    x, y = _classification_data()
    losses = _train_ce(model, opt, 300, x, y)
    assert sum(losses[-10:]) / 10 < 0.3 * losses[0]
    if output == "project":
        torch.testing.assert_close(head.weight.norm(), w0.norm(), rtol=1e-5, atol=0)
        assert (head.weight.norm(dim=1) - w0.norm(dim=1)).abs().max() > 1e-2  # rows may trade norm
    else:
        torch.testing.assert_close(head.weight.norm(dim=1), w0.norm(dim=1), rtol=1e-5, atol=0)
    assert (head.weight - w0).norm() > 0.5 * w0.norm()  # the head's direction did move
    assert (head.bias - b0).abs().max() > 1e-2  # the head's bias is free
    for name, norm in projector.weight_norms().items():  # hidden layers as before
        torch.testing.assert_close(norm, projector.initial_weight_norms()[name], rtol=1e-5, atol=0)
    torch.testing.assert_close(projector.output_weight_norms()["6"], projector.initial_output_weight_norms()["6"], rtol=1e-5, atol=0)


def test_output_free_leaves_the_head_to_grow():
    """The previous behaviour, still available: on the same problem the head's norm grows."""
    model = _classifier()
    projector = NaPProjector(model, output="free")
    assert projector.output_layer_names == [] and projector.output_weight_norms() == {}
    n0 = model[-1].weight.norm().item()
    opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=5e-2), projector)
    x, y = _classification_data()
    _train_ce(model, opt, 300, x, y)
    assert model[-1].weight.norm().item() > 2.0 * n0


def test_output_option_rejects_unknown_choices_and_lists_them():
    from normrl.normalization.nap import OUTPUT_CHOICES

    with pytest.raises(ValueError, match="'free', 'project', 'project_rows', 'relax'"):
        NaPProjector(_classifier(), output="normalize")
    assert OUTPUT_CHOICES == ("free", "project", "project_rows", "relax")


def test_output_layers_on_library_networks_and_headless_torsos():
    from normrl.networks import MLP, NatureCNN

    cnn = NatureCNN(4, 18, norm="nap")
    names = [n for n, m in cnn.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert NaPProjector(cnn, output="project").output_layer_names == names[-1:]
    torso = MLP(8, None, hidden=(16, 16), norm="nap")  # no output layer: nothing extra to project
    assert NaPProjector(torso, output="project").output_layer_names == []
    two_heads = nn.ModuleDict(dict(actor=MLP(8, 3, hidden=(16,), norm="nap"), critic=MLP(8, 1, hidden=(16,), norm="nap")))
    projector = NaPProjector(two_heads, output="project")
    assert projector.output_layer_names == ["actor.3", "critic.3"]
    assert NaPProjector(two_heads, output="project", exclude=["critic.3"]).output_layer_names == ["actor.3"]
    only_actor = NaPProjector(two_heads, output="project", parameters=two_heads["actor"].parameters())
    assert only_actor.output_layer_names == ["actor.3"] and only_actor.layer_names == ["actor.0"]


def test_output_norms_round_trip_and_old_states_load_as_free():
    model = _classifier()
    saved = NaPProjector(model, output="project").state_dict()
    with torch.no_grad():
        model[-1].weight.mul_(5.0)
    fresh = NaPProjector(model, output="project")
    fresh.load_state_dict(saved)
    fresh.project()
    torch.testing.assert_close(model[-1].weight.norm(), saved["output_norms"][0], rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="output"):
        NaPProjector(model, output="project_rows").load_state_dict(saved)
    old = {k: v for k, v in NaPProjector(model, output="free").state_dict().items() if not k.startswith("output")}
    NaPProjector(model, output="free").load_state_dict(old)  # saved before the option existed
    with pytest.raises(ValueError, match="output"):
        NaPProjector(model, output="project").load_state_dict(old)


def test_nap_optimizer_passes_the_output_option():
    from normrl.normalization.projected_optimizer import NaPOptimizer

    model = _classifier()
    opt = NaPOptimizer(model.parameters(), lr=1e-2, output="project_rows")
    assert opt.projector.output == "project_rows" and opt.projector.output_layer_names == ["6"]
    assert ProjectedOptimizer.wrapping(output="project")(model.parameters(), lr=1e-2).projector.output == "project"


def test_output_relax_shrinks_only_the_excess_norm_by_the_rate():
    model = _classifier()
    head = model[-1]
    projector = NaPProjector(model, output="relax", output_rate=0.25)
    n0 = projector.initial_output_weight_norms()["6"].item()
    with torch.no_grad():
        head.weight.mul_(3.0)
    direction = head.weight.detach() / head.weight.norm()
    projector.project()
    torch.testing.assert_close(head.weight.norm().item(), n0 + 0.75 * (3.0 * n0 - n0), rtol=1e-6, atol=0)
    torch.testing.assert_close(head.weight / head.weight.norm(), direction, rtol=1e-6, atol=1e-7)  # direction kept
    for _ in range(200):
        projector.project()
    torch.testing.assert_close(head.weight.norm().item(), n0 + 2.0 * n0 * 0.75 ** 201, rtol=1e-5, atol=0)
    with torch.no_grad():
        head.weight.mul_(0.5 / (head.weight.norm().item() / n0))  # below the initial norm: left alone
    projector.project()
    torch.testing.assert_close(head.weight.norm().item(), 0.5 * n0, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="output_rate"):
        NaPProjector(model, output="relax", output_rate=0.0)


def test_output_relax_with_rate_one_is_the_projection():
    x, y = _classification_data()
    heads = []
    for output, kw in (("project", {}), ("relax", {"output_rate": 1.0})):
        model = _classifier(seed=5)
        opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=5e-2), NaPProjector(model, output=output, **kw))
        _train_ce(model, opt, 20, x, y)
        heads.append(model[-1].weight.detach())
    torch.testing.assert_close(heads[0], heads[1], rtol=1e-5, atol=1e-6)
