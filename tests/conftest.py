"""Shared fixtures for the core tests.

Gradient checks follow one recipe (see tinyadv/gradcheck.py): analytic gradient from a
backward, numerical gradient by centred differences in float64, ``compare`` them, and
require ``rel_error <= 1e-7``. The negative half of the recipe -- a wrong gradient must
*fail* the same check -- lives here too, so every piece is tested both ways.
"""
import os
import signal

# One BLAS thread in the test process and every program it starts, as the lessons and the
# reproduction's workers run (tinyadv/lab/runner.py): the suite's matrix products are small,
# and a second OpenBLAS thread gains little on them while, on a busy machine, it spins against
# the test runner for a core and slows every training test several times over. Set before
# NumPy is imported, or it has no effect; a value already in the environment is kept.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from tinyadv import data  # noqa: E402
from tinyadv.gradcheck import compare  # noqa: E402

# A shell that starts the suite in the background (nohup, &) hands it SIGINT ignored, and the
# processes it starts inherit that; the Ctrl-C tests need Python's own handler, as a terminal
# gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The same examples on every run (derandomize: drawn from a fixed seed per test): a suite that
# passes passes again, and a failure reproduces. Exploring new examples is a local choice:
# HYPOTHESIS_PROFILE=explore python -m pytest.
settings.register_profile("tinyadv", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tinyadv"))

GRAD_TOL = 1e-7  # CS231n's "good" threshold; every smooth piece reaches it in float64


def wrong_versions(analytic):
    """Plausible student bugs: one entry off, a factor of 2, a flipped sign."""
    analytic = np.asarray(analytic, dtype=np.float64)
    scale = float(np.max(np.abs(analytic)))
    one_off = analytic.copy()
    # A small slip (1e-4 of the largest entry) in the last entry: still far above 1e-7.
    one_off.reshape(-1)[-1] += 1e-4 * scale
    return [("one entry changed", one_off), ("scaled by 2", 2 * analytic),
            ("sign flipped", -analytic)]


@pytest.fixture(scope="session")
def assert_grad_ok():
    """assert_grad_ok(name, analytic, numeric, tol=1e-7): the check passes; returns the report."""
    def check(name, analytic, numeric, tol=GRAD_TOL):
        report = compare(name, analytic, numeric, tol)
        assert report.passed, str(report)
        return report
    return check


@pytest.fixture(scope="session")
def assert_wrong_grads_fail():
    """assert_wrong_grads_fail(name, analytic, numeric): every perturbed gradient FAILs.

    The analytic gradient must itself pass and be non-zero (scaling zero changes nothing).
    """
    def check(name, analytic, numeric, tol=GRAD_TOL):
        assert compare(name, analytic, numeric, tol).passed
        assert np.max(np.abs(analytic)) > 1e-6, f"{name}: a zero gradient cannot be perturbed"
        for how, wrong in wrong_versions(analytic):
            report = compare(name, wrong, numeric, tol)
            assert not report.passed, f"{how} was not caught: {report}"
            assert str(report).startswith("FAIL")
    return check


# Loading MNIST train takes about a second: once per module that asks for it.
@pytest.fixture(scope="module")
def mnist_train():
    return data.load_mnist("train")


@pytest.fixture(scope="module")
def mnist_test():
    return data.load_mnist("test")
