# Exercise 01 -- the backward of a linear layer and of ReLU.
# Check it: python 01_linear_relu.py  (here, or from any folder with its path)
"""Write ``linear_backward`` and ``relu_backward``; the forwards are given.

Replace each ``raise NotImplementedError(...)`` with your code, then run this file
(the command above). It prints PASS or FAIL per function; a FAIL shows your gradient next to a
numerical one at the worst element, and a hint.

Rules of the game: whole arrays at once (no Python loop over the batch), and every gradient
has the shape of the thing it is the gradient of.
"""

if __name__ == "__main__":  # `python 01_linear_relu.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def linear_forward(x, W, b):
    """Affine map out = x @ W + b.

    Parameters
    ----------
    x : (N, D) a batch of N inputs
    W : (D, M) weights
    b : (M,) bias, added to every row

    Returns
    -------
    out : (N, M)
    cache : (x, W), what the backward needs
    """
    out = x @ W + b  # (N, M)
    return out, (x, W)


def linear_backward(dout, cache):
    """Gradients of out = x @ W + b.

    Parameters
    ----------
    dout : (N, M) dL/dout, the gradient arriving from the layers above
    cache : (x, W) from linear_forward

    Returns
    -------
    (dx, dW, db) : dL/dx (N, D), dL/dW (D, M), dL/db (M,)

    How to derive it: write one entry of the forward,

        out[n, m] = sum_d x[n, d] * W[d, m] + b[m],

    and ask, for each input entry, which entries of ``out`` it changes and by how much:

    - x[n, d] appears in out[n, m] for every m, with coefficient W[d, m];
    - W[d, m] appears in out[n, m] for every sample n, so its gradient adds up over the batch;
    - b[m] is added to out[n, m] for every n.

    Then write each sum as a single matrix product (or a ``.sum``). Checking that the shapes
    work out tells you which factor is transposed and in which order they go.
    """
    x, W = cache
    raise NotImplementedError("exercise 01: write dx, dW and db")


def relu_forward(x):
    """Rectified linear unit, out = max(0, x) entry by entry.

    Parameters
    ----------
    x : array of any shape, e.g. (N, D)

    Returns
    -------
    out : same shape as x
    cache : x
    """
    out = np.maximum(x, 0.0)
    return out, x


def relu_backward(dout, cache):
    """Gradient of out = max(0, x).

    Parameters
    ----------
    dout : dL/dout, same shape as x
    cache : x from relu_forward

    Returns
    -------
    dx : dL/dx, same shape as x

    Where x > 0, out = x: what is d out / d x there? Where x < 0, out is 0 whatever x is.
    (At x = 0 ReLU has a kink and no derivative; use 0 there. The checker never puts x near 0.)
    """
    x = cache
    raise NotImplementedError("exercise 01: write dx")
