"""python -m tinyadv.grader (or python -m tinyadv.gradcheck): check students' backward passes.

First the current folder leaves sys.path (startup.py: a class folder's ``signal.py`` must
never be imported here). Then the signals a submission could send to end the checker are
blocked, before NumPy starts its BLAS threads, which inherit the mask; each such signal then
waits to be read, with its sender, by sandbox.py (see "Signals" there).
"""
from tinyadv.grader.startup import clean_path  # os and sys only

clean_path()

from tinyadv.grader.procs import block_watched_signals  # noqa: E402  (the standard library only)

block_watched_signals()

from tinyadv.grader.cli import main  # noqa: E402  (imports NumPy)

raise SystemExit(main())
