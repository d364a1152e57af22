"""Around the sandbox: the process tree, the command line, the file system, the gradebook.

One hostile file per way a submission reached past its own verdict without breaking the
Landlock sandbox itself, each beside correct files that must still pass, checked on the side
effects: processes still alive after the run, every file's hash, the gradebook's rows read
with ``csv``, the temporary folders left. Where the checker runs in a subprocess it runs twice:
as the user running the suite and -- when that is root -- as an unprivileged user, made by
the suite where missing (tests/accounts.py); that run is skipped, with the reason, where the
suite is not root.

The class folders live in their own folder under /tmp (readable by that user), not in
pytest's tmp_path (readable by its owner only).
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from accounts import USERS, unprivileged_unavailable
from checking import CORRECT_RELU, REPO, blocks, check, gradebook
from classroom import (hashes, place, processes_mentioning, rows_by_file, run_checker,  # noqa: F401
                       survivors, write_file)
from tinyadv.grader import procs
from tinyadv.grader.report import shown

CHAIN_LINKS = 80
RELU = textwrap.dedent(CORRECT_RELU)
WRONG_RELU = "def relu_backward(dout, cache):\n    return dout\n"


# --------------------------------------------------------------------------- processes

CHAIN = f"""
    import os, time
    def relu_backward(dout, cache):
        # {CHAIN_LINKS} processes, each in a session of its own, each the parent of the next.
        try:
            first = os.fork()
        except OSError as exc:
            print("fork refused:", type(exc).__name__)
            raise
        if first == 0:
            for link in range({CHAIN_LINKS}):
                os.setsid()
                if link == {CHAIN_LINKS} - 1:
                    break
                try:
                    if os.fork() != 0:
                        break  # this link stays, the parent of the next
                except OSError:
                    break
            time.sleep(300)
            os._exit(0)
        time.sleep(1)  # the chain grows meanwhile
        print("chain started")
        return dout * (cache > 0)
    """
MEMORY_BY_FORKS = """
    import os, time
    def relu_backward(dout, cache):
        # Three forks of 400 MB each under --memory 512M: 1.2 GB for the submission.
        pids = []
        for _ in range(3):
            try:
                pid = os.fork()
            except OSError as exc:
                print("fork refused:", type(exc).__name__)
                raise
            if pid == 0:
                hoard = b"x" * (400 * 2**20)
                time.sleep(2)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        print("three forks held 1.2 GB")
        return dout * (cache > 0)
    """


@pytest.mark.parametrize("user", USERS)
def test_every_process_a_submission_starts_ends_with_its_check(user, place):
    # Fails on the checker before issue 29 as root (root is exempt from RLIMIT_NPROC): the
    # chain ran, the file passed, and the sweep of orphans (20 generations after each file)
    # left links running after the run -- 120 of the 240 (three cases, 80 each) when tried.
    base, tmp, out = place
    folder = base / "class"
    write_file(folder, "a_correct.py", RELU)
    write_file(folder, "chain.py", CHAIN)
    write_file(folder, "z_correct.py", RELU)
    done = run_checker(user, [folder, "--jobs", "2", "--timeout", "30", "--report",
                              out / "grades.csv"], base, tmp)
    left = survivors(folder)
    assert left == [], f"{len(left)} processes outlived their check\n{done.stdout}"
    assert done.returncode == 1, done.stdout + done.stderr
    rows = rows_by_file(gradebook(out / "grades.csv"))
    assert rows[str(folder / "a_correct.py")] == rows[str(folder / "z_correct.py")] == {
        "relu_backward": "pass"}
    assert rows[str(folder / "chain.py")] == {"relu_backward": "fail"}, done.stdout
    assert "fork refused" in blocks(done.stdout)[str(folder / "chain.py")]
    assert os.listdir(tmp) == []


@pytest.mark.parametrize("user", USERS)
def test_the_memory_limit_holds_for_the_submission_as_a_whole(user, place):
    # Before issue 29, as root: three forks of 400 MB each under --memory 512M, graded pass.
    base, tmp, out = place
    folder = base / "class"
    write_file(folder, "a_correct.py", RELU)
    write_file(folder, "forks_for_memory.py", MEMORY_BY_FORKS)
    done = run_checker(user, [folder, "--memory", "512M", "--report", out / "grades.csv"],
                       base, tmp)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = rows_by_file(gradebook(out / "grades.csv"))
    assert rows[str(folder / "a_correct.py")] == {"relu_backward": "pass"}
    assert rows[str(folder / "forks_for_memory.py")] == {"relu_backward": "fail"}
    block = blocks(done.stdout)[str(folder / "forks_for_memory.py")]
    assert "fork refused" in block and "three forks held" not in block
    assert survivors(folder) == []


@pytest.mark.parametrize("user", USERS)
def test_a_crash_of_the_checker_leaves_no_process(user, place):
    # kill -9 of the checker: its children die with it (PR_SET_PDEATHSIG), and they could
    # start no process that would not.
    base, tmp, out = place
    folder = base / "class"
    write_file(folder, "chain_then_stall.py", textwrap.dedent(CHAIN) + textwrap.dedent("""
        import numpy as np
        try:
            relu_backward(np.ones(3), np.ones(3))  # the chain, where it can start
        except OSError:
            pass
        time.sleep(600)
        """))
    checker = run_checker(user, [folder, "--timeout", "60"], base, tmp, wait=False)
    try:
        deadline = time.monotonic() + 60
        while not processes_mentioning(str(folder / "chain_then_stall.py")) \
                and time.monotonic() < deadline and checker.poll() is None:
            time.sleep(0.05)  # the child runs the file (the checker was given the folder)
        time.sleep(1)  # the chain, where it can grow, grows
        os.kill(checker.pid, signal.SIGKILL)
        checker.wait(timeout=30)
    finally:
        if checker.poll() is None:
            checker.kill()
        checker.stdout.close()
        checker.stderr.close()
    assert survivors(folder) == []


def test_kill_leftovers_ends_a_chain_of_sessions(tmp_path):
    # The layer beneath the "no new processes" rule, for a machine where a child could start
    # processes (root on a kernel without seccomp filters): with the checker as subreaper,
    # every orphan comes to it, and it kills until none is left -- here a chain of 80, each
    # in a session of its own and the parent of the next, started without any filter.
    marker = "tinyadv-chain-" + uuid.uuid4().hex
    body = textwrap.dedent(textwrap.dedent(CHAIN).split("def relu_backward(dout, cache):")[1])
    code = "import os, time\n" + body.replace("return dout * (cache > 0)", "")
    was = procs.set_subreaper(True)
    keep = {pid for pid, (ppid, _) in procs.process_table().items() if ppid == os.getpid()}
    try:
        with open(tmp_path / "out.txt", "w") as printed:  # not a pipe: the chain holds it
            subprocess.run([sys.executable, "-c", code, marker], stdout=printed, timeout=60)
        assert "chain started" in (tmp_path / "out.txt").read_text()
        deadline = time.monotonic() + 10
        while len(processes_mentioning(marker)) < CHAIN_LINKS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes_mentioning(marker)) == CHAIN_LINKS  # alive, adopted by us
        assert procs.kill_leftovers(keep) == []
        assert processes_mentioning(marker) == []
    finally:
        procs.set_subreaper(bool(was))
        survivors(marker, 0)


# --------------------------------------------------------------------------- names and links

ESCAPING_NAME = "e\x1b[2J\nPASS relu_backward: forged\x1b[0m.py"
SNEAKY_TUPLE = """
    class Sneaky(tuple):
        def __getitem__(self, i):
            raise ValueError("not telling")
    def linear_backward(dout, cache):
        x, W = cache
        return Sneaky((dout @ W.T, x.T @ dout, dout.sum(axis=0)))
    """
LOCKS_ITS_FOLDER = textwrap.dedent("""
    import os
    os.makedirs("deep/er")
    for i in range(3):
        with open(f"deep/er/f{i}", "w") as f:
            f.write("x" * 1000)
    os.makedirs("closed")
    os.chmod("closed", 0o000)
    os.chmod("deep/er", 0o500)
    os.chmod("deep", 0o500)
    os.chmod(".", 0o500)
    """) + RELU


def hostile_class(base, secret):
    """The class folder of the glob test and the teacher's folder beside it."""
    teacher, folder = base / "teacher", base / "class"
    write_file(teacher, "answer_key.py", f'print("{secret}")\n' + RELU)
    for name in ("a_correct.py", "bob.py", "z_correct.py",
                 "--report=bob.py", "--report.py", "-x.py"):
        write_file(folder, name, RELU)
    write_file(folder, ESCAPING_NAME, WRONG_RELU)
    write_file(folder, "sneaky_tuple.py", SNEAKY_TUPLE)
    write_file(folder, "locks_its_folder.py", LOCKS_ITS_FOLDER)
    (folder / "link_to_the_key.py").symlink_to("../teacher/answer_key.py")
    (folder / "link_to_bob.py").symlink_to("bob.py")
    (folder / "dangling.py").symlink_to("gone.py")
    return teacher, folder


@pytest.mark.parametrize("user", USERS)
def test_a_class_graded_by_glob_names_links_modes_and_return_values(user, place):
    # `cd class; python -m tinyadv.gradcheck *.py --report ../out/grades.csv`: the shell hands
    # every name over, those that look like options included.
    base, tmp, out = place
    secret = "SECRET-" + uuid.uuid4().hex
    teacher, folder = hostile_class(base, secret)
    (out / "grades.csv").write_text("file,function,status\nlast week's,x,pass\n")
    before = {"class": hashes(folder), "teacher": hashes(teacher)}
    glob = sorted(name for name in os.listdir(folder) if name.endswith(".py"))
    done = run_checker(user, [*glob, "--jobs", "2", "--timeout", "30", "--report",
                              "../out/grades.csv", "--gradescope", "../out/results.json"],
                       folder, tmp)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # Nothing changed, nothing left behind, the key shown nowhere.
    assert {"class": hashes(folder), "teacher": hashes(teacher)} == before
    assert os.listdir(tmp) == [], "a temporary folder was left behind"
    assert survivors(folder) == []
    text = (out / "grades.csv").read_text()
    for where in (done.stdout, done.stderr, text, (out / "results.json").read_text()):
        assert secret not in where
    # No escape sequence and no forged line reach the screen.
    assert "\x1b" not in done.stdout + done.stderr
    assert not [line for line in done.stdout.splitlines() if line.startswith("PASS relu_backward: forged")]
    # One row per file and function, read with csv; one line per row.
    rows = gradebook(out / "grades.csv")
    assert len(text.splitlines()) == len(rows) + 1
    found = rows_by_file(rows)
    assert set(found) == {shown(name) for name in glob}
    for name in ("a_correct.py", "bob.py", "z_correct.py", "--report=bob.py", "--report.py",
                 "-x.py", "locks_its_folder.py"):
        assert found[name] == {"relu_backward": "pass"}, (name, done.stdout)
    assert found[shown(ESCAPING_NAME)] == {"relu_backward": "fail"}
    assert found["sneaky_tuple.py"] == {"linear_backward": "fail"}
    assert "last week's" not in text
    for name in ("link_to_the_key.py", "link_to_bob.py", "dangling.py"):
        assert found[name] == {"": "refused"}, name
        assert next(r for r in rows if r["file"] == name)["hint"].startswith("symlink to ")
    sneaky = blocks(done.stdout)["sneaky_tuple.py"]
    assert "returned a Sneaky that cannot be read as a tuple of arrays (ValueError: not telling" in sneaky
    assert "Traceback" not in sneaky and "os._exit" not in sneaky
    results = json.loads((out / "results.json").read_text())
    assert len(results["tests"]) == len(rows)
    assert "note: --report=bob.py is a file here" in done.stdout


def test_symlinks_in_a_folder_are_refused_and_never_followed(place, capsys):
    base, _, out = place
    secret = "SECRET-" + uuid.uuid4().hex
    teacher = base / "teacher"
    write_file(teacher, "answer_key.py", f'print("{secret}")\n' + RELU)
    folder = base / "class"
    write_file(folder, "alice/ex.py", RELU)
    (folder / "bob").mkdir()
    (folder / "bob" / "ex.py").symlink_to("../alice/ex.py")
    (folder / "carol").symlink_to("../teacher")  # a student's folder that is a link
    (folder / "dave.py").symlink_to("/nonexistent/dave.py")
    (folder / "notes.txt").symlink_to("../teacher/answer_key.py")  # not a .py: ignored
    code, printed = check(folder, "--report", out / "g.csv")
    assert code == 1
    assert secret not in printed + capsys.readouterr().out
    found = rows_by_file(gradebook(out / "g.csv"))
    assert found == {str(folder / "alice" / "ex.py"): {"relu_backward": "pass"},
                     str(folder / "bob" / "ex.py"): {"": "refused"},
                     str(folder / "carol"): {"": "refused"},
                     str(folder / "dave.py"): {"": "refused"}}
    assert "REFUSED: symlink to a folder (../teacher): not followed" in printed
    assert "REFUSED: symlink to /nonexistent/dave.py, which does not exist: not run" in printed
    # Given by name, too.
    code, printed = check(folder / "dave.py")
    assert code == 2 and "REFUSED: symlink to /nonexistent/dave.py" in printed


def test_the_gradebook_never_lands_on_a_submission_or_in_the_class(place, monkeypatch, capsys):
    base, _, out = place
    folder = base / "class"
    for name in ("bob.py", "-x.py"):
        write_file(folder, name, RELU)
    before = hashes(folder)
    monkeypatch.chdir(folder)
    for argv, words in (
            (["bob.py", "--report", "bob.py"], "--report: bob.py is a file being graded"),
            ([".", "--report", "grades.csv"], "--report: grades.csv is inside the folder being graded (.)"),
            ([".", "--gradescope", "sub/results.json"], "--gradescope: sub/results.json is inside"),
            (["bob.py", "--report", "g.csv"], "in the folder of a file being graded (bob.py)"),
            ([str(folder / "bob.py"), "--report", str(base / "class" / ".." / "class" / "g.csv")],
             "in the folder of a file being graded")):
        with pytest.raises(SystemExit) as exit_info:
            check(*argv)
        assert exit_info.value.code == 2
        assert words in capsys.readouterr().err, argv
    assert hashes(folder) == before and sorted(os.listdir(folder)) == ["-x.py", "bob.py"]
    # `--`: what follows is a file, whatever its name.
    code, printed = check("--report", out / "g.csv", "--", "-x.py")
    assert code == 0 and "PASS relu_backward" in printed
    assert rows_by_file(gradebook(out / "g.csv")) == {"-x.py": {"relu_backward": "pass"}}


# --------------------------------------------------------------------------- verdicts kept

@pytest.mark.parametrize("user, signame", [("this user", "SIGINT"), ("this user", "SIGHUP"),
                                           ("this user", "SIGTERM"), ("unprivileged", "SIGTERM")])
def test_an_interrupted_run_writes_what_it_graded(user, signame, place):
    base, tmp, out = place
    if user != "this user" and unprivileged_unavailable():
        pytest.skip(unprivileged_unavailable())
    folder = base / "class"
    for name in ("a_ok.py", "b_ok.py", "d_ok.py"):
        write_file(folder, name, RELU)
    write_file(folder, "c_stall.py", "import time\ntime.sleep(600)\n" + RELU)
    (out / "grades.csv").write_text("file,function,status\nlast week's,x,pass\n")
    checker = run_checker(user, [folder, "--report", out / "grades.csv", "--gradescope",
                                 out / "results.json"], base, tmp, wait=False)
    try:
        # One file at a time: once c_stall runs, a and b are judged. No sleep, no race.
        deadline = time.monotonic() + 60
        while len(processes_mentioning(str(folder / "c_stall.py"))) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        signum = getattr(signal, signame)
        if signame == "SIGINT":  # Ctrl-C reaches the terminal's whole foreground group
            os.killpg(checker.pid, signum)
        else:
            os.kill(checker.pid, signum)
        stdout, stderr = checker.communicate(timeout=60)
    finally:
        if checker.poll() is None:
            checker.kill()
    assert checker.returncode == 128 + signum, stderr
    assert survivors(folder) == [] and os.listdir(tmp) == []
    rows = gradebook(out / "grades.csv")
    assert "last week's" not in (out / "grades.csv").read_text()
    assert rows_by_file(rows) == {str(folder / "a_ok.py"): {"relu_backward": "pass"},
                                  str(folder / "b_ok.py"): {"relu_backward": "pass"},
                                  str(folder / "c_stall.py"): {"": "ungraded"},
                                  str(folder / "d_ok.py"): {"": "ungraded"}}
    for row in rows[2:]:
        assert row["hint"] == (f"not graded: the run was interrupted by {signame}"
                               + (" (Ctrl-C)" if signame == "SIGINT" else "")
                               + " before this file was checked; this gradebook is incomplete")
    assert "INCOMPLETE" in stdout
    assert f"interrupted by {signame}" in stderr and "marked incomplete" in stderr
    assert f"Not checked: {folder / 'c_stall.py'}, {folder / 'd_ok.py'}." in stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["output"].startswith(f"INCOMPLETE: interrupted by {signame}")
    assert [t["status"] for t in doc["tests"]] == ["passed", "passed", "failed", "failed"]


def unshare_unavailable():
    if os.geteuid() != 0:
        return "a file system that fills up is a tmpfs mounted in a mount namespace: root only"
    if not (shutil.which("unshare") and shutil.which("mount")):
        return "no unshare or mount command (util-linux)"
    return None


def run_in_small_disks(argv, base, sizes, prepare="", timeout=120):
    """Run the checker as root in a mount namespace of its own where base/disk0, base/disk1 ...
    are tmpfs of ``sizes`` (e.g. "24m"); ``prepare``: shell commands run there first. (What
    is written on those disks is gone with the namespace: read nothing from them after.)"""
    mounts = "".join(f'mkdir -p "{base}/disk{i}" && mount -t tmpfs -o size={size} tinyadv-test '
                     f'"{base}/disk{i}" && ' for i, size in enumerate(sizes))
    script = f'{mounts}{prepare} exec "$@"'
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               sys.executable, "-m", "tinyadv.gradcheck", *map(str, argv)]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO),
           "TMPDIR": f"{base}/disk0", "LANG": "C.UTF-8"}
    return subprocess.run(command, cwd=base, env=env, capture_output=True, text=True,
                          timeout=timeout)


FILLER = """
    import os, time
    FILLED = []
    def relu_backward(dout, cache):
        # Fills the disk of its temporary folder, holds it full a while, then answers wrong.
        if FILLED:
            return dout
        FILLED.append(True)
        chunk, n = b"x" * 2**20, 0
        try:
            while True:
                with open(f"fill{n}", "wb") as f:
                    for _ in range(4):
                        f.write(chunk)
                n += 1
        except OSError as exc:
            print("full after", n, "files:", exc.strerror)
        time.sleep(1.5)
        return dout
    """
NEEDS_SCRATCH = """
    import os, time
    import numpy as np
    WAITED = []
    SCRATCH = os.path.join(os.environ["TMPDIR"], "scratch")  # (tempfile.gettempdir() would
    def relu_backward(dout, cache):                          # pick /tmp on a full disk)
        # A correct file that keeps a scratch copy in a temporary file: it fails only when the
        # disk is full -- here, while its neighbour fills it (it waits for that, 1.5 s at most,
        # in its first case).
        for _ in range(0 if WAITED else 30):
            stat = os.statvfs(os.environ["TMPDIR"])
            if stat.f_bavail * stat.f_frsize < 2**20:
                break
            time.sleep(0.05)
        WAITED.append(True)
        with open(SCRATCH, "wb") as f:
            f.write(b"s" * 2**20)
        os.remove(SCRATCH)
        return dout * (cache > 0)
    """


@pytest.mark.skipif(unshare_unavailable() is not None, reason=str(unshare_unavailable()))
def test_a_full_disk_is_never_a_plain_fail(place):
    base, _, out = place
    folder = base / "class"
    write_file(folder, "a_filler.py", FILLER)
    write_file(folder, "b_needs_scratch.py", NEEDS_SCRATCH)
    write_file(folder, "c_correct.py", RELU)
    # --sandbox off: where a child gets a mount namespace (identity.py) its folder is a tmpfs
    # of its own and the filler cannot fill the shared disk at all (test_grader_memory.py);
    # this is the defence for a machine without one, where the folder is on that disk.
    done = run_in_small_disks([folder, "--jobs", "2", "--timeout", "30", "--report",
                               out / "grades.csv", "--sandbox", "off"], base, ["24m"])
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    # The neighbour that failed while the disk was full was checked again, alone, and passed;
    # the filler keeps its own verdict, with a note.
    table = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()
             if line.startswith(str(folder))}
    assert table[str(folder / "b_needs_scratch.py")][-1] == "PASS", done.stdout
    assert table[str(folder / "c_correct.py")][-1] == "PASS"
    assert table[str(folder / "a_filler.py")][-1] == "FAIL"
    scratch = blocks(done.stdout)[str(folder / "b_needs_scratch.py")]
    assert "checked a second time, alone: the first time the disk holding the temporary " \
           "folders" in scratch
    assert "it filled the disk itself" in blocks(done.stdout)[str(folder / "a_filler.py")]
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / "a_filler.py"): {"relu_backward": "fail"},
        str(folder / "b_needs_scratch.py"): {"relu_backward": "pass"},
        str(folder / "c_correct.py"): {"relu_backward": "pass"}}


@pytest.mark.skipif(unshare_unavailable() is not None, reason=str(unshare_unavailable()))
def test_a_gradebook_on_a_full_disk_replaces_the_old_one_or_says_why_not(place):
    base, _, _ = place
    write_file(base / "class", "ok.py", RELU)
    disk = base / "disk1"
    # disk1 (1 MB) is filled up before the run; on it an older results.json of 8 KB, no
    # older gradebook.
    fill = (f'head -c 8192 /dev/zero > "{disk}/results.json" && '
            f'(head -c 2000000 /dev/zero > "{disk}/filler" 2>/dev/null || true) &&')
    done = run_in_small_disks([base / "class" / "ok.py", "--report", disk / "grades.csv",
                               "--gradescope", disk / "results.json"], base, ["24m", "1m"],
                              prepare=fill)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert (f"error: the gradebook was not written to {disk}/grades.csv: No space left on "
            f"device") in done.stderr
    assert "Every verdict is in the report above" in done.stderr
    # results.json: the older one was removed, which made room for the new one.
    assert f"gradescope: {disk}/results.json (1 tests)" in done.stdout
