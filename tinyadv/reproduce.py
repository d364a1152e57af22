"""python -m tinyadv.reproduce: Table 1 and Figure 1, audited.

The command only: its code is tinyadv/lab/reproduce.py.
"""
from tinyadv.lab.reproduce import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
