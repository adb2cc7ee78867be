"""The embedding table's gradient, fast: the compiled scatter-add loop.

Mirrors ``numbanet.reference.tier.embedding_backward``. One route, recorded as
"scatter": ``kernels.embedding.scatter_add_rows`` over the flattened ids (serial:
two rows with the same id would race if the loop were split).
"""
from __future__ import annotations

from .kernels.embedding import embedding_backward_array
from .routes import LAST


def embedding_backward(ids, gy, V):
    """gW (V, D): zeros, then gW[ids[p]] += gy[p].   reference: numbanet.reference.tier.embedding_backward."""
    D = gy.shape[-1]
    LAST["embedding_backward"] = "scatter"
    return embedding_backward_array(ids.reshape(-1), gy.reshape(-1, D), V)   # (...) -> (M,); (..., D) -> (M, D)
