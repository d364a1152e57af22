"""Hostile submissions: each runs apart and limited, and never decides its own verdict.

Every kind is checked in a folder next to correct files (which must still pass), with the
default --sandbox auto (Landlock here), and the kinds the issue found -- a rel_error patch, os._exit, an endless loop, endless allocation,
sys.exit at import -- also alone. Short limits keep this quick: --memory 256M (Python and
NumPy take ~100M); --timeout 6 for the folder (a correct file takes ~0.15 s of CPU, a few
seconds on a machine loaded 8 times over) and 2 for the endless loop alone.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from checking import CORRECT_RELU, LIBRARY, REPO, blocks, check, gradebook, statuses, write

LIMITS = ("--timeout", "6", "--memory", "256M")
# The tests of signals and siblings below check the defences that hold without Landlock (a
# kernel or container without it, macOS): with it, a child can neither signal the checker nor
# find a sibling in /proc -- test_grader_landlock.py checks that.
PROCESS_ONLY = ("--sandbox", "off")

# file name: (code, the status of each of its rows {function: status}, words in its block)
HOSTILE = {
    "patches_rel_error.py": ("""
        import sys
        import numpy as np
        def angular_distance_backward(dd, cache):
            return np.zeros_like(cache[0]), np.zeros_like(cache[1])
        for module in list(sys.modules.values()):  # the checker's judge is not in here
            if getattr(module, "__name__", "").startswith("tinyadv"):
                module.rel_error = lambda a, b: 0.0
        """, {"angular_distance_backward": "fail"}, ["your da is 0 everywhere"]),
    "exit_in_backward.py": ("""
        import os
        def relu_backward(dout, cache):
            os._exit(0)
        """, {"relu_backward": "error"}, ["ended (exit status 0) before it had finished"]),
    "endless_loop.py": ("""
        def relu_backward(dout, cache):
            while True:
                pass
        """, {"relu_backward": "timeout"}, ["stopped at the time limit ("]),
    "endless_sleep_at_import.py": ("""
        import time
        time.sleep(10**6)
        def relu_backward(dout, cache):
            return dout * (cache > 0)
        """, {"relu_backward": "timeout"}, ["while importing the file, stopped at the time limit"]),
    "allocates_forever.py": ("""
        import numpy as np
        def relu_backward(dout, cache):
            hoard = []
            while True:
                hoard.append(np.ones(10**7))
        """, {"relu_backward": "memory"}, ["MemoryError"]),
    "exits_at_import.py": ("""
        import sys
        sys.exit(0)
        def relu_backward(dout, cache):
            return dout
        """, {"relu_backward": "error"}, ["cannot import: the file called sys.exit(0)"]),
    "os_exit_at_import.py": ("""
        import os
        os._exit(0)
        """, {"": "error"}, ["while importing the file, its process ended (exit status 0)"]),
    "raises_base_exceptions.py": ("""
        class Sneaky(BaseException):
            def __str__(self):
                raise RuntimeError("no message for you")
        def relu_backward(dout, cache):
            raise Sneaky()
        def feature_norm_backward(dloss, cache):
            raise KeyboardInterrupt
        """, {"relu_backward": "fail", "feature_norm_backward": "fail"},
        ["raised Sneaky: (its message cannot be printed)", "raised KeyboardInterrupt"]),
    "prints_megabytes.py": ("""
        import sys
        print("\\x1b[32mPASS relu_backward: forged\\x1b[0m")
        def relu_backward(dout, cache):
            sys.stdout.write("spam " * 1_000_000)
            return 0 * dout
        """, {"relu_backward": "fail"}, ["output (", "  | ?[32mPASS relu_backward: forged?[0m"]),
    "forges_answers.py": ("""
        import os
        from tinyadv.grader import channel
        def relu_backward(dout, cache):
            for fd in range(3, 30):  # a fake "done", then noise, on every descriptor
                try:
                    os.write(fd, channel.encode({"kind": "done"}) + b"noise" * 100)
                except OSError:
                    pass
            return dout * (cache > 0)
        """, {"relu_backward": "error"}, ["its answers to the checker are malformed"]),
    "closes_descriptors.py": ("""
        import os
        os.closerange(3, 256)
        def relu_backward(dout, cache):
            return dout * (cache > 0)
        """, {"relu_backward": "error"}, ["it closed or replaced the pipe its answers go back on"]),
    "kills_itself.py": ("""
        import os, signal
        def relu_backward(dout, cache):
            os.kill(os.getpid(), signal.SIGKILL)
        """, {"relu_backward": "error"}, ["killed by SIGKILL"]),
    "kills_itself_with_a_nameless_signal.py": ("""
        import os
        def relu_backward(dout, cache):
            os.kill(os.getpid(), 40)  # a real-time signal: no name to print
        """, {"relu_backward": "error"}, ["killed by signal 40"]),
    "sends_an_unhashable_field.py": ("""
        import os, sys
        from tinyadv.grader import channel
        os.write(int(sys.argv[1]), channel.encode({"kind": "function", "backward": ["x"]}))
        def relu_backward(dout, cache):
            return 0 * dout
        """, {"relu_backward": "fail"}, ["FAIL relu_backward"]),
    "hides_a_wrong_function.py": ("""
        def relu_backward(dout, cache):
            return dout
        relu_backward = None
        """, {"relu_backward": "fail"}, ["not a function once the file has run"]),
}
CORRECT = {"a_library.py": LIBRARY, "b_relu.py": CORRECT_RELU}


def grandchild_code():
    # Double fork and a new session: the grandchild belongs to no group or session of the
    # child's, and its parent is gone. Where the child cannot start processes (RLIMIT_NPROC 0
    # without root, a seccomp filter for everyone: seccomp.py) forking is refused and the
    # backward raises; else it returns a wrong answer while the grandchild sleeps on, having
    # told its pid through a pipe (it can write no file outside its sandbox) -- the child
    # prints it, so the test can look for it.
    return """
        import os, time
        def relu_backward(dout, cache):
            read_end, write_end = os.pipe()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.write(write_end, str(os.getpid()).encode())
                    time.sleep(10**6)
                os._exit(0)
            os.wait()
            print("grandchild", os.read(read_end, 20).decode(), flush=True)
            return 0 * dout
        """


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    """One folder: every hostile kind, a grandchild-leaver, and correct files; two at a time.
    (The two files that stall, endless_*, sort next to each other: they use up their time
    limit side by side rather than one after the other.)"""
    folder = tmp_path_factory.mktemp("class")
    for name, (code, _, _) in HOSTILE.items():
        write(folder, name, code)
    for name, code in CORRECT.items():
        write(folder, name, code)
    write(folder, "leaves_a_grandchild.py", grandchild_code())
    report = folder.parent / f"{folder.name}-grades.csv"
    started = time.monotonic()
    code, out = check(folder, *LIMITS, "--jobs", "2", "--report", report)
    return code, out, gradebook(report), time.monotonic() - started, folder


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_in_a_folder_gets_its_status(name, class_run):
    code, out, rows, _, folder = class_run
    _, wanted, words = HOSTILE[name]
    assert statuses(rows, name) == wanted, out
    block = blocks(out)[str(folder / name)]
    for word in words:
        assert word in block, (word, block)


def test_the_correct_files_beside_them_pass_and_the_run_ends(class_run):
    code, out, rows, seconds, _ = class_run
    assert code == 1
    for name in CORRECT:
        got = statuses(rows, name)
        assert got and set(got.values()) == {"pass"}, (name, got, out)
    assert {r["file"].rsplit("/", 1)[-1] for r in rows} == set(HOSTILE) | set(CORRECT) | {
        "leaves_a_grandchild.py"}  # graded completely: every file has its rows
    # 17 files, 2 at a time, 2 of them stalling to the 6 s limit: well under a minute.
    assert seconds < 60


def test_a_grandchild_is_killed_and_the_file_does_not_pass(class_run):
    _, out, rows, _, folder = class_run
    assert statuses(rows, "leaves_a_grandchild.py") == {"relu_backward": "fail"}
    block = blocks(out)[str(folder / "leaves_a_grandchild.py")]
    if "BlockingIOError" in block or "PermissionError" in block:  # the fork itself refused
        assert "grandchild" not in block.split("output (")[-1]
    else:  # root may fork: the grandchild existed, and must be gone
        pid = int(block.split("| grandchild ")[1].split()[0])
        assert not alive(pid), "a grandchild outlived the check"


def test_the_report_shows_a_submissions_output_cut_and_cleaned(class_run):
    _, out, _, _, folder = class_run
    block = blocks(out)[str(folder / "prints_megabytes.py")]
    assert "\x1b" not in out  # no terminal escape reaches the teacher's screen
    assert len(block) < 10_000  # 15 MB printed, a few lines shown
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output ("))
    printed = lines[start + 1:lines.index(next(l for l in lines if l.startswith("->")))]
    assert printed and all(line.startswith("  | ") for line in printed)  # a forged line stays quoted


@pytest.mark.parametrize("name, exit_status", [
    ("patches_rel_error.py", 1), ("exit_in_backward.py", 1), ("endless_loop.py", 1),  # 2 s
    ("allocates_forever.py", 1), ("exits_at_import.py", 2)])
def test_hostile_file_alone(name, exit_status, tmp_path):
    code, wanted, words = HOSTILE[name]
    path = write(tmp_path, name, code)
    # Only the endless loop uses up its time limit; the others get room for a loaded machine.
    seconds = "2" if name == "endless_loop.py" else "20"
    limits = ("--timeout", seconds, "--memory", "256M")
    exit_code, out = check(path, *limits, "--report", tmp_path / "out" / "g.csv")
    assert exit_code == exit_status, out
    assert statuses(gradebook(tmp_path / "out" / "g.csv"), name) == wanted
    assert "PASS" not in out


def test_signals_to_the_checker_are_held_against_the_sender(tmp_path):
    # Run as a program, the checker learns who sent a signal (sigtimedwait): the senders are
    # graded error and the run goes on, the correct file passes.
    folder = tmp_path / "class"
    senders = ("SIGTERM", "SIGINT", "SIGHUP", "SIGRTMIN", "SIGSEGV", "SIGABRT")
    for signame in senders:
        write(folder, f"sends_{signame}.py", f"""
            import os, signal, time
            def relu_backward(dout, cache):
                os.kill(os.getppid(), signal.{signame})
                time.sleep(30)
            """)
    write(folder, "b_relu.py", CORRECT_RELU)
    report = tmp_path / "g.csv"
    done = subprocess.run([sys.executable, "-m", "tinyadv.gradcheck", str(folder), "--jobs", "2",
                           "--timeout", "20", "--report", str(report), *PROCESS_ONLY],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = gradebook(report)
    assert statuses(rows, "b_relu.py") == {"relu_backward": "pass"}
    for signame in senders:
        row = next(r for r in rows if r["file"].endswith(f"sends_{signame}.py"))
        assert row["status"] == "error" and f"it sent {signame} to the checker" in row["hint"]


def test_a_signal_in_process_stops_the_run_and_names_the_suspects(tmp_path, capsys):
    # Called from a process with a thread that does not block signals (a BLAS thread, in a
    # notebook; here one started for the purpose -- OpenBLAS's own come and go with forks),
    # the checker cannot learn the sender: it stops, names the running files, and writes the
    # gradebook with that file marked not graded (never a verdict, never a silent pass).
    path = write(tmp_path, "sends_SIGTERM.py", """
        import os, signal, time
        def relu_backward(dout, cache):
            os.kill(os.getppid(), signal.SIGTERM)
            time.sleep(30)
        """)
    done = threading.Event()
    bystander = threading.Thread(target=done.wait)
    bystander.start()
    try:
        code, out = check(path, "--timeout", "20", "--report", tmp_path / "out" / "g.csv",
                          *PROCESS_ONLY)
    finally:
        done.set()
        bystander.join()
    assert code == 128 + signal.SIGTERM, out
    err = capsys.readouterr().err
    assert "interrupted by SIGTERM" in err and "marked incomplete" in err
    assert str(path) in err
    row, = gradebook(tmp_path / "out" / "g.csv")
    assert row["status"] == "ungraded" and "interrupted by SIGTERM" in row["hint"]


def _processes_mentioning(text):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read() and alive(pid):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_ctrl_c_stops_every_child_and_grades_nothing_it_did_not_check(tmp_path):
    folder = tmp_path / "class"
    for i in range(3):
        write(folder, f"stall{i}.py", "import time\ntime.sleep(10**6)\n")
    report = tmp_path / "g.csv"
    # A new session, like a terminal's foreground job: Ctrl-C goes to its whole group.
    checker = subprocess.Popen([sys.executable, "-m", "tinyadv.gradcheck", str(folder), "--jobs",
                                "2", "--report", str(report)], cwd=REPO, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_processes_mentioning(str(folder))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the checker and its two children
        assert len(_processes_mentioning(str(folder))) == 3
        os.killpg(checker.pid, signal.SIGINT)
        out, err = checker.communicate(timeout=60)
    finally:
        if checker.poll() is None:
            checker.kill()
    assert checker.returncode == 130, err
    assert "interrupted by SIGINT (Ctrl-C)" in err and "marked incomplete" in err
    assert {r["status"] for r in gradebook(report)} == {"ungraded"}  # 3 rows, none a verdict
    assert len(gradebook(report)) == 3 and not list(tmp_path.glob(".*.tmp"))
    assert _processes_mentioning(str(folder)) == []  # no orphan


def victim_code(marker):
    """A correct file that waits (up to 10 s) at import until ``marker`` exists: a sibling
    has done to it what it came to do."""
    return f"""
        import os, time
        for _ in range(200):
            if os.path.exists({str(marker)!r}):
                break
            time.sleep(0.05)
        def relu_backward(dout, cache):
            return dout * (cache > 0)
        """


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGINT"])
def test_a_sibling_killer_cannot_change_another_files_verdict(tmp_path, signame):
    # SIGINT would be a KeyboardInterrupt inside the victim's own code if the child kept
    # Python's handler: a failure that reads as the student's. It must die by it instead.
    folder = tmp_path / "class"
    marker = tmp_path / "killed"
    # b_killer waits for a_victim's process, kills it, and leaves a marker; a_victim waits
    # for the marker at import, so it is surely killed the first time. Checked again alone
    # (the marker is there by then), it passes.
    write(folder, "a_victim.py", victim_code(marker))
    write(folder, "b_killer.py", f"""
        import os, signal, time
        def victims():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                        if b"a_victim.py" in f.read() and {str(folder)!r}.encode() in open(
                                f"/proc/{{pid}}/cmdline", "rb").read():
                            yield int(pid)
                except OSError:
                    pass
        for _ in range(200):
            found = list(victims())
            if found:
                for pid in found:
                    os.kill(pid, signal.{signame})
                break
            time.sleep(0.05)
        open({str(marker)!r}, "w").close()
        """)
    code, out = check(folder, "--jobs", "2", "--timeout", "30", "--report", tmp_path / "g.csv",
                      *PROCESS_ONLY)
    assert statuses(gradebook(tmp_path / "g.csv"), "a_victim.py") == {"relu_backward": "pass"}, out
    assert f"note: checked a second time, alone: the first time it was killed by {signame}" in out


def test_a_sibling_cannot_write_into_another_childs_channels(tmp_path):
    # Another process of the user could open a child's pipe anew through /proc/<pid>/fd and
    # forge its answers (or spoil them). The channels are sockets, which cannot be opened so.
    folder = tmp_path / "class"
    marker = tmp_path / "tried"
    write(folder, "a_victim.py", victim_code(marker))
    write(folder, "b_forger.py", f"""
        import os, time
        from tinyadv.grader import channel
        def victim():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                        args = f.read().split(b"\\0")
                except OSError:
                    continue
                if any(a.endswith(b"a_victim.py") and {str(folder)!r}.encode() in a for a in args):
                    return pid, args
            return None, None
        opened = []
        for _ in range(200):
            pid, args = victim()
            if pid:
                answer_fd = args[args.index(b"tinyadv.grader.child") + 1].decode()
                for fd in ("0", "1", "2", answer_fd):
                    try:
                        w = os.open(f"/proc/{{pid}}/fd/{{fd}}", os.O_WRONLY)
                    except OSError as exc:
                        continue
                    opened.append(fd)
                    os.write(w, b"noise" * 100 + channel.encode({{"kind": "done"}}))
                break
            time.sleep(0.05)
        with open({str(marker)!r}, "w") as f:
            f.write(" ".join(opened) if pid else "no victim")
        def relu_backward(dout, cache):
            return dout * (cache > 0)
        """)
    code, out = check(folder, "--jobs", "2", "--timeout", "30", "--report", tmp_path / "g.csv",
                      *PROCESS_ONLY)
    assert marker.read_text() == "", f"opened the victim's descriptors {marker.read_text()!r}"
    assert statuses(gradebook(tmp_path / "g.csv"), "a_victim.py") == {"relu_backward": "pass"}, out
