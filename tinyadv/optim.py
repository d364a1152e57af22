"""Hand-written optimisers that update a params dict in place.

Both keep their state (velocities, moments) in dicts shaped like the params, so a student
can print and inspect them.
"""
import math

import numpy as np

__all__ = ["SGD", "Adam", "make_optimizer"]


class SGD:
    """SGD with (heavy-ball) momentum: v <- mu v - lr g;  w <- w + v."""

    def __init__(self, params, lr=0.01, momentum=0.9):
        if not 0 < lr < np.inf:  # also rejects NaN, which every comparison fails
            raise ValueError(f"lr: expected a positive finite learning rate, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
        self.lr, self.momentum = lr, momentum
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        for k, g in grads.items():
            v = self.velocity[k]
            v *= self.momentum
            v -= self.lr * g
            params[k] += v


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, in their "eps-hat" form.

        m <- b1 m + (1 - b1) g          first moment (mean of gradients)
        v <- b2 v + (1 - b2) g^2        second moment (mean of squared gradients)
        w <- w - lr_t * m / (sqrt(v) + eps),   lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)

    With m_hat = m / (1 - b1^t) and v_hat = v / (1 - b2^t) this is
    w <- w - lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)): the textbook update, except
    that eps is added to sqrt(v), not to sqrt(v_hat) (the end of Kingma & Ba's Section 2
    gives this ordering). The two differ only where sqrt(v_hat) is not large against
    eps / sqrt(1 - b2^t), which is at most 3.2e-7 (at t = 1) and falls towards eps.
    """

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if not 0 < lr < np.inf:  # also rejects NaN, which every comparison fails
            raise ValueError(f"lr: expected a positive finite learning rate, got {lr}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        # Both bias corrections folded into one step size (fewer array passes); eps is added
        # to sqrt(v), as the class docstring says.
        # math.sqrt, not np.sqrt: np.sqrt returns a float64 *array scalar*, and NumPy would then
        # silently do the whole update below in float64 and convert back (twice the work).
        step_size = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * np.square(g)
            # w -= step_size * m / (sqrt(v) + eps), written in place: one scratch array
            # instead of four temporaries the size of w.
            update = np.sqrt(v)
            update += self.eps
            np.divide(m, update, out=update)
            update *= step_size
            params[k] -= update


def make_optimizer(name, params, lr):
    """'adam' or 'sgd' (momentum 0.9)."""
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr)
    raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {name!r}")
