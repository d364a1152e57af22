"""The house: the paper's core on top imports nothing from the lab or the grader, no module
imports another in a circle, every module declares its public names, and every command a
reader types still starts."""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tinyadv")
COMMANDS = ("reproduce", "sweep", "bench")  # thin entry points at the top: not the core
OUTSIDE_THE_CORE = ("tinyadv.lab", "tinyadv.grader")


def module_files():
    """{dotted module name: path} for every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = module_files()


def imported_modules(name, path):
    """The tinyadv modules ``name`` imports anywhere in its file (functions included)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            # ``from . import x`` imports module x; ``from .m import f`` imports module m
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def is_core(name):
    top = name.split(".")
    return len(top) == 2 and top[1] not in COMMANDS + ("lab", "grader", "fast")


def test_the_core_imports_nothing_from_the_lab_or_the_grader():
    for name in filter(is_core, GRAPH):
        bad = sorted(t for t in GRAPH[name] if t.startswith(OUTSIDE_THE_CORE))
        assert not bad, f"{name} imports {bad}"
    for name in (n for n in GRAPH if n.startswith("tinyadv.fast")):
        bad = sorted(t for t in GRAPH[name] if t.startswith(OUTSIDE_THE_CORE))
        assert not bad, f"{name} imports {bad}"


def test_the_gradient_toolbox_imports_no_tinyadv_module():
    assert GRAPH["tinyadv.gradcheck"] == set()


def test_no_import_circle():
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_a_command_in_a_core_module_hands_over_before_anything_is_imported():
    """``python -m tinyadv.gradcheck`` / ``invariance`` run a core module as __main__: its
    first statement must hand over to the command's code and leave, so the module's body is
    never run twice (once as __main__, once imported by the command)."""
    for name, target in (("tinyadv.gradcheck", "tinyadv.grader"),
                         ("tinyadv.invariance", "tinyadv.lab.tramer")):
        body = ast.parse(open(MODULES[name]).read()).body
        guard = body[1]  # body[0] is the docstring
        assert isinstance(guard, ast.If) and "__main__" in ast.unparse(guard.test), name
        text = ast.unparse(guard)
        assert f"run_module('{target}'" in text and "SystemExit" in text, name
        assert target in MODULES


def test_every_module_declares_its_public_names():
    import importlib
    for name, path in MODULES.items():
        if name.endswith("__main__") or path.endswith("__init__.py") and name != "tinyadv":
            continue
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        missing = [n for n in module.__all__
                   if not hasattr(module, n) and f"{name}.{n}" not in MODULES]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_importing_the_package_imports_no_module():
    code = "import sys, tinyadv; print(sorted(m for m in sys.modules if m.startswith('tinyadv')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "['tinyadv']", out.stderr


@pytest.mark.parametrize("command", ["reproduce", "sweep", "bench", "gradcheck", "invariance",
                                     "grader"])
def test_every_command_starts(command):
    out = subprocess.run([sys.executable, "-m", f"tinyadv.{command}", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m tinyadv."), out.stdout[:200]


# ---- the step a student reads is the step that runs -------------------------------------

# The files a student reads to follow one training step of paper Eq. 2, and what they may
# weigh together (the code map in README.md gives the count).
EQ2_PATH = ("data", "layers", "mlp", "losses", "objective", "attacks", "optim", "train")
EQ2_PATH_MAX_LINES = 1500
LONGEST_CORE_FUNCTION = 60  # lines, docstring included


def closure(name):
    """Every tinyadv module ``name`` imports, directly or through others."""
    seen, todo = set(), [name]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("name", ["tinyadv.train", "tinyadv.objective", "tinyadv.network",
                                  "tinyadv.cnn", "tinyadv.attacks"])
def test_the_readable_step_imports_nothing_from_fast_or_the_authors_code(name):
    bad = sorted(m for m in closure(name)
                 if m.startswith("tinyadv.fast") or m == "tinyadv.authors_code")
    assert not bad, f"{name} imports {bad}"


def test_a_default_training_step_runs_no_fast_code():
    """train.train without a step handed in runs the readable one: no function of a file under
    tinyadv/fast/ is called (sys.setprofile sees every call), and none is even imported."""
    code = """
import sys
import numpy as np
from tinyadv import data, invariance
from tinyadv.train import MODELS, TrainConfig, model_config, train
X, y = data.load_mnist("test")
X, y = X[:256], y[:256]
x_inv, y_flip = invariance.label_flip(X, y, X, y, 0.4, exclude_self=True)
files = set()
sys.setprofile(lambda frame, event, arg: files.add(frame.f_code.co_filename))
for model in MODELS:
    train(model_config(model, TrainConfig(epochs=1, sizes=(784, 16, 10))), X, y, x_inv, y_flip,
          log=None)
sys.setprofile(None)
print(sorted(f for f in files if "tinyadv" in f))
print(sorted(m for m in sys.modules if m.startswith("tinyadv.fast")))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    called, imported = (eval(line) for line in out.stdout.splitlines())
    assert any(f.endswith(os.path.join("tinyadv", "objective.py")) for f in called)
    assert not [f for f in called if os.path.join("tinyadv", "fast") in f]
    assert imported == []


def test_the_eq2_path_is_short_and_no_core_function_is_long():
    lines = {name: len(open(MODULES[f"tinyadv.{name}"]).read().splitlines())
             for name in EQ2_PATH}
    assert sum(lines.values()) <= EQ2_PATH_MAX_LINES, lines
    readme = " ".join(open(os.path.join(ROOT, "README.md")).read().split())
    said = f"reads in the first eight files alone: {sum(lines.values()):,} lines"
    assert said in readme, f"README.md's code map should say: {said}"
    long = []
    for name in filter(is_core, MODULES):
        for node in ast.walk(ast.parse(open(MODULES[name]).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_CORE_FUNCTION:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, long


def test_the_readmes_example_runs_as_printed():
    """The first ```python block of README.md, run as it stands, from a fresh interpreter."""
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("```python\n") + len("```python\n")
    example = text[start:text.index("```", start)]
    out = subprocess.run([sys.executable, "-c", example], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
