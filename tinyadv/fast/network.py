"""The network as training and evaluation in the lab run it: network.py's, with the CNN of
fast/cnn.py, and the forward of a stacked batch built from two forwards.

Read tinyadv/network.py first. ``FAST`` runs the same networks (the MLP of mlp.py, the CNN
with fast/cnn.py's convolutions) and adds what a training step that reuses a forward needs:

- ``stack_forwards(params, first, second, inputs)``: the forward of [x_a; x_b] from the
  forwards of x_a and x_b (fast/mlp.py, fast/cnn.py);
- a backward that reads the CNN's stacked cache ("parts"): each part's backward on its own
  rows, the parameters' gradients added, the input gradients stacked.

The lab hands ``FAST`` to the attacks and to evaluation as their ``net``.
"""
import numpy as np

from .. import mlp
from ..network import Network, arch
from . import cnn as fast_cnn
from .cnn import stack_forwards as cnn_stack_forwards
from .mlp import stack_forwards as mlp_stack_forwards

__all__ = ["FastNetwork", "FAST"]


class FastNetwork(Network):
    """A Network (network.py) that also stacks forwards and reads stacked caches."""

    STACK_FORWARDS = {"mlp": mlp_stack_forwards, "cnn": cnn_stack_forwards}

    def stack_forwards(self, params, first, second, inputs=None):
        """(logits, h, cache) of the stacked batch [x_a; x_b] from the forwards of x_a and
        x_b; ``inputs`` the stacked images if the caller has them (the MLP saves a copy)."""
        return self.STACK_FORWARDS[arch(params)](first, second, inputs=inputs)

    def backward(self, dlogits, dh, cache, need_dx=True, need_param_grads=True):
        if "parts" not in cache:
            return super().backward(dlogits, dh, cache, need_dx, need_param_grads)
        grads, dxs, start = {}, [], 0
        for part in cache["parts"]:
            rows = slice(start, start + part["rows"])
            start = rows.stop
            part_grads, dx = self.backward(None if dlogits is None else dlogits[rows],
                                           None if dh is None else dh[rows], part, need_dx,
                                           need_param_grads)
            for key, grad in part_grads.items():
                grads[key] = grads[key] + grad if key in grads else grad
            dxs.append(dx)
        return grads, (np.concatenate(dxs) if need_dx else None)


FAST = FastNetwork({"mlp": mlp, "cnn": fast_cnn})
