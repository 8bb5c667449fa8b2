"""The online trainer: joint forward with task ids reaching AdaB²N, task hooks, and a
learning test on the scikit-learn digits split (same code path as Split CIFAR)."""
import pytest
import torch

from normrl.continual.online.trainer import OnlineCLConfig, OnlineCLTrainer, train_online
from normrl.data.split import split_digits
from normrl.normalization.layers.adab2n import AdaB2N


@pytest.fixture(scope="module")
def digits():
    return split_digits()


def test_stream_and_replay_share_one_forward_with_per_sample_task_ids(digits):
    trainer = OnlineCLTrainer(digits, OnlineCLConfig(method="derpp", norm="adab2n", nf=4, buffer_size=30))
    layers = [m for m in trainer.model.modules() if isinstance(m, AdaB2N)]
    seen = []
    layers[0].register_forward_pre_hook(lambda mod, inp: seen.append((inp[0].shape[0], None if mod.task_ids is None else mod.task_ids.clone())))
    trainer.train_task(0)
    trainer.train_task(1)
    assert all(int(m.current_task) == 1 and int(m.tasks_seen) == 3 for m in layers)  # hooks ran
    first = seen[0]
    assert first[0] == 10 and first[1].tolist() == [0] * 10  # empty buffer: stream only
    assert seen[-1][0] == 2 + 20  # task 1 has 252 samples: last stream batch of 2
    size, ids = seen[-2]
    assert size == 30  # 10 stream + two replay draws of 10 (DER++)
    assert ids[:10].tolist() == [1] * 10 and set(ids[10:].tolist()) <= {0, 1}
    # The replay ids are the stored tasks of the stored labels.
    assert ((trainer.buffer.labels[: len(trainer.buffer)] // 2) == trainer.buffer.tasks[: len(trainer.buffer)]).all()
    assert 0 in ids[10:].tolist()  # task-0 samples replayed during task 1
    assert all(m.task_ids is None for m in layers)  # cleared after the forward


def test_adab2n_statistics_are_weighted_by_task_in_training(digits):
    trainer = OnlineCLTrainer(digits, OnlineCLConfig(method="er", norm="adab2n", nf=4, buffer_size=40))
    trainer.train_task(0)
    layer = trainer.model.bn1
    captured = {}
    layer.register_forward_hook(lambda mod, inp, out: captured.update(x=inp[0].detach(), ids=mod.task_ids.clone(), w=mod.sample_weights(mod.task_ids)))
    layer.on_task_start(1)
    idx = digits.train_indices(1)[:10]
    trainer.train_step(digits.train_images[idx], digits.train_labels[idx], 1)
    ids, w, x = captured["ids"], captured["w"], captured["x"]
    n0, n1 = (ids == 0).sum().item(), (ids == 1).sum().item()
    assert n0 == 10 and n1 == 10
    torch.testing.assert_close(w, torch.full((20,), 1 / 20))  # balanced counts, theta ~ 0
    # Unbalanced counts: each task's total weight is its Dirichlet posterior mean.
    w = layer.sample_weights(torch.tensor([0] * 2 + [1] * 18))
    theta = layer.task_logits.detach()
    pi0 = (theta[0].exp() + 2) / (theta[0].exp() + theta[1].exp() + 20)
    torch.testing.assert_close(w[:2].sum(), pi0)


def test_nap_network_keeps_its_weight_norms(digits):
    trainer = OnlineCLTrainer(digits, OnlineCLConfig(method="er", norm="nap", nf=4, buffer_size=20))
    conv = trainer.model.conv1.weight
    before = conv.norm().item()
    trainer.train_task(0)
    assert conv.norm().item() == pytest.approx(before, rel=1e-5)


def test_bad_method_names_the_choices(digits):
    with pytest.raises(ValueError, match="er, er_ace, derpp"):
        OnlineCLTrainer(digits, OnlineCLConfig(method="ewc"))
    with pytest.raises(ValueError, match="unknown norm"):
        OnlineCLTrainer(digits, OnlineCLConfig(norm="nonorm"))


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["batchnorm", "adab2n"])
def test_er_learns_the_digits_stream(digits, norm):
    summary = train_online(digits, OnlineCLConfig(method="er", norm=norm, nf=8, buffer_size=100, seed=0))
    cil, til = summary["class_il"], summary["task_il"]
    # Chance is 0.1 class-incremental and 0.5 task-incremental.
    assert cil["final_accuracy"] > 0.6, cil
    assert til["final_accuracy"] > 0.9, til
    final_row = torch.tensor(til["accuracy_matrix"])[-1]
    assert (final_row > 0.7).all(), final_row  # no task forgotten down to chance
    assert summary["steps"] == sum(len(digits.train_indices(t)) // 10 + (len(digits.train_indices(t)) % 10 > 0) for t in range(5))


def test_interventions_reach_the_online_learner_penalty_steps_and_task_hooks():
    """l2_init's penalty enters the SGD loss (a large λ keeps the weights near θ₀) and
    reset_layers runs at every task end through the shared task-hook walker."""
    data = split_digits(n_tasks=2)
    base = dict(method="er", norm="batchnorm", buffer_size=20, batch_size=10, nf=4, seed=0)
    pulled = OnlineCLTrainer(data, OnlineCLConfig(**base, interventions=("l2_init:lam=50",)))
    free = OnlineCLTrainer(data, OnlineCLConfig(**base))
    start = [p.detach().clone() for p in free.model.parameters()]
    for trainer in (pulled, free):
        trainer.train_task(0)
    dist = lambda t: sum((p - q).pow(2).sum() for p, q in zip(t.model.parameters(), start))  # noqa: E731
    assert dist(pulled) < 0.5 * dist(free)
    reset = OnlineCLTrainer(data, OnlineCLConfig(**base, interventions=("reset_layers:k=1,at=task_end",)))
    reset.train_task(0)
    assert reset.interventions.last_event, "reset_layers did not run at the task end"
    with pytest.raises(ValueError, match="valid names"):
        OnlineCLConfig(**base, interventions=("nosuch",)).validate()
