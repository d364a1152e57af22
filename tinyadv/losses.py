"""Losses: softmax cross-entropy, angular distance (paper Eq. 1), triplet loss, feature norm.

Each is a forward beside its backward. Every loss is a *batch mean*, not a sum (the paper's
Eq. 2 writes sums; means keep the learning rate independent of the batch size). Scalar
losses take ``dloss`` (a float, usually 1.0) in their backward.
"""
import numpy as np

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
           "angular_distance_forward", "angular_distance_backward", "triplet_loss_forward",
           "triplet_loss_backward", "triplet_active", "feature_norm_forward",
           "feature_norm_backward", "row_norms", "NORM_FLOOR"]

# Below this value of ||a|| * ||b|| (or ||h||) an embedding is treated as zero: a dead ReLU
# layer produces exact zeros, and 0/0 would turn the whole step into NaN.
NORM_FLOOR = 1e-12


def row_norms(h):
    """Euclidean norm of every row, ||h_i||_2: (N,) from (N, K). Every loss below that needs
    a norm computes it with this function."""
    return np.sqrt(np.einsum("ij,ij->i", h, h))


def softmax_cross_entropy_forward(logits, y):
    """Mean softmax cross-entropy.

    .. math:: L = -\\frac{1}{N} \\sum_i \\log \\frac{e^{z_{i y_i}}}{\\sum_c e^{z_{ic}}}

    Computed stably with the log-sum-exp trick: subtracting each row's max changes nothing
    mathematically but keeps exp() from overflowing.

    Parameters
    ----------
    logits : (N, C) scores z
    y : (N,) int labels in 0..C-1

    Returns
    -------
    loss : float
    cache : (probs (N, C), y)
    """
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), each row's max is 0
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, 1)
    log_probs = shifted - log_norm  # (N, C)
    n = logits.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    return float(loss), (np.exp(log_probs), y)


def softmax_cross_entropy_backward(dloss, cache):
    """dL/dz = dloss * (softmax(z) - onehot(y)) / N.

    Returns
    -------
    dlogits : (N, C)
    """
    probs, y = cache
    n = probs.shape[0]
    dlogits = probs.copy()  # (N, C)
    dlogits[np.arange(n), y] -= 1
    dlogits *= dloss / n
    return dlogits


def angular_distance_forward(a, b):
    """Row-wise angular distance with the absolute value (paper Eq. 1).

    .. math:: D(a_i, b_i) = 1 - \\frac{|a_i \\cdot b_i|}{\\|a_i\\|_2 \\|b_i\\|_2}

    The absolute value makes a vector and its negation "the same direction" (D = 0). For
    ReLU embeddings a_i . b_i >= 0 anyway, so the |.| only matters for signed features.

    Zero-norm guard: where ||a_i|| ||b_i|| < NORM_FLOOR the cosine is taken to be 0 (so
    D = 1, "no similarity") and no gradient flows -- instead of 0/0 = NaN.

    Parameters
    ----------
    a, b : (N, K)

    Returns
    -------
    d : (N,) distances in [0, 1]
    cache : for the backward
    """
    dot = np.einsum("ij,ij->i", a, b)  # (N,)
    norm_a = row_norms(a)  # (N,)
    norm_b = row_norms(b)  # (N,)
    denom = norm_a * norm_b
    valid = denom >= NORM_FLOOR
    safe_denom = np.where(valid, denom, 1.0)
    cos = np.where(valid, dot / safe_denom, 0.0)  # (N,)
    d = 1.0 - np.abs(cos)
    return d, (a, b, norm_a, norm_b, safe_denom, cos, valid)


def angular_distance_backward(dd, cache):
    """Gradients of D = 1 - |cos|, cos = a.b / (||a|| ||b||), row by row.

    .. math::
        \\frac{\\partial \\cos}{\\partial a} = \\frac{b}{\\|a\\|\\|b\\|} - \\cos\\,\\frac{a}{\\|a\\|^2},
        \\qquad
        \\frac{\\partial D}{\\partial a} = -\\operatorname{sign}(\\cos)\\,\\frac{\\partial \\cos}{\\partial a}

    and the same with a and b swapped. |cos| has a kink at cos = 0 (orthogonal vectors);
    we use sign(0) = 0 there. Rows with a zero-norm guard get zero gradient.

    Parameters
    ----------
    dd : (N,) upstream gradient for each distance

    Returns
    -------
    (da, db) : each (N, K)
    """
    a, b, norm_a, norm_b, safe_denom, cos, valid = cache
    g = np.where(valid, -np.sign(cos) * dd, 0.0)  # (N,) dL/dcos
    sq_a = np.where(valid, norm_a * norm_a, 1.0)
    sq_b = np.where(valid, norm_b * norm_b, 1.0)
    g_cross = (g / safe_denom)[:, None]  # (N, 1), the coefficient of the other vector
    da = g_cross * b  # (N, K); then -= in place: one temporary fewer
    da -= (g * cos / sq_a)[:, None] * a
    db = g_cross * a
    db -= (g * cos / sq_b)[:, None] * b
    return da.astype(a.dtype, copy=False), db.astype(b.dtype, copy=False)


def triplet_loss_forward(a, p, n, margin):
    """Angular triplet loss with a margin, averaged over the batch.

    .. math:: L_t = \\frac{1}{N} \\sum_i \\max(0,\\; D(a_i, p_i) - D(a_i, n_i) + m)

    Pulls each anchor a_i towards its positive p_i and pushes it from its negative n_i
    until the negative is at least ``margin`` further away (in angular distance).

    Parameters
    ----------
    a, p, n : (N, K) anchor, positive and negative embeddings
    margin : float m >= 0

    Returns
    -------
    loss : float
    cache : for the backward
    """
    d_ap, cache_ap = angular_distance_forward(a, p)  # (N,)
    d_an, cache_an = angular_distance_forward(a, n)  # (N,)
    hinge = d_ap - d_an + margin  # (N,)
    active = hinge > 0
    loss = float(np.where(active, hinge, 0.0).mean())
    return loss, (cache_ap, cache_an, active)


def triplet_active(cache):
    """(N,) bool: which triplets of a ``triplet_loss_forward`` had a positive hinge, i.e.
    will pass a gradient back. Its mean says how much the term is acting."""
    return cache[2]


def triplet_loss_backward(dloss, cache):
    """Gradients of the mean hinge over angular distances.

    Only triplets with a positive hinge (``active``) contribute; each carries 1/N:
        dD(a,p) = +dloss * active / N,   dD(a,n) = -dloss * active / N
    then the angular-distance backward of each pair; the anchor gets both contributions.
    The hinge has a kink at 0, where we use the subgradient 0.

    Returns
    -------
    (da, dp, dn) : each (N, K)
    """
    cache_ap, cache_an, active = cache
    dtype = cache_ap[0].dtype
    # active.astype(dtype): a bool array times a Python float would otherwise become float64
    # and drag the whole backward into float64.
    scale = active.astype(dtype) * (float(dloss) / active.shape[0])  # (N,)
    da_from_p, dp = angular_distance_backward(scale, cache_ap)
    da_from_n, dn = angular_distance_backward(-scale, cache_an)
    da_from_p += da_from_n  # the anchor's two contributions, summed in place
    return da_from_p, dp, dn


def feature_norm_forward(h):
    """Mean Euclidean norm of the embeddings (the paper's L_norm).

    .. math:: L_{norm} = \\frac{1}{N} \\sum_i \\|h_i\\|_2

    Parameters
    ----------
    h : (N, K)

    Returns
    -------
    loss : float
    cache : (h, norms (N,))
    """
    norms = row_norms(h)  # (N,)
    return float(norms.mean()), (h, norms)


def feature_norm_backward(dloss, cache):
    """dL/dh_i = dloss * h_i / (N ||h_i||).

    The norm is not differentiable at h_i = 0 (a dead ReLU layer); there we use the
    subgradient 0 instead of dividing by zero.

    Returns
    -------
    dh : (N, K)
    """
    h, norms = cache
    valid = norms >= NORM_FLOOR
    scale = np.where(valid, dloss / (h.shape[0] * np.where(valid, norms, 1.0)), 0.0)  # (N,)
    return (scale[:, None] * h).astype(h.dtype, copy=False)
