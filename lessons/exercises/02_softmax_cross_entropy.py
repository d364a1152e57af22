# Exercise 02 -- the backward of the softmax cross-entropy loss.
# Check it: python 02_softmax_cross_entropy.py  (here, or from any folder with its path)
"""Write ``softmax_cross_entropy_backward``; the forward is given.

Replace the ``raise NotImplementedError(...)`` with your code, then run this file
(the command above). No Python loop over the batch.
"""

if __name__ == "__main__":  # `python 02_softmax_cross_entropy.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def softmax_cross_entropy_forward(logits, y):
    """Mean cross-entropy of the softmax of the scores against integer labels.

    .. math:: L = \\frac{1}{N} \\sum_i L_i, \\qquad
              L_i = -\\log p_{i y_i}, \\qquad
              p_{ic} = \\frac{e^{z_{ic}}}{\\sum_k e^{z_{ik}}}

    Parameters
    ----------
    logits : (N, C) scores z, one row per sample
    y : (N,) integer labels in 0..C-1

    Returns
    -------
    loss : float
    cache : (probs (N, C), y)
    """
    # Subtracting each row's max changes no probability but keeps exp() from overflowing.
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C)
    exps = np.exp(shifted)  # (N, C)
    probs = exps / exps.sum(axis=1, keepdims=True)  # (N, C), every row sums to 1
    n = logits.shape[0]
    loss = -np.log(probs[np.arange(n), y]).mean()
    return float(loss), (probs, y)


def softmax_cross_entropy_backward(dloss, cache):
    """Gradient of the mean cross-entropy with respect to the logits.

    Parameters
    ----------
    dloss : float, dL_total/dL -- the gradient arriving from above (1.0 when L is the whole
        objective; something else when L is one weighted term of a larger loss)
    cache : (probs, y) from softmax_cross_entropy_forward

    Returns
    -------
    dlogits : (N, C), dloss * dL/dlogits

    How to derive it: write one sample's loss with the log-sum-exp,

        L_i = -z[i, y_i] + log(sum_k exp(z[i, k])),

    and differentiate it with respect to z[i, c]; there are two cases, c == y_i and c != y_i.
    Write both at once with ``probs`` and a one-hot encoding of y. Then remember that L is the
    *mean* of the N per-sample losses, and apply the chain rule's dloss.
    """
    probs, y = cache
    raise NotImplementedError("exercise 02: write dlogits")
