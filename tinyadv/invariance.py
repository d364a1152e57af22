"""Invariance attacks: a simple label-flipping generator, and a cache of its output for MNIST.

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

How the nearest-neighbour search is made fast (all exact, float32 BLAS):

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
(symmetric) + 0.54e9 test pairs, times ~720 pixels, is ~3.1e12 floating-point operations.
On the project's 2-core machine that took 48 s from scratch with the CPU to itself (and up
to ~95 s while sharing it with other jobs); hence the cache. ``shifts=1`` is 9 times the
work and cannot use the symmetric shortcut: 95 s for the 10,000 test images alone, about
ten minutes for both sets -- once, then cached.
"""
import hashlib
import json
import os
import time
import zipfile
from typing import NamedTuple

import numpy as np

from . import data
from .fileio import save_npz_atomic
from .validate import NUM_CLASSES, check_eps, check_images, check_labels

SIDE = 28  # MNIST images are 28 x 28
CHUNK_SIZE = 2048  # query rows per matrix product: a 2048 x 6742 float32 tile is 55 MB
MAX_SHIFTS = 3  # a (2*3+1)^2 = 49-shift search is already 49 times the work of none
CACHE_VERSION = 1  # bump when the search or the file layout changes: old caches go stale
DEFAULT_CACHE_DIR = os.path.join(data.DATA_DIR, "cache")


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


def _check_shifts(shifts):
    if (isinstance(shifts, bool) or not isinstance(shifts, (int, np.integer))
            or not 0 <= shifts <= MAX_SHIFTS):
        raise ValueError(f"shifts: expected an integer in 0..{MAX_SHIFTS}, got {shifts!r}")
    return int(shifts)


def nearest_by_class(x, y, ref_x, ref_y, shifts=0, exclude_self=False, chunk_size=CHUNK_SIZE,
                     num_classes=NUM_CLASSES):
    """For each image, its nearest reference image of every other class.

    Parameters
    ----------
    x : (N, 784) float images in [0, 1] (the queries), y : (N,) their labels
    ref_x : (M, 784) reference images, ref_y : (M,) their labels
    shifts : also search the references translated by up to this many pixels in each
        direction, zero-filled: (2 * shifts + 1)^2 times the work
    exclude_self : x *is* the reference set (row i of x is reference i); reference i is then
        never the neighbour of query i. Checked: x must equal ref_x.
    chunk_size : query rows per matrix product

    Returns
    -------
    Neighbours(index, shift, dist2), each (N, num_classes)
    """
    check_images(x, "x")
    check_images(ref_x, "ref_x")
    check_labels(y, "y", n=len(x), num_classes=num_classes)
    check_labels(ref_y, "ref_y", n=len(ref_x), num_classes=num_classes)
    shifts = _check_shifts(shifts)
    if (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
    if exclude_self and not (x.shape == ref_x.shape and np.array_equal(x, ref_x)):
        raise ValueError(f"exclude_self: means x is the reference set itself, but x {x.shape} "
                         f"differs from ref_x {ref_x.shape}")
    x = x.astype(np.float32, copy=False)
    ref_x = ref_x.astype(np.float32, copy=False)
    if exclude_self and shifts == 0 and np.array_equal(y, ref_y):
        return _search_symmetric(x, y, num_classes, int(chunk_size))
    return _search(x, y, ref_x, ref_y, shifts, bool(exclude_self), num_classes, int(chunk_size))


def nearest_by_class_reference(x, y, ref_x, ref_y, shifts=0, exclude_self=False,
                               num_classes=NUM_CLASSES):
    """``nearest_by_class`` written to be read: every squared distance, then each class's minimum.

    The same search without the speed-ups of the module docstring -- no folded norms, no
    grouping by class, no dropped pixels, no symmetric shortcut -- in float64, holding an
    (N, M) array of distances per shift: for a few hundred images, not for MNIST. The tests
    hold ``nearest_by_class`` to it. Ties go to the smaller shift, then the lower reference
    index (as in ``nearest_by_class``, up to its float32 rounding).

    Returns
    -------
    Neighbours(index, shift, dist2), each (N, num_classes); dist2 in float64
    """
    n = len(x)
    rows = np.arange(n)
    a = x.astype(np.float64)  # (N, D)
    index = np.full((n, num_classes), -1, dtype=np.int64)
    shift = np.zeros((n, num_classes), dtype=np.int64)
    dist2 = np.full((n, num_classes), np.inf)
    for s, (dy, dx) in enumerate(shift_grid(shifts)):
        b = shift_images(ref_x, int(dy), int(dx)).astype(np.float64)  # (M, D)
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T  # (N, M) ||a - b||^2
        d = np.maximum(d, 0.0)  # the expansion can round a distance of 0 to just below it
        if exclude_self:
            d[rows, rows] = np.inf  # query i is reference i
        for k in range(num_classes):
            members = np.flatnonzero(ref_y == k)  # the references of class k
            if len(members) == 0:
                continue
            nearest = members[d[:, members].argmin(axis=1)]  # (N,) the first of the closest
            better = d[rows, nearest] < dist2[:, k]  # strict: the smaller shift wins ties
            index[better, k] = nearest[better]
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


def label_flip(x, y, ref_x, ref_y, eps, shifts=0, exclude_self=False, chunk_size=CHUNK_SIZE):
    """Label-flipping invariance examples (module docstring): nearest other-class neighbour,
    then every pixel moves at most eps towards it.

    Parameters
    ----------
    x : (N, 784) images in [0, 1], y : (N,) their (source) labels
    ref_x, ref_y : the reference set to take neighbours from (usually the training set)
    eps : l-inf budget >= 0
    shifts, exclude_self, chunk_size : see nearest_by_class

    Returns
    -------
    x_inv : (N, 784) float32 with ||x_inv - x||_inf <= eps, in [0, 1]
    y_flip : (N,) int64, the assumed oracle label, always != y
    """
    check_eps(eps)
    neighbours = nearest_by_class(x, y, ref_x, ref_y, shifts=shifts, exclude_self=exclude_self,
                                  chunk_size=chunk_size)
    return flip_from_neighbours(x, y, ref_x, neighbours, eps, shifts)


def _fingerprint(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def cache_key(shifts, data_checksum):
    """The cache key: everything the neighbours depend on. eps is *not* part of it -- the
    search does not depend on eps, so one cache serves every eps (applied on loading)."""
    spec = {"version": CACHE_VERSION, "shifts": int(shifts), "rule": "nearest-other-class",
            "reference": "mnist-train", "data": data_checksum}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir, shifts, key):
    return os.path.join(cache_dir, f"invariance_shifts{shifts}_{key[:16]}.npz")


def _load_valid(path, key, splits, num_ref, shifts):
    """The cached Neighbours per split, or None (with the reason) if missing/stale/corrupt."""
    if not os.path.exists(path):
        return None, "no cache yet"
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None, "stale (its key does not match)"
            result = {}
            for split, y in splits.items():
                index = f[f"{split}_index"].astype(np.int64)
                shift = f[f"{split}_shift"].astype(np.int64)
                dist2 = f[f"{split}_dist2"].astype(np.float32)
                expected = (len(y), NUM_CLASSES)
                own = np.zeros(expected, dtype=bool)
                own[np.arange(len(y)), y] = True
                ok = (index.shape == shift.shape == dist2.shape == expected
                      and np.all(index[own] == -1)
                      and np.all((index[~own] >= 0) & (index[~own] < num_ref))
                      and np.all((shift >= 0) & (shift < len(shift_grid(shifts))))
                      and np.all(np.isfinite(dist2[~own]))
                      and np.all(dist2[~own] >= 0))
                if not ok:
                    return None, f"corrupt (bad {split} arrays)"
                result[split] = Neighbours(index, shift, dist2)
            return result, "ok"
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return None, f"corrupt ({type(err).__name__}: {err})"


def invariance_neighbours(shifts=0, cache_dir=None, log=print):
    """Nearest other-class training neighbours of all 60,000 training and 10,000 test images.

    Computed once (reference = the training set, no image its own neighbour) and cached in
    ``cache_dir`` (default data/cache/), keyed by ``shifts`` and the SHA-256 of the data.
    A missing, stale or corrupt cache is rebuilt.

    Returns
    -------
    {"train": Neighbours, "test": Neighbours}
    """
    mnist = data.load_mnist("train") + data.load_mnist("test")
    return _cached_neighbours(*mnist, _check_shifts(shifts), cache_dir, log)


def _cached_neighbours(X_train, y_train, X_test, y_test, shifts, cache_dir, log):
    cache_dir = DEFAULT_CACHE_DIR if cache_dir is None else cache_dir
    key = cache_key(shifts, _fingerprint(X_train, y_train, X_test, y_test))
    path = cache_path(cache_dir, shifts, key)
    cached, why = _load_valid(path, key, {"train": y_train, "test": y_test}, len(X_train), shifts)
    if cached is not None:
        log(f"invariance: neighbours loaded from {path}")
        return cached
    log(f"invariance: cache {path}: {why}; searching nearest neighbours (shifts={shifts}) ...")
    t0 = time.perf_counter()
    train = nearest_by_class(X_train, y_train, X_train, y_train, shifts=shifts, exclude_self=True)
    t1 = time.perf_counter()
    test = nearest_by_class(X_test, y_test, X_train, y_train, shifts=shifts)
    t2 = time.perf_counter()
    log(f"invariance: searched {len(X_train)} training images in {t1 - t0:.1f}s, "
        f"{len(X_test)} test images in {t2 - t1:.1f}s")
    arrays = {"key": np.array(key)}
    for split, nb in (("train", train), ("test", test)):
        arrays[f"{split}_index"] = nb.index.astype(np.int32)
        arrays[f"{split}_shift"] = nb.shift.astype(np.int8)
        arrays[f"{split}_dist2"] = nb.dist2
    save_npz_atomic(path, arrays)
    return {"train": train, "test": test}


def invariance_sets(eps, shifts=0, cache_dir=None, log=print, mnist=None):
    """Label-flipping invariance examples for all MNIST training and test images.

    The neighbour search is cached (see invariance_neighbours); eps is applied afterwards,
    which is cheap. Source labels are the MNIST labels of the same index. A caller that has
    MNIST loaded already passes ``mnist=(X_train, y_train, X_test, y_test)`` so it is not
    held in memory twice (the checksum in the cache key still comes from these arrays).

    Returns
    -------
    {"train": (x_inv (60000, 784) float32, y_flip (60000,) int64),
     "test":  (x_inv (10000, 784) float32, y_flip (10000,) int64)}
    """
    check_eps(eps)
    shifts = _check_shifts(shifts)
    if mnist is None:
        mnist = data.load_mnist("train") + data.load_mnist("test")
    X_train, y_train, X_test, y_test = mnist
    neighbours = _cached_neighbours(X_train, y_train, X_test, y_test, shifts, cache_dir, log)
    train = flip_from_neighbours(X_train, y_train, X_train, neighbours["train"], eps, shifts)
    test = flip_from_neighbours(X_test, y_test, X_train, neighbours["test"], eps, shifts)
    return {"train": train, "test": test}


def main(argv=None):
    """python -m tinyadv.invariance --generate tramer|authors --split test|train [--limit N]
    or --verify-tramer [--eps 0.3]: the paper's own attack (tinyadv/tramer.py)."""
    import argparse

    from . import tramer

    parser = argparse.ArgumentParser(prog="python -m tinyadv.invariance", description=main.__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--generate", choices=tramer.VARIANTS,
                        help="build (or load from data/ or the cache) that attack's examples")
    action.add_argument("--verify-tramer", action="store_true",
                        help="compare tinyadv's Tramer examples with the published ones")
    parser.add_argument("--split", choices=tramer.SPLITS, default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--eps", type=float, default=0.3,
                        help="--verify-tramer: 0.3 (automated_eps03.npy) or 0.4 (automated_eps04.npy)")
    parser.add_argument("--cache-dir", default=None, help=f"default {tramer.DEFAULT_CACHE_DIR}")
    parser.add_argument("--from-end", action="store_true",
                        help="--generate: start with the last chunk (a second run beside a first "
                             "shares the work)")
    parser.add_argument("--write-data", action="store_true",
                        help="maintainers: --generate a whole split into data/ (prints its sha256)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.write_data:
        if not args.generate or args.limit is not None:
            parser.error("--write-data needs --generate and a whole split (no --limit)")
        tramer.write_committed_table(args.generate, args.split, args.cache_dir)
        return 0
    if args.generate:
        if args.from_end:  # build the cache only; loading happens on the next (plain) run
            tramer.generate_search_table(args.generate, args.split, args.limit, args.cache_dir,
                                         from_end=True)
        x_inv, y_target, y_source = tramer.load_attack_set(args.generate, args.split, args.limit,
                                                           args.cache_dir)
        print(f"{args.generate} attack, MNIST {args.split}: {len(x_inv)} examples, targets per "
              f"class {np.bincount(y_target, minlength=10).tolist()}, "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    result = tramer.verify_published(args.eps)
    print(f"Tramer et al.'s automated l-inf examples, eps={args.eps}, {result['file']}: "
          f"{result['identical']} of {result['total']} identical to tinyadv's, worst pixel "
          f"difference {result['worst']:g} grey levels ({time.perf_counter() - t0:.1f} s)")
    return 0 if result["identical"] == result["total"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
