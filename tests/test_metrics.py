"""Tests of sertest.metrics: properties (Hypothesis), audmetric cross-checks, bootstrap."""

from __future__ import annotations

import functools
import math

import audmetric
import numpy as np
import pytest
import scipy.stats
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sertest import metrics as m
from sertest.stats import weighted_form

# Per-test settings (no global profile: other test files keep their own defaults).
hyp = settings(deadline=None, max_examples=50)  # a 1500-example run passed too

# ------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------

# Regression values: a mix of a coarse grid (ties, constant runs, like predictions
# rounded to 2 decimals) and arbitrary floats in [0, 1].
value = st.one_of(
    st.integers(0, 100).map(lambda i: i / 100),
    st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def paired_values(draw, min_size: int = 2, max_size: int = 40):
    n = draw(st.integers(min_size, max_size))
    x = np.array(draw(st.lists(value, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(value, min_size=n, max_size=n)))
    return x, y


def spread_ok(*arrays: np.ndarray, minimum: float = 1e-3) -> bool:
    """Not (nearly) constant: keeps float rounding far below the 1e-9 tolerances."""
    return all(np.ptp(a) > minimum for a in arrays)


CLASSES = ["anger", "happiness", "neutral", "sadness", "fear"]
label = st.sampled_from(CLASSES)


@st.composite
def paired_labels(draw, min_size: int = 1, max_size: int = 40):
    n = draw(st.integers(min_size, max_size))
    truth = draw(st.lists(label, min_size=n, max_size=n))
    prediction = draw(st.lists(label, min_size=n, max_size=n))
    return truth, prediction


def same(a: float, b: float, tol: float = 1e-9) -> bool:
    """Equal within ``tol``, treating two NaNs as equal."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


# ------------------------------------------------------------------------------------
# CCC / PCC / MAE / MSE / Spearman properties
# ------------------------------------------------------------------------------------


@hyp
@given(paired_values())
def test_ccc_of_series_with_itself_is_one(xy):
    x, _ = xy
    assume(np.ptp(x) > 0)
    assert m.ccc(x, x) == pytest.approx(1.0, abs=1e-12)


@hyp
@given(paired_values())
def test_ccc_and_pcc_are_symmetric(xy):
    x, y = xy
    assert same(m.ccc(x, y), m.ccc(y, x), 1e-12)
    assert same(m.pcc(x, y), m.pcc(y, x), 1e-12)


@hyp
@given(paired_values())
def test_abs_ccc_bounded_by_abs_pcc_bounded_by_one(xy):
    x, y = xy
    c, r = m.ccc(x, y), m.pcc(x, y)
    assume(not math.isnan(r))
    assert abs(c) <= abs(r) + 1e-12
    assert abs(r) <= 1.0


@hyp
@given(
    paired_values(),
    st.floats(0.1, 10.0),
    st.floats(-5.0, 5.0),
)
def test_pcc_invariant_to_positive_affine_map_ccc_is_not(xy, scale, shift):
    x, y = xy
    assume(spread_ok(x, y))
    assert m.pcc(x, scale * y + shift) == pytest.approx(m.pcc(x, y), abs=1e-9)
    assert m.pcc(scale * x + shift, y) == pytest.approx(m.pcc(x, y), abs=1e-9)
    # The same maps move CCC away from perfect agreement.
    assume(abs(scale - 1.0) > 0.05 or abs(shift) > 0.01)
    assert m.pcc(x, scale * x + shift) == pytest.approx(1.0, abs=1e-9)
    assert m.ccc(x, scale * x + shift) < 1.0 - 1e-6


@hyp
@given(paired_values(), st.sampled_from([1e-200, 1e-5, 3.0, 1e5, 1e200]))
def test_ccc_and_pcc_survive_a_common_rescaling_to_extreme_magnitudes(xy, scale):
    x, y = xy
    assume(spread_ok(x, y))
    assert m.ccc(scale * x, scale * y) == pytest.approx(m.ccc(x, y), abs=1e-9)
    assert m.pcc(scale * x, y) == pytest.approx(m.pcc(x, y), abs=1e-9)
    w = np.ones((1, x.size))
    ccc_weighted = weighted_form(m.ccc, (scale * x, scale * y))
    assert ccc_weighted(w)[0] == pytest.approx(m.ccc(x, y), abs=1e-9)


@hyp
@given(paired_values())
def test_mae_and_mse_are_non_negative_and_zero_iff_equal(xy):
    x, y = xy
    assert m.mae(x, x) == 0.0
    assert m.mse(x, x) == 0.0
    if np.array_equal(x, y):
        assert m.mae(x, y) == 0.0
    else:
        assert m.mae(x, y) > 0.0
        # Squares of differences below ~1e-154 underflow to 0 in float64.
        assert m.mse(x, y) > 0.0 or m.mae(x, y) < 1e-150
    assert m.mse(x, y) <= m.mae(x, y) + 1e-15  # |d| <= 1 for values in [0, 1]


def test_ccc_undefined_and_degenerate_cases():
    assert math.isnan(m.ccc([0.3, 0.3, 0.3], [0.3, 0.3, 0.3]))  # 0/0
    assert m.ccc([0.3, 0.3, 0.3], [0.5, 0.5, 0.5]) == 0.0  # both constant, apart
    assert m.ccc([0.3, 0.3, 0.3], [0.1, 0.5, 0.9]) == 0.0  # one constant
    assert math.isnan(m.ccc([0.3], [0.4]))  # fewer than 2 items
    assert math.isnan(m.pcc([0.3, 0.3, 0.3], [0.1, 0.5, 0.9]))
    assert math.isnan(m.pcc([0.1, 0.5, 0.9], [0.3, 0.3, 0.3]))
    assert math.isnan(m.spearman([0.1, 0.5, 0.9], [0.3, 0.3, 0.3]))


@hyp
@given(paired_values(min_size=3))
def test_spearman_matches_scipy_and_pcc_of_ranks(xy):
    x, y = xy
    assume(np.ptp(x) > 0 and np.ptp(y) > 0)
    rho = m.spearman(x, y)
    assert rho == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    ranks = m.pcc(scipy.stats.rankdata(x), scipy.stats.rankdata(y))
    assert rho == pytest.approx(ranks, abs=1e-9)


# ------------------------------------------------------------------------------------
# Cross-checks with audmetric
# ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # audmetric's corrcoef on constants
@hyp
@given(paired_values(min_size=1))
def test_regression_metrics_equal_audmetric(xy):
    x, y = xy
    assert m.mae(x, y) == pytest.approx(audmetric.mean_absolute_error(x, y), abs=1e-9)
    assert m.mse(x, y) == pytest.approx(audmetric.mean_squared_error(x, y), abs=1e-9)
    ours, theirs = m.ccc(x, y), audmetric.concordance_cc(x, y)
    if x.size >= 2 and np.ptp(x) == 0 and np.ptp(y) == 0 and x[0] == y[0]:
        # 0/0: audmetric may return rounding noise (e.g. 1.0) instead of its nan.
        assert math.isnan(ours)
    elif x.size < 2 or spread_ok(x, y) or np.ptp(x) == 0 or np.ptp(y) == 0:
        assert same(ours, theirs)
    ours, theirs = m.pcc(x, y), audmetric.pearson_cc(x, y)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(ours)
    elif spread_ok(x, y):
        assert same(ours, theirs)


@hyp
@given(paired_labels())
def test_classification_metrics_equal_audmetric_with_its_conventions(tp):
    truth, prediction = tp
    union = sorted(set(truth) | set(prediction))
    for ours, theirs in [
        (
            m.recall_per_class(truth, prediction, zero_division=0),
            audmetric.recall_per_class(truth, prediction),
        ),
        (
            m.precision_per_class(truth, prediction, zero_division=0),
            audmetric.precision_per_class(truth, prediction),
        ),
    ]:
        assert list(ours) == list(theirs)
        assert all(same(ours[k], theirs[k]) for k in ours)
    assert same(
        m.uar(truth, prediction, labels=union, zero_division=0),
        audmetric.unweighted_average_recall(truth, prediction),
    )
    assert same(
        m.uap(truth, prediction, labels=union),
        audmetric.unweighted_average_precision(truth, prediction),
    )
    assert same(m.accuracy(truth, prediction), audmetric.accuracy(truth, prediction))
    np.testing.assert_array_equal(
        m.confusion_matrix(truth, prediction),
        np.array(audmetric.confusion_matrix(truth, prediction)),
    )
    np.testing.assert_allclose(
        m.confusion_matrix(truth, prediction, normalize=True),
        np.array(audmetric.confusion_matrix(truth, prediction, normalize=True), dtype=float),
        atol=1e-12,
    )


@hyp
@given(paired_labels())
def test_per_class_defaults_are_nan_exactly_where_audmetric_divides_by_zero(tp):
    truth, prediction = tp
    recall = m.recall_per_class(truth, prediction)
    precision = m.precision_per_class(truth, prediction)
    ref_recall = audmetric.recall_per_class(truth, prediction)
    ref_precision = audmetric.precision_per_class(truth, prediction)
    for k in recall:
        assert math.isnan(recall[k]) == (k not in truth)
        assert math.isnan(precision[k]) == (k not in prediction)
        if k in truth:
            assert same(recall[k], ref_recall[k])
        if k in prediction:
            assert same(precision[k], ref_precision[k])


@hyp
@given(paired_labels())
def test_default_uar_equals_audmetric_when_predictions_are_truth_classes(tp):
    truth, prediction = tp
    prediction = [p if p in truth else truth[0] for p in prediction]
    assert same(m.uar(truth, prediction), audmetric.unweighted_average_recall(truth, prediction))
    assert same(m.uap(truth, prediction), audmetric.unweighted_average_precision(truth, prediction))


def test_predictions_outside_labels_count_as_misses_unlike_audmetric():
    truth = ["anger", "anger", "sadness", "sadness"]
    prediction = ["anger", "contempt", "sadness", "sadness"]  # an 8-class model
    labels = ["anger", "sadness"]
    assert m.recall_per_class(truth, prediction, labels)["anger"] == 0.5
    assert audmetric.recall_per_class(truth, prediction, labels)["anger"] == 1.0
    assert m.uar(truth, prediction, labels) == 0.75


# ------------------------------------------------------------------------------------
# UAR / UAP / proportions
# ------------------------------------------------------------------------------------


@hyp
@given(st.lists(label, min_size=1, max_size=40))
def test_uar_of_perfect_prediction_is_one_and_of_constant_prediction_is_one_over_k(truth):
    assert m.uar(truth, truth) == 1.0
    assert m.uap(truth, truth) == 1.0
    k = len(set(truth))
    for constant in set(truth):
        assert m.uar(truth, [constant] * len(truth)) == pytest.approx(1.0 / k)


@hyp
@given(st.lists(label, min_size=1, max_size=40), st.lists(label, min_size=1, max_size=40))
def test_class_proportions_sum_to_one_and_relative_difference_is_their_difference(a, b):
    pa = m.class_proportions(a, CLASSES)
    assert sum(pa.values()) == pytest.approx(1.0)
    assert pa["anger"] == pytest.approx(a.count("anger") / len(a))
    diff = m.relative_difference_per_class(a, b, CLASSES)
    pb = m.class_proportions(b, CLASSES)
    assert all(diff[c] == pytest.approx(pa[c] - pb[c]) for c in CLASSES)
    assert sum(diff.values()) == pytest.approx(0.0, abs=1e-12)
    assert all(v == 0.0 for v in m.relative_difference_per_class(a, a).values())


def test_class_proportions_ignore_items_outside_labels():
    assert m.class_proportions(["a", "b", "x", "x"], ["a", "b"]) == {"a": 0.5, "b": 0.5}


# ------------------------------------------------------------------------------------
# Jensen-Shannon distance and histograms
# ------------------------------------------------------------------------------------


@hyp
@given(
    st.lists(value, min_size=1, max_size=40),
    st.lists(value, min_size=1, max_size=40),
    st.integers(1, 20),
)
def test_jsd_bounded_symmetric_and_zero_for_identical(a, b, bins):
    d = m.jensen_shannon_distance(a, b, bins=bins)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(m.jensen_shannon_distance(b, a, bins=bins), abs=1e-12)
    assert m.jensen_shannon_distance(a, a, bins=bins) == 0.0
    # Same histogram from a reordered, doubled sample: still distance 0.
    assert m.jensen_shannon_distance(a, list(reversed(a)) * 2, bins=bins) == 0.0


def test_jsd_really_uses_the_requested_number_of_bins():
    # 0.05 and 0.105 fall into different bins of width 0.1, but the same bin of width 1/9.
    truth, prediction = [0.05] * 10, [0.105] * 10
    assert m.jensen_shannon_distance(truth, prediction, bins=10) == pytest.approx(1.0)
    assert m.jensen_shannon_distance(truth, prediction, bins=9) == 0.0
    assert m.histogram_proportions(truth, bins=10).shape == (10,)
    # ser-tests dropped values above 0.9; here they count.
    assert m.jensen_shannon_distance([0.95] * 5, [0.85] * 5) == pytest.approx(1.0)


def test_histogram_clips_values_outside_the_range_into_outer_bins():
    p = m.histogram_proportions([-0.5, 0.0, 0.55, 1.0, 1.5], bins=10)
    assert p[0] == pytest.approx(0.4) and p[5] == pytest.approx(0.2) and p[9] == pytest.approx(0.4)
    assert p.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------
# Bins and per-bin metrics
# ------------------------------------------------------------------------------------


def test_bin_values_right_closed_with_open_outer_bins():
    values = [-10.0, 0.25, 0.2500001, 0.5, 0.75, 0.7500001, 10.0, math.inf]
    assert m.bin_values(values).tolist() == [0, 0, 1, 1, 2, 3, 3, 3]
    assert m.bin_names() == ["(-inf, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, inf)"]


def test_min_samples_for_bins_reproduces_ser_tests_values():
    # ser-tests skipped bins with < 67 items for 1000 draws and < 4 for 60 draws.
    assert m.min_samples_for_bins(1000) == 67
    assert m.min_samples_for_bins(60) == 4
    counts = [m.min_samples_for_bins(n) for n in range(0, 2000, 37)]
    assert counts == sorted(counts)


@hyp
@given(paired_values(min_size=1, max_size=60), st.integers(0, 20))
def test_per_bin_metrics_skip_exactly_the_sparse_bins(xy, min_samples):
    truth, prediction = xy
    n_truth = np.bincount(m.bin_values(truth), minlength=4)
    n_pred = np.bincount(m.bin_values(prediction), minlength=4)
    recall = m.recall_per_bin(truth, prediction, min_samples=min_samples)
    precision = m.precision_per_bin(truth, prediction, min_samples=min_samples)
    assert sorted(recall) == sorted(precision) == [0, 1, 2, 3]
    for b in range(4):
        sparse = n_truth[b] < min_samples
        assert math.isnan(recall[b]) == (sparse or n_truth[b] == 0)
        assert math.isnan(precision[b]) == (sparse or n_pred[b] == 0)
    plain = m.recall_per_class(m.bin_values(truth), m.bin_values(prediction), labels=[0, 1, 2, 3])
    for b in range(4):
        if not math.isnan(recall[b]):
            assert recall[b] == plain[b]
    diff = m.relative_difference_per_bin(prediction, truth, min_samples=min_samples)
    for b in range(4):
        assert math.isnan(diff[b]) == (n_truth[b] < min_samples)
        if not math.isnan(diff[b]):
            assert diff[b] == pytest.approx(n_pred[b] / len(prediction) - n_truth[b] / len(truth))


# ------------------------------------------------------------------------------------
# Small measures
# ------------------------------------------------------------------------------------


def test_proportion_in_range_fraction_unchanged_and_label_agreement():
    values = [0.1, 0.3, 0.5, 0.7, 0.9]
    assert m.proportion_in_range(values, 0.3, 0.7) == pytest.approx(0.6)
    assert m.proportion_in_range(values, high=0.45) == pytest.approx(0.4)
    assert m.proportion_in_range(values, low=0.55) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="low, high"):
        m.proportion_in_range(values)
    assert m.fraction_unchanged([0.1, 0.2, 0.3], [0.12, 0.3, 0.3]) == pytest.approx(2 / 3)
    assert m.label_agreement(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == 0.75


# ------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------

PAIRED_NUMERIC = [
    m.ccc, m.pcc, m.mae, m.mse, m.spearman, m.fraction_unchanged,
    m.recall_per_bin, m.precision_per_bin,
]
PAIRED_LABELS = [
    m.uar, m.uap, m.accuracy, m.recall_per_class, m.precision_per_class, m.confusion_matrix,
    m.label_agreement,
]


@pytest.mark.parametrize("func", PAIRED_NUMERIC + PAIRED_LABELS, ids=lambda f: f.__name__)
def test_paired_metrics_reject_length_mismatch_and_empty_input(func):
    with pytest.raises(ValueError, match="differ in length"):
        func([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        func([], [])


@pytest.mark.parametrize("func", PAIRED_NUMERIC, ids=lambda f: f.__name__)
def test_numeric_metrics_reject_nan(func):
    with pytest.raises(ValueError, match="non-finite"):
        func([0.1, 0.2, 0.3], [0.1, math.nan, 0.3])


def test_distribution_metrics_reject_empty_and_accept_different_lengths():
    with pytest.raises(ValueError, match="empty"):
        m.jensen_shannon_distance([], [0.1])
    with pytest.raises(ValueError, match="empty"):
        m.relative_difference_per_bin([0.1], [])
    assert 0.0 <= m.jensen_shannon_distance([0.1, 0.2], [0.3]) <= 1.0
    assert set(m.relative_difference_per_class(["a"], ["a", "b"])) == {"a", "b"}


# ------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------


def regression_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.0, 1.0, n)
    return truth, 0.7 * truth + 0.1 + rng.normal(0.0, 0.1, n)


@pytest.mark.parametrize("metric", [m.ccc, m.pcc, m.mae])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_ci_contains_point_estimate(metric, seed):
    truth, prediction = regression_data(300, seed)
    low, high = m.bootstrap_ci(metric, truth, prediction, rng=np.random.default_rng(seed))
    assert low < metric(truth, prediction) < high


def test_bootstrap_ci_narrows_with_more_items():
    widths = []
    for n in (100, 1000):
        truth, prediction = regression_data(n, 7)
        low, high = m.bootstrap_ci(m.ccc, truth, prediction, rng=np.random.default_rng(7))
        widths.append(high - low)
    assert widths[1] < 0.6 * widths[0]  # expected ratio sqrt(100/1000) ~ 0.32


def test_bootstrap_ci_is_reproducible_from_the_seed():
    truth, prediction = regression_data(200, 3)
    first = m.bootstrap_ci(m.ccc, truth, prediction, rng=np.random.default_rng(11))
    again = m.bootstrap_ci(m.ccc, truth, prediction, rng=np.random.default_rng(11))
    other = m.bootstrap_ci(m.ccc, truth, prediction, rng=np.random.default_rng(12))
    assert first == again
    assert first != other


@pytest.mark.parametrize("metric", [m.mae, m.ccc])
def test_cluster_bootstrap_is_wider_than_item_bootstrap_for_clustered_items(metric):
    rng = np.random.default_rng(5)
    n_speakers, per_speaker = 30, 30
    speaker = np.repeat(np.arange(n_speakers), per_speaker)
    speaker_mean = rng.normal(0.0, 0.15, n_speakers)[speaker]
    truth = np.clip(0.5 + speaker_mean + rng.normal(0.0, 0.05, speaker.size), 0.0, 1.0)
    bias = rng.normal(0.0, 0.15, n_speakers)[speaker]  # errors shared within a speaker
    prediction = truth + bias + rng.normal(0.0, 0.02, speaker.size)
    item = m.bootstrap_ci(metric, truth, prediction, rng=np.random.default_rng(1))
    cluster = m.bootstrap_ci(
        metric, truth, prediction, rng=np.random.default_rng(1), groups=speaker
    )
    assert cluster[1] - cluster[0] > 2.0 * (item[1] - item[0])


def test_bootstrap_fast_path_equals_per_resample_path():
    # Speed is measured in benchmarks/, never asserted here; the vectorised path must give
    # exactly what calling the metric once per resample gives.
    truth, prediction = regression_data(300, 0)
    fast = m.bootstrap_ci(m.ccc, truth, prediction, n_boot=300, rng=np.random.default_rng(4))
    slow = m.bootstrap_ci(lambda t, p: m.ccc(t, p), truth, prediction, n_boot=300,
                          rng=np.random.default_rng(4))
    assert fast == pytest.approx(slow, abs=1e-9)


def test_bootstrap_returns_nan_when_too_many_resamples_are_nan():
    # PCC is nan whenever the single distinct truth value is not drawn (p ~ 0.36).
    truth = np.r_[np.zeros(19), 1.0]
    prediction = np.linspace(0.0, 1.0, 20)
    low, high = m.bootstrap_ci(m.pcc, truth, prediction, rng=np.random.default_rng(0))
    assert math.isnan(low) and math.isnan(high)
    low, high = m.bootstrap_ci(
        m.pcc, truth, prediction, rng=np.random.default_rng(0), max_nan_fraction=0.6
    )
    assert -1.0 <= low <= high <= 1.0


def test_bootstrap_ignores_a_few_nan_resamples_in_generic_metrics():
    values = np.arange(100.0)
    calls = []

    def mean_unless_first_item_missing(x: np.ndarray) -> float:
        calls.append(1)
        return float(np.mean(x)) if 0.0 in x else math.nan  # nan with p ~ 0.37

    low, high = m.bootstrap_ci(
        mean_unless_first_item_missing,
        values,
        n_boot=200,
        rng=np.random.default_rng(2),
        max_nan_fraction=0.5,
    )
    assert len(calls) == 200
    assert 30.0 < low < 49.5 < high < 70.0


def test_bootstrap_argument_errors():
    x = [0.1, 0.2, 0.3]
    with pytest.raises(TypeError, match="Generator"):
        m.bootstrap_ci(m.ccc, x, x, rng=np.random.RandomState(0))
    with pytest.raises(TypeError):
        m.bootstrap_ci(m.ccc, x, x)  # rng is required
    with pytest.raises(ValueError, match="differ in length"):
        m.bootstrap_ci(m.ccc, x, x[:2], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="groups and arrays"):
        m.bootstrap_ci(m.ccc, x, x, rng=np.random.default_rng(0), groups=[1, 2])
    with pytest.raises(ValueError, match="confidence"):
        m.bootstrap_ci(m.ccc, x, x, rng=np.random.default_rng(0), confidence=1.5)


VECTORISED_CASES = [
    (m.ccc, "regression"),
    (m.pcc, "regression"),
    (m.mae, "regression"),
    (m.mse, "regression"),
    (m.uar, "labels"),
    (m.uap, "labels"),
    (m.accuracy, "labels"),
    (functools.partial(m.uar, labels=CLASSES[:4], zero_division=0.0), "labels"),
    (functools.partial(m.uap, labels=CLASSES[:4], zero_division=math.nan), "labels"),
]


def _case_id(case: object) -> str:
    if isinstance(case, functools.partial):
        return f"partial-{case.func.__name__}"
    return getattr(case, "__name__", str(case))


@pytest.mark.parametrize("metric, kind", VECTORISED_CASES, ids=_case_id)
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_bootstrap_equals_calling_the_metric_on_each_resample(metric, kind, seed):
    rng = np.random.default_rng(seed)
    n = 12  # small and coarse, so that constant resamples and missing classes occur
    if kind == "regression":
        a, b = rng.choice([0.0, 0.5, 1.0], n), rng.choice([0.0, 0.5, 1.0], n)
    else:
        a, b = rng.choice(CLASSES[:4], n), rng.choice(CLASSES[:5], n)
    groups = rng.integers(0, 4, n)
    weighted = weighted_form(metric, (a, b))
    assert weighted is not None
    counts = rng.integers(0, 3, size=(200, n))
    counts[:, 0] += 1  # never an empty resample
    fast = weighted(counts.astype(float))
    for row, w in enumerate(counts):
        chosen = np.repeat(np.arange(n), w)
        assert same(fast[row], metric(a[chosen], b[chosen])), row
    # The public function agrees with its slow path, for item and cluster resampling.
    for g in (None, groups):
        kwargs = dict(n_boot=300, rng=np.random.default_rng(seed), groups=g, max_nan_fraction=1.0)
        fast_ci = m.bootstrap_ci(metric, a, b, **kwargs)
        kwargs["rng"] = np.random.default_rng(seed)
        slow_ci = m.bootstrap_ci(lambda x, y: metric(x, y), a, b, **kwargs)
        assert same(fast_ci[0], slow_ci[0]) and same(fast_ci[1], slow_ci[1])


def test_vectorised_ccc_and_pcc_on_constant_and_nearly_constant_resamples():
    x = np.array([0.5, 0.5 + 1e-7, 0.2, 0.2, 0.9, 0.0])
    y = np.array([0.3, 0.6, 0.2, 0.2, 0.1, 1.0])
    weights = np.array(
        [
            [1, 1, 0, 0, 0, 0],  # x spread 1e-7: nearly constant, not constant
            [0, 0, 1, 1, 0, 0],  # both constant and equal: nan
            [0, 0, 3, 0, 0, 0],  # the same item three times: nan
            [2, 0, 0, 0, 0, 0],  # both constant, different values: ccc 0, pcc nan
            [0, 0, 1, 1, 1, 0],  # one constant series? no: both vary
            [1, 0, 1, 0, 0, 1],  # ordinary
            [0, 0, 0, 0, 1, 0],  # a single item: nan
        ],
        dtype=float,
    )
    for metric in (m.ccc, m.pcc):
        fast = weighted_form(metric, (x, y))(weights)
        for row, w in enumerate(weights):
            chosen = np.repeat(np.arange(x.size), w.astype(int))
            assert same(fast[row], metric(x[chosen], y[chosen]), 1e-12), (metric.__name__, row)
    ccc_rows = weighted_form(m.ccc, (x, y))(weights)
    assert ccc_rows[3] == 0.0
    assert math.isnan(ccc_rows[1])


def test_weighted_forms_of_drawn_indices_match_direct_computation():
    truth, prediction = regression_data(50, 4)
    idx = np.random.default_rng(4).integers(0, 50, size=(30, 50))
    counts = np.stack([np.bincount(row, minlength=50) for row in idx]).astype(np.float64)
    for metric in (m.ccc, m.pcc, m.mae):
        rows = weighted_form(metric, (truth, prediction))(counts)
        direct = [metric(truth[i], prediction[i]) for i in idx]
        np.testing.assert_allclose(rows, direct, atol=1e-12)
