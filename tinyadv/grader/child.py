"""The only code that runs beside a student's: ``python -m tinyadv.grader.child FD PARENT FILE``.

sandbox.py starts it in a fresh interpreter, one per submission. In order, it

1. arranges to die with the checker (PARENT) and hides its descriptors from other processes;
2. reads its plan from stdin -- every piece's names and the inputs of its three cases and of
   its probe beside a kink (kinks.py; one frame, see channel.py) -- and FILE's bytes, while
   it still has the teacher's rights to;
3. puts a watcher in place of each tinyadv function that solves a piece outright (_Watch:
   a note for the teacher when the file calls one) and loads what a file may import of
   tinyadv (the plan's "preload");
4. becomes nobody, or enters a user namespace of its own, with its own mount (read-only;
   its folder a tmpfs), network and IPC namespaces and a fresh session keyring
   (identity.py), and arms the death signal again (a change of user clears it);
5. sets its limits, which it cannot raise again: address space (``--memory`` less the tmpfs),
   CPU time, no core files, no file larger than 64 MB, 64 descriptors, and no new processes
   (RLIMIT_NPROC, and for root too the seccomp filter, which also refuses sockets, System V
   IPC, keys, memfd and the limit and priority calls aimed at another process: seccomp.py)
   -- so the memory limit holds for the submission as a whole, and nothing it starts can
   outlive its check;
6. shuts itself in (isolation.py): Landlock rules that it, and whatever it starts, can never
   lift -- read only Python, NumPy and FILE, write only its own temporary folder, no TCP, no
   signal to a process outside itself -- and sends what it got, first of all its frames
   (with its namespaces, user id, capabilities and whether it can start processes);
7. sends the backward names FILE defines, read from its syntax tree without running it (so a
   file that never finishes importing still gets a row per function);
8. runs FILE's code as the module ``submission`` (its top-level code runs now) and sends
   which pieces it defines;
9. for each of them, calls the forward -- the file's own, or tinyadv's if the file has none --
   and then the backward, on fresh copies of each case's inputs (and the probe's), and sends
   what came back: the forward's output and the returned gradients as plain float64 arrays,
   with a description of anything that is not an array (None, a tuple of 2, an exception
   and its line), and whether the file changed the watch. One frame per function, on
   descriptor FD -- never on stdout or stderr, which belong to the submission;
10. sends "done" and exits.

Nothing is judged here: no comparison, no numerical gradient, no verdict. Whatever the
submission does to this process (patch numpy, replace rel_error, forge a frame) can only
change what is sent, and the checker judges what is sent against its own reference.
"""
import ast
import functools
import importlib
import os
import signal
import sys
import traceback
import types
import warnings

from tinyadv.grader import procs  # the standard library only: loads in a few ms

__all__ = ["main"]

if __name__ == "__main__":
    # First, before NumPy's ~100 ms of imports: die with the checker, and make /proc/<pid>/fd
    # of this process unreadable to other processes of the user (another submission).
    procs.die_with_parent(int(sys.argv[2]))
    procs.set_dumpable(False)

import numpy as np  # noqa: E402

from tinyadv.grader import channel, identity, isolation, seccomp  # noqa: E402

FILE_SIZE_LIMIT = 64 * 2**20
FILE_LIMIT = 64  # open descriptors
MAX_ITEMS = 16  # a returned tuple is described up to this many items


class _Sender:
    """Writes frames to the checker's pipe; a closed or replaced pipe ends this process."""

    def __init__(self, fd):
        self.fd = fd

    def __call__(self, record, arrays=()):
        data = channel.encode(record, arrays)
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:  # the submission closed or replaced the descriptor: nothing to say
            _exit(channel.EXIT_PIPE_LOST)


def _exit(code):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B036 -- a submission may have replaced the stream
            pass
    os._exit(code)  # not sys.exit: no atexit handler of the submission runs after this


def _read_stdin():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _set_limits(limits, scratch):
    """Set the limits (see the module docstring, step 5) that this process cannot raise again.
    The address space is ``--memory`` less the tmpfs its folder became (``scratch`` bytes):
    the two together are what the submission may hold."""
    try:
        import resource
    except ImportError:  # not a Unix: the checker's deadline still applies
        return
    wanted = {"RLIMIT_AS": (limits["memory"] - scratch,) * 2,
              "RLIMIT_CPU": (limits["cpu_seconds"], limits["cpu_seconds"] + 2),
              "RLIMIT_NPROC": (0, 0),  # no fork, no thread (root is exempt from this one)
              "RLIMIT_CORE": (0, 0),
              "RLIMIT_FSIZE": (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT),
              # Few descriptors: each pipe holds kernel memory no address-space limit counts
              # (64 KB; seccomp.py refuses growing one to 1 MB, and socket pairs): 2 MB at most.
              "RLIMIT_NOFILE": (FILE_LIMIT, FILE_LIMIT)}
    for name, (soft, hard) in wanted.items():
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
            except (ValueError, OSError, OverflowError):  # above a system's hard limit, huge
                pass


def _refuse_calls(mode, metadata):
    """Install the seccomp filter (seccomp.py); returns the words for the report on whether
    this process can start another. ``--sandbox off`` refuses new processes only."""
    why_not = seccomp.install(metadata=metadata, only_processes=mode == "off")
    if why_not is None:
        return "no new processes (seccomp)"
    if hasattr(os, "getuid") and os.getuid() != 0:
        return f"no new processes (RLIMIT_NPROC; no seccomp: {why_not})"
    return (f"new processes possible (root without seccomp: {why_not}); each is killed when "
            f"the check ends")


def _user_words():
    """'uid 1000, no capabilities' or 'nobody (uid 65534), 1 capability': who the submission
    runs as."""
    count = procs.effective_capabilities() if hasattr(os, "getuid") else None
    if not hasattr(os, "getuid"):
        return "user unknown"
    uid = os.getuid()
    who = f"nobody (uid {uid})" if uid == identity.NOBODY else f"uid {uid}"
    if count is None:
        return who
    if count == 1 and uid == identity.NOBODY and procs.has_capability(identity.CAP_DAC_READ_SEARCH):
        return who + ", no capability but reading (Landlock decides what)"
    return who + (", no capabilities" if count == 0 else f", {count} capabilities")


def _declared_backwards(source, path, known):
    """Known backward names that FILE defines at its top level, from its syntax tree."""
    try:
        tree = ast.parse(source, filename=path)
    except BaseException:  # noqa: B036 -- a syntax error is reported by the import below
        return []
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return [name for name in known if name in names]


def _exception_text(exc, source_file):
    """'TypeError: message (line 12, in relu_backward)', the line being the deepest one in
    the student's file. Never raises, whatever the exception's __str__ does."""
    try:
        message = str(exc).strip()
    except BaseException:  # noqa: B036
        message = "(its message cannot be printed)"
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_file]
        where = f" (line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    except BaseException:  # noqa: B036
        where = ""
    return f"{type(exc).__name__}{': ' + message if message else ''}{where}"[:2000]


def _read_source(path):
    """FILE's bytes, read before this process gives up the teacher's identity (identity.py):
    nobody may not be allowed to open it. (None, why) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(), None
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc.strerror}"


def _import_file(source, path):
    """Run FILE's source as the module "submission": (module, None) or (None, {"reason": ...,
    "memory": bool})."""
    module = types.ModuleType("submission")
    module.__file__ = path
    sys.modules["submission"] = module
    sys.path.insert(0, os.path.dirname(path))  # so the file can import its own helpers
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 -- the submission's code, in this child alone
    except SyntaxError as exc:  # IndentationError and TabError included
        return None, {"reason": f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})",
                      "memory": False}
    except SystemExit as exc:
        return None, {"reason": f"the file called sys.exit({exc.code!r}) while being imported",
                      "memory": False}
    except BaseException as exc:  # noqa: B036 -- a submission may raise anything
        return None, {"reason": _exception_text(exc, path), "memory": isinstance(exc, MemoryError)}
    return module, None


def _watcher(original, name, calls, fd, frame, write):
    """A stand-in for ``original`` that first tells the checker it is called: ``frame`` goes
    out on descriptor ``fd`` at once -- a submission cannot take back bytes the checker has
    read -- and ``name`` into ``calls``. It takes no argument of its own (a keyword such as
    ``_name=`` goes to tinyadv's function, which refuses it) and has no defaults to change."""
    def watched(*args, **kwargs):
        try:
            write(fd, frame)
        except OSError:  # the file closed the descriptor: its process ends as an error
            pass
        calls.add(name)
        return original(*args, **kwargs)
    return watched


class _Watch:
    """tinyadv's functions that solve a piece outright, each replaced by a watcher that
    records its calls (a note for the teacher, never a verdict): on its home module and on
    every other loaded tinyadv module holding it under some name (``tinyadv.mlp`` holds
    layers' relu_backward). Done before the file is imported, so ``from tinyadv.losses import
    triplet_loss_backward`` gets the watcher too; the modules' source cannot be read once the
    child is shut in (isolation.py), so ``importlib.reload`` or ``exec`` of it cannot make
    fresh unwatched copies. ``tampered()`` says whether a watcher or its place was changed.
    What still evades it is in lessons/exercises/README.md ("Answers not worked out")."""

    def __init__(self, pieces, fd):
        self.calls, self.wrappers, self._snapshots, self._places = set(), {}, {}, []
        originals = {}
        for piece in pieces:
            for qualified in piece["solutions"]:
                if qualified in self.wrappers:
                    continue
                module_name, _, attribute = qualified.rpartition(".")
                module = importlib.import_module(module_name)
                original = getattr(module, attribute)
                frame = channel.encode({"kind": "library call", "name": qualified})
                watched = _watcher(original, qualified, self.calls, fd, frame, os.write)
                functools.update_wrapper(watched, original)
                del watched.__wrapped__  # else `f = watched.__wrapped__` would call it unnoticed
                self.wrappers[qualified] = watched
                originals[id(original)] = (original, watched)
                self._snapshots[qualified] = self._state(watched)
        # The grader's own modules keep their originals (the checker's calls are not the
        # file's), except a solution's home: exercise 07's pair lives in grader/answers.py.
        homes = {qualified.rpartition(".")[0] for qualified in self.wrappers}
        for module_name, module in list(sys.modules.items()):
            if not module_name.startswith("tinyadv") or (
                    module_name.startswith("tinyadv.grader") and module_name not in homes):
                continue
            for attribute, value in list(vars(module).items()):
                found = originals.get(id(value))
                if found is not None and found[0] is value:
                    setattr(module, attribute, found[1])
                    self._places.append((module, attribute, found[1]))

    @staticmethod
    def _state(watched):
        cells = tuple(c.cell_contents for c in watched.__closure__ or ())
        return watched.__code__, cells, watched.__defaults__, watched.__kwdefaults__

    def tampered(self):
        """What the file changed of the watch, in words ([] when nothing)."""
        problems = []
        for qualified, watched in self.wrappers.items():
            was, now = self._snapshots[qualified], self._state(watched)
            if was[0] is not now[0] or len(was[1]) != len(now[1]) or was[2:] != now[2:] or any(
                    a is not b for a, b in zip(was[1], now[1])):
                problems.append(f"changed the watcher of {qualified}")
        for module, attribute, watched in self._places:
            if getattr(module, attribute, None) is not watched:
                problems.append(f"replaced {module.__name__}.{attribute}")
        return sorted(set(problems))


def _describe(value, arrays):
    """A JSON description of a returned value; if it reads as numbers, its float64 array is
    appended to ``arrays`` and the description says where."""
    if value is None:
        return {"type": "NoneType"}
    info = {"type": _type_name(value)}
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        info["dtype"] = str(dtype)[:40]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(value, dtype=np.float64)
    except BaseException as exc:  # noqa: B036 -- __array__ and friends are the submission's
        info["unreadable"] = True
        info["why"] = _exception_text(exc, "")[:300]
        try:
            info["shape"] = [int(s) for s in np.shape(value)]
        except BaseException:  # noqa: B036
            pass
        return info
    info["shape"] = list(array.shape)
    if array.size > channel.MAX_ELEMENTS:
        info["why"] = f"too large to send back ({array.size} entries)"
        return info
    info["array"] = len(arrays)
    arrays.append(array)
    return info


def _type_name(value):
    """type(value).__name__, which a metaclass of the submission's could make raise."""
    try:
        return str(type(value).__name__)[:100]
    except BaseException:  # noqa: B036
        return "(a type without a readable name)"


def _describe_return(returned, arrays, source_file):
    """The backward's return value described. Reading it runs the submission's code (a tuple
    subclass's __getitem__ or __len__): whatever that raises makes it a return value that
    cannot be read -- the submission's wrong return type, not a crash of this process."""
    if returned is None:
        return {"kind": "none"}
    first_array = len(arrays)
    try:
        if isinstance(returned, (tuple, list)):
            items = list(returned[:MAX_ITEMS])
            return {"kind": "sequence", "type": _type_name(returned), "length": len(returned),
                    "items": [_describe(item, arrays) for item in items]}
        return {"kind": "single", "item": _describe(returned, arrays)}
    except BaseException as exc:  # noqa: B036
        del arrays[first_array:]
        return {"kind": "unreadable", "type": _type_name(returned),
                "why": _exception_text(exc, source_file)[:300]}


def _as_pair(result, source_file):
    """(out, cache, None) from a forward's result, or (None, None, the record's "forward")."""
    try:
        if isinstance(result, tuple) and len(result) == 2:
            out, cache = result
            return out, cache, None
    except BaseException as exc:  # noqa: B036 -- a tuple subclass's __len__ or __iter__
        return None, None, {"status": "unreadable", "type": _type_name(result),
                            "why": _exception_text(exc, source_file)[:300]}
    return None, None, {"status": "not a pair", "type": _type_name(result)}


def _call(function, args, source_file):
    """(result, None) or (None, {"status": "blank" | "raised", "message", "memory"})."""
    try:
        return function(*args), None
    except NotImplementedError as exc:  # a blank: its message is the exercise's own words
        try:
            message = str(exc).strip()[:300]
        except BaseException:  # noqa: B036
            message = ""
        return None, {"status": "blank", "message": message}
    except BaseException as exc:  # noqa: B036 -- SystemExit, KeyboardInterrupt, anything
        return None, {"status": "raised", "message": _exception_text(exc, source_file),
                      "memory": isinstance(exc, MemoryError)}


def _attribute(module, name):
    """getattr(module, name, None), also when the file's module-level __getattr__ raises."""
    try:
        return getattr(module, name, None)
    except BaseException:  # noqa: B036
        return None


def _as_argument(array):
    """A fresh copy of an input; 0-d arrays become Python numbers (margin, dloss)."""
    return array.item() if array.ndim == 0 else np.array(array)


def _run_function(piece, module, inputs, watch, source_file):
    """Call the file's forward and backward on every case, and on the probe beside a kink
    (kinks.py) when the piece has one; returns (record, arrays)."""
    home = importlib.import_module(piece["home"])
    reference_forward = getattr(home, piece["forward"])
    backward = getattr(module, piece["backward"])
    mine = getattr(module, piece["forward"], None)
    if callable(mine) and mine is not reference_forward:
        forward, source = mine, "file"
    else:
        forward, source = reference_forward, ("imported" if mine is reference_forward else "tinyadv")
    arrays = []
    cases = [_run_case(forward, backward, case, inputs, watch, arrays, source_file)
             for case in piece["cases"]]
    record = {"kind": "function", "backward": piece["backward"], "forward_source": source,
              "is_library": any(backward is w for w in watch.wrappers.values()), "cases": cases}
    if piece.get("probe"):
        record["probe"] = _run_case(forward, backward, piece["probe"], inputs, watch, arrays,
                                    source_file)
    record["watch"] = watch.tampered()
    return record, arrays


def _run_case(forward, backward, case, inputs, watch, arrays, source_file):
    """The record of one case: the forward's output and the backward's return, described."""
    args = [_as_argument(inputs[i]) for i in case["args"]]
    record = {}
    result, failure = _call(forward, args, source_file)
    if failure:
        record["forward"] = failure
        return record
    out, cache, failure = _as_pair(result, source_file)
    if failure:
        record["forward"] = failure
        return record
    record["forward"] = {"status": "ok"}
    record["out"] = _describe(out, arrays)
    watch.calls.clear()
    returned, failure = _call(backward, [_as_argument(inputs[case["dout"]]), cache], source_file)
    record["library_calls"] = sorted(watch.calls)
    if failure:
        record["backward"] = failure
        return record
    record["backward"] = {"status": "ok"}
    record["returned"] = _describe_return(returned, arrays, source_file)
    return record


def main(argv):
    channel_fd, parent, path = int(argv[0]), int(argv[1]), os.path.abspath(argv[2])
    procs.die_with_parent(parent)  # again: harmless, and main() may be called on its own
    procs.set_dumpable(False)
    if hasattr(signal, "pthread_sigmask"):  # the checker blocks some signals; we need none
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # A SIGINT (a sibling's, say) must kill this process, as a signal: then the checker sees
    # it and checks this file again alone. Python's default would raise KeyboardInterrupt in
    # the student's function, where it would read as the student's own failure.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    send = _Sender(channel_fd)
    plan, inputs = channel.decode_one(_read_stdin())
    pieces = plan["pieces"]
    source, unreadable = _read_source(path)
    watch = _Watch(pieces, channel_fd)
    for name in plan.get("preload", ()):  # what a file may import of tinyadv: loaded now,
        importlib.import_module(name)     # as its source is unreadable once shut in
    config = plan["sandbox"]
    mode = config.get("mode") if isinstance(config, dict) else None
    # Who it is and what it shares (identity.py), then its limits and the calls it may not
    # make (seccomp.py), then what it may touch (Landlock, isolation.py): after NumPy and
    # tinyadv are loaded (their hundreds of files are opened unchecked), and before a line
    # of the submission runs.
    alone = {}
    if mode != "off":
        alone = identity.enter(os.getcwd(), config.get("scratch", 0),
                               keep_reading=isolation.landlock_enforced(config))
        procs.die_with_parent(parent)  # a change of user clears the death signal: again
        procs.set_dumpable(False)
    _set_limits(plan["limits"], alone.get("scratch", 0))
    owns_files = not alone.get("nobody") and not alone.get("read_only")
    processes = _refuse_calls(mode, metadata=mode != "off" and owns_files)
    shut_in = isolation.shut_in(config, path, os.getcwd(), kept=alone.get("kept_capability"))
    send(dict(shut_in, kind="isolation", processes=processes, user=_user_words(),
              identity=alone))
    if shut_in.get("refused"):  # --sandbox require, and this child could not be shut in
        _exit(0)
    if source is None:
        send({"kind": "import failed", "reason": f"cannot read the file: {unreadable}",
              "memory": False})
        _exit(0)

    known = [piece["backward"] for piece in pieces]
    send({"kind": "declared", "names": _declared_backwards(source, path, known)})
    module, failure = _import_file(source, path)
    if failure:
        send(dict(failure, kind="import failed"))
        _exit(0)
    found = [p for p in pieces if callable(_attribute(module, p["backward"]))]
    callables = []
    for name, value in list(vars(module).items())[:1000]:
        if isinstance(name, str) and not name.startswith("_") and callable(value):
            callables.append(name[:100])
    send({"kind": "imported", "found": [p["backward"] for p in found], "callables": callables[:200]})
    for piece in found:
        try:
            record, arrays = _run_function(piece, module, inputs, watch, path)
        except BaseException as exc:  # noqa: B036 -- a module __getattr__ of the file's, ...
            record, arrays = {"kind": "function", "backward": piece["backward"],
                              "failed": _exception_text(exc, path)}, []
        send(record, arrays)
    send({"kind": "done"})
    _exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
