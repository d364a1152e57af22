"""python -m tinyadv.sweep: the grid of loss weights and margins behind the README's sweep table. The command only; its code is tinyadv/lab/sweep.py."""
from tinyadv.lab.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
