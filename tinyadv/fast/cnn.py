"""The CNN's forward of a stacked batch from the forwards of its parts (the MLP's
``stack_forwards`` for cnn.py), and the backward that reads it.

Training runs the anchors x_a through the network for FGSM, and the objective (paper Eq. 2)
then needs the forward of [x_a; x'; x'']. Recomputing the anchors' forward would cost about
a fifth of the full step. The MLP joins the two forwards' caches into the cache of the
stacked batch; the CNN's caches are large (im2col's patch matrix, the Fourier transforms,
in (H, W, N, C) with the batch inside each array), and copying them together would cost
almost as much as the forward it saves. So the stacked cache keeps the parts apart, and
``backward`` runs cnn.backward on each part's rows and adds the parameters' gradients: the
same sums, split in two (each weight gradient is a sum over rows).
"""
import numpy as np

from .. import cnn

__all__ = ["stack_forwards", "backward"]


def stack_forwards(first, second, inputs=None):
    """The forward of the stacked batch [x_a; x_b] from the forwards of x_a and x_b.

    Parameters
    ----------
    first, second : (logits, h, cache) of ``cnn.forward(params, x_a)`` and
        ``cnn.forward(params, x_b)``, with the same params
    inputs : ignored (the MLP's version uses it to save a copy; accepted so that both
        networks' stack_forwards are called the same way)

    Returns
    -------
    (logits (N_a + N_b, 10), h (N_a + N_b, K), cache) -- a cache that ``backward`` (this
    module's) reads as the stacked batch's
    """
    (logits_a, h_a, cache_a), (logits_b, h_b, cache_b) = first, second
    cache = {"parts": (cache_a, cache_b), "rows": cache_a["rows"] + cache_b["rows"]}
    return np.concatenate([logits_a, logits_b]), np.concatenate([h_a, h_b]), cache


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """cnn.backward, also for a cache from ``stack_forwards``: there, each part's rows of
    dlogits and dh go through cnn.backward with that part's cache, the parameters' gradients
    are added and the input gradients stacked. Arguments and results as cnn.backward."""
    if "parts" not in cache:
        return cnn.backward(dlogits, dh, cache, need_dx, need_param_grads)
    grads, dxs, start = {}, [], 0
    for part in cache["parts"]:
        rows = slice(start, start + part["rows"])
        start = rows.stop
        part_grads, dx = backward(None if dlogits is None else dlogits[rows],
                                  None if dh is None else dh[rows], part, need_dx,
                                  need_param_grads)
        for key, grad in part_grads.items():
            if key in grads:
                grads[key] += grad
            else:
                grads[key] = grad
        dxs.append(dx)
    return grads, (np.concatenate(dxs) if need_dx else None)
