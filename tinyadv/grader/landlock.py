"""Linux Landlock through ctypes: a child process takes away its own rights, for good.

Landlock (Linux 5.13+) lets any process -- no root, no setup -- give up rights for itself and
every process it starts; nothing can give them back. Three system calls do it:

    landlock_create_ruleset(attr, size, flags)  a new, empty set of rules; with flags=1 it
                                                only returns the ABI version the kernel offers
    landlock_add_rule(ruleset, type, rule, 0)   "beneath this folder (or on this file), allow
                                                these rights"
    landlock_restrict_self(ruleset, 0)          from now on, only what the rules allow

Everything the ruleset *handles* is denied unless a rule allows it; what it does not handle
stays allowed. Each ABI version handles more (the masks below); on an older kernel we
handle what it knows and say what is missing (``Policy.missing``):

    ABI 1  the file system: execute, read, write, list, create, remove files and folders
    ABI 2  moving or linking a file into another folder (REFER)
    ABI 3  truncating a file
    ABI 4  TCP: bind and connect (there is no rule for UDP or other protocols)
    ABI 5  ioctl on character and block devices
    ABI 6  scoping: no signal and no abstract Unix socket reaches a process outside the
           sandbox (another child, the checker, any process of the user)
    ABI 7  audit logging only: nothing new to handle

Rights are checked when a file is *opened*: descriptors opened before (the child's channels)
keep working, which is why the child restricts itself after NumPy and tinyadv are loaded and
before the submission is imported. What Landlock does not cover: stat() and other metadata
(a file's existence, size and times can still be read anywhere), UDP and pathname Unix
sockets, and CPU time or memory as side channels.

Since Linux 5.1 a new system call gets one number on (nearly) every architecture, and
Landlock's are 444-446; we claim only the two architectures we have checked, x86_64 and
aarch64 (``uname -m``), and elsewhere say that there is no Landlock.
"""
import ctypes
import errno
import os
import sys

from . import syscalls

__all__ = ["abi_version", "missing", "isolation_label", "Policy", "restrict_self", "FULL_ABI"]

SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
PR_SET_NO_NEW_PRIVS = 38
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1

# File-system rights, by the ABI that added them (include/uapi/linux/landlock.h).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # rights a file rule may hold
READ_ONLY = READ_FILE | READ_DIR
READ_EXECUTE = READ_ONLY | EXECUTE
FULL_ABI = 6  # every rule the checker wants is enforced from here on


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is __attribute__((packed)): 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]




def abi_version():
    """(ABI version, None) or (0, why there is none): the Landlock this kernel offers."""
    if not sys.platform.startswith("linux"):
        return 0, f"not Linux ({sys.platform})"
    if syscalls.machine() not in SYSCALLS:
        return 0, f"no Landlock system call numbers known for {syscalls.machine()}"
    try:
        libc = syscalls.libc()
    except OSError as exc:
        return 0, f"no C library reachable ({exc})"
    create = SYSCALLS[syscalls.machine()][0]
    version = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if version >= 1:
        return int(version), None
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        return 0, "kernel without Landlock (before Linux 5.13, or built without it)"
    if code == errno.EOPNOTSUPP:
        return 0, "kernel with Landlock turned off (add landlock to the lsm= boot parameter)"
    if code == errno.EPERM:
        return 0, "Landlock forbidden here (a container's seccomp filter?)"
    return 0, f"Landlock unavailable ({errno.errorcode.get(code, code)})"


def handled(abi):
    """(fs, net, scoped) masks the ruleset handles on this ABI: everything the ABI knows."""
    fs = FS_BY_ABI[max(a for a in FS_BY_ABI if a <= abi)] if abi >= 1 else 0
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scoped


def missing(abi):
    """What a kernel of this ABI cannot enforce of the checker's rules, in words."""
    gaps = []
    if abi < 1:
        return ["every Landlock rule (files, TCP, signals)"]
    if abi < 2:
        gaps.append("moving files between folders (ABI 2)")
    if abi < 3:
        gaps.append("truncating readable files (ABI 3)")
    if abi < 4:
        gaps.append("TCP bind and connect (ABI 4)")
    if abi < 6:
        gaps.append("signals and abstract Unix sockets to processes outside the sandbox (ABI 6)")
    return gaps


def isolation_label(abi, why_none=None):
    """What the report and the gradebook say a child ran under."""
    if abi >= FULL_ABI:
        return f"landlock-{abi}"
    if abi >= 1:
        return f"landlock-{abi}, without " + "; ".join(missing(abi))
    return f"process-only: {why_none or 'no Landlock'}"


class Policy:
    """What one child may touch: ``read_execute`` and ``read``, folders (everything beneath)
    and files it may read -- and, the first, execute; ``write``: folders where it may also
    write, create and remove."""

    def __init__(self, read_execute=(), read=(), write=()):
        self.read_execute, self.read, self.write = list(read_execute), list(read), list(write)


def _add_path_rule(libc, numbers, ruleset, path, access, fs_mask):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a folder of the list that does not exist here: nothing to allow
    try:
        if not os.path.isdir(path):
            access &= FILE_ONLY
        rule = _PathBeneathAttr(access & fs_mask, fd)
        if libc.syscall(numbers[1], ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                        ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_add_rule({path}): {os.strerror(code)}")
    finally:
        os.close(fd)


def restrict_self(policy, abi):
    """Restrict this process (and what it starts) to ``policy``, with what ``abi`` knows.

    prctl(PR_SET_NO_NEW_PRIVS) comes first: the kernel requires it of a process without
    CAP_SYS_ADMIN, and it keeps a set-user-id program from handing rights back. Raises
    OSError if any step fails; on success the restriction cannot be undone.
    """
    libc = syscalls.libc()
    numbers = SYSCALLS[syscalls.machine()]
    fs, net, scoped = handled(abi)
    attr = _RulesetAttr(fs, net, scoped)
    # The size tells the kernel which fields we fill: an older kernel rejects a larger one.
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(numbers[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"landlock_create_ruleset: {os.strerror(code)}")
    try:
        for paths, access in ((policy.read_execute, READ_EXECUTE), (policy.read, READ_ONLY),
                              (policy.write, fs)):  # write: every file-system right, there only
            for path in paths:
                _add_path_rule(libc, numbers, ruleset, path, access, fs)
        # No network rule at all: with TCP handled, every bind and connect is refused.
        if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0),
                      ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        if libc.syscall(numbers[2], ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"landlock_restrict_self: {os.strerror(code)}")
    finally:
        os.close(ruleset)
