"""Global poolings: one maximum or one mean per channel over all steps (or all pixels).

They are reductions, so the engine's ``max``, ``sum`` and ``mean`` ops compute
them and their gradients; no tier function is needed::

    global max,  x (N, T, C) or (N, H, W, C) -> y (N, C):  y[n, c] = max over the steps / pixels
                 gx = gy at the maximum (ties share it equally, as TensorFlow's reduce_max)
    global mean, y[n, c] = sum over the steps / pixels / their number,  gx = gy / that number

With a padding mask m (N, T) (1 = real step), the 1-D mean counts real steps only::

    y[n, c] = sum_t m[n, t] x[n, t, c] / sum_t m[n, t],   gx[n, t, c] = m[n, t] gy[n, c] / sum_t m[n, t]

A row with no real step gives 0 (its gradient is 0); Keras divides 0 by 0 there and gives NaN.
``keepdims=True`` keeps the reduced axes with size 1.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .tensor import as_tensor


def _check_rank(x, rank, owner):
    x = as_tensor(x)
    if x.ndim != rank:
        what = "(batch, steps, channels)" if rank == 3 else "(batch, height, width, channels)"
        raise ValueError(f"{owner}: expected a {rank}-D input {what}, got shape {tuple(x.shape)}")
    if any(d == 0 for d in x.shape[1:-1]):
        raise ValueError(f"{owner}: cannot pool over an empty axis, input shape {tuple(x.shape)}")
    return x


def global_max_pool(x, rank, keepdims=False, owner="global_max_pool"):
    """y (N, C) = the maximum over every axis between the batch and the channels of a ``rank``-D ``x``."""
    x = _check_rank(x, rank, owner)
    return ops.max(x, axis=tuple(range(1, rank - 1)), keepdims=keepdims)


def global_avg_pool(x, rank, keepdims=False, mask=None, owner="global_avg_pool"):
    """y (N, C) = the mean over every axis between batch and channels; ``mask`` (N, T) for rank 3 only."""
    x = _check_rank(x, rank, owner)
    axes = tuple(range(1, rank - 1))
    if mask is None:
        return ops.mean(x, axis=axes, keepdims=keepdims)
    mask = np.asarray(mask)
    if rank != 3 or mask.shape != x.shape[:2]:
        raise ValueError(f"{owner}: mask must have the shape (batch, steps) = {tuple(x.shape[:2])} "
                         f"of the input {tuple(x.shape)}, got {mask.shape}")
    m = mask.astype(x.dtype)[:, :, None]                                 # (N, T) -> (N, T, 1)
    count = np.maximum(m.sum(axis=1, keepdims=keepdims), 1)              # (N, 1) or (N, 1, 1): real steps
    return ops.sum(x * m, axis=1, keepdims=keepdims) * (1 / count).astype(x.dtype)


def global_max_pool1d(x, keepdims=False):
    """x (N, T, C) -> (N, C): the maximum over the steps."""
    return global_max_pool(x, 3, keepdims, "global_max_pool1d")


def global_max_pool2d(x, keepdims=False):
    """x (N, H, W, C) -> (N, C): the maximum over the pixels."""
    return global_max_pool(x, 4, keepdims, "global_max_pool2d")


def global_avg_pool1d(x, keepdims=False, mask=None):
    """x (N, T, C) -> (N, C): the mean over the steps (the real ones only, given ``mask`` (N, T))."""
    return global_avg_pool(x, 3, keepdims, mask, "global_avg_pool1d")


def global_avg_pool2d(x, keepdims=False):
    """x (N, H, W, C) -> (N, C): the mean over the pixels."""
    return global_avg_pool(x, 4, keepdims, None, "global_avg_pool2d")
