"""Sensitivity attacks: FGSM and PGD, both l-infinity, both batched.

A *sensitivity* example (paper Def. 1) is an image moved a little -- at most eps per pixel --
in the direction that hurts the model most, while its true label stays the same:

    FGSM (Goodfellow et al. 2015), one step:
        x' = clip( x + eps * sign(grad_x CE(f(x), y)), 0, 1 )

    PGD (Madry et al. 2018), a random start in the eps-ball and ``steps`` smaller steps,
    each followed by a projection back into the ball and into [0, 1]:
        x_0     = clip( x + U(-eps, eps), 0, 1 )
        x_{t+1} = clip( clip( x_t + alpha * sign(grad_x CE(f(x_t), y)), x - eps, x + eps ), 0, 1 )

Only the *sign* of the input gradient is used, so its scale does not matter; we backpropagate
the *sum* of the per-image losses (not the batch mean) so that each image's gradient is the
same whatever batch it is computed in. The weights' gradients are never formed
(``need_param_grads=False``): an attack needs d loss / d x only.

Large inputs are processed ``chunk_size`` rows at a time so memory stays small. Chunking
changes nothing but rounding: BLAS sums a row's products in an order that depends on the
matrix shape, so in float32 a pixel whose gradient is at rounding level (~1e-7 of the row's
largest) may get the other sign; in float64 the results are identical for every chunk size.
Float32 in, float32 out; the input is never modified.

``net`` is the network that runs the images: network.py's (the default), or another with the
same forward/backward (the lab hands in tinyadv/fast/network.py's, whose CNN is faster).
"""
import numpy as np

from . import losses, network
from .validate import check_eps, check_images, check_labels

__all__ = ["input_gradient_sign", "fgsm", "pgd", "default_pgd_step_size", "CHUNK_SIZE",
           "CNN_CHUNK_SIZE", "CRAFT_FROM"]

CHUNK_SIZE = 4096  # rows per forward/backward: ~4096 x 784 float32 = 12 MB of images
# The CNN keeps far more per row for its backward (im2col's patch matrix: 205 KB an image).
CNN_CHUNK_SIZE = 512

CRAFT_FROM = ("true", "predicted")


def input_gradient_sign(params, x, y=None, net=network):
    """sign(grad_x sum_i CE(f(x_i), y_i)) for one batch: one forward and one backward.

    Parameters
    ----------
    params : the network's parameters (mlp.init_params or cnn.init_params)
    x : (N, D) images
    y : (N,) labels the loss is computed against; None = the model's own predictions
    net : the network that runs x (module docstring)

    Returns
    -------
    (N, D) array of -1, 0, +1 in x's dtype (0 where the gradient is exactly zero)
    """
    logits, _, cache = net.forward(params, x)  # (N, C)
    if y is None:
        y = logits.argmax(axis=1)
    _, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
    # dloss = N undoes the batch mean: each row gets exactly softmax - onehot, as if alone.
    dlogits = losses.softmax_cross_entropy_backward(float(len(x)), ce_cache)  # (N, C)
    _, dx = net.backward(dlogits, None, cache, need_dx=True, need_param_grads=False)  # (N, D)
    return np.sign(dx).astype(x.dtype, copy=False)


def _chunks(n, chunk_size):
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def _default_chunk_size(params, chunk_size):
    if chunk_size is None:
        return CNN_CHUNK_SIZE if network.arch(params) == "cnn" else CHUNK_SIZE
    return chunk_size


def _check_chunk_size(chunk_size):
    if (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _check_params(params):
    return network.input_dim(params)  # a TypeError for anything but a network's params


def fgsm(params, x, y, eps, craft_from="true", chunk_size=None, net=network):
    """Fast Gradient Sign Method: x' = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1).

    Parameters
    ----------
    params : the network's parameters (an MLP's or the CNN's)
    x : (N, D) float images in [0, 1] (float32 for speed; float64 works too)
    y : (N,) int true labels (may be None when craft_from="predicted")
    eps : l-inf budget >= 0, in pixel units (0.1 = 25.5 grey levels of 255)
    craft_from : "true" -- attack the true labels y (the standard FGSM);
        "predicted" -- attack the model's own predictions argmax f(x). Training on FGSM
        images made from true labels can "leak" the label into the perturbation (Kurakin
        et al. 2017), and the model then scores *better* on them than on clean images;
        crafting from predictions removes that shortcut. Where the prediction is right,
        both give the same image.
    chunk_size : rows per forward/backward pass; None: CHUNK_SIZE for an MLP,
        CNN_CHUNK_SIZE for the CNN
    net : the network that runs x (module docstring)

    Returns
    -------
    x_adv : (N, D), same dtype as x, ||x_adv - x||_inf <= eps, every pixel in [0, 1]
    """
    dim = _check_params(params)
    check_images(x, "x", dim=dim)
    if craft_from not in CRAFT_FROM:
        raise ValueError(f"craft_from: expected one of {CRAFT_FROM}, got {craft_from!r}")
    if y is not None or craft_from == "true":
        check_labels(y, "y", n=len(x), num_classes=network.num_classes(params))
    eps = check_eps(eps)
    chunk_size = _check_chunk_size(_default_chunk_size(params, chunk_size))

    step = x.dtype.type(eps)
    x_adv = np.empty_like(x)
    for start, stop in _chunks(len(x), chunk_size):
        xb = x[start:stop]  # (B, D), a view: never written to
        yb = None if craft_from == "predicted" else y[start:stop]
        direction = input_gradient_sign(params, xb, yb, net)  # (B, D)
        np.clip(xb + step * direction, 0.0, 1.0, out=x_adv[start:stop])
    return x_adv


def pgd(params, x, y, eps, steps, step_size, rng, chunk_size=None, net=network):
    """Projected Gradient Descent (ascent on the loss) in the l-inf ball, with a random start.

    Each iteration takes a signed step of size ``step_size`` (alpha), then projects back
    into {x' : ||x' - x||_inf <= eps} and into [0, 1]. A common choice (Madry et al.) is
    alpha = 2.5 * eps / steps: enough to cross the ball and still refine near its edge.

    Parameters
    ----------
    params : the network's parameters (an MLP's or the CNN's)
    x : (N, D) float images in [0, 1]
    y : (N,) int true labels
    eps : l-inf budget >= 0
    steps : number of gradient steps, an integer >= 0 (0 = the random start only)
    step_size : alpha >= 0
    rng : np.random.Generator for the random start. The whole (N, D) start is drawn at once,
        before chunking, so the result does not depend on chunk_size.
    chunk_size : rows processed together; None: as in ``fgsm``
    net : the network that runs x (module docstring)

    Returns
    -------
    x_adv : (N, D), same dtype as x
    """
    dim = _check_params(params)
    check_images(x, "x", dim=dim)
    check_labels(y, "y", n=len(x), num_classes=network.num_classes(params))
    eps = check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps: expected an integer >= 0, got {steps!r}")
    step_size = check_eps(step_size, "step_size")  # 0 is allowed: PGD is then its random start
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    chunk_size = _check_chunk_size(_default_chunk_size(params, chunk_size))

    dtype = x.dtype.type
    noise = rng.uniform(-eps, eps, size=x.shape).astype(x.dtype)  # (N, D), all drawn up front
    x_adv = np.empty_like(x)
    for start, stop in _chunks(len(x), chunk_size):
        xb, yb = x[start:stop], y[start:stop]
        low = np.maximum(xb - dtype(eps), 0)  # (B, D) the ball intersected with [0, 1]
        high = np.minimum(xb + dtype(eps), 1)
        xt = x_adv[start:stop]  # (B, D), a view: the iterate lives in the output
        np.clip(xb + noise[start:stop], low, high, out=xt)
        for _ in range(steps):
            step = input_gradient_sign(params, xt, yb, net)  # (B, D) of -1, 0, +1
            step *= dtype(step_size)
            xt += step
            np.maximum(xt, low, out=xt)  # project: back into the ball and into [0, 1]
            np.minimum(xt, high, out=xt)
    return x_adv


def default_pgd_step_size(eps, steps):
    """alpha = 2.5 * eps / steps (Madry et al. 2018); 0 when there are no steps."""
    return 2.5 * check_eps(eps) / steps if steps > 0 else 0.0
