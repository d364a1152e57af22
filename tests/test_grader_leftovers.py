"""Nothing of a submission outlives its child, and it holds no memory past ``--memory``.

Before issue 36, under ``--memory 300M``: System V shared memory (512 MB left in the kernel
after the run), a System V message queue and a key in the user keyring (a message from one
submission read by a later one, still there after the run), 960 MB held in memfds; and the
child read the teacher's session keyring (a token planted there was printed). Now the seccomp
filter refuses System V IPC, POSIX message queues, memfd_create and the key calls (seccomp.py);
the child has an IPC namespace and a fresh session keyring of its own besides, and its folder
is a tmpfs counted in ``--memory`` (identity.py).

One class under ``--memory 256M``: the attacker leaves 300 MB of shared memory (three
segments of 100 MB, each attached, filled and detached: never more than the limit at once),
a message queue with a message and a key with a message in the user keyring, fills five
memfds and writes up to 128 MB of files into its folder; a later classmate looks for the
message, the key and the teacher's session token. Judged on the side effects, as root and as
an unprivileged teacher: no System V object with the class's keys in /proc/sysvipc after the
run, no key of the class in /proc/keys (root's keyring; the later classmate's reading covers
the unprivileged one's), nothing found by the later classmate, the token in no output, at
most the folder's 64 MB written, every classmate's verdict. (Should the defence ever fail, the
test removes what was left, and the attacker's key expires after 60 s.)
"""
import ctypes
import os
import platform
import random
import uuid

import pytest

from accounts import USERS, unprivileged_unavailable  # noqa: F401  (USERS' skip reads it)
from checking import CORRECT_RELU, blocks, gradebook
from classroom import place, rows_by_file, run_checker, write_file  # noqa: F401

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the key calls are made by their x86_64 numbers here")
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


@pytest.mark.parametrize("user", USERS)
def test_nothing_outlives_the_child_and_memory_holds(user, place):
    base, tmp, out = place
    libc = _libc()
    shm_key, msg_key = random.randrange(2**24, 2**30), random.randrange(2**24, 2**30)
    keys = {shm_key, shm_key + 1, shm_key + 2, msg_key}
    description = f"tinyadv-class-{uuid.uuid4().hex}"
    teacher, token = f"tinyadv-teacher-{uuid.uuid4().hex}", f"TOKEN-{uuid.uuid4().hex}"
    # A session keyring of this test's own, holding the teacher's token: the checker and its
    # children inherit it, as they would a teacher's.
    assert libc.syscall(KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) > 0
    libc.syscall(KEYCTL, KEYCTL_LINK, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING)  # as login does
    assert libc.syscall(ADD_KEY, b"user", teacher.encode(), token.encode(), len(token),
                        KEY_SPEC_SESSION_KEYRING) > 0
    numbers = dict(shm_key=shm_key, msg_key=msg_key, description=description, teacher=teacher,
                   add_key=ADD_KEY, keyctl=KEYCTL, search=KEYCTL_SEARCH,
                   user_keyring=KEY_SPEC_USER_KEYRING, session_keyring=KEY_SPEC_SESSION_KEYRING)
    folder = base / "class"
    write_file(folder, "a_correct.py", CORRECT_RELU)
    write_file(folder, "m_leaves.py", LEAVES.format(**numbers))
    write_file(folder, "n_finds.py", FINDS.format(**numbers))
    write_file(folder, "z_correct.py", CORRECT_RELU)
    try:
        done = run_checker(user, [folder, "--memory", "256M", "--timeout", "60", "--report",
                                  out / "grades.csv"], base, tmp)
        left = _sysv_left(keys)
        class_keys = _keys_named(description)
    finally:
        _remove_leftovers(libc, _sysv_left(keys), [description, teacher])
    assert left == [], done.stdout
    assert class_keys == [], done.stdout
    assert token not in done.stdout + done.stderr + (out / "grades.csv").read_text()
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / name): {"relu_backward": "pass"}
        for name in ("a_correct.py", "m_leaves.py", "n_finds.py", "z_correct.py")}
    said = blocks(done.stdout)
    leaves, finds = said[str(folder / "m_leaves.py")], said[str(folder / "n_finds.py")]
    for what in ("shared memory", "message queue", "user key", "memfds"):
        assert f"{what} refused:" in leaves, (what, leaves)
    written = int(leaves.split("wrote ")[1].split()[0])
    assert written <= 64, leaves  # its folder: a tmpfs of 64 MB, counted in --memory
    for what in ("message", "class key", "teacher's key", "shared memory"):
        assert f"{what} refused:" in finds, (what, finds)
    assert os.listdir(tmp) == []
