"""Submissions that reach beyond their own verdict, shut in by Landlock (isolation.py).

One class folder, graded once (--jobs 2) by a COPY of tinyadv in a temporary folder, so that
a sandbox that fails can damage nothing of the repository: beside three correct files, one
hostile file per attack the issue found -- rewriting its siblings, patching tinyadv's source
on disk, reading a secret one folder up, a TCP client against a listener this test opens,
signals to the checker, to a process of the user and to the sibling running beside it. The
checks are on the side effects: every file byte-identical, tinyadv unchanged, the secret in
no output, nothing received, the checker alive with a complete gradebook.

Skipped, with the reason, where the kernel does not offer every rule (ABI 6 and up).
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from checking import CORRECT_RELU, REPO, blocks, check, gradebook, statuses, write
from tinyadv.grader import isolation, landlock

LABEL, GAPS, _ = isolation.offered("auto")
pytestmark = pytest.mark.skipif(bool(GAPS), reason=f"this machine offers {LABEL}")


def tree_hashes(folder):
    """{relative path: sha256} of every file under folder (no __pycache__)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def hostile_files(folder, secret_file, port, bystander):
    # Each attack at import time, where a file's code runs first; each prints what it got,
    # so the report shows it tried (and a wrong backward keeps it from passing by accident).
    wrong = "def relu_backward(dout, cache):\n    return 0 * dout\n"  # what b writes
    return {
        "b_writes_its_siblings.py": f"""
            import os
            here = os.path.dirname(os.path.abspath(__file__))
            try:
                names = os.listdir(here)
            except OSError as exc:
                print("listing refused:", type(exc).__name__)
                names = ["a_correct.py", "h_slow_victim.py", "z_correct.py"]
            for name in names:
                if name.endswith(("correct.py", "victim.py")):  # the honest files
                    try:
                        with open(os.path.join(here, name), "w") as f:
                            f.write({wrong!r})
                        print("rewrote", name)
                    except OSError as exc:
                        print("writing", name, "refused:", type(exc).__name__)
            def relu_backward(dout, cache):
                return 0 * dout
            """,
        "c_patches_tinyadv.py": f"""
            import os, tinyadv
            package = os.path.dirname(tinyadv.__file__)
            for name in ("gradcheck.py", "grader/judge.py"):
                try:
                    with open(os.path.join(package, name), "a") as f:
                        f.write("\\ndef rel_error(*a, **k):\\n    return 0.0\\n")
                    print("patched", name)
                except OSError as exc:
                    print("patching", name, "refused:", type(exc).__name__)
            def relu_backward(dout, cache):
                return 0 * dout
            """,
        "d_reads_a_secret.py": f"""
            try:
                with open({str(secret_file)!r}) as f:
                    key = f.read()
            except OSError as exc:
                key = "refused: " + type(exc).__name__
            print("the key:", key)
            def relu_backward(dout, cache):
                raise ValueError("the key: " + key)
            """,
        "e_tcp_client.py": f"""
            import socket
            try:
                with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
                    s.sendall(b"stolen answers")
                print("sent")
            except OSError as exc:
                print("connecting refused:", type(exc).__name__)
            def relu_backward(dout, cache):
                return 0 * dout
            """,
        "f_kills_the_checker.py": f"""
            import os, signal
            for pid, signum in ((os.getppid(), signal.SIGKILL), (os.getppid(), signal.SIGTERM),
                                ({bystander}, signal.SIGKILL)):
                try:
                    os.kill(pid, signum)
                    print("sent", signum, "to", pid)
                except OSError as exc:
                    print("signal to", pid, "refused:", type(exc).__name__)
            def relu_backward(dout, cache):
                return 0 * dout
            """,
        # Its sibling's pid is unknown (no /proc here): it tries every pid near its own. Only
        # when a signal to its parent is refused, i.e. inside the sandbox: should the sandbox
        # ever be missing, this test must not kill the machine's processes.
        "g_kills_its_sibling.py": f"""
            import os, signal, time
            time.sleep(1)  # h_slow_victim is running beside it by now
            try:
                os.kill(os.getppid(), 0)
                print("not shut in: no attack")
            except PermissionError:
                me, killed, refused = os.getpid(), 0, 0
                for pid in range(max(2, me - 300), me + 300):
                    if pid != me:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed += 1
                        except PermissionError:
                            refused += 1
                        except ProcessLookupError:
                            pass
                print("killed", killed, "refused", refused)
            def relu_backward(dout, cache):
                return 0 * dout
            """,
    }


def slow_victim():
    return "import time\ntime.sleep(4)  # long enough to run beside g_kills_its_sibling\n" + \
        CORRECT_RELU.replace("\n    ", "\n")


@pytest.fixture(scope="module")
def attack(tmp_path_factory):
    base = tmp_path_factory.mktemp("landlock")
    copy = base / "install"
    shutil.copytree(REPO / "tinyadv", copy / "tinyadv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    teacher = base / "teacher"
    secret = "SECRET-" + uuid.uuid4().hex
    (teacher / "answer_key.txt").parent.mkdir(parents=True)
    (teacher / "answer_key.txt").write_text(secret)
    folder = teacher / "class"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    bystander = subprocess.Popen(["sleep", "120"])
    for name, code in hostile_files(folder, teacher / "answer_key.txt",
                                    listener.getsockname()[1], bystander.pid).items():
        write(folder, name, code)
    for name in ("a_correct.py", "z_correct.py"):
        write(folder, name, CORRECT_RELU)
    write(folder, "h_slow_victim.py", slow_victim())
    before = tree_hashes(teacher)
    copy_before, repo_before = tree_hashes(copy / "tinyadv"), tree_hashes(REPO / "tinyadv")
    grades, results = base / "grades.csv", base / "results.json"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tinyadv.gradcheck", str(folder), "--jobs", "2", "--timeout",
             "30", "--memory", "256M", "--report", str(grades), "--gradescope", str(results)],
            cwd=copy, env=dict(os.environ, PYTHONPATH=str(copy)), capture_output=True,
            text=True, timeout=120)
        received = []
        try:
            connection, _ = listener.accept()
            connection.settimeout(1)
            received.append(connection.recv(100))
        except BlockingIOError:
            pass
        bystander_alive = bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        listener.close()
    return dict(done=done, folder=folder, secret=secret, grades=grades, results=results,
                received=received, bystander_alive=bystander_alive,
                changed=before != tree_hashes(teacher) or copy_before != tree_hashes(copy / "tinyadv"),
                repo_changed=repo_before != tree_hashes(REPO / "tinyadv"),
                files=sorted(os.listdir(folder)), copy=copy)


def test_the_checker_survives_and_grades_every_file(attack):
    done = attack["done"]
    assert done.returncode == 1, done.stdout + done.stderr  # alive: not 137 (SIGKILL)
    rows = gradebook(attack["grades"])
    assert {r["file"].rsplit("/", 1)[-1] for r in rows} == set(attack["files"])
    for name in ("a_correct.py", "z_correct.py", "h_slow_victim.py"):
        assert statuses(rows, name) == {"relu_backward": "pass"}, (name, done.stdout)
    for name in attack["files"]:
        if name[0] in "bcdefg":
            assert "pass" not in statuses(rows, name).values(), name
    # In full: Landlock, no new processes, who the files ran as (issue 30: the details).
    isolations = {r["isolation"] for r in rows}
    assert len(isolations) == 1, isolations
    assert isolations.pop().startswith(f"{LABEL}; no new processes ("), isolations
    # Issue 36: who they ran as -- root's children as nobody, in namespaces of their own.
    if os.geteuid() == 0:
        assert rows[0]["isolation"].endswith("; own mount/network/IPC namespaces; nobody (uid "
                                             "65534), no capability but reading (Landlock "
                                             "decides what)"), rows[0]["isolation"]
    else:
        assert rows[0]["isolation"].endswith(f"; uid {os.getuid()}, no capabilities")


def test_no_file_changed_anywhere(attack):
    # Every file of the class, the secret, the copy of tinyadv: byte-identical.
    assert not attack["changed"]
    assert not attack["repo_changed"]  # (the repository was never in reach: a copy ran)
    block = blocks(attack["done"].stdout)
    # PermissionError from Landlock; OSError (read-only file system) where the child's mount
    # namespace refuses first (identity.py): refused either way.
    writer = block[str(attack["folder"] / "b_writes_its_siblings.py")]
    assert ("writing a_correct.py refused: PermissionError" in writer
            or "writing a_correct.py refused: OSError" in writer), writer
    assert "patching gradcheck.py refused" in block[str(attack["folder"] / "c_patches_tinyadv.py")]


def test_the_secret_is_in_no_output(attack):
    done, secret = attack["done"], attack["secret"]
    for text in (done.stdout, done.stderr, attack["grades"].read_text(), attack["results"].read_text()):
        assert secret not in text
    assert "the key: refused: PermissionError" in blocks(done.stdout)[str(attack["folder"] / "d_reads_a_secret.py")]


def test_the_listener_received_nothing(attack):
    assert attack["received"] == []
    assert "connecting refused: PermissionError" in blocks(attack["done"].stdout)[
        str(attack["folder"] / "e_tcp_client.py")]


def test_no_signal_left_the_sandbox(attack):
    out = attack["done"].stdout
    assert attack["bystander_alive"]
    assert "checked a second time" not in out  # no child was killed by someone else
    killer = blocks(out)[str(attack["folder"] / "f_kills_the_checker.py")]
    assert killer.count("refused: PermissionError") == 3, killer
    sibling = blocks(out)[str(attack["folder"] / "g_kills_its_sibling.py")]
    assert "killed 0 refused" in sibling and "refused 0" not in sibling, sibling


def check_gradescope_results(doc):
    """Gradescope's results.json, as its autograder specification publishes it ("Output
    format"): a list of problems, empty when the document fits."""
    problems = []
    visibility = {"hidden", "after_due_date", "after_published", "visible"}
    formats = {"text", "html", "simple_format", "md", "ansi"}
    top = {"score": (int, float), "execution_time": (int, float), "output": str,
           "output_format": str, "test_output_format": str, "test_name_format": str,
           "visibility": str, "stdout_visibility": str, "extra_data": dict, "tests": list,
           "leaderboard": list}
    per_test = {"score": (int, float), "max_score": (int, float), "status": str, "name": str,
                "name_format": str, "number": str, "output": str, "output_format": str,
                "tags": list, "visibility": str, "extra_data": dict}
    if not isinstance(doc, dict):
        return ["not an object"]
    for where, record, allowed in [("top", doc, top)] + [
            (f"test {i}", t, per_test) for i, t in enumerate(doc.get("tests", []))]:
        if not isinstance(record, dict):
            problems.append(f"{where}: not an object")
            continue
        for key, value in record.items():
            if key not in allowed:
                problems.append(f"{where}: unknown field {key}")
            elif not isinstance(value, allowed[key]) or isinstance(value, bool):
                problems.append(f"{where}: {key} is a {type(value).__name__}")
            elif key.endswith("visibility") and value not in visibility:
                problems.append(f"{where}: {key} {value!r}")
            elif key.endswith("format") and value not in formats:
                problems.append(f"{where}: {key} {value!r}")
            elif key == "status" and value not in ("passed", "failed"):
                problems.append(f"{where}: status {value!r}")
        if where != "top" and "score" not in record and "score" not in doc:
            problems.append(f"{where}: no score here nor at the top")
    if "score" not in doc and "tests" not in doc:
        problems.append("neither a score nor tests")
    return problems


def test_gradescope_results_follow_the_specification(attack):
    doc = json.loads(attack["results"].read_text())
    assert check_gradescope_results(doc) == []
    rows = gradebook(attack["grades"])
    assert len(doc["tests"]) == len(rows)
    assert doc["score"] == sum(t["score"] for t in doc["tests"]) == sum(r["status"] == "pass" for r in rows)
    for test, row in zip(doc["tests"], rows):
        assert test["status"] == ("passed" if row["status"] == "pass" else "failed")
        assert row["function"] in test["name"] and test["max_score"] == 1.0
        assert row["hint"][:40] in test["output"]
    assert doc["output"].startswith(f"sandbox: {LABEL}")
    # The check is not vacuous: each kind of mistake is caught.
    for bad in ({"score": "3"}, {"tests": [{"name": "x", "status": "ok", "score": 1}]},
                {"tests": [{"name": "x"}]}, {"score": 1, "visibility": "students"},
                {"score": 1, "output_format": "pdf"}, {"score": 1, "colour": "red"}):
        assert check_gradescope_results(bad), bad


def test_sandbox_require_runs_here_and_off_is_process_only(tmp_path):
    path = write(tmp_path, "ok.py", CORRECT_RELU)
    code, out = check(path, "--sandbox", "require")
    assert code == 0 and f"isolation: {LABEL}" in out
    code, out = check(path, "--sandbox", "off", "-v")
    assert code == 0 and "isolation: process-only: --sandbox off; no new processes" in out
    assert out.startswith("sandbox: process-only: --sandbox off. Each file runs as your user")


def test_rules_degrade_one_by_one_on_older_abis(tmp_path):
    # A real kernel asked for older ABIs: at 3 (files only) a TCP connect, an abstract Unix
    # socket and a signal to this process still go through while a file outside is refused;
    # at 4 TCP is refused too; at 6 everything is.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = "tinyadv-test-" + uuid.uuid4().hex  # abstract: a name after a zero byte
    abstract.bind("\0" + abstract_name)
    abstract.listen(8)
    script = """
import os, socket, sys
from tinyadv.grader import isolation, landlock
landlock.restrict_self(landlock.Policy(read_execute=isolation.python_folders()), int(sys.argv[1]))
def attempt(name, action):
    try:
        action()
        print(name, "ok")
    except PermissionError:
        print(name, "refused")
attempt("write", lambda: open(sys.argv[3], "w"))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5))
attempt("abstract", lambda: socket.socket(socket.AF_UNIX).connect("\\0" + sys.argv[4]))
attempt("signal", lambda: os.kill(os.getppid(), 0))
"""
    results = {}
    for abi in (3, 4, 6):
        done = subprocess.run([sys.executable, "-c", script, str(abi), str(listener.getsockname()[1]),
                               str(tmp_path / f"abi{abi}.txt"), abstract_name], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        results[abi] = done.stdout.split("\n")[:-1]
    listener.close()
    abstract.close()
    assert results == {
        3: ["write refused", "tcp ok", "abstract ok", "signal ok"],
        4: ["write refused", "tcp refused", "abstract ok", "signal ok"],
        6: ["write refused", "tcp refused", "abstract refused", "signal refused"]}, results
    assert not list(tmp_path.iterdir())


def test_require_refuses_a_machine_without_every_rule(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(landlock, "abi_version", lambda: (3, None))
    path = write(tmp_path, "ok.py", CORRECT_RELU)
    with pytest.raises(SystemExit) as exit_info:
        check(path, "--sandbox", "require")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--sandbox require: this machine cannot enforce TCP bind and connect (ABI 4)" in err
    assert "signals and abstract Unix sockets" in err and "it offers landlock-3" in err


def test_the_sandbox_benchmark_runs(capsys):
    # python -m tinyadv.grader.bench: both modes, every line; its numbers are for the README.
    from tinyadv.grader import bench
    assert bench.main(["--copies", "1", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{LABEL} on this machine; 1 runs of 1 files")
    assert lines[1].startswith("--sandbox off  per file: wall median")
    assert lines[2].startswith("--sandbox auto per file: wall median")
    assert lines[3].startswith("sandbox cost: ") and "load average" in lines[3]


def test_auto_warns_once_when_the_kernel_offers_less(tmp_path, monkeypatch, capsys):
    # The checker's view of the kernel is faked (ABI 3); the children still shut themselves
    # in with what the real kernel offers.
    monkeypatch.setattr(landlock, "abi_version", lambda: (3, None))
    path = write(tmp_path, "ok.py", CORRECT_RELU)
    code, out = check(path, path.parent, "-v")  # -v: the whole line, also for one file
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Not contained on this kernel: moving files" not in warnings[0]
    assert "TCP bind and connect (ABI 4)" in warnings[0] and "landlock-3, without" in warnings[0]
    assert out.splitlines()[0] == warnings[0][len("warning: "):]
