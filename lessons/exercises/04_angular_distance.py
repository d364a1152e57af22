# Exercise 04 -- the backward of the angular distance (the paper's Eq. 1).
# Check it: python 04_angular_distance.py  (here, or from any folder with its path)
"""Write ``angular_distance_backward``; the forward is given.

The paper measures how far apart two embeddings are by the angle between them, ignoring their
lengths; with the absolute value, a vector and its negation count as the same direction.
"""

if __name__ == "__main__":  # `python 04_angular_distance.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def angular_distance_forward(a, b):
    """Row-wise angular distance.

    .. math:: D(a_i, b_i) = 1 - \\frac{|a_i \\cdot b_i|}{\\|a_i\\|_2 \\, \\|b_i\\|_2}

    Parameters
    ----------
    a, b : (N, K) two batches of vectors, compared row by row

    Returns
    -------
    d : (N,) distances in [0, 1]
    cache : (a, b, norm_a (N,), norm_b (N,), cos (N,)) with cos = a_i.b_i / (||a_i|| ||b_i||)
    """
    dot = np.sum(a * b, axis=1)  # (N,)
    norm_a = np.sqrt(np.sum(a * a, axis=1))  # (N,)
    norm_b = np.sqrt(np.sum(b * b, axis=1))  # (N,)
    cos = dot / (norm_a * norm_b)  # (N,), in [-1, 1]
    d = 1.0 - np.abs(cos)  # (N,)
    return d, (a, b, norm_a, norm_b, cos)


def angular_distance_backward(dd, cache):
    """Gradients of the row-wise angular distance.

    Parameters
    ----------
    dd : (N,) the gradient arriving from above, one number per distance D(a_i, b_i)
    cache : (a, b, norm_a, norm_b, cos) from angular_distance_forward

    Returns
    -------
    (da, db) : each (N, K)

    How to derive it, one row at a time, in three steps:

    1. D = 1 - |c|: what is dD/dc? (|c| has a kink at c = 0; the checker keeps |c| >= 0.1.
       Mind the rows where c < 0.)
    2. c = (a . b) / (||a|| ||b||): what is dc/da? Use the quotient (or product) rule, with
       d(a . b)/da = b and d||a||/da, the derivative you worked out in exercise 03. Simplify
       using c itself.
    3. Multiply by dd. b plays the same role as a, so db is da with a and b swapped.

    Every per-row factor is (N,); ``factor[:, None]`` makes it (N, 1) to scale whole rows.
    """
    a, b, norm_a, norm_b, cos = cache
    raise NotImplementedError("exercise 04: write da and db")
