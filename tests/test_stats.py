"""stats.py against scipy's own implementations and hand-checkable cases."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as scipy_stats

from tinyadv.lab import stats

finite = st.integers(-1000, 1000).map(lambda k: k / 10)  # accuracies: a tenth of a point


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=2, max_size=8), st.lists(finite, min_size=2, max_size=8))
def test_welch_equals_scipy(a, b):
    got = stats.welch(a, b)
    if np.var(a) == 0 and np.var(b) == 0:
        assert got["p"] is None and got["ci"] is None
        return
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    low, high = ref.confidence_interval(0.95)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert got["ci"] == pytest.approx((low, high), rel=1e-9, abs=1e-9)
    assert got["diff"] == pytest.approx(np.mean(a) - np.mean(b), abs=1e-9)


def test_paired_images_equals_a_one_sample_test_of_the_differences():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 350)) < 0.6, rng.random((3, 350)) < 0.55
    d = 100 * (a.mean(axis=0) - b.mean(axis=0))
    ref = scipy_stats.ttest_1samp(d, 0.0)
    got = stats.paired_images(a, b)
    assert got["n"] == 350 and got["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert got["ci"] == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-9)
    assert got["diff"] == pytest.approx(100 * (a.mean() - b.mean()))
    counts = stats.difference_counts(a, b)  # the committed summary: integers only
    assert counts["denominator"] == 9 and sum(counts["counts"].values()) == 350
    assert stats.paired_from_counts(counts)["p"] == got["p"]


def test_paired_counts_survive_a_json_round_trip_and_unequal_seed_counts():
    import json
    a = np.array([[1, 1, 0, 0], [1, 0, 0, 1]], bool)
    b = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    counts = json.loads(json.dumps(stats.difference_counts(a, b)))  # keys become strings
    got = stats.paired_from_counts(counts)
    assert got["diff"] == pytest.approx(100 * (a.mean() - b.mean()))


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]


def test_a_corrected_family_is_never_more_significant_than_uncorrected():
    comps = [{"p": p} for p in (0.001, 0.02, 0.2)]
    stats.correct_family(comps, corrected=True)
    assert [c["p_family"] >= c["p"] for c in comps] == [True] * 3
    explore = stats.correct_family([{"p": 0.02}], corrected=False)
    assert explore[0]["p_family"] == 0.02 and not explore[0]["corrected"]


def test_beyond_noise_needs_both_tests_when_both_exist():
    yes, no = {"p": 0.01, "p_family": 0.03}, {"p": 0.01, "p_family": 0.2}
    assert stats.beyond_noise(yes) and not stats.beyond_noise(no)
    assert not stats.beyond_noise(yes, no) and stats.beyond_noise(yes, yes)
    assert not stats.beyond_noise({"p": None})


def test_formats():
    assert stats.format_p(0.0266) == "0.027" and stats.format_p(0.2) == "0.20"
    assert stats.format_p(0.0004) == "< 0.001" and stats.format_p(None) == "--"
    assert stats.format_ci((-0.9, 6.4)) == "[−0.90, +6.40]"
    text = stats.comparison_text({"diff": 2.75, "ci": (-0.9, 6.4), "p": 0.094})
    assert text == "+2.75, 95% CI [−0.90, +6.40], p = 0.094"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="at least two"):
        stats.welch([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="a: expected"):
        stats.welch([1.0, float("nan")], [1.0, 2.0])
