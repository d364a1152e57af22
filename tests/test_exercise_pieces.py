"""The two library pieces behind exercises 06 and 07, against centred differences in float64.

- layers.gather_rows: out = h[index] (the batch-hard negatives' gather) and its scatter-add
  backward, with repeated indices;
- grader/answers.py's fgsm_loss: the mean cross-entropy of a two-layer MLP and its input gradient, the
  direction FGSM takes the sign of.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyadv import attacks, layers, mlp
from tinyadv.grader import answers
from tinyadv.fast import layers as fast_layers
from tinyadv.gradcheck import compare, numerical_gradient, numerical_gradient_array

GRADCHECK = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # ReLU pre-activations kept this far from 0: far beyond a step of h = 1e-6


# ---- gather_rows ---------------------------------------------------------------------------

@GRADCHECK
@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 9), k=st.integers(1, 5))
def test_gather_rows_backward_matches_numerical(seed, n, m, k, assert_grad_ok):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, k))
    index = rng.integers(0, n, size=m)  # repeats whenever m > n, and often before
    dout = rng.standard_normal((m, k))
    out, cache = layers.gather_rows_forward(h, index)
    np.testing.assert_array_equal(out, h[index])
    dh = layers.gather_rows_backward(dout, cache)
    numeric = numerical_gradient_array(lambda: layers.gather_rows_forward(h, index)[0], h, dout)
    assert_grad_ok("gather dh", dh, numeric)


def test_gather_rows_backward_is_the_transposed_selection_matrix():
    # An independent reference: out = S @ h with S[i, index[i]] = 1, so dh = S.T @ dout.
    rng = np.random.default_rng(0)
    index = np.array([2, 2, 0, 2, 4])  # row 2 three times, rows 1 and 3 never
    h, dout = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    selection = np.zeros((5, 5))
    selection[np.arange(5), index] = 1.0
    dh = layers.gather_rows_backward(dout, layers.gather_rows_forward(h, index)[1])
    np.testing.assert_allclose(dh, selection.T @ dout, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(dh[[1, 3]], 0.0)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 9), k=st.integers(1, 5))
def test_fast_gather_rows_backward_adds_into_out_as_np_add_at_does(seed, n, m, k):
    """The fast backward's ``out=``: the scatter-add lands in the given array, bit for bit as
    the plain np.add.at(out, index, dout) on the 2-d arrays would add it (float32, repeated
    rows); without ``out`` it equals layers.gather_rows_backward bit for bit."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=m)
    dout = rng.standard_normal((m, k)).astype(np.float32)
    start = rng.standard_normal((n, k)).astype(np.float32)
    expected = start.copy()
    np.add.at(expected, index, dout)
    out = start.copy()
    returned = fast_layers.gather_rows_backward(dout, (index, n), out=out)
    assert returned is out and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    rows = np.zeros((n + 2, k), dtype=np.float32)  # into the first n rows of a larger array
    fast_layers.gather_rows_backward(dout, (index, n), out=rows[:n])
    from_zero = np.zeros((n, k), dtype=np.float32)
    np.add.at(from_zero, index, dout)
    np.testing.assert_array_equal(rows[:n], from_zero)
    np.testing.assert_array_equal(rows[n:], 0.0)
    np.testing.assert_array_equal(fast_layers.gather_rows_backward(dout, (index, n)),
                                  layers.gather_rows_backward(dout, (index, n)))


def test_fast_gather_rows_backward_rejects_an_out_it_cannot_add_into():
    dout, cache = np.ones((3, 2)), (np.array([0, 1, 1]), 2)
    with pytest.raises(ValueError, match="^out:"):
        fast_layers.gather_rows_backward(dout, cache, out=np.zeros((3, 2)))  # wrong shape
    with pytest.raises(ValueError, match="^out:"):
        fast_layers.gather_rows_backward(dout, cache, out=np.zeros((2, 4))[:, ::2])  # strided


def test_gather_rows_wrong_gradients_fail(assert_wrong_grads_fail):
    rng = np.random.default_rng(1)
    index = np.array([1, 1, 0, 3])
    h, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    cache = layers.gather_rows_forward(h, index)[1]
    numeric = numerical_gradient_array(lambda: layers.gather_rows_forward(h, index)[0], h, dout)
    assert_wrong_grads_fail("gather dh", layers.gather_rows_backward(dout, cache), numeric)
    # The classic mistake: a fancy-index += writes a repeated row once instead of adding.
    overwritten = np.zeros_like(h)
    overwritten[index] += dout
    report = compare("gather dh", overwritten, numeric)
    assert not report.passed and report.worst_index[0] == 1, str(report)


# ---- fgsm_loss -----------------------------------------------------------------------------

def two_layer_case(seed, n, d, hidden, c, scale):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, d))
    W1, b1 = scale * rng.standard_normal((d, hidden)), 0.5 * rng.standard_normal(hidden)
    W2, b2 = scale * rng.standard_normal((hidden, c)), 0.5 * rng.standard_normal(c)
    return x, W1, b1, W2, b2, rng.integers(0, c, size=n)


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), d=st.integers(1, 6), hidden=st.integers(1, 5),
       c=st.integers(2, 5), scale=st.floats(0.3, 3.0), dloss=st.floats(0.5, 2.0))
def test_fgsm_loss_backward_matches_numerical(seed, n, d, hidden, c, scale, dloss,
                                              assert_grad_ok):
    x, W1, b1, W2, b2, y = two_layer_case(seed, n, d, hidden, c, scale)
    assume(np.min(np.abs(x @ W1 + b1)) > KINK_GAP)
    loss, cache = answers.fgsm_loss_forward(x, W1, b1, W2, b2, y)
    dx = answers.fgsm_loss_backward(dloss, cache)
    # A saturated softmax makes every entry of dx vanish (~1e-5 in a case hypothesis found),
    # where a centred difference keeps its absolute accuracy but not its relative one: stay
    # away, as from a kink. Over 6000 random cases, max|dx| > 1e-2 kept 99% of them with a
    # worst rel_error of 1.3e-8; a floor of 1e-3 still allowed 6e-8.
    assume(np.max(np.abs(dx)) > 1e-2)
    numeric = numerical_gradient(lambda: dloss * answers.fgsm_loss_forward(x, W1, b1, W2, b2, y)[0], x)
    assert_grad_ok("fgsm dx", dx, numeric)


def test_fgsm_loss_is_the_mlp_cross_entropy_and_its_sign_is_fgsm_direction():
    rng = np.random.default_rng(2)
    params = mlp.init_params([6, 4, 3], rng, dtype=np.float64, init="he")
    params["b1"] = 0.5 * rng.standard_normal(4)
    x, y = rng.uniform(0, 1, size=(5, 6)), rng.integers(0, 3, size=5)
    loss, cache = answers.fgsm_loss_forward(x, params["W1"], params["b1"], params["W2"],
                                            params["b2"], y)
    logits = mlp.forward(params, x)[0]
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert abs(loss - -log_probs[np.arange(5), y].mean()) < 1e-12
    dx = answers.fgsm_loss_backward(1.0, cache)
    np.testing.assert_array_equal(np.sign(dx), attacks.input_gradient_sign(params, x, y))


def test_fgsm_loss_wrong_gradients_fail(assert_wrong_grads_fail):
    x, W1, b1, W2, b2, y = two_layer_case(3, 4, 5, 3, 3, 1.0)
    assert np.min(np.abs(x @ W1 + b1)) > KINK_GAP
    dx = answers.fgsm_loss_backward(1.0, answers.fgsm_loss_forward(x, W1, b1, W2, b2, y)[1])
    numeric = numerical_gradient(lambda: answers.fgsm_loss_forward(x, W1, b1, W2, b2, y)[0], x)
    assert_wrong_grads_fail("fgsm dx", dx, numeric)
