"""The divergence guard with plasticity interventions that change parameters after the
optimizer step (shrink & perturb in place) or change the parameter set (plasticity
injection adds a head and rebinds the optimizer): the guard checks the parameters as
they are at its check, and the gradients of the optimizer's current parameters."""
import pytest
import torch

from normrl.agents import DQN, PPO, DQNConfig, PPOConfig
from normrl.envs import make_env
from normrl.plasticity.shrink_perturb import ShrinkPerturb
from normrl.utils.errors import TrainingDiverged


def _ppo(interventions):
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2, monitor_every=0, hidden=(16, 16),
                    interventions=interventions)
    return PPO(make_env("CartPole-v1", 2, "cpu", seed=0), cfg)


def _dqn(interventions):
    cfg = DQNConfig(learning_starts=16, batch_size=8, buffer_size=64, train_freq=2, log_interval=1000, monitor_every=0,
                    hidden=(16, 16), interventions=interventions)
    return DQN(make_env("CartPole-v1", 2, "cpu", seed=0), cfg)


def test_a_non_finite_value_written_by_shrink_perturb_is_caught_and_named(monkeypatch):
    """Shrink & perturb after every update; its 4th event (after the last update of the
    first rollout) leaves an inf in the last layer's bias: the rollout's check names it."""
    real, calls = ShrinkPerturb.apply, [0]

    def apply(self):
        real(self)
        calls[0] += 1
        if calls[0] == 4:
            with torch.no_grad():
                self._params[-1].view(-1)[0] = float("inf")

    monkeypatch.setattr(ShrinkPerturb, "apply", apply)
    agent = _ppo(("shrink_perturb:shrink=0.999,perturb=0.001",))
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(32 * 3, progress=False)
    (sp,) = [iv for iv in agent.interventions if isinstance(iv, ShrinkPerturb)]
    name = next(n for n, p in agent.network.named_parameters() if p is sp._params[-1])
    assert exc.value.facts == {"env_step": 32, "update": 4, "cause": "parameters", "parameter": f"network.{name}"}


def test_parameters_added_by_plasticity_injection_are_watched():
    """After the injection at a task switch the guard sees the new head: a NaN gradient
    in one of its parameters (DQN: no clipping, gradients checked over the rebound
    optimizer's parameters) stops the run, and so does an inf written into it."""
    agent = _dqn(("plasticity_injection",))
    agent.learn(32, progress=False)
    before = {id(p) for p in agent.q_network.parameters()}
    agent.on_task_start(1)
    new = [(n, p) for n, p in agent.q_network.named_parameters() if id(p) not in before and p.requires_grad]
    assert new, "the injection added trainable parameters"
    name, param = new[0]
    updates = agent.num_updates
    param.register_hook(lambda g: g * float("nan"))
    with pytest.raises(TrainingDiverged) as exc:
        agent.learn(8, progress=False)
    assert exc.value.facts["update"] == updates + 1 and exc.value.facts["cause"] == "loss or gradient norm"

    agent = _dqn(("plasticity_injection",))
    agent.learn(32, progress=False)
    agent.on_task_start(1)
    before_names = {n for n, _ in _dqn(()).q_network.named_parameters()}
    name, param = next((n, p) for n, p in agent.q_network.named_parameters() if n not in before_names)
    with torch.no_grad():
        param.view(-1)[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=f"first non-finite parameter: q_network.{name}$"):
        agent._check_divergence()
