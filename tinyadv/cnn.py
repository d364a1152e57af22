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
use either network unchanged (network.py picks the one the params belong to).

Each step is a layer of cnn_layers.py or layers.py, written to be read against its formula.
Training and evaluation in the lab run the same network with faster convolutions
(tinyadv/fast/cnn.py); a test holds the two equal.
"""
import numpy as np

from .cnn_layers import (conv2d_backward, conv2d_forward, maxpool2d_backward, maxpool2d_forward,
                         prelu_backward, prelu_forward)
from .layers import linear_backward, linear_forward
from .mlp import in_chunks
from .validate import check_array

__all__ = ["LAYERS", "PRELU_LAYERS", "IMAGE_SIDE", "PREDICT_CHUNK", "init_params", "num_classes",
           "embedding_width", "check_images", "forward", "dense_forward", "backward", "predict",
           "embed"]

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
PREDICT_CHUNK = 1024  # rows per forward in predict and embed: the CNN keeps more per row


def init_params(rng, dtype=np.float32):
    """Initial weights, as PyTorch initialises Conv2d, Linear and PReLU by default.

    Every weight and bias ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = C*k*k for a
    convolution and the input width for a linear layer (PyTorch's kaiming_uniform with
    a = sqrt(5) gives exactly this bound); every PReLU slope = 0.25. Drawn layer by layer,
    weight then bias, in the forward's order.

    Returns
    -------
    params : dict with W_conv1 (32, 1, 5, 5), b_conv1 (32,), a_conv1 (1,), W_conv2
        (64, 32, 5, 5), b_conv2, a_conv2, W_fc1 (1024, 256), b_fc1, a_fc1, W_fc2 (256, 256),
        b_fc2, a_fc2, W_emb (256, 4), b_emb, W_head (4, 10), b_head
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    params = {}
    for name, shape, fan_in in LAYERS:
        bound = 1.0 / np.sqrt(fan_in)
        fan_out = shape[0] if len(shape) == 4 else shape[1]
        params[f"W_{name}"] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        params[f"b_{name}"] = rng.uniform(-bound, bound, size=fan_out).astype(dtype)
        if name in PRELU_LAYERS:
            params[f"a_{name}"] = np.full(1, PRELU_INIT, dtype=dtype)
    return params


def num_classes(params):
    return params["b_head"].shape[0]


def embedding_width(params):
    """Width K of the embedding h (4 in the authors' network)."""
    return params["W_head"].shape[0]


def check_images(x):
    """A ValueError unless x is a float (N, 784) array of finite values."""
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
    check_images(x)
    n = x.shape[0]
    out = x.reshape(n, 1, IMAGE_SIDE, IMAGE_SIDE)  # (N, 1, 28, 28)
    conv_caches = []
    for name in ("conv1", "conv2"):
        out, conv_cache = conv2d_forward(out, params[f"W_{name}"], params[f"b_{name}"])
        out, prelu_cache = prelu_forward(out, params[f"a_{name}"])  # (N, 32, 24, 24), (N, 64, 8, 8)
        out, pool_cache = maxpool2d_forward(out)  # (N, 32, 12, 12), then (N, 64, 4, 4)
        conv_caches.append((conv_cache, prelu_cache, pool_cache))
    out = out.reshape(n, -1)  # (N, 1024): flattened in (C, H, W) order, as PyTorch does
    logits, h, cache = dense_forward(params, out)
    return logits, h, {"conv": conv_caches, **cache, "rows": n}


def dense_forward(params, out):
    """The layers after the convolutions: (N, 1024) -> fc1, fc2 (PReLU each) -> h -> logits.
    Returns (logits (N, 10), h (N, 4), their caches as ``forward``'s cache keeps them)."""
    fc_caches = []
    for name in ("fc1", "fc2"):
        out, linear_cache = linear_forward(out, params[f"W_{name}"], params[f"b_{name}"])
        out, prelu_cache = prelu_forward(out, params[f"a_{name}"])  # (N, 256)
        fc_caches.append((linear_cache, prelu_cache))
    h, emb_cache = linear_forward(out, params["W_emb"], params["b_emb"])  # (N, 4), signed
    logits, head_cache = linear_forward(h, params["W_head"], params["b_head"])  # (N, 10)
    return logits, h, {"fc": fc_caches, "emb": emb_cache, "head": head_cache}


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """Backpropagate through the CNN: the forward's steps undone in reverse order.

        head:    dW_head = h^T dlogits, db_head = sum_n dlogits;  dh <- dlogits W_head^T + dh
        emb:     dW_emb, db_emb from dh;  da = dh W_emb^T                        (N, 256)
        fc2, fc1: through each PReLU (its dx and the slope's da), then the linear layer
                                                                              -> (N, 1024)
        unflatten: (N, 1024) -> (N, 64, 4, 4), undoing the (C, H, W) flatten
        conv2, conv1: the pooling's routing, the PReLU, the convolution (dx, dW, db)
                                                                              -> (N, 784)

    Parameters
    ----------
    dlogits : (N, 10) or None
    dh : (N, 4) or None; added to what flows back from the head
    cache : from ``forward``
    need_dx : return the input gradient (FGSM, PGD); training does not need it
    need_param_grads : return the parameters' gradients (attacks do not need them)

    Returns
    -------
    grads : dict of the weights' gradients, keyed like params (empty if need_param_grads
        is False)
    dx : (N, 784) or None
    """
    if dlogits is None and dh is None:
        raise ValueError("dlogits, dh: at least one upstream gradient is needed, got two Nones")
    n = cache["rows"]
    grads = {}
    if dlogits is not None:
        dout, grads["W_head"], grads["b_head"] = linear_backward(dlogits, cache["head"])  # (N, 4)
        if dh is not None:
            dout = dout + dh
    else:  # the head received no gradient
        dout = dh
        W_head = cache["head"][1]
        grads["W_head"], grads["b_head"] = np.zeros_like(W_head), np.zeros_like(W_head[0])
    dout, grads["W_emb"], grads["b_emb"] = linear_backward(dout, cache["emb"])  # (N, 256)
    for name, (linear_cache, prelu_cache) in zip(("fc2", "fc1"), reversed(cache["fc"])):
        dout, grads[f"a_{name}"] = prelu_backward(dout, prelu_cache)
        dout, grads[f"W_{name}"], grads[f"b_{name}"] = linear_backward(dout, linear_cache)
    dout = dout.reshape(n, 64, 4, 4)  # undoing the flatten
    for name, (conv_cache, prelu_cache, pool_cache) in zip(("conv2", "conv1"),
                                                           reversed(cache["conv"])):
        dout = maxpool2d_backward(dout, pool_cache)
        dout, grads[f"a_{name}"] = prelu_backward(dout, prelu_cache)
        dout, grads[f"W_{name}"], grads[f"b_{name}"] = conv2d_backward(dout, conv_cache)
    dx = dout.reshape(n, IMAGE_SIDE * IMAGE_SIDE) if need_dx else None  # (N, 784)
    return (grads if need_param_grads else {}), dx


def predict(params, x, batch_size=PREDICT_CHUNK):
    """Predicted class of each row of x, in chunks (mlp.in_chunks with the CNN's forward)."""
    return in_chunks(forward, params, x, batch_size, "classes")


def embed(params, x, batch_size=PREDICT_CHUNK):
    """Embeddings h of each row of x, in chunks."""
    return in_chunks(forward, params, x, batch_size, "h", width=embedding_width(params))
