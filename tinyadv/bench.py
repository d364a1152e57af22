"""python -m tinyadv.bench: how fast one training step is, beside the machine's limit. The command only; its code is tinyadv/lab/bench.py."""
from tinyadv.lab.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
