"""What the paper's authors' code computes, piece by piece, where it differs from the paper.

The paper (Ovalle et al., AAAI-23) writes its method as Eq. 1-2; tinyadv's losses.py and
objective.py implement those equations. The authors' public code
(``eczy/sensitivity-invariance-tradeoff``, folder ``pt-metric-invariance/``, at the commit of
their logs, 4f4bced) trains something else. This module computes what that code computes,
each piece with a hand-written backward in the project's pattern
(``out, cache = thing_forward(...)``, ``thing_backward(dout, cache)``):

- ``angular_distance_matrix_*``: their distance (``sampler._pairwise_distances_angular``),
  D = 1 - a.b / max(||a|| ||b||, 1e-8) with *no* absolute value, for every pair of a natural
  embedding (row) and a perturbed one (column). Eq. 1 has |a.b|.
- ``hard_angular_triplet_*``: their batch-hard triplet (``sampler.online_mine_angular_hard``).
  The positive of anchor i is the *farthest* perturbed embedding of *another* sample of its
  class, the negative the nearest perturbed embedding of another class. The paper's positive
  is the anchor's own perturbed copy -- which their code masks out.
- ``embedding_norms_*``: their norm term (``modeling.construct_loss``),
  mean_i (||perturbed_i|| + ||natural_{neg_i}|| + ||natural_{pos_i}||) with the mined indices,
  or only ||perturbed_i|| (``reg_only_adv``, their second triplet block).
- ``block_*``: one of their triplet blocks: 0.5 * triplet + 1e-3 * norms.
- ``fgsm`` and ``fgsm_with_leak``: their FGSM (``attacks.fgsm_attack``), which clamps the
  *normalised* image to [0, 1], and the clean cross-entropy gradient it leaves in the
  parameters' gradients (their training loop never zeroes them after the attack).
- ``their_loss``: their whole loss of one batch (``modeling.construct_loss``).
- ``AuthorsOptions`` and ``authors_step``: their five choices, and the training step they
  make, handed to ``train.train`` in place of the paper's step -- the paper's step and
  TrainConfig know nothing of them.

Facts of their code, with the lines they come from, are in each docstring. The mining
(which column is each anchor's positive and negative) is recomputed in every forward and
held constant in the backward, as autograd treats an argmax.
"""
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from . import losses, network, objective
from .fast.network import FAST
from .fast.objective import fast_objective
from .fast.step import fgsm_sharing_forward
from .validate import check_array, check_eps, check_labels

__all__ = ["DISTANCE_FLOOR", "MARGIN", "TRIPLET_WEIGHT", "NORM_WEIGHT", "FGSM_EPS", "CLAMPS",
           "angular_distance_matrix_forward", "angular_distance_matrix_backward", "Mined",
           "mine_hard_angular", "hard_angular_triplet_reference", "hard_angular_triplet_forward",
           "triplet_mined", "hard_angular_triplet_backward", "embedding_norms_forward",
           "embedding_norms_backward", "block_forward", "block_backward", "fgsm",
           "fgsm_with_leak", "as_fed_raw", "their_loss", "AuthorsOptions", "authors_step",
           "TRIPLETS", "INVARIANCE_INPUTS"]

# sampler._pairwise_distances_angular: cos = a.b / (||a|| ||b||).clamp(min=1e-8)
DISTANCE_FLOOR = 1e-8
# configs/*.ini, [triplet] and [triplet_additional]
MARGIN = 0.05  # margin
TRIPLET_WEIGHT = 0.5  # lambda (the second block reuses [triplet] lambda: modeling.py l. 133)
NORM_WEIGHT = 1e-3  # reg_embed_lambda; added as is, not multiplied by lambda (l. 99-100)
# [sensitivity] epsilon, in *normalised* units: 0.01 * 0.3081 = 0.0031 in pixel units
FGSM_EPS = 0.01
CLAMPS = ("normalised", "pixels")
TRIPLETS = ("paper", "authors")
INVARIANCE_INPUTS = ("pixels", "raw255")


def _check_embeddings(nat, pert):
    check_array(nat, "nat", ndim=2)
    check_array(pert, "pert", ndim=2)
    if nat.shape != pert.shape:
        raise ValueError(f"nat, pert: expected the same shape (N, K) -- row i of both comes "
                         f"from sample i -- got {nat.shape} and {pert.shape}")


def _check_batch_labels(y, n, rows="embedding row"):
    check_array(y, "y", ndim=1, dtype_kind="i")
    if y.shape[0] != n:
        raise ValueError(f"y: expected {n} labels, one per {rows}, got {y.shape[0]}")
    return y


def _check_margin(margin):
    return check_eps(margin, "margin")  # a finite number >= 0


def angular_distance_matrix_forward(nat, pert):
    """Their angular distance between every natural and every perturbed embedding.

    .. math:: D_{ij} = 1 - \\frac{a_i \\cdot b_j}{\\max(\\|a_i\\|\\,\\|b_j\\|,\\ 10^{-8})}

    with a = ``nat`` (rows) and b = ``pert`` (columns). Unlike the paper's Eq. 1 there is no
    absolute value: D runs from 0 (same direction) through 1 (orthogonal) to 2 (opposite).
    The floor 1e-8 (theirs, ``clamp(min=eps)``) guards 0/0: a zero embedding has cos = 0,
    D = 1 -- but, as in their autograd, the dot product's gradient is then divided by 1e-8.

    Parameters
    ----------
    nat : (N, K) natural embeddings a_i
    pert : (M, K) perturbed embeddings b_j

    Returns
    -------
    D : (N, M)
    cache : for the backward
    """
    check_array(nat, "nat", ndim=2)
    check_array(pert, "pert", ndim=2)
    if nat.shape[1] != pert.shape[1]:
        raise ValueError(f"nat, pert: expected the same embedding width K, got {nat.shape} "
                         f"and {pert.shape}")
    dot = nat @ pert.T  # (N, M)
    norm_a = losses.row_norms(nat)  # (N,)
    norm_b = losses.row_norms(pert)  # (M,)
    product = norm_a[:, None] * norm_b[None, :]  # (N, M)
    denom = np.maximum(product, nat.dtype.type(DISTANCE_FLOOR))  # (N, M)
    cos = dot / denom  # (N, M)
    # Where the floor did not act, the norms carry a gradient (torch's clamp passes it at
    # equality too, hence >=).
    through_norms = product >= DISTANCE_FLOOR
    return 1.0 - cos, (nat, pert, norm_a, norm_b, denom, cos, through_norms)


def angular_distance_matrix_backward(dD, cache):
    """Gradients of D_ij = 1 - dot_ij / c_ij, c_ij = max(||a_i|| ||b_j||, 1e-8).

    Undoing the forward from the last line up, with G = dL/dD (N, M):

        dL/dcos_ij  = -G_ij
        dL/ddot_ij  = -G_ij / c_ij                    (N, M)
        dL/dc_ij    =  G_ij cos_ij / c_ij             only where the floor did not act
        d||a_i||    = sum_j dL/dc_ij ||b_j||,  and d||a||/da = a / ||a|| (0 at a = 0)
        da = -(G / c) @ b + (d||a_i|| / ||a_i||) a_i  (N, K)
        db = -(G / c)^T @ a + (d||b_j|| / ||b_j||) b_j (M, K)

    Returns
    -------
    (dnat (N, K), dpert (M, K))
    """
    nat, pert, norm_a, norm_b, denom, cos, through_norms = cache
    g_dot = -dD / denom  # (N, M)
    g_denom = np.where(through_norms, dD * cos / denom, 0.0)  # (N, M)
    d_norm_a = g_denom @ norm_b  # (N,)
    d_norm_b = g_denom.T @ norm_a  # (M,)
    # d||a||/da = a / ||a||, and 0 at a = 0 (torch's norm backward; no 0/0).
    scale_a = np.where(norm_a > 0, d_norm_a / np.where(norm_a > 0, norm_a, 1.0), 0.0)
    scale_b = np.where(norm_b > 0, d_norm_b / np.where(norm_b > 0, norm_b, 1.0), 0.0)
    dnat = g_dot @ pert + scale_a[:, None] * nat  # (N, K)
    dpert = g_dot.T @ nat + scale_b[:, None] * pert  # (M, K)
    return dnat.astype(nat.dtype, copy=False), dpert.astype(pert.dtype, copy=False)


# What the mining picked for each anchor i, and why (all (N,) arrays):
#   pos_index    column of the positive: argmax_j P_ij (the first, on ties)
#   neg_index    column of the negative: argmin_j A_ij (the first, on ties)
#   rowmax_index column of the row's largest distance, argmax_j D_ij (it raises same-class
#                entries; it matters to the gradient only when neg_raised)
#   d_pos, d_neg the values max_j P_ij and min_j A_ij the hinge reads
#   pos_valid    is the positive a real one (same class, j != i)? False when the anchor has
#                no other sample of its class (or all of theirs lie at D <= 0): the "positive"
#                is then a masked entry, d_pos = 0, and no gradient flows through it
#   neg_raised   is the negative a same-class column (raised by the row's max)? Only when
#                the batch has no other class for this anchor, or on an exact tie
Mined = namedtuple("Mined", "pos_index neg_index rowmax_index d_pos d_neg pos_valid neg_raised")


def mine_hard_angular(D, y):
    """Their batch-hard mining on a distance matrix (``sampler.online_mine_angular_hard``).

    With same_ij = [y_i == y_j] and P, A built as their code builds them (l. 280-298):

        P_ij = D_ij if (same_ij and i != j) else 0        the anchor's own copy and other
                                                          classes are *zeroed*, not excluded
        d_pos_i = max_j P_ij,  pos_i = argmax_j P_ij
        A_ij = D_ij + max_k D_ik * same_ij               same-class entries (the own copy
                                                          included) raised by the row's max
        d_neg_i = min_j A_ij,  neg_i = argmin_j A_ij

    Edge cases, exactly as there:

    - An anchor with no other sample of its class in the batch: P's row is all zeros, so
      d_pos = 0 and pos = column 0 (argmax returns the first maximum) -- whatever sample
      that is. The norm term still reads ||natural_0|| for it.
    - Masked entries are 0, not -inf: a real positive wins only with D > 0. If all of an
      anchor's same-class distances are <= 0 (exactly parallel, or rounding below 0), the
      first zero of the row wins instead and the positive carries no gradient.
    - A batch with a single class: every entry is raised, the negative is the row's
      smallest D_ij + max_k D_ik (a same-class column, possibly the anchor's own copy).
    - Ties (equal values) go to the first column, as PyTorch documents for max/min/argmax
      along a dimension.

    Parameters
    ----------
    D : (N, N) distances, natural rows, perturbed columns of the same batch
    y : (N,) int labels

    Returns
    -------
    Mined (see above), every field (N,)
    """
    check_array(D, "D", ndim=2)
    if D.shape[0] != D.shape[1]:
        raise ValueError(f"D: expected a square (N, N) matrix (natural rows, perturbed columns "
                         f"of one batch), got shape {D.shape}")
    n = D.shape[0]
    _check_batch_labels(y, n, "row of D")
    rows = np.arange(n)
    same = y[:, None] == y[None, :]  # (N, N)
    candidate = same.copy()
    candidate[rows, rows] = False  # the anchor's own perturbed copy is never its positive
    P = np.where(candidate, D, 0.0)  # (N, N)
    pos_index = P.argmax(axis=1)  # (N,), the first maximum
    rowmax_index = D.argmax(axis=1)  # (N,)
    row_max = D[rows, rowmax_index]  # (N,)
    A = D + row_max[:, None] * same  # (N, N)
    neg_index = A.argmin(axis=1)  # (N,), the first minimum
    return Mined(pos_index=pos_index, neg_index=neg_index, rowmax_index=rowmax_index,
                 d_pos=P[rows, pos_index], d_neg=A[rows, neg_index],
                 pos_valid=candidate[rows, pos_index], neg_raised=same[rows, neg_index])


def _their_distance(a, b):
    """D(a, b) = 1 - a.b / max(||a|| ||b||, 1e-8), for two vectors (the reference's)."""
    return 1.0 - float(np.dot(a, b)) / max(float(np.linalg.norm(a) * np.linalg.norm(b)),
                                           DISTANCE_FLOOR)


def hard_angular_triplet_reference(nat, pert, y, margin=MARGIN):
    """Their batch-hard triplet, one anchor at a time, written to be read.

    For each anchor i (a natural embedding):

    1. its distance to every perturbed embedding j of the batch, D(nat_i, pert_j);
    2. the positive: among the other samples of its class (j != i), the one whose perturbed
       embedding is the *farthest*; every other column counts as distance 0 and can still
       win a tie or a row with no real candidate (first column wins ties);
    3. the negative: the *nearest* perturbed embedding of another class; same-class columns
       count as their distance plus the row's largest distance, so they lose to every other
       class unless there is none (first column wins ties);
    4. the hinge max(0, d_pos - d_neg + margin).

    The loss is the mean hinge over anchors. ``mine_hard_angular`` and
    ``hard_angular_triplet_forward`` do the same with whole-matrix operations; the tests hold
    them equal.

    Returns
    -------
    loss : float
    mined : Mined, as from ``mine_hard_angular``
    """
    _check_embeddings(nat, pert)
    n = nat.shape[0]
    _check_batch_labels(y, n)
    margin = _check_margin(margin)
    fields = {name: [] for name in Mined._fields}
    hinges = []
    for i in range(n):
        distances = [_their_distance(nat[i], pert[j]) for j in range(n)]
        pos, d_pos = 0, None
        for j in range(n):
            value = distances[j] if (y[j] == y[i] and j != i) else 0.0
            if d_pos is None or value > d_pos:
                pos, d_pos = j, value
        rowmax = int(np.argmax(distances))  # np.argmax: the first maximum
        neg, d_neg = 0, None
        for j in range(n):
            value = distances[j] + (distances[rowmax] if y[j] == y[i] else 0.0)
            if d_neg is None or value < d_neg:
                neg, d_neg = j, value
        hinges.append(max(0.0, d_pos - d_neg + margin))
        for name, value in zip(Mined._fields, (pos, neg, rowmax, d_pos, d_neg,
                                               bool(y[pos] == y[i] and pos != i),
                                               bool(y[neg] == y[i]))):
            fields[name].append(value)
    mined = Mined(**{name: np.array(values) for name, values in fields.items()})
    return float(np.mean(hinges)), mined


def hard_angular_triplet_forward(nat, pert, y, margin=MARGIN):
    """Their batch-hard angular triplet loss (``sampler.online_mine_angular_hard``).

    .. math:: L = \\frac{1}{N} \\sum_i \\max(0,\\; d^{pos}_i - d^{neg}_i + m)

    with D = ``angular_distance_matrix_forward(nat, pert)`` and d_pos, d_neg mined by
    ``mine_hard_angular`` (its docstring: the masking and every edge case). The anchors are
    the natural embeddings; positives and negatives are both *perturbed* embeddings of other
    samples of the batch. ``hard_angular_triplet_reference`` is the same, one anchor at a time.

    Parameters
    ----------
    nat : (N, K) natural embeddings (anchors, rows of D)
    pert : (N, K) perturbed embeddings, row i made from sample i (FGSM or invariance images)
    y : (N,) int labels of the samples
    margin : m >= 0

    Returns
    -------
    loss : float
    cache : for the backward; ``triplet_mined(cache)`` gives the mined indices
    """
    _check_embeddings(nat, pert)
    _check_batch_labels(y, nat.shape[0])
    margin = _check_margin(margin)
    D, d_cache = angular_distance_matrix_forward(nat, pert)  # (N, N)
    mined = mine_hard_angular(D, y)
    hinge = mined.d_pos - mined.d_neg + margin  # (N,)
    loss = float(np.maximum(hinge, 0.0).mean())
    return loss, (d_cache, mined, hinge)


def triplet_mined(cache):
    """The Mined record (indices and flags, each (N,)) of a ``hard_angular_triplet_forward``."""
    return cache[1]


def hard_angular_triplet_backward(dloss, cache):
    """Gradient of the mean hinge, the mining held constant.

    Each anchor's hinge passes w_i = dloss / N * gate_i, gate_i = 1 if the hinge is > 0,
    0 if < 0, and 1/2 at exactly 0 (PyTorch's backward of torch.max(x, 0) splits a tie; a
    kink, never met in the gradient checks). It reaches at most three entries of G = dL/dD:

        G[i, pos_i]    += w_i * pos_valid_i    (a masked positive is 0 * D: no gradient)
        G[i, neg_i]    -= w_i
        G[i, rowmax_i] -= w_i * neg_raised_i   (the raise max_k D_ik of a same-class negative)

    then ``angular_distance_matrix_backward``. np.add.at adds where two of them coincide.

    Returns
    -------
    (dnat (N, K), dpert (N, K))
    """
    d_cache, mined, hinge = cache
    n = hinge.shape[0]
    gate = np.where(hinge > 0, 1.0, np.where(hinge == 0, 0.5, 0.0))  # (N,)
    w = gate * (float(dloss) / n)  # (N,)
    rows = np.arange(n)
    G = np.zeros((n, n))  # (N, N), float64 for the adds; cast back below
    np.add.at(G, (rows, mined.pos_index), w * mined.pos_valid)
    np.add.at(G, (rows, mined.neg_index), -w)
    np.add.at(G, (rows, mined.rowmax_index), -w * mined.neg_raised)
    return angular_distance_matrix_backward(G.astype(d_cache[0].dtype, copy=False), d_cache)


def _check_index(index, name, n):
    check_array(index, name, ndim=1, dtype_kind="i")
    if index.shape[0] != n:
        raise ValueError(f"{name}: expected {n} indices, one per embedding row, "
                         f"got {index.shape[0]}")
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ValueError(f"{name}: indices must lie in 0..{n - 1}, "
                         f"got range [{index.min()}, {index.max()}]")
    return index


def embedding_norms_forward(nat, pert, pos_index, neg_index, only_perturbed=False):
    """Their embedding-norm term of one triplet block (``modeling.construct_loss``).

    .. math:: R = \\frac{1}{N} \\sum_i (\\|b_i\\| + \\|a_{neg_i}\\| + \\|a_{pos_i}\\|)

    a = natural, b = perturbed embeddings; pos_i, neg_i are the *columns* the triplet mined
    (``triplet_mined``), used as rows of the natural embeddings (sampler.py l. 325-333: the
    natural embedding of the sample whose perturbed embedding was picked). Every anchor
    counts, active hinge or not, and an anchor without a real positive reads row pos_i = 0.
    ``only_perturbed`` (their ``reg_only_adv``, the second block when both triplets are on):
    R = mean_i ||b_i||. Unweighted here: their loss adds 1e-3 * R (``NORM_WEIGHT``), not
    multiplied by the triplet's lambda.

    Returns
    -------
    value : float
    cache : for the backward
    """
    _check_embeddings(nat, pert)
    n = nat.shape[0]
    _check_index(pos_index, "pos_index", n)
    _check_index(neg_index, "neg_index", n)
    norm_b = losses.row_norms(pert)  # (N,)
    norm_a = losses.row_norms(nat)  # (N,)
    total = norm_b if only_perturbed else norm_b + norm_a[neg_index] + norm_a[pos_index]
    return float(total.mean()), (nat, pert, norm_a, norm_b, pos_index, neg_index,
                                 bool(only_perturbed))


def embedding_norms_backward(dvalue, cache):
    """d||v|| / dv = v / ||v|| (0 at v = 0, torch's choice), each term carrying dvalue / N.

    The natural rows are gathered by index, so their gradient is a scatter-add: a row that is
    the negative or positive of several anchors gets each of their shares.

    Returns
    -------
    (dnat (N, K), dpert (N, K))
    """
    nat, pert, norm_a, norm_b, pos_index, neg_index, only_perturbed = cache
    n = nat.shape[0]
    share = float(dvalue) / n

    def unit(v, norms):  # v / ||v|| row by row, 0 for a zero row
        safe = np.where(norms > 0, norms, 1.0)
        return np.where((norms > 0)[:, None], v / safe[:, None], 0.0)

    dpert = share * unit(pert, norm_b)  # (N, K)
    count = np.zeros(n)  # how many times each natural row is read
    if not only_perturbed:
        np.add.at(count, neg_index, 1.0)
        np.add.at(count, pos_index, 1.0)
    dnat = (share * count)[:, None] * unit(nat, norm_a)  # (N, K)
    return dnat.astype(nat.dtype, copy=False), dpert.astype(pert.dtype, copy=False)


def block_forward(nat, pert, y, *, margin=MARGIN, triplet_weight=TRIPLET_WEIGHT,
                  norm_weight=NORM_WEIGHT, only_perturbed_norm=False):
    """One triplet block of their loss (``modeling.construct_loss``, l. 59-100 or 104-149).

    .. math:: B = \\lambda\\, L_{triplet}(a, b, y) + \\lambda_{reg}\\, R(a, b, pos, neg)

    with the indices R reads mined by the triplet. Their first block: the defaults; their
    second (``triplet_additional``, both triplets on): ``only_perturbed_norm=True``.

    Returns
    -------
    value : float
    cache : for the backward
    terms : dict(triplet=L_triplet, norm=R, active=fraction of hinges > 0) for reporting
    """
    triplet, t_cache = hard_angular_triplet_forward(nat, pert, y, margin)
    mined = triplet_mined(t_cache)
    norm, n_cache = embedding_norms_forward(nat, pert, mined.pos_index, mined.neg_index,
                                            only_perturbed_norm)
    value = triplet_weight * triplet + norm_weight * norm
    terms = {"triplet": triplet, "norm": norm, "active": float(np.mean(t_cache[2] > 0))}
    return float(value), (t_cache, n_cache, triplet_weight, norm_weight), terms


def block_backward(dvalue, cache):
    """The block's two gradients, summed: (dnat (N, K), dpert (N, K))."""
    t_cache, n_cache, triplet_weight, norm_weight = cache
    dnat, dpert = hard_angular_triplet_backward(dvalue * triplet_weight, t_cache)
    dnat_norm, dpert_norm = embedding_norms_backward(dvalue * norm_weight, n_cache)
    return dnat + dnat_norm, dpert + dpert_norm


def _check_network(net):
    if not (callable(getattr(net, "forward", None)) and callable(getattr(net, "backward", None))):
        raise TypeError(f"net: expected a network with forward(params, x) and "
                        f"backward(dlogits, dh, cache, need_dx, need_param_grads) (network.py's, "
                        f"or fast/network.py's), got {type(net).__name__}")


def _input_norm(params):
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict of network parameters, "
                        f"got {type(params).__name__}")
    if "input_mean" not in params or "input_std" not in params:
        raise ValueError("params: their FGSM steps in normalised units and needs a network that "
                         "normalises its inputs (input_mean, input_std; e.g. "
                         "network.with_input_norm(params, *network.INPUT_NORMS['authors'])), "
                         f"got keys {sorted(params)}")
    return params["input_mean"], params["input_std"]


def _check_fgsm_inputs(params, x, y, eps, clamp):
    mean, std = _input_norm(params)
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected a batch of images (N, ...), got shape {x.shape}")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"x: pixels must lie in [0, 1] (the clean images, before "
                         f"normalisation), got range [{x.min():g}, {x.max():g}]")
    _check_batch_labels(y, len(x), "image")  # their range is checked against the logits
    eps = check_eps(eps)
    if clamp not in CLAMPS:
        raise ValueError(f"clamp: expected one of {CLAMPS}, got {clamp!r}")
    return mean, std, eps


def _signed_step(x, sign, eps, mean, std, clamp):
    """x' in pixel units from x (pixels) and sign(grad_{x_norm} NLL).

    clamp "normalised" (theirs): x'_norm = clip((x - mean) / std + eps * sign, 0, 1),
        returned as x'_norm * std + mean -- every pixel ends in [mean, mean + std].
    clamp "pixels": x' = clip(x + eps * std * sign, 0, 1) -- the same step, eps converted to
        pixel units, clipped where pixels live.
    """
    dtype = x.dtype.type
    if clamp == "pixels":
        return np.clip(x + dtype(eps * std) * sign, 0.0, 1.0).astype(x.dtype, copy=False)
    x_norm = (x - mean) / std  # what the network's first operation computes
    x_adv_norm = np.clip(x_norm + dtype(eps) * sign, 0.0, 1.0)  # the clamp meant for pixels
    return (x_adv_norm * std + mean).astype(x.dtype, copy=False)


def _clean_nll(params, x, y, net, need_param_grads, anchor_forward=None):
    """NLL(clean) = mean_i CE(f(x_i), y_i), its input-gradient sign and, if asked, its
    parameter gradients: one forward (or ``anchor_forward``), one backward."""
    _check_network(net)
    logits, _, cache = net.forward(params, x) if anchor_forward is None else anchor_forward
    if logits.shape[0] != len(x):
        raise ValueError(f"forward: expected logits for {len(x)} images, got {logits.shape[0]}")
    check_labels(y, "y", n=len(x), num_classes=logits.shape[1])
    nll, ce_cache = losses.softmax_cross_entropy_forward(logits, y)  # NLLLoss(log_softmax)
    dlogits = losses.softmax_cross_entropy_backward(1.0, ce_cache)  # the batch mean, as theirs
    grads, dx = net.backward(dlogits, None, cache, need_dx=True,
                             need_param_grads=need_param_grads)
    # The network's dx is in pixel units: dx = dx_norm / std, std > 0, so the signs agree with
    # grad_{x_norm}, the gradient their code takes.
    return nll, np.sign(dx).astype(x.dtype, copy=False), grads


def fgsm(params, x, y, eps=FGSM_EPS, clamp="normalised", net=network, chunk_size=4096):
    """Their FGSM (``attacks.fgsm_attack``), in tinyadv's pixel units.

    Their images reach the network normalised, x_norm = (x - 0.1307) / 0.3081, and the
    attack returns

    .. math::
        x'_{norm} = \\mathrm{clamp}(x_{norm}
                    + \\epsilon\\, \\mathrm{sign}(\\nabla_{x_{norm}} \\mathrm{NLL}),\\ 0,\\ 1)

    eps = 0.01 in normalised units. The clamp to [0, 1], meant for pixels, acts on normalised
    values: the background (x_norm = -0.42) becomes 0, i.e. pixel 0.1307, and all ink above
    pixel 0.4388 (x_norm = 1) is capped. Returned here in pixel units, x'_norm * std + mean,
    so that the network (which normalises its inputs itself) sees exactly their x'_norm.

    ``clamp="pixels"``: the same signed step, eps * std in pixel units, clipped to [0, 1] in
    pixel units: what the attack was meant to be.

    Parameters
    ----------
    params : network parameters with an input normalisation (input_mean, input_std)
    x : (N, ...) clean images in pixel units [0, 1], float32 (float64 works too)
    y : (N,) int true labels (their attack uses them)
    eps : step in *normalised* units (theirs: 0.01)
    clamp : "normalised" (theirs) or "pixels"
    net : the network that runs x: network.py's (the default), or another with its forward
        and backward (the lab's: tinyadv/fast/network.py)
    chunk_size : images per forward/backward (the sign of each image's gradient does not
        depend on the others: NLL is a mean, and a positive factor 1/N keeps every sign)

    Returns
    -------
    x_adv : like x, in pixel units
    """
    mean, std, eps = _check_fgsm_inputs(params, x, y, eps, clamp)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    x_adv = np.empty_like(x)
    for start in range(0, len(x), chunk_size):
        xb, yb = x[start:start + chunk_size], y[start:start + chunk_size]
        _, sign, _ = _clean_nll(params, xb, yb, net, need_param_grads=False)
        x_adv[start:start + chunk_size] = _signed_step(xb, sign, eps, mean, std, clamp)
    return x_adv


def fgsm_with_leak(params, x, y, eps=FGSM_EPS, clamp="normalised", net=network,
                   anchor_forward=None):
    """Their FGSM of one training batch, and what it leaves in the parameters' gradients.

    ``attacks.fgsm_attack`` calls ``model.zero_grad()`` and then ``loss.backward()`` on the
    clean batch's NLL to get the input gradient; that backward also accumulates
    d NLL(clean) / d params into every parameter's ``.grad``. ``trainer.train`` never calls
    ``optimizer.zero_grad()``, so the training loss's backward adds to it and each optimiser
    step follows NLL(clean) + the configured loss. ``grads`` here is that leaked gradient, of
    the batch *mean* (NLLLoss's default), to be added to the configured loss's gradients.

    Parameters
    ----------
    As ``fgsm`` (one batch, no chunking), and
    anchor_forward : ``net.forward(params, x)`` if the caller has it already (their trainer
        computes the natural embeddings first), or None

    Returns
    -------
    x_adv : like x, pixel units
    nll_clean : float, mean NLL of the clean batch
    grads : dict shaped like the trainable params, d nll_clean / d params
    """
    mean, std, eps = _check_fgsm_inputs(params, x, y, eps, clamp)
    nll, sign, grads = _clean_nll(params, x, y, net, need_param_grads=True,
                                  anchor_forward=anchor_forward)
    return _signed_step(x, sign, eps, mean, std, clamp), nll, grads


def as_fed_raw(x_inv, params):
    """Invariance images in [0, 1], made into what their code fed the network: the saved
    0..255 values, with no normalisation -- in tinyadv's pixel units, so that they can share
    a concatenated batch with the other images.

    Their loader gave the network the saved array v (0..255) as is. A tinyadv network that
    normalises its inputs computes (p - mean) / std first, so the pixel value that reaches it
    as v is p = v * std + mean (equal up to float32 rounding); without a normalisation, p = v.

    Returns
    -------
    (N, D) float32 array of p (not in [0, 1]: up to 255 * std + mean)
    """
    v = np.asarray(x_inv, dtype=np.float32) * np.float32(255)
    if "input_std" in params:
        return v * params["input_std"] + params["input_mean"]
    return v


def their_loss(params, x, y, *, x_adv=None, x_inv=None, lambda_sens=0.0, lambda_inv=0.0,
               lambda_norm=0.0, margin=MARGIN, ce_on="fgsm", lambda_image_norm=0.0,
               anchor_forward=None):
    """Their training loss of one batch (``modeling.construct_loss``) and its gradients.

        L = CE  +  MLI block  +  MLS block  +  lambda_image_norm * ||x_inv||

        CE        = CE(f(x'), y) (``ce_on="fgsm"``, theirs) or 0.5 CE(f(x)) + 0.5 CE(f(x'))
        MLI block = lambda_inv  * T(h(x), h(x''), y) + lambda_norm * R   (R: all three norms)
        MLS block = lambda_sens * T(h(x), h(x'), y)  + lambda_norm * R   (R: only ||h(x')_i||
                    when the MLI block is on too: their second block, ``reg_only_adv``)

    T is their batch-hard triplet (``hard_angular_triplet_forward``): natural embeddings
    against the perturbed ones of the same batch, positives and negatives from *other*
    samples; R their norm term (``embedding_norms_forward``), on the indices T mined. With
    both blocks the invariance block comes first, as in their code. ``||x_inv||`` is the
    norm of the invariance batch as given (their nll-sensitivity-norm-invar config): it does
    not depend on the weights, so it changes the loss and no gradient. CE(clean)'s gradient
    that their loop also trained is not here: ``fgsm_with_leak`` returns it. The network is
    fast/network.py's, as in training (``anchor_forward``: its forward of x, if the caller
    has it).

    Returns
    -------
    loss : float
    grads : dict shaped like the trainable params
    terms : dict of floats -- ce, ce_clean, ce_adv, triplet_sens, triplet_inv, active_sens,
        active_inv, norm, image_norm, total, clean_accuracy
    """
    _check_loss_arguments(x_adv, x_inv, lambda_sens, lambda_inv, lambda_image_norm, ce_on)
    # Their blocks, invariance first; the groups of images the loss reads (the anchors'
    # embeddings for either block and for their clean CE, the FGSM images for the CE and the
    # MLS block, the invariance images for MLI).
    blocks = [name for name, weight in (("inv", lambda_inv), ("adv", lambda_sens)) if weight]
    groups = ["anchor"] if blocks or ce_on == "clean+fgsm" else []
    groups += [g for g, image in (("adv", x_adv), ("inv", x_inv))
               if image is not None and (g == "adv" or lambda_inv)]
    logits, h, cache = _forward_groups(params, {"anchor": x, "adv": x_adv, "inv": x_inv},
                                       groups, anchor_forward)
    rows = {g: slice(i * len(x), (i + 1) * len(x)) for i, g in enumerate(groups)}
    dlogits, dh = np.zeros_like(logits), np.zeros_like(h)
    terms = dict(ce=0.0, ce_clean=0.0, ce_adv=0.0, triplet_sens=0.0, triplet_inv=0.0,
                 active_sens=0.0, active_inv=0.0, norm=0.0, image_norm=0.0)
    _add_cross_entropy(logits, y, rows, ce_on, dlogits, terms)
    for i, g in enumerate(blocks):  # the second block's norm reads only ||h(x')||
        _add_block(h, y, rows, g, lambda_inv if g == "inv" else lambda_sens, lambda_norm,
                   margin, i == 1, dh, terms)
    if lambda_image_norm:  # their constant: the norm of the invariance images (no gradient)
        terms["image_norm"] = float(np.linalg.norm(x_inv))
    grads, _ = FAST.backward(dlogits, dh, cache, need_dx=False)
    terms["total"] = float(terms["ce"] + lambda_inv * terms["triplet_inv"]
                           + lambda_sens * terms["triplet_sens"] + lambda_norm * terms["norm"]
                           + lambda_image_norm * terms["image_norm"])
    clean_logits = logits[rows["anchor"]] if "anchor" in rows else (
        anchor_forward[0] if anchor_forward is not None else FAST.forward(params, x)[0])
    terms["clean_accuracy"] = float((clean_logits.argmax(axis=1) == y).mean())
    return terms["total"], grads, terms


def _add_cross_entropy(logits, y, rows, ce_on, dlogits, terms):
    """Their cross-entropy, NLL of log-softmax, a batch mean: its value into ``terms``, its
    gradient into ``dlogits``."""
    for g, weight in ({"adv": 1.0} if ce_on == "fgsm" else {"anchor": 0.5, "adv": 0.5}).items():
        value, ce_cache = losses.softmax_cross_entropy_forward(logits[rows[g]], y)
        dlogits[rows[g]] += losses.softmax_cross_entropy_backward(weight, ce_cache)
        terms["ce_clean" if g == "anchor" else "ce_adv"] = value
        terms["ce"] += weight * value


def _add_block(h, y, rows, g, triplet_weight, norm_weight, margin, only_perturbed_norm, dh,
               terms):
    """One triplet block on the anchors' and group ``g``'s embeddings: its values into
    ``terms``, its gradients into ``dh``."""
    value, b_cache, b_terms = block_forward(
        h[rows["anchor"]], h[rows[g]], y, margin=margin, triplet_weight=triplet_weight,
        norm_weight=norm_weight, only_perturbed_norm=only_perturbed_norm)
    dnat, dpert = block_backward(1.0, b_cache)
    dh[rows["anchor"]] += dnat
    dh[rows[g]] += dpert
    name = "inv" if g == "inv" else "sens"
    terms[f"triplet_{name}"], terms[f"active_{name}"] = b_terms["triplet"], b_terms["active"]
    terms["norm"] += b_terms["norm"]


def _check_loss_arguments(x_adv, x_inv, lambda_sens, lambda_inv, lambda_image_norm, ce_on):
    if ce_on not in ("fgsm", "clean+fgsm"):
        raise ValueError(f"ce_on: expected 'fgsm' or 'clean+fgsm', got {ce_on!r}")
    if x_adv is None and (lambda_sens or ce_on == "fgsm"):
        raise ValueError("x_adv: their loss needs the FGSM images (CE on them, the MLS block), "
                         "got None")
    if (lambda_inv or lambda_image_norm) and x_inv is None:
        raise ValueError("x_inv: lambda_inv or lambda_image_norm needs the invariance images, "
                         "got None")


def _forward_groups(params, images, groups, anchor_forward):
    """The forward of the stacked groups [x; x'; x''] (those in ``groups``), reusing the
    anchors' forward when it is given: the other groups' forward is stacked onto it."""
    rest = [g for g in groups if g != "anchor"]
    if anchor_forward is not None and groups[:1] == ["anchor"] and rest:
        rest_forward = FAST.forward(params, np.concatenate([images[g] for g in rest]))
        return FAST.stack_forwards(params, anchor_forward, rest_forward)
    if anchor_forward is not None and groups == ["anchor"]:
        return anchor_forward
    return FAST.forward(params, np.concatenate([images[g] for g in groups]))


# ---- their options, and the training step they make -------------------------------------

@dataclass(frozen=True)
class AuthorsOptions:
    """What the authors' code did where it differs from the paper, each switchable alone.
    The first value of each is the paper's (and tinyadv's): all five there is the paper."""

    fgsm_clamp: str = "pixels"  # FGSM clips to [0, 1] in "pixels", or "normalised" units (theirs)
    leak_clean_grad: bool = False  # True: CE(clean)'s gradient from the FGSM step is trained too
    triplet: str = "paper"  # "paper": Eq. 1-2 (objective.py); "authors": their batch-hard blocks
    invariance_input: str = "pixels"  # MLI positives in [0, 1], or "raw255": 0-255, unnormalised
    lambda_image_norm: float = 0.0  # + this * ||x_inv||: their "norm-invar" term, a constant

    def __post_init__(self):
        choices = {"fgsm_clamp": CLAMPS, "triplet": TRIPLETS, "invariance_input": INVARIANCE_INPUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.leak_clean_grad, bool):
            raise ValueError(f"leak_clean_grad: expected true or false, got "
                             f"{self.leak_clean_grad!r}")
        if not self.lambda_image_norm >= 0:
            raise ValueError(f"lambda_image_norm: expected a number >= 0, got "
                             f"{self.lambda_image_norm!r}")

    def is_paper(self):
        """Are all five at the paper's values (the step is then the paper's)?"""
        return self == AuthorsOptions()

    def check(self, config):
        """A ValueError if these options cannot run with ``config`` (a TrainConfig)."""
        if not (config.input_norm == "authors"
                or (self.fgsm_clamp == "pixels" and not self.leak_clean_grad)):
            raise ValueError(f"input_norm: expected 'authors' with fgsm_clamp='normalised' or "
                             f"leak_clean_grad (the authors' FGSM works on normalised images), "
                             f"got {config.input_norm!r}")
        if self.triplet == "authors" and config.protocol != "source":
            raise ValueError(f"protocol: expected 'source' with triplet='authors' (their "
                             f"triplet pairs each image with its own), got {config.protocol!r}")
        if self.triplet == "authors" and config.ce_on not in ("fgsm", "clean+fgsm"):
            raise ValueError(f"ce_on: expected 'fgsm' or 'clean+fgsm' with triplet='authors', "
                             f"got {config.ce_on!r}")


def authors_step(options):
    """The training step of their code, for ``train.train(..., step=authors_step(options))``:
    ``train.train_step`` (FGSM, the loss, one optimiser step) with their choices instead.

        x'    their FGSM (``fgsm_clamp``), and CE(clean)'s gradient it leaves behind,
              trained too (``leak_clean_grad``)
        x''   as they fed it: 0..255, unnormalised (``invariance_input="raw255"``)
        loss  their loss (``triplet="authors"``: ``their_loss``), or the paper's Eq. 2

    It runs fast/network.py's network, the anchors' forward shared by FGSM and the loss as
    their trainer shared it (natural embeddings first): with the paper's five options it is
    the lab's fast step (fast/step.py)."""
    def step(params, opt, config, batch, rng):
        anchors = FAST.forward(params, batch.x)  # (logits, h, cache) of the natural images
        x_adv, leaked = None, None
        if config.adversarial and (options.fgsm_clamp == "normalised" or options.leak_clean_grad):
            std = network.INPUT_NORMS[config.input_norm][1]  # their eps is in normalised units
            x_adv, _, clean_grads = fgsm_with_leak(
                params, batch.x, batch.y, eps=config.fgsm_eps / std, clamp=options.fgsm_clamp,
                net=FAST, anchor_forward=anchors)
            leaked = clean_grads if options.leak_clean_grad else None
        elif config.adversarial:
            x_adv = fgsm_sharing_forward(params, batch.x, batch.y, config.fgsm_eps, anchors)
        x_inv = batch.x_inv
        if x_inv is not None and options.invariance_input == "raw255":
            x_inv = as_fed_raw(x_inv, params)
        weights = dict(lambda_sens=config.lambda_sens if x_adv is not None else 0.0,
                       lambda_inv=config.lambda_inv, lambda_norm=config.lambda_norm,
                       margin=config.margin, ce_on=config.ce_on, anchor_forward=anchors)
        if options.triplet == "authors":
            _, grads, terms = their_loss(params, batch.x, batch.y, x_adv=x_adv, x_inv=x_inv,
                                         lambda_image_norm=options.lambda_image_norm, **weights)
        else:
            neg_index = "hardest" if config.negatives == "hardest" else \
                objective.random_negatives(batch.y, rng)
            _, grads, terms = fast_objective(params, batch.x, batch.y, x_adv=x_adv, x_inv=x_inv,
                                             x_inv_neg=batch.x_inv_neg, neg_index=neg_index,
                                             **weights)
        for key, grad in (leaked or {}).items():  # their loop never zeroed CE(clean)'s gradient
            grads[key] = grads[key] + grad
        opt.step(params, grads)
        return terms
    return step
