"""scripts/bench_purejaxrl.py and scripts/purejaxrl_runner.py without JAX: matched
settings, step budgets, setup errors naming the missing piece, the gymnax >= 1.0 step
adapter, the placeholder modules, and the normrl side's worker at a tiny budget."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("bench_purejaxrl")
runner = _load("purejaxrl_runner")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout"])
def test_ppo_settings_match_purejaxrl_config(env_id):
    pjx = bench.purejaxrl_spec("ppo", env_id, 64, 8192, 1)["config"]
    ours = bench.normrl_spec("ppo", env_id, 64, 8192, 1, "sequential")["ppo"]
    pairs = {"NUM_STEPS": "num_steps", "NUM_MINIBATCHES": "num_minibatches", "UPDATE_EPOCHS": "update_epochs", "LR": "learning_rate",
             "GAMMA": "gamma", "GAE_LAMBDA": "gae_lambda", "CLIP_EPS": "clip_coef", "ENT_COEF": "ent_coef", "VF_COEF": "vf_coef",
             "MAX_GRAD_NORM": "max_grad_norm", "ACTIVATION": "activation"}
    assert {k: pjx[k] for k in pairs} == {k: ours[v] for k, v in pairs.items()}
    # PureJaxRL's own values: ppo.py's __main__ (CartPole), examples/brax_minatar.ipynb (MinAtar)
    expected = {"CartPole-v1": (2.5e-4, 4, "tanh", "CartPole-v1"), "MinAtar/Breakout": (5e-3, 8, "relu", "Breakout-MinAtar")}[env_id]
    assert (pjx["LR"], pjx["NUM_MINIBATCHES"], pjx["ACTIVATION"], pjx["ENV_NAME"]) == expected
    assert pjx["NUM_ENVS"] == 64 and pjx["TOTAL_TIMESTEPS"] == 8192 and pjx["ANNEAL_LR"] is True and pjx["DEBUG"] is False


def test_dqn_settings_match_dqn_py_config():
    pjx = bench.purejaxrl_spec("dqn", "CartPole-v1", 10, 50_000, 1)["config"]
    ours = bench.normrl_spec("dqn", "CartPole-v1", 10, 50_000, 1, "sequential")["dqn"]
    assert (pjx["BUFFER_SIZE"], pjx["BUFFER_BATCH_SIZE"], pjx["LR"], pjx["LEARNING_STARTS"], pjx["TRAINING_INTERVAL"],
            pjx["TARGET_UPDATE_INTERVAL"], pjx["EPSILON_ANNEAL_TIME"]) == (10_000, 128, 2.5e-4, 10_000, 10, 500, 250_000)
    assert (ours["buffer_size"], ours["batch_size"], ours["learning_rate"], ours["learning_starts"], ours["train_freq"],
            ours["target_update_interval"], ours["exploration_steps"]) == (10_000, 128, 2.5e-4, 10_000, 10, 500, 250_000)
    assert ours["log_interval"] % 10 == 0  # whole batched steps of 10 envs


def test_matched_steps_are_whole_rollouts_or_batched_steps():
    assert bench.matched_steps("ppo", "CartPole-v1", 4, 100_000) == 195 * 512
    assert bench.matched_steps("ppo", "CartPole-v1", 1024, 100_000) == 131_072  # at least one rollout
    assert bench.matched_steps("dqn", "CartPole-v1", 10, 100_005) == 100_000


def test_breakout_is_built_like_gymnax_and_cartpole_as_is():
    assert bench.normrl_spec("ppo", "MinAtar/Breakout", 4, 512, 1, "sequential")["env_kwargs"] == {"sticky_action_prob": 0.0, "max_episode_steps": 1000}
    assert bench.normrl_spec("ppo", "CartPole-v1", 4, 512, 1, "sequential")["env_kwargs"] == {}


def test_final_return_averages_the_last_fraction_of_flushes():
    curve = [(512 * i, float(i)) for i in range(1, 21)]  # one flush per 512-step rollout
    assert bench._final_return(curve, 20 * 512, 512, 0.1) == pytest.approx((19 + 20) / 2)
    assert bench._final_return(curve, 20 * 512, 512, 0.01) == 20.0  # at least the last flush
    assert np.isnan(bench._final_return([], 1000, 512, 0.1))


def test_setup_errors_name_the_missing_piece(tmp_path):
    def args(**kw):
        base = dict(purejaxrl_dir=tmp_path, jax_python=str(tmp_path / "python"), core=None)
        base.update(kw)
        return type("Args", (), base)

    with pytest.raises(SystemExit, match="--purejaxrl-dir is required"):
        bench.check_setup(args(purejaxrl_dir=None))
    with pytest.raises(SystemExit, match="no purejaxrl/ppo.py there"):
        bench.check_setup(args())
    (tmp_path / "purejaxrl").mkdir()
    (tmp_path / "purejaxrl" / "ppo.py").write_text("")
    with pytest.raises(SystemExit, match="pass --jax-python or set PUREJAXRL_PYTHON"):
        bench.check_setup(args(jax_python=None))
    with pytest.raises(SystemExit, match="the JAX virtualenv is missing"):
        bench.check_setup(args())


def test_runner_check_names_missing_packages(tmp_path, capsys):
    if not runner.missing_modules(runner.REQUIRED):
        pytest.skip("this Python has the JAX packages")
    (tmp_path / "purejaxrl").mkdir()
    (tmp_path / "purejaxrl" / "ppo.py").write_text("")
    assert runner.main(["--purejaxrl-dir", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "missing in this Python" in err and "jax" in err and "gymnax" in err


def test_runner_rejects_a_directory_without_purejaxrl(tmp_path, capsys):
    assert runner.main(["--purejaxrl-dir", str(tmp_path), "--check"]) == 2
    assert "must be a checkout of luchris429/purejaxrl" in capsys.readouterr().err


class _SixTupleEnv:
    """gymnax >= 1.0's step signature, numpy values."""

    name = "fake"

    def step(self, key, state, action, params=None):
        info = {"discount": np.float32(0.0), "terminated": np.bool_(False), "truncated": np.bool_(True), "final_observation": np.ones(3)}
        return np.zeros(3), state + 1, np.float32(1.0), np.bool_(False), np.bool_(True), info


class _FiveTupleEnv:
    def step(self, key, state, action, params=None):
        return "obs", state, 1.0, True, {"discount": 0.0}


def test_five_tuple_step_folds_truncation_into_done_and_drops_the_new_info():
    env = runner.FiveTupleStep(_SixTupleEnv())
    obs, state, reward, done, info = env.step(None, 1, 0)
    assert state == 2 and reward == 1.0 and bool(done) is True
    assert set(info) == {"discount"}
    assert env.name == "fake"  # other attributes pass through
    assert runner.FiveTupleStep(_FiveTupleEnv()).step(None, 1, 0) == ("obs", 1, 1.0, True, {"discount": 0.0})


def test_placeholders_import_and_refuse_use():
    absent = [name for name in runner.PLACEHOLDERS if name.split(".")[0] not in sys.modules
              and importlib.util.find_spec(name.split(".")[0]) is None]
    if "brax.envs.wrappers.training" not in absent:
        pytest.skip("brax is installed here")
    try:
        placed = runner.install_placeholders()
        assert "brax" in placed and "navix" in placed
        from brax.envs.wrappers.training import EpisodeWrapper

        with pytest.raises(RuntimeError, match="placeholder"):
            EpisodeWrapper()
    finally:
        for name in absent:
            sys.modules.pop(name, None)


def test_flat_obs_actor_critic_is_an_mlp_on_flattened_grids():
    from normrl.envs import make_env

    env = make_env("MinAtar/Breakout", 3, "cpu", seed=0)
    net = bench._flat_actor_critic_class()(env.single_observation_space, int(env.single_action_space.n), (64, 64), "relu")
    first = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][0]
    assert first.in_features == 4 * 10 * 10 and first.out_features == 64
    obs = env.reset()
    logits, value = net(obs)
    assert logits.shape == (3, env.single_action_space.n) and value.shape == (3,)
    torch.testing.assert_close(value, net.value(obs))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def test_normrl_worker_sums_sequential_seeds():
    spec = bench.normrl_spec("ppo", "MinAtar/Breakout", 2, 256, 2, "sequential")
    threads = torch.get_num_threads()
    try:
        out = bench.run_normrl(spec)
    finally:
        torch.set_num_threads(threads)
    assert out["steps"] == 2 * 256 and out["sps"] == pytest.approx(out["steps"] / out["run_s"])
    assert out["threads"] == 1


def test_stacked_mode_trains_the_seeds_as_one_stacked_run():
    threads = torch.get_num_threads()
    try:
        out = bench.run_normrl(bench.normrl_spec("ppo", "CartPole-v1", 2, 256, 2, "stacked"))
        with pytest.raises(SystemExit, match="PPO only"):
            bench.run_normrl(bench.normrl_spec("dqn", "CartPole-v1", 2, 256, 2, "stacked"))
    finally:
        torch.set_num_threads(threads)
    assert out["steps"] == 2 * 256 and out["sps"] == pytest.approx(out["steps"] / out["run_s"])


def test_compile_flag_builds_compiled_agents_and_keeps_compilation_out_of_the_timing(monkeypatch):
    built = []
    real = bench._normrl_agent

    def recording(spec, seed, num_envs, extra_config=None):
        built.append((seed, extra_config))
        return real(spec, seed, num_envs, None)  # eager stand-in: the test checks the plumbing, not torch.compile

    monkeypatch.setattr(bench, "_normrl_agent", recording)
    spec = bench.normrl_spec("ppo", "CartPole-v1", 2, 256, 2, "sequential", compile=True)
    threads = torch.get_num_threads()
    try:
        out = bench.run_normrl(spec)
    finally:
        torch.set_num_threads(threads)
    # a throwaway warm-up agent first, then one agent per seed, all asked for compile=True
    assert built == [(0, {"compile": True}), (0, {"compile": True}), (1, {"compile": True})]
    assert out["steps"] == 2 * 256 and out["compile_s"] > 0
    assert bench.normrl_spec("ppo", "CartPole-v1", 2, 256, 1, "sequential")["compile"] is False
