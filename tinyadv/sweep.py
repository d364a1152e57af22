"""python -m tinyadv.sweep: the invariance term's settings, against people.

The command only: its code is tinyadv/lab/sweep.py.
"""
from tinyadv.lab.sweep import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
