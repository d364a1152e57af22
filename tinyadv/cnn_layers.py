"""The CNN's layers, each a forward beside its backward: 2-d convolution, 2 x 2 max pooling
and PReLU, in PyTorch's (N, C, H, W) layout, written to be read against their formulas.
cnn.py puts them together into the paper's authors' network; lesson 10 teaches them.

Pattern (as in layers.py): ``out, cache = thing_forward(...)``; the backward takes the
upstream gradient ``dout`` (shaped like ``out``) and the cache, and returns the gradient with
respect to each array input of the forward, in order.
"""
import numpy as np

from .validate import check_array

__all__ = ["conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
           "prelu_forward", "prelu_backward"]


def conv2d_forward(x, W, b):
    """2-d convolution (a cross-correlation, as in every deep-learning library), stride 1, no
    padding, NCHW like PyTorch.

    .. math:: out_{n,f,i,j} = b_f + \\sum_{c} \\sum_{u=0}^{k-1} \\sum_{v=0}^{k-1}
              x_{n,c,i+u,j+v} \\, W_{f,c,u,v}

    Each output entry is the dot product of one k x k patch of the input (all C channels)
    with one filter. This version is the formula as a loop over output positions (i, j); at
    each position the patches of the whole batch, (N, C*k*k), meet all F filters in one
    product.

    Parameters
    ----------
    x : (N, C, H, W) inputs
    W : (F, C, k, k) filters (k x k; a k_h x k_w kernel works the same way)
    b : (F,) one bias per filter

    Returns
    -------
    out : (N, F, H - k + 1, W - k + 1)
    cache : (x, W) for the backward
    """
    _check_conv_args(x, W, b)
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    filters = W.reshape(F, C * kh * kw)  # (F, C*k*k): one row per filter
    out = np.empty((N, F, Ho, Wo), dtype=np.result_type(x, W, b))
    for i in range(Ho):
        for j in range(Wo):
            patches = x[:, :, i:i + kh, j:j + kw].reshape(N, C * kh * kw)  # (N, C*k*k)
            out[:, :, i, j] = patches @ filters.T + b  # (N, F)
    return out, (x, W)


def _check_conv_args(x, W, b):
    check_array(x, "x", ndim=4)
    check_array(W, "W", ndim=4)
    check_array(b, "b", ndim=1)
    if W.shape[1] != x.shape[1]:
        raise ValueError(f"W: expected {x.shape[1]} input channels to match x of shape "
                         f"{x.shape} (N, C, H, W), got W of shape {W.shape} (F, C, k, k)")
    if W.shape[2] > x.shape[2] or W.shape[3] > x.shape[3]:
        raise ValueError(f"W: the kernel ({W.shape[2]} x {W.shape[3]}) is larger than the "
                         f"input ({x.shape[2]} x {x.shape[3]}); no padding is added")
    if b.shape != (W.shape[0],):
        raise ValueError(f"b: expected shape ({W.shape[0]},), one bias per filter of W, "
                         f"got {b.shape}")


def conv2d_backward(dout, cache):
    """Gradients of the convolution out = conv2d(x, W) + b.

    Every weight W_{f,c,u,v} meets the input pixel x_{n,c,i+u,j+v} once for every output
    position (i, j) and every image n, so

        dW_{f,c,u,v} = sum_{n,i,j} dout_{n,f,i,j} x_{n,c,i+u,j+v}       (F, C, k, k)

    a *correlation of the input with dout* -- dout plays the kernel -- summed over the batch
    and over the output positions;

        db_f = sum_{n,i,j} dout_{n,f,i,j}                                (F,)

    since the bias is added at every position of every image; and each input pixel x_{n,c,p,q}
    was read by every output whose patch covers it, (i, j) = (p - u, q - v), so

        dx_{n,c,p,q} = sum_{f,u,v} dout_{n,f,p-u,q-v} W_{f,c,u,v}         (N, C, H, W)

    (terms with p - u or q - v outside the output are 0). Written with the flipped kernel
    W~_{f,c,u,v} = W_{f,c,k-1-u,k-1-v} this is a *full* correlation:

        dx_{n,c,p,q} = sum_{f,u,v} dout~_{n,f,p+u,q+v} W~_{f,c,u,v}

    where dout~ is dout with k - 1 zeros added on every side -- the forward's own operation
    with the roles of F and C exchanged, the kernel turned by 180 degrees and "valid"
    replaced by "full", which is why H - k + 1 outputs give back H input gradients.

    The loop below is the forward's loop run backwards: at each output position the batch's
    (N, F) upstream gradients go back to the filters (summed over the batch by the product,
    over the positions by the loop) and to the patch of x they came from (added, since
    neighbouring patches overlap) -- the sums above, one position at a time.

    Parameters
    ----------
    dout : (N, F, H - k + 1, W - k + 1)
    cache : from conv2d_forward

    Returns
    -------
    (dx (N, C, H, W), dW (F, C, k, k), db (F,))
    """
    x, W = cache
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    Ho, Wo = H - kh + 1, Wd - kw + 1
    if dout.shape != (N, F, Ho, Wo):
        raise ValueError(f"dout: expected shape {(N, F, Ho, Wo)}, the forward's output, "
                         f"got {dout.shape}")
    filters = W.reshape(F, C * kh * kw)  # (F, C*k*k)
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    dfilters = np.zeros(filters.shape, dtype=np.result_type(x, dout))
    for i in range(Ho):
        for j in range(Wo):
            patches = x[:, :, i:i + kh, j:j + kw].reshape(N, C * kh * kw)  # (N, C*k*k)
            d = dout[:, :, i, j]  # (N, F)
            dfilters += d.T @ patches  # (F, C*k*k): the batch summed by the product
            dx[:, :, i:i + kh, j:j + kw] += (d @ filters).reshape(N, C, kh, kw)
    db = dout.sum(axis=(0, 2, 3))  # (F,)
    return dx, dfilters.reshape(W.shape), db


def maxpool2d_forward(x):
    """2 x 2 max pooling with stride 2, NCHW; floor mode, like PyTorch's MaxPool2d(2, 2).

    .. math:: out_{n,c,i,j} = \\max(x_{n,c,2i,2j},\\ x_{n,c,2i,2j+1},\\
              x_{n,c,2i+1,2j},\\ x_{n,c,2i+1,2j+1})

    An odd height or width loses its last row or column (floor mode: (H // 2, W // 2)
    windows; that row or column then gets no gradient).

    Which entry of a window "wins" is recorded for the backward. Where a window holds equal
    maxima the first of them wins, reading the window row by row (top-left, top-right,
    bottom-left, bottom-right) -- the entry PyTorch's CPU kernel picks (it keeps the first
    maximum it meets; tests/test_conv.py spells out the choice for every pattern of ties), and
    what ``np.argmax`` returns.

    Parameters
    ----------
    x : (N, C, H, W) with H, W >= 2

    Returns
    -------
    out : (N, C, H // 2, W // 2)
    cache : (winner, x.shape): winner (N, C, H // 2, W // 2) in 0..3, the winning entry of
        each window in the order above
    """
    check_array(x, "x", ndim=4)
    N, C, H, Wd = x.shape
    if H < 2 or Wd < 2:
        raise ValueError(f"x: a 2 x 2 pooling window needs H, W >= 2, got shape {x.shape}")
    Ho, Wo = H // 2, Wd // 2
    # Each window's four entries side by side, row by row: (N, C, Ho, Wo, 4).
    windows = (x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
               .transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, 4))
    winner = windows.argmax(axis=-1)  # (N, C, Ho, Wo): the first maximum, as PyTorch
    out = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
    return out, (winner, x.shape)


def maxpool2d_backward(dout, cache):
    """Gradient of 2 x 2 max pooling: each window's upstream gradient goes, whole, to the
    entry that won the forward; the window's other entries get 0.

        dx_{n,c,2i+s,2j+t} = dout_{n,c,i,j} if (s, t) won window (i, j), else 0

    The max is locally the identity of its winner (moving a losing entry a little changes
    nothing), so the gradient is routed, not spread or averaged. At a tie the max has a kink;
    the winner recorded by the forward (the first of the equal entries) takes the gradient,
    as in PyTorch.

    Parameters
    ----------
    dout : (N, C, H // 2, W // 2)
    cache : from maxpool2d_forward

    Returns
    -------
    dx : (N, C, H, W)
    """
    winner, shape = cache
    N, C, H, Wd = shape
    Ho, Wo = H // 2, Wd // 2
    if dout.shape != (N, C, Ho, Wo):
        raise ValueError(f"dout: expected shape {(N, C, Ho, Wo)}, the forward's output, "
                         f"got {dout.shape}")
    dwindows = np.zeros((N, C, Ho, Wo, 4), dtype=dout.dtype)
    np.put_along_axis(dwindows, winner[..., None], dout[..., None], axis=-1)  # undoes the take
    dx = np.zeros(shape, dtype=dout.dtype)  # a dropped odd row or column keeps 0
    dx[:, :, :2 * Ho, :2 * Wo] = (dwindows.reshape(N, C, Ho, Wo, 2, 2)
                                  .transpose(0, 1, 2, 4, 3, 5).reshape(N, C, 2 * Ho, 2 * Wo))
    return dx


def prelu_forward(x, a):
    """Parametric ReLU with one learned slope a for every entry (PyTorch's nn.PReLU()):

        out = x       where x > 0
        out = a * x   where x <= 0

    Parameters
    ----------
    x : any shape
    a : (1,) the slope of the negative side (PyTorch starts it at 0.25)

    Returns
    -------
    out : shaped like x
    cache : (x, a)
    """
    check_array(x, "x")
    check_array(a, "a")
    if a.size != 1:
        raise ValueError(f"a: expected one slope, shape (1,), got shape {a.shape}")
    return np.where(x > 0, x, a * x), (x, a)


def prelu_backward(dout, cache):
    """Gradients of the PReLU: out = x where x > 0, a * x elsewhere.

        dx = dout * [x > 0] + a * dout * [x <= 0]        shaped like x
        da = sum over every entry of dout * min(x, 0)    shaped like a

    The slope is shared by every entry, so its gradient is a sum over all of them (batch,
    channels, positions) -- of dout * x where the negative side was used, 0 elsewhere. At
    x = 0 the PReLU has a kink; as PyTorch, we use the negative side's slope a there (and
    x = 0 adds nothing to da).

    Returns
    -------
    (dx, da)
    """
    x, a = cache
    if dout.shape != x.shape:
        raise ValueError(f"dout: expected shape {x.shape}, the forward's output, got {dout.shape}")
    dx = dout * np.where(x > 0, 1, a)
    da = np.sum(dout * np.minimum(x, 0)).reshape(a.shape)
    return dx, da.astype(np.result_type(dout, a), copy=False)
