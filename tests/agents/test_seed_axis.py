"""The seed axis (StackedPPO): seed k of a stacked run equals a single run with seed k
(parameters, Adam moments, episodes, counters) to float tolerance over a few updates;
what it does not support is refused with a ValueError naming what is supported."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from normrl.agents import PPO, DQNConfig, PPOConfig
from normrl.agents.ppo.stacked import StackedPPO
from normrl.envs import make_env

SEEDS = (3, 5, 8)


def _config(env_id: str, norm: str) -> PPOConfig:
    hidden = (32,) if env_id.startswith("MinAtar") else (64, 64)
    return PPOConfig(num_envs=4, num_steps=32, num_minibatches=4, update_epochs=2, norm=norm, hidden=hidden,
                     monitor_every=0, schedule_horizon=4 * 32 * 3)


def _agent(env_id: str, env_kwargs: dict, config: PPOConfig, seed: int) -> PPO:
    return PPO(make_env(env_id, config.num_envs, "cpu", seed=seed, **env_kwargs), dataclasses.replace(config, seed=seed))


def _adam(agent: PPO, key: str) -> list[torch.Tensor]:
    return [agent.optimizer.state[p][key] for p in agent.network.parameters()]


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.mark.parametrize("env_id, env_kwargs, norm", [
    ("CartPole-v1", {"max_episode_steps": 20}, "none"),  # truncations: bootstrapped from each seed's own critic
    ("CartPole-v1", {"max_episode_steps": 20}, "nap"),
    ("MinAtar/Breakout", {}, "none"),
    ("MinAtar/Breakout", {}, "nap"),
    ("MinAtar/Seaquest", {"dynamic_capacity": False}, "layernorm"),  # entity lists kept env-innermost
])
def test_stacked_seed_equals_single_run(env_id, env_kwargs, norm):
    config = _config(env_id, norm)
    rollout = config.num_envs * config.num_steps
    stacked = StackedPPO([_agent(env_id, env_kwargs, config, s) for s in SEEDS])
    stacked.learn(2 * rollout)
    stacked.learn(rollout)  # a second learn continues (obs, env state, schedule) as a single run's does
    for k, seed in enumerate(SEEDS):
        single = _agent(env_id, env_kwargs, config, seed)
        single.learn(2 * rollout, progress=False)
        single.learn(rollout, progress=False)
        mine = stacked.agents[k]
        assert mine.config.seed == seed
        assert (mine.num_steps, mine.num_updates) == (single.num_steps, single.num_updates) == (3 * rollout, 3 * 8)
        assert _max_diff(list(mine.network.parameters()), list(single.network.parameters())) < 5e-4
        assert _max_diff(_adam(mine, "exp_avg"), _adam(single, "exp_avg")) < 1e-4
        assert _max_diff(_adam(mine, "exp_avg_sq"), _adam(single, "exp_avg_sq")) < 1e-6
        assert all(float(s) == 3 * 8 for s in _adam(mine, "step"))
        assert mine.episode_log.num_episodes == single.episode_log.num_episodes > 0
        assert mine.episode_log.curve == single.episode_log.curve
        assert torch.equal(mine._obs, single._obs)
    # the seeds are different agents, not one agent repeated
    first, second = (list(a.network.parameters()) for a in stacked.agents[:2])
    assert _max_diff(first, second) > 1e-2


@pytest.mark.parametrize("norm", ["rmsnorm", "crmsnorm", "dyt", "groupnorm", "evonorm_s0"])
def test_every_norm_without_running_statistics_stacks(norm):
    config = dataclasses.replace(_config("CartPole-v1", norm), num_steps=16)
    stacked = StackedPPO([_agent("CartPole-v1", {}, config, s) for s in SEEDS[:2]])
    stacked.learn(2 * config.num_envs * config.num_steps)
    single = _agent("CartPole-v1", {}, config, SEEDS[1])
    single.learn(2 * config.num_envs * config.num_steps, progress=False)
    assert _max_diff(list(stacked.agents[1].network.parameters()), list(single.network.parameters())) < 5e-4
    assert stacked.agents[1].episode_log.curve == single.episode_log.curve


@pytest.mark.slow
@pytest.mark.parametrize("env_id, norm", [("CartPole-v1", "nap"), ("MinAtar/Breakout", "layernorm")])
def test_compiled_stacked_seed_equals_single_run(env_id, norm):
    # small graphs (compiling takes minutes on a 2-core CPU); NaP's joint (γ, β) norms
    # once went wrong only here (torch.compile of vmap over index_add summed over seeds)
    config = dataclasses.replace(_config(env_id, norm), num_steps=16, num_minibatches=2, update_epochs=2, hidden=(16,))
    rollout = config.num_envs * config.num_steps
    stacked = StackedPPO([_agent(env_id, {}, dataclasses.replace(config, compile=True), s) for s in SEEDS[:2]])
    stacked.learn(2 * rollout)
    for k, seed in enumerate(SEEDS[:2]):
        single = _agent(env_id, {}, config, seed)  # eager: the reference
        single.learn(2 * rollout, progress=False)
        mine = stacked.agents[k]
        assert _max_diff(list(mine.network.parameters()), list(single.network.parameters())) < 5e-4
        assert _max_diff(_adam(mine, "exp_avg"), _adam(single, "exp_avg")) < 1e-4
        assert mine.episode_log.curve == single.episode_log.curve


def test_stacked_agent_checkpoint_loads_into_a_single_run(tmp_path):
    config = _config("CartPole-v1", "layernorm")
    rollout = config.num_envs * config.num_steps
    stacked = StackedPPO([_agent("CartPole-v1", {}, config, s) for s in SEEDS[:2]])
    stacked.learn(rollout)
    path = stacked.agents[1].save(tmp_path / "seed1.pt")
    alone = _agent("CartPole-v1", {}, config, SEEDS[1])
    alone.learn(rollout, progress=False)
    # only its own rows are written (torch.save would write the views' whole [S, P] storage)
    assert path.stat().st_size < 1.1 * alone.save(tmp_path / "alone.pt").stat().st_size
    resumed = PPO.from_checkpoint(path)
    resumed.learn(rollout, progress=False)
    single = _agent("CartPole-v1", {}, config, SEEDS[1])
    single.learn(rollout, progress=False)
    single.learn(rollout, progress=False)
    assert _max_diff(list(resumed.network.parameters()), list(single.network.parameters())) < 5e-4
    assert resumed.num_updates == single.num_updates and resumed.episode_log.num_episodes == single.episode_log.num_episodes


@pytest.mark.parametrize("change, message", [
    ({"norm": "batchnorm"}, "norms without running statistics (none, layernorm"),
    ({"interventions": ("redo:every=10",)}, "interventions"),
    ({"target_kl": 0.02}, "target_kl"),
    ({"aux_loss_coef": 0.1, "norm": "layernorm"}, "AdaB²N"),
])
def test_unsupported_settings_are_refused(change, message):
    config = dataclasses.replace(_config("CartPole-v1", "none"), **change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        StackedPPO([_agent("CartPole-v1", {}, config, s) for s in SEEDS[:2]])


def test_stacked_seeds_must_share_a_config_and_a_functional_env():
    config = _config("CartPole-v1", "none")
    agents = [_agent("CartPole-v1", {}, config, 0), _agent("CartPole-v1", {}, dataclasses.replace(config, ent_coef=0.0), 1)]
    with pytest.raises(ValueError, match="one config except the seed"):
        StackedPPO(agents)
    seaquest = dataclasses.replace(_config("MinAtar/Seaquest", "none"), num_envs=2)
    agents = [_agent("MinAtar/Seaquest", {"dynamic_capacity": True}, seaquest, s) for s in (0, 1)]
    with pytest.raises(ValueError, match="functional step"):
        StackedPPO(agents)


def test_single_agents_and_dqn_refuse_several_seeds():
    with pytest.raises(ValueError, match="train_seeds"):
        PPO(make_env("CartPole-v1", 2, "cpu"), PPOConfig(num_envs=2, num_seeds=2))
    with pytest.raises(ValueError, match="num_seeds must be 1 for DQN"):
        DQNConfig(num_seeds=4).validate()
    with pytest.raises(ValueError, match="num_seeds must be a positive int"):
        PPOConfig(num_seeds=0).validate()


def test_a_diverging_seed_stops_the_stacked_run_as_its_single_run_stops():
    from normrl.utils.errors import TrainingDiverged

    config = dataclasses.replace(_config("CartPole-v1", "none"), learning_rate=1e30, num_steps=16)
    stacked = StackedPPO([_agent("CartPole-v1", {}, config, s) for s in SEEDS[:2]])
    with pytest.raises(TrainingDiverged) as stacked_exc:
        stacked.learn(10 * config.num_envs * config.num_steps)
    single = _agent("CartPole-v1", {}, config, SEEDS[0])
    with pytest.raises(TrainingDiverged) as single_exc:
        single.learn(10 * config.num_envs * config.num_steps, progress=False)
    keys = ("env_step", "update", "cause")
    assert [stacked_exc.value.facts[k] for k in keys] == [single_exc.value.facts[k] for k in keys]


def test_skip_update_skips_each_seeds_own_non_finite_steps():
    config = dataclasses.replace(_config("CartPole-v1", "none"), learning_rate=1e30, num_steps=16,
                                 on_divergence="skip-update")
    rollout = config.num_envs * config.num_steps
    stacked = StackedPPO([_agent("CartPole-v1", {}, config, s) for s in SEEDS[:2]])
    stacked.learn(3 * rollout)
    for k, seed in enumerate(SEEDS[:2]):
        single = _agent("CartPole-v1", {}, config, seed)
        single.learn(3 * rollout, progress=False)
        mine = stacked.agents[k]
        assert mine.divergence.skipped_updates == single.divergence.skipped_updates > 0
        assert [float(s) for s in _adam(mine, "step")] == [float(s) for s in _adam(single, "step")]
        assert mine.num_updates == single.num_updates
