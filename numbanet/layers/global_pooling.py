"""Global poolings: one maximum or mean per channel over all steps or pixels (Keras 3 semantics).

They are reductions over the axes between batch and channels, computed by the
engine's reduction ops (``engine/global_pooling.py``): no weights, no tier function.
"""
from __future__ import annotations

from ..engine import functional as F
from .base import Layer, fmt_shape


class _GlobalPooling(Layer):
    """What the four share: ``keepdims``, the rank check, the output shape, the config."""

    rank = 3   # 3 for sequences (N, T, C), 4 for images (N, H, W, C)

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(keepdims, bool):
            raise TypeError(f"{self.name}: keepdims must be True or False, got {keepdims!r}")
        self.keepdims = keepdims

    def validate_input_shape(self, input_shape):
        if len(input_shape) != self.rank:
            what = "(batch, steps, channels)" if self.rank == 3 else "(batch, height, width, channels)"
            raise ValueError(f"{self.name}: expected a {self.rank}-D input {what}, "
                             f"got shape {fmt_shape(input_shape)}")
        if any(d is not None and d <= 0 for d in input_shape[1:]):
            raise ValueError(f"{self.name}: every dimension must be positive, got {fmt_shape(input_shape)}")

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0],) + (1,) * (self.rank - 2) + (input_shape[-1],)
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        """None: the steps are pooled away, and their mask with them."""
        return None

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalMaxPooling1D(_GlobalPooling):
    """y[n, c] = max over t of x[n, t, c].

    Shape: input (N, T, C) -> output (N, C), or (N, 1, C) with ``keepdims=True``.
    Gradient: gy goes to the maximal step (shared equally between tied maxima, as
    TensorFlow's reduce_max). A padding mask is ignored, as in Keras.
    """

    def call(self, x, training=False):
        return F.global_max_pool1d(x, self.keepdims)


class GlobalAveragePooling1D(_GlobalPooling):
    """y[n, c] = mean over t of x[n, t, c]; with a padding mask, over the real steps only.

    Shape: input (N, T, C) -> output (N, C), or (N, 1, C) with ``keepdims=True``.
    With a mask m (N, T) (from ``Embedding(mask_zero=True)`` or passed as
    ``mask=``): y[n, c] = sum_t m[n, t] x[n, t, c] / sum_t m[n, t], as Keras computes it,
    except that a row with no real step gives 0 where Keras gives NaN (0 / 0).
    """

    def call(self, x, training=False, mask=None):
        return F.global_avg_pool1d(x, self.keepdims, mask)


class GlobalMaxPooling2D(_GlobalPooling):
    """y[n, c] = max over (h, w) of x[n, h, w, c].

    Shape: input (N, H, W, C) -> output (N, C), or (N, 1, 1, C) with ``keepdims=True``.
    """

    rank = 4

    def call(self, x, training=False):
        return F.global_max_pool2d(x, self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling):
    """y[n, c] = mean over (h, w) of x[n, h, w, c].

    Shape: input (N, H, W, C) -> output (N, C), or (N, 1, 1, C) with ``keepdims=True``.
    """

    rank = 4

    def call(self, x, training=False):
        return F.global_avg_pool2d(x, self.keepdims)


# Keras's short names for the same classes
GlobalMaxPool1D, GlobalAvgPool1D = GlobalMaxPooling1D, GlobalAveragePooling1D
GlobalMaxPool2D, GlobalAvgPool2D = GlobalMaxPooling2D, GlobalAveragePooling2D
