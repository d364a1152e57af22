"""A submission changes no file's mode, owner, times or extended attributes outside its folder.

Landlock rules what a process may read and write in a file, not the file's metadata, and the
owner of a file may change that: before issue 36 a submission made its own class folder mode
000 (every later classmate then errored), set the set-user-id bit on a teacher's tool one
folder up and wrote 1 KB of extended attributes on it -- and, run as root, reached any file
of root's. Now a child is nobody (root) or in a user namespace, and sees every file system
read-only but its own folder (identity.py).

One class, graded one file at a time so that a classmate comes after the attacker: the
attacker tries chmod, chown, utime, setxattr and fchmod on its class folder, on itself, on a
teacher's tool one folder up and on a file elsewhere in /tmp -- and the same calls inside its
own folder, where they must still work. Judged on the side effects: every file's mode, owner,
times (ctime included: no user can set it, any metadata change moves it) and extended
attributes read back afterwards, and every classmate's verdict; as root and as an
unprivileged teacher who owns the files (tests/accounts.py).
"""
import os

import pytest

from accounts import USERS, unprivileged_unavailable  # noqa: F401  (USERS' skip reads it)
from checking import CORRECT_RELU, blocks, gradebook
from classroom import give_to_teacher, place, rows_by_file, run_checker, write_file  # noqa: F401

ATTACKER = """
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


def metadata(path):
    """What a submission must not change about ``path``."""
    info = os.lstat(path)
    try:
        xattrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    except OSError:
        xattrs = None
    return (oct(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns, info.st_ctime_ns,
            xattrs)


@pytest.mark.parametrize("user", USERS)
def test_no_mode_owner_time_or_xattr_changes_outside_the_childs_folder(user, place):
    base, tmp, out = place
    teacher, folder = base / "teacher", base / "teacher" / "class"
    tool = write_file(teacher, "grade_tool.sh", "#!/bin/sh\necho grading\n")
    tool.chmod(0o755)
    elsewhere = write_file(base, "elsewhere.txt", "a file of the teacher's, outside the class\n")
    write_file(folder, "a_correct.py", CORRECT_RELU)
    write_file(folder, "m_metadata.py", ATTACKER.format(tool=str(tool), elsewhere=str(elsewhere)))
    write_file(folder, "z_correct.py", CORRECT_RELU)
    give_to_teacher(user, teacher, elsewhere)
    watched = [folder, *sorted(folder.iterdir()), teacher, tool, elsewhere]
    before = {str(p): metadata(p) for p in watched}

    done = run_checker(user, [folder, "--timeout", "30", "--report", out / "grades.csv"],
                       base, tmp)

    after = {str(p): metadata(p) for p in watched}
    changed = {p: (before[p], after[p]) for p in before if before[p] != after[p]}
    assert changed == {}, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / name): {"relu_backward": "pass"}
        for name in ("a_correct.py", "m_metadata.py", "z_correct.py")}
    said = blocks(done.stdout)[str(folder / "m_metadata.py")]
    assert "inside its folder done" in said, said
    for what in ("class folder 000", "tool set-user-id", "tool xattr", "tool times",
                 "tool touched", "tool owner", "elsewhere 777", "elsewhere xattr", "myself 000"):
        assert f"{what} refused:" in said, (what, said)
    assert os.listdir(tmp) == []
