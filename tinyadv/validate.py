"""Input validation shared by every public function.

Bad input must fail loudly with a message that names the argument, what was expected and
what came -- never produce a quietly wrong number. Each helper returns the (possibly
converted) array so callers can write ``x = check_images(x, "x")``.
"""
import numpy as np

__all__ = ["check_array", "check_images", "check_labels", "check_eps", "NUM_CLASSES"]

NUM_CLASSES = 10


def check_array(a, name, ndim=None, dtype_kind="f"):
    """Check that ``a`` is a finite NumPy array of the right rank and dtype kind.

    dtype_kind: "f" floating, "i" integer (signed or unsigned), None anything numeric.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    if dtype_kind == "f" and a.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating dtype, got {a.dtype}")
    if dtype_kind == "i" and a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer dtype, got {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf ({int(np.sum(~np.isfinite(a)))} entries)")
    return a


def check_images(x, name="x", dim=784):
    """Images: float array (N, dim) with every pixel in [0, 1]."""
    check_array(x, name, ndim=2)
    if x.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (N, {dim}), got {x.shape}")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(f"{name}: pixels must lie in [0, 1], got range [{x.min():g}, {x.max():g}]")
    return x


def check_labels(y, name="y", n=None, num_classes=NUM_CLASSES):
    """Labels: integer array (N,) with values in 0..num_classes-1 (and length n if given)."""
    check_array(y, name, ndim=1, dtype_kind="i")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels to match the images, got {y.shape[0]}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name}: labels must lie in 0..{num_classes - 1}, "
                         f"got range [{y.min()}, {y.max()}]")
    return y


def check_eps(eps, name="eps"):
    """A perturbation budget: a finite real number >= 0."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(eps).__name__}")
    eps = float(eps)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {eps}")
    return eps
