"""The two options every lesson script takes: where figures go, and a fast mode for the tests."""
import argparse
import os

from .fast.memory import keep_freed_memory

__all__ = ["lesson_options"]


def lesson_options(description, default_out):
    """Parse ``--out DIR`` and ``--fast`` (or TINYADV_FAST=1); create the output folder.

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
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--out", default=default_out, help="folder for the figures")
    parser.add_argument("--fast", action="store_true",
                        help="tiny data and 1 epoch (the tests use this)")
    args, _ = parser.parse_known_args()
    fast = args.fast or os.environ.get("TINYADV_FAST", "") not in ("", "0")
    os.makedirs(args.out, exist_ok=True)
    keep_freed_memory()
    return args.out, fast
