"""``python -m tinyadv.reproduce`` with tests/fake_tramer.py standing in for the paper's
authors' attack set, for the Ctrl-C tests: the same main(command_line=True), without building
the real attack set (tramer.py has its own tests). The set is loaded in this process
(reproduce.with_authors_attack); the workers never import tramer.

When a test arms a gate (tests/gate.py), each line the command prints -- in this process and
in its workers, which import this file again -- goes through the gate: the command stops at
an armed line until the test's signal is out.
"""
import builtins
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gate  # noqa: E402  (tests/, this file's folder)


def _print_through_the_gate(*args, **kwargs):
    builtins.print(*args, **kwargs)
    gate.hold(kwargs.get("sep", " ").join(map(str, args)))


if gate.ARMED:  # in the parent and in every spawned worker
    from tinyadv.lab import experiments

    experiments.print = _print_through_the_gate  # the workers' progress lines

if __name__ == "__main__":  # spawned workers import this file again: only the parent runs
    import pytest

    import fake_tramer
    from tinyadv.lab import reproduce

    if gate.ARMED:
        reproduce.print = _print_through_the_gate  # the parent's progress lines
    with pytest.MonkeyPatch.context() as patch:
        fake_tramer.install(patch)
        sys.exit(reproduce.main(command_line=True))
