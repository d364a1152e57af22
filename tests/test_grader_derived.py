"""What a gradient check cannot tell: notes for the teacher, never a verdict.

Before issue 36, a generic 40-line file computing centred differences of tinyadv's forwards
passed all eleven exercises with no note, and the note for calling tinyadv's own function was
silenced by one keyword argument to the watching wrapper (``_name=``), its
``__kwdefaults__``, ``importlib.reload`` or ``exec`` of the library's source. Now each of six
pieces gets a probe beside its kink, where centred differences differ from any derived
gradient (kinks.py), and the watch takes no argument of its own, reports each call the moment
it happens, notices changes to itself, and the library's source is unreadable once a child is
shut in (child.py, isolation.py).

One folder, checked in this process: the generic numerical file (max pooling fails: its graded
cases hold windows with tied maxima, where centred differences split the gradient and the
convention gives it to the first maximum; the other ten pass, the five of them with a kink
get the note, the five without cannot be told apart and get none), a file per silencing route
(each still noted, or failed), and a correct derived file (no note).
"""
import pytest

from checking import CORRECT_RELU, blocks, check, gradebook, write

NUMERIC = """
    # A generic file: every backward is centred differences of tinyadv's forward.
    import numpy as np
    from tinyadv import layers, losses
    from tinyadv.grader import answers

    def _numeric(forward, args, dout, k, h=1e-5):
        args = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(args)]
        grads = []
        for i in range(k):
            g = np.zeros_like(args[i])
            flat, gflat = args[i].reshape(-1), g.reshape(-1)
            for j in range(flat.size):
                old = flat[j]
                flat[j] = old + h
                plus = np.sum(forward(*args)[0] * dout)
                flat[j] = old - h
                minus = np.sum(forward(*args)[0] * dout)
                flat[j] = old
                gflat[j] = (plus - minus) / (2 * h)
            grads.append(g)
        return grads[0] if k == 1 else tuple(grads)

    def _make(module, name, k):
        forward = getattr(module, name + "_forward")
        def fwd(*args):
            return forward(*args)[0], args
        def bwd(dout, cache):
            return _numeric(forward, cache, dout, k)
        globals()[name + "_forward"] = fwd
        globals()[name + "_backward"] = bwd

    for module, name, k in [
            (layers, "linear", 3), (layers, "relu", 1), (losses, "softmax_cross_entropy", 1),
            (losses, "angular_distance", 2), (losses, "triplet_loss", 3),
            (losses, "feature_norm", 1), (layers, "gather_rows", 1), (answers, "fgsm_loss", 1),
            (layers, "conv2d", 3), (layers, "maxpool2d", 1), (layers, "prelu", 2)]:
        _make(module, name, k)
    """
SILENCING = {
    "kwarg": """
        from tinyadv.layers import relu_backward as library
        def relu_backward(dout, cache):
            return library(dout, cache, _name="mine")
        """,
    "kwdefaults": """
        from tinyadv import layers
        try:
            layers.relu_backward.__kwdefaults__ = {"_name": "mine", "_original": None}
        except Exception as exc:
            print("kwdefaults:", type(exc).__name__)
        def relu_backward(dout, cache):
            return layers.relu_backward(dout, cache)
        """,
    "reload": """
        import importlib
        from tinyadv import layers
        try:
            importlib.reload(layers)
            print("reloaded")
        except Exception as exc:
            print("reload:", type(exc).__name__)
        def relu_backward(dout, cache):
            return layers.relu_backward(dout, cache)
        """,
    "execsource": """
        import tinyadv.layers
        mine = {}
        try:
            with open(tinyadv.layers.__file__) as f:
                exec(f.read().replace("from .validate", "from tinyadv.validate"), mine)
            print("exec'd")
        except Exception as exc:
            print("exec:", type(exc).__name__)
        def relu_backward(dout, cache):
            return (mine.get("relu_backward") or tinyadv.layers.relu_backward)(dout, cache)
        """,
    "alias": """
        from tinyadv.mlp import relu_backward as library  # mlp's own name for layers' function
        def relu_backward(dout, cache):
            return library(dout, cache)
        """,
    "swapcell": """
        from tinyadv import layers
        w = layers.relu_backward
        try:
            for cell in w.__closure__:
                if isinstance(cell.cell_contents, set):
                    cell.cell_contents = set()
            print("swapped")
        except Exception as exc:
            print("swap:", type(exc).__name__)
        def relu_backward(dout, cache):
            return w(dout, cache)
        """,
}
WITH_A_KINK = ("relu_backward", "prelu_backward", "maxpool2d_backward",
               "angular_distance_backward", "triplet_loss_backward", "fgsm_loss_backward")


@pytest.fixture(scope="module")
def notes_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("derived")
    write(folder, "numeric.py", NUMERIC)
    for name, code in SILENCING.items():
        write(folder, f"silence_{name}.py", code)
    write(folder, "derived.py", CORRECT_RELU)
    report = folder.parent / "derived-grades.csv"
    code, out = check(folder, "--jobs", "2", "--report", report)
    rows = {(r["file"].rsplit("/", 1)[-1], r["function"]): r for r in gradebook(report)}
    return out, rows, folder


def test_centred_differences_pass_with_a_note_beside_a_kink(notes_run):
    out, rows, _ = notes_run
    numeric = {f: r for (name, f), r in rows.items() if name == "numeric.py"}
    assert len(numeric) == 11, out
    tied = numeric.pop("maxpool2d_backward")
    assert tied["status"] == "fail" and "equal maxima" in out, out
    assert {r["status"] for r in numeric.values()} == {"pass"}, out
    for function, row in numeric.items():
        noted = "this answer is what centred differences give" in row["hint"]
        assert noted == (function in WITH_A_KINK), (function, row["hint"])
    assert rows[("derived.py", "relu_backward")] == dict(
        rows[("derived.py", "relu_backward")], status="pass", hint="")


@pytest.mark.parametrize("route", sorted(SILENCING))
def test_the_library_note_cannot_be_silenced(route, notes_run):
    out, rows, folder = notes_run
    row = rows[(f"silence_{route}.py", "relu_backward")]
    block = blocks(out)[str(folder / f"silence_{route}.py")]
    assert "note: calls tinyadv.layers.relu_backward, which computes this answer outright" in block
    if route == "kwarg":  # the keyword goes to tinyadv's function, which refuses it
        assert row["status"] == "fail" and "unexpected keyword argument '_name'" in row["hint"]
    else:
        assert row["status"] == "pass" and "calls tinyadv.layers.relu_backward" in row["hint"]
    if route in ("reload", "execsource"):  # the library's source: unreadable once shut in
        assert "PermissionError" in block
    if route in ("kwdefaults", "swapcell"):
        assert "changed the watcher of tinyadv.layers.relu_backward" in row["hint"]
