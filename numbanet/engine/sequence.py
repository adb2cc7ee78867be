"""Differentiable embedding lookup (the first layer of every text model).

Notation: ids (...) integer token ids in [0, V), W (V, D) the embedding table,
y (..., D). Three tiers, as everywhere in the engine:

    embedding(ids, W)            validates ids, builds the graph node
      -> Embedding.forward       gathers rows:        y = W[ids]
      -> Embedding.backward      scatter-adds rows:   gW[v] = sum_{i: ids_i = v} gy_i
           -> kernels.embedding.scatter_add_rows   (the @njit loop)

The ids get no gradient (they are integers); only the table does.
"""
from __future__ import annotations

import numpy as np

from ..fast.kernels.embedding import first_out_of_range
from . import tiers
from .tensor import Function, Tensor


class Embedding(Function):
    """y = W[ids]:  ids (...) int, W (V, D) -> y (..., D).

    Backward:  gW = zeros (V, D);  gW[ids_i] += gy_i  for every position i
    (flattened to M = prod(ids.shape) rows). Repeated ids accumulate.
    The ids are held by the node (like an index), not passed as an input:
    they are not differentiable and must never be cast to the table's dtype.
    """

    def __init__(self, ids):
        self.ids_shape = ids.shape
        self.ids = ids.reshape(-1)                          # (...) -> (M,)

    def forward(self, W):
        self.V = W.shape[0]
        y = np.take(W, self.ids, axis=0)                    # (M, D)
        return y.reshape(self.ids_shape + (W.shape[1],))    # (M, D) -> (..., D)

    def backward(self, gy):
        return tiers.current.embedding_backward(self.ids, gy, self.V)   # ids (M,), gy (..., D) -> (V, D)


def check_ids(ids, V, where="embedding"):
    """Return ``ids`` as an intp ndarray after checking type and range.

    Raises TypeError for non-integer ids (floats are not silently truncated) and
    ValueError for an id outside [0, V): NumPy would wrap a negative id around to
    the end of the table, which hides bugs in a tokenizer.
    """
    raw = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if raw.dtype.kind not in "iu":
        raise TypeError(f"{where}: token ids must be integers, got dtype {raw.dtype} "
                        f"with shape {raw.shape} (cast them with .astype('int32'))")
    flat = np.ascontiguousarray(raw, dtype=np.intp).reshape(-1)
    bad = first_out_of_range(flat, V)
    if bad >= 0:
        pos = np.unravel_index(bad, raw.shape)
        raise ValueError(f"{where}: token id {int(flat[bad])} at position {tuple(int(p) for p in pos)} "
                         f"of ids with shape {raw.shape} is outside [0, {V}) (input_dim={V})")
    return flat.reshape(raw.shape)


def embedding(ids, W, where="embedding"):
    """Look up rows of ``W`` (V, D) for integer ``ids`` of any shape -> (..., D).

    ``ids`` is an integer ndarray or Tensor; out-of-range or non-integer ids raise,
    with ``where`` (the caller's name) leading the message.
    """
    V = W.shape[0] if hasattr(W, "shape") else np.shape(W)[0]
    return Embedding(check_ids(ids, V, where))(W)
