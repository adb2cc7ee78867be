"""Embedding lookup: a gather forward, a scatter-add backward.

Notation: ids (...) integers in [0, V), W (V, D) the table, y (..., D).

    y[p] = W[ids[p]]                          for every position p
    gW[v] = sum over {p : ids[p] = v} of gy[p]

A token that occurs k times receives the sum of its k gradient rows, so the
backward must accumulate. ``gW[ids] += gy`` would not: NumPy's buffered fancy
assignment keeps only one of the repeated rows. ``np.add.at`` accumulates.
"""
from __future__ import annotations

import numpy as np


def embedding_forward(ids, W):
    """y = W[ids]:  ids (...) int, W (V, D) -> y (..., D).   fast tier: engine.sequence.Embedding.forward."""
    return W[ids]


def embedding_backward(ids, gy, V):
    """gW (V, D) = zeros, then gW[ids[p]] += gy[p] for every position p (repeats accumulate).

    ids (...) int, gy (..., D) -> gW (V, D).
    fast tier: numbanet.fast.embedding.embedding_backward (the same signature).
    """
    D = gy.shape[-1]
    gW = np.zeros((V, D), dtype=gy.dtype)
    np.add.at(gW, ids.reshape(-1), gy.reshape(-1, D))   # (...) -> (M,); (..., D) -> (M, D)
    return gW
