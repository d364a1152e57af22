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

    Why: every training step allocates and frees a few MB of temporaries (the concatenated
    batch, activations, gradients). Depending on where they happen to land on the heap, glibc
    may hand them back to the operating system at every free, and the next step then pays
    about a thousand page faults to get them back. Measured on the full step: ~1000 minor
    faults and 3-5 ms of kernel time per step, a third of the step, in processes that hit
    that heap layout -- and none in those that do not, which made timings bimodal. Raising
    glibc's mmap and trim thresholds keeps the memory in the process for the next step (it
    holds on to at most 64 MB of free heap; blocks of 16 MB or more are still returned at
    once). Only Linux/glibc has mallopt; elsewhere this is a no-op. Returns True if it took
    effect.
    """
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # constants from glibc's <malloc.h>
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 16 << 20)  # blocks < 16 MB from the heap
                    and libc.mallopt(M_TRIM_THRESHOLD, 64 << 20))  # keep up to 64 MB free
    except (OSError, AttributeError, TypeError):  # no mallopt: not glibc (macOS, Windows)
        return False
