"""Core layers: Dense, Activation, Flatten, Reshape, Dropout, Input."""
from __future__ import annotations

import numpy as np

from .. import activations, utils
from ..engine import functional as F
from .base import Layer, SymbolicTensor, check_shape, fmt_shape, positive_int


class Dense(Layer):
    """Fully connected layer on the last axis:  y = act(x @ kernel + bias).

    Shape: input (N, ..., D) -> output (N, ..., U); any rank >= 2, as in Keras.
    Attributes: kernel (D, U) from ``kernel_initializer`` (glorot_uniform),
    bias (U,) from ``bias_initializer`` (zeros).
    ``kernel_regularizer=``, ``bias_regularizer=``, ``activity_regularizer=``: penalties
    in ``losses`` (``numbanet.regularizers``).
    """

    regularized_weights = {"kernel": "kernel_regularizer", "bias": "bias_regularizer"}

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(self.name, "units", units)
        self.activation = activations.get(activation)
        self._named = (None, None, False, None)     # (activation, its name, Linear alone?, its f), see call
        self.use_bias = use_bias
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)

    def validate_input_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self.name}: Dense expects input of rank >= 2 (batch, ..., features), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[-1] == 0:
            raise ValueError(f"{self.name}: Dense needs at least one feature on the last axis, "
                             f"got input of shape {fmt_shape(input_shape)}")
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: expected last axis of size {self.kernel.shape[0]}, "
                             f"got input of shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the last axis of the input must be known, got {fmt_shape(input_shape)}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None

    def call(self, x, training=False):
        # "dense + bias + activation" by name: the engine fuses what its tiers can
        named = self._named
        if named[0] is not self.activation:                   # first call, or set anew since
            name = self._activation_name()
            inside = name if isinstance(name, str) and name in F.FUSED_ACTIVATIONS else None
            alone = inside is not None or name is None or (isinstance(name, str) and name == "linear")
            named = self._named = (self.activation, name, alone, inside)
        if named[2]:                   # F.linear would make just the Linear node: make it here
            fn = F.Linear(named[3])
            return fn(x, self.kernel) if self.bias is None else fn(x, self.kernel, self.bias)
        return F.linear(x, self.kernel, self.bias, activation=named[1])

    def _activation_name(self):
        """The activation's name ("tanh", ...), or the callable itself when it has none."""
        name = activations.name_of(self.activation)
        try:
            return name if activations.get(name) is self.activation else self.activation
        except ValueError:                                     # a user's function: no such name
            return self.activation

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.name_of(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}


class Activation(Layer):
    """y = act(x), elementwise (softmax: over the last axis). Shape unchanged."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=False):
        if x.size == 0:  # nothing to transform; softmax's max over an empty axis would fail in NumPy
            return x
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": activations.name_of(self.activation)}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), row-major (channels-last) order, as Keras."""

    def validate_input_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self.name}: Flatten expects input of rank >= 2, got {fmt_shape(input_shape)}")

    def call(self, x, training=False):
        # (N, d1, ..., dk) -> (N, d1*...*dk), the size given (NumPy cannot infer -1 when N = 0)
        return F.reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else int(np.prod(rest)))


class Reshape(Layer):
    """(N, ...) -> (N, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if (not isinstance(target_shape, (tuple, list)) or not target_shape
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in target_shape)):
            raise TypeError(f"{self.name}: target_shape must be a tuple of integers (one may be -1), "
                            f"got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d == 0 or d < -1 for d in self.target_shape):
            raise ValueError(f"{self.name}: invalid target_shape {self.target_shape}: positive sizes, "
                             f"at most one -1")

    def compute_output_shape(self, input_shape):
        size = int(np.prod([d for d in input_shape[1:]]))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self.name}: cannot reshape {fmt_shape(input_shape)} to (None, {self.target_shape})")
            target = tuple(size // known if d == -1 else d for d in self.target_shape)
        else:
            target = self.target_shape
        if int(np.prod(target)) != size:
            raise ValueError(f"{self.name}: cannot reshape input {fmt_shape(input_shape)} "
                             f"({size} values per sample) to target_shape {self.target_shape}")
        return (input_shape[0],) + target

    def validate_input_shape(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        return F.reshape(x, (x.shape[0],) + self.compute_output_shape((None,) + x.shape[1:])[1:])

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Dropout(Layer):
    """Training: y = x * m / (1 - rate), m ~ Bernoulli(1 - rate) per element. Inference: y = x."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"{self.name}: rate must be a number in [0, 1), got {rate!r}")
        if not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        return F.dropout(x, self.rate, self._rng if self._rng is not None else utils.rng())

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class InputLayer(Layer):
    """The layer behind ``Input(shape)``: no weights, marks where data enters."""

    def __init__(self, shape, dtype=None, name=None, batch_size=None):
        try:
            input_dtype = np.dtype(dtype or "float32")
        except TypeError:
            raise TypeError(f"Input: dtype must be a NumPy dtype such as 'float32' or 'int32', got {dtype!r}") from None
        super().__init__(name=name or utils.unique_name("input_layer"),
                         dtype=dtype if input_dtype in (np.float32, np.float64) else None)
        self.input_dtype = input_dtype
        self.batch_input_shape = (batch_size,) + tuple(shape)
        self.built = True
        self.input_shape = self.output_shape = self.batch_input_shape

    def call(self, x, training=False):
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def Input(shape, dtype=None, name=None, batch_size=None):
    """A symbolic input of per-sample ``shape`` (the batch axis is added), for ``Model(inputs, outputs)``."""
    shape = check_shape(shape, "shape", "Input")
    layer = InputLayer(shape, dtype=dtype, name=name, batch_size=batch_size)
    return SymbolicTensor(layer.batch_input_shape, layer.input_dtype, layer, (), name=layer.name)
