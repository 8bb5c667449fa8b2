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


def test_projection_keeps_hidden_norms_while_loss_falls_and_output_layer_moves():
    model = apply_nap(_mlp())
    projector = NaPProjector(model)
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
