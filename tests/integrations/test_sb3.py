"""normrl inside real Stable-Baselines3 models (SB3 2.9.2)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("stable_baselines3")
from stable_baselines3 import A2C, DQN, PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from normrl.continual import TaskScheduler, stream_tasks  # noqa: E402
from normrl.envs import make_env  # noqa: E402
from normrl.integrations.sb3 import (  # noqa: E402
    NormMLPExtractor, PlasticityCallback, TensorVecEnv, learn_stream, norm_policy_kwargs,
)
from normrl.normalization import list_norms  # noqa: E402
from normrl.normalization.projected_optimizer import ProjectedOptimizer  # noqa: E402


def _hidden_chain(module):
    return [type(m).__name__ for m in module.mlp]


def test_policy_kwargs_build_normed_policies_for_ppo_a2c_dqn():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    ppo = PPO("MlpPolicy", env, n_steps=8, batch_size=16, policy_kwargs=norm_policy_kwargs("layernorm"), device="cpu")
    pi, vf = ppo.policy.pi_features_extractor, ppo.policy.vf_features_extractor
    assert isinstance(pi, NormMLPExtractor) and pi is not vf  # separate torsos, as SB3's MlpPolicy
    assert _hidden_chain(pi) == ["Linear", "LayerNorm", "Tanh", "Linear", "LayerNorm", "Tanh"]
    assert ppo.policy.action_net.in_features == 64 and type(ppo.policy.optimizer) is torch.optim.Adam
    assert ppo.policy.optimizer.defaults["eps"] == 1e-5

    a2c = A2C("MlpPolicy", env, n_steps=4, policy_kwargs=norm_policy_kwargs("nap", algo="a2c"), device="cpu")
    assert isinstance(a2c.policy.optimizer, ProjectedOptimizer)
    assert type(a2c.policy.optimizer.optimizer) is torch.optim.RMSprop
    assert all(m.bias is None for m in a2c.policy.pi_features_extractor.mlp if isinstance(m, nn.Linear))
    assert a2c.policy.action_net.bias is not None  # the head keeps its bias and is never projected
    assert not any("action_net" in n or "value_net" in n for n in a2c.policy.optimizer.projector.layer_names)
    assert a2c.policy.optimizer.projector.output_layer_names == []  # output="free": value head unbounded

    dqn = DQN("MlpPolicy", env, learning_starts=0, buffer_size=100, policy_kwargs=norm_policy_kwargs("rmsnorm", algo="dqn"), device="cpu")
    assert _hidden_chain(dqn.policy.q_net.features_extractor) == ["Linear", "RMSNorm", "ReLU", "Linear", "RMSNorm", "ReLU"]
    with pytest.raises(ValueError, match="algo must be one of"):
        norm_policy_kwargs("layernorm", algo="sac")
    with pytest.raises(ValueError, match="features must be one of"):
        norm_policy_kwargs("layernorm", features="resnet")


@pytest.mark.parametrize("norm", list_norms())
def test_every_registered_norm_trains_inside_sb3_ppo(norm):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=8, n_epochs=1, policy_kwargs=norm_policy_kwargs(norm),
                device="cpu", seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    try:
        model.learn(32)  # one rollout of 16 x 2 envs, 4 minibatch updates
    except ValueError as exc:
        if "(N, C, H, W)" in str(exc):
            pytest.skip(f"{norm} is an image-only norm: {exc}")
        raise
    after = list(model.policy.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    norms = [m for m in model.policy.pi_features_extractor.mlp if getattr(type(m), "norm_name", None) == norm]
    assert len(norms) == (0 if norm == "none" else 2)


def test_ppo_cnn_policy_shares_a_normed_nature_cnn():
    pytest.importorskip("ale_py")
    venv = TensorVecEnv(make_env("ALE/Breakout-v5", 1, "cpu", seed=0))
    model = PPO("CnnPolicy", venv, n_steps=8, batch_size=8, policy_kwargs=norm_policy_kwargs("nap", features="nature_cnn"),
                device="cpu")
    policy = model.policy
    assert policy.pi_features_extractor is policy.vf_features_extractor  # shared, as SB3's CnnPolicy
    cnn = policy.features_extractor.cnn
    kinds = [type(m).__name__ for m in cnn]
    assert kinds == ["InputCast", "Conv2d", "NaPLayerNorm", "ReLU", "Conv2d", "NaPLayerNorm", "ReLU", "Conv2d",
                     "NaPLayerNorm", "ReLU", "Flatten", "Linear", "NaPLayerNorm", "ReLU"]
    assert [m.layout for m in cnn if type(m).__name__ == "NaPLayerNorm"] == ["nchw"] * 3 + ["nc"]
    assert policy.optimizer.projector.layer_names == ["features_extractor.cnn.1", "features_extractor.cnn.4",
                                                      "features_extractor.cnn.7", "features_extractor.cnn.11"]
    obs = venv.reset()
    with torch.no_grad():
        values = policy.predict_values(torch.as_tensor(obs))
    assert values.shape == (1, 1) and torch.isfinite(values).all()
    venv.close()


def _cartpole_ppo(norm, seed=0, **kw):
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    # rl-zoo's CartPole-v1 PPO hyperparameters, with 10 epochs instead of 20
    return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=10, ent_coef=0.0,
               learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f, policy_kwargs=norm_policy_kwargs(norm),
               seed=seed, device="cpu", **kw)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["nap", "layernorm"])
def test_ppo_cartpole_learns(norm):
    model = _cartpole_ppo(norm)
    init = dict(model.policy.optimizer.projector.initial_weight_norms()) if norm == "nap" else None
    eval_env = make_vec_env("CartPole-v1", n_envs=4, seed=100)
    best = 0.0
    while model.num_timesteps < 50_000 and best < 195:
        model.learn(5_000, reset_num_timesteps=False)
        best, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    assert best >= 195, f"{norm}: mean return {best} after {model.num_timesteps} steps"
    if init is not None:
        now = model.policy.optimizer.projector.weight_norms()
        for name, n0 in init.items():
            assert torch.allclose(now[name], n0, rtol=1e-5), name


def test_save_load_round_trip_preserves_actions_and_nap_norms(tmp_path):
    model = _cartpole_ppo("nap")
    model.learn(512)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "ppo_nap")
    loaded = PPO.load(tmp_path / "ppo_nap", device="cpu")
    again, _ = loaded.predict(obs, deterministic=True)
    assert np.array_equal(actions, again)
    with torch.no_grad():
        p1 = model.policy.get_distribution(torch.as_tensor(obs)).distribution.probs
        p2 = loaded.policy.get_distribution(torch.as_tensor(obs)).distribution.probs
    assert torch.equal(p1, p2)
    assert isinstance(loaded.policy.optimizer, ProjectedOptimizer)
    orig = model.policy.optimizer.projector.initial_weight_norms()
    back = loaded.policy.optimizer.projector.initial_weight_norms()
    assert orig.keys() == back.keys() and all(torch.equal(orig[k], back[k]) for k in orig)


def test_dqn_target_sync_copies_running_stats():
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = DQN("MlpPolicy", env, learning_starts=50, buffer_size=1000, batch_size=32, train_freq=1,
                target_update_interval=10**6, policy_kwargs=norm_policy_kwargs("batchnorm", algo="dqn"), seed=0, device="cpu")
    model.learn(200)
    online = {n: b for n, b in model.q_net.named_buffers() if n.rsplit(".", 1)[-1].startswith("running_")}
    target = dict(model.q_net_target.named_buffers())
    assert len(online) == 4  # running_mean/var of two BatchNorm layers
    assert not all(torch.equal(b, target[n]) for n, b in online.items())  # training moved the online stats
    model._n_calls = model.target_update_interval - 1
    model._on_step()  # SB3's target update (polyak tau=1 for the running_* stats)
    for n, b in online.items():
        assert torch.equal(b, target[n]), n


def test_plasticity_tags_in_sb3_tensorboard_run(tmp_path):
    model = _cartpole_ppo("layernorm", tensorboard_log=str(tmp_path))
    cb = PlasticityCallback(every=5)
    model.learn(512, callback=cb, tb_log_name="run")
    # 512 steps = 2 rollouts x 10 epochs x 1 minibatch = 20 optimizer steps -> 4 events
    assert cb.monitor.num_updates == 20 and cb.monitor.num_logs == 4
    acc = EventAccumulator(str(tmp_path / "run_1"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for metric in ("dormant_ratio", "active_fraction", "srank", "effective_rank", "stable_rank", "feature_norm"):
        assert f"plasticity/{metric}/features_extractor.mlp.2" in tags
        assert f"plasticity/{metric}/vf_features_extractor.mlp.5" in tags
        assert f"plasticity/{metric}/all" in tags
    for metric in ("weight_norm", "distance_from_init", "grad_norm", "effective_lr"):
        assert f"plasticity/{metric}/action_net" in tags and f"plasticity/{metric}/all" in tags
    entropy = acc.Scalars("plasticity/policy_entropy")
    assert len(entropy) == 4 and all(0 < e.value <= np.log(2) + 1e-6 for e in entropy)
    assert entropy[-1].value == pytest.approx(cb.last_logged["plasticity/policy_entropy"])


@pytest.mark.slow
def test_dqn_cnn_on_real_atari_with_nap_keeps_projected_norms():
    # ALE Breakout through ale-py's vector env (84x84 grayscale, 4 stacked frames, done in C++;
    # SB3's AtariWrapper would need OpenCV), as an SB3 VecEnv
    pytest.importorskip("ale_py")
    env = TensorVecEnv(make_env("ALE/Breakout-v5", 1, "cpu", seed=0))
    assert env.observation_space.shape == (4, 84, 84)
    model = DQN("CnnPolicy", env, buffer_size=2000, learning_starts=1000, batch_size=32, train_freq=4,
                target_update_interval=500, policy_kwargs=norm_policy_kwargs("nap", features="nature_cnn", algo="dqn"),
                seed=0, device="cpu")
    projector = model.policy.optimizer.projector
    assert len(projector.layer_names) == 4  # 3 convs + the 512 Linear; not the output layer
    init = {k: v.clone() for k, v in projector.initial_weight_norms().items()}
    w0 = model.q_net.features_extractor.cnn[1].weight.detach().clone()
    cb = PlasticityCallback(every=100)
    model.learn(2000, callback=cb)
    assert model.policy.optimizer.num_steps == (2000 - 1000) // 4
    # plasticity of the online Q-network's conv layers, probe from the replay buffer (uint8 frames)
    assert cb.monitor.num_logs == 2 and cb.monitor.probe.dtype == torch.uint8 and cb.monitor.probe.shape == (256, 4, 84, 84)
    assert "plasticity/dormant_ratio/features_extractor.cnn.3" in cb.last_logged
    assert "plasticity/weight_norm/q_net.0" in cb.last_logged and "plasticity/policy_entropy" not in cb.last_logged
    for name, n0 in init.items():  # the monitor sees the projected norms too
        key = "plasticity/weight_norm/" + name.removeprefix("q_net.")
        assert cb.last_logged[key] == pytest.approx(n0.item(), rel=1e-4), key
    assert not torch.equal(w0, model.q_net.features_extractor.cnn[1].weight)  # it trained
    now = projector.weight_norms()
    for name, n0 in init.items():
        assert torch.allclose(now[name], n0, rtol=1e-5), name
    env.close()


class _TaskRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_task_start(self, task_id):
        self.calls.append(("start", task_id))

    def on_task_end(self, task_id):
        self.calls.append(("end", task_id))


def test_learn_stream_switches_envs_and_calls_task_hooks():
    venv = TensorVecEnv(make_env("CartPole-v1", 4, "cpu", seed=0))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs=norm_policy_kwargs("nap"), seed=0, device="cpu")
    model.policy.recorder = _TaskRecorder()
    # permuted observations: same shape, permuted bounds (the model's space is reported to SB3)
    scheduler = TaskScheduler(stream_tasks("permuted-obs:CartPole-v1:2", 256), num_envs=4, eval_episodes=2, seed=0)
    cb = PlasticityCallback(every=4)
    result = learn_stream(model, scheduler, callback=cb)
    assert model.policy.recorder.calls == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    assert model.num_timesteps == 512  # 2 tasks x 2 rollouts of 32 x 4 envs, counters continue
    matrix = result.matrix
    assert matrix.shape == (2, 2) and torch.isnan(matrix[0, 1]) and torch.isfinite(matrix[1]).all()
    assert cb.monitor.num_updates == 2 * 2 * 2  # 2 tasks x 2 rollouts x 2 minibatches; one monitor across tasks


def test_sb3_example_script_runs_and_reports(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "sb3_example.py"
    spec = importlib.util.spec_from_file_location("sb3_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--steps", "512", "--every", "5", "--logdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NaPLayerNorm" in out and "optimizer: NaPOptimizer" in out
    assert "plasticity/srank/all" in out and str(tmp_path / "ppo_nap_1") in out
    acc = EventAccumulator(str(tmp_path / "ppo_nap_1"))
    acc.Reload()
    assert "plasticity/dormant_ratio/all" in acc.Tags()["scalars"]


def test_intervention_callback_adds_the_penalty_gradient_and_runs_after_every_step(tmp_path):
    """L2 with a known λ: the callback's step pre-hook adds exactly λθ to the gradients
    of the regularized parameters; after_step runs once per optimizer step; ReDo events
    land in the TensorBoard log; the NaP norms hold after the interventions."""
    from normrl.integrations.sb3 import InterventionCallback
    from normrl.normalization import is_normalization

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=norm_policy_kwargs("nap"),
                tensorboard_log=str(tmp_path), seed=0, device="cpu")
    cb = InterventionCallback(["redo:tau=0.9,every=1", "l2:lam=0.5"], seed=1)
    model.learn(32, callback=cb)  # 1 rollout of 2 x 16 samples = 2 minibatches of 16 = 2 optimizer steps
    assert cb.steps == 2
    model.learn(32, callback=cb, reset_num_timesteps=False)
    assert cb.steps == 4
    # the pre-step hook on zero gradients leaves exactly the penalty's gradient λθ
    norm_params = {id(p) for m in model.policy.modules() if is_normalization(m) for p in m.parameters()}
    for p in model.policy.parameters():
        p.grad = torch.zeros_like(p)
    cb._before_step(model.policy.optimizer, (), {})
    for p in model.policy.parameters():
        want = torch.zeros_like(p) if id(p) in norm_params else 0.5 * p.detach()
        torch.testing.assert_close(p.grad, want)
    projector = model.policy.optimizer.projector
    for name, norm in projector.weight_norms().items():
        assert norm == pytest.approx(projector.initial_weight_norms()[name], rel=1e-5)
    runs = [d for d in tmp_path.iterdir() if d.is_dir()]
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    assert any(t.startswith("plasticity/redo/reset_units/") for t in acc.Tags()["scalars"])


def test_intervention_callback_receives_task_hooks_through_learn_stream():
    from normrl.integrations.sb3 import InterventionCallback

    venv = TensorVecEnv(make_env("CartPole-v1", 4, "cpu", seed=0))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    cb = InterventionCallback(["reset_layers:at=task_end"])
    scheduler = TaskScheduler(stream_tasks("permuted-obs:CartPole-v1:2", 128), num_envs=4, eval_episodes=1, seed=0)
    head = [m for m in model.policy.modules() if isinstance(m, nn.Linear)][-1]
    learn_stream(model, scheduler, callback=cb)
    reset = next(iv for iv in cb.interventions if iv.name == "reset_layers")
    assert reset.last_event, "reset_layers did not run at the task ends"
    assert head.weight.isfinite().all()
