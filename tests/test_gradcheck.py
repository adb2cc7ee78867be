"""The gradient checker itself: its report, both methods, and that it catches wrong gradients."""
import numpy as np
import pytest

import numbanet as nb
from numbanet.engine import Function, GradCheckReport, GradientCheckError, ops

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)


class SquareWithBug(Function):
    """y = x^2 with a backward that is wrong at one element (``bad``) or everywhere (``bad=None``)."""

    def __init__(self, bad=None, factor=2.0):
        self.bad, self.factor = bad, factor

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        gx = gy * self.factor * self.x
        if self.bad is not None:
            gx = gy * 2 * self.x
            gx[self.bad] += 0.5
        return gx


def test_report_on_a_correct_gradient():
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    report = nb.check_grad(lambda x, W: ops.tanh(x @ W), x, W, rtol=1e-6)
    assert isinstance(report, GradCheckReport)
    assert report.passed and bool(report)
    assert [r.shape for r in report.inputs] == [(3, 4), (4, 2)]
    assert all(r.method == "central" for r in report.inputs)
    for r in report.inputs:
        assert r.max_abs_err < 1e-8 and r.max_rel_err < 1e-6
        assert r.worst_index is not None and len(r.worst_index) == 2
    header, columns, row0, row1 = str(report).splitlines()
    assert header.startswith("gradient check passed")
    assert columns.split() == ["layer", "parameter", "shape", "method", "max", "abs", "err", "max", "rel", "err",
                               "worst", "index", "autograd", "numeric", "result"]
    assert row0.split()[:6] == ["-", "input", "0", "(3,", "4)", "central"] and row0.split()[-1] == "ok"
    assert row1.split()[:6] == ["-", "input", "1", "(4,", "2)", "central"]


def test_wrong_gradient_is_caught_and_located():
    x = np.random.default_rng(1).uniform(0.5, 1.5, (3, 4))
    report = nb.check_grad(lambda t: SquareWithBug(bad=(1, 2))(t), x)
    assert not report.passed and not bool(report)
    r = report.inputs[0]
    assert r.worst_index == (1, 2)
    assert r.max_abs_err == pytest.approx(0.5, rel=1e-6)
    assert r.analytic == pytest.approx(2 * x[1, 2] + 0.5, rel=1e-8)
    assert r.numeric == pytest.approx(2 * x[1, 2], rel=1e-6)
    text = str(report)
    assert text.startswith("gradient check FAILED (1 of 1 tensors)")
    assert "FAIL input 0 (3, 4): worst elements (1, 2): autograd" in text
    assert r.worst == [((1, 2), r.analytic, r.numeric)]     # the failing elements only


def test_raise_on_failure():
    x = np.ones((2, 2))
    with pytest.raises(GradientCheckError, match=r"input 0 +\(2, 2\) +central .* FAIL"):
        nb.check_grad(lambda t: SquareWithBug(factor=2.01)(t), x, raise_on_failure=True)
    assert issubclass(GradientCheckError, AssertionError)
    # a correct gradient does not raise
    nb.check_grad(lambda t: t * t, x, raise_on_failure=True)


def test_direction_method_on_big_input_catches_a_wrong_gradient():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 1.5, (60, 50))  # 3,000 elements > max_elements: one random direction
    good = nb.check_grad(lambda t: SquareWithBug(factor=2.0)(t), x, rtol=1e-6)
    assert good.passed and good.inputs[0].method == "direction"
    assert good.inputs[0].worst_index is None
    bad = nb.check_grad(lambda t: SquareWithBug(bad=(17, 23))(t), x)
    assert not bad.passed and bad.inputs[0].method == "direction"
    # even a 1% error in every component is caught
    assert not nb.check_grad(lambda t: SquareWithBug(factor=2.02)(t), x).passed


def test_direction_method_directional_derivative_is_right():
    """<grad, v> from the report's 'analytic' equals the true directional derivative for some unit v."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 30))
    report = nb.check_grad(lambda t: (t * t * t).sum(), x, max_elements=10, seed=5)
    r = report.inputs[0]
    v = np.random.default_rng(5).standard_normal(x.shape)
    v /= np.linalg.norm(v)
    assert r.analytic == pytest.approx(np.sum(3 * x * x * v), rel=1e-10)
    assert r.numeric == pytest.approx(r.analytic, rel=1e-6)


def test_numerical_grad_matches_closed_form():
    x = np.array([[0.5, -1.0, 2.0]])
    y = np.array([1.5, 0.25, -0.5])
    gx, gy = nb.numerical_grad(lambda a, b: a * a * b, x, y)
    np.testing.assert_allclose(gx, 2 * x * y, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gy, x.sum(axis=0) ** 2, rtol=1e-7, atol=1e-8)


def test_numerical_grad_with_output_gradient_and_non_float_inputs():
    x = np.array([1.0, 2.0, 3.0])
    idx = np.array([2, 0])
    go = np.array([10.0, -1.0])
    gx, gidx = nb.numerical_grad(lambda t, i: t[i] ** 2, x, idx, grad_output=go)
    assert gidx is None
    np.testing.assert_allclose(gx, [-2.0, 0.0, 60.0], rtol=1e-7, atol=1e-8)
    report = nb.check_grad(lambda t, i: t[i] ** 2, x, idx, grad_output=go)
    assert report.passed and len(report.inputs) == 1


def test_float32_inputs_are_checked_in_float64():
    x = nb.Tensor(np.array([0.1, 0.2, 0.3], np.float32))
    seen = []

    def f(t):
        seen.append(t.dtype)
        return ops.exp(t)

    report = nb.check_grad(f, x, rtol=1e-7)
    assert report.passed and set(seen) == {np.dtype("float64")}
    assert x.dtype == np.float32 and x.grad is None     # the caller's tensor is untouched


def test_non_contiguous_input():
    """A transposed (Fortran-ordered) array is checked like any other."""
    x = np.random.default_rng(4).standard_normal((3, 4)).T
    report = nb.check_grad(lambda t: t * t * t, x)
    assert report.passed, str(report)
    g = nb.numerical_grad(lambda t: t * t, x)[0]
    np.testing.assert_allclose(g, 2 * x, rtol=1e-7, atol=1e-8)


def test_inputs_are_restored_after_check():
    x = np.array([1.0, 2.0])
    nb.check_grad(lambda t: t * t, x)
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_output_must_depend_on_an_input():
    with pytest.raises(ValueError, match="does not depend"):
        nb.check_grad(lambda t: nb.Tensor(np.ones(2)), np.ones(2))


def test_check_grad_rejects_tuple_outputs():
    with pytest.raises(TypeError, match="one Tensor"):
        nb.check_grad(lambda t: (t, t), np.ones(2))


def test_unused_input_gets_zero_gradient():
    report = nb.check_grad(lambda a, b: a * 2.0, np.ones(2), np.ones(3))
    assert report.passed and report.inputs[1].max_abs_err == 0.0
