"""python -m tinyadv.bench: one training step's speed, beside the machine's limit.

The command only: its code is tinyadv/lab/bench.py.
"""
from tinyadv.lab.bench import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
