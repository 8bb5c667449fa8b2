"""The sweep grid: seeds, --set values, trial names, spec files, the intervention mapping
and the rule that a re-run in the same LOGDIR may only add trials."""
import json

import pytest

from normrl.runs import sweep_spec
from normrl.runs.sweep_spec import SweepSpec, load_spec, parse_seeds, parse_set_value, path_safe
from normrl.utils.errors import UserError


def _spec(**kw):
    base = {"algo": "ppo", "env": "CartPole-v1", "steps": 1000}
    return SweepSpec.from_dict({**base, **kw})


@pytest.mark.parametrize("text, seeds", [("0-4", (0, 1, 2, 3, 4)), ("0,2,5", (0, 2, 5)), ("0-2,7", (0, 1, 2, 7)),
                                         ("3", (3,)), ([2, 0, 2], (0, 2)), (1, (1,))])
def test_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("bad", ["4-2", "a", "0-", "", [-1], [True]])
def test_bad_seeds(bad):
    with pytest.raises(ValueError):
        parse_seeds(bad)


def test_set_values_take_the_config_fields_types():
    assert parse_set_value("ppo", "learning_rate", "1e-4,3e-4") == (1e-4, 3e-4)
    assert parse_set_value("ppo", "num_envs", "8,16") == (8, 16)
    assert parse_set_value("ppo", "hidden", "64x64,256x256") == ((64, 64), (256, 256))
    assert parse_set_value("ppo", "hidden", [64, 64]) == ((64, 64),)          # a flat list is one tuple value
    assert parse_set_value("ppo", "hidden", [[64], [32, 32]]) == ((64,), (32, 32))
    assert parse_set_value("ppo", "norm_adv", "true,false") == (True, False)
    assert parse_set_value("ppo", "target_kl", "none,0.02") == (None, 0.02)
    assert parse_set_value("ppo", "learning_rate", [1e-4, 3e-4]) == (1e-4, 3e-4)
    with pytest.raises(UserError, match="valid: .*learning_rate"):
        parse_set_value("ppo", "lr", "1")
    with pytest.raises(UserError, match="--seeds"):
        parse_set_value("ppo", "seed", "1")
    with pytest.raises(UserError, match="bad value"):
        parse_set_value("ppo", "num_envs", "eight")
    with pytest.raises(UserError, match="repeated"):
        parse_set_value("ppo", "num_envs", "8,8")


def test_trial_names_are_readable_path_safe_and_seed_major():
    spec = _spec(env="MinAtar/Breakout", norm="none,nap", seeds="0-1", set={"learning_rate": [1e-4, 3e-4]})
    names = [t.name for t in spec.trials()]
    assert names[:4] == ["MinAtar-Breakout/none_learning_rate=0.0001/seed_0",
                         "MinAtar-Breakout/none_learning_rate=0.0003/seed_0",
                         "MinAtar-Breakout/nap_learning_rate=0.0001/seed_0",
                         "MinAtar-Breakout/nap_learning_rate=0.0003/seed_0"]
    assert len(names) == 8 and names[4].endswith("seed_1")
    trial = spec.trials()[3]
    assert trial.kwargs == {"kind": "env", "train": {
        "algo": "ppo", "env_id": "MinAtar/Breakout", "steps": 1000, "env_kwargs": {},
        "overrides": {"learning_rate": 3e-4, "norm": "nap", "seed": 0}}}
    assert path_safe("redo:tau=0.1,every=1000") == "redo-tau=0.1-every=1000"


def test_names_stay_when_an_axis_gains_values():
    small = {t.name for t in _spec(norm="none", set={"num_envs": 8}).trials()}
    large = {t.name for t in _spec(norm="none,nap", seeds="0-2", set={"num_envs": [8, 16]}).trials()}
    assert small < large and len(large) == 12
    assert small == {"CartPole-v1/none_num_envs=8/seed_0"}


def test_stream_trials_call_train_stream_with_the_stream_options():
    spec = SweepSpec.from_dict({"algo": "dqn", "stream": "minatar", "steps_per_task": 500, "cycles": 2,
                                "eval_episodes": 3, "norm": ["nap"]})
    (trial,) = spec.trials()
    assert trial.name == "minatar/nap/seed_0"
    assert trial.kwargs == {"kind": "stream", "train": {
        "algo": "dqn", "stream": "minatar", "steps_per_task": 500, "cycles": 2, "eval_episodes": 3,
        "env_kwargs": {}, "overrides": {"norm": "nap", "seed": 0}}}


@pytest.mark.parametrize("fields, match", [
    ({"stream": "minatar"}, "exactly one"),
    ({"steps": None}, "need --steps"),
    ({"cycles": 2}, "stream sweeps only"),
    ({"norm": "nope"}, "unknown norm"),
    ({"norm": "nap,nap"}, "repeated"),
    ({"algo": "sac"}, "unknown algo"),
    ({"sets": {}}, "unknown sweep spec field"),
])
def test_bad_specs_are_refused(fields, match):
    with pytest.raises(UserError, match=match):
        _spec(**fields)


def test_intervention_entries_become_the_interventions_field(monkeypatch):
    spec = _spec(intervention="none,redo:tau=0.1,every=1000")
    assert spec.interventions == ("none", "redo:tau=0.1,every=1000")
    t0, t1 = spec.trials()
    assert t0.name == "CartPole-v1/none/seed_0" and "interventions" not in t0.kwargs["train"]["overrides"]
    assert t1.name == "CartPole-v1/none_redo-tau=0.1-every=1000/seed_0"
    assert t1.kwargs["train"]["overrides"]["interventions"] == ("redo:tau=0.1,every=1000",)
    # repeated flags and comma lists read the same
    assert _spec(intervention=["none", "redo:tau=0.1,every=1000"]).interventions == spec.interventions
    with pytest.raises(UserError, match="--intervention 'redoo'.*redo"):
        _spec(intervention="redoo")
    # a config without the field (an older normrl) refuses instead of ignoring the axis
    hints = {k: v for k, v in sweep_spec._config_hints("ppo").items() if k != "interventions"}
    monkeypatch.setattr(sweep_spec, "_config_hints", lambda algo: hints)
    with pytest.raises(UserError, match="no 'interventions' field"):
        _spec(intervention="redo:tau=0.1")


def test_an_intervention_trial_trains_with_it(tmp_path):
    """The axis reaches the agent: the trial's config.json holds the spec, and the report
    names the arm by it."""
    from normrl.analysis.run_dirs import arm_labels, find_runs
    from normrl.runs.sweep import run_trial

    spec = _spec(steps=512, intervention="none,redo:tau=0.1,every=4", set={"num_envs": 8, "update_epochs": 1})
    for trial in spec.trials():
        out = run_trial(**trial.kwargs, logdir=str(tmp_path / trial.name), progress=False)
        assert out["status"] == "finished"
    name = "CartPole-v1/none_redo-tau=0.1-every=4_num_envs=8_update_epochs=1/seed_0"
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["config"]["interventions"] == ["redo:tau=0.1,every=4"]
    assert sorted(arm_labels(find_runs(tmp_path)).values()) == ["none", "none redo:tau=0.1,every=4"]


def test_spec_files_round_trip(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text('algo = "ppo"\nenv = "CartPole-v1"\nsteps = 2000\nnorm = ["none", "nap"]\nseeds = "0-2"\n'
                    '[set]\nlearning_rate = [1e-4, 3e-4]\nhidden = [64, 64]\n')
    spec = load_spec(toml)
    assert spec.norms == ("none", "nap") and spec.seeds == (0, 1, 2)
    assert spec.grid == {"hidden": ((64, 64),), "learning_rate": (1e-4, 3e-4)}
    yaml_file = tmp_path / "grid.yaml"
    pytest.importorskip("yaml")
    yaml_file.write_text("algo: ppo\nenv: CartPole-v1\nsteps: 2000\nnorm: [none, nap]\nseeds: 0-2\n"
                         "set:\n  learning_rate: [0.0001, 0.0003]\n  hidden: [64, 64]\n")
    assert load_spec(yaml_file) == spec
    # sweep.json stores the spec in the same format and is read back from its "spec"
    saved = tmp_path / "sweep.json"
    saved.write_text(json.dumps({"spec": spec.to_dict(), "trials": {}}))
    assert load_spec(saved) == spec
    bad = tmp_path / "grid.ini"
    bad.write_text("x")
    with pytest.raises(UserError, match="unknown spec format"):
        load_spec(bad)


def test_a_rerun_may_only_add_trials():
    old = _spec(norm="none,nap", seeds="0-1", set={"learning_rate": [1e-4]})
    assert _spec(norm="none,nap,layernorm", seeds="0-4", set={"learning_rate": [1e-4, 3e-4]}).added_trials_only(old) == []
    problems = _spec(norm="none", seeds="0-1", steps=2000, set={"learning_rate": [1e-4]}).added_trials_only(old)
    assert problems == ["steps: sweep has 1000, now 2000", "norm: the sweep also has ['nap']"]
    assert "set keys" in _spec(norm="none,nap", seeds="0-1").added_trials_only(old)[0]
