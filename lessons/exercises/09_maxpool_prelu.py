# Exercise 09 -- the backwards of 2 x 2 max pooling and of the PReLU.
# Check it: python 09_maxpool_prelu.py  (here, or from any folder with its path)
# From the repository root, check with: python -m tinyadv.gradcheck lessons/exercises/09_maxpool_prelu.py
"""Write ``maxpool2d_backward`` and ``prelu_backward``; the forwards are given.

The two other pieces of the paper's authors' CNN (tinyadv/cnn.py): after each convolution
comes a PReLU, then a 2 x 2 max pooling. Do this exercise when lesson 10
(lessons/10_convolutions_by_hand.py) says so, after its section 3. Replace each
``raise NotImplementedError(...)`` with your code, then run this file.

Max pooling at a tie (equal maxima in one window) follows one convention, PyTorch's: the
first maximum of the window, read row by row, takes the gradient (maxpool2d_backward below
says more).

Rules of the game: whole arrays at once (no Python loop over the batch, the channels or the
windows), and every gradient has the shape of the thing it is the gradient of.
"""
import numpy as np


def maxpool2d_forward(x):
    """2 x 2 max pooling with stride 2: each window of 2 x 2 entries becomes its largest one.

        out[n, c, i, j] = max(x[n, c, 2i, 2j],     x[n, c, 2i, 2j + 1],
                              x[n, c, 2i + 1, 2j], x[n, c, 2i + 1, 2j + 1])

    An odd height or width loses its last row or column: no window covers it.

    Parameters
    ----------
    x : (N, C, H, W) with H, W >= 2

    Returns
    -------
    out : (N, C, H // 2, W // 2)
    cache : (x, out)
    """
    N, C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    # windows[n, c, i, s, j, t] = x[n, c, 2i + s, 2j + t]: window (i, j) is
    # windows[n, c, i, :, j, :], a 2 x 2 block (s, t = 0 or 1).
    windows = x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
    out = windows.max(axis=(3, 5))  # (N, C, Ho, Wo)
    return out, (x, out)


def maxpool2d_backward(dout, cache):
    """Gradient of 2 x 2 max pooling with respect to x.

    Parameters
    ----------
    dout : (N, C, H // 2, W // 2) dL/dout
    cache : (x, out) from maxpool2d_forward

    Returns
    -------
    dx : (N, C, H, W), the shape of x

    How to derive it: out[n, c, i, j] is one of the four entries of its window. Nudge each
    of the four by a tiny amount: which nudges change out[n, c, i, j], and by how much? And
    an entry in the row or column that no window covers?

    Ties: where two or more entries of a window are equal and largest, the max has a kink
    and no derivative, and a convention decides. The one to follow here is PyTorch's: the
    FIRST of the tied maxima, reading the window row by row (top-left, top-right,
    bottom-left, bottom-right), takes the whole of the window's gradient, and the other
    tied entries get 0 -- the total a window passes back stays dout[n, c, i, j]. Ties are
    common in a CNN (a blank patch of a digit gives equal values across a window), and the
    checker's last case is full of them. The view ``windows`` of the forward is useful here
    too.
    """
    x, out = cache
    raise NotImplementedError("exercise 09: write dx")


def prelu_forward(x, a):
    """Parametric ReLU with one learned slope a for the whole layer (PyTorch's nn.PReLU()):

        out = x       where x > 0
        out = a * x   where x <= 0

    Parameters
    ----------
    x : any shape, e.g. (N, C, H, W) after a convolution or (N, D) after a linear layer
    a : (1,) the slope of the negative side, learned like a weight

    Returns
    -------
    out : shaped like x
    cache : (x, a)
    """
    out = np.where(x > 0, x, a * x)
    return out, (x, a)


def prelu_backward(dout, cache):
    """Gradients of the PReLU with respect to x and to its slope a.

    Parameters
    ----------
    dout : dL/dout, shaped like x
    cache : (x, a) from prelu_forward

    Returns
    -------
    (dx, da) : dL/dx shaped like x, dL/da of shape (1,) like a

    How to derive it: on each side of 0 the PReLU is a straight line through 0. What is the
    slope of out[e] in x[e] on each side? And in a: which entries' outputs change when a
    changes, by how much each -- and what does the loss feel, through every one of them?
    (At x = 0 there is a kink; the checker keeps every x at least 0.1 away from it.)
    """
    x, a = cache
    raise NotImplementedError("exercise 09: write dx and da")


if __name__ == "__main__":  # `python 09_maxpool_prelu.py`, from any folder, checks this file
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tinyadv.grader import check_file  # noqa: E402  (the repository root is on the path now)
    sys.exit(check_file(__file__))
