"""The Eq. 2 objective that training runs: tinyadv.objective.objective with less work.

Read tinyadv/objective.py first: it is the same loss, term by term. This version computes
the same numbers (tests/test_objective.py holds them equal in float64) while skipping work a
training step would otherwise do twice; its docstring lists each change and why.
"""
import numpy as np

from .. import losses
from ..layers import gather_rows_forward
from ..objective import STACKED_GROUPS, check_arguments, hardest_negatives, stacked_groups
from .layers import gather_rows_backward
from .network import FAST

__all__ = ["fast_objective", "trained_groups"]


def trained_groups(terms):
    """The stacked groups whose rows carry a gradient (the negatives' rows are anchors')."""
    trained = {"anchor" if group == "neg" else group
               for term in terms if term.weight != 0 for group in term.groups}
    return [group for group in STACKED_GROUPS if group in trained]



def fast_objective(params, x, y, *, x_adv=None, x_inv=None, x_inv_neg=None, neg_index=None,
                   lambda_sens=0.0, lambda_inv=0.0, lambda_norm=0.0, margin=0.05,
                   ce_on="clean+fgsm", anchor_forward=None):
    """``tinyadv.objective.objective``'s loss, gradients and terms, with less work.

    The lab's training step calls this one (fast/step.py). What it does differently, and
    why (the test suite holds the two equal in float64, every configuration):

    - The network is fast/network.py's: the CNN with faster convolutions.
    - ``anchor_forward``: training runs the anchors through the network for FGSM anyway, so
      it passes that forward in; only the other groups then go through the network, and
      the network's ``stack_forwards`` (fast/mlp.py, fast/cnn.py) joins the two into the
      concatenated pass's cache.
      One forward of N rows saved per step (69 of the full step's 611 MFLOP).
    - Gradients are added straight into one (rows, K) array, and the negatives' scatter-add
      straight into its anchor rows (``gather_rows_backward(..., out=)``, fast/layers.py): no
      per-group arrays to stack again before the backward.
    - When the anchors' rows carry no gradient (CE on FGSM images only and no triplet: the
      authors' baseline) the backward skips them: a third fewer rows in every weight-gradient
      product. The sums lose only exact zeros (bit for bit the same with OpenBLAS here;
      another BLAS may block the sums differently and round apart).

    Parameters
    ----------
    As ``tinyadv.objective.objective``, and
    anchor_forward : ``FAST.forward(params, x)`` if the caller has it already, or None

    Returns
    -------
    loss, grads, terms : as ``tinyadv.objective.objective``. ce_clean is reported even when it is
        not trained on.
    """
    terms = check_arguments(x_adv, x_inv, x_inv_neg, neg_index, lambda_sens, lambda_inv,
                            lambda_norm, ce_on)
    images = {"anchor": x, "adv": x_adv, "inv": x_inv, "inv_neg": x_inv_neg}
    groups = stacked_groups(terms)
    n = x.shape[0]
    batch = np.concatenate([images[g] for g in groups]) if len(groups) > 1 else x  # (G*N, D)
    rest = None  # the forward of every group but the anchors, when the caller gave theirs
    if anchor_forward is None:
        logits_all, h_all, cache = FAST.forward(params, batch)
    elif len(groups) == 1:
        logits_all, h_all, cache = anchor_forward
    else:
        rest = FAST.forward(params, batch[n:])  # ((G-1)*N rows)
        logits_all, h_all, cache = FAST.stack_forwards(params, anchor_forward, rest, inputs=batch)
    rows = {g: slice(i * n, (i + 1) * n) for i, g in enumerate(groups)}
    dlogits_all = np.zeros_like(logits_all)
    dh_all = np.zeros_like(h_all)
    h = {g: h_all[rows[g]] for g in groups}  # views
    dh = {g: dh_all[rows[g]] for g in groups}  # views: adding into them adds into dh_all
    ce_terms, triplets, norm_terms = ([term for term in terms if term.kind == kind]
                                      for kind in ("ce", "triplet", "norm"))
    values = {"ce": 0.0}
    for term in ce_terms:
        (g,) = term.groups
        value, ce_cache = losses.softmax_cross_entropy_forward(logits_all[rows[g]], y)
        if term.weight:  # a group outside the loss: reported, no backward
            dlogits_all[rows[g]] = losses.softmax_cross_entropy_backward(term.weight, ce_cache)
        values[term.name] = value
        values["ce"] += term.weight * value

    if any("neg" in term.groups for term in triplets):
        if isinstance(neg_index, str):  # "hardest": mine with this pass's embeddings
            neg_index = hardest_negatives(h["anchor"], y)
        h["neg"], gather_cache = gather_rows_forward(h["anchor"], neg_index)  # (N, K)
        dh["neg"] = np.zeros_like(h["neg"])

    values.update(triplet_sens=0.0, active_sens=0.0, triplet_inv=0.0, active_inv=0.0)
    for term in triplets:
        a, p, neg = term.groups
        value, t_cache = losses.triplet_loss_forward(h[a], h[p], h[neg], margin)
        values[term.name] = value
        values[term.name.replace("triplet", "active")] = float(
            losses.triplet_active(t_cache).mean())
        for g, grad in zip(term.groups, losses.triplet_loss_backward(term.weight, t_cache)):
            dh[g] += grad

    values["norm"] = 0.0
    for term in norm_terms:
        for g in term.groups:
            value, n_cache = losses.feature_norm_forward(h[g])
            dh[g] += losses.feature_norm_backward(term.weight, n_cache)
            values["norm"] += value

    if "neg" in dh:  # the gather's backward, added straight into the anchors' rows of dh_all
        gather_rows_backward(dh["neg"], gather_cache, out=dh["anchor"])

    if rest is not None and "anchor" not in trained_groups(terms):
        grads, _ = FAST.backward(dlogits_all[n:], dh_all[n:], rest[2], need_dx=False)
    else:
        grads, _ = FAST.backward(dlogits_all, dh_all, cache, need_dx=False)
    total = (values["ce"] + lambda_sens * values["triplet_sens"]
             + lambda_inv * values["triplet_inv"] + lambda_norm * values["norm"])
    values["total"] = float(total)
    # A free diagnostic: how many anchors the network (before this step) classifies correctly.
    values["clean_accuracy"] = float((logits_all[rows["anchor"]].argmax(axis=1) == y).mean())
    return float(total), grads, values
