"""The label-flipping generator's neighbours for all of MNIST, searched once and cached.

The search (tinyadv/fast/nearest.py; tinyadv/invariance.py says what it computes) does not
depend on eps, so one cache file serves every eps: it is applied on loading, which is cheap.
The file lives in data/cache/, keyed by the search settings and the SHA-256 of the data; a
missing, stale or corrupt one is searched again (README.md gives the time it takes).
"""
import hashlib
import json
import os
import time
import zipfile

import numpy as np

from .. import data
from ..fast.nearest import nearest_by_class
from ..fileio import save_npz_atomic
from ..invariance import Neighbours, check_shifts, flip_from_neighbours, shift_grid
from ..validate import NUM_CLASSES, check_eps

__all__ = ["invariance_neighbours", "invariance_sets", "cache_key", "cache_path",
           "DEFAULT_CACHE_DIR"]

CACHE_VERSION = 1  # bump when the search or the file layout changes: old caches go stale
DEFAULT_CACHE_DIR = os.path.join(data.DATA_DIR, "cache")


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
    return _cached_neighbours(*mnist, check_shifts(shifts), cache_dir, log)


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
    shifts = check_shifts(shifts)
    if mnist is None:
        mnist = data.load_mnist("train") + data.load_mnist("test")
    X_train, y_train, X_test, y_test = mnist
    neighbours = _cached_neighbours(X_train, y_train, X_test, y_test, shifts, cache_dir, log)
    train = flip_from_neighbours(X_train, y_train, X_train, neighbours["train"], eps, shifts)
    test = flip_from_neighbours(X_test, y_test, X_train, neighbours["test"], eps, shifts)
    return {"train": train, "test": test}
