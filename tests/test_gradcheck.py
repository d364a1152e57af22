"""The reference itself: numerical gradients, rel_error and the readable report.

Every other gradient test trusts these helpers, so they are checked against functions whose
derivatives we know in closed form.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyadv.gradcheck import (DEFAULT_TOL, GradCheckReport, compare, numerical_gradient,
                               numerical_gradient_array, rel_error)

FAST = settings(max_examples=40, deadline=None)

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
moderate = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


@FAST
@given(x=hnp.arrays(np.float64, shapes, elements=moderate))
def test_numerical_gradient_of_sum_of_cubes_is_three_x_squared(x):
    x_before = x.copy()
    grad = numerical_gradient(lambda: np.sum(x ** 3), x)
    # Centred differences: truncation h^2 * f'''/6 = 1e-12 here; rounding ~ 1e-16 |f| / h
    # with |f| <= 8 * 48 entries, i.e. below 1e-7. An absolute tolerance of 1e-6 covers both.
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-6, atol=1e-6)
    assert np.array_equal(x, x_before), "x must be restored bit for bit"


@FAST
@given(x=hnp.arrays(np.float64, shapes, elements=moderate), seed=st.integers(0, 2 ** 32 - 1))
def test_numerical_gradient_array_is_the_vector_jacobian_product(x, seed):
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    grad = numerical_gradient_array(lambda: np.sin(x), x, dout)
    np.testing.assert_allclose(grad, np.cos(x) * dout, rtol=1e-6, atol=1e-8)


def test_numerical_gradient_couples_entries_of_a_matrix():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 3))
    x = rng.standard_normal((3, 2))
    # f(x) = sum(x * (A @ x))  ->  df/dx = (A + A.T) @ x
    grad = numerical_gradient(lambda: np.sum(x * (A @ x)), x)
    np.testing.assert_allclose(grad, (A + A.T) @ x, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("failing_call", [1, 2, 5])
def test_input_is_restored_even_if_f_raises(failing_call):
    """Call 1 is f(x + h e_0), call 2 is f(x - h e_0), call 5 is f(x + h e_2)."""
    x = np.array([0.5, -1.25, 2.0, 3.5])
    x_before = x.copy()
    calls = {"n": 0}

    def f():
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise RuntimeError("boom")
        return np.sum(x ** 2)

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    assert np.array_equal(x, x_before)


def test_numerical_gradient_refuses_float32():
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: np.sum(x), x)


def test_numerical_gradient_refuses_a_non_contiguous_view():
    # reshape(-1) of a transposed view is a copy: perturbing it would not reach f.
    x = np.arange(12.0).reshape(3, 4).T
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: np.sum(x ** 2), x)


# ---- rel_error -------------------------------------------------------------------------

vectors = hnp.arrays(np.float64, st.integers(1, 8),
                     elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))


@FAST
@given(a=vectors, data=st.data())
def test_rel_error_properties(a, data):
    b = data.draw(hnp.arrays(np.float64, a.shape,
                             elements=st.floats(-1e3, 1e3, allow_nan=False,
                                                allow_infinity=False)))
    assert rel_error(a, a) == 0.0
    assert rel_error(a, b) == rel_error(b, a)
    assert 0.0 <= rel_error(a, b) <= 1.0
    if np.max(np.abs(a)) > 1e-3:
        assert rel_error(a, -a) == pytest.approx(1.0)
        assert rel_error(a, np.zeros_like(a)) == pytest.approx(1.0)
        assert rel_error(2 * a, a) == pytest.approx(1 / 3)
    if np.max(np.abs(a) + np.abs(b)) > 1e-3:  # above the 1e-8 floor: scale-free
        assert rel_error(1e3 * a, 1e3 * b) == pytest.approx(rel_error(a, b), rel=1e-9, abs=1e-15)


def test_rel_error_floor_keeps_tiny_gradients_from_dividing_by_zero():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0


def test_rel_error_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(3), np.zeros(4))


# ---- compare / GradCheckReport ---------------------------------------------------------

def test_report_names_the_worst_element_and_fails():
    numeric = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    analytic = numeric.copy()
    analytic[1, 2] = 6.5
    analytic[0, 0] = 1.1
    report = compare("dW", analytic, numeric)
    assert isinstance(report, GradCheckReport)
    assert not report.passed
    assert report.worst_index == (1, 2)
    assert report.analytic_at_worst == 6.5 and report.numeric_at_worst == 6.0
    assert report.shape == (2, 3)
    assert report.tol == DEFAULT_TOL == 1e-7
    text = str(report)
    assert text.startswith("FAIL dW")
    assert "(1, 2)" in text and "analytic=6.5" in text and "numeric=6" in text
    assert f"{report.rel_error:.2e}" in text


def test_report_passes_within_tolerance():
    numeric = np.array([1.0, -2.0, 3.0])
    report = compare("db", numeric * (1 + 1e-9), numeric)
    assert report.passed
    assert str(report).startswith("PASS db")


def test_tolerance_is_respected():
    numeric = np.array([1.0, 2.0])
    analytic = np.array([1.0, 2.001])  # rel_error = 0.001 / 4.001
    assert not compare("g", analytic, numeric, tol=1e-4).passed
    assert compare("g", analytic, numeric, tol=1e-3).passed


def test_compare_rejects_missing_or_misshapen_gradients():
    with pytest.raises(ValueError, match="dx.*None"):
        compare("dx", None, np.zeros(3))
    with pytest.raises(ValueError, match=r"dx.*\(3, 1\).*\(3,\)"):
        compare("dx", np.zeros((3, 1)), np.zeros(3))


def test_compare_handles_scalars_and_empty_arrays():
    assert compare("loss", 1.0, 1.0).passed
    report = compare("loss", 1.0, 2.0)
    assert not report.passed and report.worst_index == ()
    assert compare("nothing", np.zeros((0, 3)), np.zeros((0, 3))).passed
