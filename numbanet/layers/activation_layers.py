"""Activation layers with arguments: LeakyReLU, ReLU, Softmax (Keras 3's names, defaults and checks).

Each has no weights and keeps the input's shape; ``Activation(name)`` covers the
activations without arguments.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..engine import Tensor
from ..engine import functional as F
from ..engine.activations_more import relu_family
from .base import Layer, fmt_shape

_LARGE_NEGATIVE = -1e9     # what a masked logit becomes before the softmax (Keras's value for float32/64)


def _non_negative(owner, arg, value, allow_none=False):
    """``value`` as a float if it is a number >= 0 (or None when ``allow_none``), else the error."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {arg} must be a number >= 0{' or None' if allow_none else ''}, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{owner}: {arg} must be >= 0, got {value!r}")
    return float(value)


class _Elementwise(Layer):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class LeakyReLU(_Elementwise):
    """y = x for x >= 0, negative_slope * x otherwise; gx = gy * (1 or negative_slope).

    Keras 3's layer default slope is 0.3 (the ``leaky_relu`` activation's is 0.2).
    ``alpha=`` (Keras 2's name) is accepted with a DeprecationWarning, as Keras does.
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("LeakyReLU: the argument alpha is deprecated; use negative_slope", DeprecationWarning,
                          stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(self.name, "negative_slope", negative_slope)

    def call(self, x, training=False):
        return F.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ReLU(_Elementwise):
    """Keras's general rectifier, threshold th, slope a, cap m (``engine.activations_more.ReLUFamily``):

        y = min(x, m)        for x > th         (m = max_value; None: no cap)
        y = a (x - th)       for x <= th        (a = negative_slope)

    gx = gy for th < x < m, a * gy for x <= th, 0 for x >= m. All three arguments must be >= 0.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _non_negative(self.name, "max_value", max_value, allow_none=True)
        self.negative_slope = _non_negative(self.name, "negative_slope", negative_slope)
        self.threshold = _non_negative(self.name, "threshold", threshold)

    def call(self, x, training=False):
        if self.max_value is None and self.negative_slope == 0 and self.threshold == 0:
            return F.relu(x)
        return relu_family(x, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class Softmax(_Elementwise):
    """y = exp(x - max) / sum exp(x - max) along ``axis`` (an int, or a tuple of ints: jointly).

    ``mask=`` on call (bool, or numbers > 0.5 kept; broadcastable to x, no more axes):
    masked logits become -1e9 before the softmax and masked outputs 0 after, as Keras,
    so a fully masked row is all zeros. Jacobian-vector product:
    gx = y * (gy - sum(gy * y, axis)), times the mask.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
            raise TypeError(f"{self.name}: axis must be an integer or a tuple of integers, got {axis!r}")
        self.axis = tuple(int(a) for a in axes) if isinstance(axis, (tuple, list)) else int(axis)

    def validate_input_shape(self, input_shape):
        for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,)):
            if not -len(input_shape) <= a < len(input_shape):
                raise ValueError(f"{self.name}: axis {a} is out of range for the input of shape "
                                 f"{fmt_shape(input_shape)} (rank {len(input_shape)}); use -1 for the last axis")

    def call(self, x, mask=None, training=False):
        if x.size == 0:
            return x
        if mask is None:
            return F.softmax(x, self.axis)
        keep = self._mask(mask, x.shape)
        masked = x * keep + (1 - keep) * _LARGE_NEGATIVE           # x where kept, -1e9 elsewhere
        return F.softmax(masked, self.axis) * keep

    def _mask(self, mask, shape):
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if m.ndim > len(shape) or any(a != 1 and a != b for a, b in zip(m.shape[::-1], shape[::-1])):
            raise ValueError(f"{self.name}: the mask must be broadcastable to the input: each of its axes 1 or "
                             f"equal to the input's, and no more axes; got mask shape {m.shape} for input "
                             f"shape {tuple(shape)}")
        keep = m if m.dtype == bool else m > 0.5
        return np.broadcast_to(keep, shape).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
