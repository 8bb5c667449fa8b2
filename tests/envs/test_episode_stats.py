"""EpisodeStats: running totals, reported totals on done, zeroing, state round trip."""
import pytest
import torch

from normrl.envs.episode_stats import EpisodeStats


def _flags(*values):
    return torch.tensor(values, dtype=torch.bool)


def test_totals_reported_on_done_and_zeroed_after():
    stats = EpisodeStats(3)
    no = _flags(False, False, False)
    stats.update(torch.tensor([1.0, 2.0, 0.5]), no, no)
    info = stats.update(torch.tensor([1.0, 2.0, 0.5]), _flags(True, False, False), _flags(False, False, True))
    assert info["done"].tolist() == [True, False, True]
    assert info["episode_return"].tolist() == [2.0, 4.0, 1.0]
    assert info["episode_length"].tolist() == [2, 2, 2]
    assert info["episode_length"].dtype == torch.int64
    # finished envs start again from zero; the unfinished one keeps counting
    assert stats.returns.tolist() == [0.0, 4.0, 0.0]
    assert stats.lengths.tolist() == [0, 2, 0]
    info2 = stats.update(torch.tensor([3.0, 3.0, 3.0]), _flags(True, True, True), no)
    assert info2["episode_return"].tolist() == [3.0, 7.0, 3.0]
    assert info2["episode_length"].tolist() == [1, 3, 1]
    # tensors handed out earlier are not modified by later updates
    assert info["episode_return"].tolist() == [2.0, 4.0, 1.0]


def test_final_obs_passed_through_and_reset_zeroes():
    stats = EpisodeStats(2)
    obs = torch.arange(4.0).reshape(2, 2)
    info = stats.update(torch.ones(2), _flags(False, False), _flags(False, False), final_obs=obs)
    assert info["final_obs"] is obs
    assert "final_obs" not in stats.update(torch.ones(2), _flags(False, False), _flags(False, False))
    stats.reset()
    assert stats.returns.tolist() == [0.0, 0.0] and stats.lengths.tolist() == [0, 0]


def test_state_dict_round_trip_and_validation():
    stats = EpisodeStats(2)
    stats.update(torch.tensor([1.5, 2.5]), _flags(False, False), _flags(False, False))
    saved = stats.state_dict()
    other = EpisodeStats(2)
    other.load_state_dict(saved)
    assert other.returns.tolist() == [1.5, 2.5] and other.lengths.tolist() == [1, 1]
    with pytest.raises(ValueError, match="shape"):
        EpisodeStats(3).load_state_dict(saved)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"returns": saved["returns"]})
    with pytest.raises(ValueError, match="positive int"):
        EpisodeStats(0)
