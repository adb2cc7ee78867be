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
from . import activations_more as _more
from . import tiers
from .tensor import Function

FUSED_ACTIVATIONS = ("tanh", "relu", "sigmoid")   # what both tiers' dense_forward runs inside the node


class Linear(Function):
    """Dense affine map on the last axis, with an optional activation in the same node:  y = f(x @ W + b).

    Shapes: x (..., D), W (D, U), b (U,) or None -> y (..., U); f one of
    FUSED_ACTIVATIONS or None. Leading axes are folded into one batch axis B:
        x2 = x.reshape(B, D)                       # (..., D) -> (B, D)
        y  = f(x2 @ W + b)                         # (B, U) -> (..., U)
        gz = gy * f'(z)                            # f' from y: tanh 1 - y^2, relu [y > 0], sigmoid y(1 - y)
        gx = gz @ W^T                              # (B, U) @ (U, D) -> (B, D), only if x wants it
        gW = x2^T @ gz                             # (D, B) @ (B, U) -> (D, U)
        gb = sum of gz over B                      # (U,), only with a bias
    One node instead of three (matmul, add, activation) keeps the tape short for
    small models, whose step is mostly per-node Python overhead. The arrays are
    computed by the active tier's ``dense_forward`` / ``dense_backward``.
    """

    fresh_gradients = True                         # gx, gW, gb: new products and sums (both tiers)

    def __init__(self, activation=None):
        self.activation = activation               # None or one of FUSED_ACTIVATIONS

    def forward(self, x, W, b=None):
        self.x, self.W = x, W
        flat = x.ndim != 2                                       # (..., D) -> (B, D) and back
        y = tiers.current.dense_forward(x.reshape(-1, W.shape[0]) if flat else x, W, b, self.activation)
        self.y = y if self.activation is not None else None    # f' is read from y
        return y.reshape(x.shape[:-1] + (W.shape[1],)) if flat else y

    def backward(self, gy):
        x, W = self.inputs[0], self.W
        flat = self.x.ndim != 2
        gy = np.ascontiguousarray(gy)
        gx, gW, gb = tiers.current.dense_backward(gy.reshape(-1, W.shape[1]) if flat else gy,      # (B, U)
                                                   self.x.reshape(-1, W.shape[0]) if flat else self.x, W,
                                                   self.y, self.activation,
                                                   x is not None and x.requires_grad, len(self.inputs) == 3)
        return (gx.reshape(self.x.shape) if flat and gx is not None else gx), gW, gb


# activations that run as their own node after the affine map (dense_forward does not fuse them)
_SEPARATE = {"linear": None, "softmax": lambda y: softmax(y), "elu": elu, "leaky_relu": leaky_relu}
_SEPARATE.update({name: getattr(_more, name) for name in _more.NAMES})


def linear(x, W, b=None, activation=None):
    """y = f(x @ W + b):  x (..., D), W (D, U), b (U,) or None -> y (..., U).

    ``activation``: None, a name, or a Tensor -> Tensor callable. "tanh", "relu" and
    "sigmoid" run inside the Linear node (FUSED_ACTIVATIONS); "linear" is none;
    "softmax", "elu", "leaky_relu" (their default parameters) and a callable run as
    their own node on the Linear node's output.
    """
    after = None
    if activation is not None and activation not in FUSED_ACTIVATIONS:
        if callable(activation):
            after = activation
        elif activation in _SEPARATE:
            after = _SEPARATE[activation]
        else:
            raise ValueError(f"linear: activation must be None, a callable or one of "
                             f"{sorted(FUSED_ACTIVATIONS + tuple(_SEPARATE))}, got {activation!r}")
        activation = None
    fn = Linear(activation)
    y = fn(x, W) if b is None else fn(x, W, b)
    return y if after is None else after(y)


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
from .unfold import col2im, im2col  # noqa: E402,F401  (convolution's unfolding, on its own)
from .gru import gru  # noqa: E402,F401
from .lstm import lstm  # noqa: E402,F401
from .pooling import avg_pool2d  # noqa: E402,F401
from .conv1d import conv1d  # noqa: E402,F401  (1-D convolution and pooling: the 2-D ones on 1 x T images)
from .pooling1d import avg_pool1d, max_pool1d  # noqa: E402,F401
from .global_pooling import (global_avg_pool1d, global_avg_pool2d, global_max_pool1d,  # noqa: E402,F401
                             global_max_pool2d)
from .normalization import batch_norm, batch_normalization  # noqa: E402,F401  (re-exported: normalization)
from .winograd import conv2d_winograd  # noqa: E402,F401  (a 3x3 convolution by Winograd's minimal filtering)
from .conv_pool import conv2d_relu_maxpool  # noqa: E402,F401  (Conv2D(relu) -> MaxPooling2D as one node)
