"""Layers, each a forward beside its backward: linear (affine), ReLU and the gather of the
MLP and the objective. The CNN's layers (convolution, max pooling, PReLU) are in
cnn_layers.py, and can be imported from here too.

Pattern (as in CS231n): ``out, cache = thing_forward(...)``; the backward takes the upstream
gradient ``dout`` (same shape as ``out``) and the cache, and returns the gradient with
respect to each array input of the forward, in order.
"""
import numpy as np

from .cnn_layers import (conv2d_backward, conv2d_forward, maxpool2d_backward,  # noqa: F401
                         maxpool2d_forward, prelu_backward, prelu_forward)

__all__ = ["linear_forward", "linear_backward", "relu_forward", "relu_backward",
           "gather_rows_forward", "gather_rows_backward", "conv2d_forward", "conv2d_backward",
           "maxpool2d_forward", "maxpool2d_backward", "prelu_forward", "prelu_backward"]


def linear_forward(x, W, b):
    """Affine map: out = x @ W + b.

    Parameters
    ----------
    x : (N, D) inputs
    W : (D, M) weights, fan_in x fan_out
    b : (M,) bias

    Returns
    -------
    out : (N, M)
    cache : (x, W) for the backward
    """
    out = x @ W  # (N, M)
    out += b  # in place: ``x @ W + b`` would fill a second (N, M) array
    return out, (x, W)


def linear_backward(dout, cache, need_dx=True, need_dW=True):
    """Gradients of the affine map out = x @ W + b.

    With out_nm = sum_d x_nd W_dm + b_m:
        dx = dout @ W.T      (N, D)   -- undoes ``x @ W``, seen from x
        dW = x.T @ dout      (D, M)   -- undoes ``x @ W``, seen from W
        db = sum_n dout_n    (M,)     -- the bias is broadcast over the batch

    ``need_dx=False`` skips dx (nobody needs the gradient w.r.t. the raw images during
    training) and ``need_dW=False`` skips dW and db (FGSM needs only dx); skipped entries
    are returned as None. Both save one matrix product.

    Returns
    -------
    (dx, dW, db)
    """
    x, W = cache
    dx = dout @ W.T if need_dx else None  # (N, D)
    dW = x.T @ dout if need_dW else None  # (D, M)
    db = dout.sum(axis=0) if need_dW else None  # (M,)
    return dx, dW, db


def relu_forward(x):
    """Rectified linear unit: out = max(0, x), elementwise.

    Returns
    -------
    out : same shape as x
    cache : out itself -- ``out > 0`` is exactly where x > 0, so no copy of x is kept
    """
    out = np.clip(x, 0, np.inf)  # max(0, x)
    return out, out


def relu_backward(dout, cache):
    """dx = dout * [x > 0]. At x == 0 ReLU has a kink; we use the subgradient 0 there."""
    out = cache
    return dout * (out > 0)


def gather_rows_forward(h, index):
    """Rows of h picked by an index: out_i = h_{index_i} (a gather).

    This is how each anchor's batch-hard negative is read out of the batch's own embeddings,
    h_neg = h[neg_index], with no second forward pass. An index may repeat: one anchor can be
    the closest other-class anchor of several others. Exercise 06 asks for the backward.

    Parameters
    ----------
    h : (N, K) rows to pick from
    index : (M,) int, each in 0..N-1

    Returns
    -------
    out : (M, K)
    cache : (index, N) for the backward
    """
    out = h[index]  # (M, K), a copy
    return out, (index, h.shape[0])


def gather_rows_backward(dout, cache):
    """The gradient of a gather is a scatter-add.

    .. math:: \\frac{\\partial L}{\\partial h_j} = \\sum_{i : index_i = j} \\frac{\\partial L}{\\partial out_i}

    Row i of ``dout`` goes back to row index_i of h (undoing ``h[index]``); a row picked by
    several i receives the sum of all of theirs, a row picked by none receives 0. In NumPy
    that is one line, ``np.add.at(dh, index, dout)``: it adds once per occurrence of an
    index. ``dh[index] += dout`` would not: NumPy evaluates it as
    ``dh[index] = dh[index] + dout``, so a repeated row is written, not added, and keeps only
    one of its contributions.

    Parameters
    ----------
    dout : (M, K)
    cache : (index, N) from gather_rows_forward

    Returns
    -------
    dh : (N, K)
    """
    index, num_rows = cache
    dh = np.zeros((num_rows,) + dout.shape[1:], dtype=dout.dtype)  # (N, K)
    np.add.at(dh, index, dout)
    return dh
