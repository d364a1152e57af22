"""The CNN of tinyadv/cnn.py with faster convolutions: what training and evaluation in the lab
run (tinyadv/fast/network.py hands it to them).

Read tinyadv/cnn.py first: the same network, layer by layer. The differences, and why:

- Each convolution block (convolution -> PReLU -> 2 x 2 max pooling) is one call of
  fast/conv.py: im2col and one matrix product for the convolutions, Fourier transforms for the
  second convolution's backward, the pooling taken before the PReLU (the PReLU is increasing,
  so the same entry wins), and the activations kept as (H, W, N, C) between the two blocks
  -- the layout those products are fast in.
- ``stack_forwards``: training runs the anchors through the network for FGSM, and the
  objective then needs the forward of [x_a; x'; x'']. Instead of a second forward of the
  anchors, the stacked forward keeps the two parts' caches apart ("parts"); its backward
  (fast/network.py) runs each part's backward on its rows and adds the parameters'
  gradients -- the same sums, split in two (each weight gradient is a sum over rows).

tests/test_network.py holds forward and backward equal to tinyadv/cnn.py's in float64.
"""
import numpy as np

from ..cnn import IMAGE_SIDE, check_images, dense_forward
from ..cnn_layers import prelu_backward
from ..layers import linear_backward
from . import conv as fast_conv

__all__ = ["CONV_METHOD", "PREDICT_CHUNK", "forward", "backward", "stack_forwards"]

# Which convolution of fast/conv.py each block uses (data/results.md, "Speed", says how each
# was timed): im2col for conv1 (1 -> 32 channels, a 25-long patch); for conv2 (32 -> 64)
# im2col's forward and the Fourier transforms' backward. "fft" both ways would not keep the
# exact ties of blank patches that route the pooling's gradient (fast/conv.py).
CONV_METHOD = {"conv1": "im2col", "conv2": "im2col/fft"}
PREDICT_CHUNK = 1024  # rows per forward in predict and embed, as cnn.py


def forward(params, x):
    """``tinyadv.cnn.forward``: (logits (N, 10), h (N, 4), cache), with fast/conv.py's blocks."""
    check_images(x)
    n = x.shape[0]
    # (N, 784) -> (28, 28, N, 1): the (H, W, N, C) layout of fast/conv.py (one channel)
    out = np.ascontiguousarray(x.T).reshape(IMAGE_SIDE, IMAGE_SIDE, n, 1)
    conv_caches = []
    for name in ("conv1", "conv2"):
        # = cnn_layers.conv2d_forward -> prelu_forward -> maxpool2d_forward
        out, block_cache = fast_conv.conv_prelu_pool_forward(
            out, params[f"W_{name}"], params[f"b_{name}"], params[f"a_{name}"],
            conv=CONV_METHOD[name])  # (12, 12, N, 32), then (4, 4, N, 64)
        conv_caches.append(block_cache)
    out = out.transpose(2, 3, 0, 1).reshape(n, -1)  # (N, 1024): PyTorch's (C, H, W) order
    logits, h, cache = dense_forward(params, out)  # as cnn.py's
    return logits, h, {"conv": conv_caches, **cache, "rows": n}


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """``tinyadv.cnn.backward`` of a cache from ``forward`` above: (grads, dx (N, 784) or None).
    Work nobody asked for is skipped: the input gradient of the first block without
    ``need_dx``, every weight gradient without ``need_param_grads``."""
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
        # = cnn_layers.maxpool2d_backward -> prelu_backward -> conv2d_backward
        dout, dW, db, da = fast_conv.conv_prelu_pool_backward(
            dout, block_cache, need_dx=(need_dx or name == "conv2"), need_dW=need_param_grads)
        if need_param_grads:
            grads[f"W_{name}"], grads[f"b_{name}"], grads[f"a_{name}"] = dW, db, da
    if not need_dx:
        return grads, None
    return grads, np.ascontiguousarray(dout.reshape(IMAGE_SIDE * IMAGE_SIDE, n).T)  # (N, 784)


def stack_forwards(first, second, inputs=None):
    """The forward of the stacked batch [x_a; x_b] from the forwards of x_a and x_b.

    Parameters
    ----------
    first, second : (logits, h, cache) of ``forward(params, x_a)`` and ``forward(params, x_b)``
        (through fast/network.py), with the same params
    inputs : ignored (the MLP's version uses it to save a copy; accepted so that both
        networks' stack_forwards are called the same way)

    Returns
    -------
    (logits (N_a + N_b, 10), h (N_a + N_b, K), cache) -- a cache whose backward
    (fast/network.py) is the stacked batch's
    """
    (logits_a, h_a, cache_a), (logits_b, h_b, cache_b) = first, second
    cache = {"parts": (cache_a, cache_b), "rows": cache_a["rows"] + cache_b["rows"]}
    return np.concatenate([logits_a, logits_b]), np.concatenate([h_a, h_b]), cache
