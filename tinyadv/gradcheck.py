"""Numerical gradients by centred differences, relative error, and readable reports.

The reference for every hand-written backward in tinyadv is the definition of the
derivative itself:

    df/dx_i  ~  (f(x + h e_i) - f(x - h e_i)) / (2h)

whose error is O(h^2). Run it in float64 (float32 has ~7 digits: the difference of two
nearly equal losses loses most of them). Thresholds on ``rel_error`` (CS231n's rule of
thumb): <= 1e-7 good; ~1e-4 only acceptable near a kink (ReLU at 0, a hinge at 0, |cos| at
0); > 1e-2 the gradient is wrong.

``python -m tinyadv.gradcheck`` is the classroom's exercise checker: its code is the grader
(tinyadv/grader/, lessons/exercises/README.md), which judges students' backward functions
with this module -- never the other way round.
"""
if __name__ == "__main__":  # run as the checker's command: hand over before importing anything
    import runpy

    runpy.run_module("tinyadv.grader", run_name="__main__", alter_sys=True)
    raise SystemExit(0)

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["numerical_gradient", "numerical_gradient_array", "rel_error", "GradCheckReport",
           "compare", "DEFAULT_TOL"]

DEFAULT_TOL = 1e-7


def numerical_gradient(f, x, h=1e-6):
    """Centred-difference gradient of a scalar function f() with respect to the array x.

    f takes no arguments and reads x (which is perturbed in place, one entry at a time, and
    restored -- even if f raises).

    Returns
    -------
    grad : array shaped like x
    """
    return numerical_gradient_array(lambda: np.asarray(f(), dtype=np.float64), x, 1.0, h)


def numerical_gradient_array(f, x, dout, h=1e-6):
    """Centred-difference gradient of sum(f() * dout) w.r.t. x, for an array-valued f.

    This is the vector-Jacobian product a backward computes: with upstream gradient
    ``dout`` (shaped like f's output), grad_i = sum_j dout_j df_j/dx_i.
    """
    if x.dtype != np.float64:
        raise TypeError(f"x: numerical gradients need float64 inputs, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)  # views: writes reach x and grad
    if not np.shares_memory(flat_x, x):
        raise ValueError("x: must be a contiguous array so it can be perturbed in place")
    for i in range(flat_x.size):
        original = flat_x[i]
        try:
            flat_x[i] = original + h
            plus = np.sum(np.asarray(f()) * dout)
            flat_x[i] = original - h
            minus = np.sum(np.asarray(f()) * dout)
        finally:
            flat_x[i] = original
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """max |a - b| / max(1e-8, max(|a| + |b|)): one number, scale-free, 0 when equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a, b: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


@dataclass
class GradCheckReport:
    """The outcome of comparing an analytic gradient with a numerical one."""

    name: str
    rel_error: float
    tol: float
    worst_index: tuple
    analytic_at_worst: float
    numeric_at_worst: float
    shape: tuple

    @property
    def passed(self):
        return bool(self.rel_error <= self.tol)

    def __str__(self):
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict} {self.name}: rel_error={self.rel_error:.2e} (tol {self.tol:.0e}), "
                f"shape {self.shape}; worst element {self.worst_index}: "
                f"analytic={self.analytic_at_worst:.6g}, numeric={self.numeric_at_worst:.6g}")


def compare(name, analytic, numeric, tol=DEFAULT_TOL):
    """Compare two gradients and return a GradCheckReport (never raises on a mismatch)."""
    if analytic is None:
        raise ValueError(f"{name}: the analytic gradient is None")
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"{name}: analytic gradient has shape {analytic.shape}, "
                         f"expected {numeric.shape} (the shape of the input)")
    if analytic.size == 0:
        return GradCheckReport(name, 0.0, tol, (), 0.0, 0.0, analytic.shape)
    diff = np.abs(analytic - numeric)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return GradCheckReport(name, rel_error(analytic, numeric), tol, tuple(int(i) for i in worst),
                           float(analytic[worst]), float(numeric[worst]), analytic.shape)
