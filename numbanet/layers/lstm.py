"""LSTM: the long short-term memory layer, Keras 3's arguments, defaults and weight layout."""
from __future__ import annotations

import numpy as np

from .. import initializers
from ..engine import Tensor
from ..engine import functional as F
from ..engine.lstm import GATE_ACTIVATIONS
from .base import Layer, fmt_shape, positive_int


class LSTM(Layer):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997), as ``keras.layers.LSTM``.

    Each step t, with z_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias split
    into four (N, U) blocks in Keras's gate order i, f, c, o::

        i = sigma(z^i)  f = sigma(z^f)  g = phi(z^c)  o = sigma(z^o)
        c_t = f * c_{t-1} + i * g          h_t = o * phi(c_t)

    with sigma = ``recurrent_activation`` (sigmoid) and phi = ``activation`` (tanh).

    Shape: input (N, T, D) -> output (N, T, U) if ``return_sequences`` else (N, U);
    with ``return_state`` the call returns ``(output, h_T, c_T)``, h_T and c_T (N, U).
    Attributes: kernel (D, 4U) from ``kernel_initializer`` (glorot_uniform),
    recurrent_kernel (U, 4U) from ``recurrent_initializer`` (orthogonal),
    bias (4U,) from ``bias_initializer`` (zeros), with ones in the forget gate's
    block [U:2U] when ``unit_forget_bias`` (as Keras builds it).

    ``initial_state=[h0, c0]`` on call (two Tensors / arrays (N, U)) replaces the zero
    states. ``mask=`` on call (N, T), e.g. ``embedding.compute_mask(ids)`` (without it,
    the mask the input carries from an Embedding(mask_zero=True)): a masked step
    keeps h and c, and its output repeats the previous output (0 before the first
    real step), as Keras does; h_T and c_T are the final states (h_0 and c_0 for a
    row with no real step). ``go_backwards`` reads time from T to 1 and returns the
    sequence in that order. The whole recurrence and its backpropagation through
    time are one graph node (``engine.lstm``); with ``return_state`` that node's
    output carries h_T and c_T stacked on along the time axis, sliced apart here.
    Activations by name: one of ``engine.lstm.GATE_ACTIVATIONS`` (None is linear).
    """

    regularized_weights = {"kernel": "kernel_regularizer", "recurrent_kernel": "recurrent_regularizer",
                           "bias": "bias_regularizer"}   # penalties in ``losses`` (numbanet.regularizers)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(self.name, "units", units)
        self.activation = self._check_activation("activation", activation)
        self.recurrent_activation = self._check_activation("recurrent_activation", recurrent_activation)
        self.use_bias, self.unit_forget_bias = bool(use_bias), bool(unit_forget_bias)
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = self.check_initializer("recurrent_initializer", recurrent_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)

    def _check_activation(self, arg, name):
        name = "linear" if name is None else name
        if not isinstance(name, str) or name not in GATE_ACTIVATIONS:
            raise ValueError(f"{self.name}: LSTM {arg} must be one of {list(GATE_ACTIVATIONS)} (or None for "
                             f"linear), got {name!r}")
        return name

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: LSTM expects input of rank 3 (batch, time, features), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[1] == 0:
            raise ValueError(f"{self.name}: LSTM needs at least one time step, got shape {fmt_shape(input_shape)}")
        if self.built and input_shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: expected {self.kernel.shape[0]} features on the last axis, "
                             f"got input of shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the feature axis must be known, got {fmt_shape(input_shape)}")
        U = self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], 4 * U), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (U, 4 * U), self.recurrent_initializer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (4 * U,), self._bias_init() if self.unit_forget_bias
                                        else self.bias_initializer)

    def _bias_init(self):
        """Keras's unit_forget_bias: [bias_initializer((U,)), ones((U,)), bias_initializer((2U,))]."""
        init = initializers.get(self.bias_initializer)

        def unit_forget(shape, dtype=None):
            U = shape[0] // 4
            return np.concatenate([np.asarray(init((U,), dtype=dtype)), np.ones(U, dtype),
                                   np.asarray(init((2 * U,), dtype=dtype))])
        return unit_forget

    def call(self, x, initial_state=None, mask=None, training=False):
        h0, c0 = self._initial_state(initial_state, x.shape[0])
        if mask is not None and np.shape(getattr(mask, "data", mask)) != tuple(x.shape[:2]):
            raise ValueError(f"{self.name}: mask must have shape (batch, time) = {tuple(x.shape[:2])}, "
                             f"got {np.shape(getattr(mask, 'data', mask))}")
        y = F.lstm(x, self.kernel, self.recurrent_kernel, self.bias, h0, c0, self.activation,
                   self.recurrent_activation, self.return_sequences, self.return_state, self.go_backwards, mask)
        if not self.return_state:
            return y
        # y: [outputs .., h_T, c_T] along axis 1 (engine.lstm)
        return (y[:, :-2] if self.return_sequences else y[:, 0]), y[:, -2], y[:, -1]

    def _initial_state(self, state, N):
        if state is None:
            return None, None
        if not isinstance(state, (list, tuple)) or len(state) != 2:
            got = f"a list of {len(state)}" if isinstance(state, (list, tuple)) else f"one {type(state).__name__}"
            raise ValueError(f"{self.name}: LSTM has two states; initial_state must be a list [h0, c0] of two "
                             f"arrays of shape (batch, units) = {(N, self.units)}, got {got}")
        return tuple(self._state_tensor(s, N, which) for s, which in zip(state, ("h0", "c0")))

    def _state_tensor(self, state, N, which):
        if not isinstance(state, Tensor):
            arr = np.asarray(state)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{self.name}: initial_state {which} must be a numeric array of shape "
                                f"(batch, units) = {(N, self.units)}, got dtype {arr.dtype}")
            state = Tensor(arr, dtype=self.dtype)
        elif state.dtype != self.dtype:
            state = F.cast(state, self.dtype)
        if state.shape != (N, self.units):
            raise ValueError(f"{self.name}: initial_state {which} must have shape (batch, units) = "
                             f"{(N, self.units)}, got {state.shape}")
        return state

    def compute_output_shape(self, input_shape):
        N, T = input_shape[0], input_shape[1]
        out = (N, T, self.units) if self.return_sequences else (N, self.units)
        return (out, (N, self.units), (N, self.units)) if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "recurrent_initializer": self.recurrent_initializer,
                "bias_initializer": self.bias_initializer, "unit_forget_bias": self.unit_forget_bias,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}
