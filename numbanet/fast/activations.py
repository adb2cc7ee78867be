"""The fast tier's sigmoid: the result and its gradient written into arrays from the workspace pool.

The arithmetic of ``numbanet/reference/tier.py`` (sigmoid_forward, sigmoid_backward), in
the same order, except the float32 forward pass where Numba is set up: one vectorised pass
of ``kernels/exp32.py: sigmoid_flat`` (exp(-|x|) by a polynomial, within a few ulp of the
four NumPy passes, whose float32 exp runs at a scalar speed on AVX2). The other
difference is where the arrays come from. The reference builds each result and each intermediate as a fresh
array (``1 / (1 + exp(-x))`` makes three); here every pass writes into one array
from ``workspace.empty``, which a step finds again the next time instead of asking
glibc for fresh pages (W3's and W4's (256, 28, 28, 1) sigmoid output, 0.8 MB:
benchmarks/results/defaults.md).
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import sigmoid_
from . import workspace
from .kernels.config import numba_ready
from .kernels.exp32 import sigmoid_flat
from .routes import LAST


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), x of any shape, y of x's shape (x's float dtype, else float64).

    reference: numbanet.reference.tier.sigmoid_forward. Four in-place passes
    (negate, exp, + 1, reciprocal) into one pooled array; exp's overflow for very
    negative x gives 1 / inf = 0, the correctly rounded result. float32 with Numba
    set up: ``sigmoid_flat``, one pass (route "exp32 kernel" in ``routes.last``, else "numpy").
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    y = workspace.empty("sigmoid.y", x.shape, dtype)
    if dtype == np.float32 and numba_ready():
        LAST["sigmoid_forward"] = "exp32 kernel"
        sigmoid_flat(np.ascontiguousarray(x).reshape(-1), y.reshape(-1))      # one pass, vectorised
        return y
    LAST["sigmoid_forward"] = "numpy"
    sigmoid_(x, out=y)
    return y


def sigmoid_backward(gy, y):
    """gx = gy * (y (1 - y)), gy and y of one shape; reference: numbanet.reference.tier.sigmoid_backward.

    Three passes into one pooled array: 1 - y, times y, times gy.
    """
    gx = workspace.empty(workspace.ELEMENTWISE, y.shape, np.result_type(gy, y))   # shared: see fast/losses.py
    np.subtract(1, y, out=gx)
    np.multiply(y, gx, out=gx)
    np.multiply(gy, gx, out=gx)
    return gx
