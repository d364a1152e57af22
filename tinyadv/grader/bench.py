"""``python -m tinyadv.grader.bench``: what the sandbox costs per file, measured.

Checks COPIES copies of a correct file, one at a time, with ``--sandbox off`` and with
``--sandbox auto``, alternating which goes first, REPEATS times; prints per file the median
and mean wall time and CPU time (the checker's and its children's), and the load average
while it ran -- the machine may be shared, and wall times depend on it; CPU times less so.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tinyadv.grader import isolation

__all__ = ["measure", "report", "main", "MODES", "CORRECT"]

CORRECT = ("import numpy as np\n\ndef relu_backward(dout, cache):\n"
           "    return dout * (cache > 0)\n")
MODES = ("off", "auto")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(copies, repeats):
    """{mode: {"wall": [s per file], "cpu": [s per file]}} and the 1-minute loads seen."""
    times = {mode: {"wall": [], "cpu": []} for mode in MODES}
    loads = []
    with tempfile.TemporaryDirectory(prefix="tinyadv-bench-") as folder:
        for i in range(copies):
            Path(folder, f"s{i:02d}.py").write_text(CORRECT)
        for repeat in range(repeats):
            for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
                cpu, wall = _children_cpu(), time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "tinyadv.gradcheck", folder, "-q",
                                       "--sandbox", mode], capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"--sandbox {mode}: exit {done.returncode}\n{done.stdout}")
                times[mode]["wall"].append((time.perf_counter() - wall) / copies)
                times[mode]["cpu"].append((_children_cpu() - cpu) / copies)
            loads.append(os.getloadavg()[0])
    return times, loads


def report(times, loads, copies, repeats):
    lines = [f"{isolation.offered('auto')[0]} on this machine; "
             f"{repeats} runs of {copies} files each, one at a time"]
    for mode in MODES:
        wall, cpu = times[mode]["wall"], times[mode]["cpu"]
        lines.append(f"--sandbox {mode:4s} per file: wall median {statistics.median(wall) * 1e3:.0f} ms "
                     f"(mean {statistics.mean(wall) * 1e3:.0f}), CPU median "
                     f"{statistics.median(cpu) * 1e3:.0f} ms (mean {statistics.mean(cpu) * 1e3:.0f})")
    off, auto = (statistics.mean(times[m]["wall"]) for m in MODES)
    lines.append(f"sandbox cost: {100 * (auto - off) / off:+.1f}% of the wall time per file "
                 f"(means); load average (1 min) {min(loads):.1f}-{max(loads):.1f} meanwhile")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyadv.grader.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="files per run (default 10)")
    parser.add_argument("--repeats", type=int, default=20, help="runs per mode (default 20)")
    args = parser.parse_args(argv)
    for name in ("copies", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a whole number >= 1, got {getattr(args, name)}")
    times, loads = measure(args.copies, args.repeats)
    print(report(times, loads, args.copies, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
