"""Tensor-level operations that layers are built from.

The elementary operators live in ``ops``; this module adds the composite or fused
operations of neural networks (a dense affine map, softmax, log-softmax) and
re-exports the image and sequence operations as they are added
(``conv2d``, ``conv2d_transpose``, ``max_pool2d``, ``upsample2d``, ``embedding``,
``simple_rnn``).
"""
from __future__ import annotations

import numpy as np

from .ops import (abs, add, cast, clip, concatenate, div, elu, exp, getitem, leaky_relu, log,  # noqa: F401
                  matmul, max, mean, mul, neg, pow, relu, reshape, sigmoid, sqrt, square, stack,
                  sub, sum, tanh, transpose)
from .ops import IN_PLACE_ACTIVATIONS
from ..fast import parallel, workspace
from ..fast.tuning import SMALL_DENSE_WORK  # below it: no scratch pool, no thread split
from .tensor import Function




FUSED_ACTIVATIONS = ("tanh", "relu", "sigmoid")   # what Linear runs inside its node (ops.IN_PLACE_ACTIVATIONS)


class Linear(Function):
    """Dense affine map on the last axis, with an optional fused activation:  y = f(x @ W + b).

    Shapes: x (..., D), W (D, U), b (U,) -> y (..., U). Leading axes are folded
    into one batch axis B for the matrix products:
        x2 = x.reshape(B, D)                      # (..., D) -> (B, D)
        gz = gy * f'(z)                            # f' from y: tanh 1 - y^2, relu [y > 0], sigmoid y(1 - y)
        gx = gz @ W^T                              # (B, U) @ (U, D) -> (B, D)
        gW = x2^T @ gz                             # (D, B) @ (B, U) -> (D, U)
        gb = sum of gz over B                      # (U,)
    One node instead of four (matmul, add, activation) keeps the tape short for
    small models: a tiny MLP's step is mostly per-node Python overhead.
    Where the batch-split threads have made BLAS single-threaded, the rows
    are split across them too (``parallel.split_for_blas``), gW as a sum of the
    halves' products. A big y comes from the scratch pool (``workspace.empty``).
    """

    def __init__(self, activation=None):
        # activation: None or one of FUSED_ACTIVATIONS -> (f in place, f' from y), or no activation
        self.f, self.df = IN_PLACE_ACTIVATIONS[activation] if activation else (None, None)

    def _finish(self, y, b):
        """y <- f(y + b), in place (b may be None)."""
        if b is not None:
            y += b
        if self.f is not None:
            self.f(y)

    def forward(self, x, W, b=None):
        self.x, self.W = x, W
        D, U = W.shape
        # one (B, D) @ (D, U) product: a 3-D x @ W would run as many small ones
        x2 = x.reshape(-1, D)                      # (..., D) -> (B, D)
        if x2.size * U < SMALL_DENSE_WORK:               # a small layer: no bookkeeping (it would cost more)
            y = x2 @ W
            self._finish(y, b)
        else:
            y = workspace.empty("linear.y", (len(x2), U), np.result_type(x2.dtype, W.dtype))
            parts = parallel.split_for_blas(len(x2), x2.size * U)

            def rows(r0, r1, _):
                np.matmul(x2[r0:r1], W, out=y[r0:r1])  # (B, D) @ (D, U) -> (B, U)
                if len(parts) > 1:
                    self._finish(y[r0:r1], b)

            parallel.run(rows, parts)
            if len(parts) == 1:                    # BLAS threaded the product; bias and f on both cores
                parallel.run_numpy(lambda r0, r1, _: self._finish(y[r0:r1], b), parallel.split_large(len(y), y.size))
        self.y = y if self.f is not None else None
        return y.reshape(x.shape[:-1] + (U,))      # (B, U) -> (..., U)

    def backward(self, gy):
        D, U = self.W.shape
        gy2 = np.ascontiguousarray(gy).reshape(-1, U)    # (..., U) -> (B, U)
        if self.df is not None:
            gy2 = gy2 * self.df(self.y)                  # gz = gy * f'(z)
        x2 = self.x.reshape(-1, D)                       # (..., D) -> (B, D)
        parts = parallel.split_for_blas(len(x2), x2.size * U)
        if len(parts) == 1:
            gx = (gy2 @ self.W.T).reshape(self.x.shape)  # (B, U) @ (U, D) -> (B, D)
            gW = x2.T @ gy2                              # (D, B) @ (B, U) -> (D, U)
        else:
            gx = np.empty(x2.shape, dtype=np.result_type(gy2.dtype, self.W.dtype))

            def rows(r0, r1, _):
                np.matmul(gy2[r0:r1], self.W.T, out=gx[r0:r1])
                return x2[r0:r1].T @ gy2[r0:r1]          # this half's share of gW
            halves = parallel.run(rows, parts)
            gW = halves[0]
            for h in halves[1:]:
                gW += h
            gx = gx.reshape(self.x.shape)
        gb = parallel.column_sums(gy2)                  # (B, U) -> (U,)
        return gx, gW, gb


def linear(x, W, b=None, activation=None):
    """y = f(x @ W + b) as one node; ``activation`` None, "tanh", "relu" or "sigmoid"."""
    if activation is not None and activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"linear: activation must be None or one of {sorted(FUSED_ACTIVATIONS)}, got {activation!r}")
    fn = Linear(activation)
    return fn(x, W) if b is None else fn(x, W, b)


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max)) along ``axis``.

    Jacobian-vector product:  gx = y * (gy - sum(gy * y, axis)).
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        z = np.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = z / z.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


def softmax(x, axis=-1):
    return Softmax(axis)(x)


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis`` (max subtracted first: no overflow).

    gx = gy - softmax(x) * sum(gy, axis).
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        return gy - np.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(x)


class Dropout(Function):
    """Inverted dropout: y = x * m / (1 - rate), m ~ Bernoulli(1 - rate).   gx = gy * m / (1 - rate)."""

    def __init__(self, rate, rng):
        self.rate, self.rng = rate, rng

    def forward(self, x):
        keep = self.rng.random(x.shape) >= self.rate
        self.scale = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, rate, rng):
    return Dropout(rate, rng)(x)


from .sequence import embedding  # noqa: E402,F401  (re-exported: the sequence operations)
from .recurrent import simple_rnn  # noqa: E402,F401

from .conv import conv2d, conv2d_transpose  # noqa: E402,F401  (re-exported: the convolutional family)
from .pooling import max_pool2d, upsample2d  # noqa: E402,F401
