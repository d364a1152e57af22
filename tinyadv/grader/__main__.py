"""python -m tinyadv.grader (or python -m tinyadv.gradcheck): check students' backward passes.

The signals a submission could send to end the checker are blocked first, before NumPy
starts its BLAS threads, which inherit the mask; each such signal then waits to be read, with
its sender, by sandbox.py (see "Signals" there).
"""
from tinyadv.grader.procs import block_watched_signals  # the standard library only

block_watched_signals()

from tinyadv.grader.cli import main  # noqa: E402  (imports NumPy)

raise SystemExit(main())
