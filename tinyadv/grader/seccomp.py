"""No new processes, for root too: a seccomp filter that refuses fork, vfork and clone.

A child sets RLIMIT_NPROC to 0 (child.py), which stops an ordinary user's submission from
starting any process or thread -- but not root's: the kernel exempts root from that limit.
So every child also installs this filter, the same for every user: from then on the system
calls that create a process or a thread (fork, vfork, clone, clone3) fail with EPERM, for the
child and anything it executes, for good. That keeps a submission to one process, so the
``--memory`` limit (RLIMIT_AS, per process) holds for the submission as a whole, and nothing
it starts can outlive its check, however deep or detached.

The filter is a classic BPF program the kernel runs on every system call:

    load the architecture       not this one (a 32-bit call through int 0x80): refuse
    load the call's number      x86_64's x32 numbers (bit 30 set): refuse
                                fork, vfork, clone, clone3: refuse with EPERM
    otherwise                   allow

It is installed with seccomp(SECCOMP_SET_MODE_FILTER, TSYNC), so every thread of the child
gets it, after prctl(PR_SET_NO_NEW_PRIVS) (the kernel requires one or the other of that and
CAP_SYS_ADMIN). Only x86_64 and aarch64 are known here; elsewhere, and on a kernel without
seccomp filters, ``refuse_new_processes`` says why not and nothing is installed.
"""
import ctypes
import errno
import os
import sys

__all__ = ["available", "refuse_new_processes", "program"]

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/bpf_common.h): load a word at an absolute offset of struct
# seccomp_data (nr at 0, arch at 4), jump if equal / greater or equal, return.
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
NR_OFFSET, ARCH_OFFSET = 0, 4

# (audit architecture, seccomp system call number, the calls that create a process or thread)
ARCHITECTURES = {
    "x86_64": (0xC000003E, 317, {"clone": 56, "fork": 57, "vfork": 58, "clone3": 435}),
    "aarch64": (0xC00000B7, 277, {"clone": 220, "clone3": 435}),
}
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _machine():
    machine = os.uname().machine.lower() if hasattr(os, "uname") else "unknown"
    return MACHINE_ALIASES.get(machine, machine)


def program(machine):
    """The filter for ``machine`` as a list of (code, jt, jf, k) instructions."""
    arch, _, calls = ARCHITECTURES[machine]
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    numbers = sorted(calls.values())
    # Jump offsets count instructions after the current one; "refuse" is the last.
    body = [(LD_W_ABS, 0, 0, ARCH_OFFSET),
            (JEQ_K, 1, 0, arch),  # the native architecture: go on; else fall into refuse
            (RET_K, 0, 0, refuse),
            (LD_W_ABS, 0, 0, NR_OFFSET)]
    checks = [(JGE_K, 0, 0, X32_SYSCALL_BIT)] + [(JEQ_K, 0, 0, n) for n in numbers]
    for i, (code, _, _, k) in enumerate(checks):
        body.append((code, len(checks) - i, 0, k))  # match: jump past the rest and "allow"
    body += [(RET_K, 0, 0, SECCOMP_RET_ALLOW), (RET_K, 0, 0, refuse)]
    return body


def available():
    """None if this machine can install the filter, else why not -- asked without installing
    it (the checker asks; each child installs its own)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if _machine() not in ARCHITECTURES:
        return f"no seccomp filter known for {_machine()}"
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            actions = f.read().split()
    except OSError:
        return "kernel without seccomp filters (no /proc/sys/kernel/seccomp)"
    return None if "errno" in actions else "kernel whose seccomp cannot return an error"


def refuse_new_processes():
    """Install the filter in this process (every thread). Returns None on success, else the
    reason it could not be installed (nothing is installed then)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    machine = _machine()
    if machine not in ARCHITECTURES:
        return f"no seccomp filter known for {machine}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"no C library reachable ({exc})"
    libc.syscall.restype = ctypes.c_long
    instructions = program(machine)
    array = (_SockFilter * len(instructions))(*[_SockFilter(*i) for i in instructions])
    prog = _SockFprog(len(instructions), array)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        return f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}"
    seccomp_call = ARCHITECTURES[machine][1]
    if libc.syscall(ctypes.c_long(seccomp_call), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog)) == 0:
        return None
    code = ctypes.get_errno()
    if code == errno.ENOSYS:  # a kernel before seccomp(2) (3.17): the older prctl form
        if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:
            return None
        code = ctypes.get_errno()
    if code == errno.EINVAL:
        return "kernel without seccomp filters"
    return f"seccomp filter refused ({errno.errorcode.get(code, code)})"
