"""ProjectedOptimizer / NaPOptimizer behave as one torch optimizer; optimizer-state reset."""
import io

import pytest
import torch
import torch.nn as nn

from normrl.normalization import NaPProjector, ProjectedOptimizer, apply_nap, reset_optimizer_state
from normrl.normalization.projected_optimizer import NaPAdam, NaPOptimizer, NaPSGD


def _nap_mlp(seed=0):
    torch.manual_seed(seed)
    return apply_nap(nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2)))


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 6, generator=g), torch.randn(64, 2, generator=g)


def _step(model, opt, seed):
    x, y = _batch(seed)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _wrapped(model, lr=1e-2, every=1):
    return ProjectedOptimizer(torch.optim.Adam(model.parameters(), lr=lr), NaPProjector(model), every=every)


def test_is_an_optimizer_sharing_the_inner_objects():
    model = _nap_mlp()
    inner = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt = ProjectedOptimizer(inner, NaPProjector(model))
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state and opt.defaults is inner.defaults
    _step(model, opt, 0)
    assert len(opt.state) == len(list(model.parameters()))  # Adam state created through the wrapper
    opt.load_state_dict(opt.state_dict())  # the inner replaces its dicts here
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    extra = nn.Parameter(torch.zeros(3))
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert inner.param_groups[-1]["params"][0] is extra and len(opt.param_groups) == 2


def test_lr_schedulers_drive_the_inner_optimizer():
    model = _nap_mlp()
    opt = _wrapped(model, lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    for _ in range(3):
        _step(model, opt, 0)
        sched.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 4)
    opt2 = _wrapped(_nap_mlp(), lr=0.1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    for _ in range(5):
        opt2.step()
        cos.step()
    assert opt2.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # cosine midpoint


def test_step_runs_closure_and_hooks():
    model = _nap_mlp()
    opt = _wrapped(model)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    x, y = _batch(1)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() > 0
    assert calls == ["pre", "post"]


def test_state_dict_round_trip_reproduces_next_step_bitwise():
    model = _nap_mlp(seed=0)
    opt = _wrapped(model, every=2)
    for s in range(3):  # step 4 will project: only if the counter is restored
        _step(model, opt, s)
    buffer = io.BytesIO()  # a real checkpoint (the inner state dict holds live tensors)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer)
    model_state, opt_state = checkpoint["model"], checkpoint["opt"]
    assert opt_state["projected_optimizer"]["num_steps"] == 3

    clone = _nap_mlp(seed=123)  # different init: different recorded norms until loaded
    clone_opt = _wrapped(clone, every=2)
    clone.load_state_dict(model_state)
    clone_opt.load_state_dict(opt_state)
    _step(model, opt, 3)
    _step(clone, clone_opt, 3)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    assert clone_opt.num_steps == 4
    with pytest.raises(ValueError, match="every"):
        _wrapped(_nap_mlp(), every=1).load_state_dict(opt_state)


def test_sb3_style_construction_finds_the_module_from_its_parameters():
    class Policy(nn.Module):
        """Mimics SB3: self.optimizer_class(self.parameters(), lr=..., **optimizer_kwargs)."""

        def __init__(self, optimizer_class, optimizer_kwargs):
            super().__init__()
            self.q_net = _nap_mlp()
            self.q_net_target = _nap_mlp()
            self.optimizer = optimizer_class(self.q_net.parameters(), lr=3e-4, **optimizer_kwargs)

    policy = Policy(NaPAdam, {"eps": 1e-5})
    opt = policy.optimizer
    assert isinstance(opt.optimizer, torch.optim.Adam) and opt.defaults["eps"] == 1e-5 and opt.defaults["lr"] == 3e-4
    assert opt.projector.layer_names == ["0", "3"]
    target_w = policy.q_net_target[0].weight.detach().clone()
    assert all(w is p for w, p in zip(opt.projector._weights, (policy.q_net[0].weight, policy.q_net[3].weight)))

    policy2 = Policy(ProjectedOptimizer.wrapping(torch.optim.SGD, every=2, per_row=True), {"momentum": 0.9})
    assert isinstance(policy2.optimizer.optimizer, torch.optim.SGD) and policy2.optimizer.every == 2
    assert policy2.optimizer.projector.per_row
    assert torch.equal(policy.q_net_target[0].weight, target_w)

    # A parent module's generator restricted to the params of that module only.
    parent = nn.ModuleDict({"a": _nap_mlp(), "b": _nap_mlp()})
    both = NaPSGD(parent.parameters(), lr=0.1)
    assert both.projector.layer_names == ["a.0", "a.3", "b.0", "b.3"]
    only_a = NaPOptimizer(list(parent["a"].parameters()), lr=0.1, model=parent)
    assert only_a.projector.layer_names == ["a.0", "a.3"]


def test_wrong_inputs_raise_clear_errors():
    model = _nap_mlp()
    with pytest.raises(ValueError, match="model="):
        NaPAdam(list(model.parameters()), lr=1e-3)
    with pytest.raises(TypeError, match="Optimizer"):
        ProjectedOptimizer(model, NaPProjector(model))
    with pytest.raises(TypeError, match="project"):
        ProjectedOptimizer(torch.optim.Adam(model.parameters()), object())
    with pytest.raises(ValueError, match="every"):
        _wrapped(model, every=0)
    with pytest.raises(TypeError, match="already"):
        ProjectedOptimizer(_wrapped(model), NaPProjector(model))
    with pytest.raises(TypeError, match="inner"):
        ProjectedOptimizer.wrapping(nn.Linear)
    text = repr(_wrapped(model, every=5))
    assert text.startswith("ProjectedOptimizer(every=5") and "Adam" in text and "NaPProjector" in text


def test_reset_optimizer_state_through_the_wrapper_restarts_adam():
    model = _nap_mlp(seed=0)
    opt = _wrapped(model)
    for s in range(3):
        _step(model, opt, s)
    assert reset_optimizer_state(opt, params=model[0]) == 1  # one module: its weight (bias was removed)
    assert model[0].weight not in opt.state and model[3].weight in opt.state
    assert reset_optimizer_state(opt) == len(list(model.parameters())) - 1
    assert len(opt.state) == 0

    # After a full reset the next step equals a fresh optimizer's first step.
    fresh_model = _nap_mlp(seed=0)
    fresh_model.load_state_dict(model.state_dict())
    fresh = _wrapped(fresh_model)
    fresh.projector.load_state_dict(opt.projector.state_dict())
    _step(model, opt, 7)
    _step(fresh_model, fresh, 7)
    for a, b in zip(model.parameters(), fresh_model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not a parameter"):
        reset_optimizer_state(opt, params=[torch.zeros(2)])


def test_real_stable_baselines3_ppo_uses_nap_adam_and_checkpoints_it(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class NormedExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space):
            super().__init__(observation_space, features_dim=32)
            self.net = apply_nap(nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()))

        def forward(self, x):
            return self.net(x)

    # The policy-logit head is projected (the default output="project"); the value head,
    # a regression head whose range a projection would cap, is excluded.
    nap_kwargs = dict(eps=1e-5, exclude=["value_net"])
    kwargs = dict(features_extractor_class=NormedExtractor, net_arch=[], optimizer_class=NaPAdam, optimizer_kwargs=nap_kwargs)
    model = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, learning_rate=0.05, seed=0, device="cpu", policy_kwargs=kwargs)
    opt = model.policy.optimizer
    assert type(opt) is NaPAdam and opt.defaults["eps"] == 1e-5
    assert opt.projector.layer_names == ["features_extractor.net.0", "features_extractor.net.3"]
    assert opt.projector.output_layer_names == ["action_net"]
    init = {k: v.clone() for k, v in opt.projector.initial_weight_norms().items()}
    action0 = model.policy.action_net.weight.detach().clone()
    value0 = model.policy.value_net.weight.norm().item()
    model.learn(128)
    assert opt.num_steps == 8  # 2 rollouts x 2 epochs x 2 minibatches
    for name, norm in opt.projector.weight_norms().items():
        torch.testing.assert_close(norm, init[name], rtol=1e-5, atol=0)
    torch.testing.assert_close(model.policy.action_net.weight.norm(), action0.norm(), rtol=1e-5, atol=0)
    assert not torch.allclose(model.policy.action_net.weight, action0)  # its direction learned
    assert model.policy.value_net.weight.norm().item() != pytest.approx(value0, rel=1e-4)
    model.save(tmp_path / "ppo_nap.zip")
    loaded = sb3.PPO.load(tmp_path / "ppo_nap.zip", device="cpu")
    assert type(loaded.policy.optimizer) is NaPAdam and loaded.policy.optimizer.num_steps == 8


def test_build_optimizer_projects_the_head_by_default_and_frees_it_on_request():
    from normrl.normalization.projected_optimizer import build_optimizer

    model = _nap_mlp()
    supervised = build_optimizer(model, "nap", torch.optim.Adam, {"lr": 1e-3})
    assert supervised.projector.output == "project" and supervised.projector.output_layer_names == ["6"]  # apply_nap inserted two norms
    rl = build_optimizer(model, "nap", torch.optim.Adam, {"lr": 1e-3}, nap_output="free")
    assert rl.projector.output_layer_names == []
    assert type(build_optimizer(model, "layernorm", torch.optim.Adam, {"lr": 1e-3})) is torch.optim.Adam
