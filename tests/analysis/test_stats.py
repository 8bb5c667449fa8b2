"""normrl.analysis.stats against closed forms, scipy, and rliable 1.2.0's numbers
(Agarwal et al. 2021, arXiv 2108.13264)."""
import numpy as np
import pytest

from normrl.analysis.stats import (
    METRICS,
    aggregate_mean,
    aggregate_median,
    bootstrap_intervals,
    interquartile_mean,
    normalize_scores,
    optimality_gap,
    probability_of_improvement,
    probability_of_improvement_interval,
    resample_statistics,
)


def _reference_scores():
    """5 runs x 4 tasks; the rliable constants below were computed on exactly these."""
    return np.random.default_rng(0).normal(size=(5, 4)) + np.array([0.0, 1.0, 2.0, 3.0])


def _rliable_indices(reps=2000, seed=7):
    """The resample indices rliable 1.2.0 draws after ``np.random.seed(seed)``: one
    ``np.random.choice(num_runs, (num_runs, num_tasks))`` per resample, which equals one
    draw of shape (reps, num_runs, num_tasks) from a RandomState(seed)."""
    return np.random.RandomState(seed).choice(5, (reps, 5, 4), replace=True)


def _percentile_interval(point, dist, method):
    low, high = np.percentile(dist, [2.5, 97.5])
    return (low, high) if method == "percentile" else (2 * point - high, 2 * point - low)


# rliable.library.get_interval_estimates({"a": scores}, f, reps=2000, method=...) after
# np.random.seed(7), with f = [aggregate_iqm, aggregate_mean, aggregate_median,
# aggregate_optimality_gap(gamma=1)] (rliable 1.2.0, arch 7.2.0, pandas 2.3.3)
RLIABLE_POINTS = [1.3270729, 1.31682168, 1.39158447, 0.55807466]
RLIABLE_INTERVALS = {
    "percentile": [[0.90092174, 0.96913898, 0.92067968, 0.37088134],
                   [1.75860741, 1.63061795, 1.84641897, 0.79309932]],
    "basic": [[0.89553839, 1.00302541, 0.93674997, 0.32305001],
              [1.75322406, 1.66450439, 1.86248927, 0.74526798]],
}


def test_iqm_closed_forms():
    assert interquartile_mean(np.arange(8.0).reshape(4, 2)) == pytest.approx(3.5)  # mean of 2..5
    # n = 10: int(2.5) = 2 cut from each end -> mean of 2..7
    assert interquartile_mean(np.arange(10.0).reshape(5, 2)) == pytest.approx(4.5)
    # outliers in the outer quartiles do not move it
    assert interquartile_mean(np.array([[-1e6], [1.0], [2.0], [1e6]])) == pytest.approx(1.5)
    # n = 3: int(0.75) = 0, nothing trimmed
    assert interquartile_mean([[1.0, 2.0, 6.0]]) == pytest.approx(3.0)


def test_iqm_equals_scipy_trim_mean_on_flattened_scores():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for runs in range(1, 8):
        for tasks in (1, 3, 5):
            x = rng.standard_cauchy(size=(runs, tasks))
            assert interquartile_mean(x) == pytest.approx(stats.trim_mean(x, 0.25, axis=None), rel=1e-12)


def test_mean_median_gap_closed_forms():
    x = np.array([[0.0, 1.0, 4.0], [2.0, 3.0, 8.0]])  # task means 1, 2, 6
    assert aggregate_mean(x) == pytest.approx(3.0)
    assert aggregate_median(x) == pytest.approx(2.0)
    # min(x, 1) = [0, 1, 1, 1, 1, 1] -> mean 5/6
    assert optimality_gap(x) == pytest.approx(1.0 - 5.0 / 6.0)
    assert optimality_gap(x, gamma=4.0) == pytest.approx(4.0 - (0 + 1 + 4 + 2 + 3 + 4) / 6.0)


@pytest.mark.parametrize("method", ["percentile", "basic"])
def test_same_resamples_give_rliables_intervals(method):
    scores = _reference_scores()
    dists = resample_statistics(scores, _rliable_indices())
    points = [interquartile_mean(scores), aggregate_mean(scores), aggregate_median(scores),
              optimality_gap(scores)]
    np.testing.assert_allclose(points, RLIABLE_POINTS, atol=1e-8)
    ours = np.array([_percentile_interval(p, dists[m], method) for p, m in zip(points, METRICS)]).T
    np.testing.assert_allclose(ours, RLIABLE_INTERVALS[method], atol=1e-8)


def test_resample_statistics_match_a_loop_over_resamples():
    scores = _reference_scores()
    idx = _rliable_indices(reps=50)
    dists = resample_statistics(scores, idx, metrics=("iqm", "median"))
    for r in range(50):
        resample = scores[idx[r], np.arange(4)]
        assert dists["iqm"][r] == pytest.approx(interquartile_mean(resample), rel=1e-12)
        assert dists["median"][r] == pytest.approx(aggregate_median(resample), rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "basic"])
def test_own_resamples_agree_with_rliable_within_monte_carlo_error(method):
    """50,000 resamples of our own Generator vs rliable's 2,000 above: the endpoints'
    Monte-Carlo error at 2,000 resamples is ~0.03 for these scores (their spread ~0.2)."""
    result = bootstrap_intervals(_reference_scores(), method=method, seed=0)
    for i, m in enumerate(METRICS):
        iv = result.aggregate[m]
        assert iv.point == pytest.approx(RLIABLE_POINTS[i], abs=1e-8)
        assert iv.low == pytest.approx(RLIABLE_INTERVALS[method][0][i], abs=0.05)
        assert iv.high == pytest.approx(RLIABLE_INTERVALS[method][1][i], abs=0.05)


def test_a_stratum_of_identical_scores_has_a_zero_width_interval():
    scores = {"flat": [2.5, 2.5, 2.5, 2.5], "noisy": [0.0, 1.0, 3.0]}
    result = bootstrap_intervals(scores, reps=2000)
    flat = result.per_task["flat"]
    assert flat.low == flat.point == flat.high == 2.5
    noisy = result.per_task["noisy"]
    assert noisy.low < noisy.point < noisy.high
    constant = bootstrap_intervals(np.full((4, 3), 0.7), reps=500)
    for m in METRICS:
        iv = constant.aggregate[m]
        assert iv.low == pytest.approx(iv.point, abs=1e-12) and iv.high == pytest.approx(iv.point, abs=1e-12)


@pytest.mark.parametrize("method", ["percentile", "basic"])
def test_one_run_per_task_gives_the_point_as_its_interval(method):
    scores = np.array([[0.1, 0.9, 0.4, 2.0, -1.0]])  # 1 run x 5 tasks
    result = bootstrap_intervals(scores, reps=300, method=method)
    for m in METRICS:
        iv = result.aggregate[m]
        assert iv.low == pytest.approx(iv.point, abs=1e-12) and iv.high == pytest.approx(iv.point, abs=1e-12)
    assert result.aggregate["iqm"].point == pytest.approx(interquartile_mean(scores))
    for m, value in enumerate(scores[0]):
        assert result.per_task[m].low == result.per_task[m].high == value


@pytest.mark.parametrize("method, expected", [("percentile", 0.936), ("basic", 0.936)])
def test_coverage_of_a_normal_mean(method, expected):
    """1,000 synthetic experiments of 30 N(0, 1) runs (as 1,000 tasks of one call): the
    bootstrap interval of the mean is about mean +- 1.96 s sqrt(29/30)/sqrt(30), which
    covers the true mean with probability P(|T_29| < 1.96 sqrt(29/30)) = 0.936 (t
    distribution with 29 degrees of freedom); tolerance 0.025 is ~3 standard errors of a
    coverage estimated from 1,000 experiments."""
    scores = np.random.default_rng(5).normal(size=(30, 1000))
    result = bootstrap_intervals(scores, metrics=("mean",), reps=2000, method=method, seed=1)
    covered = np.mean([iv.low <= 0.0 <= iv.high for iv in result.per_task.values()])
    assert covered == pytest.approx(expected, abs=0.025)
    assert covered == pytest.approx(0.95, abs=0.04)


def test_tasks_with_different_run_counts():
    scores = {"a": [0.0, 2.0], "b": [1.0, 1.0, 1.0, 5.0], "c": [3.0]}
    result = bootstrap_intervals(scores, reps=1000)
    assert result.aggregate["mean"].point == pytest.approx((1.0 + 2.0 + 3.0) / 3)  # tasks weigh equally
    assert result.aggregate["median"].point == pytest.approx(2.0)
    # IQM pools the 7 runs: sorted 0,1,1,1,2,3,5, int(1.75) = 1 cut each end -> mean of 1,1,1,2,3
    assert result.aggregate["iqm"].point == pytest.approx(8.0 / 5.0)
    assert result.per_task["c"].low == result.per_task["c"].high == 3.0
    # task a's resampled means can only be 0, 1 or 2
    assert result.per_task["a"].low == 0.0 and result.per_task["a"].high == 2.0


def test_seeded_and_reproducible():
    scores = _reference_scores()
    a = bootstrap_intervals(scores, reps=500, seed=3)
    b = bootstrap_intervals(scores, reps=500, seed=np.random.default_rng(3))
    c = bootstrap_intervals(scores, reps=500, seed=4)
    assert a.aggregate == b.aggregate and a.per_task == b.per_task
    assert a.aggregate["iqm"] != c.aggregate["iqm"]


def test_probability_of_improvement_closed_forms():
    assert probability_of_improvement([[2.0, 3.0]], [[0.0, 1.0]]) == 1.0  # 1 run x 2 tasks
    x = {"t": [1.0, 2.0]}
    assert probability_of_improvement(x, {"t": [1.5]}) == pytest.approx(0.5)
    assert probability_of_improvement(x, {"t": [1.0]}) == pytest.approx(0.75)  # one tie counts 1/2
    assert probability_of_improvement(x, x) == pytest.approx(0.5)
    iv = probability_of_improvement_interval({"t": [5.0, 6.0, 7.0]}, {"t": [1.0, 2.0]}, reps=500)
    assert iv.low == iv.point == iv.high == 1.0


def test_probability_of_improvement_is_mann_whitney_u_over_pairs():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, size=(6, 3)).astype(float)  # ties on purpose
    y = rng.integers(0, 4, size=(4, 3)).astype(float)
    u = [stats.mannwhitneyu(x[:, m], y[:, m], alternative="greater").statistic / 24 for m in range(3)]
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(u))


def test_probability_of_improvement_interval_agrees_with_rliable():
    """rliable 1.2.0 get_interval_estimates({"xy": [x, y]}, probability_of_improvement,
    reps=50000) after np.random.seed(3) gave 0.65277778 in [0.43055556, 0.86111111];
    endpoints move in steps of 1/72 here (3 tasks x 6 x 4 run pairs)."""
    x = np.random.default_rng(1).normal(size=(6, 3)) + 0.5
    y = np.random.default_rng(2).normal(size=(4, 3))
    iv = probability_of_improvement_interval(x, y, seed=0)
    assert iv.point == pytest.approx(0.65277778, abs=1e-8)
    assert iv.low == pytest.approx(0.43055556, abs=1 / 72 + 1e-6)
    assert iv.high == pytest.approx(0.86111111, abs=1 / 72 + 1e-6)


def test_live_rliable_when_installed():
    """Runs only where rliable imports (it needs pandas < 3 through arch 7.2)."""
    try:
        from rliable import library, metrics
    except Exception as exc:  # arch raises TypeError, not ImportError, under pandas 3
        pytest.skip(f"rliable unavailable: {type(exc).__name__}: {exc}")
    scores = _reference_scores()
    f = lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_median(s)])  # noqa: E731
    state = np.random.get_state()
    try:
        np.random.seed(13)
        _, ci = library.get_interval_estimates({"a": scores}, f, reps=500)
    finally:
        np.random.set_state(state)
    dists = resample_statistics(scores, np.random.RandomState(13).choice(5, (500, 5, 4)),
                                metrics=("iqm", "median"))
    ours = np.array([np.percentile(dists[m], [2.5, 97.5]) for m in ("iqm", "median")]).T
    np.testing.assert_allclose(ours, ci["a"], atol=1e-10)


def test_normalize_scores():
    x = np.array([[0.0, 10.0], [5.0, 20.0]])
    np.testing.assert_allclose(normalize_scores(x, [0.0, 10.0], [10.0, 30.0]), [[0.0, 0.0], [0.5, 0.5]])
    assert normalize_scores({"g": [1.0, 3.0]}, {"g": 1.0}, {"g": 5.0}) == {"g": pytest.approx([0.0, 0.5])}
    with pytest.raises(ValueError, match="high equals low"):
        normalize_scores(x, 1.0, 1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: bootstrap_intervals(np.ones((2, 2)), metrics=("iqm", "mode")), "valid: iqm, mean, median, optimality_gap"),
    (lambda: bootstrap_intervals(np.ones((2, 2)), method="bca"), "valid: percentile, basic"),
    (lambda: bootstrap_intervals(np.ones((2, 2)), confidence=95), "confidence"),
    (lambda: bootstrap_intervals(np.ones(4)), "2-D"),
    (lambda: bootstrap_intervals({"a": [1.0, np.nan]}), "finite"),
    (lambda: probability_of_improvement({"a": [1.0]}, {"b": [1.0]}), "same tasks"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
