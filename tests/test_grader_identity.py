"""A submission is nobody: its own identity, network, IPC and keyring (issue 36).

Tried at 23f27e7 by someone who reads the kernel's manual, as root and as an ordinary user,
most of what got through had one cause: a child kept the teacher's identity and shared the
teacher's namespaces, and Landlock rules files' contents, TCP and signals, not the rest. Now
each child is nobody (root) or in a user namespace of its own, with its own mount (every file
system read-only but its folder, a tmpfs counted in --memory), network and IPC namespaces
and a fresh session keyring (identity.py), and a seccomp filter refuses sockets, System V
IPC, keys, memfd, io_uring and the limit and priority calls aimed at another process
(seccomp.py).

One class, one hostile file per item of the issue, graded one file at a time so that each
attacker has correct classmates before and after it; everything is judged on side effects:

    m_limits.py     item 3: the checker's stack and CPU limits, niceness, scheduling policy,
                    CPU affinity and I/O priority -- read back as what a classmate graded
                    before it and one graded after it inherit from the checker
    m_metadata.py   item 2: chmod, chown, utime, xattrs and fchmod on its class folder, on
                    itself, on a teacher's tool one folder up, on a file elsewhere -- read
                    back as every mode, owner, time (ctime too) and xattr afterwards; inside
                    its own folder the same calls must work
    m_network.py    item 4: MPTCP, TCP, UDP, abstract and pathname Unix sockets (in a folder
                    only the teacher may enter) against listeners this test holds -- read
                    back as what they received
    m_leaves.py     item 5: 300 MB of System V shared memory (100 MB attached at a time,
                    under --memory 256M), a message queue, a key in the user keyring, five
                    memfds of 64 MB, up to 128 MB of files in its folder -- read back in
                    /proc/sysvipc and /proc/keys after the run; and n_finds.py, later, looks
                    for the message, the key and the teacher's session token
    a_reports.py, z_reports.py   correct classmates, before and after

Run three ways where the suite is root: as root, as an unprivileged teacher who owns the
files (tests/accounts.py), and as that teacher where user namespaces are refused (a
container's seccomp filter, simulated: accounts.WITHOUT_NAMESPACES) -- where the run's first
line must name what is missing and what is then not contained, and the metadata, sockets,
IPC and keys still hold (the seccomp filter) while files in the child's folder go to the
shared disk (measured: the 128 MB are written). Should a defence ever fail, the test removes
the System V objects and keys it let through (the attacker's key expires in 60 s anyway).
Also here: a checker killed with SIGKILL leaves the verdicts it had, and the seccomp filter
alone refuses what it says.
"""
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from accounts import USERS, account, unprivileged_unavailable  # noqa: F401
from checking import CORRECT_RELU, REPO, blocks, gradebook
from classroom import (give_to_teacher, new_place, place, processes_mentioning,  # noqa: F401
                       rows_by_file, run_checker, survivors, write_file)

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the attackers make their calls by x86_64 numbers")

ADD_KEY, KEYCTL = 248, 250
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING = -3, -4
KEYCTL_REVOKE, KEYCTL_LINK, KEYCTL_SEARCH, KEYCTL_JOIN_SESSION_KEYRING = 3, 8, 10, 1
IPC_RMID = 0
COMMON = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.syscall.restype = ctypes.c_long

    def attempt(what, action):
        try:
            result = action()
            print(what, "done:", result)
        except OSError as exc:
            print(what, "refused:", type(exc).__name__)

    def check(result):
        if result == -1 or result is None or result == 2 ** 64 - 1:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return result
    """
LEAVES = COMMON + """
    def shared_memory():
        for i in range(3):  # 300 MB under --memory 256M, 100 MB attached at a time
            segment = check(libc.shmget({shm_key} + i, 100 * 2**20, 0o1666))
            address = check(libc.shmat(segment, None, 0))
            ctypes.memset(address, 1, 100 * 2**20)
            libc.shmdt(ctypes.c_void_p(address))
        return "300 MB"

    def message_queue():
        queue = check(libc.msgget({msg_key}, 0o1666))
        message = ctypes.create_string_buffer(b"\\1\\0\\0\\0\\0\\0\\0\\0" + b"hello, next one")
        return check(libc.msgsnd(queue, message, 15, 0))

    def user_key():
        key = check(libc.syscall({add_key}, b"user", {description!r}.encode(),
                                 b"hello, next one", 15, {user_keyring}))
        libc.syscall({keyctl}, 5, key, 0x3F3F0000)  # KEYCTL_SETPERM: any process of the user
        libc.syscall({keyctl}, 15, key, 60)  # KEYCTL_SET_TIMEOUT: gone in a minute anyway
        return key

    def memfds():
        held = []
        for i in range(5):  # 64 MB each (RLIMIT_FSIZE): 320 MB past --memory
            fd = os.memfd_create(f"hoard{{i}}")
            for _ in range(64):
                os.write(fd, b"m" * 2**20)
            held.append(fd)
        return f"{{64 * len(held)}} MB"

    def files():
        written = 0
        try:
            for n in range(32):  # at most 128 MB: 4 MB a file
                with open(f"fill{{n}}", "wb") as f:
                    for _ in range(4):
                        f.write(b"f" * 2**20)
                        written += 1
        finally:
            print("wrote", written, "MB")

    attempt("shared memory", shared_memory)
    attempt("message queue", message_queue)
    attempt("user key", user_key)
    attempt("memfds", memfds)
    attempt("files", files)

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """
FINDS = COMMON + """
    def message():
        queue = check(libc.msgget({msg_key}, 0))
        buffer = ctypes.create_string_buffer(64)
        size = check(libc.msgrcv(queue, buffer, 48, 0, 0o4000))  # IPC_NOWAIT
        return buffer.raw[8:8 + size]

    def read_key(keyring, description):
        key = check(libc.syscall({keyctl}, {search}, keyring, b"user", description.encode(), 0))
        buffer = ctypes.create_string_buffer(100)
        size = check(libc.syscall({keyctl}, 11, key, buffer, 100))  # KEYCTL_READ
        return buffer.raw[:size]

    def shared_memory():
        return check(libc.shmget({shm_key}, 0, 0))

    attempt("message", message)
    attempt("class key", lambda: read_key({user_keyring}, {description!r}))
    attempt("teacher's key", lambda: read_key({session_keyring}, {teacher!r}))
    attempt("shared memory", shared_memory)

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """


REPORTER = CORRECT_RELU + """
    import ctypes, os, resource
    libc = ctypes.CDLL(None, use_errno=True)
    print("inherited:", "stack", resource.getrlimit(resource.RLIMIT_STACK),
          "nice", os.getpriority(os.PRIO_PROCESS, 0), "policy", os.sched_getscheduler(0),
          "cpus", sorted(os.sched_getaffinity(0)), "io", libc.syscall(252, 1, 0))
    """
LIMITS = """
    import ctypes, os, resource
    checker = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(what, action):
        try:
            if action() == -1:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            print(what, "done")
        except OSError as exc:
            print(what, "refused:", type(exc).__name__)

    attempt("checker stack", lambda: resource.prlimit(checker, resource.RLIMIT_STACK, (65536, 65536)))
    attempt("checker nice", lambda: os.setpriority(os.PRIO_PROCESS, checker, 19))
    attempt("checker idle", lambda: os.sched_setscheduler(checker, os.SCHED_IDLE, os.sched_param(0)))
    attempt("checker cpus", lambda: os.sched_setaffinity(checker, {min(os.sched_getaffinity(0))}))
    attempt("checker io", lambda: libc.syscall(251, 1, checker, 3 << 13))  # ioprio_set: idle
    attempt("checker cpu time", lambda: resource.prlimit(checker, resource.RLIMIT_CPU, (1, 1)))
    attempt("my own nice", lambda: os.setpriority(os.PRIO_PROCESS, 0, 5))  # its own: allowed

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """



METADATA = """
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    TOOL, ELSEWHERE = {tool!r}, {elsewhere!r}

    def attempt(what, action):
        try:
            action()
            print(what, "done")
        except OSError as exc:
            print(what, "refused:", type(exc).__name__)

    def fchmod_myself():
        with open(__file__, "rb") as f:
            os.fchmod(f.fileno(), 0o000)

    def inside():
        with open("mine.txt", "w") as f:
            f.write("x")
        os.chmod("mine.txt", 0o600)
        os.utime("mine.txt", (0, 0))
        os.mkdir("sub")
        os.chmod("sub", 0o500)

    attempt("class folder 000", lambda: os.chmod(here, 0o000))
    attempt("tool set-user-id", lambda: os.chmod(TOOL, 0o4755))
    attempt("tool xattr", lambda: os.setxattr(TOOL, "user.tinyadv", b"x" * 1024))
    attempt("tool times", lambda: os.utime(TOOL, (0, 0)))
    attempt("tool touched", lambda: os.utime(TOOL))
    attempt("tool owner", lambda: os.chown(TOOL, 4242, 4242))
    attempt("elsewhere 777", lambda: os.chmod(ELSEWHERE, 0o777))
    attempt("elsewhere xattr", lambda: os.setxattr(ELSEWHERE, "user.tinyadv", b"y" * 1024))
    attempt("myself 000", fchmod_myself)
    attempt("inside its folder", inside)

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """



IPPROTO_MPTCP = 262
NETWORK = """
    import socket
    TOKEN = b"stolen answers"

    def attempt(what, action):
        try:
            action()
            print(what, "done")
        except OSError as exc:
            print(what, "refused:", type(exc).__name__)

    def connect(family, kind, protocol, address):
        with socket.socket(family, kind, protocol) as s:
            s.settimeout(3)
            s.connect(address)
            s.sendall(TOKEN)

    def send_udp():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(TOKEN, ("127.0.0.1", {udp}))

    def listen_mptcp():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)

    attempt("mptcp", lambda: connect(socket.AF_INET, socket.SOCK_STREAM, 262, ("127.0.0.1", {tcp})))
    attempt("tcp", lambda: connect(socket.AF_INET, socket.SOCK_STREAM, 0, ("127.0.0.1", {tcp})))
    attempt("udp", send_udp)
    attempt("abstract", lambda: connect(socket.AF_UNIX, socket.SOCK_STREAM, 0, {abstract!r}))
    attempt("pathname", lambda: connect(socket.AF_UNIX, socket.SOCK_STREAM, 0, {pathname!r}))
    attempt("mptcp listener", listen_mptcp)

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """


def _listeners(base, user):
    """(the sockets, their addresses): TCP (MPTCP clients fall back to it), UDP, abstract
    Unix, and a pathname Unix socket in a folder only the teacher may enter."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = "\0tinyadv-test-" + uuid.uuid4().hex
    abstract.bind(abstract_name)
    abstract.listen(8)
    private = base / "private"
    private.mkdir(mode=0o700)
    pathname = socket.socket(socket.AF_UNIX)
    pathname.bind(str(private / "service.sock"))
    pathname.listen(8)
    os.chmod(private / "service.sock", 0o600)
    if user.startswith("unprivileged"):
        entry = account()
        for path in (private, private / "service.sock"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    for s in (tcp, udp, abstract, pathname):
        s.setblocking(False)
    return (tcp, udp, abstract, pathname), dict(
        tcp=tcp.getsockname()[1], udp=udp.getsockname()[1], abstract=abstract_name,
        pathname=str(private / "service.sock"))


def _what_arrived(tcp, udp, abstract, pathname):
    arrived = []
    for name, listener in (("tcp", tcp), ("abstract", abstract), ("pathname", pathname)):
        try:
            connection, _ = listener.accept()
            connection.settimeout(1)
            arrived.append((name, connection.recv(100)))
            connection.close()
        except (BlockingIOError, OSError):
            pass
    try:
        arrived.append(("udp", udp.recv(100)))
    except (BlockingIOError, OSError):
        pass
    return arrived



def metadata(path):
    """What a submission must not change about ``path``."""
    info = os.lstat(path)
    try:
        xattrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    except OSError:
        xattrs = None
    return (oct(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns, info.st_ctime_ns,
            xattrs)



def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _sysv_left(keys):
    """Lines of /proc/sysvipc/{shm,msg} whose key is one of ``keys``."""
    found = []
    for kind in ("shm", "msg"):
        with open(f"/proc/sysvipc/{kind}") as f:
            for line in list(f)[1:]:
                fields = line.split()
                if int(fields[0]) in keys:
                    found.append((kind, int(fields[0]), int(fields[1])))
    return found


def _keys_named(text):
    with open("/proc/keys") as f:
        return [line for line in f if text in line]


def _remove_leftovers(libc, found, descriptions):
    """Should the defence fail: the segments, queues and keys it let through, removed."""
    for kind, _, ident in found:
        (libc.shmctl if kind == "shm" else libc.msgctl)(ident, IPC_RMID, None)
    for description in descriptions:
        for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING):
            key = libc.syscall(KEYCTL, KEYCTL_SEARCH, keyring, b"user", description.encode(), 0)
            if key > 0:
                libc.syscall(KEYCTL, KEYCTL_REVOKE, key)



TEACHERS = USERS + [pytest.param("unprivileged, no namespaces", id="no-namespaces",
                                 marks=pytest.mark.skipif(
                                     "unprivileged_unavailable() is not None",
                                     reason="no unprivileged user; see tests/accounts.py"))]
NAMES = ("a_reports.py", "m_limits.py", "m_metadata.py", "m_network.py", "m_leaves.py",
         "n_finds.py", "z_reports.py")


@pytest.fixture(scope="module", params=TEACHERS)
def graded(request):
    """The class, graded once per teacher: what the run printed and wrote, and every side
    effect this module checks, read back right after it."""
    user = request.param
    base, tmp, out = new_place("tinyadv-identity-")
    libc = _libc()
    listeners = []
    try:
        teacher, folder = base / "teacher", base / "teacher" / "class"
        tool = write_file(teacher, "grade_tool.sh", "#!/bin/sh\necho grading\n")
        tool.chmod(0o755)
        elsewhere = write_file(base, "elsewhere.txt", "a file of the teacher's, outside\n")
        listeners, addresses = _listeners(base, user)
        shm_key, msg_key = random.randrange(2**24, 2**30), random.randrange(2**24, 2**30)
        ipc_keys = {shm_key, shm_key + 1, shm_key + 2, msg_key}
        description = f"tinyadv-class-{uuid.uuid4().hex}"
        token_name, token = f"tinyadv-teacher-{uuid.uuid4().hex}", f"TOKEN-{uuid.uuid4().hex}"
        # A session keyring of this test's own, linking the user keyring as a login does,
        # holding the teacher's token: the checker and its children inherit it.
        assert libc.syscall(KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) > 0
        libc.syscall(KEYCTL, KEYCTL_LINK, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING)
        assert libc.syscall(ADD_KEY, b"user", token_name.encode(), token.encode(), len(token),
                            KEY_SPEC_SESSION_KEYRING) > 0
        numbers = dict(shm_key=shm_key, msg_key=msg_key, description=description,
                       teacher=token_name, add_key=ADD_KEY, keyctl=KEYCTL, search=KEYCTL_SEARCH,
                       user_keyring=KEY_SPEC_USER_KEYRING,
                       session_keyring=KEY_SPEC_SESSION_KEYRING)
        codes = {"a_reports.py": REPORTER, "m_limits.py": LIMITS,
                 "m_metadata.py": METADATA.format(tool=str(tool), elsewhere=str(elsewhere)),
                 "m_network.py": NETWORK.format(**addresses), "m_leaves.py": LEAVES.format(**numbers),
                 "n_finds.py": FINDS.format(**numbers), "z_reports.py": REPORTER}
        for name in NAMES:
            write_file(folder, name, codes[name])
        give_to_teacher(user, teacher, elsewhere)
        watched = [folder, *sorted(folder.iterdir()), teacher, tool, elsewhere]
        before = {str(p): metadata(p) for p in watched}
        try:
            done = run_checker(user, [folder, "--memory", "256M", "--timeout", "60",
                                      "--report", out / "grades.csv"], base, tmp)
            arrived = _what_arrived(*listeners)
            left, class_keys = _sysv_left(ipc_keys), _keys_named(description)
        finally:
            _remove_leftovers(libc, _sysv_left(ipc_keys), [description, token_name])
        after = {str(p): metadata(p) for p in watched}
        yield dict(user=user, done=done, folder=folder, rows=gradebook(out / "grades.csv"),
                   said=blocks(done.stdout), gradebook=(out / "grades.csv").read_text(),
                   changed={p: (before[p], after[p]) for p in before if before[p] != after[p]},
                   arrived=arrived, left=left, class_keys=class_keys, token=token,
                   tmp_left=os.listdir(tmp))
    finally:
        for listener in listeners:
            listener.close()
        shutil.rmtree(base, ignore_errors=True)


def _attempts(said, name):
    """{what: "done" | "refused"} from an attacker's printed lines."""
    found = {}
    for line in said[name].splitlines():
        line = line.strip().lstrip("| ")
        for verdict in (" done", " refused:"):
            if verdict in line:
                found[line.split(verdict)[0]] = verdict.strip(" :")
    return found


def test_the_checker_ends_and_every_classmate_passes(graded):
    done, folder = graded["done"], graded["folder"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows_by_file(graded["rows"]) == {
        str(folder / name): {"relu_backward": "pass"} for name in NAMES}
    assert graded["tmp_left"] == []


def test_no_mode_owner_time_or_xattr_changes_outside_the_childs_folder(graded):
    assert graded["changed"] == {}, graded["done"].stdout
    tried = _attempts(graded["said"], str(graded["folder"] / "m_metadata.py"))
    for what in ("class folder 000", "tool set-user-id", "tool xattr", "tool times",
                 "tool touched", "tool owner", "elsewhere 777", "elsewhere xattr", "myself 000"):
        assert tried[what] == "refused", (what, tried)
    # Its own folder is its own -- except where there is no mount namespace to make the rest
    # read-only, and the seccomp filter refuses the calls everywhere.
    bare = graded["user"].endswith("no namespaces")
    assert tried["inside its folder"] == ("refused" if bare else "done"), tried


def test_no_child_changes_the_checkers_limits_or_priority(graded):
    said, folder = graded["said"], graded["folder"]
    inherited = [next(line for line in said[str(folder / name)].splitlines()
                      if "inherited:" in line) for name in ("a_reports.py", "z_reports.py")]
    assert inherited[0] == inherited[1], inherited
    tried = _attempts(said, str(folder / "m_limits.py"))
    for what in ("checker stack", "checker nice", "checker idle", "checker cpus", "checker io",
                 "checker cpu time"):
        assert tried[what] == "refused", (what, tried)
    assert tried["my own nice"] == "done"


def test_no_socket_reaches_anything_outside(graded):
    assert graded["arrived"] == [], graded["done"].stdout
    tried = _attempts(graded["said"], str(graded["folder"] / "m_network.py"))
    assert tried == {what: "refused" for what in ("mptcp", "tcp", "udp", "abstract", "pathname",
                                                  "mptcp listener")}, tried
    assert "opens no socket (TCP, UDP, MPTCP or Unix)" in graded["done"].stdout.splitlines()[0]


def test_nothing_outlives_the_child_and_memory_holds(graded):
    assert graded["left"] == [] and graded["class_keys"] == [], graded["done"].stdout
    assert graded["token"] not in graded["done"].stdout + graded["done"].stderr + graded["gradebook"]
    said, folder = graded["said"], graded["folder"]
    leaves = _attempts(said, str(folder / "m_leaves.py"))
    for what in ("shared memory", "message queue", "user key", "memfds"):
        assert leaves[what] == "refused", (what, leaves)
    finds = _attempts(said, str(folder / "n_finds.py"))
    assert finds == {what: "refused" for what in ("message", "class key", "teacher's key",
                                                  "shared memory")}, finds
    written = int(said[str(folder / "m_leaves.py")].split("wrote ")[1].split()[0])
    first = graded["done"].stdout.splitlines()[0]
    if graded["user"].endswith("no namespaces"):
        # No tmpfs for its folder: the files go to the shared disk, as the first line says.
        assert written == 128
        assert "Missing here: a user namespace (unshare: EPERM)" in first, first
        gaps = first.split("Not contained on this machine: ")[1]
        assert "filling the disk of its temporary folder" in gaps, first
    else:
        assert written <= 64  # its folder: a tmpfs of 64 MB, counted in --memory
        assert "(a tmpfs, counted in --memory)" in first and "Missing here" not in first, first


def test_a_checker_killed_outright_leaves_the_verdicts_it_had(place):
    # The gradebook is written by the same code whoever runs the checker: once, as this user.
    user = "this user"
    base, tmp, out = place
    folder = base / "class"
    for name in ("a_ok.py", "b_ok.py", "d_ok.py"):
        write_file(folder, name, CORRECT_RELU)
    write_file(folder, "c_stall.py", "import time\ntime.sleep(600)\n" + textwrap.dedent(CORRECT_RELU))
    (out / "grades.csv").write_text("file,function,status\nlast week's,x,pass\n")
    checker = run_checker(user, [folder, "--report", out / "grades.csv", "--gradescope",
                                 out / "results.json"], base, tmp, wait=False)
    try:
        # One file at a time: once c_stall runs, a and b are judged. No sleep, no race.
        deadline = time.monotonic() + 60
        while not processes_mentioning(str(folder / "c_stall.py")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(checker.pid, signal.SIGKILL)
        checker.communicate(timeout=60)
    finally:
        if checker.poll() is None:
            checker.kill()
    assert checker.returncode == -signal.SIGKILL
    assert survivors(folder) == []  # its children died with it
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / "a_ok.py"): {"relu_backward": "pass"},
        str(folder / "b_ok.py"): {"relu_backward": "pass"},
        str(folder / "c_stall.py"): {"": "ungraded"},
        str(folder / "d_ok.py"): {"": "ungraded"}}
    assert "the checker stopped before the end" in (out / "grades.csv").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert doc["output"].startswith("INCOMPLETE: the run was still going: 2 files not graded")
    assert [t["status"] for t in doc["tests"]] == ["passed", "passed", "failed", "failed"]



def test_the_filter_refuses_what_it_says_for_any_user(tmp_path):
    # The filter alone, in a process of this user: each call it refuses, tried with harmless
    # arguments (a user id nobody has; this process's own parent, the test), gets EPERM.
    script = textwrap.dedent("""
        import ctypes, errno, os, resource, socket, sys
        from tinyadv.grader import seccomp
        assert seccomp.install() is None
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        def refused(action):
            try:
                result = action()
            except OSError as exc:
                return exc.errno == errno.EPERM
            return result == -1 and ctypes.get_errno() == errno.EPERM
        calls = {
            "tcp": lambda: socket.socket(),
            "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            "mptcp": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262),
            "unix": lambda: socket.socket(socket.AF_UNIX),
            "socketpair": socket.socketpair,
            "fork": os.fork,
            "memfd": lambda: os.memfd_create("x"),
            "shmget": lambda: libc.syscall(29, 0, 4096, 0o1600),
            "msgget": lambda: libc.syscall(68, 0, 0o1600),
            "keyctl": lambda: libc.syscall(250, 0, -3, 0, 0, 0),
            "add_key": lambda: libc.syscall(248, b"user", b"x", b"y", 1, -3),
            "io_uring": lambda: libc.syscall(425, 1, None),
            "prlimit parent": lambda: resource.prlimit(parent, resource.RLIMIT_STACK),
            "nice a user": lambda: os.setpriority(os.PRIO_USER, 4242, 19),
            "nice a group": lambda: os.setpriority(os.PRIO_PGRP, 4242, 19),
            "nice parent": lambda: os.setpriority(os.PRIO_PROCESS, parent, 19),
            "sched parent": lambda: os.sched_setaffinity(parent, os.sched_getaffinity(0)),
            "unshare": lambda: os.unshare(0) if hasattr(os, "unshare") else libc.unshare(0),
        }
        allowed = {
            "prlimit self": lambda: resource.prlimit(0, resource.RLIMIT_STACK),
            "nice self": lambda: os.setpriority(os.PRIO_PROCESS, os.getpid(), 1),
            "chmod": lambda: os.chmod(sys.argv[1], 0o600),
        }
        print(sorted(n for n, a in calls.items() if not refused(a)),
              sorted(n for n, a in allowed.items() if refused(a)))
        """)
    path = tmp_path / "f.txt"
    path.write_text("x")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr
