"""A multi-layer perceptron f = head o body, with a hand-written backward.

    x -> [linear -> relu] * (L-1) -> h  (the "embedding": penultimate activations)
    h -> linear -> logits

or, with a linear embedding layer (``embed_dim = k > 0``, the paper's authors used k = 4),

    x -> [linear -> relu] * (L-1) -> linear (k units, no ReLU) = h  (signed)
    h -> linear -> logits

``backward`` takes two upstream gradients: ``dlogits`` (from the cross-entropy) and ``dh``
(from the triplet and norm terms, which act on the embedding directly) and returns the
gradient of every parameter and of the input -- the latter is what FGSM needs.
"""
import numpy as np

from .layers import linear_backward, linear_forward, relu_backward, relu_forward

__all__ = ["init_params", "forward", "backward", "predict", "embed", "in_chunks", "num_layers",
           "num_classes", "embedding_width", "has_embedding_layer", "INITS", "PREDICT_CHUNK"]


INITS = ("uniform", "he")
EMBED_KEYS = ("W_emb", "b_emb")  # the optional linear embedding layer's parameters
PREDICT_CHUNK = 4096  # rows per forward in predict and embed: ~4096 x 784 float32 = 12 MB


def init_params(sizes, rng, dtype=np.float32, init="uniform", embed_dim=0):
    """Initial weights for an MLP with layer widths ``sizes``, e.g. [784, 256, 256, 10].

    Two initialisations, because the choice decides whether FGSM adversarial training
    overfits catastrophically (lesson 08):

    - ``"uniform"`` (the default, as in TrainConfig): W_k and b_k ~ U(-1/sqrt(fan_in),
      +1/sqrt(fan_in)) -- PyTorch's ``nn.Linear`` default, which the paper's authors used.
      Its weights have variance 1 / (3 fan_in), a sixth of He's: the network starts closer
      to linear and smaller.
    - ``"he"`` (He et al. 2015): W_k ~ N(0, 2 / fan_in), biases 0. Keeps the activation scale
      roughly constant through ReLU layers; with FGSM training on clean + FGSM images it
      overfits catastrophically here (lesson 08).

    ``embed_dim = k > 0`` inserts a *linear* k-unit layer (no ReLU), W_emb (sizes[-2], k) and
    b_emb (k,), between the last hidden layer and the head, which then reads k inputs. The
    embedding h is that layer's output and can be negative: the authors' 4-d embedding.
    ``embed_dim = 0``: h is the last hidden ReLU layer (every entry >= 0).

    Returns
    -------
    params : dict with W1 (sizes[0], sizes[1]), b1 (sizes[1],), W2, b2, ..., and, with an
        embedding layer, W_emb, b_emb before the head's W_L (k, sizes[-1]), b_L
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    sizes = list(sizes)
    if len(sizes) < 3 or any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"sizes: expected at least three positive integers (input, hidden..., "
                         f"classes), got {sizes}")
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    if isinstance(embed_dim, bool) or int(embed_dim) != embed_dim or embed_dim < 0:
        raise ValueError(f"embed_dim: expected an integer >= 0, got {embed_dim!r}")
    shapes = [(f"{k}", fan_in, fan_out)
              for k, (fan_in, fan_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1)]
    if embed_dim:
        shapes.append(("_emb", sizes[-2], int(embed_dim)))
    shapes.append((f"{len(sizes) - 1}", int(embed_dim) or sizes[-2], sizes[-1]))  # the head
    params = {}
    for suffix, fan_in, fan_out in shapes:
        if init == "he":
            W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / np.sqrt(fan_in)
            W = rng.uniform(-bound, bound, size=(fan_in, fan_out))
            b = rng.uniform(-bound, bound, size=fan_out)
        params[f"W{suffix}"], params[f"b{suffix}"] = W.astype(dtype), b.astype(dtype)
    return params


def num_layers(params):
    """How many numbered linear layers (W1, W2, ...) ``params`` holds; the last is the head."""
    return sum(1 for key in params if key[0] == "W" and key[1:].isdigit())


def has_embedding_layer(params):
    """Does ``params`` hold the optional linear embedding layer (W_emb, b_emb)?"""
    return EMBED_KEYS[0] in params


def num_classes(params):
    return params[f"b{num_layers(params)}"].shape[0]


def embedding_width(params):
    """Width K of the embedding h."""
    return params[f"W{num_layers(params)}"].shape[0]


def forward(params, x):
    """Run the MLP on a batch.

        x -> [linear -> relu] * (L-1) -> (linear embedding layer, if any) = h
          -> linear -> logits

    Parameters
    ----------
    params : dict from init_params
    x : (N, D) inputs

    Returns
    -------
    logits : (N, C)
    h : (N, K) the embedding: the last hidden ReLU layer, or the linear embedding layer
    cache : dict of per-layer caches for ``backward``
    """
    hidden = []
    out = x
    n_layers = num_layers(params)
    for k in range(1, n_layers):
        out, linear_cache = linear_forward(out, params[f"W{k}"], params[f"b{k}"])  # (N, width_k)
        out, relu_cache = relu_forward(out)
        hidden.append((linear_cache, relu_cache))
    embed_cache = None
    if has_embedding_layer(params):
        out, embed_cache = linear_forward(out, params["W_emb"], params["b_emb"])  # (N, K) signed
    h = out  # (N, K)
    logits, head_cache = linear_forward(h, params[f"W{n_layers}"], params[f"b{n_layers}"])  # (N, C)
    return logits, h, {"hidden": hidden, "embed": embed_cache, "head": head_cache}


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """Backpropagate through the MLP.

    The forward was a_0 = x; z_k = a_{k-1} W_k + b_k, a_k = relu(z_k) for the hidden layers
    k = 1..L-1; h = a_{L-1} (embed_dim 0) or h = a_{L-1} W_emb + b_emb (signed, no ReLU);
    logits = h W_L + b_L. Walking back, with dX meaning dLoss/dX:

        dW_L = h^T dlogits,  db_L = sum_n dlogits     (K, C), (C,)
        dh  <- dlogits W_L^T + dh                     (N, K): the head's share plus the
                                                      losses that act on h directly
        if there is an embedding layer:
        dW_emb = a_{L-1}^T dh, db_emb = sum_n dh      (H, K), (K,)
        da_{L-1} = dh W_emb^T                          (N, H): linear, so no mask
        (otherwise da_{L-1} = dh)
        for k = L-1 .. 1:
        dz_k = da_k * [z_k > 0]                       (N, H_k): ReLU passes gradient where on
        dW_k = a_{k-1}^T dz_k, db_k = sum_n dz_k      (H_{k-1}, H_k), (H_k,)
        da_{k-1} = dz_k W_k^T                          (N, H_{k-1}); at k = 1 this is dx

    Parameters
    ----------
    dlogits : (N, C) or None, the gradient w.r.t. the logits; dh : (N, K) or None, the gradient
    w.r.t. h from the losses that act on it directly (*added* to what flows back from the
    head); cache : from ``forward``; need_dx : compute dx (FGSM needs it, training does not);
    need_param_grads : compute the weights' gradients (FGSM does not need them)

    Returns
    -------
    grads : dict of the weights' gradients, keyed like params ({} without need_param_grads)
    dx : (N, D) gradient w.r.t. the input, or None
    """
    if dlogits is None and dh is None:
        raise ValueError("dlogits, dh: at least one upstream gradient is needed, got two Nones")
    grads = {}
    hidden = cache["hidden"]
    head = len(hidden) + 1  # the head is layer L = number of hidden layers + 1
    if dlogits is not None:
        dout, dW, db = linear_backward(dlogits, cache["head"], need_dW=need_param_grads)  # (N, K)
        if need_param_grads:
            grads[f"W{head}"], grads[f"b{head}"] = dW, db
        if dh is not None:
            dout += dh  # in place: dout is a fresh array from the product above
    else:
        dout = dh
        if need_param_grads:  # the head received no gradient
            W_head = cache["head"][1]
            grads[f"W{head}"], grads[f"b{head}"] = np.zeros_like(W_head), np.zeros_like(W_head[0])
    if cache["embed"] is not None:  # undo h = out @ W_emb + b_emb: no ReLU to undo here
        dout, dW, db = linear_backward(dout, cache["embed"], need_dW=need_param_grads)
        if need_param_grads:
            grads["W_emb"], grads["b_emb"] = dW, db
    for k in range(len(hidden), 0, -1):
        linear_cache, relu_cache = hidden[k - 1]
        dout = relu_backward(dout, relu_cache)
        dout, dW, db = linear_backward(dout, linear_cache, need_dx=need_dx or k > 1,
                                       need_dW=need_param_grads)  # dx of layer 1 is the input's
        if need_param_grads:
            grads[f"W{k}"], grads[f"b{k}"] = dW, db
    return grads, dout


def in_chunks(net_forward, params, x, batch_size, what, width=None):
    """Run ``net_forward`` on ``batch_size`` rows of x at a time, so memory stays small, and
    join the answers: what="classes", each row's predicted class; what="h", its embedding
    (``width`` columns, needed only to shape the answer for an empty x). network.py runs
    every network's predict and embed through it."""
    pieces = []
    for start in range(0, len(x), batch_size):
        logits, h, _ = net_forward(params, x[start:start + batch_size])
        pieces.append(logits.argmax(axis=1) if what == "classes" else h)
    if pieces:
        return np.concatenate(pieces)
    return np.zeros(0, dtype=np.int64) if what == "classes" else np.zeros((0, width), x.dtype)


def predict(params, x, batch_size=PREDICT_CHUNK):
    """Predicted class of each row of x, in chunks so memory stays small."""
    return in_chunks(forward, params, x, batch_size, "classes")


def embed(params, x, batch_size=PREDICT_CHUNK):
    """Embeddings h of each row of x, in chunks."""
    return in_chunks(forward, params, x, batch_size, "h", width=embedding_width(params))
