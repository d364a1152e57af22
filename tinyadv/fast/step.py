"""The training step the lab runs: tinyadv.train.train_step with less work.

Read ``train_step`` in tinyadv/train.py first: FGSM, Eq. 2, one optimiser step. This one
computes the same numbers (tests/test_train.py holds the two equal in float64, every
configuration); what it does differently, and why:

- The anchors go through the network once (fast/network.py's, the CNN with faster
  convolutions): FGSM needs their forward for the input gradient, and the objective needs it
  for Eq. 2, so ``fgsm_sharing_forward`` and ``fast_objective`` (fast/objective.py) share it.
- ``fast_objective`` skips the rest of the work a step would do twice (its docstring).

``train.train(..., step=fast_train_step)`` runs it.
"""
import numpy as np

from .. import losses, objective
from .network import FAST
from .objective import fast_objective

__all__ = ["fast_train_step", "fgsm_sharing_forward"]


def fgsm_sharing_forward(params, x, y, eps, anchor_forward):
    """``attacks.fgsm(params, x, y, eps)`` from the anchors' forward ``FAST.forward(params, x)``:
    x' = clip(x + eps * sign(grad_x sum_i CE(f(x_i), y_i)), 0, 1), the same arithmetic as
    attacks.input_gradient_sign without its own forward."""
    logits, _, cache = anchor_forward
    _, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
    dlogits = losses.softmax_cross_entropy_backward(float(len(x)), ce_cache)  # (N, C)
    _, dx = FAST.backward(dlogits, None, cache, need_dx=True, need_param_grads=False)
    direction = np.sign(dx).astype(x.dtype, copy=False)  # (N, D) of -1, 0, +1
    return np.clip(x + x.dtype.type(eps) * direction, 0.0, 1.0)


def fast_train_step(params, opt, config, batch, rng):
    """``train.train_step``: one optimiser step of paper Eq. 2 on a Batch; returns the dict
    of loss terms."""
    anchors = FAST.forward(params, batch.x)  # (logits (N, C), h (N, K), cache): shared below
    x_adv = None
    if config.adversarial:
        x_adv = fgsm_sharing_forward(params, batch.x, batch.y, config.fgsm_eps, anchors)
    neg_index = "hardest" if config.negatives == "hardest" else objective.random_negatives(
        batch.y, rng)
    _, grads, terms = fast_objective(
        params, batch.x, batch.y, x_adv=x_adv, x_inv=batch.x_inv, x_inv_neg=batch.x_inv_neg,
        neg_index=neg_index, lambda_sens=config.lambda_sens if x_adv is not None else 0.0,
        lambda_inv=config.lambda_inv, lambda_norm=config.lambda_norm, margin=config.margin,
        ce_on=config.ce_on, anchor_forward=anchors)
    opt.step(params, grads)
    return terms
