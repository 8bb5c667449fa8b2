"""The speed choices the agents make by default (docs/benchmarks.md) are really taken,
and survive checkpoints: fused Adam, a channels-last NatureCNN with a channels-last
replay buffer for Atari frames, state layouts after loading, Atari resumption."""
import copy

import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.agents.common.build import align_optimizer_state, prefers_channels_last
from normrl.agents.dqn.networks import epsilon_greedy
from normrl.envs import make_env

CPU_FUSED_ADAM = torch.torch_version.TorchVersion(torch.__version__) >= (2, 4)
needs_cpu_fused_adam = pytest.mark.skipif(not CPU_FUSED_ADAM, reason="torch < 2.4 has no CPU fused Adam")

SMALL_DQN = dict(buffer_size=256, learning_starts=32, batch_size=8, train_freq=4, monitor_every=0, log_interval=10**9)


def _atari_dqn(**kw):
    return DQN(make_env("ALE/Breakout-v5", 2, "cpu", seed=0), DQNConfig(**{**SMALL_DQN, **kw}))


@needs_cpu_fused_adam
def test_default_agents_use_fused_adam_unless_told_not_to():
    env = make_env("CartPole-v1", 2, "cpu", seed=0)
    assert PPO(env, PPOConfig(monitor_every=0)).optimizer.param_groups[0]["fused"] is True
    assert DQN(env, DQNConfig(monitor_every=0)).optimizer.param_groups[0]["fused"] is True
    assert not DQN(env, DQNConfig(monitor_every=0, fused_adam=False)).optimizer.param_groups[0]["fused"]


def test_atari_dqn_is_channels_last_end_to_end():
    agent = _atari_dqn()
    assert prefers_channels_last(agent.q_network) and prefers_channels_last(agent.target_network)
    assert agent.replay_buffer.channels_last
    agent.learn(64, progress=False)
    batch = agent.replay_buffer.sample(4)
    assert batch.obs.is_contiguous(memory_format=torch.channels_last)
    cartpole = DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(monitor_every=0))
    assert not prefers_channels_last(cartpole.q_network) and not cartpole.replay_buffer.channels_last


def test_adam_state_takes_the_parameter_layout_after_loading():
    """Fused Adam updates wrongly when a moment's memory layout differs from its
    parameter's (e.g. a checkpoint from a contiguous network loaded into a channels-last
    one); align_optimizer_state makes the loaded state match, and the updates then equal
    the loop implementation's on contiguous tensors."""
    w0 = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def conv_grad_step(p, opt, seed):
        x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(seed))
        opt.zero_grad()
        torch.nn.functional.conv2d(x, p).square().sum().backward()
        opt.step()

    def train(channels_last, fused, align):
        first = torch.nn.Parameter(w0.clone())
        opt = torch.optim.Adam([first], lr=0.1, fused=fused)
        conv_grad_step(first, opt, 0)
        saved = copy.deepcopy(opt.state_dict())  # as read back from a checkpoint file
        p = torch.nn.Parameter(first.detach().clone())
        if channels_last:
            p = torch.nn.Parameter(p.detach().contiguous(memory_format=torch.channels_last))
        opt = torch.optim.Adam([p], lr=0.1, fused=fused)
        opt.load_state_dict(saved)
        if align:
            align_optimizer_state(opt)
            assert all(opt.state[p][k].stride() == p.stride() for k in ("exp_avg", "exp_avg_sq"))
        for seed in (1, 2, 3):
            conv_grad_step(p, opt, seed)
        return p.detach()

    reference = train(channels_last=False, fused=False, align=False)
    torch.testing.assert_close(train(channels_last=True, fused=True, align=True), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrap", [False, True], ids=["atari", "permuted-actions-atari"])
def test_loaded_agent_has_adam_state_in_its_parameters_layout_and_resets_atari(tmp_path, wrap):
    """DQN.load aligns the optimizer state (here: a checkpoint whose Adam moments were
    saved contiguous, as before the network went channels-last) and, for an Atari env
    also behind a wrapper, starts fresh games: ale-py emulators are not checkpointed
    (before this, learn() after load() stepped an env that was never reset)."""
    from normrl.envs.wrappers import PermutedActions

    def agent():
        env = make_env("ALE/Breakout-v5", 2, "cpu", seed=0)
        return DQN(PermutedActions(env, permutation_seed=1) if wrap else env, DQNConfig(**SMALL_DQN))

    first = agent()
    first.learn(64, progress=False)
    first.save(tmp_path / "a.pt")
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    for moments in state["optimizer"]["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            moments[k] = moments[k].contiguous()
    torch.save(state, tmp_path / "a.pt")
    restored = agent()
    restored.load(tmp_path / "a.pt")
    assert restored.num_steps == 64 and len(restored.replay_buffer) == len(first.replay_buffer)
    conv = restored.q_network[1].weight  # NatureCNN: [InputCast, Conv2d, ...]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for p in restored.q_network.parameters():
        assert all(restored.optimizer.state[p][k].stride() == p.stride() for k in ("exp_avg", "exp_avg_sq"))
    restored.learn(16, progress=False)
    assert restored.num_steps == 80


def test_predict_runs_in_eval_mode_and_restores_the_mode():
    """With a batch-statistics norm, predict's actions use the running statistics, so
    the lazy epsilon-greedy's subset forward gives the full-batch eval-mode actions."""
    agent = DQN(make_env("CartPole-v1", 4, "cpu", seed=0),
                DQNConfig(norm="batchnorm", start_eps=0.6, end_eps=0.6, exploration_steps=10, **SMALL_DQN))
    agent.learn(64, progress=False)
    agent.q_network.train(True)
    obs = torch.randn(4, 4)
    for seed in range(20):
        agent.generator.manual_seed(seed)
        got = agent.predict(obs, deterministic=False)
        assert agent.q_network.training
        agent.q_network.eval()
        with torch.no_grad():
            want = epsilon_greedy(agent.q_network(obs), 0.6, torch.Generator().manual_seed(seed))
        agent.q_network.train(True)
        assert torch.equal(got, want), seed


def test_ppo_update_matches_between_fused_and_loop_adam():
    """fused_adam changes only float rounding: a few PPO updates agree closely."""
    def run(flag):
        agent = PPO(make_env("CartPole-v1", 4, "cpu", seed=0),
                    PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2, hidden=(16,), monitor_every=0, fused_adam=flag))
        agent.learn(128, progress=False)
        assert bool(agent.optimizer.param_groups[0]["fused"]) == (flag and CPU_FUSED_ADAM)
        return torch.cat([p.detach().flatten() for p in agent.network.parameters()])

    torch.testing.assert_close(run(True), run(False), rtol=1e-4, atol=1e-5)


@needs_cpu_fused_adam
def test_fused_adam_is_not_requested_on_cpu_before_torch_2_4(monkeypatch):
    """torch < 2.4 has no CPU fused Adam (the project allows torch >= 2.1)."""
    from normrl.agents.common import base

    net = torch.nn.Linear(3, 2)
    assert base._fused_adam_supported(net)
    monkeypatch.setattr(torch, "__version__", "2.3.1")
    assert not base._fused_adam_supported(net)
    agent = DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(monitor_every=0))
    assert not agent.optimizer.param_groups[0]["fused"]
