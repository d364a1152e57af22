"""The paper's own invariance attack: Tramer et al. 2020's automated l-inf attack, and the
variant the paper's authors ran.

Tramer, Behrmann, Carlini, Papernot, Jacobsen (ICML 2020, notebook
``linf/Invariant_Linf_Attack.ipynb`` of ``ftramer/Excessive-Invariance``) made the
human-labelled examples in ``data/tramer2020/`` like this, for an MNIST image x of label y
(uint8, 0..255, 28 x 28):

1. 775 copies of x: for every (tx, ty, r) in GRID -- tx, ty in linspace(-3, 3, 5) pixels,
   r in linspace(-30, 30, 31) degrees, in itertools.product order --
   ``scipy.ndimage.shift(scipy.ndimage.rotate(x, r, reshape=False), (tx, ty))`` with every
   other argument left at its default (cubic spline, zeros outside); uint8 in, uint8 out at
   each step.
2. For each class k != y: the reference image of class k nearest (Euclidean) to any copy;
   ties go to the first in (copy, image) order.
3. That neighbour is brought back: rotate it by -r, then shift it by (-tx, -ty), the same way.
4. The l-inf step with E = eps * 255 grey levels, in float32 (``linf_step``).
5. The target: among hand-picked plausible classes (TRAMER_TARGETS), the one whose example
   removes the least ink, sum(max(x/255 - x*/255, 0)); strictly smaller wins.

The paper's authors (``invariance_generator.py`` of ``eczy/sensitivity-invariance-tradeoff``,
branch ``dev``) changed three things: the neighbours come from the split being attacked (test
images get test neighbours; an image is never its own neighbour because only other classes
are searched), step 3 is skipped, and every class k != y is a candidate, ranked by
``sum(abs(max(x/255 - x*/255, axis=0)))``. That is a maximum over the image's first axis --
one value per column of the 28 x 28 image -- probably meant as the elementwise maximum of
step 5; tinyadv reproduces it as written (``authors_rank``).

Two searches find the neighbours and a test holds them equal on every image, ties included:
``nearest_transformed_reference`` (brute force, float64, a page to read) and
``nearest_transformed`` (the fast one; how it stays exact is in its docstring).
"""
import argparse
import functools
import hashlib
import io
import itertools
import json
import os
import time
import zipfile
from typing import NamedTuple

import numpy as np
from scipy import ndimage, sparse

from .. import data
from ..fileio import atomic_path, save_npz_atomic
from ..validate import NUM_CLASSES

__all__ = ["tramer_attack", "load_attack_set", "verify_published", "generate_search_table",
           "load_search_table", "write_committed_table", "committed_table_path",
           "nearest_transformed", "nearest_transformed_reference", "transform_copies",
           "transform_copies_reference", "examples_from_neighbours", "linf_step",
           "tramer_removed_ink", "authors_rank", "inverse_transform", "searched_classes",
           "mnist_uint8", "search_key", "main", "VARIANTS", "SPLITS", "GRID", "TRAMER_TARGETS",
           "COMMITTED", "DEFAULT_CACHE_DIR"]

SIDE = 28
PIXELS = SIDE * SIDE
SHIFTS = np.linspace(-3, 3, 5)  # pixels, for tx (rows) and ty (columns)
ANGLES = np.linspace(-30, 30, 31)  # degrees
GRID = np.array(list(itertools.product(SHIFTS, SHIFTS, ANGLES)))  # (775, 3): (tx, ty, r)
NUM_COPIES = len(GRID)
VARIANTS = ("tramer", "authors")
# Target classes allowed per source class, hand-picked in Tramer et al.'s notebook.
TRAMER_TARGETS = {0: (4, 6, 8, 9), 1: (4, 6, 7, 9), 2: (8,), 3: (8,), 4: (8, 9), 5: (3, 8),
                  6: (0,), 7: (2, 3), 8: (3,), 9: (3, 4, 5)}
# A fast-path pixel closer than this to a rounding boundary (k + 1/2) is recomputed by scipy.
# The fast path and scipy differ by ~1e-12 (float64 rounding in another order), so a pixel
# further away rounds identically in both.
ROUNDING_GUARD = 1e-6


# ---- input checks ----------------------------------------------------------------------

def as_uint8_images(x, name="x"):
    """Images on the 0..255 scale -> uint8 (N, 784).

    Accepts uint8, any integer dtype, or floats holding whole numbers, in 0..255, shaped
    (N, 28, 28) or (N, 784). Rejects floats in [0, 1] (tinyadv's usual scale) with a hint.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if not (x.ndim == 2 and x.shape[1] == PIXELS) and not (x.ndim == 3 and x.shape[1:] == (SIDE, SIDE)):
        raise ValueError(f"{name}: expected shape (N, 28, 28) or (N, 784), got {x.shape}")
    if x.dtype.kind not in "uif":
        raise TypeError(f"{name}: expected uint8 (or whole numbers 0..255), got dtype {x.dtype}")
    if x.size == 0:
        return np.zeros((len(x), PIXELS), dtype=np.uint8)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}: contains NaN or inf")
        if x.max() <= 1.0 and np.any((x > 0) & (x < 1)):
            raise ValueError(f"{name}: expected pixels on the 0..255 scale, got floats in "
                             f"[{x.min():g}, {x.max():g}] -- multiply [0, 1] images by 255 and round")
        if np.any(x != np.round(x)):
            raise ValueError(f"{name}: expected whole numbers 0..255, got fractional values "
                             f"(e.g. {x[x != np.round(x)].flat[0]:g})")
    if x.min() < 0 or x.max() > 255:
        raise ValueError(f"{name}: expected pixels in 0..255, got range [{x.min()}, {x.max()}]")
    return x.reshape(len(x), PIXELS).astype(np.uint8)


def _check_labels(y, name, n):
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        what = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(f"{name}: expected an integer numpy array, got {what}")
    if y.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) to match the images, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"{name}: expected labels in 0..{NUM_CLASSES - 1}, "
                         f"got range [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def check_eps(eps):
    """eps in (0, 1], the l-inf budget as a fraction of the 0..255 range."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps: expected a number in (0, 1], got {type(eps).__name__}")
    if not 0 < float(eps) <= 1:
        raise ValueError(f"eps: expected a number in (0, 1] (fraction of 255), got {eps}")
    return float(eps)


def check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return variant


def searched_classes(y, variant):
    """(N, 10) bool: the classes whose nearest neighbour each image needs.

    "authors": every class but the image's own. "tramer": only the hand-picked targets (the
    others could never be chosen, so their neighbours are not searched).
    """
    mask = np.ones((len(y), NUM_CLASSES), dtype=bool)
    mask[np.arange(len(y)), y] = False
    if variant == "tramer":
        allowed = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=bool)
        for source, targets in TRAMER_TARGETS.items():
            allowed[source, list(targets)] = True
        mask &= allowed[y]
    return mask


# ---- the 775 transformed copies --------------------------------------------------------

def transform(image, tx, ty, r):
    """scipy.ndimage.shift(scipy.ndimage.rotate(image, r, reshape=False), (tx, ty)): (28, 28)."""
    return ndimage.shift(ndimage.rotate(image, r, reshape=False), (tx, ty))


def transform_copies_reference(image):
    """The 775 copies of one uint8 (28, 28) image, one scipy call pair each: (775, 784) uint8."""
    image = np.asarray(image).reshape(SIDE, SIDE)
    return np.stack([transform(image, tx, ty, r).reshape(PIXELS) for tx, ty, r in GRID])


@functools.lru_cache(maxsize=1)
def _linear_maps():
    """scipy's rotations and shifts as the linear maps they are (before rounding).

    A cubic-spline transform is two linear steps: a prefilter that turns the image into
    spline coefficients (the same for every angle; separable, 28 x 28 per axis), then an
    interpolation that reads at most 4 x 4 coefficients per output pixel (sparse). Applying
    scipy to the 784 unit images gives each matrix. Returns

    prefilter : (784, 784) dense, coefficients = image @ prefilter
    rotations : scipy.sparse CSR (31 * 784, 784), rotated[r * 784 + p] = row . coefficients
    shifts : (5, 28, 28) dense 1-D maps (prefilter included); a (tx, ty) shift is
        S[tx] @ image @ S[ty].T
    """
    units = np.eye(PIXELS).reshape(PIXELS, SIDE, SIDE)
    coefficients = units
    for axis in (1, 2):
        coefficients = ndimage.spline_filter1d(coefficients, 3, axis=axis, mode="constant")
    prefilter = coefficients.reshape(PIXELS, PIXELS)
    rotations = sparse.vstack([sparse.csr_matrix(
        ndimage.rotate(units, r, axes=(1, 2), reshape=False, prefilter=False)
        .reshape(PIXELS, PIXELS).T) for r in ANGLES]).tocsr()
    shifts = np.stack([np.stack([ndimage.shift(e, t) for e in np.eye(SIDE)], axis=1)
                       for t in SHIFTS])  # (5, out, in)
    return prefilter, rotations, shifts


def _round_like_scipy(values):
    """float64 -> uint8 as scipy stores an interpolated value (nearest whole number, clipped
    to 0..255), and a mask of the values too close to call: within ROUNDING_GUARD of k + 1/2.
    ``values`` is overwritten (it is large; the caller does not need it afterwards)."""
    rounded = np.rint(values)
    np.subtract(values, rounded, out=values)
    np.abs(values, out=values)
    unsure = values > 0.5 - ROUNDING_GUARD
    np.clip(rounded, 0, 255, out=rounded)
    return rounded.astype(np.uint8), unsure


def transform_copies(images):
    """The 775 copies of each uint8 image, as matrix products: (N, 775, 784) uint8.

    Bit for bit what ``transform_copies_reference`` gives: each step's float64 result is
    rounded to uint8 like scipy's; the rare pixel too close to a rounding boundary to decide
    (see ROUNDING_GUARD) has its rotation or shift redone by scipy itself.
    Copy g of image i is GRID[g] = (tx, ty, r), index g = (5 * itx + ity) * 31 + ir.
    """
    images = as_uint8_images(images, "images")
    n, a, k = len(images), len(ANGLES), len(SHIFTS)
    prefilter, rotation_maps, shift_maps = _linear_maps()
    coefficients = images.astype(np.float64) @ prefilter  # (n, 784)
    rotated = (rotation_maps @ coefficients.T).T.reshape(n, a * PIXELS)  # (n, 31 * 784)
    rotated, unsure = _round_like_scipy(np.ascontiguousarray(rotated))
    rotated = rotated.reshape(n, a, SIDE, SIDE)  # (n, 31, 28 rows, 28 cols)
    for i, r in zip(*np.nonzero(unsure.reshape(n, a, PIXELS).any(axis=2))):
        rotated[i, r] = ndimage.rotate(images[i].reshape(SIDE, SIDE), ANGLES[r], reshape=False)
    # A shift by (tx, ty) is S[tx] @ image @ S[ty].T: stacking the five S gives all 25 at once.
    stacked = np.concatenate(list(shift_maps), axis=0)  # (5 tx * 28, 28)
    cols = rotated.reshape(n * a * SIDE, SIDE).astype(np.float64) @ stacked.T  # (.., 5 ty * 28)
    both = np.matmul(stacked, cols.reshape(n * a, SIDE, k * SIDE))  # (n * 31, 5*28, 5*28)
    copies, unsure = _round_like_scipy(both)  # both: (n, r, tx, rows, ty, cols)
    copies = copies.reshape(n, a, k, SIDE, k, SIDE).transpose(0, 2, 4, 1, 3, 5)  # GRID order
    copies = np.ascontiguousarray(copies).reshape(n, NUM_COPIES, PIXELS)
    unsure = unsure.reshape(n, a, k, SIDE, k, SIDE).any(axis=(3, 5)).transpose(0, 2, 3, 1)
    for i, g in zip(*np.nonzero(unsure.reshape(n, NUM_COPIES))):
        tx, ty, _ = GRID[g]
        copies[i, g] = ndimage.shift(rotated[i, g % a], (tx, ty)).reshape(PIXELS)
    return copies


# ---- the nearest transformed neighbour: the reference ----------------------------------

def _squared_distances(a, b):
    """Exact squared Euclidean distances between rows of uint8 a (m, 784) and b (n, 784).

    In float64 every product and partial sum is a whole number below 784 * 255^2 < 2^53,
    so ||a||^2 + ||b||^2 - 2 a.b is exact whatever order the sums are taken in.
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T


def nearest_transformed_reference(x, y, ref_x, ref_y, classes=None):
    """For each image and each other class, the nearest reference image to any of its copies.

    Brute force: all 775 copies against every reference image of the class, exact float64
    squared distances, and the first minimum in (copy, image) order -- copies in GRID order,
    reference images in their order in ref_x.

    Parameters
    ----------
    x : uint8 (N, 28, 28) or (N, 784) on 0..255, y : (N,) labels
    ref_x, ref_y : the reference images (M, ...) and labels to take neighbours from
    classes : (N, 10) bool, which classes to search (default: every class but y)

    Returns
    -------
    index : (N, 10) int64 row of ref_x (-1 where not searched)
    copy : (N, 10) int64 row of GRID of the copy it is nearest to (-1 where not searched)
    dist2 : (N, 10) int64 the squared distance (-1 where not searched)
    """
    x, ref_x = as_uint8_images(x, "x"), as_uint8_images(ref_x, "ref_x")
    y, ref_y = _check_labels(y, "y", len(x)), _check_labels(ref_y, "ref_y", len(ref_x))
    classes = searched_classes(y, "authors") if classes is None else classes
    index, copy, dist2 = (np.full((len(x), NUM_CLASSES), -1, dtype=np.int64) for _ in range(3))
    for i in range(len(x)):
        copies = transform_copies_reference(x[i].reshape(SIDE, SIDE))  # (775, 784)
        for k in np.flatnonzero(classes[i]):
            members = np.flatnonzero(ref_y == k)
            d2 = _squared_distances(copies, ref_x[members])  # (775, n_k)
            g, j = divmod(int(np.argmin(d2)), len(members))  # first minimum, row-major
            index[i, k], copy[i, k], dist2[i, k] = members[j], g, int(d2[g, j])
    return index, copy, dist2


def _check_pool(classes, ref_y):
    present = np.bincount(ref_y, minlength=NUM_CLASSES) > 0
    missing = sorted(int(k) for k in set(np.flatnonzero(classes.any(axis=0))) - set(np.flatnonzero(present)))
    if missing:
        raise ValueError(f"ref_y: the reference pool has no image of class(es) {missing}, "
                         f"which must be searched; got class counts "
                         f"{np.bincount(ref_y, minlength=NUM_CLASSES).tolist()}")


# ---- the nearest transformed neighbour: fast and exact ----------------------------------

# The two lower bounds: principal components kept in each. Measured in CPU time on 24 test
# images: (64, 128) 32 ms an image; (48, 128), (64, 96), (80, 160) 34-37 ms.
PROJECTION_DIMS = (64, 128)
BLOCK_IMAGES = 8  # query images (x 775 copies) per matrix product
# Bound on float32 rounding in ||a||^2 + ||b||^2 - 2 a.b over n <= 131 terms, relative to
# ||a||^2 + ||b||^2: n * 2^-24 = 7.8e-6, doubled, doubled again for the float32 inputs.
FLOAT32_MARGIN = 4e-5


class _Embedding:
    """Lower bounds of squared distances from a projection (a projection never lengthens a
    distance):

        ||a - b||^2 = ||P(a - b)||^2 + ||Q(a - b)||^2 >= ||Pa - Pb||^2 + (||Qa|| - ||Qb||)^2,

    P onto the first d principal components of the reference pool, Q = I - P onto the rest
    (the reverse triangle inequality for the second term). So the vector [Pa, ||Qa||] of
    d + 1 numbers stands in for a, and the bound is one matrix product away.
    """

    def __init__(self, pool):
        pool = pool.astype(np.float64)
        self.mean = pool.mean(axis=0)
        centred = pool - self.mean
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        self.basis = vectors[:, ::-1][:, :max(PROJECTION_DIMS)].copy()  # (784, dmax)

    def project(self, images):
        """uint8 (n, 784) -> {d: float64 (n, d + 1) = [Pa, ||Qa||]} for each d."""
        centred = images.astype(np.float64) - self.mean
        total = np.einsum("ij,ij->i", centred, centred)
        z = centred @ self.basis  # (n, dmax)
        cumulative = np.cumsum(z * z, axis=1)
        return {d: np.hstack([z[:, :d], np.sqrt(np.maximum(total - cumulative[:, d - 1], 0))[:, None]])
                for d in PROJECTION_DIMS}


def _as_rows(e):
    """[e, ||e||^2, 1] (float32) and the squared norms, so that rows @ cols.T = bound."""
    sq = np.einsum("ij,ij->i", e, e)
    return np.hstack([e, sq[:, None], np.ones((len(e), 1))]).astype(np.float32), sq


def _as_cols(e):
    sq = np.einsum("ij,ij->i", e, e)
    return np.hstack([-2.0 * e, np.ones((len(e), 1)), sq[:, None]]).astype(np.float32), sq


def _exact_pairs(copies, pool, rows, cols):
    """Exact squared distances (int64) of copies[rows] to pool[cols], pair by pair."""
    d = copies[rows].astype(np.int32) - pool[cols].astype(np.int32)
    return np.einsum("ij,ij->i", d, d).astype(np.int64)


class PreparedPool(NamedTuple):
    """A reference pool ready for nearest_transformed: its images, where each class sits,
    and the bound vectors of every image (reused across many query blocks)."""
    images: np.ndarray  # uint8 (M, 784)
    labels: np.ndarray  # int64 (M,)
    members: list  # members[k]: rows of class k, ascending
    embedding: "_Embedding"
    cols: dict  # d -> (float32 (M, d + 3) columns, float64 (M,) squared norms)


def prepare_pool(ref_x, ref_y):
    """Everything nearest_transformed needs from the pool, computed once."""
    ref_x = as_uint8_images(ref_x, "ref_x")
    ref_y = _check_labels(ref_y, "ref_y", len(ref_x))
    embedding = _Embedding(ref_x)
    projected = embedding.project(ref_x)
    return PreparedPool(ref_x, ref_y, [np.flatnonzero(ref_y == k) for k in range(NUM_CLASSES)],
                        embedding, {d: _as_cols(projected[d]) for d in PROJECTION_DIMS})


def nearest_transformed(x, y, ref_x=None, ref_y=None, classes=None, pool=None):
    """What nearest_transformed_reference returns -- the same neighbour, copy and distance on
    every image, ties included -- without comparing every copy with every reference image
    pixel by pixel. Pass ref_x, ref_y, or a ``pool=prepare_pool(ref_x, ref_y)`` reused
    across calls.

    For a block of query images of one class and each reference class k:
    1. A lower bound (``_Embedding``, PROJECTION_DIMS[0] components) of every (copy,
       reference) distance: one float32 matrix product. The exact distances of the few
       pairs that lead the bound give U >= the nearest distance. Every pair at the minimum
       has bound <= U, so only copies and references with some bound <= U (+ a margin above
       float32 rounding, FLOAT32_MARGIN) can hold it.
    2. The tighter bound (PROJECTION_DIMS[1] components) on those rows and columns only;
       U is lowered with the exact distances of the pairs that lead it.
    3. Exact integer distances of the pairs still at or below U; the first minimum in
       (copy, image) order, as in the reference.

    Everything that decides is exact integer arithmetic; the float32 bounds only decide
    what may be skipped.
    """
    pool = prepare_pool(ref_x, ref_y) if pool is None else pool
    x = as_uint8_images(x, "x")
    y = _check_labels(y, "y", len(x))
    classes = searched_classes(y, "authors") if classes is None else classes
    if classes.shape != (len(x), NUM_CLASSES):
        raise ValueError(f"classes: expected shape ({len(x)}, {NUM_CLASSES}), got {classes.shape}")
    _check_pool(classes, pool.labels)
    index, copy, dist2 = (np.full((len(x), NUM_CLASSES), -1, dtype=np.int64) for _ in range(3))
    for c in range(NUM_CLASSES):
        queries = np.flatnonzero(y == c)
        for start in range(0, len(queries), BLOCK_IMAGES):
            block = queries[start:start + BLOCK_IMAGES]  # (B,) images of class c
            index[block], copy[block], dist2[block] = _search_block(x[block], classes[block], pool)
    return index, copy, dist2


def _lead_upper_bound(bound, copies, pool_images, rows, cols, lead=4):
    """An upper bound of the nearest distance: the least exact distance among the pairs
    (row, best column of that row) of the `lead` rows with the smallest bound."""
    row_min = bound.min(axis=1)
    top = np.argsort(row_min, kind="stable")[:lead]
    best = bound[top].argmin(axis=1)
    return int(_exact_pairs(copies, pool_images, rows[top], cols[best]).min()), row_min


def _search_block(images, classes, pool):
    """nearest_transformed for a block of images of one class: (index, copy, dist2)."""
    d1, d2 = PROJECTION_DIMS
    b = len(images)
    index, copy, dist2 = (np.full((b, NUM_CLASSES), -1, dtype=np.int64) for _ in range(3))
    copies = transform_copies(images).reshape(b * NUM_COPIES, PIXELS)  # (B * 775, 784)
    copy_e = pool.embedding.project(copies)
    rows = {d: _as_rows(copy_e[d]) for d in PROJECTION_DIMS}
    all_rows = np.arange(NUM_COPIES)
    # one output buffer for every class: a fresh array per product costs a page fault per 4 KB
    buffer = np.empty(b * NUM_COPIES * max(len(m) for m in pool.members), dtype=np.float32)
    for k in np.flatnonzero(classes.any(axis=0)):
        m = pool.members[k]
        cols1, cols1_sq = pool.cols[d1][0][m], pool.cols[d1][1][m]
        bound = buffer[:b * NUM_COPIES * len(m)].reshape(b * NUM_COPIES, len(m))
        np.matmul(rows[d1][0], cols1.T, out=bound)
        bound = bound.reshape(b, NUM_COPIES, len(m))  # (B, 775, n_k) lower bounds
        col_min = bound.min(axis=1)  # (B, n_k)
        for i in np.flatnonzero(classes[:, k]):
            own = slice(i * NUM_COPIES, (i + 1) * NUM_COPIES)
            mine = copies[own]
            upper, row_min = _lead_upper_bound(bound[i], mine, pool.images, all_rows, m)
            margin = FLOAT32_MARGIN * (rows[d1][1][own].max() + cols1_sq.max()) + 1.0
            r1 = np.flatnonzero(row_min <= upper + margin)
            c1 = np.flatnonzero(col_min[i] <= upper + margin)
            # pass 2: the tighter bound on the survivors only
            cols2, cols2_sq = pool.cols[d2][0][m[c1]], pool.cols[d2][1][m[c1]]
            bound2 = rows[d2][0][own][r1] @ cols2.T  # (|r1|, |c1|)
            upper2, _ = _lead_upper_bound(bound2, mine, pool.images, r1, m[c1])
            upper = min(upper, upper2)
            margin2 = FLOAT32_MARGIN * (rows[d2][1][own][r1].max() + cols2_sq.max()) + 1.0
            pr, pc = np.nonzero(bound2 <= upper + margin2)  # row-major: (copy, image) order
            # pass 3: exact distances of the pairs left; the first minimum
            exact = _exact_pairs(mine, pool.images, r1[pr], m[c1[pc]])
            first = int(np.argmin(exact))
            if exact[first] > upper:
                raise AssertionError("nearest_transformed: a pair at the upper bound was pruned")
            index[i, k], copy[i, k], dist2[i, k] = m[c1[pc[first]]], r1[pr[first]], exact[first]
    return index, copy, dist2


# ---- from neighbours to examples -------------------------------------------------------

def linf_step(x, neighbour, eps):
    """Move x towards the neighbour within E = eps * 255 grey levels, as Tramer et al.'s
    notebook does it, in float32:

    - where |n - x| <= E and x > 0: the pixel takes n's value;
    - where |n - x| > E: it moves E towards n (sign(n - x) * eps * 255, in float32);
    - then clip to [x - E, x + E] and to [0, 255].

    Pixels where x = 0 and |n - x| <= E stay 0 (the rule adds no ink there).

    Parameters
    ----------
    x, neighbour : (..., 784) or (..., 28, 28) arrays on 0..255 (uint8 or float)
    eps : in (0, 1]

    Returns
    -------
    float32 array shaped like x
    """
    eps = check_eps(eps)
    x32 = np.asarray(x).astype(np.float32)
    n32 = np.asarray(neighbour).astype(np.float32)
    budget = np.float32(eps * 255.0)  # the notebook compares with eps*255. in float32
    diff = n32 - x32
    out = x32.copy()
    take = (np.abs(diff) <= budget) & (x32 > 0)
    out[take] = n32[take]
    far = np.abs(diff) > budget
    out[far] += np.sign(diff[far]) * np.float32(eps) * np.float32(255.0)
    out = np.clip(out, x32 - budget, x32 + budget)
    return np.clip(out, np.float32(0), np.float32(255))


def tramer_removed_ink(x, x_adv):
    """Tramer et al.'s rank: sum(max(x/255 - x*/255, 0)) per image, (N,) float64.
    x uint8 (N, 784), x_adv float32 (N, 784); dtypes as in their notebook."""
    diff = x.astype(np.float64) / 255.0 - (x_adv / np.float32(255.0)).astype(np.float64)
    return np.abs(np.maximum(diff, 0)).sum(axis=1)


def authors_rank(x, x_adv):
    """The authors' rank, as written: sum(abs(max(x/255 - x*/255, axis=0))) on 28 x 28
    images -- the maximum over the first axis (one value per image column), not the
    elementwise maximum with 0. (N,) float64."""
    diff = x.astype(np.float64) / 255.0 - (x_adv / np.float32(255.0)).astype(np.float64)
    return np.abs(diff.reshape(-1, SIDE, SIDE).max(axis=1)).sum(axis=1)


def inverse_transform(images, copy_index):
    """Bring neighbours back: rotate by -r, then shift by (-tx, -ty), scipy as in step 1.
    images uint8 (n, 784), copy_index (n,) rows of GRID -> uint8 (n, 784)."""
    out = np.empty_like(images)
    for i, g in enumerate(copy_index):  # one scipy call pair per chosen neighbour
        tx, ty, r = GRID[g]
        out[i] = transform(images[i].reshape(SIDE, SIDE), -tx, -ty, -r).reshape(PIXELS)
    return out


def examples_from_neighbours(x, y, ref_x, index, copy, eps=0.3, variant="tramer"):
    """Steps 3-5: the example and target of each image, from its searched neighbours.

    Parameters
    ----------
    x : uint8 (N, 784), y : (N,) labels, ref_x : uint8 (M, 784) the pool searched
    index, copy : (N, 10) from nearest_transformed(_reference), -1 where not searched;
        every class the variant's rule considers must have been searched
    eps, variant : as in tramer_attack

    Returns
    -------
    x_adv : float32 (N, 784) on 0..255, target : int64 (N,)
    """
    eps, variant = check_eps(eps), check_variant(variant)
    n = len(x)
    best = np.full(n, np.inf)
    target = np.full(n, -1, dtype=np.int64)
    x_adv = np.zeros((n, PIXELS), dtype=np.float32)
    candidates = searched_classes(y, variant)  # "tramer": only the hand-picked targets
    if np.any(index[candidates] < 0):
        raise ValueError(f"index: a candidate class of the {variant!r} rule was not searched")
    for k in range(NUM_CLASSES):  # class order: the first of equal ranks wins (strict <)
        rows = np.flatnonzero(candidates[:, k])
        if not len(rows):
            continue
        neighbour = ref_x[index[rows, k]]
        if variant == "tramer":
            neighbour = inverse_transform(neighbour, copy[rows, k])
            rank = tramer_removed_ink(x[rows], candidate := linf_step(x[rows], neighbour, eps))
        else:
            rank = authors_rank(x[rows], candidate := linf_step(x[rows], neighbour, eps))
        better = rank < best[rows]
        best[rows[better]] = rank[better]
        target[rows[better]] = k
        x_adv[rows[better]] = candidate[better]
    if np.any(target < 0):
        raise ValueError("index: some image has no searched neighbour of any candidate class")
    return x_adv, target


def tramer_attack(x, y, ref_x, ref_y, eps=0.3, variant="tramer"):
    """Tramer et al.'s automated l-inf invariance attack, or the authors' variant (module
    docstring), with the exact fast search.

    Parameters
    ----------
    x : (N, 28, 28) or (N, 784) images on 0..255: uint8, or whole-number floats; [0, 1]
        floats are rejected
    y : (N,) int labels 0..9
    ref_x, ref_y : the neighbour pool -- the training set for "tramer"; for "authors" the
        split being attacked (an image is never its own neighbour: its class is not searched)
    eps : l-inf budget in (0, 1], as a fraction of 255 (0.3 = 76.5 grey levels)
    variant : "tramer" or "authors"

    Returns
    -------
    x_adv : float32, same shape as x, exact values on the 0..255 scale
    target : int64 (N,) the class each example was moved towards (!= y)
    """
    shape = getattr(x, "shape", None)
    x8, ref8 = as_uint8_images(x, "x"), as_uint8_images(ref_x, "ref_x")
    y, ref_y = _check_labels(y, "y", len(x8)), _check_labels(ref_y, "ref_y", len(ref8))
    eps, variant = check_eps(eps), check_variant(variant)
    classes = searched_classes(y, variant)
    _check_pool(classes, ref_y)
    index, copy, _ = nearest_transformed(x8, y, classes=classes, pool=prepare_pool(ref8, ref_y))
    x_adv, target = examples_from_neighbours(x8, y, ref8, index, copy, eps, variant)
    return x_adv.reshape(shape), target


# ---- whole MNIST splits: committed, cached, or generated in resumable chunks ----------

SPLITS = ("train", "test")
SEARCH_VERSION = 1  # bump when the search's output could change: old caches go stale
CHUNK_IMAGES = 500  # images per progress file
DEFAULT_CACHE_DIR = os.path.join(data.DATA_DIR, "cache")
# tinyadv's own search results for the authors' variant on both MNIST splits (see
# data/README.md): for each image and class, the neighbour's row and copy. The examples are
# rebuilt from them exactly (examples_from_neighbours) in seconds; the search itself takes
# minutes (test) to over an hour (train) on two cores.
COMMITTED = {("authors", "test"): ("ovalle2022_attack/authors_test_neighbours.npz",
                                   "51e8ba1535d203646c9df70e46cfb00cb1313d56f8fea7044e044e6f736f4f0c"),
             ("authors", "train"): ("ovalle2022_attack/authors_train_neighbours.npz",
                                    "ae5527e2a61ffdf8c46193d6f68ff35287da52132561840c9d126937345b8657")}
TABLE_KEYS = ("index", "copy", "dist2")


@functools.lru_cache(maxsize=2)  # read, checksummed and converted once per process
def mnist_uint8(split):
    """An MNIST split as the attack sees it: uint8 (N, 784) on 0..255 and int64 labels, both
    read-only (they are shared by every caller)."""
    X, y = data.load_mnist(split)
    X = np.rint(X * np.float32(255)).astype(np.uint8)
    for array in (X, y):
        array.setflags(write=False)
    return X, y


def search_key(variant, split):
    """Everything a search table depends on: the algorithm's version, the variant (which
    pool, which classes), the split, and the MNIST files' checksums."""
    pool_split = split if variant == "authors" else "train"
    spec = {"version": SEARCH_VERSION, "variant": variant, "split": split, "pool": pool_split,
            "grid": GRID.tolist(), "mnist": {name: data.MNIST_SHA256[name] for name in
                                             data.MNIST_FILES[split] + data.MNIST_FILES[pool_split]}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _valid_table(arrays, y, classes, num_ref, key):
    """Why a loaded table cannot be used, or None if it can."""
    if str(arrays.get("key", "")) != key:
        return "stale (made by another version or from other data)"
    n = len(y)
    for name in TABLE_KEYS:
        if arrays[name].shape != (n, NUM_CLASSES):
            return f"{name} has shape {arrays[name].shape}, expected ({n}, {NUM_CLASSES})"
    index, copy, dist2 = (arrays[name].astype(np.int64) for name in TABLE_KEYS)
    if not (np.all((index[classes] >= 0) & (index[classes] < num_ref)) and np.all(index[~classes] == -1)
            and np.all((copy[classes] >= 0) & (copy[classes] < NUM_COPIES))
            and np.all(dist2[classes] >= 0)):
        return "values out of range"
    return None


def _read_table(path, y, classes, num_ref, key, expected_sha256=None):
    """(index, copy, dist2) from a table file, or (None, why)."""
    if not os.path.exists(path):
        return None, "missing"
    try:
        if expected_sha256 is not None:
            payload = data.read_verified(path, expected_sha256, decompress=False)
        else:
            with open(path, "rb") as f:
                payload = f.read()
        with np.load(io.BytesIO(payload), allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return None, f"unreadable ({type(err).__name__}: {err})"
    if any(name not in arrays for name in TABLE_KEYS):
        return None, "unreadable (arrays missing)"
    why = _valid_table(arrays, y, classes, num_ref, key)
    if why:
        return None, why
    return tuple(arrays[name].astype(np.int64) for name in TABLE_KEYS), "ok"


def _table_arrays(table, key):
    index, copy, dist2 = table
    return {"key": np.array(key), "index": index.astype(np.int32), "copy": copy.astype(np.int16),
            "dist2": dist2.astype(np.int32)}


def generate_search_table(variant, split, limit=None, cache_dir=None, log=print, from_end=False):
    """The search result (index, copy, dist2), each (N, 10) int64, for the first ``limit``
    images of an MNIST split, in resumable chunks of CHUNK_IMAGES images.

    Each finished chunk is written atomically to ``cache_dir/tramer_<variant>_<split>_<key>/``
    and reused on the next run, so a Ctrl-C loses at most the chunk in progress and never
    leaves a half-written file. One progress line per chunk, with the time left.
    ``from_end``: take the chunks from the last one. A second run started that way beside a
    first one shares the work: before each chunk, both skip what the other has written.
    """
    variant = check_variant(variant)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    x, y = mnist_uint8(split)
    n = len(x) if limit is None else _check_limit(limit, len(x))
    ref_x, ref_y = (x, y) if variant == "authors" else mnist_uint8("train")
    key = search_key(variant, split)
    folder = os.path.join(DEFAULT_CACHE_DIR if cache_dir is None else cache_dir,
                          f"tramer_{variant}_{split}_{key[:16]}")
    classes = searched_classes(y[:n], variant)
    tables, todo = [], []
    for start in range(0, n, CHUNK_IMAGES):
        stop = min(start + CHUNK_IMAGES, n)
        path = os.path.join(folder, f"chunk_{start:05d}_{stop:05d}.npz")
        table, _ = _read_table(path, y[start:stop], classes[start:stop], len(ref_x), key)
        tables.append(table)
        if table is None:
            todo.append((len(tables) - 1, start, stop, path))
    if todo:
        log(f"tramer: {variant} attack on MNIST {split} (first {n} images): "
            f"{len(tables) - len(todo)} of {len(tables)} chunks already in {folder}")
        pool = prepare_pool(ref_x, ref_y)
        t0, total = time.perf_counter(), sum(b - a for _, a, b, _ in todo)
        for slot, start, stop, path in (todo[::-1] if from_end else todo):
            table, _ = _read_table(path, y[start:stop], classes[start:stop], len(ref_x), key)
            if table is not None:  # written meanwhile by another run
                tables[slot] = table
                continue
            table = nearest_transformed(x[start:stop], y[start:stop], classes=classes[start:stop],
                                        pool=pool)
            save_npz_atomic(path, _table_arrays(table, key))
            tables[slot] = table
            # Count what is on disk, not what this run did: a second run (from_end) shares the
            # work, and the time left is the rate at which chunks appear, from both.
            done = sum(b - a for _, a, b, p in todo if os.path.exists(p))
            elapsed = time.perf_counter() - t0
            left = elapsed / done * (total - done)
            log(f"tramer: images {start}-{stop - 1} done; {done} of {total} written "
                f"in {elapsed:.0f} s, about {left / 60:.1f} min left")
    return tuple(np.concatenate([t[i] for t in tables]) for i in range(3))


def _check_limit(limit, size):
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= size:
        raise ValueError(f"limit: expected an integer in 1..{size}, got {limit!r}")
    return int(limit)


def committed_table_path(variant, split):
    entry = COMMITTED.get((variant, split))
    return None if entry is None else os.path.join(data.DATA_DIR, entry[0])


def write_committed_table(variant, split, cache_dir=None, log=print):
    """Maintainers: write the (cached or generated) search table of a whole split to its
    place in data/ (COMMITTED), compressed and atomically; returns its SHA-256, which goes
    into COMMITTED so that every load verifies it."""
    path = committed_table_path(variant, split)
    if path is None:
        raise ValueError(f"variant, split: tinyadv commits only {sorted(COMMITTED)}, got {(variant, split)}")
    table = generate_search_table(variant, split, None, cache_dir, log)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **_table_arrays(table, search_key(variant, split)))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    log(f"tramer: wrote {path} ({os.path.getsize(path)} bytes), sha256 {digest}")
    return digest


def load_search_table(variant, split, limit=None, cache_dir=None, log=print):
    """The search table for an MNIST split: from data/ if tinyadv ships it (checksum
    verified), else from the cache, else generated (generate_search_table)."""
    variant = check_variant(variant)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    entry = COMMITTED.get((variant, split))
    if entry is not None and entry[1] is not None:
        path = os.path.join(data.DATA_DIR, entry[0])
        x, y = mnist_uint8(split)
        n = len(x) if limit is None else _check_limit(limit, len(x))
        table, why = _read_table(path, y, searched_classes(y, variant), len(x),
                                 search_key(variant, split), expected_sha256=entry[1])
        if table is None:
            raise data.DataFileError(f"{path}: {why}. Restore it with `git checkout -- "
                                     f"{os.path.relpath(path)}`.")
        log(f"tramer: {variant} neighbours of MNIST {split} loaded from {path}")
        return tuple(t[:n] for t in table)
    return generate_search_table(variant, split, limit, cache_dir, log)


def load_attack_set(variant, split, limit=None, cache_dir=None, log=print):
    """The attack's examples for (the first ``limit`` images of) an MNIST split.

    "authors": each image's neighbours come from the split itself; "tramer": from the
    training set. Both at eps = 0.3, the published setting.

    Returns
    -------
    x_inv : float32 (N, 784) exact values on the 0..255 scale (divide by 255 for [0, 1])
    y_target : int64 (N,) the class each example was moved towards
    y_source : int64 (N,) the MNIST label of its source image
    """
    index, copy, _ = load_search_table(variant, split, limit, cache_dir, log)
    x, y = mnist_uint8(split)
    n = len(index)
    ref_x = x if variant == "authors" else mnist_uint8("train")[0]
    x_inv, y_target = examples_from_neighbours(x[:n], y[:n], ref_x, index, copy, 0.3, variant)
    return x_inv, y_target, y[:n]


PUBLISHED = {0.3: "automated_eps03.npy", 0.4: "automated_eps04.npy"}


def verify_published(eps=0.3):
    """tinyadv's "tramer" examples for the 100 published test indices against Tramer et
    al.'s file for that eps: {"identical", "total", "worst", "file", "per_image"}."""
    if eps not in PUBLISHED:
        raise ValueError(f"eps: expected one of {sorted(PUBLISHED)} (the published files), got {eps}")
    name = f"linf_eps0{int(round(eps * 10))}"
    images_file, _, index_file = data.TRAMER_SETS[name]
    published = data._load_npy_verified(images_file).reshape(-1, PIXELS).astype(np.float32)
    indices = data._load_npy_verified(index_file).astype(np.int64)
    x, y = mnist_uint8("test")
    train_x, train_y = mnist_uint8("train")
    ours, _ = tramer_attack(x[indices], y[indices], train_x, train_y, eps=eps, variant="tramer")
    worst_per_image = np.abs(ours - published).max(axis=1)
    return {"identical": int(np.sum(worst_per_image == 0)), "total": len(indices),
            "worst": float(worst_per_image.max()), "file": images_file, "per_image": worst_per_image}


def main(argv=None):
    """python -m tinyadv.invariance --generate tramer|authors --split test|train [--limit N]
    or --verify-tramer [--eps 0.3]: the paper's own attack (this module)."""
    parser = argparse.ArgumentParser(prog="python -m tinyadv.invariance", description=main.__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--generate", choices=VARIANTS,
                        help="build (or load from data/ or the cache) that attack's examples")
    action.add_argument("--verify-tramer", action="store_true",
                        help="compare tinyadv's Tramer examples with the published ones")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--eps", type=float, default=0.3,
                        help="--verify-tramer: 0.3 (automated_eps03.npy) or 0.4 (automated_eps04.npy)")
    parser.add_argument("--cache-dir", default=None, help=f"default {DEFAULT_CACHE_DIR}")
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
        write_committed_table(args.generate, args.split, args.cache_dir)
        return 0
    if args.generate:
        if args.from_end:  # build the cache only; loading happens on the next (plain) run
            generate_search_table(args.generate, args.split, args.limit, args.cache_dir,
                                         from_end=True)
        x_inv, y_target, y_source = load_attack_set(args.generate, args.split, args.limit,
                                                           args.cache_dir)
        print(f"{args.generate} attack, MNIST {args.split}: {len(x_inv)} examples, targets per "
              f"class {np.bincount(y_target, minlength=10).tolist()}, "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    result = verify_published(args.eps)
    print(f"Tramer et al.'s automated l-inf examples, eps={args.eps}, {result['file']}: "
          f"{result['identical']} of {result['total']} identical to tinyadv's, worst pixel "
          f"difference {result['worst']:g} grey levels ({time.perf_counter() - t0:.1f} s)")
    return 0 if result["identical"] == result["total"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
