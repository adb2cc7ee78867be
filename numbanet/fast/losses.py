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
