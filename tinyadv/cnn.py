"""The paper's authors' CNN (``EmbeddingNet`` in their backbone.py), with a hand-written backward.

    x (N, 784) -> image (N, 1, 28, 28)
      -> conv 5x5, 1 -> 32    (N, 32, 24, 24) -> PReLU -> 2x2 max pool   (N, 32, 12, 12)
      -> conv 5x5, 32 -> 64   (N, 64, 8, 8)   -> PReLU -> 2x2 max pool   (N, 64, 4, 4)
      -> flatten in PyTorch's (C, H, W) order                          (N, 1024)
      -> linear 1024 -> 256 -> PReLU -> linear 256 -> 256 -> PReLU        (N, 256)
      -> linear 256 -> 4 = h, the embedding (linear: signed)             (N, 4)
      -> linear 4 -> 10 = logits                                         (N, 10)

Every PReLU has its own single learned slope (PyTorch's ``nn.PReLU()``, 0.25 at the start).
About 4.07 M multiply-adds an image, 15 times the 784-256-256-10 MLP; almost all of them in
the second convolution.

It keeps mlp.py's contract -- ``forward(params, x) -> (logits, h, cache)`` on (N, 784) images,
``backward(dlogits, dh, cache) -> (grads, dx)`` -- so FGSM, PGD, the objective and training
use either network unchanged; and mlp.py's optional input normalisation, which the paper's
authors applied (``input_mean``, ``input_std`` in params, not trained).

Each step below is a function of layers.py, where it is written to be read against its
formula; the convolution blocks call the fast versions of tinyadv/fast/conv.py (the
comment on each line names the layers.py functions it replaces), which keep the activations
as (H, W, N, C) between the two convolutions -- the layout they are fast in.
"""
import numpy as np

from .fast import conv as fast_conv
from .layers import linear_backward, linear_forward, prelu_backward, prelu_forward
from .mlp import (INPUT_NORMS, NORM_KEYS, check_input_norm, has_input_norm, in_chunks,  # noqa: F401
                  input_norm_backward, input_norm_forward, trainable_keys, without_input_norm)
from .validate import check_array

__all__ = ["LAYERS", "PRELU_LAYERS", "CONV_METHOD", "init_params", "is_cnn", "num_classes",
           "embedding_width", "forward", "backward", "predict", "embed", "has_input_norm",
           "trainable_keys", "without_input_norm", "INPUT_NORMS"]

IMAGE_SIDE = 28  # MNIST: 28 x 28 pixels, one channel
# (name, weight shape, fan_in) of every layer with weights, in the order the forward uses
# them; fan_in = C*k*k for a convolution. Linear weights are stored (fan_in, fan_out), as
# in mlp.py (out = x @ W + b).
LAYERS = (
    ("conv1", (32, 1, 5, 5), 1 * 5 * 5),
    ("conv2", (64, 32, 5, 5), 32 * 5 * 5),
    ("fc1", (1024, 256), 1024),
    ("fc2", (256, 256), 256),
    ("emb", (256, 4), 256),
    ("head", (4, 10), 4),
)
PRELU_LAYERS = ("conv1", "conv2", "fc1", "fc2")  # the layers followed by a PReLU
PRELU_INIT = 0.25  # PyTorch's nn.PReLU() default
# Which convolution of tinyadv/fast/conv.py each block uses, chosen by timing them on this
# network: im2col for conv1 (1 -> 32 channels, a 25-long patch); for conv2 (32 -> 64) im2col's
# forward and the Fourier transforms' backward, 5 times fewer operations than im2col's two
# products and no col2im. Measured on the authors' full step (batch 128, one thread): 166 ms
# with "im2col/fft", 279 ms with "im2col"; "fft" both ways took 155 ms but does not keep the
# exact ties of blank patches that route the pooling's gradient (fast/conv.py).
CONV_METHOD = {"conv1": "im2col", "conv2": "im2col/fft"}


def init_params(rng, dtype=np.float32, input_norm=None):
    """Initial weights, as PyTorch initialises Conv2d, Linear and PReLU by default.

    Every weight and bias ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = C*k*k for a
    convolution and the input width for a linear layer (PyTorch's kaiming_uniform with
    a = sqrt(5) gives exactly this bound); every PReLU slope = 0.25. Drawn layer by layer,
    weight then bias, in the forward's order. ``input_norm = (mean, std)`` adds the
    normalisation constants as mlp.init_params does (and draws nothing).

    Returns
    -------
    params : dict with W_conv1 (32, 1, 5, 5), b_conv1 (32,), a_conv1 (1,), W_conv2
        (64, 32, 5, 5), b_conv2, a_conv2, W_fc1 (1024, 256), b_fc1, a_fc1, W_fc2 (256, 256),
        b_fc2, a_fc2, W_emb (256, 4), b_emb, W_head (4, 10), b_head; with an input
        normalisation, input_mean and input_std (0-d arrays)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    check_input_norm(input_norm)
    params = {}
    for name, shape, fan_in in LAYERS:
        bound = 1.0 / np.sqrt(fan_in)
        fan_out = shape[0] if len(shape) == 4 else shape[1]
        params[f"W_{name}"] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        params[f"b_{name}"] = rng.uniform(-bound, bound, size=fan_out).astype(dtype)
        if name in PRELU_LAYERS:
            params[f"a_{name}"] = np.full(1, PRELU_INIT, dtype=dtype)
    if input_norm is not None:
        params["input_mean"] = np.array(input_norm[0], dtype=dtype)
        params["input_std"] = np.array(input_norm[1], dtype=dtype)
    return params


def is_cnn(params):
    """Are these the parameters of this CNN (rather than of an MLP)?"""
    return isinstance(params, dict) and "W_conv1" in params


def num_classes(params):
    return params["b_head"].shape[0]


def embedding_width(params):
    """Width K of the embedding h (4 in the authors' network)."""
    return params["W_head"].shape[0]


def _check_images(x):
    check_array(x, "x", ndim=2)
    if x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
        raise ValueError(f"x: the CNN reads {IMAGE_SIDE} x {IMAGE_SIDE} images, shape "
                         f"(N, {IMAGE_SIDE * IMAGE_SIDE}); got shape {x.shape}")


def forward(params, x):
    """Run the CNN on a batch of images.

    Parameters
    ----------
    params : dict from init_params
    x : (N, 784) images, row-major 28 x 28 (MNIST's layout)

    Returns
    -------
    logits : (N, 10)
    h : (N, 4) the embedding
    cache : dict of per-layer caches for ``backward``
    """
    _check_images(x)
    n = x.shape[0]
    out, norm_cache = x, None
    if has_input_norm(params):
        out, norm_cache = input_norm_forward(x, params["input_mean"], params["input_std"])
    # (N, 784) -> (28, 28, N, 1): the (H, W, N, C) layout of fast/conv.py (one channel)
    out = np.ascontiguousarray(out.T).reshape(IMAGE_SIDE, IMAGE_SIDE, n, 1)
    conv_caches = []
    for name in ("conv1", "conv2"):
        # = layers.conv2d_forward -> layers.prelu_forward -> layers.maxpool2d_forward
        out, block_cache = fast_conv.conv_prelu_pool_forward(
            out, params[f"W_{name}"], params[f"b_{name}"], params[f"a_{name}"],
            conv=CONV_METHOD[name])  # (12, 12, N, 32), then (4, 4, N, 64)
        conv_caches.append(block_cache)
    out = out.transpose(2, 3, 0, 1).reshape(n, -1)  # (N, 1024): PyTorch's (C, H, W) order
    fc_caches = []
    for name in ("fc1", "fc2"):
        out, linear_cache = linear_forward(out, params[f"W_{name}"], params[f"b_{name}"])
        out, prelu_cache = prelu_forward(out, params[f"a_{name}"])  # (N, 256)
        fc_caches.append((linear_cache, prelu_cache))
    h, emb_cache = linear_forward(out, params["W_emb"], params["b_emb"])  # (N, 4), signed
    logits, head_cache = linear_forward(h, params["W_head"], params["b_head"])  # (N, 10)
    return logits, h, {"norm": norm_cache, "conv": conv_caches, "fc": fc_caches,
                       "emb": emb_cache, "head": head_cache, "rows": n}


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """Backpropagate through the CNN: the forward's steps undone in reverse order.

        head:    dW_head = h^T dlogits, db_head = sum_n dlogits;  dh <- dlogits W_head^T + dh
        emb:     dW_emb, db_emb from dh;  da = dh W_emb^T                        (N, 256)
        fc2, fc1: through each PReLU (prelu_backward: dx and the slope's da), then
                 the linear layer (linear_backward)                          -> (N, 1024)
        unflatten: (N, 1024) -> (4, 4, N, 64), undoing the (C, H, W) flatten
        conv2, conv1: maxpool's routing, the PReLU, the convolution (dW, db, the slope;
                 dx of conv1 only when need_dx) -> (28, 28, N, 1) -> (N, 784)
        with an input normalisation, dx = da_0 / std

    Parameters
    ----------
    dlogits : (N, 10) or None
    dh : (N, 4) or None; added to what flows back from the head
    cache : from ``forward``
    need_dx : compute the input gradient (FGSM, PGD); training does not need it
    need_param_grads : compute the parameters' gradients (attacks do not need them)

    Returns
    -------
    grads : dict shaped like params, without the normalisation constants (empty if
        need_param_grads is False)
    dx : (N, 784) or None
    """
    if dlogits is None and dh is None:
        raise ValueError("dlogits, dh: at least one upstream gradient is needed, got two Nones")
    n = cache["rows"]
    grads = {}
    if dlogits is not None:
        dout, dW, db = linear_backward(dlogits, cache["head"], need_dW=need_param_grads)  # (N, 4)
        if need_param_grads:
            grads["W_head"], grads["b_head"] = dW, db
        if dh is not None:
            dout += dh  # in place: dout is a fresh product
    else:
        dout = dh
        if need_param_grads:  # the head received no gradient
            W_head = cache["head"][1]
            grads["W_head"] = np.zeros_like(W_head)
            grads["b_head"] = np.zeros(W_head.shape[1], dtype=W_head.dtype)
    dout, dW, db = linear_backward(dout, cache["emb"], need_dW=need_param_grads)  # (N, 256)
    if need_param_grads:
        grads["W_emb"], grads["b_emb"] = dW, db
    for name, (linear_cache, prelu_cache) in zip(("fc2", "fc1"), reversed(cache["fc"])):
        dout, da = prelu_backward(dout, prelu_cache)
        dout, dW, db = linear_backward(dout, linear_cache, need_dW=need_param_grads)
        if need_param_grads:
            grads[f"W_{name}"], grads[f"b_{name}"], grads[f"a_{name}"] = dW, db, da
    dout = dout.reshape(n, 64, 4, 4).transpose(2, 3, 0, 1)  # (4, 4, N, 64), undoing the flatten
    for name, block_cache in zip(("conv2", "conv1"), reversed(cache["conv"])):
        # = layers.maxpool2d_backward -> prelu_backward -> conv2d_backward
        dout, dW, db, da = fast_conv.conv_prelu_pool_backward(
            dout, block_cache, need_dx=(need_dx or name == "conv2"), need_dW=need_param_grads)
        if need_param_grads:
            grads[f"W_{name}"], grads[f"b_{name}"], grads[f"a_{name}"] = dW, db, da
    if not need_dx:
        return grads, None
    dx = np.ascontiguousarray(dout.reshape(IMAGE_SIDE * IMAGE_SIDE, n).T)  # (N, 784)
    if cache["norm"] is not None:
        dx = input_norm_backward(dx, cache["norm"])  # back to pixel units
    return grads, dx


def predict(params, x, batch_size=1024):
    """Predicted class of each row of x, in chunks (mlp.in_chunks with the CNN's forward)."""
    return in_chunks(forward, params, x, batch_size, "classes")


def embed(params, x, batch_size=1024):
    """Embeddings h of each row of x, in chunks."""
    return in_chunks(forward, params, x, batch_size, "h", width=embedding_width(params))
