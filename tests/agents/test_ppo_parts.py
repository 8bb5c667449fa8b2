import math

import pytest
import torch

from normrl.agents import PPO, PPOConfig
from normrl.agents.ppo.loss import ppo_loss
from normrl.agents.ppo.networks import sample_actions

from .helpers import ChainEnv, PositionValueNet


def test_ppo_loss_hand_computed():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    actions = torch.tensor([0, 1])
    old_log_probs = torch.log(torch.tensor([0.25, 0.4]))  # ratios 2.0 and 0.5
    advantages = torch.tensor([1.0, -2.0])
    values, old_values, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    loss, parts = ppo_loss(logits, values, actions, old_log_probs, old_values, advantages, returns,
                           clip_coef=0.2, clip_vloss=True, ent_coef=0.1, vf_coef=0.5, norm_adv=False)
    # pg: max(-1*2, -1*1.2) = -1.2 ; max(2*0.5, 2*0.8) = 1.6 ; mean 0.2
    assert parts["policy_loss"].item() == pytest.approx(0.2)
    # v: sample 0: max((1-2)^2, (0.2-2)^2)=3.24 ; sample 1: max(1, 1)=1 ; 0.5*mean = 1.06
    assert parts["value_loss"].item() == pytest.approx(1.06)
    ent = (math.log(2) + -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))) / 2
    assert parts["entropy"].item() == pytest.approx(ent)
    assert loss.item() == pytest.approx(0.2 - 0.1 * ent + 0.5 * 1.06)
    assert parts["clipfrac"].item() == 1.0
    r = torch.tensor([2.0, 0.5])
    assert parts["approx_kl"].item() == pytest.approx(((r - 1) - r.log()).mean().item())


def test_sample_actions_follow_the_policy():
    probs = torch.tensor([0.1, 0.6, 0.3])
    logits = probs.log().repeat(30000, 1)
    actions, log_probs = sample_actions(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(actions, minlength=3).float() / 30000
    assert torch.allclose(freq, probs, atol=0.01)
    assert torch.allclose(log_probs, probs.log()[actions])


@pytest.mark.parametrize("terminate", [False, True])
def test_truncation_bootstraps_from_final_obs(terminate):
    # ChainEnv: every episode ends after 3 steps, terminal obs position 3 (reset obs: 0).
    # Value = 10 * position, so a truncated step's stored reward must be 1 + gamma * 30;
    # a terminated one stays 1 and GAE stops there.
    env = ChainEnv(num_envs=2, length=3, terminate=terminate)
    gamma = 0.9
    cfg = PPOConfig(num_steps=6, num_minibatches=1, update_epochs=1, gamma=gamma, gae_lambda=1.0, lr_schedule="constant", monitor_every=0)
    agent = PPO(env, cfg, network=PositionValueNet())
    agent.learn(12, progress=False)
    expected_end = 1.0 if terminate else 1.0 + gamma * 30.0
    expected = torch.tensor([1.0, 1.0, expected_end] * 2).unsqueeze(1).repeat(1, 2)
    assert torch.allclose(agent.buffer.rewards, expected)
    assert torch.equal(agent.buffer.dones, torch.tensor([0.0, 0.0, 1.0] * 2).unsqueeze(1).repeat(1, 2))
