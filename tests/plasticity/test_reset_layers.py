"""Layer resets: the head equals a fresh init under the same seed, its optimizer state is
gone, everything else is untouched."""
import copy

import pytest
import torch

from normrl.plasticity import create_intervention

from .nets import TwoHeads, ln_mlp, snapshot, train_step


def _fresh_like(modules, generator_state):
    g = torch.Generator()
    g.set_state(generator_state)
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=g).item())
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    out = []
    for m in modules:
        c = copy.deepcopy(m)
        if hasattr(c, "reset_parameters"):
            c.reset_parameters()
        else:  # normrl's LayerNorm: deterministic gain 1, offset 0
            with torch.no_grad():
                c.weight.fill_(1.0)
                c.bias.zero_()
        out.append(c)
    torch.set_rng_state(rng)
    return out


def test_reset_equals_fresh_init_and_clears_exactly_its_optimizer_state():
    model, opt = ln_mlp(hidden=(16, 16))  # 0 Linear, 1 LN, 2 ReLU, 3 Linear, 4 LN, 5 ReLU, 6 Linear
    iv = create_intervention("reset_layers", k=2, seed=11)
    iv.attach(model, opt)
    assert [n for n, _ in iv.reset_modules()] == ["3", "4", "6"]
    for s in range(1, 4):
        train_step(model, opt, None, s)
    before = snapshot(model)
    state_before = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    expected = _fresh_like([model[3], model[4], model[6]], iv.generator.get_state())
    iv.on_task_end(0)
    assert set(iv.last_event) == {"reset/3", "reset/4", "reset/6"}
    for got, exp in zip([model[3], model[4], model[6]], expected):
        for p, q in zip(got.parameters(), exp.parameters()):
            assert torch.equal(p, q)
            assert p not in opt.state or not opt.state[p]
    for name in ("0.weight", "1.weight", "1.bias"):
        p = dict(model.named_parameters())[name]
        assert torch.equal(p, before[name])
        for key, value in state_before[id(p)].items():
            assert torch.equal(opt.state[p][key], value)
    train_step(model, opt, None, 4)  # the reset parameters are still the optimizer's
    assert all(not torch.equal(p, q) for p, q in zip(model[6].parameters(), expected[2].parameters()))


def test_periodic_reset_and_validation():
    model, opt = ln_mlp()
    iv = create_intervention("reset_layers", every=2)
    iv.attach(model, opt)
    fired = []
    for step in range(1, 5):
        iv.after_step(step)
        fired.append(bool(iv.last_event))
    assert fired == [False, True, False, True]
    iv.on_task_end(0)
    assert iv.last_event == {}
    with pytest.raises(ValueError, match="fewer than k=4"):
        create_intervention("reset_layers", k=4).attach(model, opt)


def test_chains_select_actor_critic_heads():
    torch.manual_seed(0)
    model = TwoHeads()
    opt = torch.optim.Adam(model.parameters())
    names = lambda chains: [n for n, _ in _attached(model, opt, chains).reset_modules()]
    assert names("all") == ["actor.2", "critic.2"]
    assert names("last") == ["critic.2"]
    assert names("actor") == ["actor.2"]
    with pytest.raises(ValueError, match="no chain named 'policy'"):
        names("policy")


def _attached(model, opt, chains):
    iv = create_intervention("reset_layers", chains=chains)
    iv.attach(model, opt)
    return iv
