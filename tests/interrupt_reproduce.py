"""Ctrl-C a reproduction (or a sweep) at many instants and check every stop; not run by pytest.

    python tests/interrupt_reproduce.py                 # reproduce on a small subset
    python tests/interrupt_reproduce.py --quick         # python -m tinyadv.reproduce --quick
    python tests/interrupt_reproduce.py --sweep --quick # python -m tinyadv.sweep --quick

Each case starts the command in a session of its own and sends SIGINT -- once or twice, to
the parent alone or to its whole process group (a terminal's Ctrl-C; GNU timeout's second
signal) -- at an instant tied to a line of its output (most of them around the moments a run
finishes and is saved) or to the clock. It then checks (tests/interrupt_matrix.py): exit status
130 within 5 s, no process left, no temporary file, every saved run whole; and resumes every
interrupted folder to completion, requiring the same table as an uninterrupted run.
tests/test_reproduce.py runs four of these cases on every test run; this is the long version.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from interrupt_matrix import describe, problems, run_parallel, signal_run, temporary_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--train-size", "2000", "--test-size", "100", "--epochs", "1", "--seeds", "0"]
MODES = [("parent", 1), ("parent", 2), ("group", 1), ("group", 2)]


# The first line each command prints, and a line it prints after its last run is done.
FIRST_LINE = {"tinyadv.reproduce": "preset", "tinyadv.sweep": "sweep:"}
AFTER_RUNS = {"tinyadv.reproduce": "Figure 1", "tinyadv.sweep": "Change against"}


def instants(module, runs, duration):
    """Output lines to aim at, with delays after them (densest where runs finish), and moments
    on the clock spread over an uninterrupted run's ``duration`` (as `timeout -s INT` does)."""
    found = [(FIRST_LINE[module], 0.0), ("to train in", 0.0), ("to train in", 0.3),
             ("epoch", 0.0)]
    for k in range(1, runs + 1):
        found += [(f"{k}/{runs} runs done", d) for d in (0.0, 0.02, 0.1)]
    found += [(AFTER_RUNS[module], 0.0), ("Wall time", 0.0)]
    return found + [round(f * duration, 2) for f in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9)]


def allowed_codes(module, at, runs, outcome):
    """130 always. 0 only once every run is done (the tables may already be written). On
    the clock also 0 (a moment after the end), and, if tinyadv had not printed its first line
    yet, what Python itself does with a Ctrl-C while it starts: 1 (a traceback from the
    import system) or -2 (death by SIGINT; 130 in a shell)."""
    if isinstance(at, float):
        started = FIRST_LINE[module] in outcome.output
        return (130, 0) if started else (130, 0, 1, -2)
    if at[0] in (f"{runs}/{runs} runs done", AFTER_RUNS[module], "Wall time"):
        return (130, 0)
    return (130,)


def check_saved_runs(out):
    problems_found = []
    for record in sorted((out / "runs").glob("*.json")) if (out / "runs").exists() else []:
        try:
            json.loads(record.read_text())["results"]
            with np.load(record.with_suffix(".npz"), allow_pickle=False) as weights:
                weights["W1"]
        except Exception as err:  # noqa: BLE001 -- any damage is a finding
            problems_found.append(f"{record.name}: {err!r}")
    return problems_found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the command's own --quick")
    parser.add_argument("--sweep", action="store_true", help="python -m tinyadv.sweep instead")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--modes", default="parent1,parent2,group1,group2",
                        help="which of the four modes to try (comma-separated)")
    parser.add_argument("--work", default="/tmp/tinyadv-interrupts")
    args = parser.parse_args()
    from pathlib import Path
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    module = "tinyadv.sweep" if args.sweep else "tinyadv.reproduce"
    flags = ["--quick"] if args.quick or args.sweep else SMALL
    command = [sys.executable, "-m", module, *flags, "--out"]
    runs = 6 if args.sweep else 4
    t0 = time.time()
    reference = subprocess.run(command + [str(work / "reference")], cwd=ROOT,
                               capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    result_file = "sweep.json" if args.sweep else "table1.json"
    table_key = "settings" if args.sweep else "table"
    expected = json.loads((work / "reference" / result_file).read_text())[table_key]
    duration = time.time() - t0
    print(f"reference run: {duration:.1f}s", flush=True)
    moments = instants(module, runs, duration)
    modes = [m for m in MODES if f"{m[0]}{m[1]}" in args.modes.split(",")]
    cases = [(at, target, times, work / f"case{i:03d}")
             for i, (at, (target, times)) in enumerate(
                 (at, mode) for at in moments for mode in modes)]
    outcomes = run_parallel([
        (lambda at=at, target=target, times=times, out=out:
         signal_run(command + [str(out)], ROOT, at=at, target=target, times=times, gap=0.01,
                    timeout=300)) for at, target, times, out in cases], parallel=args.parallel)
    failures, codes, exits = 0, {}, []
    for (at, target, times, out), outcome in zip(cases, outcomes):
        found = problems(outcome, codes=allowed_codes(module, at, runs, outcome))
        found += [f"temporary file {f}" for f in temporary_files(str(out))]
        found += check_saved_runs(out)
        if outcome.returncode not in (None, 0):
            again = subprocess.run(command + [str(out)], cwd=ROOT, capture_output=True, text=True)
            if again.returncode != 0:
                found.append(f"resume failed: {again.stderr[-500:]}")
            elif json.loads((out / result_file).read_text())[table_key] != expected:
                found.append("resumed table differs from the uninterrupted one")
        codes[outcome.returncode] = codes.get(outcome.returncode, 0) + 1
        if outcome.returncode != 130:
            print(f"  exit {outcome.returncode}: SIGINT x{times} to the {target} at {at!r}",
                  flush=True)
        if outcome.signalled_at is not None:
            exits.append(outcome.exit_seconds)
        if found:
            failures += 1
            print("FAIL", describe(outcome), *found, sep="\n  ", flush=True)
    print(f"{len(cases)} cases ({len(moments)} instants x {len(modes)} modes): "
          f"{failures} failed; exit statuses {codes}; slowest exit {max(exits, default=0):.2f}s after the "
          f"first signal; {time.time() - t0:.0f}s in all")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
