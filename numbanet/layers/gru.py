"""GRU: the gated recurrent unit layer, Keras 3's ``keras.layers.GRU``."""
from __future__ import annotations

import numpy as np

from ..engine import functional as F
from ..engine.gru import GATE_ACTIVATIONS
from .base import Layer, fmt_shape, positive_int
from .recurrent import keep_initial_state_where_no_step, one_initial_state


class GRU(Layer):
    """Gated recurrent unit: an update gate z and a reset gate r decide how much of the
    state to keep and how much of it the candidate sees::

        z_t = sigmoid(x_t W_z + h_{t-1} R_z + b_z)
        r_t = sigmoid(x_t W_r + h_{t-1} R_r + b_r)
        c_t = tanh(x_t W_c + b_xc + r_t * (h_{t-1} R_c + b_hc))     reset_after=True (default)
        c_t = tanh(x_t W_c + b_c + (r_t * h_{t-1}) R_c)             reset_after=False
        h_t = z_t * h_{t-1} + (1 - z_t) * c_t

    (sigmoid is ``recurrent_activation``, tanh ``activation``; with reset_after=True
    b_z, b_r are the sums of the input-side and recurrent-side biases.)

    Shape: input (N, T, D) -> output (N, T, U) if ``return_sequences`` else (N, U);
    with ``return_state`` the call returns ``(output, h_T)``, h_T (N, U).
    Attributes: kernel (D, 3U) from ``kernel_initializer`` (glorot_uniform),
    recurrent_kernel (U, 3U) from ``recurrent_initializer`` (orthogonal), columns in
    the gate order z, r, c (Keras's z, r, h); bias from ``bias_initializer`` (zeros),
    (2, 3U) with ``reset_after`` (row 0 the input-side bias, row 1 the recurrent side)
    or (3U,) without. Parameters: 3U(D + U) + 6U (3U without reset_after).

    ``initial_state=`` on call (a Tensor / array (N, U), or a one-element list)
    replaces h_0 = 0. ``mask=`` on call (N, T), e.g. ``embedding.compute_mask(ids)``
    (without it, the mask the input carries from an Embedding(mask_zero=True),
    ``layers.base.mask_of``), skips padded steps as Keras does: the state is carried
    over them and the output repeats the previous one (0 before the first real step).
    With ``return_state``, h_T is the last output, except for a sample with no real
    step at all, whose output is 0 and whose state is h_0 (Keras's results). ``go_backwards`` reads time
    from T to 1 and returns the sequence in that order. The recurrence and its
    backpropagation through time run as one graph node (``engine.gru``).
    """

    regularized_weights = {"kernel": "kernel_regularizer", "recurrent_kernel": "recurrent_regularizer",
                           "bias": "bias_regularizer"}   # penalties in ``losses`` (numbanet.regularizers)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 return_sequences=False, return_state=False, go_backwards=False, reset_after=True, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(self.name, "units", units)
        self.activation = self._check_activation("activation", activation)
        self.recurrent_activation = self._check_activation("recurrent_activation", recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = self.check_initializer("recurrent_initializer", recurrent_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.reset_after = bool(go_backwards), bool(reset_after)

    def _check_activation(self, arg, name):
        name = "linear" if name is None else name
        if not isinstance(name, str) or name not in GATE_ACTIVATIONS:
            raise ValueError(f"{self.name}: GRU {arg} must be one of {list(GATE_ACTIVATIONS)} (or None for "
                             f"linear), got {name!r}")
        return name

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: GRU expects input of rank 3 (batch, time, features), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[1] == 0:
            raise ValueError(f"{self.name}: GRU needs at least one time step, got shape {fmt_shape(input_shape)}")
        if self.built and input_shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: expected {self.kernel.shape[0]} features on the last axis, "
                             f"got input of shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the feature axis must be known, got {fmt_shape(input_shape)}")
        U = self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], 3 * U), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (U, 3 * U), self.recurrent_initializer)
        bias_shape = (2, 3 * U) if self.reset_after else (3 * U,)
        self.bias = self.add_weight("bias", bias_shape, self.bias_initializer) if self.use_bias else None

    def call(self, x, initial_state=None, mask=None, training=False):
        h0 = self._initial_state(initial_state, x.shape[0])
        if mask is not None:
            if np.shape(getattr(mask, "data", mask)) != tuple(x.shape[:2]):
                raise ValueError(f"{self.name}: mask must have shape (batch, time) = {tuple(x.shape[:2])}, "
                                 f"got {np.shape(getattr(mask, 'data', mask))}")
            mask = np.asarray(getattr(mask, "data", mask)).astype(bool)
        y = F.gru(x, self.kernel, self.recurrent_kernel, self.bias, h0, self.activation, self.recurrent_activation,
                  self.reset_after, self.return_sequences, self.go_backwards, mask)
        if not self.return_state:
            return y
        state = y[:, -1] if self.return_sequences else y                  # h_T is the last output ...
        return y, keep_initial_state_where_no_step(state, h0, mask, self.dtype)

    def _initial_state(self, state, N):
        return one_initial_state(self, state, N, "GRU")

    def compute_output_shape(self, input_shape):
        N, T = input_shape[0], input_shape[1]
        out = (N, T, self.units) if self.return_sequences else (N, self.units)
        return (out, (N, self.units)) if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "recurrent_initializer": self.recurrent_initializer,
                "bias_initializer": self.bias_initializer, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "reset_after": self.reset_after}
