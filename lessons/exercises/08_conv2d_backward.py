# Exercise 08 -- the backward of a convolution: dx, dW and db.
# Check it: python 08_conv2d_backward.py  (here, or from any folder with its path)
# From the repository root, check with: python -m tinyadv.gradcheck lessons/exercises/08_conv2d_backward.py
"""Write ``conv2d_backward``; the forward is given.

Do it when lesson 10 (lessons/10_convolutions_by_hand.py) says so, after its section 3.
Replace the ``raise NotImplementedError(...)`` with your code, then run this file. It prints
PASS or FAIL; a FAIL shows your gradient next to a numerical one at the worst element, and a
hint.

Rules of the game: no Python loop over the batch (a loop over the output positions (i, j),
as the forward has, or over the kernel offsets (u, v), is fine), and every gradient has the
shape of the thing it is the gradient of.
"""
import numpy as np


def conv2d_forward(x, W, b):
    """2-d convolution (a cross-correlation, as in every deep-learning library), stride 1,
    no padding:

        out[n, f, i, j] = b[f] + sum_{c, u, v} x[n, c, i + u, j + v] * W[f, c, u, v]

    with u, v = 0 .. k - 1: output (i, j) is the dot product of filter f with the k x k
    patch of x whose top-left corner is (i, j), over all C input channels.

    Parameters
    ----------
    x : (N, C, H, W) a batch of N images with C channels
    W : (F, C, k, k) F filters
    b : (F,) one bias per filter

    Returns
    -------
    out : (N, F, H - k + 1, W - k + 1)
    cache : (x, W), what the backward needs
    """
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    Ho, Wo = H - k + 1, Wd - k + 1
    filters = W.reshape(F, C * k * k)  # (F, C*k*k): one row per filter
    out = np.empty((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            patches = x[:, :, i:i + k, j:j + k].reshape(N, C * k * k)  # (N, C*k*k)
            out[:, :, i, j] = patches @ filters.T + b  # (N, F): every image, every filter
    return out, (x, W)


def conv2d_backward(dout, cache):
    """Gradients of out = conv2d(x, W) + b.

    Parameters
    ----------
    dout : (N, F, Ho, Wo) dL/dout, the gradient arriving from the layers above
    cache : (x, W) from conv2d_forward

    Returns
    -------
    (dx, dW, db) : dL/dx (N, C, H, W), dL/dW (F, C, k, k), dL/db (F,)

    How to derive it: start from one entry of the forward (above) and ask, for each input
    entry, which entries of ``out`` it appears in and with what coefficient. Then add up
    dout times that coefficient over all of them (the chain rule).

    - b[f] is added to out[n, f, i, j] for which n, i, j?
    - W[f, c, u, v] multiplies x[n, c, i + u, j + v] in out[n, f, i, j]: for which n, i, j?
    - x[n, c, p, q] is read by out[n, f, i, j] whenever p = i + u and q = j + v for some
      kernel offset (u, v) -- which output positions (i, j) are those, and through which
      weight? Near the border fewer outputs read a pixel; the corner pixel only one.

    Two ways to write it, both fine: follow the forward's loop over output positions and,
    at each (i, j), send the patch's share back (to the filters, and to the patch of x it
    came from); or write each sum with whole arrays. Then test it on paper: x of 1 x 1 x 3 x 3,
    one 2 x 2 filter, and dout all 0 but a single 1 at output (0, 0) -- which pixels of x did
    that output read, and what must dx be?
    """
    x, W = cache
    raise NotImplementedError("exercise 08: write dx, dW and db")


if __name__ == "__main__":  # `python 08_conv2d_backward.py`, from any folder, checks this file
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tinyadv.grader import check_file  # noqa: E402  (the repository root is on the path now)
    sys.exit(check_file(__file__))
