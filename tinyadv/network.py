"""Which network: the MLP (mlp.py) or the paper's authors' CNN (cnn.py), picked in one place.

Both keep one contract -- ``forward(params, x) -> (logits, h, cache)`` on (N, 784) images in
[0, 1] and ``backward(dlogits, dh, cache, need_dx, need_param_grads) -> (grads, dx)`` -- so
the objective, the attacks, training and evaluation call the functions below and never ask
which network they hold: each function hands the call to the module the params (or the
cache) belong to. ``TrainConfig.arch`` names the network a training run builds.
"""
import numpy as np

from . import cnn, mlp

__all__ = ["ARCHS", "arch", "module", "init_params", "forward", "backward", "predict", "embed",
           "num_classes", "embedding_width", "input_dim", "without_input_norm"]

ARCHS = ("mlp", "cnn")
MODULES = {"mlp": mlp, "cnn": cnn}


def arch(params):
    """"cnn" for the CNN's parameters (they hold W_conv1), "mlp" for an MLP's (W1)."""
    if isinstance(params, dict) and "W_conv1" in params:
        return "cnn"
    if isinstance(params, dict) and "W1" in params:
        return "mlp"
    raise TypeError(f"params: expected the dict of an MLP (W1, b1, ...) or of the CNN "
                    f"(W_conv1, ...), got {type(params).__name__}"
                    + (f" with keys {sorted(params)[:6]}" if isinstance(params, dict) else ""))


def module(params):
    """The module (mlp or cnn) whose functions run these parameters."""
    return MODULES[arch(params)]


def init_params(config, rng, dtype=np.float32):
    """Initial parameters of the network a TrainConfig names (``config.arch``).

    "mlp": mlp.init_params with the config's sizes, init and embed_dim; "cnn": the authors'
    network, PyTorch's initialisation (cnn.init_params). Either with the config's input
    normalisation."""
    input_norm = mlp.INPUT_NORMS[config.input_norm]
    if config.arch == "cnn":
        return cnn.init_params(rng, dtype=dtype, input_norm=input_norm)
    return mlp.init_params(config.sizes, rng, dtype=dtype, init=config.init,
                           embed_dim=config.embed_dim, input_norm=input_norm)


def forward(params, x):
    return module(params).forward(params, x)


def backward(dlogits, dh, cache, need_dx=True, need_param_grads=True):
    """The backward of whichever network made ``cache`` (the CNN's caches hold "conv").

    A cache of a stacked batch that keeps its parts apart ("parts", from
    fast/cnn.py's stack_forwards) is the parts' backwards: each part's rows of dlogits and dh
    go through the backward of its own cache, the parameters' gradients are added (each is a
    sum over rows) and the input gradients stacked."""
    if "parts" in cache:
        return _backward_of_parts(dlogits, dh, cache, need_dx, need_param_grads)
    net = cnn if "conv" in cache else mlp
    return net.backward(dlogits, dh, cache, need_dx=need_dx, need_param_grads=need_param_grads)


def _backward_of_parts(dlogits, dh, cache, need_dx, need_param_grads):
    grads, dxs, start = {}, [], 0
    for part in cache["parts"]:
        rows = slice(start, start + part["rows"])
        start = rows.stop
        part_grads, dx = backward(None if dlogits is None else dlogits[rows],
                                  None if dh is None else dh[rows], part, need_dx,
                                  need_param_grads)
        for key, grad in part_grads.items():
            if key in grads:
                grads[key] = grads[key] + grad
            else:
                grads[key] = grad
        dxs.append(dx)
    return grads, (np.concatenate(dxs) if need_dx else None)


def predict(params, x):
    return module(params).predict(params, x)


def embed(params, x):
    return module(params).embed(params, x)


def num_classes(params):
    return module(params).num_classes(params)


def embedding_width(params):
    return module(params).embedding_width(params)


def input_dim(params):
    """Pixels an input row must have: the MLP's first layer's width, the CNN's 28 x 28."""
    if arch(params) == "cnn":
        return cnn.IMAGE_SIDE * cnn.IMAGE_SIDE
    return params["W1"].shape[0]


def without_input_norm(params):
    """The same network without its input normalisation (mlp.without_input_norm)."""
    return mlp.without_input_norm(params)
