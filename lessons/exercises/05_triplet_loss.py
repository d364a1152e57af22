# Exercise 05 -- the backward of the angular triplet loss.
# Check it: python 05_triplet_loss.py  (here, or from any folder with its path)
"""Write ``triplet_loss_backward``; the forward is given.

The triplet loss pulls each anchor a_i towards its positive p_i (same class) and pushes it
away from its negative n_i (another class), in angular distance, until the negative is at
least ``margin`` further away than the positive. It is built from exercise 04's angular
distance; to keep this exercise self-contained, that distance comes from tinyadv itself.
"""

if __name__ == "__main__":  # `python 05_triplet_loss.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np

from tinyadv import losses  # losses.angular_distance_forward / losses.angular_distance_backward


def triplet_loss_forward(a, p, n, margin):
    """Mean hinge on the difference of two angular distances.

    .. math:: L = \\frac{1}{N} \\sum_i \\max\\big(0,\\; D(a_i, p_i) - D(a_i, n_i) + m\\big)

    Parameters
    ----------
    a, p, n : (N, K) anchors, positives and negatives
    margin : float m >= 0

    Returns
    -------
    loss : float
    cache : (cache_ap, cache_an, hinge (N,)), where cache_ap and cache_an are the caches of
        the two angular distances
    """
    d_ap, cache_ap = losses.angular_distance_forward(a, p)  # (N,)
    d_an, cache_an = losses.angular_distance_forward(a, n)  # (N,)
    hinge = d_ap - d_an + margin  # (N,)
    loss = np.maximum(hinge, 0.0).mean()
    return float(loss), (cache_ap, cache_an, hinge)


def triplet_loss_backward(dloss, cache):
    """Gradients of the mean triplet hinge.

    Parameters
    ----------
    dloss : float, the gradient arriving from above
    cache : (cache_ap, cache_an, hinge) from triplet_loss_forward

    Returns
    -------
    (da, dp, dn) : each (N, K)

    How to derive it, from the loss back to the inputs:

    1. dL/dhinge_i: the mean over N, and max(0, .) -- which triplets does it let through?
       (The hinge has a kink at 0; the checker keeps every hinge away from 0.)
    2. dL/dD(a_i, p_i) and dL/dD(a_i, n_i) from hinge = D(a,p) - D(a,n) + margin.
    3. ``losses.angular_distance_backward(dd, cache_ap)`` takes an (N,) upstream gradient dd
       for the distances D(a_i, p_i) and returns their gradients (da, dp); likewise for
       cache_an. Which inputs does each distance depend on?
    """
    cache_ap, cache_an, hinge = cache
    raise NotImplementedError("exercise 05: write da, dp and dn")
