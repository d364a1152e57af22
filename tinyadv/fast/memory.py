"""The C allocator's setting for a process that trains: speed only, no number changes."""
import ctypes
import functools

__all__ = ["keep_freed_memory"]


@functools.cache  # a process-wide setting: once is enough
def keep_freed_memory():
    """Ask the C allocator (glibc) to keep freed memory for reuse instead of returning it.

    A speed setting for a process that trains: the reproduction's workers call it when they
    start, and so do the benchmark and every lesson (tinyadv/lesson.py); the numbers do not
    change.

    Why: every training step allocates and frees megabytes of temporaries (the concatenated
    batch, activations, gradients; the CNN's patch matrices, pooling windows and Fourier
    transforms). Depending on where they land on the heap, glibc may hand them back to the
    operating system at every free, and the next step then pays page faults to get them back.
    Raising glibc's mmap and trim thresholds keeps the memory in the process for the next
    step: it holds on to at most 256 MB of free heap, and blocks of 16 MB or more are still
    returned at once (data/results.md, "Speed", gives the page faults this saves). Only
    Linux/glibc has mallopt; elsewhere this is a no-op. Returns True if it took effect.
    """
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # constants from glibc's <malloc.h>
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 16 << 20)  # blocks < 16 MB from the heap
                    and libc.mallopt(M_TRIM_THRESHOLD, 256 << 20))  # keep up to 256 MB free
    except (OSError, AttributeError, TypeError):  # no mallopt: not glibc (macOS, Windows)
        return False
