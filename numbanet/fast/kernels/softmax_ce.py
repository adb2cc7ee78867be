"""Row kernels of the sparse softmax cross-entropy from logits.

Shapes: z (B, V) logits, e (B, V) the exponentials of the shifted logits, zmax (B,),
s (B,), values (B,), labels (B,) integers in [0, V).

float32 (``softmax_ce_rows``, the training models' case), after the caller's NumPy SIMD
row max zmax[r] = max_k z[r, k]:

    e[r, k] = exp(z[r, k] - zmax[r])             (``exp_shifted_row``: exp32's polynomial, vectorised)
    s[r] = sum_k e[r, k]
    values[r] = log(s[r]) + zmax[r] - z[r, labels[r]]

in one call per block of rows: each row is exponentiated into e and then summed while it
is in the L1 cache. Other dtypes, in three steps around NumPy's exp:

    shift_rows(z, zmax, e)                       e[r] = z[r] - zmax[r]
    (the caller runs np.exp(e, out=e))
    lse_rows(e, z, labels, zmax, s, values)      s[r], values[r] as above

and for the backward, in place,

    gradient_rows(e, f, labels, c)               e[r] <- e[r] f[r];  e[r, labels[r]] -= c[r]
                                                 (f = c / s: e becomes c (softmax - one_hot))

so values[r] = log(sum_k exp(z[r, k])) - z[r, labels[r]], the cross-entropy of row r,
without overflow (every exponent is <= 0, and the largest term is exp(0) = 1, so
s >= 1 and the log is finite). The caller runs them over blocks of rows small enough to
stay in the core's cache (``numbanet/fast/losses.py``), so z is read from memory once and
e written once. The row max stays NumPy's: a Numba max that keeps np.max's NaN rule does
not vectorise.

Why a polynomial exp for float32 (``exp32.py``, where the method is): there is no SVML
for Numba here, so ``np.exp`` in a kernel is a scalar libm call, and NumPy's own float32
exp ran at about 2 ns an element on an AVX2 EPYC (5 ms for W5's (1280, 2000) logits);
this one vectorises (8 lanes) and took well under half of that
(``benchmarks/results/tuning.md``, "float32 exp and tanh"). A NaN gives 0 here, and its
row's value comes out NaN all the same (see softmax_ce_rows).

The sum is accumulated in float64 (fastmath reassociation lets it vectorise); it differs
from NumPy's pairwise float32 sum within the rounding bound of a V-term sum.
"""
from __future__ import annotations

import numpy as np
from numba import uintp

from .config import FASTMATH, njit
from .exp32 import CONTRACT, exp_le0


@njit(fastmath=CONTRACT)   # fused multiply-adds in exp32's polynomial
def exp_shifted_row(zr, m, er):
    """er[k] = exp(zr[k] - m) for float32 rows zr, er (V,) and m >= every zr[k] (exp32.exp_le0).

    zr[k] - m is <= 0 or -inf (gives 0). A NaN (in the caller's row, m is then NaN too)
    also gives 0: the row's sum is then 0, and its value and gradient NaN.
    """
    for k in range(uintp(zr.shape[0])):
        er[k] = exp_le0(zr[k] - m)


@njit
def softmax_ce_rows(z, zmax, labels, e, s, values):
    """float32: e[r] = exp(z[r] - zmax[r]); s[r] = sum(e[r]); values[r] = log(s[r]) + zmax[r] - z[r, labels[r]].

    A row whose max is not finite (a NaN or +inf logit, or all -inf) gets s[r] = NaN, as
    NumPy's exp of its shifted row would give, so its value and gradient are NaN (without
    the 0 / 0 warning of the zeros the polynomial exp writes there). Labels outside [0, V) raise.
    """
    B, V = z.shape
    for r in range(uintp(B)):
        label = labels[r]
        if label < 0 or label >= V:
            raise IndexError("sparse_ce_forward: a label lies outside [0, V), the logits' last axis")
        exp_shifted_row(z[r], zmax[r], e[r])
        s[r] = _row_sum(e[r]) + (zmax[r] - zmax[r])            # + 0, or NaN for a max of NaN or +-inf
        values[r] = np.log(s[r]) + zmax[r] - z[r, label]


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


@njit(error_model="numpy")   # no zero-division check per element: the loop vectorises
def gradient_rows(e, f, labels, c):
    """In place: e[r] <- e[r] f[r], then e[r, labels[r]] -= c[r] (f = c / s: the gradient c (softmax - one_hot)).

    e (B, V), f (B,), labels (B,) in [0, V) (checked by the forward), c (B,). One pass over
    e; NumPy's multiply by the broadcast (B, 1) column f ran at half this loop's speed.
    """
    for r in range(uintp(e.shape[0])):
        er, fr = e[r], f[r]
        for k in range(uintp(e.shape[1])):
            er[k] *= fr
        er[labels[r]] -= c[r]
