"""Which layers are hidden, output, head and at which depth."""
import pytest
import torch.nn as nn

from normrl.networks import MLP, MinAtarCNN, ResidualMLP, ResNet18
from normrl.plasticity.layers import head_slots, hidden_weight_layers, layer_blocks, output_layers

from .nets import TwoHeads


@pytest.mark.parametrize(
    "model,outputs",
    [
        (MLP(4, 2, hidden=(8, 8), norm="layernorm"), ["6"]),
        (MinAtarCNN(4, 3), ["6"]),
        (TwoHeads(), ["actor.2", "critic.2"]),
        (ResidualMLP(8, 3, width=16, depth=2), ["head"]),  # called in forward(), no chain
        (ResNet18(10), ["classifier"]),
    ],
)
def test_output_layers(model, outputs):
    assert [n for n, _ in output_layers(model)] == outputs
    hidden = {n for n, _ in hidden_weight_layers(model)}
    assert not hidden & set(outputs) and hidden


def test_head_slots_and_blocks():
    model = nn.Sequential(nn.Flatten(), MLP(4, 2, hidden=(8, 8), norm="layernorm"))
    (chain, slots), = head_slots(model, 2)
    assert [s.name for s in slots] == ["1.3", "1.4", "1.5", "1.6"]
    blocks, outside = layer_blocks(model)
    assert [(n, len(p), d) for n, p, d in blocks] == [("1.0", 4, 1), ("1.3", 4, 2), ("1.6", 2, 3)]
    assert outside == []
