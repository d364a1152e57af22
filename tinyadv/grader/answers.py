"""The reference answer of an exercise whose piece the library does not use itself.

Every other exercise's backward is a function of the library (layers.py, losses.py,
cnn_layers.py). Exercise 07 asks for FGSM's input gradient written out for a two-layer MLP;
the library computes that direction for any network through network.forward/backward
(attacks.input_gradient_sign), so the two-layer pair the checker judges against lives here.
"""
from .. import layers, losses

__all__ = ["fgsm_loss_forward", "fgsm_loss_backward"]


def fgsm_loss_forward(x, W1, b1, W2, b2, y):
    """The loss FGSM climbs, for a two-layer MLP, one layer at a time.

    .. math:: L(x) = \\frac{1}{N} \\sum_i \\mathrm{CE}(\\mathrm{relu}(x_i W_1 + b_1) W_2 + b_2, y_i)

    FGSM (paper Def. 1) steps along sign(grad_x L); ``fgsm_loss_backward`` is that gradient.
    ``attacks.input_gradient_sign`` finds the same direction for an MLP of any depth, or the
    CNN, through network.forward/backward; this pair spells the two-layer case out.

    Parameters
    ----------
    x : (N, D) images
    W1 : (D, H), b1 : (H,) the hidden layer
    W2 : (H, C), b2 : (C,) the head
    y : (N,) int labels in 0..C-1

    Returns
    -------
    loss : float, the batch mean
    cache : for the backward
    """
    z, linear1 = layers.linear_forward(x, W1, b1)  # (N, H) pre-activations
    a, relu_cache = layers.relu_forward(z)  # (N, H)
    logits, linear2 = layers.linear_forward(a, W2, b2)  # (N, C)
    loss, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
    return loss, (linear1, relu_cache, linear2, ce_cache)


def fgsm_loss_backward(dloss, cache):
    """grad_x of the mean cross-entropy through both layers (no weight gradients).

    Each line undoes one line of the forward, from the loss down:

        dlogits = dloss * (softmax(logits) - onehot(y)) / N      (N, C)
        da      = dlogits @ W2.T                                 (N, H)
        dz      = da * [z > 0]                                   (N, H)
        dx      = dz @ W1.T                                      (N, D)

    Returns
    -------
    dx : (N, D)
    """
    linear1, relu_cache, linear2, ce_cache = cache
    dlogits = losses.softmax_cross_entropy_backward(dloss, ce_cache)  # (N, C)
    da, _, _ = layers.linear_backward(dlogits, linear2, need_dW=False)  # (N, H)
    dz = layers.relu_backward(da, relu_cache)  # (N, H)
    dx, _, _ = layers.linear_backward(dz, linear1, need_dW=False)  # (N, D)
    return dx
