"""Continual-learning metrics on a hand-computed accuracy matrix."""
import pytest

from normrl.continual.metrics import average_forgetting, backward_transfer, final_average_accuracy

R = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.1],
    [0.5, 0.4, 0.7],
]


def test_final_average_accuracy():
    assert final_average_accuracy(R) == pytest.approx((0.5 + 0.4 + 0.7) / 3)


def test_average_forgetting_uses_the_best_earlier_accuracy():
    # task 0: max(0.9, 0.6) - 0.5 = 0.4; task 1: max(0.8) - 0.4 = 0.4
    assert average_forgetting(R) == pytest.approx(0.4)
    improving = [[0.5, 0.0], [0.7, 0.9]]  # task 0 improved later: forgetting -0.2
    assert average_forgetting(improving) == pytest.approx(-0.2)


def test_backward_transfer():
    # ((0.5 - 0.9) + (0.4 - 0.8)) / 2
    assert backward_transfer(R) == pytest.approx(-0.4)
    assert backward_transfer([[0.7]]) == 0.0 and average_forgetting([[0.7]]) == 0.0


def test_non_square_matrix_is_rejected():
    with pytest.raises(ValueError, match="square"):
        final_average_accuracy([[0.1, 0.2]])
