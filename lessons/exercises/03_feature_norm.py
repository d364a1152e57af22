# Exercise 03 -- the backward of the feature-norm penalty (the paper's L_norm).
# Check it: python 03_feature_norm.py  (here, or from any folder with its path)
"""Write ``feature_norm_backward``; the forward is given.

The paper adds the mean length of the embeddings to its loss, so that the metric-learning
terms cannot be satisfied by making embeddings huge. Its gradient -- the derivative of a
Euclidean norm -- is also the first step of exercise 04.
"""

if __name__ == "__main__":  # `python 03_feature_norm.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def feature_norm_forward(h):
    """Mean Euclidean norm of the rows of h.

    .. math:: L = \\frac{1}{N} \\sum_i \\|h_i\\|_2, \\qquad \\|h_i\\|_2 = \\sqrt{\\sum_k h_{ik}^2}

    Parameters
    ----------
    h : (N, K) embeddings, one row per sample

    Returns
    -------
    loss : float
    cache : (h, norms (N,))
    """
    norms = np.sqrt(np.sum(h * h, axis=1))  # (N,)
    return float(norms.mean()), (h, norms)


def feature_norm_backward(dloss, cache):
    """Gradient of the mean norm with respect to h.

    Parameters
    ----------
    dloss : float, the gradient arriving from above
    cache : (h, norms) from feature_norm_forward

    Returns
    -------
    dh : (N, K), dloss * dL/dh

    How to derive it: for one vector v, d||v|| / dv_k follows from the chain rule through
    sqrt(s) with s = sum_k v_k^2 (ds/dv_k = 2 v_k). Then: each row h_i only affects its own
    norm, L averages N norms, and the upstream dloss multiplies everything. To divide each row
    by its own norm, give the (N,) norms a trailing axis: ``norms[:, None]`` is (N, 1).
    (The norm has no derivative at h_i = 0; the checker keeps every row away from 0.)
    """
    h, norms = cache
    raise NotImplementedError("exercise 03: write dh")
