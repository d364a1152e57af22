"""Speed for the MLP: reuse a forward pass that a training step has already made."""
import numpy as np

__all__ = ["stack_forwards"]


def stack_forwards(first, second, inputs=None):
    """The forward of the stacked batch [x_a; x_b], assembled from the forwards of x_a and x_b.

    Replaces a second ``tinyadv.mlp.forward`` of x_a when its forward exists already.

    Row r of every product ``x @ W`` depends only on row r of x, so the forward of a stacked
    batch is the stacked forwards, row for row. (Bit for bit with OpenBLAS for the training
    shapes; a BLAS may round a product of a single row, a matrix-vector product, differently
    from the same row inside a larger product.) Training uses this to push the
    anchors through the network once: FGSM needs their forward, and so does the objective's
    concatenated pass (paper Eq. 2) -- saving one forward of N rows per step (69 of the full
    step's 611 MFLOP). The backward then sees one cache, as if ``forward`` had run on the
    stacked batch, and computes each weight gradient with one product over all the rows.

    Parameters
    ----------
    first, second : (logits, h, cache) of ``forward(params, x_a)`` and ``forward(params, x_b)``
        (through network.py), with the same params
    inputs : (N_a + N_b, D) the stacked inputs [x_a; x_b] if the caller has them already
        (saves one copy), or None to stack them here

    Returns
    -------
    (logits (N_a + N_b, C), h (N_a + N_b, K), cache), as from ``forward``
    """
    (logits_a, h_a, cache_a), (logits_b, h_b, cache_b) = first, second
    # Walk the layers in order. Each layer's input is the previous layer's output, so every
    # array is stacked once: a ReLU's stacked output serves as its cache and as the next
    # layer's input, as in ``forward``.
    # The stacked images [x_a; x_b] are layer 1's input -- unless the network normalises
    # them first (network.py): layer 1 then saw (x - mean) / std, stacked from the caches below.
    normalised = cache_a.get("input_std") is not None
    layer_input = None if normalised else inputs
    hidden = []
    for ((x_a, W), relu_a), ((x_b, _), relu_b) in zip(cache_a["hidden"], cache_b["hidden"]):
        if layer_input is None:  # only layer 1's input can still be missing
            layer_input = np.concatenate([x_a, x_b])
        out = np.concatenate([relu_a, relu_b])  # (N_a + N_b, width_k)
        hidden.append(((layer_input, W), out))
        layer_input = out
    embed = None
    if cache_a["embed"] is not None:  # the linear embedding layer reads the last ReLU layer
        embed = (layer_input, cache_a["embed"][1])
        layer_input = np.concatenate([h_a, h_b])  # its output h
    h = layer_input  # (N_a + N_b, K): the head's input
    cache = {"hidden": hidden, "embed": embed, "head": (h, cache_a["head"][1])}
    if normalised:
        cache["input_std"] = cache_a["input_std"]
    return np.concatenate([logits_a, logits_b]), h, cache
