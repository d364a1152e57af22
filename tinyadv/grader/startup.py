"""The checker's own process runs no file from a folder it grades.

``python -m tinyadv.gradcheck`` starts with the current folder first on ``sys.path`` (so does
``python script.py`` with the script's folder). Graded the way a glob invites -- ``cd class;
python -m tinyadv.gradcheck *.py`` -- every submission would then shadow the module of its
name: a ``difflib.py`` or ``signal.py`` in the class would be imported by the checker
itself, outside any sandbox, with the teacher's rights. Two defences, in this order:

- ``clean_path()``, the first line of ``python -m tinyadv.grader`` (tinyadv/grader/__main__.py,
  where ``python -m tinyadv.gradcheck`` hands over through runpy with nothing imported in
  between): before anything but Python's own start-up and tinyadv's package is loaded, the
  current folder ("", ".", or its path) leaves ``sys.path``. Everything the checker imports afterwards comes from Python's
  library, site-packages and tinyadv's own folder.
- ``foreign_modules(places)``, once the files to grade are known (cli.py): every module
  already loaded whose file lies in a graded folder -- tinyadv itself included, if it was
  found there -- is named, and the checker refuses to start (exit 2). Also every
  ``sys.path`` entry inside a graded folder is dropped then.

What neither can stop: Python resolves ``tinyadv`` itself before any of tinyadv's code runs.
A ``tinyadv.py`` or ``tinyadv/`` folder in the current folder is imported instead of the
real one (a file: the command fails; a folder with a ``gradcheck.py``: that file runs as
the checker). Hence the commands in the READMEs: ``python -P -m tinyadv.gradcheck ...``
(Python 3.11+: no folder of the command's own on the path), or run from outside the class.
"""
import os
import sys

__all__ = ["clean_path", "foreign_modules", "graded_places", "drop_graded_paths"]


def clean_path():
    """Drop the current folder from sys.path (see the module docstring)."""
    try:
        here = os.path.realpath(os.getcwd())
    except OSError:  # the current folder was removed: nothing of it can be imported
        here = None
    sys.path[:] = [p for p in sys.path
                   if p not in ("", ".") and (here is None or os.path.realpath(p) != here)]


def graded_places(paths):
    """Real paths of the folders that hold submissions: each folder given, and the folder of
    each file given by name (a glob's files sit in the class folder)."""
    places = set()
    for raw in paths:
        real = os.path.realpath(raw)
        places.add(real if os.path.isdir(real) else os.path.dirname(real))
    return sorted(places)


def _inside(path, places):
    return any(path == place or path.startswith(place.rstrip(os.sep) + os.sep)
               for place in places)


def drop_graded_paths(places):
    """Take every sys.path entry inside a graded folder off the path."""
    sys.path[:] = [p for p in sys.path if not _inside(os.path.realpath(p or "."), places)]


def foreign_modules(places, allowed=()):
    """[(module name, its file)] of loaded modules whose file is in one of ``places``.
    ``allowed``: real paths of files that may be (a student's file checking itself runs as
    ``__main__``, tinyadv.grader.check_file)."""
    found = []
    for name, module in list(sys.modules.items()):
        files = []
        where = getattr(module, "__file__", None)
        if isinstance(where, str):
            files.append(where)
        for folder in getattr(module, "__path__", None) or ():  # namespace packages
            if isinstance(folder, str):
                files.append(folder)
        for where in files:
            real = os.path.realpath(where)
            if _inside(real, places) and real not in allowed:
                found.append((name, where))
                break
    return sorted(found)
