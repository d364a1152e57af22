"""A multi-layer perceptron f = head o body, with a hand-written backward.

    x -> [linear -> relu] * (L-1) -> h  (the "embedding": penultimate activations)
    h -> linear -> logits

``backward`` takes two upstream gradients: ``dlogits`` (from the cross-entropy) and ``dh``
(from the triplet and norm terms, which act on the embedding directly) and returns the
gradient of every parameter and of the input -- the latter is what FGSM needs.
"""
import numpy as np

from .layers import linear_backward, linear_forward, relu_backward, relu_forward


def init_params(sizes, rng, dtype=np.float32):
    """He-initialised weights for an MLP with layer widths ``sizes``, e.g. [784, 256, 256, 10].

    W_k ~ N(0, 2 / fan_in) keeps the activation scale roughly constant through ReLU layers;
    biases start at zero.

    Returns
    -------
    params : dict with W1 (sizes[0], sizes[1]), b1 (sizes[1],), W2, b2, ...
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    sizes = list(sizes)
    if len(sizes) < 3 or any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"sizes: expected at least three positive integers (input, hidden..., "
                         f"classes), got {sizes}")
    params = {}
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{k}"] = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(dtype)
        params[f"b{k}"] = np.zeros(fan_out, dtype=dtype)
    return params


def num_layers(params):
    """How many linear layers ``params`` holds."""
    return len(params) // 2


def forward(params, x):
    """Run the MLP on a batch.

    Parameters
    ----------
    params : dict from init_params
    x : (N, D) inputs

    Returns
    -------
    logits : (N, C)
    h : (N, K) penultimate activations (the embedding)
    cache : list of per-layer caches for ``backward``
    """
    cache = []
    out = x
    n_layers = num_layers(params)
    for k in range(1, n_layers):
        out, linear_cache = linear_forward(out, params[f"W{k}"], params[f"b{k}"])  # (N, width_k)
        out, relu_cache = relu_forward(out)
        cache.append((linear_cache, relu_cache))
    h = out  # (N, K)
    logits, head_cache = linear_forward(h, params[f"W{n_layers}"], params[f"b{n_layers}"])  # (N, C)
    cache.append(head_cache)
    return logits, h, cache


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """Backpropagate through the MLP.

    Parameters
    ----------
    dlogits : (N, C) gradient of the loss w.r.t. the logits, or None
    dh : (N, K) gradient w.r.t. the embedding h from losses that act on it directly, or None
        (it is *added* to what flows back from the head)
    cache : from ``forward``
    need_dx : compute the input gradient (FGSM needs it; training does not)
    need_param_grads : compute weight gradients (FGSM does not need them)

    Returns
    -------
    grads : dict shaped like params (empty if need_param_grads is False)
    dx : (N, D) gradient w.r.t. the input, or None
    """
    if dlogits is None and dh is None:
        raise ValueError("dlogits, dh: at least one upstream gradient is needed, got two Nones")
    grads = {}
    n_layers = len(cache)
    head_cache = cache[-1]
    if dlogits is not None:
        dout, dW, db = linear_backward(dlogits, head_cache, need_dW=need_param_grads)  # (N, K)
        if need_param_grads:
            grads[f"W{n_layers}"], grads[f"b{n_layers}"] = dW, db
        if dh is not None:
            dout += dh  # in place: dout is a fresh array from the product above
    else:
        dout = dh
        if need_param_grads:  # the head received no gradient
            x_head, W_head = head_cache
            grads[f"W{n_layers}"] = np.zeros_like(W_head)
            grads[f"b{n_layers}"] = np.zeros(W_head.shape[1], dtype=W_head.dtype)
    for k in range(n_layers - 1, 0, -1):
        linear_cache, relu_cache = cache[k - 1]
        dout = relu_backward(dout, relu_cache)
        first_layer = k == 1
        dout, dW, db = linear_backward(dout, linear_cache,
                                       need_dx=(need_dx or not first_layer),
                                       need_dW=need_param_grads)
        if need_param_grads:
            grads[f"W{k}"], grads[f"b{k}"] = dW, db
    return grads, dout


def predict(params, x, batch_size=4096):
    """Predicted class of each row of x, in chunks so memory stays small."""
    preds = [forward(params, x[i:i + batch_size])[0].argmax(axis=1)
             for i in range(0, len(x), batch_size)]
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def embed(params, x, batch_size=4096):
    """Embeddings h of each row of x, in chunks."""
    hs = [forward(params, x[i:i + batch_size])[1] for i in range(0, len(x), batch_size)]
    return np.concatenate(hs) if hs else np.zeros((0, params["W1"].shape[1]), dtype=x.dtype)
