"""1-D max and average pooling as the 2-D ones on images one row high.

Notation: x (N, T, C), window K, stride S, y (N, OT, C), per axis "valid"
OT = floor((T - K) / S) + 1 (T >= K), "same" OT = ceil(T / S) with TensorFlow's
padding split (the extra cell at the end)::

    max:      y[n, t, c] = max of the window's real cells   (padding is -inf)
    average:  y[n, t, c] = mean of the window's real cells  (padding is not counted)

A sequence is a 1 x T image, so ``max_pool2d`` / ``avg_pool2d`` with window
(1, K) and strides (1, S) compute them in both tiers::

    x (N, T, C) -> (N, 1, T, C) -> pool2d -> (N, 1, OT, C) -> (N, OT, C)
"""
from __future__ import annotations

from . import ops
from .conv1d import check_padding_1d, single
from .pooling import avg_pool2d, max_pool2d
from .tensor import as_tensor


def _pool1d(pool2d, x, pool_size, strides, padding, owner):
    K = single(pool_size, "pool_size", owner)
    S = K if strides is None else single(strides, "strides", owner)
    padding = check_padding_1d(padding, owner, ("valid", "same"))
    x = as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"{owner}: expected a 3-D input (batch, steps, channels), got shape {tuple(x.shape)}")
    N, T, C = x.shape
    if padding == "valid" and T < K:
        raise ValueError(f"{owner}: pool_size {K} is larger than the input length {T} with padding 'valid' "
                         f"(input shape {tuple(x.shape)})")
    y = pool2d(ops.reshape(x, (N, 1, T, C)), (1, K), (1, S), padding)    # (N, T, C) -> (N, 1, T, C) -> (N, 1, OT, C)
    return ops.reshape(y, (N, y.shape[2], C))                               # -> (N, OT, C)


def max_pool1d(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling of ``x`` (N, T, C) over windows of ``pool_size`` steps; ``strides`` default to ``pool_size``."""
    return _pool1d(max_pool2d, x, pool_size, strides, padding, "max_pool1d")


def avg_pool1d(x, pool_size=2, strides=None, padding="valid"):
    """Average pooling of ``x`` (N, T, C); padded steps are not counted in a window's mean."""
    return _pool1d(avg_pool2d, x, pool_size, strides, padding, "avg_pool1d")
