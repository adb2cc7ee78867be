"""Batch normalization, fast: the Numba kernels of ``fast/kernels/normalization.py``.

Mirrors ``numbanet.reference.tier.batch_norm_forward`` / ``batch_norm_backward`` (the
math and the shapes are there and in ``reference/normalization.py``). One route each,
recorded as "fused": the forward is two statistic passes and one output pass, the
backward one pass for the two sums and one for gx in the closed form
``gx = (gamma inv / M) (M gy - sum gy - xhat sum(gy xhat))``, with float64 accumulators.
"""
from __future__ import annotations

import numpy as np

from .kernels import normalization as K
from .routes import LAST


def _inv_std(var, eps):
    """inv = 1 / sqrt(var + eps), (C,) in var's dtype."""
    return (1 / np.sqrt(var + eps)).astype(var.dtype, copy=False)


def batch_norm_forward(x, gamma, beta, eps):
    """(y, mean, var) of training-mode batch norm.   reference: numbanet.reference.tier.batch_norm_forward."""
    x = np.ascontiguousarray(x)                                   # (M, C)
    C = x.shape[1]
    mean, var = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
    K.batch_moments(x, mean, var)
    g = np.ones(C, dtype=x.dtype) if gamma is None else np.ascontiguousarray(gamma, dtype=x.dtype)
    b = np.zeros(C, dtype=x.dtype) if beta is None else np.ascontiguousarray(beta, dtype=x.dtype)
    y = np.empty_like(x)
    K.scale_shift(x, mean, _inv_std(var, eps), g, b, y)
    LAST["batch_norm_forward"] = "fused"
    return y, mean, var


def batch_norm_backward(gy, x, mean, var, gamma, eps, need_gx=True):
    """(gx, ggamma, gbeta) in the closed form.   reference: numbanet.reference.tier.batch_norm_backward."""
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)    # (M, C) each
    C = x.shape[1]
    g = np.ones(C, dtype=x.dtype) if gamma is None else np.ascontiguousarray(gamma, dtype=x.dtype)
    gx = np.empty_like(x) if need_gx else np.empty((0, C), dtype=x.dtype)
    ggamma, gbeta = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
    K.batch_norm_grads(gy, x, mean, _inv_std(var, eps), g, gx, ggamma, gbeta, need_gx)
    LAST["batch_norm_backward"] = "fused"
    return (gx if need_gx else None), ggamma, gbeta
