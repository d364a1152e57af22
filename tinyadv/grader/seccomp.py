"""The system calls a submission may not make, for root too: a seccomp filter.

A child sets RLIMIT_NPROC to 0 (child.py), which stops an ordinary user's submission from
starting any process or thread -- but not root's: the kernel exempts root from that limit.
Several other things have nothing to do with a gradient and everything to do with reaching
past the child, whoever runs the checker. So every child installs this filter, the same for
every user: from then on these calls fail with EPERM, for the child and anything it
executes, for good.

    processes       fork, vfork, clone, clone3: the submission stays one process, so the
                    ``--memory`` limit holds for all of it and nothing outlives its check
    sockets         socket() of every family -- TCP, UDP, MPTCP, Unix (a pathname socket, an
                    ssh-agent's or docker.sock, is a file Landlock does not guard) -- and
                    socketpair() (each pair holds up to ~0.4 MB of kernel buffers outside
                    the address-space limit)
    io_uring        its operations (open a socket, set an xattr, ...) bypass this filter
    shared memory   System V shared memory, semaphores and message queues, POSIX message
                    queues, memfd_create and memfd_secret: memory and messages that would
                    outlive the child or escape its address-space limit
    keys            add_key, request_key, keyctl: the teacher's keyrings
    namespaces      unshare, setns, mount and its kin, chroot: the child has set up its own
                    (identity.py) before this filter, and changes nothing after
    other processes ptrace, process_vm_readv/writev, kcmp, pidfd_getfd, process_madvise,
                    perf_event_open, bpf, userfaultfd, open_by_handle_at
    aimed elsewhere prlimit64, setpriority, ioprio_set, sched_setparam, sched_setscheduler,
                    sched_setattr, sched_setaffinity, migrate_pages, move_pages: allowed
                    only on the child itself (pid 0 or its own): the kernel lets a process
                    change the limits and the priority of any other process of its user --
                    the checker's, a classmate's, through RLIMIT_CPU the checker's life
    metadata        (only where the child keeps the teacher's identity and has no
                    read-only view of the file systems, identity.py) chmod, chown, utime
                    and xattrs in every form, and the chattr ioctls: Landlock does not rule
                    metadata, and the owner of a file may change it

The filter is a classic BPF program the kernel runs on every system call:

    load the architecture           not this one (a 32-bit call through int 0x80): refuse
    load the call's number          x86_64's x32 numbers (bit 30 set): refuse
                                    a refused call: refuse
                                    a call aimed at a pid: load that argument; 0 or the
                                    child's own pid: allow, else refuse
    otherwise                       allow

It is installed with seccomp(SECCOMP_SET_MODE_FILTER, TSYNC), so every thread of the child
gets it, after prctl(PR_SET_NO_NEW_PRIVS) (the kernel requires one or the other of that and
CAP_SYS_ADMIN). Only x86_64 and aarch64 are known here (their numbers are from the kernel's
unistd tables); elsewhere, and on a kernel without seccomp filters, ``install`` says why not
and nothing is installed.
"""
import ctypes
import errno
import os
import sys

from . import syscalls

__all__ = ["available", "install", "program", "ARCHITECTURES"]

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/bpf_common.h): load a word at an absolute offset of struct
# seccomp_data (nr at 0, arch at 4, the low half of argument i at 16 + 8 i on these
# little-endian machines), jump if equal / greater or equal, return.
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
NR_OFFSET, ARCH_OFFSET = 0, 4


def _argument(i):
    return 16 + 8 * i  # a pid or a "which" is an int: the kernel reads the low 32 bits

# What `which` must be for setpriority (PRIO_PROCESS) and ioprio_set (IOPRIO_WHO_PROCESS):
# a process group or a user id would reach every process of the teacher's.
PRIO_PROCESS, IOPRIO_WHO_PROCESS = 0, 1
# The chattr ioctls (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR) and fcntl's F_SETPIPE_SZ (a pipe of
# 1 MB instead of 64 KB: kernel memory outside the address-space limit).
FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR, F_SETPIPE_SZ = 0x40086602, 0x401C5820, 1031

_NEW_IN_BOTH = {  # numbered alike on every architecture since Linux 5.1
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "memfd_secret": 447, "fchmodat2": 452, "setxattrat": 463,
    "removexattrat": 466, "open_tree_attr": 467, "file_setattr": 469,
}
# (audit architecture, seccomp's own number, {name: number}) -- from the kernel's
# arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h.
ARCHITECTURES = {
    "x86_64": (0xC000003E, 317, dict(_NEW_IN_BOTH, **{
        "clone": 56, "fork": 57, "vfork": 58, "socket": 41, "socketpair": 53,
        "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
        "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
        "msgctl": 71, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242,
        "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245, "memfd_create": 319,
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "kcmp": 312, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
        "name_to_handle_at": 303, "open_by_handle_at": 304,
        "prlimit64": 302, "setpriority": 141, "ioprio_set": 251, "sched_setparam": 142,
        "sched_setscheduler": 144, "sched_setaffinity": 203, "sched_setattr": 314,
        "migrate_pages": 256, "move_pages": 279,
        "chmod": 90, "fchmod": 91, "fchmodat": 268, "chown": 92, "fchown": 93, "lchown": 94,
        "fchownat": 260, "utime": 132, "utimes": 235, "futimesat": 261, "utimensat": 280,
        "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
        "lremovexattr": 198, "fremovexattr": 199, "ioctl": 16, "fcntl": 72})),
    "aarch64": (0xC00000B7, 277, dict(_NEW_IN_BOTH, **{
        "clone": 220, "socket": 198, "socketpair": 199,
        "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193,
        "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188,
        "msgctl": 187, "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182,
        "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185, "memfd_create": 279,
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41,
        "chroot": 51, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "kcmp": 272, "perf_event_open": 241, "bpf": 280, "userfaultfd": 282,
        "name_to_handle_at": 264, "open_by_handle_at": 265,
        "prlimit64": 261, "setpriority": 140, "ioprio_set": 30, "sched_setparam": 118,
        "sched_setscheduler": 119, "sched_setaffinity": 122, "sched_setattr": 274,
        "migrate_pages": 238, "move_pages": 239,
        "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "utimensat": 88,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16, "ioctl": 29, "fcntl": 25})),
}

# The calls, by reason (see the module docstring). A name an architecture lacks is skipped.
NEW_PROCESSES = ("fork", "vfork", "clone", "clone3")
REFUSED = NEW_PROCESSES + (
    "socket", "socketpair", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr", "memfd_create", "memfd_secret",
    "add_key", "request_key", "keyctl",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree",
    "open_tree_attr", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "process_madvise", "perf_event_open", "bpf", "userfaultfd", "name_to_handle_at",
    "open_by_handle_at")
PID_FIRST = ("prlimit64", "sched_setparam", "sched_setscheduler", "sched_setattr",
             "sched_setaffinity", "migrate_pages", "move_pages")  # argument 0 is a pid
WHICH_THEN_PID = {"setpriority": PRIO_PROCESS, "ioprio_set": IOPRIO_WHO_PROCESS}
METADATA = ("chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
            "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
            "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "removexattrat",
            "file_setattr")
METADATA_IOCTLS = (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]



def _assemble(lines):
    """Instructions with symbolic jump targets -> (code, jt, jf, k) tuples.

    Each line is (code, jt, jf, k) or ("label", name); jt and jf are label names, or 0 to
    fall through. BPF jumps count the instructions after the current one, at most 255."""
    labels, at = {}, 0
    for line in lines:
        if line[0] == "label":
            labels[line[1]] = at
        else:
            at += 1
    out = []
    for line in lines:
        if line[0] == "label":
            continue
        code, jt, jf, k = line
        here = len(out)
        offsets = [labels[j] - here - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= o <= 255 for o in offsets):
            raise ValueError(f"a jump of {offsets} instructions: the filter is too long")
        out.append((code, offsets[0], offsets[1], k))
    return out


def program(machine, own_pid, metadata=False):
    """The filter for ``machine`` as (code, jt, jf, k) instructions. ``own_pid``: the one pid
    (besides 0, "myself") the calls aimed at a process may name; ``metadata``: also refuse
    chmod, chown, utime, xattrs and the chattr ioctls everywhere."""
    arch, _, numbers = ARCHITECTURES[machine]
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    refused = [n for n in REFUSED + (METADATA if metadata else ()) if n in numbers]
    lines = [(LD_W_ABS, 0, 0, ARCH_OFFSET),
             (JEQ_K, 0, "refuse", arch),  # another architecture's numbers: refuse
             (LD_W_ABS, 0, 0, NR_OFFSET)]
    if machine == "x86_64":
        lines.append((JGE_K, "refuse", 0, X32_SYSCALL_BIT))
    lines += [(JEQ_K, "refuse", 0, numbers[name]) for name in refused]
    lines += [(JEQ_K, "pid in 0", 0, numbers[name]) for name in PID_FIRST if name in numbers]
    lines += [(JEQ_K, f"which {name}", 0, numbers[name]) for name in WHICH_THEN_PID]
    lines += [(JEQ_K, "fcntl", 0, numbers["fcntl"])]
    if metadata:
        lines += [(JEQ_K, "ioctl", 0, numbers["ioctl"])]
    lines += [(RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    for name, which in WHICH_THEN_PID.items():
        lines += [("label", f"which {name}"), (LD_W_ABS, 0, 0, _argument(0)),
                  (JEQ_K, "pid in 1", "refuse", which)]
    for i in (0, 1):
        lines += [("label", f"pid in {i}"), (LD_W_ABS, 0, 0, _argument(i)),
                  (JEQ_K, "allow", 0, 0), (JEQ_K, "allow", "refuse", own_pid)]
    lines += [("label", "fcntl"), (LD_W_ABS, 0, 0, _argument(1)),
              (JEQ_K, "refuse", "allow", F_SETPIPE_SZ)]
    if metadata:
        lines += [("label", "ioctl"), (LD_W_ABS, 0, 0, _argument(1))]
        lines += [(JEQ_K, "refuse", 0, request) for request in METADATA_IOCTLS]
        lines += [(RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    lines += [("label", "allow"), (RET_K, 0, 0, SECCOMP_RET_ALLOW),
              ("label", "refuse"), (RET_K, 0, 0, refuse)]
    return _assemble(lines)


def available():
    """None if this machine can install the filter, else why not -- asked without installing
    it (the checker asks; each child installs its own)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if syscalls.machine() not in ARCHITECTURES:
        return f"no seccomp filter known for {syscalls.machine()}"
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            actions = f.read().split()
    except OSError:
        return "kernel without seccomp filters (no /proc/sys/kernel/seccomp)"
    return None if "errno" in actions else "kernel whose seccomp cannot return an error"


def install(metadata=False, only_processes=False):
    """Install the filter in this process (every thread). Returns None on success, else the
    reason it could not be installed (nothing is installed then). ``only_processes``: refuse
    only the calls that start a process (``--sandbox off``: debugging, everything else as
    the teacher's own process)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    machine = syscalls.machine()
    if machine not in ARCHITECTURES:
        return f"no seccomp filter known for {machine}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"no C library reachable ({exc})"
    libc.syscall.restype = ctypes.c_long
    instructions = (_processes_only(machine) if only_processes
                    else program(machine, os.getpid(), metadata))
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


def _processes_only(machine):
    arch, _, numbers = ARCHITECTURES[machine]
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    lines = [(LD_W_ABS, 0, 0, ARCH_OFFSET), (JEQ_K, 0, "refuse", arch), (LD_W_ABS, 0, 0, NR_OFFSET)]
    if machine == "x86_64":
        lines.append((JGE_K, "refuse", 0, X32_SYSCALL_BIT))
    lines += [(JEQ_K, "refuse", 0, numbers[n]) for n in NEW_PROCESSES if n in numbers]
    lines += [(RET_K, 0, 0, SECCOMP_RET_ALLOW), ("label", "refuse"), (RET_K, 0, 0, refuse)]
    return _assemble(lines)
