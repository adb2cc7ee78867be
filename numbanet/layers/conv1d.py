"""Conv1D: convolution over the steps of a sequence (channels-last, Keras 3 semantics)."""
from __future__ import annotations

from .. import activations
from ..engine import functional as F
from ..engine.conv1d import check_padding_1d, conv1d_output_size, single
from .base import Layer, fmt_shape, positive_int


class Conv1D(Layer):
    """1-D convolution:  y = act(conv1d(x, kernel) + bias).

    y[n, t, f] = bias[f] + sum_{k, c} x[n, t*S - PL + k*D, c] kernel[k, c, f]

    Computed by the 2-D convolution on images one row high (``engine/conv1d.py``):
    x (N, T, C) -> (N, 1, T, C), kernel (K, C, F) -> (1, K, C, F), conv2d with
    strides (1, S) -> (N, 1, OT, F) -> (N, OT, F).

    Shape: input (N, T, C) -> output (N, OT, filters) with KD = (K - 1)*D + 1:
    "valid" OT = floor((T - KD) / S) + 1 (T >= KD required); "same" OT = ceil(T / S),
    zero padding total = max((OT-1)*S + KD - T, 0), PL = total // 2, the rest after;
    "causal" KD - 1 zeros before the sequence, OT = floor((T - 1) / S) + 1, so output
    step t sees input steps up to t*S only.
    Attributes: kernel (kernel_size, C, filters) from ``kernel_initializer`` (glorot_uniform),
    bias (filters,) from ``bias_initializer`` (zeros).

    ``dilation_rate`` D > 1 runs a kernel with D - 1 zero taps between its weights;
    it cannot be combined with ``strides`` > 1 (Keras rejects that too). As in Keras,
    the layer does not pass a padding mask on.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(self.name, "filters", filters)
        self.kernel_size = (single(kernel_size, "kernel_size", self.name),)
        self.strides = (single(strides, "strides", self.name),)
        self.padding = check_padding_1d(padding, self.name)
        self.dilation_rate = (single(dilation_rate, "dilation_rate", self.name),)
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(f"{self.name}: strides > 1 is not supported together with dilation_rate > 1, "
                             f"got strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected a 3-D input (batch, steps, channels), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the channel axis must be known, got {fmt_shape(input_shape)}")
        if any(d is not None and d <= 0 for d in input_shape[1:]):
            raise ValueError(f"{self.name}: every dimension must be positive, got {fmt_shape(input_shape)}")
        if self.built and input_shape[-1] != self.kernel.shape[1]:
            raise ValueError(f"{self.name}: expected {self.kernel.shape[1]} input channels "
                             f"(kernel {self.kernel.shape}), got input of shape {fmt_shape(input_shape)}")
        self.compute_output_shape(input_shape)  # raises on lengths Keras rejects

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", self.kernel_size + (input_shape[-1], self.filters),
                                      self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer) if self.use_bias else None

    def call(self, x, training=False):
        return F.conv1d(x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                        activation=self.activation)

    def compute_output_shape(self, input_shape):
        N, T, _ = input_shape
        OT = conv1d_output_size(T, self.kernel_size[0], self.strides[0], self.padding, self.dilation_rate[0])
        if OT is not None and OT <= 0:
            raise ValueError(f"{self.name}: kernel_size {self.kernel_size} (dilation_rate {self.dilation_rate}) "
                             f"is larger than the input {fmt_shape(input_shape)} with padding {self.padding!r}: "
                             f"the output would have {OT} steps")
        return (N, OT, self.filters)

    def compute_mask(self, inputs, mask=None):
        """None: a convolution mixes padded and real steps, so no mask goes on (as in Keras)."""
        return None

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "activation": activations.name_of(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}


Convolution1D = Conv1D   # Keras's long name for the same class
