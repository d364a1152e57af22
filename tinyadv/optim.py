"""Hand-written optimisers that update a params dict in place.

Both keep their state (velocities, moments) in dicts shaped like the params, so a student
can print and inspect them.
"""
import numpy as np


class SGD:
    """SGD with (heavy-ball) momentum: v <- mu v - lr g;  w <- w + v."""

    def __init__(self, params, lr=0.01, momentum=0.9):
        if lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr}")
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
    """Adam (Kingma & Ba 2015) with bias correction.

        m <- b1 m + (1 - b1) g          first moment (mean of gradients)
        v <- b2 v + (1 - b2) g^2        second moment (mean of squared gradients)
        w <- w - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    """

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {lr}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        # Fold both bias corrections into one step size (same result, fewer array passes).
        step_size = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            params[k] -= (step_size * m / (np.sqrt(v) + self.eps)).astype(params[k].dtype, copy=False)


def make_optimizer(name, params, lr):
    """'adam' or 'sgd' (momentum 0.9)."""
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr)
    raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {name!r}")
