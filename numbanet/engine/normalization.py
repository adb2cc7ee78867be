"""Batch normalization as differentiable functions, over every axis of x but ``axis``.

x has any rank >= 2 with C channels on ``axis`` (Dense outputs (N, C), conv maps (N, H, W, C),
or another axis); the statistics of channel c are taken over all the other axes, M values.

Training mode, ``batch_norm``: the batch's own statistics, differentiated through::

    mean = (1/M) sum x,   var = (1/M) sum (x - mean)^2          (C,)   biased, as Keras
    y    = gamma (x - mean) / sqrt(var + eps) + beta             x's shape
    gx   = (gamma / (M sigma)) (M gy - sum gy - xhat sum(gy xhat)),  sigma = sqrt(var + eps)
    ggamma = sum gy xhat,   gbeta = sum gy                       (C,)

The arrays are computed by the active tier (``tiers.current.batch_norm_forward`` /
``batch_norm_backward``) on x folded to (M, C): the reference tier derives gx step by step
through mean, var, xhat, y; the fast tier runs the closed form above in Numba kernels.

Inference mode, ``batch_normalization``: given statistics (the moving ones), a plain affine
map per channel, composed of elementary ops, whose gradients the engine already knows::

    y = (x - mean) * (gamma / sqrt(var + eps)) + beta
"""
from __future__ import annotations

import numpy as np

from . import tiers
from .ops import reshape, sqrt
from .tensor import Function, Tensor


def fold(x, axis):
    """x with channels on ``axis`` -> (M, C), channels last; a view when ``axis`` is the last one."""
    if axis != x.ndim - 1:
        x = np.moveaxis(x, axis, -1)            # (..., C, ...) -> (..., C)
    return x.reshape(-1, x.shape[-1])           # (..., C) -> (M, C)


def unfold(y2, shape, axis):
    """The inverse of ``fold``: y2 (M, C) -> x's ``shape``, channels back on ``axis``."""
    if axis == len(shape) - 1:
        return y2.reshape(shape)                # (M, C) -> (..., C)
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    return np.ascontiguousarray(np.moveaxis(y2.reshape(moved), -1, axis))   # (..., C) -> (..., C, ...)


class BatchNorm(Function):
    """Training-mode batch normalization (module docstring); inputs x, then gamma and beta if present.

    Shapes: x (..., C, ...) with C on ``axis`` (non-negative here), gamma (C,), beta (C,) ->
    y of x's shape. The forward keeps ``mean`` and ``var`` (C,), the batch's statistics, for
    the backward and for the layer's moving averages.
    """

    def __init__(self, axis, epsilon, has_gamma, has_beta):
        self.axis, self.epsilon = axis, epsilon
        self.has_gamma, self.has_beta = has_gamma, has_beta

    def forward(self, x, *params):
        gamma = params[0] if self.has_gamma else None
        beta = params[-1] if self.has_beta else None
        self.x2, self.gamma, self.shape = fold(x, self.axis), gamma, x.shape     # (M, C)
        y2, self.mean, self.var = tiers.current.batch_norm_forward(self.x2, gamma, beta, self.epsilon)
        return unfold(y2, x.shape, self.axis)

    def backward(self, gy):
        x = self.inputs[0]
        need_gx = x is not None and x.requires_grad
        gx2, ggamma, gbeta = tiers.current.batch_norm_backward(
            fold(gy, self.axis), self.x2, self.mean, self.var, self.gamma, self.epsilon, need_gx)
        gx = None if gx2 is None else unfold(gx2, self.shape, self.axis)
        return (gx,) + ((ggamma,) if self.has_gamma else ()) + ((gbeta,) if self.has_beta else ())


def _channel_axis(x, axis, owner):
    """``axis`` of x as a non-negative int naming a channel axis (not the batch axis), or the error."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{owner}: axis must be an integer, got {axis!r}")
    if x.ndim < 2 or not -x.ndim < axis < x.ndim or axis % x.ndim == 0:
        raise ValueError(f"{owner}: axis {axis} must name a non-batch axis of the input, between 1 and "
                         f"{x.ndim - 1} (or -1 to {-(x.ndim - 1)}), got input of shape {tuple(x.shape)}")
    return int(axis) % x.ndim


def _check_param(p, name, C, x, owner):
    if p is not None and tuple(p.shape) != (C,):
        raise ValueError(f"{owner}: {name} must have shape ({C},), one value per channel of the input "
                         f"{tuple(x.shape)} on its axis, got shape {tuple(p.shape)}")


def batch_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    """Training-mode batch normalization of x over every axis but ``axis``: (y, mean, var).

    x Tensor (..., C, ...), gamma and beta Tensors (C,) or None (scale 1, offset 0) -> y
    Tensor of x's shape; mean and var ndarrays (C,), the batch's statistics (var biased).
    """
    axis = _channel_axis(x, axis, "batch_norm")
    C = x.shape[axis]
    _check_param(gamma, "gamma", C, x, "batch_norm")
    _check_param(beta, "beta", C, x, "batch_norm")
    fn = BatchNorm(axis, float(epsilon), gamma is not None, beta is not None)
    y = fn(x, *[p for p in (gamma, beta) if p is not None])
    return y, fn.mean, fn.var


def batch_normalization(x, mean, variance, axis=-1, offset=None, scale=None, epsilon=1e-3):
    """y = (x - mean) * (scale / sqrt(variance + epsilon)) + offset, per channel on ``axis``
    (Keras's ``ops.batch_normalization``: given statistics, e.g. the moving ones at inference).

    x Tensor (..., C, ...); mean, variance, offset, scale Tensors (C,) (offset, scale may be
    None) -> y of x's shape. Built from elementary ops: its gradient is theirs.
    """
    axis = _channel_axis(x, axis, "batch_normalization")
    C = x.shape[axis]
    for name, p in (("mean", mean), ("variance", variance), ("offset", offset), ("scale", scale)):
        _check_param(p, name, C, x, "batch_normalization")
    per_channel = (C,) + (1,) * (x.ndim - 1 - axis)    # (C,) -> (C, 1, ..., 1): broadcasts along axis

    def along(p):
        p = p if isinstance(p, Tensor) else Tensor(np.asarray(p, dtype=x.dtype))
        return p if axis == x.ndim - 1 else reshape(p, per_channel)

    factor = 1 / sqrt(along(variance) + epsilon)                 # 1 / sigma
    if scale is not None:
        factor = factor * along(scale)                           # gamma / sigma
    y = (x - along(mean)) * factor
    return y if offset is None else y + along(offset)
