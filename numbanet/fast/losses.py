"""Sparse categorical cross-entropy from logits, fast: one pass keeps the softmax for the gradient.

Mirrors ``numbanet.reference.tier.sparse_ce_forward`` / ``sparse_ce_backward``:
z (B, V) logits, labels (B,) integers in [0, V), c (B,) the weight of each row's
value (dL/dl). The forward keeps e = exp(z - max) and s = sum(e) per row:

    l = log(s) + max - z[label]          dl/dz = e / s - one_hot(label)   (no second exp)

and the backward scales e in place (it is used once). Rows are independent, so
the work is cut over the NumPy pool when it is big (``parallel.split_large``);
e comes from the scratch pool when it is big enough to be mmapped afresh every
step (``workspace.empty``).

Routes, recorded in ``routes.LAST``: "serial" (one part) or "split" (rows over the threads).
"""
from __future__ import annotations

import numpy as np

from . import parallel, workspace
from .routes import LAST


def sparse_ce_forward(labels, z):
    """(l (B,), saved).   reference: numbanet.reference.tier.sparse_ce_forward."""
    B, V = z.shape
    e = workspace.empty("sparse_ce.e", (B, V), z.dtype)
    s = np.empty((B, 1), dtype=z.dtype)
    values = np.empty(B, dtype=z.dtype)

    def rows(a, b, _):
        zmax = z[a:b].max(axis=-1, keepdims=True)
        np.subtract(z[a:b], zmax, out=e[a:b])
        np.exp(e[a:b], out=e[a:b])
        np.sum(e[a:b], axis=-1, keepdims=True, out=s[a:b])
        values[a:b] = np.log(s[a:b, 0]) + zmax[:, 0] - z[np.arange(a, b), labels[a:b]]

    parts = parallel.split_large(B, z.size)
    parallel.run_numpy(rows, parts)
    LAST["sparse_ce_forward"] = "serial" if len(parts) == 1 else "split"
    return values, (e, s)


def sparse_ce_backward(labels, saved, c):
    """dL/dz (B, V) = c (e / s - one_hot(label)), written into the kept e.
    reference: numbanet.reference.tier.sparse_ce_backward."""
    e, s = saved
    c = np.broadcast_to(np.asarray(c, dtype=e.dtype), labels.shape)   # per-row weights (B,)

    def rows(a, b, _):
        np.multiply(e[a:b], c[a:b, None] / s[a:b], out=e[a:b])   # c * softmax(z)
        e[np.arange(a, b), labels[a:b]] -= c[a:b]                 # - c * one_hot(label)

    parts = parallel.split_large(len(e), e.size)
    parallel.run_numpy(rows, parts)
    LAST["sparse_ce_backward"] = "serial" if len(parts) == 1 else "split"
    return e
