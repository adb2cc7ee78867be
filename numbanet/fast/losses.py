"""Sparse categorical cross-entropy from logits, fast: one pass keeps the softmax for the gradient.

Mirrors ``numbanet.reference.tier.sparse_ce_forward`` / ``sparse_ce_backward``:
z (B, V) logits, labels (B,) integers in [0, V), c (B,) the weight of each row's
value (dL/dl). The forward keeps e = exp(z - max) and s = sum(e) per row:

    l = log(s) + max - z[label]          dl/dz = e / s - one_hot(label)   (no second exp)

and the backward scales e in place (it is used once) in one Numba pass
(``gradient_rows``). The forward walks each part's rows in blocks of about
ROW_BLOCK_BYTES: per block, NumPy's SIMD max of each row, then for float32 one Numba
pass that writes each row's e with a vectorised polynomial exp (``kernels/exp32.py``)
and sums it while it is in the L1 cache (``kernels/softmax_ce.py``: softmax_ce_rows);
for other dtypes a Numba pass writing e = z - max, NumPy's exp in place on the block
while it is still in cache, and a second Numba pass summing each row and writing its
value. Either way z is read from memory once and e written once. Rows are
independent, so the work is cut over the NumPy pool when it is big
(``parallel.split_large``); e comes from the scratch pool when it is big enough to be
mmapped afresh every step (``workspace.empty``).

Routes, recorded in ``routes.LAST``: "serial" (one part) or "split" (rows over the threads).
"""
from __future__ import annotations

import numpy as np

from . import parallel, workspace
from .kernels.config import numba_ready
from .kernels.exp32 import bce_terms_flat
from .kernels.softmax_ce import gradient_rows, lse_rows, shift_rows, softmax_ce_rows
from .routes import LAST

# Bytes of logits per block of rows in the forward: the block is written, exponentiated
# and summed while it is in the core's 512 KiB L2 cache. W6's (1280, 2000) float32
# logits, one thread: 3.96 ms CPU with whole-array passes, 2.30 ms in blocks of 32 rows
# (2.96 with 8 rows, 2.21 with 128; benchmarks/results/tuning.md, "sparse CE row blocks").
ROW_BLOCK_BYTES = 256 << 10


def sparse_ce_forward(labels, z):
    """(l (B,), saved).   reference: numbanet.reference.tier.sparse_ce_forward."""
    B, V = z.shape
    e = workspace.empty("sparse_ce.e", (B, V), z.dtype)
    s = np.empty((B, 1), dtype=z.dtype)
    values = np.empty(B, dtype=z.dtype)
    zmax = np.empty(B, dtype=z.dtype)
    step = max(1, ROW_BLOCK_BYTES // max(1, V * z.itemsize))      # rows per cache-sized block
    polynomial_exp = z.dtype == np.float32

    def rows(a, b, _):
        for r0 in range(a, b, step):
            r1 = min(r0 + step, b)
            np.max(z[r0:r1], axis=1, out=zmax[r0:r1])
            if polynomial_exp:                                       # e = exp(z - max), s, values
                softmax_ce_rows(z[r0:r1], zmax[r0:r1], labels[r0:r1], e[r0:r1], s[r0:r1, 0], values[r0:r1])
                continue
            shift_rows(z[r0:r1], zmax[r0:r1], e[r0:r1])              # e = z - max per row
            np.exp(e[r0:r1], out=e[r0:r1])
            lse_rows(e[r0:r1], z[r0:r1], labels[r0:r1], zmax[r0:r1], s[r0:r1, 0], values[r0:r1])

    parts = parallel.split_large(B, z.size)
    parallel.run_numpy(rows, parts)
    LAST["sparse_ce_forward"] = "serial" if len(parts) == 1 else "split"
    return values, (e, s)


def sparse_ce_backward(labels, saved, c):
    """dL/dz (B, V) = c (e / s - one_hot(label)), written into the kept e.
    reference: numbanet.reference.tier.sparse_ce_backward."""
    e, s = saved
    c = np.broadcast_to(np.asarray(c, dtype=e.dtype), labels.shape)   # per-row weights (B,)
    f = c / s[:, 0]                                                   # (B,): e f = c * softmax(z)

    def rows(a, b, _):
        gradient_rows(e[a:b], f[a:b], labels[a:b], c[a:b])           # c * softmax(z) - c * one_hot(label)

    parts = parallel.split_large(len(e), e.size)
    parallel.run_numpy(rows, parts)
    LAST["sparse_ce_backward"] = "serial" if len(parts) == 1 else "split"
    return e


# ------------------------------------------------ binary cross-entropy (probabilities or logits)
BCE_EPSILON = 1e-7     # the clip of probabilities, as numbanet.losses.EPSILON and Keras
# One pool tag for the BCE's and the sigmoid's arrays of p's shape (``workspace.ELEMENTWISE``):
# the forward holds three at once, the backward three, the sigmoid's backward two, never all
# together, so the pool keeps three for the whole path instead of one per name.
SCRATCH_TAG = workspace.ELEMENTWISE
_BCE_LO32, _BCE_HI32 = np.float32(BCE_EPSILON), np.float32(1 - BCE_EPSILON)   # the clip as NumPy's in float32


def _mean_last(v, tag):
    """mean over the last axis of v (S..., D) into a pooled (S,) array; a 1-D v is its own result."""
    if v.ndim <= 1:
        return v
    out = workspace.empty(tag, v.shape[:-1], v.dtype)
    if v.shape[-1] == 1:                          # the mean of one value is that value; np.mean would
        np.copyto(out, v[..., 0])                 # buffer the strided reduction (128 KiB for W3's)
    else:
        np.mean(v, axis=-1, out=out)
    return out


def _scale_per_value(g, c, p):
    """g *= c / D in place: c (S,) or a scalar, dL/dl per value; D = p's last axis (1 for a 1-D p)."""
    if p.ndim > 1:
        c = np.expand_dims(c, -1) / p.shape[-1] if np.ndim(c) else c / p.shape[-1]
    np.multiply(c, g, out=g)


def binary_ce_forward(t, p, from_logits=False):
    """l (S,) per value of p (S..., D); reference: numbanet.reference.tier.binary_ce_forward.

    The reference's expressions in its order, each pass written into a pooled
    array (p's shape; the result (S,) pooled too):
    probabilities  a = clip(p), b = log(1 - a), a = t log a, e = (1 - t) b, l = mean_D(-(a + e));
                   float32 with Numba set up: those per value in one vectorised pass of
                   ``kernels/exp32.py: bce_terms_flat`` (its log within 1 ulp; NumPy's float32
                   log runs at a scalar speed on AVX2), route "log32 kernel", else "numpy";
    logits         b = max(z, 0) - z t, a = log1p(exp(-|z|)), l = mean_D(b + a).
    t has p's shape and dtype (``Loss.prepare_true``).
    """
    a = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    if from_logits:
        LAST["binary_ce_forward"] = "numpy"
        b = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
        np.maximum(p, 0, out=b)
        np.multiply(p, t, out=a)
        b -= a                                    # max(z, 0) - z t
        np.abs(p, out=a)
        np.negative(a, out=a)
        np.exp(a, out=a)
        np.log1p(a, out=a)                        # log(1 + exp(-|z|)): never overflows
        b += a
        return _mean_last(b, "bce.l")
    if p.dtype == np.float32 and t.dtype == np.float32 and numba_ready():
        LAST["binary_ce_forward"] = "log32 kernel"
        bce_terms_flat(np.ascontiguousarray(t).reshape(-1), np.ascontiguousarray(p).reshape(-1), _BCE_LO32,
                       _BCE_HI32, a.reshape(-1))                                  # one vectorised pass
        return _mean_last(a, "bce.l")
    LAST["binary_ce_forward"] = "numpy"
    b = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    e = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    np.clip(p, BCE_EPSILON, 1 - BCE_EPSILON, out=a)           # q
    np.subtract(1, a, out=b)
    np.log(b, out=b)                              # log(1 - q)
    np.log(a, out=a)
    np.multiply(t, a, out=a)                      # t log q
    np.subtract(1, t, out=e)
    np.multiply(e, b, out=e)                      # (1 - t) log(1 - q)
    a += e
    np.negative(a, out=a)
    return _mean_last(a, "bce.l")


def binary_ce_backward(t, p, c, from_logits=False):
    """dL/dp (p's shape) into a pooled array; reference: numbanet.reference.tier.binary_ce_backward.

    probabilities  c / D * (-t / q + (1 - t) / (1 - q)), 0 where p lies outside
                   [1e-7, 1 - 1e-7] (there q = clip(p) != p, a NaN p included);
    logits         c / D * (sigmoid(z) - t).
    c (S,) or a scalar, dL/dl per value.
    """
    g = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    a = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    if from_logits:
        with np.errstate(over="ignore"):          # exp(-z) = inf for z < -88 (float32): sigmoid 0, exact
            np.negative(p, out=g)
            np.exp(g, out=g)
        g += 1
        np.divide(1, g, out=g)                    # sigmoid(z)
        g -= t
        _scale_per_value(g, c, p)
        return g
    outside = workspace.empty("bce.outside", p.shape, np.bool_)
    np.clip(p, BCE_EPSILON, 1 - BCE_EPSILON, out=a)           # q
    np.not_equal(a, p, out=outside)
    np.subtract(1, t, out=g)
    b = workspace.empty(SCRATCH_TAG, p.shape, p.dtype)
    np.subtract(1, a, out=b)
    g /= b                                        # (1 - t) / (1 - q)
    np.divide(t, a, out=a)                        # t / q
    g -= a                                        # -t / q + (1 - t) / (1 - q), the same rounding
    np.copyto(g, 0, where=outside)
    _scale_per_value(g, c, p)
    return g
