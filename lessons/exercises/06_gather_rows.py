# Exercise 06 -- the backward of a gather: each anchor's batch-hard negative, h_neg = h[index].
# Check it: python 06_gather_rows.py  (here, or from any folder with its path)
"""Write ``gather_rows_backward``; the forward is given.

The paper's triplet loss needs a negative for every anchor: tinyadv takes the closest anchor
of another class in the same batch ("batch-hard"). It finds the index of each anchor's
negative and reads those rows out of the anchors' embeddings, h_neg = h[index] -- no second
forward pass. The triplet loss then sends a gradient to every row of h_neg; this exercise
sends it on to h. Two anchors may share a negative, so an index can repeat.
"""

if __name__ == "__main__":  # `python 06_gather_rows.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def gather_rows_forward(h, index):
    """Pick rows of h: out[i] = h[index[i]].

    Parameters
    ----------
    h : (N, K) the anchors' embeddings, one row per anchor
    index : (M,) integers in 0..N-1, the row of h that each output row copies (M = N for
        batch-hard negatives: one negative per anchor)

    Returns
    -------
    out : (M, K)
    cache : (index, N)
    """
    out = h[index]  # (M, K)
    return out, (index, h.shape[0])


def gather_rows_backward(dout, cache):
    """Gradient of out = h[index] with respect to h.

    Parameters
    ----------
    dout : (M, K) dL/dout, one row per output row
    cache : (index, N) from gather_rows_forward

    Returns
    -------
    dh : (N, K), the shape of h

    How to derive it: out[i, k] = h[index[i], k]. Ask, for one row j of h, which rows of
    ``out`` copy it -- none, one, or several -- and add up what their gradients say.

    Then try your code on index = [2, 2, 0] by hand: row 2 of h appears twice in out, so
    dh[2] must be dout[0] + dout[1], and dh[1] must be 0. (NumPy's fancy indexing has a trap
    here: try ``dh[index] += dout`` on that index and look at what dh[2] holds.)
    """
    index, num_rows = cache
    raise NotImplementedError("exercise 06: write dh")
