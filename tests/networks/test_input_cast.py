"""InputCast (the one input-casting module) and build_network's choice of network."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from normrl.networks import MLP, InputCast, MinAtarCNN, NatureCNN, build_network


def test_input_cast_divides_uint8_and_casts_everything_else():
    x = torch.randint(0, 256, (6, 4, 84, 84), dtype=torch.uint8)
    assert torch.equal(InputCast(255.0)(x), x.float() / 255)  # the same division, bit for bit
    assert torch.equal(InputCast()(x), x.float())  # no scale: MinAtar-style 0/1 grids keep their values
    b = x > 100
    assert torch.equal(InputCast(255.0)(b), b.float())  # only uint8 is scaled
    f = torch.rand(3, 4)
    assert InputCast(255.0)(f) is f  # float32 passes through untouched
    assert InputCast()(f.double()).dtype == torch.float32
    with pytest.raises(ValueError, match="uint8_scale"):
        InputCast(0.0)


def test_nature_cnn_casts_uint8_frames_in_either_layout():
    torch.manual_seed(0)
    net = NatureCNN(4, 3)
    fast = NatureCNN(4, 3, channels_last=True)
    fast.load_state_dict(net.state_dict())
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        want = net(x.float() / 255)
        torch.testing.assert_close(net(x), want, rtol=0, atol=0)
        torch.testing.assert_close(fast(x), want)


def test_build_network_picks_by_observation_shape():
    vec = build_network(gym.spaces.Box(-1, 1, (5,), np.float32), 2, hidden=(8,))
    assert isinstance(vec[0], InputCast) and isinstance(vec[1], MLP) and vec(torch.zeros(3, 5)).shape == (3, 2)
    grid = build_network(gym.spaces.Box(0, 1, (7, 10, 10), np.uint8), 4)
    assert isinstance(grid, MinAtarCNN) and grid(torch.zeros(2, 7, 10, 10, dtype=torch.uint8)).shape == (2, 4)
    frames = build_network(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), 6)
    assert isinstance(frames, NatureCNN) and frames[1].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="no default network"):
        build_network(gym.spaces.Box(0, 1, (2, 3), np.float32), 2)
    with pytest.raises(ValueError, match="Box observation space"):
        build_network(gym.spaces.Discrete(3), 2)
