"""The fast tier's sigmoid: the result and its gradient written into arrays from the workspace pool.

Same arithmetic as ``numbanet/reference/tier.py`` (sigmoid_forward, sigmoid_backward),
in the same order, so both tiers give the same bits; the difference is where the
arrays come from. The reference builds each result and each intermediate as a fresh
array (``1 / (1 + exp(-x))`` makes three); here every pass writes into one array
from ``workspace.empty``, which a step finds again the next time instead of asking
glibc for fresh pages (W3's and W4's (256, 28, 28, 1) sigmoid output, 0.8 MB:
benchmarks/results/defaults.md).
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import sigmoid_
from . import workspace


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), x of any shape, y of x's shape (x's float dtype, else float64).

    reference: numbanet.reference.tier.sigmoid_forward. Four in-place passes
    (negate, exp, + 1, reciprocal) into one pooled array; exp's overflow for very
    negative x gives 1 / inf = 0, the correctly rounded result.
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    y = workspace.empty("sigmoid.y", x.shape, dtype)
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
