"""What the sandbox's three kernel modules (identity, landlock, seccomp) share: the C library,
to make raw system calls by number, and this machine's architecture, which picks the numbers."""
import ctypes
import os

__all__ = ["libc", "machine", "MACHINE_ALIASES"]

# uname's names for the two architectures whose system call numbers the sandbox knows.
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def libc():
    """The C library, errno kept (ctypes.get_errno), syscall() returning a long."""
    library = ctypes.CDLL(None, use_errno=True)
    library.syscall.restype = ctypes.c_long
    return library


def machine():
    """'x86_64', 'aarch64', or what uname says on another machine (lower case)."""
    name = os.uname().machine.lower() if hasattr(os, "uname") else "unknown"
    return MACHINE_ALIASES.get(name, name)
