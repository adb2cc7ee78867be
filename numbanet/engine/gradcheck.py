"""Gradient checking: autograd against finite differences.

Two methods, chosen per input by its size:

* ``"central"`` (inputs up to ``max_elements``): every element is nudged both
  ways in float64,  dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),  and
  compared element by element with the autograd gradient.
* ``"direction"`` (larger inputs, e.g. convolution-sized): one random unit
  direction v; the directional derivative from two evaluations,
  (L(x + eps v) - L(x - eps v)) / (2 eps), is compared with <grad L, v> from
  backward. Cheap (two forward passes) and still catches any wrong gradient
  component with probability 1.

L is ``fn(*inputs).sum()``, or ``(fn(*inputs) * grad_output).sum()`` when an
output gradient is given, i.e. a random linear functional of the output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tensor import Tensor, no_grad


class GradientCheckError(AssertionError):
    """Raised by ``check_grad(..., raise_on_failure=True)`` when an input fails."""


@dataclass
class InputReport:
    index: int
    shape: tuple
    method: str
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    passed: bool

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        return (f"{status} input {self.index} shape={self.shape} method={self.method} "
                f"max_abs_err={self.max_abs_err:.3e} max_rel_err={self.max_rel_err:.3e} "
                f"worst={self.worst_index} (autograd {self.analytic:.8g} vs numeric {self.numeric:.8g})")


@dataclass
class GradCheckReport:
    inputs: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.inputs)

    def __bool__(self):
        return self.passed

    def __str__(self):
        return "gradient check\n" + "\n".join("  " + r.line() for r in self.inputs)


def _as_float64_tensors(inputs):
    # A C-ordered float64 copy: the checks nudge elements through a flat view
    # (``reshape(-1)``), which would be a copy, not a view, of a transposed array.
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(Tensor(np.array(x.data, dtype=np.float64, order="C"), requires_grad=True))
        elif isinstance(x, np.ndarray) and x.dtype.kind == "f":
            out.append(Tensor(np.array(x, dtype=np.float64, order="C"), requires_grad=True))
        else:  # integers, index arrays, Python values: passed through, not checked
            out.append(x)
    return out


def _scalar_loss(fn, args, grad_output):
    y = fn(*args)
    if isinstance(y, (tuple, list)):
        raise TypeError("check_grad: fn must return one Tensor; wrap it to combine several outputs")
    if grad_output is None:
        return y.sum()
    return (y * Tensor(grad_output)).sum()


def numerical_grad(fn, *inputs, eps=1e-6, grad_output=None):
    """Central finite-difference gradients of ``fn(*inputs).sum()`` in float64.

    Returns a list with one ndarray per floating input (None for the others).
    """
    args = _as_float64_tensors(inputs)
    grads = []
    with no_grad():
        for x in args:
            if not isinstance(x, Tensor):
                grads.append(None)
                continue
            g = np.zeros_like(x.data)
            flat, gflat = x.data.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                orig = flat[i]
                flat[i] = orig + eps
                plus = float(_scalar_loss(fn, args, grad_output).data)
                flat[i] = orig - eps
                minus = float(_scalar_loss(fn, args, grad_output).data)
                flat[i] = orig
                gflat[i] = (plus - minus) / (2 * eps)
            grads.append(g)
    return grads


def check_grad(fn, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, grad_output=None,
               max_elements=400, seed=0, raise_on_failure=False):
    """Compare autograd gradients of ``fn(*inputs)`` with finite differences (float64).

    Each floating input (ndarray or Tensor) is checked; other arguments are passed
    through unchanged. An element passes when ``|analytic - numeric| <= atol +
    rtol * |numeric|``. Returns a ``GradCheckReport`` (truthy when every input
    passed; ``str(report)`` gives one line per input with shape, method, max abs
    and rel error and the worst index); raises ``GradientCheckError`` with that
    text when ``raise_on_failure`` is set.
    """
    args = _as_float64_tensors(inputs)
    if grad_output is not None:
        grad_output = np.asarray(grad_output, dtype=np.float64)
    loss = _scalar_loss(fn, args, grad_output)
    if not loss.requires_grad:
        raise ValueError("check_grad: the output does not depend on any floating input")
    loss.backward()
    rng = np.random.default_rng(seed)
    report = GradCheckReport()
    with no_grad():
        for k, x in enumerate(args):
            if not isinstance(x, Tensor):
                continue
            analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
            if x.data.size <= max_elements:
                report.inputs.append(_check_central(fn, args, grad_output, k, x, analytic, eps, rtol, atol))
            else:
                report.inputs.append(_check_direction(fn, args, grad_output, k, x, analytic, eps, rtol, atol, rng))
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report


def _check_central(fn, args, grad_output, k, x, analytic, eps, rtol, atol):
    numeric = np.zeros_like(x.data)
    flat, nflat = x.data.reshape(-1), numeric.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = float(_scalar_loss(fn, args, grad_output).data)
        flat[i] = orig - eps
        minus = float(_scalar_loss(fn, args, grad_output).data)
        flat[i] = orig
        nflat[i] = (plus - minus) / (2 * eps)
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.abs(numeric), 1e-12)
    ok = abs_err <= atol + rtol * np.abs(numeric)
    if abs_err.size:
        worst = np.unravel_index(np.argmax(abs_err - (atol + rtol * np.abs(numeric))), abs_err.shape)
        a, n = float(analytic[worst]), float(numeric[worst])
        # relative error reported only where it means something (not on ~0 entries)
        meaningful = np.abs(numeric) > atol
        max_rel = float(rel_err[meaningful].max()) if meaningful.any() else 0.0
        return InputReport(k, x.shape, "central", float(abs_err.max()), max_rel,
                           tuple(int(i) for i in worst), a, n, bool(ok.all()))
    return InputReport(k, x.shape, "central", 0.0, 0.0, None, 0.0, 0.0, True)


def _check_direction(fn, args, grad_output, k, x, analytic, eps, rtol, atol, rng):
    v = rng.standard_normal(x.shape)
    v /= np.linalg.norm(v)
    orig = x.data.copy()
    x.data = orig + eps * v
    plus = float(_scalar_loss(fn, args, grad_output).data)
    x.data = orig - eps * v
    minus = float(_scalar_loss(fn, args, grad_output).data)
    x.data = orig
    numeric = (plus - minus) / (2 * eps)
    a = float(np.sum(analytic * v))
    abs_err = abs(a - numeric)
    rel_err = abs_err / max(abs(numeric), 1e-12)
    passed = abs_err <= atol + rtol * abs(numeric)
    return InputReport(k, x.shape, "direction", abs_err, rel_err, None, a, numeric, bool(passed))
