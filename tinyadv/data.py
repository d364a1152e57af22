"""MNIST, the human-labelled invariance examples of Tramer et al. 2020, and batching.

Every file is verified by SHA-256 before it is used (for MNIST: of the *decompressed* IDX
bytes, which are canonical; the gzip bytes differ between mirrors). Everything lives in the
repository's ``data/`` folder, so a fresh clone needs no network.
"""
import gzip
import hashlib
import io
import os
import zlib

import numpy as np

from .tramer_sets import TRAMER_SETS, TRAMER_SHA256

__all__ = ["load_mnist", "load_tramer", "iterate_minibatches", "read_verified", "DataFileError",
           "DATA_DIR", "TRAMER_DIR", "TRAMER_SETS"]

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
TRAMER_DIR = os.path.join(DATA_DIR, "tramer2020")  # TRAMER_SETS' files are relative to it

MNIST_FILES = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_SHA256 = {  # of the decompressed bytes, from data/README.md
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

class DataFileError(OSError):
    """A data file is missing, corrupted or not in the expected format."""


def restore_hint(path):
    return (f"Restore it from the repository (e.g. `git checkout -- {os.path.relpath(path)}`) "
            f"or point root= at a folder holding the original file.")


def read_verified(path, expected_sha256, decompress):
    """Return the bytes of ``path`` (gunzipped if asked) after checking their SHA-256."""
    if not os.path.isfile(path):
        raise DataFileError(f"data file not found: {path}. {restore_hint(path)}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        payload = gzip.decompress(raw) if decompress else raw
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a damaged deflate stream
        raise DataFileError(f"cannot read {path} ({err}): the file is corrupted. "
                            f"{restore_hint(path)}") from err
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected_sha256:
        raise DataFileError(f"checksum mismatch for {path}: expected sha256 {expected_sha256}, "
                            f"got {digest}. The file is corrupted or was replaced. "
                            f"{restore_hint(path)}")
    return payload


def _parse_idx(payload, path, ndim):
    """Parse IDX bytes: a big-endian magic (0, 0, dtype 0x08 = uint8, ndim), then dims."""
    magic = payload[:4]
    if len(payload) < 4 + 4 * ndim or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise DataFileError(f"{path}: not an unsigned-byte IDX file with {ndim} dimension(s)")
    dims = np.frombuffer(payload, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(split, root=None):
    """Load an MNIST split.

    Parameters
    ----------
    split : "train" or "test"
    root : folder holding the four IDX .gz files (default: the repository's data/mnist)

    Returns
    -------
    X : float32 (N, 784), pixels scaled to [0, 1]
    y : int64 (N,), digits 0..9
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    root = os.path.join(DATA_DIR, "mnist") if root is None else root
    images_name, labels_name = MNIST_FILES[split]
    images_path = os.path.join(root, images_name)
    labels_path = os.path.join(root, labels_name)
    images = _parse_idx(read_verified(images_path, MNIST_SHA256[images_name], True), images_path, 3)
    labels = _parse_idx(read_verified(labels_path, MNIST_SHA256[labels_name], True), labels_path, 1)
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)  # (N, 784)
    return X, labels.astype(np.int64)


def _load_npy_verified(relpath):
    path = os.path.join(TRAMER_DIR, relpath)
    payload = read_verified(path, TRAMER_SHA256[relpath], decompress=False)
    try:
        return np.load(io.BytesIO(payload), allow_pickle=False)
    except ValueError as err:
        raise DataFileError(f"{path}: not a plain .npy array ({err}). {restore_hint(path)}") from err


def load_tramer(name):
    """Load one human-labelled invariance set of Tramer et al. 2020 (MNIST test images).

    Parameters
    ----------
    name : "linf_eps03", "linf_eps04", "linf_manual_eps04" or "l0"

    Returns
    -------
    X : float32 (M, 784) in [0, 1], the perturbed images
    y_human : int64 (M,), the label human annotators gave each perturbed image -- the oracle
        label O(x*), the one a robust model should predict
    y_source : int64 (M,), the MNIST test label of each source image
    """
    if name not in TRAMER_SETS:
        raise ValueError(f"name: expected one of {sorted(TRAMER_SETS)}, got {name!r}")
    images_file, labels_file, index_file = TRAMER_SETS[name]
    images = _load_npy_verified(images_file)
    y_human = _load_npy_verified(labels_file).astype(np.int64)
    source_index = _load_npy_verified(index_file).astype(np.int64)
    # The files store 0..255 (uint8, or float32 for eps 0.3); round-trip errors are clipped.
    X = np.clip(images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0), 0.0, 1.0)
    _, y_test = load_mnist("test")
    return X, y_human, y_test[source_index]


def iterate_minibatches(n, batch_size, rng, drop_last=False):
    """Yield index arrays that cover range(n) in a random order, batch_size at a time.

    One permutation per call (per epoch), drawn from the explicit ``rng``, so the same seed
    gives the same batches. Use the indices to slice several aligned arrays at once.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    order = rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]

