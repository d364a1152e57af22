"""Speed for invariance.py: the nearest other-class neighbour search, for all of MNIST.

``nearest_by_class`` here replaces ``tinyadv.invariance.nearest_by_class`` (read that one
first: every squared distance, then each class's minimum) where the sets are large: the
reproduction searches all 60,000 training and 10,000 test images against the 60,000 training
images once per clone. The tests hold the two equal.

How it is made fast (all exact, float32 BLAS):

- ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, so one matrix product compares a chunk of
  queries with a block of references. We fold the norms into the product by appending two
  columns, u = [a, -||a||^2/2, 1] and v = [b, 1, -||b||^2/2], so that u.v = -||a - b||^2 / 2
  and the nearest neighbour is an argmax over one GEMM output, with no extra pass.
- The references are grouped by class, so "nearest of class k" is an argmax over one
  contiguous block of columns, and the query's own class is never searched at all.
- Pixels that are zero in every query or every reference add nothing to a.b and are dropped.
- When the queries *are* the reference set (the training set against itself), the distance
  is symmetric: one product of class blocks c and k answers both "nearest k for each c" (an
  argmax along rows) and "nearest c for each k" (along columns), halving the work.
  An image can never be its own neighbour: only other classes are searched, and with
  ``exclude_self`` the own index is masked out as well.

Cost, for all 70,000 MNIST images against the 60,000 training images: 1.6e9 training pairs
(symmetric) + 0.54e9 test pairs, times ~720 pixels, is ~3.1e12 floating-point operations --
hence the cache (lab/invariance_cache.py; README.md gives the time). ``shifts=1`` is 9 times
the work and cannot use the symmetric shortcut.
"""
import numpy as np

from ..invariance import (Neighbours, check_search_arguments, flip_from_neighbours, shift_grid,
                          shift_images)
from ..validate import check_eps
from ..validate import NUM_CLASSES

__all__ = ["nearest_by_class", "label_flip", "column_argmax", "CHUNK_SIZE"]

CHUNK_SIZE = 2048  # query rows per matrix product: a 2048 x 6742 float32 tile is 55 MB


def _augmented(x, keep, norm_last):
    """Rows [x_keep, -||x||^2/2, 1] (queries u) or [x_keep, 1, -||x||^2/2] (references v).

    With u from a and v from b: u.v = a.b - ||a||^2/2 - ||b||^2/2 = -||a - b||^2 / 2.
    The norms are taken over *all* pixels; the product only needs the ``keep`` ones.
    """
    out = np.empty((len(x), int(keep.sum()) + 2), dtype=np.float32)  # (n, d + 2)
    out[:, :-2] = x[:, keep]
    half_sq = -0.5 * np.einsum("ij,ij->i", x, x, dtype=np.float64)  # (n,)
    out[:, -2], out[:, -1] = (1.0, half_sq) if norm_last else (half_sq, 1.0)
    return out


def _as_queries(x, keep):
    return _augmented(x, keep, norm_last=False)


def _as_references(x, keep):
    return _augmented(x, keep, norm_last=True)


def column_argmax(scores, group=16):
    """np.argmax(scores, axis=0) for a C-ordered (B, M) array, several times faster.

    NumPy's argmax along axis 0 walks the array with a stride of M. Instead we take the max
    of each group of ``group`` consecutive rows (a fast reduction over contiguous rows),
    find the winning group of every column on that small array, and look inside it.
    First occurrences win, exactly as in np.argmax.
    """
    B, M = scores.shape
    full = B - B % group
    group_max = scores[:full].reshape(full // group, group, M).max(axis=1)  # (B // group, M)
    if full < B:
        group_max = np.concatenate([group_max, scores[full:].max(axis=0, keepdims=True)])
    winner = group_max.argmax(axis=0)  # (M,)
    rows = winner[:, None] * group + np.arange(group)  # (M, group) candidate rows per column
    inside = rows < B
    rows = np.minimum(rows, B - 1)
    candidates = scores[rows, np.arange(M)[:, None]]  # (M, group)
    candidates[~inside] = -np.inf
    return rows[np.arange(M), candidates.argmax(axis=1)]


def _product(u, v, buffer):
    """u @ v.T, written into a reused buffer: a fresh 55 MB array for every tile would cost
    the system a page fault per 4 KB, seconds in all."""
    out = buffer[:len(u) * len(v)].reshape(len(u), len(v))
    return np.matmul(u, v.T, out=out)


def _group_by_class(y, num_classes):
    """A stable permutation grouping y by class, and where each class starts.

    Returns order (n,) and bounds (num_classes + 1,): class c is order[bounds[c]:bounds[c + 1]].
    """
    order = np.argsort(y, kind="stable")
    return order, np.searchsorted(y[order], np.arange(num_classes + 1))


def _finish(best, arg, shift, y, q_order, r_order):
    """Grouped positions and scores -> Neighbours in the caller's row order.

    dist2 = -2 * best (the GEMM gives -||a - b||^2 / 2), inf and index -1 where nothing was
    found (the own class, or a class absent from the reference set).
    """
    n = len(y)
    found = arg >= 0
    shape = (n, best.shape[1])
    index, dist2, shifts = (np.empty(shape, dtype=t) for t in (np.int64, np.float32, np.int64))
    index[q_order] = np.where(found, r_order[np.maximum(arg, 0)], -1)
    dist2[q_order] = np.where(found, np.maximum(-2.0 * best, 0.0), np.inf)
    shifts[q_order] = shift
    index[np.arange(n), y] = -1
    dist2[np.arange(n), y] = np.inf
    return Neighbours(index, shifts, dist2)


def _search_symmetric(x, y, num_classes, chunk_size):
    """Nearest neighbour of every other class within one set (queries = references).

    Rows and columns are both the set grouped by class. A chunk of class-c rows is multiplied
    with the block of each *later* class k > c: the argmax along a row answers "nearest k for
    this c", the argmax down a column "nearest c for this k". Each pair of classes is
    computed once.
    """
    n = len(x)
    order, bounds = _group_by_class(y, num_classes)
    keep = x.max(axis=0) > 0  # (D,) pixels that are zero in every image cannot matter
    u = _as_queries(x[order], keep)  # (n, d + 2), grouped by class
    v = _as_references(x[order], keep)  # (n, d + 2)
    best = np.full((n, num_classes), -np.inf, dtype=np.float32)  # -||a - b||^2 / 2, grouped rows
    arg = np.full((n, num_classes), -1, dtype=np.int64)  # grouped position of the neighbour
    buffer = np.empty(min(chunk_size, n) * int(np.diff(bounds).max()), dtype=np.float32)
    for c in range(num_classes):
        for start in range(bounds[c], bounds[c + 1], chunk_size):
            stop = min(start + chunk_size, bounds[c + 1])
            for k in range(c + 1, num_classes):
                lo, hi = bounds[k], bounds[k + 1]
                if lo == hi:
                    continue
                scores = _product(u[start:stop], v[lo:hi], buffer)  # (B, n_k) = -||a - b||^2/2
                # rows: each class-c image of the chunk against all of class k -- complete
                j = scores.argmax(axis=1)  # (B,)
                best[start:stop, k] = scores[np.arange(stop - start), j]
                arg[start:stop, k] = lo + j
                # columns: each class-k image against this chunk -- keep the best over chunks
                i = column_argmax(scores)  # (n_k,)
                value = scores[i, np.arange(hi - lo)]
                better = value > best[lo:hi, c]  # strict: an earlier chunk wins ties
                best[lo:hi, c][better] = value[better]
                arg[lo:hi, c][better] = start + i[better]
    return _finish(best, arg, np.zeros_like(arg), y, order, order)


def _search(x, y, ref_x, ref_y, shifts, exclude_self, num_classes, chunk_size):
    """Nearest neighbour of every other class among (shifted) references, queries in chunks.

    Queries and references are grouped by class; a chunk of class-c queries is multiplied
    with the (contiguous) block of each other class k. The own class is never searched.
    """
    n, m = len(x), len(ref_x)
    grid = shift_grid(shifts)
    q_order, q_bounds = _group_by_class(y, num_classes)
    r_order, r_bounds = _group_by_class(ref_y, num_classes)
    ref_any = ref_x.max(axis=0) > 0  # (D,) a pixel some reference uses, under some shift
    ref_any = np.any([shift_images(ref_any[None], dy, dx)[0] for dy, dx in grid], axis=0)
    keep = (x.max(axis=0) > 0) & ref_any
    u = _as_queries(x[q_order], keep)  # (n, d + 2), grouped by class
    own_column = np.empty(m, dtype=np.int64)  # where reference row r sits once grouped
    own_column[r_order] = np.arange(m)
    best = np.full((n, num_classes), -np.inf, dtype=np.float32)
    arg = np.full((n, num_classes), -1, dtype=np.int64)
    shift = np.zeros((n, num_classes), dtype=np.int64)
    buffer = np.empty(min(chunk_size, n) * int(np.diff(r_bounds).max()), dtype=np.float32)
    for s, (dy, dx) in enumerate(grid):
        shifted = ref_x if dy == dx == 0 else shift_images(ref_x, int(dy), int(dx))
        v = _as_references(shifted[r_order], keep)  # (m, d + 2), grouped by class
        for c in range(num_classes):
            for start in range(q_bounds[c], q_bounds[c + 1], chunk_size):
                stop = min(start + chunk_size, q_bounds[c + 1])
                rows = np.arange(stop - start)
                for k in range(num_classes):
                    lo, hi = r_bounds[k], r_bounds[k + 1]
                    if k == c or lo == hi:
                        continue
                    scores = _product(u[start:stop], v[lo:hi], buffer)  # (B, n_k)
                    if exclude_self:  # query q *is* reference q: never its own neighbour
                        col = own_column[q_order[start:stop]] - lo
                        inside = (col >= 0) & (col < hi - lo)
                        scores[rows[inside], col[inside]] = -np.inf
                    j = scores.argmax(axis=1)  # (B,)
                    value = scores[rows, j]
                    better = value > best[start:stop, k]  # strict: the smaller shift wins ties
                    best[start:stop, k][better] = value[better]
                    arg[start:stop, k][better] = lo + j[better]
                    shift[start:stop, k][better] = s
    return _finish(best, arg, shift, y, q_order, r_order)


def nearest_by_class(x, y, ref_x, ref_y, shifts=0, exclude_self=False, chunk_size=CHUNK_SIZE,
                     num_classes=NUM_CLASSES):
    """``tinyadv.invariance.nearest_by_class``, fast: the same neighbours, for all of MNIST.

    The speed-ups are the module docstring's; the arguments and the result are the
    reference's (dist2 in float32), plus ``chunk_size``: query rows per matrix product.

    Returns
    -------
    Neighbours(index, shift, dist2), each (N, num_classes)
    """
    shifts = check_search_arguments(x, y, ref_x, ref_y, shifts, exclude_self, num_classes)
    if (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    x = x.astype(np.float32, copy=False)
    ref_x = ref_x.astype(np.float32, copy=False)
    if exclude_self and shifts == 0 and np.array_equal(y, ref_y):
        return _search_symmetric(x, y, num_classes, int(chunk_size))
    return _search(x, y, ref_x, ref_y, shifts, bool(exclude_self), num_classes, int(chunk_size))


def label_flip(x, y, ref_x, ref_y, eps, shifts=0, exclude_self=False, chunk_size=CHUNK_SIZE):
    """``tinyadv.invariance.label_flip`` with the fast search: the same examples, for large sets.

    Returns
    -------
    x_inv : (N, 784) float32, y_flip : (N,) int64, as ``tinyadv.invariance.label_flip``
    """
    check_eps(eps)
    neighbours = nearest_by_class(x, y, ref_x, ref_y, shifts=shifts, exclude_self=exclude_self,
                                  chunk_size=chunk_size)
    return flip_from_neighbours(x, y, ref_x, neighbours, eps, shifts)
