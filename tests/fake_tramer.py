"""A stand-in for tinyadv.lab.tramer.load_attack_set in the tests of the code that uses it
(experiments, reproduce): the same interface and array types, made in milliseconds. It is
not the attack -- tramer.py's own tests check that -- only something shaped like its output:
each image moved by up to 0.3 * 255 grey levels, aligned with MNIST, with a target label
that differs from the source label.

    install(monkeypatch)  makes ``from . import tramer`` in tinyadv/lab return this module
"""
import sys
import types

import numpy as np

from tinyadv import data

CALLS = []  # (variant, split, limit) of every call, for tests that check what was asked


def load_attack_set(variant, split, limit=None, cache_dir=None, log=print):
    if variant not in ("tramer", "authors"):
        raise ValueError(f"variant: expected 'tramer' or 'authors', got {variant!r}")
    CALLS.append((variant, split, limit))
    X, y = data.load_mnist(split)
    n = len(X) if limit is None else limit
    rng = np.random.default_rng({"tramer": 1, "authors": 2}[variant])
    step = rng.choice(np.float32([-76.5, 0, 76.5]), size=(n, X.shape[1]))
    x_inv = np.clip(X[:n] * np.float32(255) + step, 0, 255).astype(np.float32)
    y_target = ((y[:n] + 1 + rng.integers(0, 9, n)) % 10).astype(np.int64)
    return x_inv, y_target, y[:n].astype(np.int64)


def install(monkeypatch):
    """Make ``from . import tramer`` in tinyadv/lab (in this process) give this module."""
    import tinyadv.lab

    fake = types.ModuleType("tinyadv.lab.tramer")
    fake.load_attack_set = load_attack_set
    monkeypatch.setitem(sys.modules, "tinyadv.lab.tramer", fake)
    monkeypatch.setattr(tinyadv.lab, "tramer", fake, raising=False)
    return fake
