"""What a child may touch once it has shut itself in, why, and how the run says so.

``--sandbox auto`` (the default) shuts every child in with the Landlock this kernel offers
(landlock.py) and warns once when that is less than everything below; ``require`` refuses to
start unless all of it is enforced; ``off`` runs children as before (for debugging).

The rules, each one a reason:

    read + execute  Python's standard library and site-packages in use (sysconfig, site),
                    and NumPy's folder: a submission may import any installed module
                    (``import scipy`` works) -- and may read those files, which are no secret
    read + execute  the folders of the shared libraries already loaded (/proc/self/maps:
                    the C library's, e.g. /usr/lib/x86_64-linux-gnu): measured, without it
                    ``import ssl`` (or sqlite3, lzma) fails to load its library
    read            the submission file itself -- not its folder: another student's file
                    beside it is neither readable nor writable
    nothing of      tinyadv's source: it holds every answer (and pieces.py the checker's
      tinyadv       suspects). What a file may import of tinyadv -- every piece's module,
                    the modules of their solutions, tinyadv.gradcheck -- the child loads
                    before it is shut in (the plan's "preload"), so ``from tinyadv.layers
                    import relu_forward`` works while ``importlib.reload`` of it, or ``exec``
                    of its source, fails (child.py's watch on the library depends on that)
    write           the child's own temporary working folder (also $TMPDIR, so ``tempfile``
                    works), emptied and removed when the child ends
    nothing else    no /dev, no /proc, no /tmp, no home folder: measured, a child running
                    the checker's work and the suite's submissions opens none of them once
                    NumPy is loaded (os.urandom and random use getrandom(), not /dev/urandom)
    TCP             no bind, no connect (ABI 4)
    scope           no signal and no abstract Unix socket to a process outside its own
                    Landlock domain: not the checker, not another child, not any other
                    process of the user (ABI 6). Its own process, and what it starts, it may
                    still signal.

Why after NumPy's import: the checker's own modules are then loaded before the door closes,
and none of their import-time opens needs a rule; it costs a child no CPU time that could be
measured (data/results.md, "The exercise checker's sandbox, measured"). NumPy's folder
stays readable all the same: a submission may import what NumPy has not loaded yet.

A process in a Landlock domain also cannot ptrace (attach a debugger to) a process outside
it, and cannot mount anything. Before any of this the child has become nobody, or entered a
user namespace, and its own mount, network and IPC namespaces (identity.py); it drops every
capability (procs.drop_capabilities) but, as nobody under Landlock, the one to read past file
permissions, which Landlock narrows to the folders above. What the run's first line says
(summary_line) is built from what a probe process got here (identity.offered), what the
seccomp filter and Landlock offer, and what each of them leaves uncontained.
"""
import os
import site
import sys

from tinyadv.grader import identity, landlock, procs, seccomp

__all__ = ["MODES", "plan", "policy", "offered", "processes_offered", "identity_offered",
           "summary_line", "short_line", "shut_in", "landlock_enforced", "python_folders"]

MODES = ("auto", "require", "off")
OFF_LABEL = "process-only: --sandbox off"
TINYADV_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def python_folders():
    """The Python installation in use: standard library (lib-dynload inside it) and every
    site-packages on the path. Not sys.prefix: for a system Python that is all of /usr."""
    import sysconfig  # here: a child, which only needs shut_in(), is spared its import

    paths = sysconfig.get_paths()
    found = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    try:
        found += site.getsitepackages()
    except AttributeError:  # an old virtualenv's site module
        pass
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and user_site in sys.path:
        found.append(user_site)
    numpy = sys.modules.get("numpy")
    if numpy is not None and getattr(numpy, "__file__", None):  # installed elsewhere (--target)
        folder = os.path.dirname(os.path.realpath(numpy.__file__))
        found += [folder, os.path.join(os.path.dirname(folder), "numpy.libs")]
    return sorted({os.path.realpath(p) for p in found if os.path.isdir(p)})


def loaded_library_folders():
    """The folders of the shared libraries this process has loaded (/proc/self/maps): the C
    library's, NumPy's. A standard-library module imported later (ssl, sqlite3, lzma) loads
    its own library from the same system folder; without it that import fails."""
    folders = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if path.startswith("/") and ".so" in os.path.basename(path):
                    folders.add(os.path.dirname(os.path.realpath(path)))
    except OSError:
        pass
    return sorted(p for p in folders if os.path.isdir(p))


def plan(mode):
    """The plan's "sandbox" part, worked out once in the checker (sysconfig and /proc/self/maps
    cost a child ~10 ms): the mode, and the folders every child may read. The checker runs
    the same Python as its children, with NumPy loaded, so it sees the same folders."""
    return {"mode": mode, "read_execute": python_folders() + loaded_library_folders(),
            "read": []}  # tinyadv: nothing -- what a file may import of it is loaded before


def policy(config, submission, workdir):
    """One child's rules: the plan's folders, its own file, its own working folder."""
    return landlock.Policy(read_execute=config.get("read_execute", ()),
                           read=list(config.get("read", ())) + [os.path.realpath(submission)],
                           write=[os.path.realpath(workdir)])


def processes_offered():
    """(words, gap): whether a child on this machine can start processes, and the gap to
    name when it can (None when it cannot). See seccomp.py: a seccomp filter for everyone,
    RLIMIT_NPROC for users other than root."""
    why = seccomp.available()
    if why is None:
        return "starts no process", None
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return "starts no process (RLIMIT_NPROC)", None
    return ("may start processes (root without seccomp filters), each killed when its check "
            "ends", f"new processes, run as root (no seccomp filter: {why})")


def identity_offered(mode):
    """What identity.enter gives a child here (its record; {} with --sandbox off)."""
    if mode == "off":
        return {}
    return identity.offered(os.path.dirname(TINYADV_PACKAGE))


def _filter_gaps():
    """What is not contained for want of the seccomp filter (seccomp.py), in words."""
    why = seccomp.available()
    if why is None:
        return []
    return [f"the calls seccomp.py refuses (no filter here: {why}): UDP, MPTCP and pathname "
            f"Unix sockets, System V IPC, keyrings, memfd, the limits and priority of your "
            f"other processes, the checker's included"]


def offered(mode):
    """What children will get on this machine: (label, the rules it lacks in words, ABI)."""
    _, process_gap = processes_offered()
    extra = [process_gap] if process_gap else []
    if mode == "off":
        return OFF_LABEL, ["every Landlock rule (--sandbox off)"] + extra, 0
    abi, why = landlock.abi_version()
    extra += _filter_gaps() if not process_gap else []
    extra += identity.describe(identity_offered(mode))[1]
    return landlock.isolation_label(abi, why), landlock.missing(abi) + extra, abi


def short_line(mode):
    """The line a run checking one file prints: the label, who the file runs as, and whether
    it can start processes."""
    label, _, _ = offered(mode)
    alone = identity_offered(mode)
    if mode == "off":
        who = ""
    elif alone.get("nobody"):
        who = ", nobody"
    else:
        who = ", your user"
    if mode != "off":
        who += ", own namespaces" if identity.namespaces(alone).startswith("own") else ""
    return f"sandbox: {label}{who}; the file {processes_offered()[0]} (-v: details)"


def _clauses(mode, abi):
    """(what each file cannot do, what it still can) on this machine, in words."""
    alone = identity_offered(mode)
    filtered = seccomp.available() is None
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    cannot, can = [], []
    if alone.get("nobody"):
        cannot.append("runs as nobody (uid 65534), owning nothing")
    elif root:
        can.append("root's user id (becoming nobody failed)")
    elif alone.get("user_namespace"):
        cannot.append("runs as your user id in a user namespace of its own")
    if abi >= 1:
        cannot.append("reads only Python's library, NumPy and itself (what it may import of "
                      "tinyadv is loaded for it)")
        cannot.append("writes only its own temporary folder"
                      + (" (a tmpfs, counted in --memory)" if alone.get("scratch") else ""))
    else:
        can.append("reading and writing the files its user may"
                   + (" (nobody: only files open to everyone)" if alone.get("nobody") else
                      " (yours)"))
    if alone.get("read_only") or alone.get("nobody") or (filtered and not root):
        cannot.append("changes no mode, owner, time or extended attribute of a file outside "
                      "its folder" + ("" if alone.get("read_only") or alone.get("nobody")
                                      else " (nor inside: seccomp)"))
    else:
        can.append("the modes, owners, times and extended attributes of your files")
    if filtered:
        cannot += ["opens no socket (TCP, UDP, MPTCP or Unix)", "starts no process",
                   "keeps no System V object, message queue or key", "holds no memfd",
                   "changes the limits and priority of no process but its own"]
    else:
        if alone.get("network"):
            cannot.append("reaches no network (a network namespace of its own)")
            can.append("pathname Unix sockets")
        elif abi >= 4:
            cannot.append("opens no TCP connection")
            can.append("UDP, MPTCP and pathname Unix sockets")
        else:
            can.append("the network")
        can += _filter_gaps()
    if abi >= 6:
        cannot.append("signals no process but its own")
    if filtered:
        can.append("up to 2 MB of kernel buffers in its pipes (64 descriptors at most)")
    if not alone.get("scratch"):
        can.append("filling the disk of its temporary folder (64 MB a file, no cap on the "
                   "total; memory, where that folder is a tmpfs)")
    can += ["the metadata (stat) of any file", "reading the rest of Python's installed files",
            "CPU time and timing as side channels"]
    return cannot, can


def summary_line(mode):
    """The one line a run prints: what is and is not contained on this machine."""
    label, gaps, abi = offered(mode)
    processes = processes_offered()[0]
    if mode == "off":
        return (f"sandbox: {label}. Each file runs as your user and {processes}: it can read "
                f"and write your files, use the network and signal your processes, the "
                f"checker's included. For a class you do not trust, use a throw-away account "
                f"or a container.")
    who = identity.describe(identity_offered(mode))[0]
    cannot, can = _clauses(mode, abi)
    text = f"sandbox: {label}, {who}: each file " + "; ".join(cannot) + ". Not contained"
    text += (" on this machine" if gaps else "") + ": " + "; ".join(can) + "."
    if gaps:
        text += (f" Missing here: {'; '.join(gaps)}. For a class you do not trust, use a "
                 f"throw-away account or a container.")
    return text


def landlock_enforced(config):
    """Whether a child with this plan will be shut in by Landlock (asked before it is)."""
    mode = config.get("mode") if isinstance(config, dict) else None
    return mode != "off" and landlock.abi_version()[0] >= 1


def shut_in(config, submission, workdir, kept=False):
    """In the child, before the submission is imported: restrict this process as ``config``
    (the plan's "sandbox", from plan() above) asks. ``kept``: identity.py left this process
    the capability to read past file permissions, for Landlock to narrow -- dropped with every
    other capability wherever Landlock is not enforced after all. Returns the record sent to
    the checker: {"label": what it runs under, "abi": n} and "refused": reason when --sandbox
    require cannot be met (the child then ends without importing the file)."""
    mode = config.get("mode") if isinstance(config, dict) else None
    if mode == "off":
        return {"label": OFF_LABEL, "abi": 0}
    abi, why = landlock.abi_version()
    if mode == "require" and abi < landlock.FULL_ABI:
        return {"label": landlock.isolation_label(abi, why), "abi": abi,
                "refused": "; ".join(landlock.missing(abi))}
    if abi == 0 or not kept:
        procs.drop_capabilities()
    if abi == 0:
        return {"label": landlock.isolation_label(0, why), "abi": 0}
    try:
        landlock.restrict_self(policy(config, submission, workdir), abi)
    except OSError as exc:
        procs.drop_capabilities()
        label = f"process-only: Landlock failed ({exc})"
        return dict({"label": label, "abi": 0}, **({"refused": str(exc)} if mode == "require" else {}))
    return {"label": landlock.isolation_label(abi), "abi": abi}
