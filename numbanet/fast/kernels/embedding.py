"""Embedding kernels: the adjoint of the gather (a scatter-add), and the id range check.

Shapes (flattened): ids (M,) integers in [0, V), W (V, D), gy (M, D), gW (V, D).

Forward is a gather, row i of the output is row ids[i] of the table:

    y[i, :] = W[ids[i], :]

Its adjoint sends every output row back to the table row it came from. A word
that occurs k times in the batch receives the sum of its k gradient rows, so the
backward pass must *accumulate* (``gW[ids[i]] += gy[i]``), never assign:

    gW[v, :] = sum over {i : ids[i] = v} of gy[i, :]

NumPy's ``gW[ids] += gy`` would keep only one of the repeated rows (buffered
fancy assignment); ``np.add.at`` is correct but slow. The loop below is the
definition, compiled. (The forward gather is ``np.take(W, ids, axis=0)``: a
Numba loop measured the same, 26 us for 1280 rows of a (2000, 256) table.)
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit
def scatter_add_rows(ids, gy, gW):
    """gW[ids[i], :] += gy[i, :] for every i (repeated ids accumulate).

    ids (M,) int, gy (M, D), gW (V, D) is updated in place; ids must already be
    checked to lie in [0, V). Serial on purpose: two rows with the same id would
    race under ``prange``.
    """
    M, D = gy.shape
    for i in range(M):
        v = ids[i]
        for d in range(D):
            gW[v, d] += gy[i, d]
    return gW


@njit
def first_out_of_range(ids, V):
    """Position of the first id outside [0, V), or -1 when all are valid.  ids (M,)."""
    for i in range(ids.shape[0]):
        if ids[i] < 0 or ids[i] >= V:
            return i
    return -1


def embedding_backward_array(ids, gy, V):
    """gW (V, D) from flattened ``ids`` (M,) and ``gy`` (M, D): zeros, then scatter-add."""
    gW = np.zeros((V, gy.shape[1]), dtype=gy.dtype)
    return scatter_add_rows(ids, np.ascontiguousarray(gy), gW)
