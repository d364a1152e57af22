"""Who a child is, and what it shares with the machine: nobody, and nothing.

Before a submission's first line runs, its child (child.py) leaves the checker's namespaces
for new ones of its own and gives up the teacher's identity, in this order:

    user     an ordinary teacher's child: a user namespace of its own. The only id it may
             map there is the teacher's own, so it still owns the teacher's files and is
             the same user to the kernel's checks on other processes: what an owner may do
             is taken away by the next step and by the seccomp filter (seccomp.py).
    mount    a mount namespace whose every file system is read-only: chmod, chown, utime
             and xattrs fail (EROFS) on every file outside the child's folder -- the
             teacher's own files too. The child's working folder becomes a tmpfs of its
             own, ``scratch`` bytes at most, counted in ``--memory`` and gone with the
             child: it cannot fill the disk, nor hold memory in files.
    network  a network namespace: no interface but a loopback that is down, so no TCP,
             UDP, MPTCP or abstract Unix socket reaches anything outside (and seccomp.py
             refuses socket() itself).
    IPC      an IPC namespace: any System V object or POSIX message queue is the child's
             own and dies with it (and seccomp.py refuses making one).
    keyring  a fresh, empty session keyring: the teacher's session keys are no longer the
             child's (and seccomp.py refuses keyctl, add_key and request_key).
    nobody   run as root: the child becomes user and group nobody (65534), with no
             supplementary groups, after the namespaces (which need root's rights). It owns
             nothing, so it can change no file, limit, priority or process of root's. It
             keeps one capability where Landlock decides what it reads: reading past a
             file's permissions (CAP_DAC_READ_SEARCH) -- Landlock narrows reading to
             Python, NumPy, tinyadv and the file itself (isolation.py), and without that
             capability nobody could not import a module of a Python kept in root's home.

Each step is tried and what fails is said, never skipped in silence: ``enter`` returns a
record naming what the child got and what it did not (a container without user
namespaces, a kernel without mount_setattr). The checker asks a short-lived probe process
the same questions before a run (``offered``) for the run's first line.

Tried on this project's machine (Linux 6.18): all of it works as root and as an ordinary user
(user namespaces on); tests/test_grader_identity.py checks what it holds, and what the run
says where user namespaces are refused. Its cost is in data/results.md.
"""
import ctypes
import errno
import os
import sys

from . import syscalls

__all__ = ["enter", "offered", "describe", "namespaces", "NOBODY", "SCRATCH_MAX"]

NOBODY = 65534  # user and group "nobody" / "nogroup": the kernel's overflow id
SCRATCH_MAX = 64 * 2**20  # the largest tmpfs a child's folder becomes
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
CLONE_NEWNET, CLONE_NEWIPC = 0x40000000, 0x08000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 1 << 18
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
KEYCTL_JOIN_SESSION_KEYRING = 1
PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_CAPBSET_DROP = 3, 4, 8, 24
CAP_DAC_READ_SEARCH, CAP_LAST_CAP_GUESS = 2, 63
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYSCALLS = {"x86_64": {"mount_setattr": 442, "keyctl": 250},
            "aarch64": {"mount_setattr": 442, "keyctl": 219}}


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _Failed(Exception):
    """A step that did not work: its words are the exception's message."""




def _check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise _Failed(f"{what}: {errno.errorcode.get(code, code)}")


def _threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _own_user_namespace(libc):
    """unshare(CLONE_NEWUSER), mapping the teacher's own uid and gid (the only ones an
    ordinary user may map) -- which the kernel allows a single-threaded process only."""
    uid, gid, threads = os.getuid(), os.getgid(), _threads()
    if threads != 1:
        raise _Failed(f"the process has {threads} threads")
    _check(libc.unshare(CLONE_NEWUSER), "unshare")
    # A process that hid itself (PR_SET_DUMPABLE 0, child.py) finds its /proc files owned by
    # root, its own maps included: it shows itself for the three writes.
    hidden = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    libc.prctl(PR_SET_DUMPABLE, ctypes.c_ulong(1), 0, 0, 0)
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as exc:
        raise _Failed(f"mapping the user: {exc.strerror}") from None
    finally:
        if hidden:
            libc.prctl(PR_SET_DUMPABLE, ctypes.c_ulong(0), 0, 0, 0)


def _read_only_view(libc, workdir, scratch, owner):
    """A mount namespace in which everything is read-only but a tmpfs on ``workdir``."""
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    # Private first: a mount made here must never propagate to the machine's namespace.
    _check(libc.mount(b"none", b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None),
           "making the mounts private")
    numbers = SYSCALLS.get(syscalls.machine())
    if numbers is None:
        raise _Failed(f"no mount_setattr number known for {syscalls.machine()}")
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(libc.syscall(ctypes.c_long(numbers["mount_setattr"]), ctypes.c_int(AT_FDCWD), b"/",
                        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))), "read-only mounts (mount_setattr)")
    options = f"size={scratch},nr_inodes=4096,mode=0700,uid={owner[0]},gid={owner[1]}"
    _check(libc.mount(b"tinyadv-scratch", os.fsencode(workdir), b"tmpfs",
                      ctypes.c_ulong(MS_NOSUID | MS_NODEV), options.encode()),
           "a tmpfs for its folder")
    os.chdir(workdir)  # the folder it stood in is underneath the tmpfs now


def _fresh_session_keyring(libc):
    numbers = SYSCALLS.get(syscalls.machine())
    if numbers is None:
        raise _Failed(f"no keyctl number known for {syscalls.machine()}")
    if libc.syscall(ctypes.c_long(numbers["keyctl"]), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING),
                    None) < 0:
        code = ctypes.get_errno()
        raise _Failed(errno.errorcode.get(code, str(code)))


def _become_nobody(libc, keep_reading):
    """Root only: give up root for user and group nobody, keeping at most the capability to
    read past file permissions (see the module docstring)."""
    kept = (1 << CAP_DAC_READ_SEARCH) if keep_reading else 0
    for cap in range(CAP_LAST_CAP_GUESS + 1):  # the bounding set first: needs root's rights
        if not kept >> cap & 1:
            libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0))
    libc.prctl(PR_SET_KEEPCAPS, ctypes.c_ulong(1 if kept else 0), ctypes.c_ulong(0),
               ctypes.c_ulong(0), ctypes.c_ulong(0))
    try:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    except OSError as exc:
        raise _Failed(f"becoming nobody: {exc.strerror}") from None
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = kept
    _check(libc.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")
    libc.prctl(PR_SET_KEEPCAPS, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
               ctypes.c_ulong(0))


def enter(workdir, scratch, keep_reading=False):
    """In a child, before the submission runs (see the module docstring). ``workdir``: the
    child's folder, where it stands; ``scratch``: bytes of the tmpfs it becomes;
    ``keep_reading``: root only, keep CAP_DAC_READ_SEARCH (only where Landlock will decide
    what is read). Returns the record that ``describe`` words:

        {"uid": uid afterwards, "nobody": bool, "user_namespace": bool,
         "read_only": bool, "scratch": bytes of its tmpfs (0: none), "network": bool,
         "ipc": bool, "keyring": bool, "kept_capability": bool,
         "missing": ["what: why", ...]}
    """
    record = {"nobody": False, "user_namespace": False, "read_only": False, "scratch": 0,
              "network": False, "ipc": False, "keyring": False, "kept_capability": False,
              "missing": []}
    if not sys.platform.startswith("linux"):
        record["missing"].append(f"namespaces and identity: not Linux ({sys.platform})")
        record["uid"] = os.getuid() if hasattr(os, "getuid") else None
        return record
    libc = syscalls.libc()
    root = os.geteuid() == 0

    def attempt(key, what, step, *args):
        try:
            step(libc, *args)
            record[key] = True
        except (_Failed, OSError) as exc:
            record["missing"].append(f"{what} ({exc})")

    if not root:
        attempt("user_namespace", "a user namespace", _own_user_namespace)
    can_mount = root or record["user_namespace"]
    if can_mount:
        owner = (NOBODY, NOBODY) if root else (os.getuid(), os.getgid())
        attempt("read_only", "a read-only view of the files", _read_only_view, workdir,
                scratch, owner)
        if record["read_only"]:
            record["scratch"] = int(scratch)
        attempt("network", "a network namespace",
                lambda lib: _check(lib.unshare(CLONE_NEWNET), "unshare"))
        attempt("ipc", "an IPC namespace",
                lambda lib: _check(lib.unshare(CLONE_NEWIPC), "unshare"))
    else:
        record["missing"].append("mount, network and IPC namespaces (they need a user "
                                 "namespace, or root)")
    attempt("keyring", "a fresh session keyring", _fresh_session_keyring)
    if root:
        attempt("nobody", "user nobody", _become_nobody, keep_reading)
        record["kept_capability"] = record["nobody"] and keep_reading
    record["uid"] = os.getuid()
    return record


def describe(record):
    """(short words, the missing parts) for a record of ``enter``: e.g. ("nobody, own
    mount/network/IPC namespaces", [])."""
    if not isinstance(record, dict):
        return "identity unknown", []
    who = "nobody" if record.get("nobody") else f"uid {record.get('uid')}"
    missing = [m for m in record.get("missing", []) if isinstance(m, str)]
    return f"{who}, {namespaces(record)}", missing


def namespaces(record):
    """'own mount/network/IPC namespaces', or 'no namespaces of its own'."""
    spaces = [name for key, name in (("user_namespace", "user"), ("read_only", "mount"),
                                     ("network", "network"), ("ipc", "IPC"))
              if isinstance(record, dict) and record.get(key) is True]
    return f"own {'/'.join(spaces)} namespaces" if spaces else "no namespaces of its own"


_PROBE = ("import json, os, sys\nsys.path.insert(0, sys.argv[1])\n"
          "from tinyadv.grader import identity\n"
          "print(json.dumps(identity.enter(sys.argv[2], 2**20)))\n")
_offered = {}


def offered(tinyadv_root):
    """What a child of this checker will get, asked of a probe process that does what a
    child does (``enter``) in a folder of its own and exits: enter's record, or one whose
    "missing" says why the probe failed. Asked once per process (about 20 ms)."""
    if "record" not in _offered:
        _offered["record"] = _probe(tinyadv_root)
    return _offered["record"]


def _probe(tinyadv_root):
    import json  # here: a child, which only needs enter(), is spared these imports
    import subprocess
    import tempfile

    if not sys.platform.startswith("linux"):
        return enter(None, 0)
    folder = tempfile.mkdtemp(prefix="tinyadv-probe-")
    try:
        if os.geteuid() == 0:
            os.chown(folder, NOBODY, NOBODY)
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, tinyadv_root, folder],
                              cwd=folder, capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return {"uid": os.getuid(), "missing": [f"namespaces and identity (the probe failed: "
                                                f"{type(exc).__name__})"]}
    finally:
        try:
            os.rmdir(folder)
        except OSError:
            pass
