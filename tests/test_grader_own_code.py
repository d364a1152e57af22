"""The checker never runs a graded file as its own code.

Graded the way the exercises README showed for a glob -- ``cd class; python -m
tinyadv.gradcheck *.py --report ../grades.csv`` -- the class folder was first on the
checker's own sys.path: a submission named after a module the checker imports (``ctypes``,
``signal``, ``difflib``, ``json``, ...) was imported by the checker itself, outside any
sandbox, with the teacher's rights, and could patch the judge so that a wrong answer PASSes.
Now the command drops the current folder from sys.path before it imports anything, and
refuses to start (exit 2, naming the file) when a module it loaded lies in a folder it grades
(startup.py).

Each file named after a module writes a marker one folder up and makes every verdict a pass
when imported by the checker; graded as a submission, inside its sandbox, it can do neither,
and its wrong relu_backward fails. Judged on the side effects (run as the suite's user, root
in CI: what Python puts on its path does not depend on the user): no marker, every such file
``fail``, the correct classmate ``pass``; the class folder on PYTHONPATH: exit 2 naming the
file; ``python -P -m`` with a ``tinyadv.py`` in the class: the real tinyadv runs, and grades
that file like any other.
"""
import os
import subprocess
import sys

import pytest

from accounts import popen_as
from checking import CORRECT_RELU, REPO, gradebook
from classroom import place, rows_by_file, write_file  # noqa: F401

# Modules the checker imports after its first line of code (the first two before NumPy).
SHADOWED = ("ctypes", "signal", "difflib", "json")
SHADOW = """
    import os
    if __name__ == "{name}":  # imported as the module it shadows: by the checker itself
        with open(os.path.join({markers!r}, "{name}"), "w") as f:
            f.write("ran as the checker")
        import tinyadv.grader.judge as judge
        judge.judge_file = lambda *a, **k: None  # would crash, or worse, pass everything
    def relu_backward(dout, cache):
        return dout  # no mask: wrong
    """


def run(user, argv, cwd, tmp, extra_path=()):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.pathsep.join([*map(str, extra_path), str(REPO)]),
           "TMPDIR": str(tmp), "LANG": "C.UTF-8", "HOME": str(tmp)}
    proc = popen_as(user, [sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, errors="replace")
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_a_class_folder_never_lends_the_checker_a_module(place):
    # What Python puts on its path does not depend on who runs it: once, as this user (as
    # root here, the worst case: a module run as the checker would run as root).
    user = "this user"
    base, tmp, out = place
    folder, markers = base / "class", base / "markers"
    markers.mkdir()
    for name in SHADOWED:
        write_file(folder, f"{name}.py", SHADOW.format(name=name, markers=str(markers)))
    write_file(folder, "student.py", CORRECT_RELU)
    glob = sorted(os.listdir(folder))
    done = run(user, ["-m", "tinyadv.gradcheck", *glob, "--jobs", "2", "--report",
                      "../out/grades.csv"], folder, tmp)
    assert os.listdir(markers) == [], done.stdout + done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    expected = {f"{name}.py": {"relu_backward": "fail"} for name in SHADOWED}
    expected["student.py"] = {"relu_backward": "pass"}
    assert rows_by_file(gradebook(out / "grades.csv")) == expected

    # The class folder on PYTHONPATH: a module from it is loaded before any check -- the
    # checker names it and refuses to grade (these shadows are harmless ones).
    harmless = base / "harmless"
    write_file(harmless, "difflib.py", "X = 1  # used only once grading has started\n")
    write_file(harmless, "student.py", CORRECT_RELU)
    done = run(user, ["-m", "tinyadv.gradcheck", str(harmless)], base, tmp, [harmless])
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"error: refusing to start: the checker's own module difflib was loaded from "
            f"{harmless / 'difflib.py'}, in a folder being graded") in done.stderr


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is new in Python 3.11")
def test_python_dash_p_grades_a_tinyadv_py_like_any_file(place):
    base, tmp, out = place
    folder = base / "class"
    write_file(folder, "tinyadv.py", "def relu_backward(dout, cache):\n    return dout\n")
    write_file(folder, "student.py", CORRECT_RELU)
    done = run("this user", ["-P", "-m", "tinyadv.gradcheck", "tinyadv.py", "student.py",
                             "--report", "../out/grades.csv"], folder, tmp)
    assert done.returncode == 1, done.stdout + done.stderr
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        "tinyadv.py": {"relu_backward": "fail"}, "student.py": {"relu_backward": "pass"}}
