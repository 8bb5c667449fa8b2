"""``normrl split-cifar``: a tiny digits run end to end and one-line errors."""
import json

import pytest

from normrl.cli import main


def test_digits_run_writes_config_summary_and_tensorboard(tmp_path, capsys):
    logdir = tmp_path / "run"
    rc = main(["split-cifar", "--dataset", "digits", "--norm", "adab2n", "--kappa", "0.4", "--method", "er", "--nf", "4", "--buffer", "20", "--logdir", str(logdir), "--no-progress", "--seed", "1"])
    assert rc == 0
    config = json.loads((logdir / "config.json").read_text())
    assert config["config"]["norm_kwargs"] == {"kappa": 0.4} and config["dataset"] == "digits"
    summary = json.loads((logdir / "summary.json").read_text())
    assert len(summary["class_il"]["accuracy_matrix"]) == 5
    for scen in ("class_il", "task_il"):
        assert set(summary[scen]) == {"accuracy_matrix", "final_accuracy", "forgetting", "backward_transfer"}
    assert summary["final_accuracy"] == summary["class_il"]["final_accuracy"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/class_il/task_0", "eval/task_il/task_4", "eval/class_il/average_seen", "final/class_il/forgetting"} <= tags
    assert len(events.Scalars("eval/class_il/task_0")) == 5  # after every task
    assert "final accuracy class-IL" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:  # refuses to overwrite a finished run
        main(["split-cifar", "--dataset", "digits", "--logdir", str(logdir), "--no-progress"])
    assert exc.value.code == 2


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "cifar10"], "--data-dir is required"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}"], "cifar-10-batches-py"),
    (["--dataset", "cifar100", "--data-dir", "{tmp}"], "cifar-100-python"),
    (["--dataset", "digits", "--norm", "nonorm"], "unknown norm"),
    (["--dataset", "digits", "--n-tasks", "3"], "n_tasks must divide"),
    (["--dataset", "digits", "--norm", "batchnorm", "--kappa", "0.5"], "--kappa applies"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(["split-cifar", *argv, "--logdir", str(tmp_path / "run"), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cifar10_path_end_to_end_on_a_fake_dataset_in_the_official_format(tmp_path, monkeypatch):
    import dataclasses
    import pickle

    import numpy as np

    from normrl.data import cifar

    folder = tmp_path / "data" / cifar.CIFAR10.folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar.CIFAR10.train_files + cifar.CIFAR10.test_files:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}, f)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}))
    md5 = {name: cifar.md5sum(folder / name) for name in cifar.CIFAR10.md5}
    monkeypatch.setitem(cifar.SPECS, "cifar10", dataclasses.replace(cifar.CIFAR10, md5=md5))
    logdir = tmp_path / "run"
    rc = main(["split-cifar", "--data-dir", str(tmp_path / "data"), "--dataset", "cifar10", "--norm", "bcn", "--method", "derpp", "--nf", "4",
               "--buffer", "20", "--augment", "--class-order-seed", "2", "--scenario", "task-incremental", "--logdir", str(logdir), "--no-progress"])
    assert rc == 0
    summary = json.loads((logdir / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["scenario"] == "task-incremental"
    assert summary["final_accuracy"] == summary["task_il"]["final_accuracy"]
    assert sorted(summary["class_order"]) == list(range(10)) and summary["class_order"] != list(range(10))
