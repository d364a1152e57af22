"""``python -m tinyadv.reproduce`` with tests/fake_tramer.py standing in for the paper's
authors' attack set, for the Ctrl-C tests: the same main(command_line=True), without building
the real attack set (tramer.py has its own tests). The set is loaded in this process
(reproduce.with_authors_attack); the workers never import tramer."""
import os
import sys

if __name__ == "__main__":  # spawned workers import this file again: only the parent runs
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pytest

    import fake_tramer
    from tinyadv.lab import reproduce

    with pytest.MonkeyPatch.context() as patch:
        fake_tramer.install(patch)
        sys.exit(reproduce.main(command_line=True))
