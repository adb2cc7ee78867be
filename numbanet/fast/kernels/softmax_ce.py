"""Row kernels of the sparse softmax cross-entropy from logits, around NumPy's SIMD exp.

Shapes: z (B, V) logits, e (B, V) the shifted logits and then their exponentials,
zmax (B,), s (B,), values (B,), labels (B,) integers in [0, V).

    (the caller first takes zmax[r] = max_k z[r, k] with NumPy's SIMD max: a Numba max
     that keeps np.max's NaN rule does not vectorise, and was 1.6x slower in all)
    shift_rows(z, zmax, e)                       e[r] = z[r] - zmax[r]
    (the caller runs np.exp(e, out=e) here: NumPy's exp is SIMD code, a scalar exp in a
     Numba loop is not: there is no SVML here)
    lse_rows(e, z, labels, zmax, s, values)      s[r] = sum_k e[r, k]
                                                 values[r] = log(s[r]) + zmax[r] - z[r, labels[r]]

so values[r] = log(sum_k exp(z[r, k])) - z[r, labels[r]], the cross-entropy of row r,
without overflow (every exponent is <= 0, and the largest term is exp(0) = 1, so
s >= 1 and the log is finite). The caller runs the three over blocks of rows small
enough to stay in the core's cache (``numbanet/fast/losses.py``), so z is read from
memory once and e written once; with NumPy's whole-array passes each of max, subtract,
exp and sum streamed the whole (B, V) array through memory (and NumPy's subtract of
a broadcast (B, 1) column ran at a third of the speed of this loop).

The sum is accumulated in float64 (fastmath reassociation lets it vectorise); it differs
from NumPy's pairwise float32 sum within the rounding bound of a V-term sum.
"""
from __future__ import annotations

import numpy as np
from numba import uintp

from .config import FASTMATH, njit


@njit
def shift_rows(z, zmax, e):
    """e[r] = z[r] - zmax[r] (zmax (B,) the row maxima, from NumPy's SIMD max)."""
    B, V = z.shape
    for r in range(uintp(B)):
        zr, er, m = z[r], e[r], zmax[r]
        for k in range(uintp(V)):
            er[k] = zr[k] - m


@njit(fastmath=FASTMATH)
def _row_sum(er):
    """sum of one row, accumulated in float64 (reassociated: vectorised)."""
    acc = 0.0
    for k in range(uintp(er.shape[0])):
        acc += er[k]
    return acc


@njit
def lse_rows(e, z, labels, zmax, s, values):
    """s[r] = sum(e[r]); values[r] = log(s[r]) + zmax[r] - z[r, labels[r]]. Labels outside [0, V) raise."""
    B, V = e.shape
    for r in range(uintp(B)):
        label = labels[r]
        if label < 0 or label >= V:
            raise IndexError("sparse_ce_forward: a label lies outside [0, V), the logits' last axis")
        total = _row_sum(e[r])
        s[r] = total
        values[r] = np.log(s[r]) + zmax[r] - z[r, label]
