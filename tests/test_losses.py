"""Losses: values, stability, zero-norm guards, and every backward against centred differences.

Kinks are avoided, not tolerated: |cos| is kept away from 0 (the |.| of paper Eq. 1), the
triplet hinge away from 0, and norms away from 0. Inside those bounds every piece is smooth
and reaches rel_error <= 1e-7 in float64.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyadv import losses
from tinyadv.gradcheck import numerical_gradient, numerical_gradient_array

GRADCHECK = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # far beyond what a step of h = 1e-6 can move a cosine, hinge or norm


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---- softmax cross-entropy -------------------------------------------------------------

def ce_case(seed, n, c, scale):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, c)), rng.integers(0, c, size=n)


def test_cross_entropy_value_against_the_definition():
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    y = np.array([0, 2])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[[0, 1], y]))
    loss, _ = losses.softmax_cross_entropy_forward(logits, y)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_of_uniform_logits_is_log_c():
    loss, _ = losses.softmax_cross_entropy_forward(np.zeros((4, 10)), np.arange(4))
    assert loss == pytest.approx(np.log(10), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], dtype=dtype)
    y = np.array([0, 1, 2])
    loss, cache = losses.softmax_cross_entropy_forward(logits, y)
    # Row 0: the correct class wins by 1e4 -> loss e^-1e4 ~ 0. Row 1: loss = 1e4 + log(1 +
    # e^-1e4 + e^-2e4) = 1e4. Row 2: three equal logits -> log 3. Naive exp(1e4) = inf.
    assert np.isfinite(loss)
    assert loss == pytest.approx((0.0 + 1e4 + np.log(3)) / 3, rel=1e-6)
    dlogits = losses.softmax_cross_entropy_backward(1.0, cache)
    assert np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(dlogits, np.array([[0, 0, 0], [1, -1, 0],
                                                  [1 / 3, 1 / 3, -2 / 3]]) / 3, atol=1e-7)


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), c=st.integers(2, 6), scale=st.floats(0.1, 10.0),
       dloss=st.floats(0.1, 3.0))
def test_cross_entropy_backward_matches_numerical(seed, n, c, scale, dloss, assert_grad_ok):
    logits, y = ce_case(seed, n, c, scale)
    dlogits = losses.softmax_cross_entropy_backward(
        dloss, losses.softmax_cross_entropy_forward(logits, y)[1])
    # Away from saturation. When the right class wins by a wide margin the loss is
    # log(1 + tiny), known in float64 only to ~1e-16 *absolute*; a centred difference then
    # carries an absolute error ~1e-16 / h = 1e-10, which is not 1e-7 of a gradient that is
    # itself ~1e-5 (seen: rel_error 1.3e-6 at gradient 2.8e-5). That is a limit of the
    # reference, not of the backward, so the saturated regime is checked against the closed
    # form instead (test_cross_entropy_gradient_when_saturated).
    assume(np.max(np.abs(dlogits)) > 1e-2 * dloss)
    num = numerical_gradient(lambda: dloss * losses.softmax_cross_entropy_forward(logits, y)[0],
                             logits)
    assert_grad_ok("softmax CE dlogits", dlogits, num)


@pytest.mark.parametrize("margin", [10.0, 30.0, 300.0])
def test_cross_entropy_gradient_when_saturated(margin):
    # Two classes, the right one ahead by `margin`: dL/dz = (-sigmoid(-margin), +sigmoid(-margin)).
    logits = np.array([[margin, 0.0]])
    dlogits = losses.softmax_cross_entropy_backward(
        1.0, losses.softmax_cross_entropy_forward(logits, np.array([0]))[1])
    s = np.exp(-margin) / (1 + np.exp(-margin))
    # The losing class gets s to full relative precision, even at 1e-131; the winning class
    # gets p_y - 1, whose float64 rounding is ~1e-16 absolute (harmless for training).
    assert dlogits[0, 1] == pytest.approx(s, rel=1e-12)
    assert abs(dlogits[0, 0] - (-s)) <= 2e-16


def test_cross_entropy_wrong_gradients_fail(assert_wrong_grads_fail):
    logits, y = ce_case(0, 4, 5, 2.0)
    dlogits = losses.softmax_cross_entropy_backward(
        1.0, losses.softmax_cross_entropy_forward(logits, y)[1])
    num = numerical_gradient(lambda: losses.softmax_cross_entropy_forward(logits, y)[0], logits)
    assert_wrong_grads_fail("softmax CE dlogits", dlogits, num)


# ---- angular distance (paper Eq. 1) ----------------------------------------------------

def test_angular_distance_values():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
    b = np.array([[1.0, 1.0], [0.0, 5.0], [-2.0, -4.0], [2.0, 0.0]])
    d, _ = losses.angular_distance_forward(a, b)
    # 45 degrees; orthogonal; opposite (|cos| = 1, so the same "direction"); parallel
    np.testing.assert_allclose(d, [1 - 1 / np.sqrt(2), 1.0, 0.0, 0.0], atol=1e-15)


@GRADCHECK  # k >= 2: with one feature every pair is parallel, D == 0 and there is nothing to check
@given(seed=seeds, n=st.integers(1, 5), k=st.integers(2, 6), scale=st.floats(0.1, 10.0))
def test_angular_distance_backward_matches_numerical(seed, n, k, scale, assert_grad_ok):
    rng = np.random.default_rng(seed)
    a, b = scale * rng.standard_normal((2, n, k))
    dd = rng.standard_normal(n)
    assume(np.min(np.abs(cosines(a, b))) > KINK_GAP)
    # Near-parallel pairs: D's gradient vanishes and centred differences lose its digits.
    assume(np.max(np.abs(cosines(a, b))) < 1 - KINK_GAP)
    assume(min(np.min(np.linalg.norm(a, axis=1)), np.min(np.linalg.norm(b, axis=1))) > KINK_GAP)
    d, cache = losses.angular_distance_forward(a, b)
    assert d.shape == (n,) and np.all((d >= 0) & (d <= 1))
    da, db = losses.angular_distance_backward(dd, cache)
    assume(all(np.all(np.abs(g[g != 0]) > 1e-3) for g in (da, db)))  # as in the triplet's
    f = lambda: losses.angular_distance_forward(a, b)[0]  # noqa: E731
    assert_grad_ok("angular da", da, numerical_gradient_array(f, a, dd))
    assert_grad_ok("angular db", db, numerical_gradient_array(f, b, dd))


def test_angular_distance_wrong_gradients_fail(assert_wrong_grads_fail):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 4, 5))
    dd = rng.standard_normal(4)
    assert np.min(np.abs(cosines(a, b))) > KINK_GAP
    da, db = losses.angular_distance_backward(dd, losses.angular_distance_forward(a, b)[1])
    f = lambda: losses.angular_distance_forward(a, b)[0]  # noqa: E731
    assert_wrong_grads_fail("angular da", da, numerical_gradient_array(f, a, dd))
    assert_wrong_grads_fail("angular db", db, numerical_gradient_array(f, b, dd))


def test_angular_distance_of_zero_embeddings_is_one_without_nan():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.0, 1.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    d, cache = losses.angular_distance_forward(a, b)
    assert np.all(np.isfinite(d))
    assert d[0] == 1.0 and d[2] == 1.0
    da, db = losses.angular_distance_backward(np.ones(3), cache)
    assert np.all(np.isfinite(da)) and np.all(np.isfinite(db))
    assert np.all(da[[0, 2]] == 0) and np.all(db[[0, 2]] == 0)
    assert np.any(da[1] != 0)  # the healthy row still learns


# ---- triplet loss ----------------------------------------------------------------------

def triplet_case(seed, n, k, scale):
    rng = np.random.default_rng(seed)
    a, p, neg = scale * rng.standard_normal((3, n, k))
    return a, p, neg


def hinges(a, p, neg, margin):
    return (1 - np.abs(cosines(a, p))) - (1 - np.abs(cosines(a, neg))) + margin


def test_triplet_loss_value():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    p = np.array([[1.0, 1.0], [1.0, 0.0]])
    neg = np.array([[0.0, 1.0], [1.0, 1.0]])
    loss, _ = losses.triplet_loss_forward(a, p, neg, margin=0.1)
    # row 0: D(a,p) = 1 - 1/sqrt2 = 0.293, D(a,n) = 1     -> hinge 0.293 - 1 + m
    # row 1: D(a,p) = 0,                D(a,n) = 0.293 -> hinge 0 - 0.293 + m
    assert loss == 0.0  # m = 0.1: both negative
    loss, _ = losses.triplet_loss_forward(a, p, neg, margin=0.5)
    assert loss == pytest.approx((0.0 + (0.5 - (1 - 1 / np.sqrt(2)))) / 2, rel=1e-12)
    loss, _ = losses.triplet_loss_forward(a, p, neg, margin=0.8)
    expected = ((1 - 1 / np.sqrt(2)) - 1 + 0.8 + 0.8 - (1 - 1 / np.sqrt(2))) / 2
    assert loss == pytest.approx(expected, rel=1e-12)


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), k=st.integers(2, 6), scale=st.floats(0.1, 10.0),
       margin=st.floats(0.0, 0.5), dloss=st.floats(0.1, 3.0))
def test_triplet_backward_matches_numerical(seed, n, k, scale, margin, dloss, assert_grad_ok):
    a, p, neg = triplet_case(seed, n, k, scale)
    assume(np.min(np.abs(cosines(a, p))) > KINK_GAP and np.min(np.abs(cosines(a, neg))) > KINK_GAP)
    assume(max(np.max(np.abs(cosines(a, p))), np.max(np.abs(cosines(a, neg)))) < 1 - KINK_GAP)
    assume(np.min(np.abs(hinges(a, p, neg, margin))) > KINK_GAP)
    loss, cache = losses.triplet_loss_forward(a, p, neg, margin)
    da, dp, dn = losses.triplet_loss_backward(dloss, cache)
    # A non-zero entry below 1e-3 sits near centred differences' rounding (about 1e-10
    # absolute here): it cannot be checked to 1e-7 relative, whatever the backward.
    assume(all(np.all(np.abs(g[g != 0]) > 1e-3) for g in (da, dp, dn)))
    f = lambda: dloss * losses.triplet_loss_forward(a, p, neg, margin)[0]  # noqa: E731
    assert_grad_ok("triplet da", da, numerical_gradient(f, a))
    assert_grad_ok("triplet dp", dp, numerical_gradient(f, p))
    assert_grad_ok("triplet dn", dn, numerical_gradient(f, neg))


def test_triplet_wrong_gradients_fail(assert_wrong_grads_fail):
    a, p, neg = triplet_case(5, 4, 5, 1.0)
    margin = 0.3
    hinge = hinges(a, p, neg, margin)
    assert np.min(np.abs(hinge)) > KINK_GAP and np.sum(hinge > 0) >= 2
    cache = losses.triplet_loss_forward(a, p, neg, margin)[1]
    da, dp, dn = losses.triplet_loss_backward(1.0, cache)
    f = lambda: losses.triplet_loss_forward(a, p, neg, margin)[0]  # noqa: E731
    assert_wrong_grads_fail("triplet da", da, numerical_gradient(f, a))
    assert_wrong_grads_fail("triplet dp", dp, numerical_gradient(f, p))
    assert_wrong_grads_fail("triplet dn", dn, numerical_gradient(f, neg))


def test_triplet_with_zero_embeddings_has_no_nan():
    a = np.zeros((3, 4))
    a[1] = [1.0, 0.5, 0.0, 2.0]
    p = np.ones((3, 4))
    neg = np.zeros((3, 4))
    loss, cache = losses.triplet_loss_forward(a, p, neg, margin=0.05)
    assert np.isfinite(loss)
    for g in losses.triplet_loss_backward(1.0, cache):
        assert np.all(np.isfinite(g))


# ---- feature norm ----------------------------------------------------------------------

def test_feature_norm_value():
    loss, _ = losses.feature_norm_forward(np.array([[3.0, 4.0], [0.0, 1.0]]))
    assert loss == pytest.approx(3.0)


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), k=st.integers(1, 6), scale=st.floats(0.1, 10.0),
       dloss=st.floats(0.1, 3.0))
def test_feature_norm_backward_matches_numerical(seed, n, k, scale, dloss, assert_grad_ok):
    h = scale * np.random.default_rng(seed).standard_normal((n, k))
    assume(np.min(np.linalg.norm(h, axis=1)) > KINK_GAP)
    dh = losses.feature_norm_backward(dloss, losses.feature_norm_forward(h)[1])
    num = numerical_gradient(lambda: dloss * losses.feature_norm_forward(h)[0], h)
    assert_grad_ok("feature norm dh", dh, num)


def test_feature_norm_wrong_gradients_fail(assert_wrong_grads_fail):
    h = np.random.default_rng(4).standard_normal((3, 4))
    dh = losses.feature_norm_backward(1.0, losses.feature_norm_forward(h)[1])
    num = numerical_gradient(lambda: losses.feature_norm_forward(h)[0], h)
    assert_wrong_grads_fail("feature norm dh", dh, num)


def test_feature_norm_of_zero_embeddings_has_no_nan():
    h = np.array([[0.0, 0.0], [3.0, 4.0]])
    loss, cache = losses.feature_norm_forward(h)
    assert loss == pytest.approx(2.5)
    dh = losses.feature_norm_backward(1.0, cache)
    assert np.all(np.isfinite(dh))
    np.testing.assert_allclose(dh, [[0.0, 0.0], [0.3, 0.4]])
