"""Which network runs a batch: the MLP (mlp.py) or the paper's authors' CNN (cnn.py), and the
optional input normalisation in front of either.

Both networks keep one contract -- ``forward(params, x) -> (logits, h, cache)`` on (N, 784)
images in [0, 1], ``backward(dlogits, dh, cache, need_dx, need_param_grads) -> (grads, dx)``
-- so the objective, the attacks, training and evaluation call the functions below and never
ask which network they hold: the params say (``arch``). ``TrainConfig.arch`` names the network
a training run builds.

**Input normalisation.** A network may carry the constants of z = (x - mean) / std as
``input_mean`` and ``input_std`` (0-d arrays in params, not trained; the paper's authors
normalised MNIST with torchvision's mean 0.1307 and std 0.3081). Its first operation is then
that normalisation, so images -- and every attack on them -- stay in pixel units [0, 1] while
the first layer sees normalised values; on the way back dx = dz / std. mlp.py and cnn.py never
see it: it is applied here, in front of either.

A ``Network`` holds the module that runs each architecture. ``network.forward`` and the other
functions below are those of ``READABLE`` (mlp.py and cnn.py); tinyadv/fast/network.py makes
a Network whose CNN runs faster convolutions, which the lab hands to the attacks and to
evaluation as their ``net``.
"""
import numpy as np

from . import cnn, mlp

__all__ = ["ARCHS", "INPUT_NORMS", "NORM_KEYS", "Network", "READABLE", "arch", "init_params",
           "forward", "backward", "predict", "embed", "num_classes", "embedding_width",
           "input_dim", "has_input_norm", "with_input_norm", "without_input_norm",
           "trainable_keys"]

ARCHS = ("mlp", "cnn")
# Named input normalisations, (mean, std) in pixel units. "authors": torchvision's
# Normalize((0.1307,), (0.3081,)) that the paper's authors applied to every clean image, the
# mean and std of MNIST's training pixels.
INPUT_NORMS = {"none": None, "authors": (0.1307, 0.3081)}
NORM_KEYS = ("input_mean", "input_std")  # the normalisation's constants in params


def arch(params):
    """"cnn" for the CNN's parameters (they hold W_conv1), "mlp" for an MLP's (W1)."""
    if isinstance(params, dict) and "W_conv1" in params:
        return "cnn"
    if isinstance(params, dict) and "W1" in params:
        return "mlp"
    raise TypeError(f"params: expected the dict of an MLP (W1, b1, ...) or of the CNN "
                    f"(W_conv1, ...), got {type(params).__name__}"
                    + (f" with keys {sorted(params)[:6]}" if isinstance(params, dict) else ""))


def init_params(config, rng, dtype=np.float32):
    """Initial parameters of the network a TrainConfig names: ``config.arch`` "mlp"
    (mlp.init_params with the config's sizes, init and embed_dim) or "cnn" (the authors'
    network, PyTorch's initialisation), with the constants of ``config.input_norm``, if any
    (they draw nothing from ``rng``: the weights are the same with or without them)."""
    if config.arch == "cnn":
        params = cnn.init_params(rng, dtype=dtype)
    else:
        params = mlp.init_params(config.sizes, rng, dtype=dtype, init=config.init,
                                 embed_dim=config.embed_dim)
    if INPUT_NORMS[config.input_norm] is not None:
        params = with_input_norm(params, *INPUT_NORMS[config.input_norm])
    return params


def with_input_norm(params, mean, std):
    """The network ``params`` with an input normalisation (x - mean) / std in front: a new
    dict holding the same arrays and the two constants, in params' dtype."""
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"mean, std: expected finite numbers with std > 0, got {mean!r}, {std!r}")
    dtype = params[next(iter(params))].dtype
    return {**params, "input_mean": np.array(mean, dtype=dtype),
            "input_std": np.array(std, dtype=dtype)}


def has_input_norm(params):
    """Does ``params`` normalise its inputs first (input_mean, input_std)?"""
    return NORM_KEYS[1] in params


def without_input_norm(params):
    """The same network with its input normalisation removed: inputs go straight into the
    first layer. (The paper's authors fed their invariance images this way; see evaluate.py.)
    The arrays are shared with ``params``, not copied."""
    return {key: value for key, value in params.items() if key not in NORM_KEYS}


def trainable_keys(params):
    """The keys of ``params`` that training updates (all but the normalisation constants)."""
    return [key for key in params if key not in NORM_KEYS]


class Network:
    """Runs a batch through whichever network the params belong to.

    ``modules`` maps each architecture ("mlp", "cnn") to a module with the contract above and
    a ``PREDICT_CHUNK`` (rows per forward in predict and embed). The input normalisation, if
    the params carry one, is applied here, before the module's forward; its std is kept in
    the cache, and the backward divides dx by it.
    """

    def __init__(self, modules):
        self.modules = dict(modules)

    def module(self, params):
        """The module that runs these params."""
        return self.modules[arch(params)]

    def forward(self, params, x):
        """(logits (N, C), h (N, K), cache) of the network on x (N, 784)."""
        if not has_input_norm(params):
            return self.module(params).forward(params, x)
        std = params["input_std"]
        logits, h, cache = self.module(params).forward(params, (x - params["input_mean"]) / std)
        cache["input_std"] = std  # for the backward: dx = dz / std
        return logits, h, cache

    def backward(self, dlogits, dh, cache, need_dx=True, need_param_grads=True):
        """(grads, dx) of the network that made ``cache`` (the CNN's caches hold "conv")."""
        module = self.modules["cnn" if "conv" in cache else "mlp"]
        grads, dx = module.backward(dlogits, dh, cache, need_dx=need_dx,
                                    need_param_grads=need_param_grads)
        if dx is not None and cache.get("input_std") is not None:
            dx = dx / cache["input_std"]  # back to pixel units
        return grads, dx

    def predict(self, params, x):
        """Predicted class of each row of x, a chunk of rows at a time."""
        return mlp.in_chunks(self.forward, params, x, self.module(params).PREDICT_CHUNK,
                             "classes")

    def embed(self, params, x):
        """Embeddings h of each row of x, a chunk of rows at a time."""
        return mlp.in_chunks(self.forward, params, x, self.module(params).PREDICT_CHUNK, "h",
                             width=embedding_width(params))


READABLE = Network({"mlp": mlp, "cnn": cnn})
forward, backward = READABLE.forward, READABLE.backward
predict, embed = READABLE.predict, READABLE.embed


def num_classes(params):
    return mlp.num_classes(params) if arch(params) == "mlp" else cnn.num_classes(params)


def embedding_width(params):
    """Width K of the embedding h."""
    return mlp.embedding_width(params) if arch(params) == "mlp" else cnn.embedding_width(params)


def input_dim(params):
    """Pixels an input row must have: the MLP's first layer's width, the CNN's 28 x 28."""
    if arch(params) == "cnn":
        return cnn.IMAGE_SIDE * cnn.IMAGE_SIDE
    return params["W1"].shape[0]
