"""The paper's Eq. 2, assembled from the pieces, with its hand-written gradient.

    L = CE                                           (clean; clean + FGSM; or FGSM only)
      + lambda_sens * Lt(h(x_a), h(x'_p),  h(x_n))              (MLS: sensitivity triplet)
      + lambda_inv  * Lt(h(x_a), h(x''_p), h(x''_n))            (MLI: invariance triplet)
      + lambda_norm * sum over the embedding groups the triplets use of mean_i ||h_i||

Batch means replace the paper's sums. With adversarial images x' given, the cross-entropy is
FGSM adversarial training's 0.5 * CE(f(x_a), y) + 0.5 * CE(f(x'), y) (Goodfellow et al. 2015,
``ce_on="clean+fgsm"``) or, as the paper's authors configured it, CE(f(x'), y) alone
(``ce_on="fgsm"``); all lambdas zero therefore give the Baseline row of Table 1.
``ce_on="clean+invariance"`` trains 0.5 * CE(f(x_a), y) + 0.5 * CE(f(x''), y) instead: the
invariance examples with the anchors' labels, as the authors' logged ``nll-invariance``
configuration trained them (their source label, in the paper's protocol).

``objective`` computes it term by term: one forward pass, each term from ``losses``, the
negatives' gather and scatter-add from ``layers``, one backward pass. Which image groups
each term reads is said once, by ``eq2_terms``. The groups:

    anchor   x_a    the natural images of the batch
    adv      x'_p   their FGSM images (``x_adv``)
    inv      x''_p  invariance positives (``x_inv``)
    inv_neg  x''_n  negatives the MLI triplet brings along (``x_inv_neg``, oracle protocol)
    neg      x_n    other anchors, picked by ``neg_index``: rows of h(x_a), a gather, so they
                    cost no forward pass of their own; their gradient is scattered back

Every image goes through the network in **one concatenated batch** -- [x_a; x'; x''; x''_n] --
so the weights are read once and each layer is one big matrix product.
"""
from dataclasses import dataclass

import numpy as np

from . import layers, losses, network

__all__ = ["CE_ON", "STACKED_GROUPS", "Term", "eq2_terms", "stacked_groups", "check_arguments",
           "hardest_negatives", "random_negatives", "objective"]

CE_ON = ("clean+fgsm", "fgsm", "clean+invariance")
# The groups with images of their own, in the order one forward pass stacks them.
STACKED_GROUPS = ("anchor", "adv", "inv", "inv_neg")


@dataclass(frozen=True)
class Term:
    """One term of paper Eq. 2 as one call computes it."""

    name: str  # its key in the dict of terms the objective returns
    kind: str  # "ce", "triplet" or "norm": which function of ``losses`` computes it
    weight: float  # its factor in the loss; 0: computed and reported, not trained on
    groups: tuple  # the image groups it reads; a triplet's are (anchor, positive, negative)


def eq2_terms(*, adversarial, ce_on="clean+fgsm", lambda_sens=0.0, lambda_inv=0.0,
              lambda_norm=0.0, inv_negatives=False):
    """The terms of paper Eq. 2 that one step computes, and the image groups each reads.

    Parameters
    ----------
    adversarial : are FGSM images x'_p given? (Without them there is no MLS term.)
    ce_on : "clean+fgsm", "fgsm" or "clean+invariance", as in ``objective``
    lambda_sens, lambda_inv, lambda_norm : the weights; a term with weight 0 is left out
    inv_negatives : does the MLI triplet bring its own negatives x''_n (the oracle protocol)
        instead of other anchors?

    Returns
    -------
    tuple of Term: the cross-entropies (ce_clean, then ce_adv or ce_inv), then the triplets
    (triplet_sens, triplet_inv), then the norm term. The norm term covers exactly the
    embedding groups the triplets read, and is there only when some triplet is.
    """
    if ce_on == "clean+invariance":
        terms = [Term("ce_clean", "ce", 0.5, ("anchor",)), Term("ce_inv", "ce", 0.5, ("inv",))]
    elif not adversarial:
        terms = [Term("ce_clean", "ce", 1.0, ("anchor",))]
    else:
        clean_weight = 0.0 if ce_on == "fgsm" else 0.5  # reported even when not trained on
        terms = [Term("ce_clean", "ce", clean_weight, ("anchor",)),
                 Term("ce_adv", "ce", 1.0 - clean_weight, ("adv",))]
    triplets = []
    if adversarial and lambda_sens != 0:
        triplets.append(Term("triplet_sens", "triplet", lambda_sens, ("anchor", "adv", "neg")))
    if lambda_inv != 0:
        negative = "inv_neg" if inv_negatives else "neg"
        triplets.append(Term("triplet_inv", "triplet", lambda_inv, ("anchor", "inv", negative)))
    terms += triplets
    if lambda_norm != 0 and triplets:
        used = sorted({group for term in triplets for group in term.groups})
        terms.append(Term("norm", "norm", lambda_norm, tuple(used)))
    return tuple(terms)


def stacked_groups(terms):
    """The image groups one forward pass stacks, in order: the anchors always (the negatives
    are rows of them, and the clean accuracy is reported), then every other group a term reads."""
    read = {group for term in terms for group in term.groups}
    return [group for group in STACKED_GROUPS if group == "anchor" or group in read]


def check_arguments(x_adv, x_inv, x_inv_neg, neg_index, lambda_sens, lambda_inv, lambda_norm,
                    ce_on):
    """Check the objective's arguments; return the terms (eq2_terms) they ask for."""
    if ce_on not in CE_ON:
        raise ValueError(f"ce_on: expected one of {CE_ON}, got {ce_on!r}")
    if lambda_sens != 0 and x_adv is None:
        raise ValueError("x_adv: lambda_sens != 0 needs the sensitivity positives, got None")
    if (lambda_inv != 0 or ce_on == "clean+invariance") and x_inv is None:
        raise ValueError("x_inv: lambda_inv != 0 or ce_on='clean+invariance' needs the "
                         "invariance examples, got None")
    terms = eq2_terms(adversarial=x_adv is not None, ce_on=ce_on, lambda_sens=lambda_sens,
                      lambda_inv=lambda_inv, lambda_norm=lambda_norm,
                      inv_negatives=x_inv_neg is not None)
    if any("neg" in term.groups for term in terms):
        if neg_index is None:
            raise ValueError("neg_index: the triplet terms need each anchor's negative, got None")
        if isinstance(neg_index, str) and neg_index != "hardest":
            raise ValueError(f"neg_index: expected an index array or 'hardest', got {neg_index!r}")
    return terms


def hardest_negatives(h, y):
    """For each anchor, the index of the closest (in angular distance) anchor of another class.

    "Batch-hard" mining: the negative that currently violates the margin the most. The
    choice is treated as a constant (no gradient flows through the argmin).

    Parameters
    ----------
    h : (N, K) anchor embeddings
    y : (N,) labels; the batch must hold at least two classes

    Returns
    -------
    neg_index : (N,) int64
    """
    _require_two_classes(y)
    norms = losses.row_norms(h)  # (N,)
    unit = h / np.maximum(norms, losses.NORM_FLOOR)[:, None]  # zero rows stay zero
    distance = 1.0 - np.abs(unit @ unit.T)  # (N, N), paper Eq. 1 for every pair
    distance[y[:, None] == y[None, :]] = np.inf  # same class is never a negative
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
              lambda_sens=0.0, lambda_inv=0.0, lambda_norm=0.0, margin=0.05, ce_on="clean+fgsm"):
    """Loss, gradients and the value of each term of paper Eq. 2 (the module docstring),
    written to be read: with f the logits and h the embedding of ``network.forward``,

        L = CE + lambda_sens * Lt(h(x_a), h(x'_p), h(x_n)) + lambda_inv * Lt(h(x_a), h(x''_p),
            h(x''_n)) + lambda_norm * norm,   Lt(a, p, n) = mean_i max(0, D(a_i, p_i) - D(a_i, n_i) + m)

    Parameters
    ----------
    params : the network's parameters (an MLP's or the CNN's); x : (N, D) anchors x_a;
    y : (N,) their labels; x_adv : (N, D) FGSM images x'_p, or None (no adversarial CE, no
    MLS); x_inv : (N, D) invariance positives x''_p, or None; x_inv_neg : (N, D) negatives of
    the MLI triplet (oracle protocol), or None to use the anchors at neg_index; neg_index : (N,)
    int index of each anchor's negative among the anchors, or "hardest" (the closest one of
    another class, mined after the forward pass and held constant); lambda_sens, lambda_inv,
    lambda_norm : the paper's lambda1, lambda2, lambda3; margin : m; ce_on : which images the
    cross-entropy reads, "clean+fgsm" (0.5 each), "fgsm" or "clean+invariance" (0.5 each)

    Returns
    -------
    loss : float; grads : dict shaped like params; terms : dict of floats -- ce and each
    cross-entropy computed (ce_clean, ce_adv, ce_inv), triplet_sens, triplet_inv, norm, total,
    active_sens and active_inv (the fraction of hinges > 0), clean_accuracy (before the step)
    """
    terms = check_arguments(x_adv, x_inv, x_inv_neg, neg_index, lambda_sens, lambda_inv,
                            lambda_norm, ce_on)
    images = {"anchor": x, "adv": x_adv, "inv": x_inv, "inv_neg": x_inv_neg}
    groups = stacked_groups(terms)  # e.g. ["anchor", "adv", "inv"]
    n = x.shape[0]
    # 1. One forward pass of every image, then each group's rows: f(x_a), h(x_a), f(x'_p), ...
    logits, h_all, cache = network.forward(params, np.concatenate([images[g] for g in groups]))
    f = {g: logits[i * n:(i + 1) * n] for i, g in enumerate(groups)}  # (N, C) each
    h = {g: h_all[i * n:(i + 1) * n] for i, g in enumerate(groups)}  # (N, K) each
    df = {g: np.zeros_like(f[g]) for g in groups}  # dL/df, filled in term by term
    dh = {g: np.zeros_like(h[g]) for g in groups}  # dL/dh
    # 2. The negatives x_n: other anchors' embeddings, a gather of rows of h(x_a).
    if any("neg" in term.groups for term in terms):
        if isinstance(neg_index, str):  # "hardest": the closest anchor of another class
            neg_index = hardest_negatives(h["anchor"], y)
        h["neg"], gather_cache = layers.gather_rows_forward(h["anchor"], neg_index)
        dh["neg"] = np.zeros_like(h["neg"])
    # 3. Each term from ``losses``, forward then backward, scaled by its weight.
    values = {"ce": 0.0, "triplet_sens": 0.0, "active_sens": 0.0, "triplet_inv": 0.0,
              "active_inv": 0.0, "norm": 0.0}
    for term in terms:
        values.update(term_forward_backward(term, f, h, df, dh, y, margin))
        if term.kind == "ce":
            values["ce"] += term.weight * values[term.name]
    # 4. The gather's backward: each negative's gradient goes to the anchor it copied.
    if "neg" in dh:
        dh["anchor"] += layers.gather_rows_backward(dh.pop("neg"), gather_cache)
    # 5. One backward pass of every image at once; the pixels need no gradient.
    grads, _ = network.backward(np.concatenate([df[g] for g in groups]),
                                np.concatenate([dh[g] for g in groups]), cache, need_dx=False)
    values["total"] = float(values["ce"] + lambda_sens * values["triplet_sens"]
                            + lambda_inv * values["triplet_inv"] + lambda_norm * values["norm"])
    values["clean_accuracy"] = float((f["anchor"].argmax(axis=1) == y).mean())
    return values["total"], grads, values


def term_forward_backward(term, f, h, df, dh, y, margin):
    """One term of Eq. 2: its value from ``losses``, and its gradient, times its weight,
    added into df (dL/dlogits) and dh (dL/dh) of the groups it reads. Returns the values it
    reports: {name: value}, and for a triplet the fraction of its hinges that are > 0."""
    if term.kind == "ce":
        (g,) = term.groups
        value, ce_cache = losses.softmax_cross_entropy_forward(f[g], y)
        df[g] += losses.softmax_cross_entropy_backward(term.weight, ce_cache)
        return {term.name: value}
    if term.kind == "triplet":
        a, p, neg = term.groups
        value, t_cache = losses.triplet_loss_forward(h[a], h[p], h[neg], margin)
        da, dp, dn = losses.triplet_loss_backward(term.weight, t_cache)
        dh[a] += da
        dh[p] += dp
        dh[neg] += dn
        active = float(losses.triplet_active(t_cache).mean())  # the fraction with a hinge > 0
        return {term.name: value, term.name.replace("triplet", "active"): active}
    value = 0.0  # the norm term: one mean norm per group, summed
    for g in term.groups:
        group_value, n_cache = losses.feature_norm_forward(h[g])
        dh[g] += losses.feature_norm_backward(term.weight, n_cache)
        value += group_value
    return {term.name: value}
