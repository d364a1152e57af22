"""The CNN's pieces (layers.py): convolution, 2 x 2 max pooling and PReLU, each backward
against centred differences in float64, away from the kinks (PReLU at 0, ties in a pooling
window); the classic wrong gradients must fail; PyTorch's choice at ties; the fast versions
(fast/conv.py) equal to them in float64; bad input."""
import itertools

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from tinyadv import layers
from tinyadv.fast import conv as fast_conv
from tinyadv.gradcheck import compare, numerical_gradient_array

GRADCHECK = settings(max_examples=12, deadline=None)
EQUAL = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # PReLU inputs and the top two entries of a pooling window kept this far apart


def conv_by_einsum(x, W, b):
    """The convolution's formula in one line -- an independent reference, and fast enough to
    difference numerically: out[n,f,i,j] = b[f] + sum_{c,u,v} x[n,c,i+u,j+v] W[f,c,u,v]."""
    patches = sliding_window_view(x, W.shape[2:], axis=(2, 3))  # (N, C, Ho, Wo, k, k)
    out = np.tensordot(patches, W, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, F)
    return out.transpose(0, 3, 1, 2) + b[None, :, None, None]


@st.composite
def conv_shapes(draw):
    """(N, C, H, W, F, k): channels 1 to 64, kernel 1 to 5, odd and even sizes from k to
    k + 3 -- smaller (one image, at most k + 1) beyond 8 input channels, and C * F <= 64, so
    that the numerical gradients stay quick."""
    k = draw(st.integers(1, 5))
    c = draw(st.integers(1, 64))
    f = draw(st.integers(1, max(1, 64 // c)))
    n, extra = (draw(st.integers(1, 2)), 3) if c <= 8 else (1, 1)
    return n, c, draw(st.integers(k, k + extra)), draw(st.integers(k, k + extra)), f, k


def conv_case(seed, shape):
    n, c, h, w, f, k = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((f, c, k, k)) / np.sqrt(c * k * k)
    b = rng.standard_normal(f)
    dout = rng.standard_normal((n, f, h - k + 1, w - k + 1))
    return x, W, b, dout


def conv_numeric(x, W, b, dout):
    f = lambda: conv_by_einsum(x, W, b)  # noqa: E731 -- reads x, W, b as they are perturbed
    return (numerical_gradient_array(f, x, dout), numerical_gradient_array(f, W, dout),
            numerical_gradient_array(f, b, dout))


# ---- convolution ---------------------------------------------------------------------------

def test_conv2d_forward_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.0, 1.0], [1.0, 0.0]]]])  # (2, 1, 2, 2)
    out, _ = layers.conv2d_forward(x, W, np.array([0.5, 0.0]))
    # filter 0: x[i, j] - x[i+1, j+1] = -4 everywhere (+0.5); filter 1: x[i, j+1] + x[i+1, j]
    np.testing.assert_array_equal(out, [[[[-3.5, -3.5], [-3.5, -3.5]], [[4, 6], [10, 12]]]])


@EQUAL
@given(seed=seeds, shape=conv_shapes())
def test_conv2d_forward_is_the_formula(seed, shape):
    x, W, b, _ = conv_case(seed, shape)
    out, _ = layers.conv2d_forward(x, W, b)
    np.testing.assert_allclose(out, conv_by_einsum(x, W, b), rtol=1e-12, atol=1e-12)


@GRADCHECK
@given(seed=seeds, shape=conv_shapes())
@example(seed=1, shape=(1, 64, 6, 5, 1, 5))  # 64 input channels
@example(seed=2, shape=(1, 1, 8, 5, 64, 3))  # 64 filters
def test_conv2d_backward_matches_numerical(seed, shape, assert_grad_ok):
    x, W, b, dout = conv_case(seed, shape)
    dx, dW, db = layers.conv2d_backward(dout, layers.conv2d_forward(x, W, b)[1])
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    for name, analytic, numeric in zip(("dx", "dW", "db"), (dx, dW, db),
                                       conv_numeric(x, W, b, dout)):
        assert_grad_ok(f"conv2d {name} {shape}", analytic, numeric)


def full_correlation(dout, kernel):
    """sum_{f,u,v} dout~[n, f, p+u, q+v] kernel[f, c, u, v], dout~ = dout padded by k-1."""
    k = kernel.shape[2]
    padded = np.pad(dout, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    return np.einsum("nfpquv,fcuv->ncpq", sliding_window_view(padded, (k, k), axis=(2, 3)),
                     kernel)


def test_conv2d_dx_is_a_full_correlation_with_the_flipped_kernel(assert_grad_ok):
    """The docstring's claim, and the slip it warns of: without the flip dx is wrong."""
    x, W, b, dout = conv_case(3, (2, 3, 7, 6, 4, 3))
    dx, _, _ = layers.conv2d_backward(dout, layers.conv2d_forward(x, W, b)[1])
    np.testing.assert_allclose(dx, full_correlation(dout, W[:, :, ::-1, ::-1]), rtol=1e-12,
                               atol=1e-12)
    numeric = conv_numeric(x, W, b, dout)[0]
    assert_grad_ok("dx, flipped kernel", full_correlation(dout, W[:, :, ::-1, ::-1]), numeric)
    assert not compare("dx, kernel not flipped", full_correlation(dout, W), numeric).passed


def test_conv2d_wrong_gradients_fail(assert_wrong_grads_fail):
    x, W, b, dout = conv_case(4, (2, 3, 6, 5, 2, 3))
    dx, dW, db = layers.conv2d_backward(dout, layers.conv2d_forward(x, W, b)[1])
    num_dx, num_dW, num_db = conv_numeric(x, W, b, dout)
    for name, analytic, numeric in (("dx", dx, num_dx), ("dW", dW, num_dW), ("db", db, num_db)):
        assert_wrong_grads_fail(f"conv2d {name}", analytic, numeric)
    # The classic slips: dW of the first image only (no sum over the batch), dW with the
    # channel axes exchanged, db without the sum over positions.
    dW_first = layers.conv2d_backward(dout[:1], layers.conv2d_forward(x[:1], W, b)[1])[1]
    assert not compare("dW without the batch sum", dW_first, num_dW).passed
    square = conv_case(5, (2, 3, 6, 6, 3, 3))
    dW_sq = layers.conv2d_backward(square[3], layers.conv2d_forward(*square[:3])[1])[1]
    num_dW_sq = conv_numeric(*square)[1]
    assert not compare("dW, channels swapped", dW_sq.transpose(1, 0, 2, 3), num_dW_sq).passed
    assert not compare("db at one position", dout[:, :, 0, 0].sum(axis=0), num_db).passed


# ---- max pooling ---------------------------------------------------------------------------

@st.composite
def pool_shapes(draw):
    """(N, C, H, W): channels 1 to 64, odd and even sizes 2 to 7 (odd ones lose a row or
    a column, floor mode)."""
    c = draw(st.integers(1, 64))
    return draw(st.integers(1, 2)), c, draw(st.integers(2, 7)), draw(st.integers(2, 7))


def window_gap(x):
    """The smallest gap between the largest and second-largest entry of any pooling window:
    a numerical difference of size h changes the winner only if the gap is below h."""
    n, c, h, w = x.shape
    windows = (x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
               .transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4))
    top = np.sort(windows, axis=1)
    return float(np.min(top[:, 3] - top[:, 2]))


@GRADCHECK
@given(seed=seeds, shape=pool_shapes())
@example(seed=3, shape=(2, 64, 5, 4))
def test_maxpool2d_backward_matches_numerical(seed, shape, assert_grad_ok):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    assume(window_gap(x) > KINK_GAP)
    out, cache = layers.maxpool2d_forward(x)
    n, c, h, w = shape
    assert out.shape == (n, c, h // 2, w // 2)  # floor mode
    dout = rng.standard_normal(out.shape)
    dx = layers.maxpool2d_backward(dout, cache)
    numeric = numerical_gradient_array(lambda: layers.maxpool2d_forward(x)[0], x, dout)
    assert_grad_ok(f"maxpool2d dx {shape}", dx, numeric)


def test_maxpool2d_forward_and_floor_mode():
    x = np.arange(35.0).reshape(1, 1, 5, 7)  # rows of 7: the last row and column are dropped
    out, cache = layers.maxpool2d_forward(x)
    np.testing.assert_array_equal(out[0, 0], [[8, 10, 12], [22, 24, 26]])
    dx = layers.maxpool2d_backward(np.ones_like(out), cache)[0, 0]
    assert dx[4].sum() == 0 and dx[:, 6].sum() == 0  # dropped row and column: no gradient
    assert dx.sum() == 6 and np.all(dx[[1, 1, 1, 3, 3, 3], [1, 3, 5, 1, 3, 5]] == 1)


def test_maxpool2d_wrong_gradients_fail(assert_wrong_grads_fail):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 6))
    assert window_gap(x) > KINK_GAP
    out, cache = layers.maxpool2d_forward(x)
    dout = rng.standard_normal(out.shape)
    numeric = numerical_gradient_array(lambda: layers.maxpool2d_forward(x)[0], x, dout)
    assert_wrong_grads_fail("maxpool2d dx", layers.maxpool2d_backward(dout, cache), numeric)
    # The classic slips: the gradient spread over the whole window, or averaged over it.
    spread = np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)
    for how, wrong in (("spread", spread), ("averaged", spread / 4)):
        assert not compare(f"maxpool2d dx {how}", wrong, numeric).passed


# Where a window holds equal maxima, which entry PyTorch's CPU max_pool2d gives the gradient
# to, for every pattern of 0s and 1s in a 2 x 2 window (read row by row). Measured with
# torch 2.13 (CPU): F.max_pool2d(x, 2, 2).sum().backward() on each pattern. It is always
# the first maximum in that order.
PYTORCH_TIE_WINNER = {
    (0, 0, 0, 0): 0, (0, 0, 0, 1): 3, (0, 0, 1, 0): 2, (0, 0, 1, 1): 2,
    (0, 1, 0, 0): 1, (0, 1, 0, 1): 1, (0, 1, 1, 0): 1, (0, 1, 1, 1): 1,
    (1, 0, 0, 0): 0, (1, 0, 0, 1): 0, (1, 0, 1, 0): 0, (1, 0, 1, 1): 0,
    (1, 1, 0, 0): 0, (1, 1, 0, 1): 0, (1, 1, 1, 0): 0, (1, 1, 1, 1): 0,
}


@pytest.mark.parametrize("pattern", sorted(PYTORCH_TIE_WINNER))
def test_maxpool2d_ties_go_where_pytorch_sends_them(pattern):
    x = np.array(pattern, dtype=np.float64).reshape(1, 1, 2, 2)
    out, cache = layers.maxpool2d_forward(x)
    dx = layers.maxpool2d_backward(np.ones_like(out), cache).reshape(4)
    expected = np.zeros(4)
    expected[PYTORCH_TIE_WINNER[pattern]] = 1.0
    np.testing.assert_array_equal(dx, expected)  # exactly one entry gets it, whole


# ---- PReLU ---------------------------------------------------------------------------------

def prelu_case(seed, shape, slope):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return x, np.array([slope]), rng.standard_normal(shape)


@GRADCHECK
@given(seed=seeds, shape=st.tuples(st.integers(1, 3), st.integers(1, 64), st.integers(1, 5),
                                   st.integers(1, 5)),
       slope=st.floats(-2, 2))
def test_prelu_backward_matches_numerical(seed, shape, slope, assert_grad_ok):
    x, a, dout = prelu_case(seed, shape, slope)
    assume(np.min(np.abs(x)) > KINK_GAP)
    out, cache = layers.prelu_forward(x, a)
    np.testing.assert_array_equal(out, np.where(x > 0, x, slope * x))
    dx, da = layers.prelu_backward(dout, cache)
    assert da.shape == a.shape == (1,)
    f = lambda: layers.prelu_forward(x, a)[0]  # noqa: E731
    assert_grad_ok("prelu dx", dx, numerical_gradient_array(f, x, dout))
    assert_grad_ok("prelu da", da, numerical_gradient_array(f, a, dout))


def test_prelu_wrong_gradients_fail(assert_wrong_grads_fail):
    x, a, dout = prelu_case(7, (2, 3, 4, 4), 0.25)
    assert np.min(np.abs(x)) > KINK_GAP
    dx, da = layers.prelu_backward(dout, layers.prelu_forward(x, a)[1])
    f = lambda: layers.prelu_forward(x, a)[0]  # noqa: E731
    num_dx, num_da = numerical_gradient_array(f, x, dout), numerical_gradient_array(f, a, dout)
    assert_wrong_grads_fail("prelu dx", dx, num_dx)
    assert_wrong_grads_fail("prelu da", da, num_da)
    # The classic slips: the slope's gradient averaged instead of summed; dx ignoring a.
    assert not compare("da averaged", da / x.size, num_da).passed
    assert not compare("dx as a ReLU's", dout * (x > 0), num_dx).passed


def test_prelu_at_zero_uses_the_negative_side_like_pytorch():
    x, a = np.array([-1.0, 0.0, 2.0]), np.array([0.25])
    dx, da = layers.prelu_backward(np.ones(3), layers.prelu_forward(x, a)[1])
    np.testing.assert_array_equal(dx, [0.25, 0.25, 1.0])
    np.testing.assert_array_equal(da, [-1.0])  # x = 0 adds nothing to the slope's gradient


# ---- the fast versions (fast/conv.py) against the reference, in float64 ---------------------

@EQUAL
@given(seed=seeds, shape=conv_shapes(), method=st.sampled_from(sorted(fast_conv.CONVOLUTIONS)))
@example(seed=0, shape=(2, 64, 8, 8, 1, 5), method="im2col/fft")
@example(seed=0, shape=(2, 1, 9, 6, 64, 5), method="im2col")
def test_fast_convolutions_equal_the_reference(seed, shape, method):
    x, W, b, dout = conv_case(seed, shape)
    out, cache = layers.conv2d_forward(x, W, b)
    dx, dW, db = layers.conv2d_backward(dout, cache)
    forward, backward = fast_conv.CONVOLUTIONS[method]
    z, fast_cache = forward(fast_conv.to_hwnc(x), W)
    scale = np.max(np.abs(out))
    np.testing.assert_allclose(fast_conv.from_hwnc(z) + b[None, :, None, None], out,
                               rtol=1e-10, atol=1e-12 * scale)
    fast_dx, fast_dW = backward(fast_conv.to_hwnc(dout), fast_cache)
    np.testing.assert_allclose(fast_conv.from_hwnc(fast_dx), dx, rtol=1e-10,
                               atol=1e-12 * np.max(np.abs(dx)))
    np.testing.assert_allclose(fast_dW, dW, rtol=1e-10, atol=1e-12 * np.max(np.abs(dW)))
    no_dx = backward(fast_conv.to_hwnc(dout), fast_cache, need_dx=False)
    no_dW = backward(fast_conv.to_hwnc(dout), fast_cache, need_dW=False)
    assert no_dx[0] is None and no_dW[1] is None
    np.testing.assert_array_equal(no_dx[1], fast_dW)
    np.testing.assert_array_equal(no_dW[0], fast_dx)


def reference_block(x, W, b, a, dout):
    """conv2d -> prelu -> maxpool2d with layers.py, forward and backward (NCHW)."""
    z, conv_cache = layers.conv2d_forward(x, W, b)
    act, prelu_cache = layers.prelu_forward(z, a)
    out, pool_cache = layers.maxpool2d_forward(act)
    dz, da = layers.prelu_backward(layers.maxpool2d_backward(dout, pool_cache), prelu_cache)
    dx, dW, db = layers.conv2d_backward(dz, conv_cache)
    return out, (dx, dW, db, da)


def check_block(x, W, b, a, dout, method, exact=False):
    out, grads = reference_block(x, W, b, a, dout)
    fast_out, cache = fast_conv.conv_prelu_pool_forward(fast_conv.to_hwnc(x), W, b, a,
                                                        conv=method)
    fast_grads = fast_conv.conv_prelu_pool_backward(fast_conv.to_hwnc(dout), cache)
    fast_grads = (fast_conv.from_hwnc(fast_grads[0]),) + fast_grads[1:]
    for name, mine, ref in zip(("out", "dx", "dW", "db", "da"), (fast_conv.from_hwnc(fast_out),)
                               + fast_grads, (out,) + grads):
        assert mine.shape == ref.shape, name
        if exact and (name == "out" or method == "im2col"):  # the transforms round
            np.testing.assert_array_equal(mine, ref, err_msg=name)
        else:
            np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12 * np.max(np.abs(ref)),
                                       err_msg=name)


@EQUAL
@given(seed=seeds, shape=conv_shapes(), slope=st.sampled_from([0.25, 1.7, 0.0, -0.3]),
       method=st.sampled_from(sorted(fast_conv.CONVOLUTIONS)))
def test_fast_block_equals_the_reference_layers(seed, shape, slope, method):
    """conv_prelu_pool (pool first when a > 0; the layers.py order otherwise) is
    conv2d -> prelu -> maxpool2d, forward and every gradient."""
    n, c, h, w, f, k = shape
    assume(h - k + 1 >= 2 and w - k + 1 >= 2)  # room for one pooling window
    x, W, b, _ = conv_case(seed, shape)
    rng = np.random.default_rng(seed + 1)
    dout = rng.standard_normal((n, f, (h - k + 1) // 2, (w - k + 1) // 2))
    check_block(x, W, b, np.array([slope]), dout, method)


@pytest.mark.parametrize("method", ["im2col", "im2col/fft"])
@pytest.mark.parametrize("slope", [0.25, -0.5])
def test_fast_block_routes_exact_ties_as_the_reference(method, slope):
    """Blank patches make exact ties (every entry of a window equal): in integers every sum
    below is exact, and the fast block must send each window's gradient to the same entry
    as layers.maxpool2d_backward: bit for bit with im2col, and with the Fourier backward up
    to its rounding (a gradient routed elsewhere would be off by whole units)."""
    rng = np.random.default_rng(8)
    x = (rng.random((3, 2, 10, 9)) < 0.3).astype(np.float64)  # mostly 0: many blank patches
    W = rng.integers(-1, 2, size=(4, 2, 3, 3)).astype(np.float64)
    b = np.array([0.5, -1.0, 0.0, 2.0])
    dout = rng.integers(-3, 4, size=(3, 4, 4, 3)).astype(np.float64)
    z = layers.conv2d_forward(x, W, b)[0]
    windows = z[:, :, :8, :6].reshape(3, 4, 4, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4)
    assert np.mean(np.sum(windows == windows.max(axis=1, keepdims=True), axis=1) > 1) > 0.2
    check_block(x, W, b, np.array([slope]), dout, method, exact=True)


# ---- bad input -----------------------------------------------------------------------------

def test_conv2d_rejects_bad_input():
    x, W, b = np.zeros((2, 3, 6, 6)), np.zeros((4, 3, 3, 3)), np.zeros(4)
    cases = [
        ((np.zeros((3, 6, 6)), W, b), ValueError, "x: expected a 4-d array"),
        ((x, np.zeros((4, 2, 3, 3)), b), ValueError, "W: expected 3 input channels"),
        ((x, np.zeros((4, 3, 7, 7)), b), ValueError, "W: the kernel .7 x 7. is larger"),
        ((x, W, np.zeros(3)), ValueError, r"b: expected shape \(4,\)"),
        ((x.astype(np.int64), W, b), TypeError, "x: expected a floating dtype, got int64"),
        ((np.where(np.eye(6, dtype=bool), np.nan, x), W, b), ValueError, "x: contains NaN"),
        ((x, np.full_like(W, np.inf), b), ValueError, "W: contains NaN or inf"),
        ((list(x), W, b), TypeError, "x: expected a numpy array"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            layers.conv2d_forward(*args)
    out, cache = layers.conv2d_forward(x, W, b)
    with pytest.raises(ValueError, match="dout: expected shape"):
        layers.conv2d_backward(out[:, :2], cache)


def test_maxpool2d_and_prelu_reject_bad_input():
    with pytest.raises(ValueError, match="x: a 2 x 2 pooling window needs H, W >= 2"):
        layers.maxpool2d_forward(np.zeros((1, 1, 1, 5)))
    with pytest.raises(ValueError, match="x: expected a 4-d array"):
        layers.maxpool2d_forward(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="x: expected a floating dtype"):
        layers.maxpool2d_forward(np.zeros((1, 1, 2, 2), dtype=np.int32))
    with pytest.raises(ValueError, match=r"a: expected one slope, shape \(1,\)"):
        layers.prelu_forward(np.zeros(3), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="x: contains NaN"):
        layers.prelu_forward(np.array([np.nan]), np.array([0.25]))
    with pytest.raises(TypeError, match="a: expected a floating dtype"):
        layers.prelu_forward(np.zeros(3), np.array([1]))


def test_fast_convolutions_reject_bad_input():
    x, W = np.zeros((6, 6, 2, 3)), np.zeros((4, 3, 3, 3))
    for forward, _ in fast_conv.CONVOLUTIONS.values():
        with pytest.raises(ValueError, match="W: expected 3 input channels"):
            forward(x, np.zeros((4, 2, 3, 3)))
        with pytest.raises(ValueError, match="W: the kernel"):
            forward(x, np.zeros((4, 3, 7, 7)))
        with pytest.raises(TypeError, match="x, W: expected floating dtypes"):
            forward(x.astype(int), W)
    with pytest.raises(ValueError, match="conv: expected one of"):
        fast_conv.conv_prelu_pool_forward(x, W, np.zeros(4), np.array([0.25]), conv="winograd")
    with pytest.raises(ValueError, match="too small for a 2 x 2 pooling window"):
        fast_conv.conv_prelu_pool_forward(x, np.zeros((4, 3, 6, 6)), np.zeros(4), np.array([0.25]))


def test_every_tie_pattern_is_listed():
    assert sorted(PYTORCH_TIE_WINNER) == sorted(itertools.product((0, 1), repeat=4))


def test_patches_built_a_few_images_at_a_time_give_the_same_product(monkeypatch):
    """Without keep_patches, im2col multiplies PATCH_BYTES of patches at a time."""
    x, W, _, _ = conv_case(9, (7, 3, 6, 6, 4, 3))
    whole, _ = fast_conv.conv2d_im2col_forward(fast_conv.to_hwnc(x), W)
    monkeypatch.setattr(fast_conv, "PATCH_BYTES", 2 * 16 * 27 * 8)  # two images a product
    chunked, cache = fast_conv.conv2d_im2col_forward(fast_conv.to_hwnc(x), W, keep_patches=False)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)
    assert cache[0] is None  # nothing kept: the Fourier backward starts from x and W
