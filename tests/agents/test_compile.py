"""compile=True: the functional pieces against their eager references (fast), then the
compiled agents against eager ones and across save/load (slow: compiling a graph takes
tens of seconds to minutes on a 2-core CPU; the graphs are shared by the tests of one
process, so each configuration compiles once)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.agents.common.functional_env import functional_env
from normrl.agents.dqn.compiled_update import CompiledDQNUpdate
from normrl.agents.ppo.compiled_update import CompiledPPOUpdate
from normrl.agents.ppo.rollout import rollout_per_step
from normrl.continual.streams import MINATAR_STREAM_KWARGS
from normrl.envs import make_env
from normrl.normalization.projected_optimizer import NaPAdam
from normrl.envs.wrappers import PermutedActions, PermutedObservations, TensorEnvWrapper

STREAM_GAMES = ("Breakout", "Asterix", "Freeway", "SpaceInvaders")


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


# -- functional envs: K steps drawn at once equal K env.step calls, bit for bit (CPU) ----
@pytest.mark.parametrize("env_id, kwargs, wrap", [
    ("CartPole-v1", {"max_episode_steps": 7}, None),
    ("CartPole-v1", {"max_episode_steps": 7}, PermutedObservations),
    ("MinAtar/Breakout", {}, PermutedActions),
    *[(f"MinAtar/{g}", MINATAR_STREAM_KWARGS | {"max_episode_steps": 9}, None) for g in STREAM_GAMES],
    ("MinAtar/Seaquest", MINATAR_STREAM_KWARGS | {"max_episode_steps": 9, "dynamic_capacity": False}, None),
])
def test_functional_env_equals_env_step(env_id, kwargs, wrap):
    envs = [make_env(env_id, 5, "cpu", seed=3, **kwargs) for _ in range(2)]
    if wrap is not None:
        envs = [wrap(e, 7) for e in envs]
    a, b = envs
    a.reset(), b.reset()
    fb = functional_env(b)
    actions = torch.randint(a.single_action_space.n, (30, 5), generator=torch.Generator().manual_seed(1))
    expected = [a.step(actions[t]) for t in range(30)]
    state, got, finished = fb.get_state(), [], 0
    for start in range(0, 30, 10):  # three chunks of 10 steps
        noise = fb.draw(10)
        for k in range(10):
            state, *out = fb.step(state, actions[start + k], noise[k])
            got.append(out)
        fb.set_state(state)
    for (obs, rew, term, trunc, info), (obs2, rew2, term2, trunc2, info2) in zip(expected, got):
        assert torch.equal(obs, obs2) and torch.equal(rew, rew2) and torch.equal(term, term2) and torch.equal(trunc, trunc2)
        assert info.keys() == info2.keys() and all(torch.equal(info[k], info2[k]) for k in info)
        finished += int(info["done"].sum())
    assert finished > 0  # the chunks crossed episode ends (auto-resets drawn from the noise)
    assert torch.equal(a.step(actions[0])[0], b.step(actions[0])[0])  # the env object continues from set_state


def test_functional_env_is_none_for_impure_steps():
    assert functional_env(make_env("MinAtar/Seaquest", 2, "cpu", seed=0)) is None  # resizes its lists on the host

    class Custom(TensorEnvWrapper):
        def step(self, actions):
            return self.env.step(actions)

    assert functional_env(Custom(make_env("CartPole-v1", 2, "cpu", seed=0))) is None
    assert functional_env(TensorEnvWrapper(make_env("CartPole-v1", 2, "cpu", seed=0))) is not None


@pytest.mark.parametrize("env_id, kwargs", [("CartPole-v1", {"max_episode_steps": 9}),
                                            ("MinAtar/Breakout", MINATAR_STREAM_KWARGS | {"max_episode_steps": 12})])
def test_chunked_rollout_equals_step_by_step_rollout(env_id, kwargs):
    """On CPU the chunked rollout (what compile=True compiles) fills the buffer exactly
    as one env.step and one policy draw per step did before it."""
    cfg = PPOConfig(num_steps=20, rollout_chunk=8, num_minibatches=2, update_epochs=1, hidden=(16,), monitor_every=0)
    chunked = PPO(make_env(env_id, 3, "cpu", seed=1, **kwargs), cfg)
    stepped = PPO(make_env(env_id, 3, "cpu", seed=1, **kwargs), cfg)
    chunked.learn(60, progress=False)  # one rollout of 20 steps (chunks 8, 8, 4) and one update
    obs = stepped._current_obs()
    stepped.network.train(False)
    with torch.no_grad():
        obs, _, final_obs, trunc = rollout_per_step(stepped, obs, None, None)
    for name in ("obs", "actions", "log_probs", "values", "dones"):
        assert torch.equal(getattr(chunked.buffer, name), getattr(stepped.buffer, name)), name
    assert bool(trunc.any()) and torch.equal(trunc, chunked._trunc_buf) and torch.equal(final_obs, chunked._final_obs_buf)
    assert torch.equal(obs, chunked._obs)
    assert torch.equal(chunked.env.state_dict()["generator"], stepped.env.state_dict()["generator"])


# -- the functional updates (uncompiled) equal the eager updates ------------------------
def _ppo_pair(**overrides):
    kwargs = overrides.pop("agent_kwargs", {})
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=3, hidden=(16,), monitor_every=0, max_grad_norm=0.1, **overrides)
    agents = [PPO(make_env("CartPole-v1", 4, "cpu", seed=0, max_episode_steps=20), cfg, **kwargs) for _ in range(2)]
    for a in agents:
        a.learn(64 * 2, progress=False)  # Adam state warmed, schedule moving
    return agents


@pytest.mark.parametrize("overrides", [
    {},
    {"norm": "nap", "nap_every": 3},
    {"norm": "layernorm", "target_kl": 1e-9, "lr_schedule": "cosine"},
    {"agent_kwargs": {"optimizer_class": torch.optim.AdamW, "optimizer_kwargs": {"lr": 1e-3, "weight_decay": 0.1}}},
])
def test_functional_ppo_update_equals_eager_update(overrides):
    from normrl.agents.common.gae import compute_gae

    eager, functional = _ppo_pair(**overrides)
    assert _max_diff(_params(eager.network), _params(functional.network)) == 0.0
    with torch.no_grad():
        next_value = eager.network.value(eager._obs)
        adv, ret = compute_gae(eager.buffer.rewards, eager.buffer.values, eager.buffer.dones, next_value, 0.99, 0.95)
    eager.network.train(True)
    stats = eager._update(adv, ret)
    functional.network.train(True)
    b = functional.buffer
    fstats = CompiledPPOUpdate(functional, compiled=False)(b.rewards, b.values, b.dones, next_value)
    assert _max_diff(_params(eager.network), _params(functional.network)) < 1e-6
    assert eager.num_updates == functional.num_updates
    if "target_kl" in overrides:
        assert functional.num_updates == 2 * 2 + 2  # two rollouts stopped after epoch 1, then this one
    se, sf = eager.optimizer.state_dict(), functional.optimizer.state_dict()
    for k in ("exp_avg", "exp_avg_sq"):
        assert max((se["state"][i][k] - sf["state"][i][k]).abs().max().item() for i in se["state"]) < 1e-6
    assert all(float(se["state"][i]["step"]) == float(sf["state"][i]["step"]) for i in se["state"])
    assert se["param_groups"][0]["lr"] == sf["param_groups"][0]["lr"]
    assert eager.lr_schedule.state_dict() == functional.lr_schedule.state_dict()
    assert torch.equal(eager.generator.get_state(), functional.generator.get_state())  # same permutations drawn
    for k in stats:
        assert abs(float(stats[k]) - float(fstats[k])) < 1e-5, k
    if overrides.get("norm") == "nap":
        assert se["projected_optimizer"]["num_steps"] == sf["projected_optimizer"]["num_steps"]


@pytest.mark.parametrize("overrides", [{}, {"double_dqn": False, "loss": "huber", "max_grad_norm": 0.5}, {"norm": "nap"}])
def test_functional_dqn_update_equals_eager_update(overrides):
    cfg = DQNConfig(num_envs=4, learning_starts=40, train_freq=8, batch_size=16, buffer_size=400, hidden=(16,),
                    target_update_interval=40, monitor_every=0, **overrides)
    eager, functional = (DQN(make_env("CartPole-v1", 4, "cpu", seed=0), cfg) for _ in range(2))
    for a in (eager, functional):
        a.learn(120, progress=False)
    eager.q_network.train(True)
    stats = eager._update()
    functional.q_network.train(True)
    batch = functional.replay_buffer.sample(cfg.batch_size, cfg.n_step, cfg.gamma, functional.generator)
    fstats = CompiledDQNUpdate(functional, compiled=False)(batch)
    assert _max_diff(_params(eager.q_network), _params(functional.q_network)) < 1e-6
    assert abs(float(stats["td_loss"]) - float(fstats["td_loss"])) < 1e-5
    assert abs(float(stats["q_values"]) - float(fstats["q_values"])) < 1e-5
    assert eager.num_updates == functional.num_updates


# -- what compile=True refuses ----------------------------------------------------------
def _small_ppo(**overrides):
    cfg = PPOConfig(num_steps=8, num_minibatches=2, update_epochs=1, hidden=(8,), monitor_every=0, compile=True, **overrides)
    return PPO(make_env("CartPole-v1", 2, "cpu", seed=0), cfg)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_compile_refuses_interventions_naming_them(algo):
    specs = ("l2:lam=0.0001", "redo:tau=0.1,every=100")
    with pytest.raises(ValueError, match=r"plasticity interventions \(l2, redo\)"):
        if algo == "ppo":
            _small_ppo(interventions=specs)
        else:
            DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(hidden=(8,), monitor_every=0, compile=True, interventions=specs))
    # attached after construction: refused when learn starts, before anything is compiled
    agent = _small_ppo()
    from normrl.plasticity import build_interventions

    agent.interventions = build_interventions(["shrink_perturb"], seed=0)
    with pytest.raises(ValueError, match=r"interventions \(shrink_perturb\)"):
        agent.learn(16, progress=False)


@pytest.mark.parametrize("make, match", [
    (lambda: _small_ppo(norm="batchnorm"), "without buffers"),
    (lambda: _small_ppo(aux_loss_coef=0.1), "AdaB²N"),
    (lambda: _small_ppo(hessian_every=10), "hessian_every"),
    (lambda: PPO(make_env("CartPole-v1", 2, "cpu", seed=0), PPOConfig(num_steps=8, num_minibatches=2, hidden=(8,), monitor_every=0, compile=True),
                 optimizer_class=torch.optim.SGD), "Adam or AdamW"),
    (lambda: DQN(make_env("CartPole-v1", 2, "cpu", seed=0), DQNConfig(hidden=(8,), monitor_every=0, compile=True),
                 optimizer_class=torch.optim.Adam, optimizer_kwargs={"lr": 1e-3, "amsgrad": True}), "amsgrad"),
    (lambda: PPO(make_env("CartPole-v1", 2, "cpu", seed=0), PPOConfig(num_steps=8, num_minibatches=2, hidden=(8,), monitor_every=0, compile=True,
                 norm="nap"), optimizer_class=NaPAdam, optimizer_kwargs={"lr": 1e-3}), "free output layers only"),
])
def test_compile_refuses_what_it_cannot_reproduce(make, match):
    with pytest.raises(ValueError, match=match):  # at construction, before any training
        make()


# -- compiled agents: equal to eager up to float rounding; bit-exact resume -------------
ENVS = [("CartPole-v1", {"max_episode_steps": 20}), ("MinAtar/Breakout", MINATAR_STREAM_KWARGS | {"max_episode_steps": 30})]
PPO_CFG = PPOConfig(num_steps=8, rollout_chunk=4, num_minibatches=2, update_epochs=2, hidden=(16,), monitor_every=0,
                    learning_rate=1e-3, lr_schedule="linear", schedule_horizon=10_000)
DQN_CFG = DQNConfig(num_envs=4, learning_starts=32, train_freq=8, batch_size=16, buffer_size=400, hidden=(16,),
                    target_update_interval=32, exploration_steps=100, monitor_every=0, max_grad_norm=1.0)


def _compare_agents(a, b, nets: str, exact: bool) -> None:
    pa, pb = _params(getattr(a, nets)), _params(getattr(b, nets))
    if exact:
        assert all(torch.equal(x, y) for x, y in zip(pa, pb))
    else:
        assert _max_diff(pa, pb) < 1e-5
    assert a.num_steps == b.num_steps and a.num_updates == b.num_updates
    assert list(a.episode_log.recent_returns) == list(b.episode_log.recent_returns)


@pytest.mark.slow
@pytest.mark.parametrize("env_id, kwargs", ENVS)
def test_compiled_ppo_equals_eager_and_resumes_exactly(env_id, kwargs, tmp_path):
    make = lambda: make_env(env_id, 4, "cpu", seed=2, **kwargs)  # noqa: E731
    eager = PPO(make(), PPO_CFG)
    compiled = PPO(make(), dataclasses.replace(PPO_CFG, compile=True))
    for agent in (eager, compiled):
        agent.learn(32 * 3, progress=False)
    _compare_agents(eager, compiled, "network", exact=False)
    assert torch.equal(eager.buffer.actions, compiled.buffer.actions)  # the same episodes
    compiled.save(tmp_path / "ppo.pt")
    compiled.learn(32 * 2, progress=False)
    resumed = PPO(make(), dataclasses.replace(PPO_CFG, compile=True)).load(tmp_path / "ppo.pt")
    resumed.learn(32 * 2, progress=False)
    _compare_agents(compiled, resumed, "network", exact=True)
    assert torch.equal(compiled.buffer.obs, resumed.buffer.obs)
    assert all(torch.equal(x, y) for x, y in zip(compiled.optimizer.state_dict()["state"][0].values(),
                                                 resumed.optimizer.state_dict()["state"][0].values()))
    # a compiled run's checkpoint continues in an eager agent (same tensors, same layout)
    eager_resumed = PPO(make(), PPO_CFG).load(tmp_path / "ppo.pt").learn(32 * 2, progress=False)
    _compare_agents(compiled, eager_resumed, "network", exact=False)
    # evaluation: the compiled block equals the eager one
    returns = compiled.evaluate(make_env(env_id, 4, "cpu", seed=9, **kwargs), episodes=4)
    compiled.config.compile = False
    assert compiled.evaluate(make_env(env_id, 4, "cpu", seed=9, **kwargs), episodes=4) == returns


@pytest.mark.slow
@pytest.mark.parametrize("env_id, kwargs", ENVS)
def test_compiled_dqn_equals_eager_and_resumes_exactly(env_id, kwargs, tmp_path):
    make = lambda: make_env(env_id, 4, "cpu", seed=2, **kwargs)  # noqa: E731
    eager = DQN(make(), DQN_CFG)
    compiled = DQN(make(), dataclasses.replace(DQN_CFG, compile=True))
    for agent in (eager, compiled):
        agent.learn(96, progress=False)
    assert compiled.num_updates == 9  # at 32, 40, ..., 96 env steps
    _compare_agents(eager, compiled, "q_network", exact=False)
    compiled.save(tmp_path / "dqn.pt")
    compiled.learn(64, progress=False)
    resumed = DQN(make(), dataclasses.replace(DQN_CFG, compile=True)).load(tmp_path / "dqn.pt")
    resumed.learn(64, progress=False)
    _compare_agents(compiled, resumed, "q_network", exact=True)
    assert all(torch.equal(x, y) for x, y in zip(_params(compiled.target_network), _params(resumed.target_network)))
    returns = compiled.evaluate(make_env(env_id, 4, "cpu", seed=9, **kwargs), episodes=4, epsilon=0.1)
    compiled.config.compile = False
    assert compiled.evaluate(make_env(env_id, 4, "cpu", seed=9, **kwargs), episodes=4, epsilon=0.1) == returns


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (CUDA graphs via mode='reduce-overhead')")
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_compiled_agents_on_cuda_equal_eager(algo):
    env_id, kwargs = ENVS[1]
    make = lambda: make_env(env_id, 4, "cuda", seed=2, **kwargs)  # noqa: E731
    if algo == "ppo":
        eager, compiled = PPO(make(), PPO_CFG), PPO(make(), dataclasses.replace(PPO_CFG, compile=True))
        steps, nets = 32 * 4, "network"
    else:
        eager, compiled = DQN(make(), DQN_CFG), DQN(make(), dataclasses.replace(DQN_CFG, compile=True))
        steps, nets = 160, "q_network"
    for agent in (eager, compiled):
        agent.learn(steps, progress=False)
    _compare_agents(eager, compiled, nets, exact=False)
    returns = compiled.evaluate(make_env(env_id, 4, "cuda", seed=9, **kwargs), episodes=4)
    compiled.config.compile = False
    assert compiled.evaluate(make_env(env_id, 4, "cuda", seed=9, **kwargs), episodes=4) == returns
