import pytest
import torch

from normrl.agents.common.gae import compute_gae


def test_gae_matches_hand_computed_example():
    # One env, 3 steps, episode ends after step 1 (index 1).
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    next_value = torch.tensor([4.0])
    # delta_2 = 3 + 0.9*4 - 2 = 4.6 ; A_2 = 4.6
    # delta_1 = 2 + 0 - 1 = 1.0 ; A_1 = 1.0 (episode ended: no recursion)
    # delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4 ; A_0 = 1.4 + 0.9*0.5*1.0 = 1.85
    adv, ret = compute_gae(rewards, values, dones, next_value, gamma, lam)
    assert torch.allclose(adv.squeeze(1), torch.tensor([1.85, 1.0, 4.6]))
    assert torch.allclose(ret, adv + values)


def test_gae_lambda_one_is_discounted_return_minus_value():
    gamma = 0.97
    rewards = torch.rand(6, 3)
    values = torch.rand(6, 3)
    dones = torch.zeros(6, 3)
    next_value = torch.rand(3)
    adv, ret = compute_gae(rewards, values, dones, next_value, gamma, 1.0)
    expected = next_value.clone()
    for t in reversed(range(6)):
        expected = rewards[t] + gamma * expected
        assert torch.allclose(ret[t], expected, atol=1e-6)


def test_gae_shape_errors():
    with pytest.raises(ValueError, match="share a"):
        compute_gae(torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3, 2), torch.zeros(2), 0.9, 0.9)
    with pytest.raises(ValueError, match="next_value"):
        compute_gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3), 0.9, 0.9)


@pytest.mark.parametrize("num_steps", [1, 2, 5, 128])
def test_gae_equals_the_step_by_step_recursion(num_steps):
    # compute_gae solves the recursion by recursive doubling; compare with the recursion
    g = torch.Generator().manual_seed(num_steps)
    n, gamma, lam = 7, 0.99, 0.95
    rewards, values = torch.randn(num_steps, n, generator=g), torch.randn(num_steps, n, generator=g)
    dones = (torch.rand(num_steps, n, generator=g) < 0.1).float()
    next_value = torch.randn(n, generator=g)
    expected = torch.empty_like(values)
    last = torch.zeros(n)
    for t in reversed(range(num_steps)):
        next_v = next_value if t == num_steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_v * (1 - dones[t]) - values[t]
        last = delta + gamma * lam * (1 - dones[t]) * last
        expected[t] = last
    adv, ret = compute_gae(rewards, values, dones, next_value, gamma, lam)
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret, expected + values, rtol=1e-5, atol=1e-5)
