"""Small float64 networks for gradient checks, shared by test_mlp.py and test_objective.py."""
import numpy as np

from tinyadv import mlp


def float64_params(sizes, rng, embed_dim=0):
    """He weights in float64 and random non-zero biases (zero biases with an all-zero input
    row would put pre-activations exactly on the ReLU kink); ``embed_dim`` > 0 adds the
    linear embedding layer (W_emb, b_emb)."""
    params = mlp.init_params(sizes, rng, dtype=np.float64, init="he", embed_dim=embed_dim)
    for key in params:
        if key.startswith("b"):
            params[key] = rng.normal(0.0, 0.5, size=params[key].shape)
    return params


def min_abs_preactivation(params, x):
    """Smallest |pre-activation| over every hidden unit and row."""
    out, smallest = x, np.inf
    for k in range(1, mlp.num_layers(params)):
        z = out @ params[f"W{k}"] + params[f"b{k}"]
        smallest = min(smallest, float(np.min(np.abs(z))))
        out = np.maximum(z, 0)
    return smallest
