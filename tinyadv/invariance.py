"""Invariance attacks: a simple label-flipping generator.

An *invariance* example (paper Def. 2) is an image x* within eps (l-inf) of x whose *true*
label is different, yet which the model still calls y: the model is too invariant. Making
one needs an image of another class nearby. Tramer et al. 2020 (``data/README.md``) search
the training set for such images under small rotations and shifts, and then ask humans.
tinyadv's generator keeps the core of their idea and nothing else:

1. For every image x of class y and every other class k, find the nearest reference image
   of class k in squared Euclidean distance,

       n_k(x) = argmin_{r : label(r) = k} ||x - r||_2^2,

   optionally also over a small grid of pixel shifts of the references (``shifts``).
2. Target rule: t = the class whose nearest neighbour is closest, t = argmin_k ||x - n_k(x)||.
   (Tramer et al. choose among hand-picked plausible classes the one needing the least ink;
   the nearest class is the simplest rule that does not need a person.)
3. Move every pixel at most eps towards that neighbour and stay in [0, 1]:

       x* = clip( x + clip(n_t(x) - x, -eps, eps), 0, 1 ),   assumed oracle label O(x*) = t.

Since n_t(x) and x are both in [0, 1], x* lies pixel by pixel between x and n_t(x).
y_flip = t is always != y; the source label y stays the caller's. Whether a person would
really read x* as a t is exactly what the human-labelled sets of Tramer et al. measure.

``nearest_by_class`` below is that search as defined -- every squared distance, then each
class's minimum -- in float64. For all of MNIST (70,000 images against the 60,000 training
images, 3e12 operations) training uses tinyadv/fast/nearest.py, the same search arranged to
run in well under a minute, exact too (the tests hold the two equal), whose results the
reproduction caches once per clone.
"""
if __name__ == "__main__":  # python -m tinyadv.invariance: the paper's own attack's command
    import runpy

    runpy.run_module("tinyadv.lab.tramer", run_name="__main__", alter_sys=True)
    raise SystemExit(0)

from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

from .validate import NUM_CLASSES, check_eps, check_images, check_labels  # noqa: E402

__all__ = ["Neighbours", "shift_grid", "shift_images", "check_shifts", "check_search_arguments",
           "nearest_by_class", "move_towards", "flip_from_neighbours", "label_flip"]

SIDE = 28  # MNIST images are 28 x 28
MAX_SHIFTS = 3  # a (2*3+1)^2 = 49-shift search is already 49 times the work of none


class Neighbours(NamedTuple):
    """The nearest reference image of every class, for each query image.

    index : (N, C) int64 row of the reference set, -1 for the query's own class (and for a
        class absent from the reference set)
    shift : (N, C) int64 row of ``shift_grid(shifts)`` applied to that reference image
    dist2 : (N, C) float32 squared Euclidean distance to it; inf where index is -1
    """

    index: np.ndarray
    shift: np.ndarray
    dist2: np.ndarray


def shift_grid(shifts):
    """All (dy, dx) with |dy|, |dx| <= shifts, no shift first (so ties prefer no shift).

    Returns
    -------
    (S, 2) int64 array, S = (2 * shifts + 1)^2
    """
    r = range(-shifts, shifts + 1)
    grid = sorted(((dy, dx) for dy in r for dx in r), key=lambda d: (abs(d[0]) + abs(d[1]), d))
    return np.array(grid, dtype=np.int64).reshape(-1, 2)


def shift_images(x, dy, dx):
    """Translate (N, 784) images by dy pixels down and dx pixels right, filling with zeros."""
    img = x.reshape(-1, SIDE, SIDE)  # (N, 28, 28)
    out = np.zeros_like(img)
    dst_r, src_r = slice(max(dy, 0), SIDE + min(dy, 0)), slice(max(-dy, 0), SIDE + min(-dy, 0))
    dst_c, src_c = slice(max(dx, 0), SIDE + min(dx, 0)), slice(max(-dx, 0), SIDE + min(-dx, 0))
    out[:, dst_r, dst_c] = img[:, src_r, src_c]
    return out.reshape(x.shape)


def check_shifts(shifts):
    """``shifts`` as an int, or a ValueError unless it is an integer in 0..MAX_SHIFTS."""
    if (isinstance(shifts, bool) or not isinstance(shifts, (int, np.integer))
            or not 0 <= shifts <= MAX_SHIFTS):
        raise ValueError(f"shifts: expected an integer in 0..{MAX_SHIFTS}, got {shifts!r}")
    return int(shifts)


def check_search_arguments(x, y, ref_x, ref_y, shifts, exclude_self, num_classes=NUM_CLASSES):
    """Check a neighbour search's arguments (clear errors for bad input); return ``shifts``."""
    check_images(x, "x")
    check_images(ref_x, "ref_x")
    check_labels(y, "y", n=len(x), num_classes=num_classes)
    check_labels(ref_y, "ref_y", n=len(ref_x), num_classes=num_classes)
    shifts = check_shifts(shifts)
    if exclude_self and not (x.shape == ref_x.shape and np.array_equal(x, ref_x)):
        raise ValueError(f"exclude_self: means x is the reference set itself, but x {x.shape} "
                         f"differs from ref_x {ref_x.shape}")
    return shifts


def nearest_by_class(x, y, ref_x, ref_y, shifts=0, exclude_self=False, num_classes=NUM_CLASSES):
    """For each image, its nearest reference image of every other class.

    Every squared distance ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b between the queries and
    one class's references, in float64, then the class's minimum; for each shift of the
    references in turn. Ties go to the smaller shift, then the lower reference index.
    Memory: an (N, M_k) array for the M_k references of one class.

    Parameters
    ----------
    x : (N, 784) float images in [0, 1] (the queries), y : (N,) their labels
    ref_x : (M, 784) reference images, ref_y : (M,) their labels
    shifts : also search the references translated by up to this many pixels in each
        direction, zero-filled: (2 * shifts + 1)^2 times the work
    exclude_self : x *is* the reference set (row i of x is reference i); reference i is then
        never the neighbour of query i. Checked: x must equal ref_x.

    Returns
    -------
    Neighbours(index, shift, dist2), each (N, num_classes); dist2 in float64
    """
    shifts = check_search_arguments(x, y, ref_x, ref_y, shifts, exclude_self, num_classes)
    n = len(x)
    rows = np.arange(n)
    a = x.astype(np.float64)  # (N, D)
    index = np.full((n, num_classes), -1, dtype=np.int64)
    shift = np.zeros((n, num_classes), dtype=np.int64)
    dist2 = np.full((n, num_classes), np.inf)
    for s, (dy, dx) in enumerate(shift_grid(shifts)):
        b = shift_images(ref_x, int(dy), int(dx)).astype(np.float64)  # (M, D)
        for k in range(num_classes):
            members = np.flatnonzero(ref_y == k)  # the references of class k
            if len(members) == 0:
                continue
            bk = b[members]  # (M_k, D)
            d = (a * a).sum(1)[:, None] + (bk * bk).sum(1)[None, :] - 2 * a @ bk.T  # (N, M_k)
            d = np.maximum(d, 0.0)  # the expansion can round a distance of 0 to just below it
            if exclude_self:
                d[rows[:, None] == members[None, :]] = np.inf  # query i is reference i
            nearest = d.argmin(axis=1)  # (N,) the first of the closest
            better = d[rows, nearest] < dist2[:, k]  # strict: the smaller shift wins ties
            index[better, k] = members[nearest[better]]
            shift[better, k] = s
            dist2[better, k] = d[rows, nearest][better]
    index[rows, y], shift[rows, y], dist2[rows, y] = -1, 0, np.inf  # never the own class
    return Neighbours(index, shift, dist2)


def move_towards(x, target, eps):
    """x + clip(target - x, -eps, eps), clipped to [0, 1]: each pixel moves at most eps."""
    eps = x.dtype.type(check_eps(eps))
    return np.clip(x + np.clip(target - x, -eps, eps), 0.0, 1.0)


def flip_from_neighbours(x, y, ref_x, neighbours, eps, shifts=0):
    """Apply the target rule and the eps-step to precomputed neighbours (cheap: no search).

    Returns
    -------
    x_inv : (N, 784) float32, y_flip : (N,) int64 (the class with the nearest neighbour)
    """
    check_eps(eps)
    if not np.all(np.isfinite(neighbours.dist2.min(axis=1))):
        raise ValueError("ref_y: some image has no reference image of any other class")
    y_flip = neighbours.dist2.argmin(axis=1).astype(np.int64)  # own class is inf: never chosen
    rows = np.arange(len(y))
    chosen, chosen_shift = neighbours.index[rows, y_flip], neighbours.shift[rows, y_flip]
    target = np.empty_like(x, dtype=np.float32)
    for s, (dy, dx) in enumerate(shift_grid(shifts)):  # a loop over <= 49 shifts, not samples
        sel = np.flatnonzero(chosen_shift == s)
        if len(sel):
            target[sel] = shift_images(ref_x[chosen[sel]], int(dy), int(dx))
    return move_towards(x.astype(np.float32, copy=False), target, eps), y_flip


def label_flip(x, y, ref_x, ref_y, eps, shifts=0, exclude_self=False):
    """Label-flipping invariance examples (module docstring): nearest other-class neighbour,
    then every pixel moves at most eps towards it.

    Parameters
    ----------
    x : (N, 784) images in [0, 1], y : (N,) their (source) labels
    ref_x, ref_y : the reference set to take neighbours from (usually the training set)
    eps : l-inf budget >= 0
    shifts, exclude_self : see nearest_by_class

    Returns
    -------
    x_inv : (N, 784) float32 with ||x_inv - x||_inf <= eps, in [0, 1]
    y_flip : (N,) int64, the assumed oracle label, always != y
    """
    check_eps(eps)
    neighbours = nearest_by_class(x, y, ref_x, ref_y, shifts=shifts, exclude_self=exclude_self)
    return flip_from_neighbours(x, y, ref_x, neighbours, eps, shifts)
