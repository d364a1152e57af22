"""Linear and ReLU: forward values, and each backward against centred differences (float64)."""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyadv.gradcheck import numerical_gradient_array
from tinyadv.layers import linear_backward, linear_forward, relu_backward, relu_forward

GRADCHECK = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # keep ReLU inputs this far from 0; a step of h = 1e-6 never crosses the kink


def linear_case(seed, n, d, m, scale):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, d))
    W = rng.standard_normal((d, m))
    b = rng.standard_normal(m)
    dout = rng.standard_normal((n, m))
    return x, W, b, dout


def linear_numeric(x, W, b, dout):
    f = lambda: linear_forward(x, W, b)[0]  # noqa: E731 -- reads x, W, b as they are perturbed
    return (numerical_gradient_array(f, x, dout), numerical_gradient_array(f, W, dout),
            numerical_gradient_array(f, b, dout))


def test_linear_forward_value():
    x = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 3.0]])
    b = np.array([0.0, 1.0, -1.0])
    out, _ = linear_forward(x, W, b)
    np.testing.assert_allclose(out, [[2.0, 5.0, 4.0]])


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), d=st.integers(1, 6), m=st.integers(1, 5),
       scale=st.floats(0.1, 10.0))
def test_linear_backward_matches_numerical(seed, n, d, m, scale, assert_grad_ok):
    x, W, b, dout = linear_case(seed, n, d, m, scale)
    dx, dW, db = linear_backward(dout, linear_forward(x, W, b)[1])
    # An entry far below the output's size sits under centred differences' rounding (about
    # 1e-16 |out| / h): it cannot be checked to 1e-7 relative, whatever the backward.
    assume(min(np.min(np.abs(g)) for g in (dx, dW, db)) > 1e-3)
    num_dx, num_dW, num_db = linear_numeric(x, W, b, dout)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    assert_grad_ok("linear dx", dx, num_dx)
    assert_grad_ok("linear dW", dW, num_dW)
    assert_grad_ok("linear db", db, num_db)


def test_linear_wrong_gradients_fail(assert_wrong_grads_fail):
    x, W, b, dout = linear_case(0, 3, 4, 2, 1.0)
    dx, dW, db = linear_backward(dout, linear_forward(x, W, b)[1])
    for name, analytic, numeric in zip(("dx", "dW", "db"), (dx, dW, db),
                                       linear_numeric(x, W, b, dout)):
        assert_wrong_grads_fail(f"linear {name}", analytic, numeric)


def test_linear_backward_skips_what_is_not_needed():
    x, W, b, dout = linear_case(1, 3, 4, 2, 1.0)
    cache = linear_forward(x, W, b)[1]
    dx, dW, db = linear_backward(dout, cache)
    dx_only = linear_backward(dout, cache, need_dW=False)
    assert dx_only[1] is None and dx_only[2] is None
    np.testing.assert_array_equal(dx_only[0], dx)
    params_only = linear_backward(dout, cache, need_dx=False)
    assert params_only[0] is None
    np.testing.assert_array_equal(params_only[1], dW)
    np.testing.assert_array_equal(params_only[2], db)


def test_relu_forward_value():
    out, _ = relu_forward(np.array([[-2.0, 0.0, 3.0]]))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 3.0]])


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 5), d=st.integers(1, 6), scale=st.floats(0.1, 10.0))
def test_relu_backward_matches_numerical(seed, n, d, scale, assert_grad_ok):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, d))
    assume(np.min(np.abs(x)) > KINK_GAP)
    dout = rng.standard_normal((n, d))
    dx = relu_backward(dout, relu_forward(x)[1])
    num_dx = numerical_gradient_array(lambda: relu_forward(x)[0], x, dout)
    assert_grad_ok("relu dx", dx, num_dx)


def test_relu_wrong_gradients_fail(assert_wrong_grads_fail):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 5))
    assert np.min(np.abs(x)) > KINK_GAP
    dout = rng.standard_normal((4, 5))
    dx = relu_backward(dout, relu_forward(x)[1])
    num_dx = numerical_gradient_array(lambda: relu_forward(x)[0], x, dout)
    assert_wrong_grads_fail("relu dx", dx, num_dx)


def test_relu_uses_subgradient_zero_at_the_kink():
    dx = relu_backward(np.ones(3), relu_forward(np.array([-1.0, 0.0, 1.0]))[1])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0])
