"""Activations, their derivatives, softmax and log-softmax.

Elementwise, y = f(x) of any shape, and the derivative f' that the backward
multiplies in (gx = gy * f'). Where f' is a function of the output y alone, it is
written that way, so a layer need not keep x:

  linear      y = x                                   f' = 1
  sigmoid     y = 1 / (1 + exp(-x))                   f' = y (1 - y)
  tanh        y = tanh(x)                             f' = 1 - y^2
  relu        y = max(x, 0)                           f' = [y > 0]
  hard_sigmoid y = clip(x / 6 + 1/2, 0, 1)            f' = 1/6 where 0 < y < 1, else 0   (Keras 3: relu6(x + 3) / 6)
  leaky_relu  y = x if x > 0 else alpha x             f' = 1 if x > 0 else alpha     (alpha 0.2, Keras 3)
  elu         y = x if x > 0 else alpha (e^x - 1)     f' = 1 if x > 0 else y + alpha

Softmax and log-softmax act along an axis; their backward passes are
Jacobian-vector products (with S = sum over the axis):

  softmax      y = exp(x - max) / S(exp(x - max))     gx = y (gy - S(gy y))
  log_softmax  y = x - max - log S(exp(x - max))      gx = gy - exp(y) S(gy)

fast tier: numbanet.fast.activations (the sigmoid, into pooled arrays),
numbanet.engine.ops (Tanh, ReLU, LeakyReLU, ELU and the in-place
``IN_PLACE_ACTIVATIONS`` used by fused nodes) and numbanet.engine.functional
(Softmax, LogSoftmax).
"""
from __future__ import annotations

import numpy as np


def linear(x):
    return x


def d_linear(y):
    return np.ones_like(y)


def sigmoid(x):
    """For x < -88 (float32) exp(-x) overflows to inf and 1 / (1 + inf) = 0, the right answer."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def d_sigmoid(y):
    return y * (1 - y)


def tanh(x):
    return np.tanh(x)


def d_tanh(y):
    return 1 - y * y


def relu(x):
    return np.maximum(x, 0)


def d_relu(y):
    return (y > 0).astype(y.dtype)


def hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)


def d_hard_sigmoid(y):
    return ((y > 0) & (y < 1)).astype(y.dtype) / 6


# name -> (f, f' from the output y): the activations a recurrent cell can use
FROM_OUTPUT = {"linear": (linear, d_linear), "sigmoid": (sigmoid, d_sigmoid),
               "tanh": (tanh, d_tanh), "relu": (relu, d_relu),
               "hard_sigmoid": (hard_sigmoid, d_hard_sigmoid)}


def leaky_relu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


def d_leaky_relu(x, alpha=0.2):
    return np.where(x > 0, 1, alpha).astype(x.dtype)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def d_elu(x, y, alpha=1.0):
    return np.where(x > 0, 1, y + alpha).astype(x.dtype)


def softmax(x, axis=-1):
    """Subtracting the maximum first keeps exp from overflowing (the result is unchanged)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(gy, y, axis=-1):
    return y * (gy - (gy * y).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(gy, y, axis=-1):
    return gy - np.exp(y) * gy.sum(axis=axis, keepdims=True)
