"""ER, ER-ACE and DER++ losses against hand-written formulas."""
import pytest
import torch
import torch.nn.functional as F

from normrl.continual.online.methods import ReplayBatch, derpp_loss, er_ace_loss, er_loss


def test_er_is_cross_entropy_over_the_joint_batch():
    logits = torch.randn(6, 4)
    labels = torch.tensor([2, 3, 2, 0, 1, 0])
    batch = ReplayBatch(labels, 3, (3,), 1, 2)
    torch.testing.assert_close(er_loss(logits, batch), F.cross_entropy(logits, labels))


def test_er_ace_masks_absent_seen_classes_of_the_stream_part_only():
    logits = torch.randn(5, 6)
    labels = torch.tensor([2, 2, 0, 1, 3])  # stream: task 1 samples of class 2 only
    batch = ReplayBatch(labels, 2, (3,), task=1, classes_per_task=2)
    # Stream softmax over the present class 2 and unseen classes 4, 5.
    allowed = [2, 4, 5]
    stream = -torch.log_softmax(logits[:2, allowed], 1)[:, 0].mean()
    replay = F.cross_entropy(logits[2:], labels[2:])
    torch.testing.assert_close(er_ace_loss(logits, batch), stream + replay)
    # During the first task nothing is masked.
    first = ReplayBatch(torch.tensor([0, 1]), 2, (), task=0, classes_per_task=2)
    torch.testing.assert_close(er_ace_loss(logits[:2], first), F.cross_entropy(logits[:2], torch.tensor([0, 1])))


@pytest.mark.parametrize("alpha,beta", [(0.1, 0.5), (0.3, 1.0)])
def test_derpp_combines_ce_logit_mse_and_replay_ce(alpha, beta):
    logits = torch.randn(7, 4)
    labels = torch.tensor([1, 1, 0, 2, 3, 0, 1])
    stored = torch.randn(2, 4)
    batch = ReplayBatch(labels, 3, (2, 2), task=1, classes_per_task=2, stored_logits=stored)
    expected = F.cross_entropy(logits[:3], labels[:3]) + alpha * F.mse_loss(logits[3:5], stored) + beta * F.cross_entropy(logits[5:], labels[5:])
    torch.testing.assert_close(derpp_loss(logits, batch, alpha=alpha, beta=beta), expected)
