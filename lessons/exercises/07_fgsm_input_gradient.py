# Exercise 07 -- FGSM's input gradient: grad_x of the cross-entropy through a two-layer MLP.
# Check it: python 07_fgsm_input_gradient.py  (here, or from any folder with its path)
"""Write ``fgsm_loss_backward``; the forward is given.

FGSM (the paper's sensitivity attack, Def. 1) moves every pixel of an image by eps in the
direction that increases the loss the most: x' = clip(x + eps * sign(grad_x L), 0, 1). This
exercise computes grad_x L for a small network: a hidden ReLU layer and a linear head. It
chains exercises 01 and 02, backwards, but asks for the gradient of the *input* -- the
weights stay fixed.
"""

if __name__ == "__main__":  # `python 07_fgsm_input_gradient.py`, from any folder, checks this file
    # Here, before the imports: run from this folder, Python would not find tinyadv yet.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
    sys.exit(subprocess.call([sys.executable, "-m", "tinyadv.gradcheck", sys.argv[0]], env=env))

import numpy as np


def fgsm_loss_forward(x, W1, b1, W2, b2, y):
    """Mean cross-entropy of a two-layer MLP on a batch of images.

    .. math:: z = x W_1 + b_1, \\quad a = \\max(0, z), \\quad s = a W_2 + b_2, \\quad
              L = \\frac{1}{N} \\sum_i -\\log \\mathrm{softmax}(s_i)_{y_i}

    Parameters
    ----------
    x : (N, D) images, one row per image
    W1 : (D, H), b1 : (H,) the hidden layer
    W2 : (H, C), b2 : (C,) the head
    y : (N,) integer labels in 0..C-1

    Returns
    -------
    loss : float
    cache : (x, W1, z, W2, probs, y)
    """
    z = x @ W1 + b1  # (N, H) pre-activations
    a = np.maximum(z, 0.0)  # (N, H)
    scores = a @ W2 + b2  # (N, C)
    shifted = scores - scores.max(axis=1, keepdims=True)  # no overflow in exp()
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # (N, C)
    n = x.shape[0]
    loss = -np.log(probs[np.arange(n), y]).mean()
    return float(loss), (x, W1, z, W2, probs, y)


def fgsm_loss_backward(dloss, cache):
    """Gradient of the mean cross-entropy with respect to the images x.

    Parameters
    ----------
    dloss : float, the gradient arriving from above
    cache : (x, W1, z, W2, probs, y) from fgsm_loss_forward

    Returns
    -------
    dx : (N, D), the shape of x

    How to derive it: undo the forward one line at a time, from the loss down, keeping each
    gradient the shape of the thing it belongs to:

    1. dscores (N, C): the mean cross-entropy's gradient, exactly as in your exercise 02
       (this cache holds probs and y too).
    2. da (N, H): scores = a @ W2 + b2 is exercise 01's linear layer, seen from its input.
    3. dz (N, H): a = max(0, z) is exercise 01's ReLU. (The checker keeps every z at least
       0.1 away from 0.)
    4. dx (N, D): z = x @ W1 + b1, seen from x again.

    FGSM then only needs np.sign(dx).
    """
    x, W1, z, W2, probs, y = cache
    raise NotImplementedError("exercise 07: write dx")
