"""Speed for layers.py: the gather's backward, added in place."""
import math

import numpy as np

__all__ = ["gather_rows_backward"]


def gather_rows_backward(dout, cache, out=None):
    """``tinyadv.layers.gather_rows_backward``, added into a given array, faster.

    The same scatter-add, with two differences: ``out`` lets the objective add the negatives'
    share straight into the anchors' rows of its gradient array, and np.add.at runs on
    flattened arrays (below), which NumPy does faster. Into zeros, the result is
    the reference's bit for bit: the additions happen in the same order.

    Parameters
    ----------
    dout : (M, K)
    cache : (index, N) from gather_rows_forward
    out : None, or a C-contiguous (N, K) array to add the gradient into (the objective adds
        the negatives' share straight into the anchors' rows of its gradient array)

    Returns
    -------
    dh : (N, K) -- ``out`` itself when given
    """
    index, num_rows = cache
    shape = (num_rows,) + dout.shape[1:]  # (N, K)
    if out is None:
        out = np.zeros(shape, dtype=dout.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out: expected a C-contiguous array of shape {shape}, got shape "
                         f"{out.shape}, C-contiguous {out.flags.c_contiguous}")
    # np.add.at(out, index, dout), written on the flattened arrays: NumPy runs np.add.at
    # faster with 1-d indices (data/results.md, "Speed"). Element
    # (r, c) of an (N, K) array is element r * K + c of its flattening, and the flattening of
    # a C-contiguous array is a view, so adding into it adds into ``out``. The additions
    # happen in the same order as np.add.at's: the same numbers, bit for bit.
    width = math.prod(dout.shape[1:])  # K
    flat_index = (np.asarray(index)[:, None] * width + np.arange(width)).ravel()  # (M * K,)
    np.add.at(out.reshape(-1), flat_index, dout.reshape(-1))
    return out
