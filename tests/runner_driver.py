"""A small program on tinyadv.lab.runner, for the interrupt tests (run it as a subprocess).

    python tests/runner_driver.py OUT [--tasks 6] [--jobs 2] [--seconds 0.15] [--pause 0.08]

Runs every task i whose OUT/result_<i>.json is missing (tests/runner_toy.py: slow_result),
in the way tinyadv.reproduce does: a rerun after Ctrl-C does only what is left. Prints
"started: N to run", "worker <pid>: ready" from each worker, "got <i> (k of N)" as results
arrive, "worker <pid>: stopping" as the runner stops each worker, "all done" once the
workers are gone, then "finished" (exit 0); "interrupted" (exit 130) on Ctrl-C; the error
(exit 1) if a task fails. A test can hold the program at any of these lines until its
signal is sent (tests/gate.py).
Needs the repository root on PYTHONPATH (for tinyadv).
"""
import argparse
import os
import signal
import sys
import time

import runner_toy
from gate import announce
from tinyadv.lab.runner import WorkerError, run_in_workers


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.15, help="compute time per task")
    parser.add_argument("--pause", type=float, default=0.08, help="time half-written per task")
    parser.add_argument("--handling", type=float, default=0.03,
                        help="time the parent spends on each result it gets")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tasks = [(i, args.seconds, args.pause, args.out) for i in range(args.tasks)
             if not os.path.exists(runner_toy.result_path(args.out, i))]
    try:
        print(f"started: {len(tasks)} to run", flush=True)
        with run_in_workers(tasks, runner_toy.slow_result, jobs=args.jobs,
                            initializer=runner_toy.announce_start_and_stop) as results:
            for k, (task, result) in enumerate(results, 1):
                if result != runner_toy.expected_result(task[0]):
                    raise AssertionError(f"wrong result for task {task[0]}")
                announce(f"got {task[0]} ({k} of {len(tasks)})")
                time.sleep(args.handling)
        announce("all done")  # still inside the try: a Ctrl-C here is an interruption too
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # our last words: no Ctrl-C may cut them
        print("interrupted", flush=True)
        return 130
    except WorkerError as e:
        print(e, flush=True)
        return 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # all done: a late Ctrl-C changes nothing
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
