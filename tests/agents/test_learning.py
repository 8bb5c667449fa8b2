"""Learning tests: reward thresholds on CartPole-v1 (and MinAtar Breakout) with the
per-env presets. Each run stops as soon as its threshold is met (mean return of the
last 100 episodes), so passing runs are short."""
import pytest
import torch

from normrl.agents import DQN, PPO
from normrl.agents.presets import preset_config
from normrl.envs import make_env

pytestmark = pytest.mark.slow


def train_until(agent, threshold: float, max_steps: int, chunk: int) -> float:
    """Learn in chunks until the last-100-episode mean reaches ``threshold`` or
    ``max_steps`` env steps are done; return the last mean."""
    log = agent.episode_log
    while agent.num_steps < max_steps:
        agent.learn(min(chunk, max_steps - agent.num_steps), progress=False)
        if len(log.recent_returns) == 100 and log.recent_mean_return >= threshold:
            break
    return log.recent_mean_return


def _ppo(seed: int, max_steps: int, **overrides) -> PPO:
    cfg = preset_config("ppo", "CartPole-v1", seed=seed, schedule_horizon=max_steps, monitor_every=0, **overrides)
    return PPO(make_env("CartPole-v1", cfg.num_envs, "cpu", seed=seed), cfg)


def _dqn(seed: int, **overrides) -> DQN:
    # The preset's rl-zoo 256-256 MLP learns the same way at twice the update cost;
    # 64-64 keeps the test inside the CI budget.
    overrides.setdefault("hidden", (64, 64))
    cfg = preset_config("dqn", "CartPole-v1", seed=seed, monitor_every=0, log_interval=2000, **overrides)
    return DQN(make_env("CartPole-v1", cfg.num_envs, "cpu", seed=seed), cfg)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_solves_cartpole(seed):
    agent = _ppo(seed, 200_000)
    mean = train_until(agent, 475.0, 200_000, 8192)
    assert mean >= 475.0, f"seed {seed}: mean return {mean:.1f} after {agent.num_steps} steps"


def test_dqn_learns_cartpole_in_two_of_three_seeds():
    results = {}
    # The verdict needs the third seed only when the first two disagree.
    for seed in (1, 2, 0):
        agent = _dqn(seed)
        results[seed] = (train_until(agent, 400.0, 150_000, 5000), agent.num_steps)
        if sum(m >= 400.0 for m, _ in results.values()) >= 2:
            break
    assert sum(m >= 400.0 for m, _ in results.values()) >= 2, results


# NaP fixes the hidden weight norms, so the learning rate is the effective one; the
# presets' rates (tuned without normalization) are too large for it on CartPole.
NAP_PPO_LR = 3e-4
NAP_DQN_LR = 5e-4


@pytest.mark.parametrize("norm", ["layernorm", "nap"])
def test_ppo_learns_cartpole_with_norm(norm):
    agent = _ppo(0, 200_000, norm=norm, **({"learning_rate": NAP_PPO_LR} if norm == "nap" else {}))
    if norm == "nap":
        assert hasattr(agent.optimizer, "projector")  # wrapped automatically
    mean = train_until(agent, 300.0, 200_000, 8192)
    assert mean >= 300.0, f"{norm}: mean return {mean:.1f} after {agent.num_steps} steps"


@pytest.mark.parametrize("norm", ["layernorm", "nap"])
def test_dqn_learns_cartpole_with_norm(norm):
    agent = _dqn(0, norm=norm, **({"learning_rate": NAP_DQN_LR} if norm == "nap" else {}))
    if norm == "nap":
        assert hasattr(agent.optimizer, "projector")
    mean = train_until(agent, 200.0, 150_000, 5000)
    assert mean >= 200.0, f"{norm}: mean return {mean:.1f} after {agent.num_steps} steps"


def _random_policy_mean_return(env_id: str, episodes: int = 500) -> float:
    env = make_env(env_id, 64, "cpu", seed=123)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    n = env.single_action_space.n
    returns = []
    while len(returns) < episodes:
        _, _, _, _, info = env.step(torch.randint(n, (64,), generator=gen))
        returns += info["episode_return"][info["done"]].tolist()
    return sum(returns) / len(returns)


def test_ppo_beats_random_on_minatar_breakout():
    random_mean = _random_policy_mean_return("MinAtar/Breakout")
    assert 0.1 < random_mean < 1.0  # sanity: a random paddle rarely returns the ball
    threshold = max(5 * random_mean, 1.5)
    cfg = preset_config("ppo", "MinAtar/Breakout", seed=0, num_envs=32, num_steps=64, learning_rate=1e-3,
                        schedule_horizon=400_000, monitor_every=0)
    agent = PPO(make_env("MinAtar/Breakout", cfg.num_envs, "cpu", seed=0), cfg)
    mean = train_until(agent, threshold, 250_000, 8192)
    assert mean >= threshold, f"mean return {mean:.2f} after {agent.num_steps} steps (random policy: {random_mean:.2f})"
