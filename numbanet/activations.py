"""Activation functions by name, as Tensor -> Tensor functions.

  linear      y = x
  sigmoid     y = 1 / (1 + exp(-x))                  y' = y (1 - y)
  tanh        y = tanh(x)                            y' = 1 - y^2
  relu        y = max(x, 0)                          y' = [x > 0]
  leaky_relu  y = x if x > 0 else 0.2 x              (Keras 3's default slope)
  elu         y = x if x > 0 else exp(x) - 1         y' = 1 if x > 0 else y + 1
  softmax     y_i = exp(x_i) / sum_j exp(x_j) over the last axis
  softplus, softsign, selu, gelu, swish (= silu), hard_sigmoid, exponential:
              see ``engine/activations_more.py`` for each formula and its derivative
              (gelu: the exact erf form by default, ``gelu(x, approximate=True)`` the tanh one)
"""
from __future__ import annotations

from .engine import functional as F
from .engine import activations_more as M
from . import keras_names


def linear(x):
    return x


def softmax(x, axis=-1):
    return F.softmax(x, axis)


def leaky_relu(x, negative_slope=0.2):
    return F.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    return F.elu(x, alpha)


def gelu(x, approximate=False):
    return M.gelu(x, approximate)


sigmoid, tanh, relu = F.sigmoid, F.tanh, F.relu
softplus, softsign, selu, swish, hard_sigmoid, exponential = (M.softplus, M.softsign, M.selu, M.swish,
                                                              M.hard_sigmoid, M.exponential)
silu = swish

_BY_NAME = {"linear": linear, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
            "leaky_relu": leaky_relu, "elu": elu, "softmax": softmax,
            "softplus": softplus, "softsign": softsign, "selu": selu, "gelu": gelu, "swish": swish,
            "silu": silu, "hard_sigmoid": hard_sigmoid, "exponential": exponential}


def get(identifier):
    """The activation function for a name, ``None`` (linear) or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return keras_names.lookup("activation", identifier, _BY_NAME)
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name or a callable, got {identifier!r}")


def name_of(fn) -> str:
    for name, f in _BY_NAME.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", repr(fn))
