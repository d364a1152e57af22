"""The paper's Eq. 2, assembled from the pieces, with its hand-written gradient.

    L = CE                                           (clean; clean + FGSM; or FGSM only)
      + lambda_sens * Lt(h(x_a), h(x'_p),  h(x_n))              (MLS: sensitivity triplet)
      + lambda_inv  * Lt(h(x_a), h(x''_p), h(x''_n))            (MLI: invariance triplet)
      + lambda_norm * sum over the embedding groups the triplets use of mean_i ||h_i||

Batch means replace the paper's sums. With adversarial images x' given, the cross-entropy is
FGSM adversarial training's 0.5 * CE(f(x_a), y) + 0.5 * CE(f(x'), y) (Goodfellow et al. 2015,
``ce_on="clean+fgsm"``) or, as in the paper's authors' code, CE(f(x'), y) alone
(``ce_on="fgsm"``); all lambdas zero therefore give the Baseline row of Table 1.

Every image goes through the network in **one concatenated batch** -- [x_a; x'; x''; x''_n] --
so the weights are read once and BLAS sees one big matrix product per layer.

Negatives of the MLS triplet (and of the MLI triplet in the ``source`` protocol) are other
anchors of the batch, given by index (``neg_index``), so their embeddings are rows of h(x_a)
and cost no extra forward pass; their gradient is scattered back onto those rows. The MLI
triplet may instead bring its own negative images ``x_inv_neg`` (the ``oracle`` protocol
uses each invariance example's source image).
"""
import numpy as np

from . import losses, mlp

CE_ON = ("clean+fgsm", "fgsm")


def hardest_negatives(h, y, norms=None):
    """For each anchor, the index of the closest (in angular distance) anchor of another class.

    "Batch-hard" mining: the negative that currently violates the margin the most. The
    choice is treated as a constant (no gradient flows through the argmin).

    Parameters
    ----------
    h : (N, K) anchor embeddings
    y : (N,) labels; the batch must hold at least two classes
    norms : (N,) ``losses.row_norms(h)`` if the caller has them, or None

    Returns
    -------
    neg_index : (N,) int64
    """
    norms = losses.row_norms(h) if norms is None else norms  # (N,)
    unit = h / np.maximum(norms, losses.NORM_FLOOR)[:, None]  # zero rows stay zero
    distance = 1.0 - np.abs(unit @ unit.T)  # (N, N), paper Eq. 1 for every pair
    distance[y[:, None] == y[None, :]] = np.inf  # same class is never a negative
    _require_two_classes(y)
    return distance.argmin(axis=1).astype(np.int64)


def random_negatives(y, rng):
    """For each anchor, a uniformly random anchor of another class (vectorized rejection)."""
    _require_two_classes(y)
    n = len(y)
    neg_index = rng.integers(0, n, size=n)
    bad = y[neg_index] == y
    while bad.any():  # redraw only the collisions; terminates since another class exists
        neg_index[bad] = rng.integers(0, n, size=int(bad.sum()))
        bad = y[neg_index] == y
    return neg_index.astype(np.int64)


def _require_two_classes(y):
    if len(np.unique(y)) < 2:
        raise ValueError("y: a batch needs at least two classes to pick negatives from, "
                         f"got only class {y[0] if len(y) else None}")


def objective(params, x, y, *, x_adv=None, x_inv=None, x_inv_neg=None, neg_index=None,
              lambda_sens=0.0, lambda_inv=0.0, lambda_norm=0.0, margin=0.05,
              ce_on="clean+fgsm", anchor_forward=None):
    """Loss, gradients and the value of each term of paper Eq. 2.

    Parameters
    ----------
    params : dict of MLP parameters
    x : (N, D) anchors x_a (natural images); y : (N,) their labels
    x_adv : (N, D) FGSM images x'_p of the anchors, or None (no adversarial CE, no MLS)
    x_inv : (N, D) invariance positives x''_p, or None (no MLI)
    x_inv_neg : (N, D) negatives for the MLI triplet, or None to use the anchors at neg_index
    neg_index : (N,) index of each anchor's negative among the anchors (another class), or
        "hardest" to pick, after the forward pass, the closest anchor of another class
        (``hardest_negatives``) -- this reuses the concatenated pass instead of a second one
    lambda_sens, lambda_inv, lambda_norm : the paper's lambda1, lambda2, lambda3
    margin : triplet margin m
    ce_on : which images the cross-entropy is trained on when x_adv is given:
        "clean+fgsm" -- 0.5 * CE(clean) + 0.5 * CE(FGSM); "fgsm" -- CE(FGSM) only (the
        anchors still serve the triplets). Without x_adv the CE is on the clean anchors.
    anchor_forward : ``mlp.forward(params, x)`` if the caller has it already (training reuses
        the one FGSM needed), or None. Only the other groups then go through the network,
        and ``mlp.stack_forwards`` joins the two forwards into the concatenated pass's.

    Returns
    -------
    loss : float
    grads : dict shaped like params
    terms : dict of floats -- ce (the one in the loss), ce_clean, ce_adv, triplet_sens,
        triplet_inv, norm, total; active_sens and active_inv (fraction of triplets whose
        hinge is > 0, i.e. that produced a gradient: how much each term acted); and
        clean_accuracy (fraction of anchors classified correctly before the step). ce_clean
        is reported even when it is not trained on.
    """
    if ce_on not in CE_ON:
        raise ValueError(f"ce_on: expected one of {CE_ON}, got {ce_on!r}")
    use_sens = lambda_sens != 0 and x_adv is not None
    use_inv = lambda_inv != 0 and x_inv is not None
    if lambda_sens != 0 and x_adv is None:
        raise ValueError("x_adv: lambda_sens != 0 needs the sensitivity positives, got None")
    if lambda_inv != 0 and x_inv is None:
        raise ValueError("x_inv: lambda_inv != 0 needs the invariance positives, got None")
    needs_anchor_negatives = use_sens or (use_inv and x_inv_neg is None)
    if needs_anchor_negatives and neg_index is None:
        raise ValueError("neg_index: the triplet terms need each anchor's negative, got None")

    # One forward pass over every image, then split the rows back into their groups.
    groups = [("anchor", x)] + [(name, arr) for name, arr in
                                (("adv", x_adv), ("inv", x_inv if use_inv else None),
                                 ("inv_neg", x_inv_neg if use_inv else None)) if arr is not None]
    batch = np.concatenate([arr for _, arr in groups]) if len(groups) > 1 else x  # (G*N, D)
    n = x.shape[0]
    rest = None
    if anchor_forward is None:
        logits_all, h_all, cache = mlp.forward(params, batch)
    elif len(groups) == 1:
        logits_all, h_all, cache = anchor_forward
    else:
        rest = mlp.forward(params, batch[n:])  # ((G-1)*N rows): every group but the anchors
        logits_all, h_all, cache = mlp.stack_forwards(anchor_forward, rest, inputs=batch)
    rows = {name: slice(g * n, (g + 1) * n) for g, (name, _) in enumerate(groups)}
    dlogits_all = np.zeros_like(logits_all)
    dh_all = np.zeros_like(h_all)
    terms = {}

    # Cross-entropy: clean only; the 50/50 mix of clean and FGSM (adversarial training); or
    # FGSM only. A group outside the loss gets weight 0: its CE is still reported.
    if x_adv is None:
        ce_weights = {"anchor": 1.0}
    elif ce_on == "fgsm":
        ce_weights = {"anchor": 0.0, "adv": 1.0}
    else:
        ce_weights = {"anchor": 0.5, "adv": 0.5}
    terms["ce"] = 0.0
    for name, weight in ce_weights.items():
        ce, ce_cache = losses.softmax_cross_entropy_forward(logits_all[rows[name]], y)
        if weight:
            dlogits_all[rows[name]] = losses.softmax_cross_entropy_backward(weight, ce_cache)
        terms["ce_clean" if name == "anchor" else "ce_adv"] = ce
        terms["ce"] += weight * ce

    h_anchor = h_all[rows["anchor"]]
    # Row norms of each embedding group, computed once: the mining, both triplets and the
    # norm term all need them (the anchors' six times). "neg" rows are gathered anchors.
    # (Deliberately not recursive: a closure that calls itself is a reference cycle, which
    # would keep this call's arrays alive until the next garbage collection.)
    norms = {}

    def norms_of(name):
        if name not in norms:
            source = "anchor" if name == "neg" else name
            if source not in norms:
                norms[source] = losses.row_norms(h_all[rows[source]])  # (N,)
            if name == "neg":
                norms["neg"] = norms["anchor"][neg_index]  # gathered like h_neg
        return norms[name]

    if needs_anchor_negatives and isinstance(neg_index, str):
        if neg_index != "hardest":
            raise ValueError(f"neg_index: expected an index array or 'hardest', got {neg_index!r}")
        neg_index = hardest_negatives(h_anchor, y, norms_of("anchor"))
    h_neg = h_anchor[neg_index] if needs_anchor_negatives else None  # (N, K), a gather
    dh_neg = np.zeros_like(h_anchor) if needs_anchor_negatives else None
    used = set()  # embedding groups the triplets touch; the norm term covers exactly these

    def add_triplet(weight, pos_name, neg_name):
        h_pos = h_all[rows[pos_name]]
        h_n = h_all[rows[neg_name]] if neg_name != "neg" else h_neg
        value, t_cache = losses.triplet_loss_forward(
            h_anchor, h_pos, h_n, margin,
            norms=(norms_of("anchor"), norms_of(pos_name), norms_of(neg_name)))
        active_fraction = float(losses.triplet_active(t_cache).mean())
        da, dp, dn = losses.triplet_loss_backward(weight, t_cache)
        dh_all[rows["anchor"]] += da
        dh_all[rows[pos_name]] += dp
        if neg_name == "neg":
            dh_neg[...] += dn
        else:
            dh_all[rows[neg_name]] += dn
        used.update(("anchor", pos_name, neg_name))
        return value, active_fraction

    terms["triplet_sens"], terms["active_sens"] = (
        add_triplet(lambda_sens, "adv", "neg") if use_sens else (0.0, 0.0))
    terms["triplet_inv"], terms["active_inv"] = (
        add_triplet(lambda_inv, "inv", "inv_neg" if x_inv_neg is not None else "neg")
        if use_inv else (0.0, 0.0))

    terms["norm"] = 0.0
    if lambda_norm != 0 and used:
        for name in sorted(used):
            h_group = h_neg if name == "neg" else h_all[rows[name]]
            value, n_cache = losses.feature_norm_forward(h_group, norms_of(name))
            dh_group = losses.feature_norm_backward(lambda_norm, n_cache)
            if name == "neg":
                dh_neg += dh_group
            else:
                dh_all[rows[name]] += dh_group
            terms["norm"] += value

    if needs_anchor_negatives:
        # h_neg = h_anchor[neg_index] is a gather, so its gradient is a scatter-add: row i of
        # dh_neg goes to anchor neg_index[i], and an anchor chosen by several others sums
        # them all -- np.add.at(dh_anchor, neg_index, dh_neg). NumPy runs np.add.at fast only
        # with 1-d indices (~7x faster here), so we scatter into the flattened array instead:
        # element (r, c) of an (N, K) array is element r * K + c of its flattening.
        # The anchors are rows 0..N-1 of dh_all, and dh_all is contiguous, so its flattening
        # is a view: adding into it adds into dh_all.
        k = dh_neg.shape[1]
        flat_index = (neg_index[:, None] * k + np.arange(k)).ravel()  # (N*K,)
        np.add.at(dh_all.reshape(-1), flat_index, dh_neg.ravel())

    if rest is not None and ce_weights.get("anchor", 0.0) == 0 and "anchor" not in used:
        # The anchors' rows carry no gradient (CE on FGSM images only and no triplet: the
        # authors' baseline), so the backward skips them: a third fewer rows in every
        # weight-gradient product. The sums lose only exact zeros (bit for bit the same
        # with OpenBLAS here; another BLAS may block the sums differently and round apart).
        grads, _ = mlp.backward(dlogits_all[n:], dh_all[n:], rest[2], need_dx=False)
    else:
        grads, _ = mlp.backward(dlogits_all, dh_all, cache, need_dx=False)
    total = (terms["ce"] + lambda_sens * terms["triplet_sens"]
             + lambda_inv * terms["triplet_inv"] + lambda_norm * terms["norm"])
    terms["total"] = float(total)
    # A free diagnostic: how many anchors the network (before this step) classifies correctly.
    terms["clean_accuracy"] = float((logits_all[rows["anchor"]].argmax(axis=1) == y).mean())
    return float(total), grads, terms
