"""Batch-normalization kernels: the statistics, the normalize-scale-shift pass, and the
closed-form backward, each a pass or two over the rows.

Shapes: x, y, gy, gx (M, C) C-contiguous (M rows, C channels); mean, var, inv, gamma, beta,
ggamma, gbeta (C,). The loops run row by row with the channel innermost, so each pass reads
the (M, C) array once, in memory order, and updates C per-channel accumulators. The
accumulators are float64 whatever the data's dtype: a float32 sum of M terms would carry an
error of about M * eps32 of the sum, float64's is 2^29 times smaller.

Forward (training), two passes for the statistics (mean first, then the centred squares:
no cancellation, unlike E[x^2] - E[x]^2) and one for the output::

    mean = (1/M) sum_m x[m]        var = (1/M) sum_m (x[m] - mean)^2
    inv  = 1 / sqrt(var + eps)     y = (x - mean) * (gamma * inv) + beta

Backward, the closed form (derived step by step in ``numbanet/reference/normalization.py``)::

    xhat   = (x - mean) * inv
    gbeta  = sum_m gy              ggamma = sum_m gy * xhat
    gx     = (gamma * inv / M) * (M gy - gbeta - xhat * ggamma)
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit
def batch_moments(x, mean, var):
    """mean[c] and var[c] (biased, divides by M) of x (M, C) over its rows, into mean, var (C,)."""
    M, C = x.shape
    acc = np.zeros(C, dtype=np.float64)
    for m in range(M):
        for c in range(C):
            acc[c] += x[m, c]
    for c in range(C):
        acc[c] /= M
        mean[c] = acc[c]
    sq = np.zeros(C, dtype=np.float64)
    for m in range(M):
        for c in range(C):
            d = x[m, c] - acc[c]
            sq[c] += d * d
    for c in range(C):
        var[c] = sq[c] / M


@njit
def scale_shift(x, mean, inv, gamma, beta, y):
    """y[m, c] = (x[m, c] - mean[c]) * (gamma[c] * inv[c]) + beta[c], into y (M, C)."""
    M, C = x.shape
    a = gamma * inv                               # (C,) the per-channel factor
    for m in range(M):
        for c in range(C):
            y[m, c] = (x[m, c] - mean[c]) * a[c] + beta[c]


@njit
def batch_norm_grads(gy, x, mean, inv, gamma, gx, ggamma, gbeta, need_gx):
    """gbeta, ggamma (C,) and, when ``need_gx``, gx (M, C) of training-mode batch norm (module docstring)."""
    M, C = gy.shape
    sg = np.zeros(C, dtype=np.float64)            # sum_m gy
    sgx = np.zeros(C, dtype=np.float64)           # sum_m gy * xhat
    for m in range(M):
        for c in range(C):
            g = gy[m, c]
            sg[c] += g
            sgx[c] += g * ((x[m, c] - mean[c]) * inv[c])
    for c in range(C):
        gbeta[c] = sg[c]
        ggamma[c] = sgx[c]
    if need_gx:
        k = gamma * inv / M                       # (C,) gamma inv / M
        for m in range(M):
            for c in range(C):
                xhat = (x[m, c] - mean[c]) * inv[c]
                gx[m, c] = k[c] * (M * gy[m, c] - sg[c] - xhat * sgx[c])
