"""Convolution layers: Conv2D and Conv2DTranspose (channels-last, Keras 3 semantics)."""
from __future__ import annotations

from .. import activations
from ..engine import functional as F
from ..engine.conv_shapes import (check_padding, conv_output_size, pair, transpose_output_size)
from .base import Layer, fmt_shape, positive_int


class _Conv(Layer):
    """What Conv2D and Conv2DTranspose share: arguments, input checks, build, config.

    ``_kernel_shape(C)`` gives the kernel layout and ``_in_axis`` which kernel
    axis holds the input channels. ``kernel_regularizer=``, ``bias_regularizer=``,
    ``activity_regularizer=``: penalties in ``losses`` (``numbanet.regularizers``).
    """

    _in_axis = 2
    regularized_weights = {"kernel": "kernel_regularizer", "bias": "bias_regularizer"}

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(self.name, "filters", filters)
        self.kernel_size = pair(kernel_size, "kernel_size", self.name)
        self.strides = pair(strides, "strides", self.name)
        self.padding = check_padding(padding, self.name)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expected a 4-D input (batch, height, width, channels), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the channel axis must be known, got {fmt_shape(input_shape)}")
        if any(d is not None and d <= 0 for d in input_shape[1:]):
            raise ValueError(f"{self.name}: every image dimension must be positive, got {fmt_shape(input_shape)}")
        if self.built and input_shape[-1] != self.kernel.shape[self._in_axis]:
            raise ValueError(f"{self.name}: expected {self.kernel.shape[self._in_axis]} input channels "
                             f"(kernel {self.kernel.shape}), got input of shape {fmt_shape(input_shape)}")
        self.compute_output_shape(input_shape)  # raises on sizes Keras rejects

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", self._kernel_shape(input_shape[-1]), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None

    def _check_sizes(self, input_shape, out_hw):
        if any(o is not None and o <= 0 for o in out_hw):
            raise ValueError(f"{self.name}: computed output size {tuple(out_hw)} would be zero or negative "
                             f"for input {fmt_shape(input_shape)}, kernel_size {self.kernel_size}, "
                             f"strides {self.strides}, padding {self.padding!r}")

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "activation": activations.name_of(self.activation), "use_bias": self.use_bias}


class Conv2D(_Conv):
    """2-D convolution:  y = act(conv(x, kernel) + bias).

    Shape: input (N, H, W, C) -> output (N, OH, OW, filters) with, per axis,
    "valid": OH = floor((H - KH) / SH) + 1 (H >= KH required); "same": OH = ceil(H / SH),
    zero padding total = max((OH-1)*SH + KH - H, 0), top = total // 2, the rest below.
    Attributes: kernel (KH, KW, C, filters) from ``kernel_initializer`` (glorot_uniform),
    bias (filters,) from ``bias_initializer`` (zeros).
    """

    def _kernel_shape(self, C):
        return self.kernel_size + (C, self.filters)

    def call(self, x, training=False):
        return F.conv2d(x, self.kernel, self.bias, self.strides, self.padding, activation=self.activation)

    def compute_output_shape(self, input_shape):
        N, H, W, _ = input_shape
        out_hw = [conv_output_size(n, k, s, self.padding) for n, k, s in
                  zip((H, W), self.kernel_size, self.strides)]
        self._check_sizes(input_shape, out_hw)
        return (N, *out_hw, self.filters)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the input-gradient of a convolution, run forwards).

    Shape: input (N, H, W, C) -> output (N, OH, OW, filters), per axis:
    output_padding None: "valid" OH = H*SH + max(KH - SH, 0), "same" OH = H*SH;
    output_padding op (< SH): OH = (H - 1)*SH + KH - 2*pad + op, pad = KH//2 ("same") or 0.
    Attributes: kernel (KH, KW, filters, C) from ``kernel_initializer`` (glorot_uniform),
    bias (filters,) from ``bias_initializer`` (zeros).
    """

    _in_axis = 3

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, **kwargs)
        if output_padding is not None:
            output_padding = pair(output_padding, "output_padding", self.name, minimum=0)
            if output_padding[0] >= self.strides[0] or output_padding[1] >= self.strides[1]:
                raise ValueError(f"{self.name}: output_padding {output_padding} must be strictly less "
                                 f"than strides {self.strides} in every dimension")
        self.output_padding = output_padding

    def _kernel_shape(self, C):
        return self.kernel_size + (self.filters, C)

    def call(self, x, training=False):
        return F.conv2d_transpose(x, self.kernel, self.bias, self.strides, self.padding, self.output_padding,
                                  activation=self.activation)

    def compute_output_shape(self, input_shape):
        N, H, W, _ = input_shape
        ops = self.output_padding or (None, None)
        out_hw = [transpose_output_size(n, k, s, self.padding, op) for n, k, s, op in
                  zip((H, W), self.kernel_size, self.strides, ops)]
        self._check_sizes(input_shape, out_hw)
        for n, o, k, s in zip((H, W), out_hw, self.kernel_size, self.strides):
            if n is not None and conv_output_size(o, k, s, self.padding) != n:
                raise ValueError(f"{self.name}: output_padding {self.output_padding} gives output size "
                                 f"{tuple(out_hw)}, which a {self.padding!r} convolution does not map back "
                                 f"to the input {fmt_shape(input_shape)} (TensorFlow rejects it too)")
        return (N, *out_hw, self.filters)

    def get_config(self):
        return {**super().get_config(), "output_padding": self.output_padding}
