"""Atomic file writes: a reader (or an interrupted run) never sees a half-written file.

Everything is written to a temporary file in the destination's own folder and then renamed
over the destination; a rename within one file system is atomic. If writing fails or is
interrupted (Ctrl-C), the temporary file is removed and the destination is untouched.
"""
import contextlib
import os
import tempfile

import numpy as np

__all__ = ["atomic_path", "write_text_atomic", "save_npz_atomic", "remove_temporary_files"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    Temporary names end in ".tmp", so leftovers of a process killed outright (kill -9) are
    easy to recognise and delete.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-", suffix=".tmp")
    try:  # from here on, whatever happens (a Ctrl-C included) removes the temporary file
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; results are for everyone
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_temporary_files(folder):
    """Delete the leftovers (".<name>-XXXX.tmp") of atomic writes a stopped process never
    finished -- never real results. Returns how many were removed."""
    removed = 0
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.startswith(".") and name.endswith(".tmp"):
            try:
                os.remove(os.path.join(folder, name))
                removed += 1
            except FileNotFoundError:  # another process cleaned it first
                pass
    return removed


def write_text_atomic(path, text):
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def save_npz_atomic(path, arrays):
    """np.savez a dict of arrays atomically (read back with np.load(..., allow_pickle=False))."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to the name
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
