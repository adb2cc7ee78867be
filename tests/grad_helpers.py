"""The one shared Hypothesis helper for gradient tests (DESIGN.md convention 11).

``check_op(data, op, bounds, ...)`` draws shapes (mutually broadcastable, with
size-1 dimensions), values inside the given bounds (pushed away from the op's
kinks), and a random output gradient, then runs ``numbanet.check_grad`` in
float64 against central finite differences and asserts it passed with a tight
tolerance. The largest relative error seen is kept in ``MAX_REL`` so the suite
can report the tolerance it actually reached.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet as nb

# Central differences in float64: eps=1e-5 balances truncation (~eps^2 f''') and
# rounding (~1e-16 |L| / eps); an element passes when |a - n| <= ATOL + RTOL |n|.
EPS, RTOL, ATOL = 1e-5, 1e-6, 1e-8

GRAD_SETTINGS = settings(max_examples=30, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAX_REL = {"value": 0.0, "where": None, "abs": 0.0}


def away_from(values, kinks, margin):
    """Move every value closer than ``margin`` to a kink out to ``margin`` from it."""
    for k in kinks:
        d = values - k
        close = np.abs(d) < margin
        values = np.where(close, k + margin * np.where(d >= 0, 1.0, -1.0), values)
    return values


def draw_shapes(data, n, min_dims=0, max_dims=3, max_side=4, broadcast=True):
    """``n`` shapes; mutually broadcastable (size-1 and missing leading axes) unless ``broadcast=False``."""
    if not broadcast:
        shape = data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side))
        return [shape] * n
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims, max_dims=max_dims,
                                                         min_side=1, max_side=max_side))
    return list(shapes.input_shapes)


def draw_values(data, shape, low, high, kinks=(), margin=1e-2, signed=False):
    """Float64 values uniform in [low, high] (times a random sign when ``signed``), away from kinks."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    v = rng.uniform(low, high, size=shape)
    if signed:
        v = v * rng.choice([-1.0, 1.0], size=shape)
    return away_from(np.asarray(v, dtype=np.float64), kinks, margin)


def assert_grad(fn, *inputs, grad_output=None, rtol=RTOL, atol=ATOL, eps=EPS, label="", **kwargs):
    """Run check_grad (float64) and assert every input passed; record the worst relative error."""
    report = nb.check_grad(fn, *inputs, eps=eps, rtol=rtol, atol=atol, grad_output=grad_output, **kwargs)
    for r in report.inputs:
        if r.max_rel_err > MAX_REL["value"] and r.passed:
            MAX_REL["value"], MAX_REL["where"] = r.max_rel_err, f"{label} input {r.index} {r.shape}"
        MAX_REL["abs"] = max(MAX_REL["abs"], r.max_abs_err)
    assert report.passed, f"{label}\n{report}"
    return report


def check_op(data, op, bounds, n_inputs=1, kinks=(), margin=1e-2, signed=(), min_dims=0, max_dims=3,
             broadcast=True, shapes=None, label=None, rtol=RTOL):
    """Gradient-check ``op(*tensors)`` on drawn shapes and values.

    ``bounds`` is one (low, high) pair for every input or a list of pairs;
    ``signed`` lists the inputs whose values get a random sign (e.g. a divisor
    in +-[0.5, 2]). Shapes are drawn unless given. The output gradient is random
    so every output element is weighted differently.
    """
    if isinstance(bounds, tuple):
        bounds = [bounds] * n_inputs
    if shapes is None:
        shapes = draw_shapes(data, n_inputs, min_dims, max_dims, broadcast=broadcast)
    xs = [draw_values(data, s, lo, hi, kinks, margin, signed=i in signed) for i, (s, (lo, hi)) in
          enumerate(zip(shapes, bounds))]
    with nb.no_grad():
        y = op(*[nb.Tensor(x) for x in xs])
    gy = draw_values(data, y.shape, -1.0, 1.0)
    return assert_grad(op, *xs, grad_output=gy, rtol=rtol, label=label or getattr(op, "__name__", "op"))
