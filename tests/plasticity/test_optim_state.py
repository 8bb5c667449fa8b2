"""Zeroing the optimizer state of exactly the given rows, columns or entries."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from normrl.normalization import NaPProjector, ProjectedOptimizer
from normrl.networks import MLP
from normrl.plasticity import optim_state
from normrl.plasticity.optim_state import zero_state_slices


def stepped(model, opt, steps=3):
    for i in range(steps):
        x = torch.randn(8, *([model[0].in_features] if isinstance(model[0], nn.Linear) else [3, 6, 6]), generator=torch.Generator().manual_seed(i))
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


def clone_state(opt, p):
    return {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_rows_are_zeroed_and_nothing_else(amsgrad):
    net = MLP(4, 3, hidden=(6,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, amsgrad=amsgrad)
    stepped(net, opt)
    w = net[0].weight
    before = clone_state(opt, w)
    rows = torch.tensor([1, 4])
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    assert zero_state_slices(opt, w, rows, 0) == len(keys)
    after = opt.state[w]
    keep = torch.tensor([0, 2, 3, 5])
    for k in keys:
        assert torch.count_nonzero(before[k][rows]) > 0
        assert torch.all(after[k][rows] == 0)
        assert torch.equal(after[k][keep], before[k][keep])
    assert torch.equal(after["step"], before["step"])  # the per-tensor step is kept


def test_columns_of_a_channels_last_conv_weight_under_fused_adam():
    def build():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten(), nn.Linear(5 * 2 * 2, 2))
        return net

    ref, cl = build(), build()
    cl.to(memory_format=torch.channels_last)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=False)
    opt_cl = torch.optim.Adam(cl.parameters(), lr=1e-2, fused=True)
    stepped(ref, opt_ref)
    stepped(cl, opt_cl)
    w_ref, w_cl = ref[2].weight, cl[2].weight
    assert w_cl.is_contiguous(memory_format=torch.channels_last)
    assert opt_cl.state[w_cl]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    cols = torch.tensor([0, 3])
    zero_state_slices(opt_ref, w_ref, cols, 1)
    zero_state_slices(opt_cl, w_cl, cols, 1)
    for k in ("exp_avg", "exp_avg_sq"):
        got, want = opt_cl.state[w_cl][k], opt_ref.state[w_ref][k]
        assert torch.all(got[:, cols] == 0)
        torch.testing.assert_close(got, want)  # the same logical entries, whatever the layout


def test_through_projected_optimizer_and_sgd_momentum():
    net = MLP(4, 3, hidden=(6,), norm="nap")
    opt = ProjectedOptimizer(torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9), NaPProjector(net))
    stepped(net, opt)
    w = net[3].weight  # the output layer: zero input columns 2 and 5
    buf = opt.optimizer.state[w]["momentum_buffer"].clone()
    assert zero_state_slices(opt, w, torch.tensor([2, 5]), 1) == 1
    got = opt.optimizer.state[w]["momentum_buffer"]
    assert torch.all(got[:, [2, 5]] == 0) and torch.equal(got[:, [0, 1, 3, 4]], buf[:, [0, 1, 3, 4]])


def test_bias_entries_and_no_state_before_the_first_step():
    net = MLP(4, 3, hidden=(6,))
    opt = torch.optim.AdamW(net.parameters())
    assert zero_state_slices(opt, net[0].bias, torch.tensor([0]), 0) == 0
    stepped(net, opt, steps=1)
    assert zero_state_slices(opt, net[0].bias, torch.tensor([0]), 0) == 2
    assert opt.state[net[0].bias]["exp_avg"][0] == 0 and opt.state[net[0].bias]["exp_avg"][1] != 0


def test_unknown_state_is_left_alone_with_a_warning(monkeypatch):
    monkeypatch.setattr(optim_state, "_warned", set())
    net = MLP(4, 3, hidden=(6,))
    opt = torch.optim.Rprop(net.parameters())  # its step_size must not become 0
    stepped(net, opt, steps=2)
    before = clone_state(opt, net[0].weight)
    with pytest.warns(UserWarning, match="not a known zero-initialized accumulator"):
        assert zero_state_slices(opt, net[0].weight, torch.tensor([0]), 0) == 0
    for k, v in before.items():
        assert torch.equal(opt.state[net[0].weight][k], v)


def test_bad_arguments():
    net = MLP(4, 3, hidden=(6,))
    other = nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(ValueError, match="not updated by this optimizer"):
        zero_state_slices(opt, other.weight, torch.tensor([0]))
    with pytest.raises(ValueError, match="dim must be"):
        zero_state_slices(opt, net[0].bias, torch.tensor([0]), 1)
