"""What every lesson script takes: where figures go, a fast mode for the tests -- and, for a
lesson that stops for exercises, the stop.

A lesson with exercises in its middle (lesson 10: exercises 08 and 09) runs up to its marker
and stops there, so that a student meets the exercises before their answers. To read on:

    python lessons/10_convolutions_by_hand.py --after-exercises    (a script)
    TINYADV_AFTER_EXERCISES=1 python lessons/10_convolutions_by_hand.py
    in a notebook: run the cells below the marker ("Run All Below" from the next cell), or
    %env TINYADV_AFTER_EXERCISES=1 in a cell before the first and Run All.
"""
import argparse
import os
import sys

from .fast.memory import keep_freed_memory
from .plots import in_notebook

__all__ = ["lesson_options", "after_exercises", "stop_for_exercises", "ExercisesFirst",
           "AFTER_EXERCISES_FLAG", "AFTER_EXERCISES_ENV"]

AFTER_EXERCISES_FLAG = "--after-exercises"
AFTER_EXERCISES_ENV = "TINYADV_AFTER_EXERCISES"


def _parser(description, default_out, exercises):
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--out", default=default_out, help="folder for the figures")
    parser.add_argument("--fast", action="store_true",
                        help="tiny data and 1 epoch (the tests use this)")
    if exercises:
        parser.add_argument(AFTER_EXERCISES_FLAG, action="store_true",
                            help=f"go on past the marker of exercises {exercises}, into their "
                                 f"answers (without it the lesson stops there; or set "
                                 f"{AFTER_EXERCISES_ENV}=1)")
    return parser


def lesson_options(description, default_out, exercises=None):
    """Parse ``--out DIR`` and ``--fast`` (or TINYADV_FAST=1); create the output folder.

    exercises : for a lesson that stops for exercises, which ones ("08 and 09"): it then
        also takes ``--after-exercises`` (read by ``after_exercises``), and --help says so.

    Only known flags are read: a notebook kernel passes its own (such as --f=kernel.json),
    and allow_abbrev=False keeps those from being mistaken for --fast.

    A lesson trains in its own process, so this is also where that process gets the
    allocator setting the reproduction's workers start with (fast.memory.keep_freed_memory): it
    changes no number, only how fast the training steps run.

    Returns
    -------
    out : the folder for figures (created if missing)
    fast : True for tiny data and few epochs (the tests use it; its numbers mean nothing)
    """
    args, _ = _parser(description, default_out, exercises).parse_known_args()
    fast = args.fast or os.environ.get("TINYADV_FAST", "") not in ("", "0")
    os.makedirs(args.out, exist_ok=True)
    keep_freed_memory()
    return args.out, fast


def after_exercises():
    """True if the student asked to read past a lesson's exercise marker: the flag
    ``--after-exercises``, or the environment variable TINYADV_AFTER_EXERCISES=1."""
    flag = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    flag.add_argument(AFTER_EXERCISES_FLAG, action="store_true")
    asked = flag.parse_known_args()[0].after_exercises
    return asked or os.environ.get(AFTER_EXERCISES_ENV, "") not in ("", "0")


class ExercisesFirst(Exception):
    """Raised at a lesson's exercise marker in a notebook: it stops "Run All" there (a cell
    that raises ends a run of cells), and Jupyter shows its message alone, without a
    traceback (IPython prints what ``_render_traceback_`` returns)."""

    def _render_traceback_(self):
        return str(self).splitlines()


def stop_for_exercises(message):
    """A lesson's exercise marker: stop here, with ``message``, unless ``after_exercises()``.

    As a script the lesson ends (exit status 0: stopping here is no error). In a notebook
    this raises ExercisesFirst, which ends "Run All" at this cell; the cells below still run
    one at a time, or with "Run All Below" from the next one.
    """
    if after_exercises():
        return
    if in_notebook():
        raise ExercisesFirst(message)
    print(message)
    sys.stdout.flush()
    sys.exit(0)
