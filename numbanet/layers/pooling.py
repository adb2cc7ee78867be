"""Weightless image layers: MaxPooling2D and UpSampling2D (channels-last, Keras 3 semantics)."""
from __future__ import annotations

from ..engine import functional as F
from ..engine.conv_shapes import check_padding, conv_output_size, pair
from .base import Layer, fmt_shape


def _check_rank4(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(f"{layer.name}: expected a 4-D input (batch, height, width, channels), "
                         f"got shape {fmt_shape(input_shape)}")
    if any(d is not None and d <= 0 for d in input_shape[1:]):
        raise ValueError(f"{layer.name}: every image dimension must be positive, got {fmt_shape(input_shape)}")


class MaxPooling2D(Layer):
    """Maximum over each pool_size window, moved by strides.

    Shape: input (N, H, W, C) -> output (N, OH, OW, C), per axis "valid":
    OH = floor((H - KH) / SH) + 1 (H >= KH required), "same": OH = ceil(H / SH),
    the padded cells never win (they act as -inf). ``strides=None`` means pool_size.
    Gradient: each output's gradient goes to the first maximum of its window (row-major).
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size", self.name)
        self.strides = self.pool_size if strides is None else pair(strides, "strides", self.name)
        self.padding = check_padding(padding, self.name)

    def validate_input_shape(self, input_shape):
        _check_rank4(self, input_shape)
        self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        return F.max_pool2d(x, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        N, H, W, C = input_shape
        out_hw = [conv_output_size(n, k, s, self.padding) for n, k, s in
                  zip((H, W), self.pool_size, self.strides)]
        if any(o is not None and o <= 0 for o in out_hw):
            raise ValueError(f"{self.name}: pool_size {self.pool_size} is larger than the input "
                             f"{fmt_shape(input_shape)} with padding {self.padding!r}")
        return (N, *out_hw, C)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class UpSampling2D(Layer):
    """Upsample rows and columns by integer factors ``size``.

    Shape: input (N, H, W, C) -> output (N, H*SH, W*SW, C).
    "nearest" repeats each pixel into an SH x SW block (gradient: block sums);
    "bilinear" interpolates with half-pixel centres, src = (i + 0.5)/S - 0.5, clamped
    at the edges, no antialiasing (TensorFlow's resize).
    """

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = pair(size, "size", self.name)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{self.name}: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.interpolation = interpolation

    def validate_input_shape(self, input_shape):
        _check_rank4(self, input_shape)

    def call(self, x, training=False):
        return F.upsample2d(x, self.size, self.interpolation)

    def compute_output_shape(self, input_shape):
        N, H, W, C = input_shape
        return (N, None if H is None else H * self.size[0], None if W is None else W * self.size[1], C)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


class AveragePooling2D(MaxPooling2D):
    """Mean over each pool_size window, moved by strides.

    Shape: as MaxPooling2D, input (N, H, W, C) -> output (N, OH, OW, C), "valid":
    OH = floor((H - KH) / SH) + 1, "same": OH = ceil(H / SH). Under "same" the
    padded cells are not counted: a border window is the mean of its real cells
    only (TensorFlow's avg_pool). Gradient: each output's gradient shared equally
    among its window's real cells.
    """

    def call(self, x, training=False):
        return F.avg_pool2d(x, self.pool_size, self.strides, self.padding)


# ------------------------------------------------------------------ 1-D pooling
from ..engine.conv1d import check_padding_1d, conv1d_output_size, single  # noqa: E402


class MaxPooling1D(Layer):
    """Maximum over each window of pool_size steps, moved by strides.

    Shape: input (N, T, C) -> output (N, OT, C), "valid": OT = floor((T - K) / S) + 1
    (T >= K required), "same": OT = ceil(T / S), padded steps never win.
    ``strides=None`` means pool_size. Computed as MaxPooling2D on 1 x T images.
    As in Keras, the layer does not pass a padding mask on.
    """

    _pool = staticmethod(F.max_pool1d)

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = (single(pool_size, "pool_size", self.name),)
        self.strides = self.pool_size if strides is None else (single(strides, "strides", self.name),)
        self.padding = check_padding_1d(padding, self.name, ("valid", "same"))

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected a 3-D input (batch, steps, channels), "
                             f"got shape {fmt_shape(input_shape)}")
        if any(d is not None and d <= 0 for d in input_shape[1:]):
            raise ValueError(f"{self.name}: every dimension must be positive, got {fmt_shape(input_shape)}")
        self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        return self._pool(x, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        N, T, C = input_shape
        OT = conv1d_output_size(T, self.pool_size[0], self.strides[0], self.padding)
        if OT is not None and OT <= 0:
            raise ValueError(f"{self.name}: pool_size {self.pool_size} is larger than the input "
                             f"{fmt_shape(input_shape)} with padding {self.padding!r}")
        return (N, OT, C)

    def compute_mask(self, inputs, mask=None):
        """None: pooling windows mix padded and real steps, so no mask goes on (as in Keras)."""
        return None

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class AveragePooling1D(MaxPooling1D):
    """Mean over each window of pool_size steps, moved by strides.

    Shape: as MaxPooling1D, input (N, T, C) -> output (N, OT, C). Under "same" the
    padded steps are not counted in a window's mean (TensorFlow's avg_pool).
    Computed as AveragePooling2D on 1 x T images.
    """

    _pool = staticmethod(F.avg_pool1d)


# Keras's short names for the same classes
MaxPool1D, AvgPool1D, AvgPool2D = MaxPooling1D, AveragePooling1D, AveragePooling2D
