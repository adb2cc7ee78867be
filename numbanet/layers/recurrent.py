"""SimpleRNN: the vanilla recurrent layer  h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""
from __future__ import annotations

import numpy as np

from ..engine import Tensor
from ..engine import functional as F
from ..engine.recurrent import ACTIVATIONS
from .base import Layer, fmt_shape, positive_int


class SimpleRNN(Layer):
    """Fully connected recurrent layer; the output of each step is fed back to the next.

    Shape: input (N, T, D) -> output (N, T, U) if ``return_sequences`` else (N, U);
    with ``return_state`` the call returns ``(output, h_T)``, h_T (N, U).
    Attributes: kernel (D, U) from ``kernel_initializer`` (glorot_uniform),
    recurrent_kernel (U, U) from ``recurrent_initializer`` (orthogonal),
    bias (U,) from ``bias_initializer`` (zeros).

    ``initial_state=`` on call (a Tensor / array (N, U), or a one-element list)
    replaces h_0 = 0. ``mask=`` on call (N, T), e.g. ``embedding.compute_mask(ids)``,
    skips padded steps as Keras does (without it, the mask the input carries
    from an Embedding(mask_zero=True), ``layers.base.mask_of``): the state is carried over them and the
    output repeats the previous one (0 before the first real step). With
    ``return_state``, h_T is the last output, except for a sample whose steps are all
    masked: its outputs are 0 and its state stays the initial state, as in Keras.
    ``go_backwards`` reads time from T to 1 and returns the sequence in that order. The recurrence and its backpropagation through time
    run as one graph node (``engine.recurrent``); gradient clipping is the
    optimizer's ``clipnorm``/``clipvalue``. ``kernel_regularizer=``,
    ``recurrent_regularizer=``, ``bias_regularizer=``, ``activity_regularizer=``:
    penalties in ``losses`` (``numbanet.regularizers``).
    """

    regularized_weights = {"kernel": "kernel_regularizer", "recurrent_kernel": "recurrent_regularizer",
                           "bias": "bias_regularizer"}

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", return_sequences=False,
                 return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(self.name, "units", units)
        self.activation = "linear" if activation is None else activation
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"{self.name}: SimpleRNN activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self.check_initializer("kernel_initializer", kernel_initializer)
        self.recurrent_initializer = self.check_initializer("recurrent_initializer", recurrent_initializer)
        self.bias_initializer = self.check_initializer("bias_initializer", bias_initializer)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)

    def validate_input_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: SimpleRNN expects input of rank 3 (batch, time, features), "
                             f"got shape {fmt_shape(input_shape)}")
        if input_shape[1] == 0:
            raise ValueError(f"{self.name}: SimpleRNN needs at least one time step, got shape {fmt_shape(input_shape)}")
        if self.built and input_shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: expected {self.kernel.shape[0]} features on the last axis, "
                             f"got input of shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the feature axis must be known, got {fmt_shape(input_shape)}")
        U = self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], U), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (U, U), self.recurrent_initializer)
        self.bias = self.add_weight("bias", (U,), self.bias_initializer) if self.use_bias else None

    def call(self, x, initial_state=None, mask=None, training=False):
        h0 = self._initial_state(initial_state, x.shape[0])
        if mask is not None and np.shape(getattr(mask, "data", mask)) != tuple(x.shape[:2]):
            raise ValueError(f"{self.name}: mask must have shape (batch, time) = {tuple(x.shape[:2])}, "
                             f"got {np.shape(getattr(mask, 'data', mask))}")
        y = F.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias, h0, self.activation,
                         self.return_sequences, self.go_backwards, mask)
        if not self.return_state:
            return y
        state = y[:, -1] if self.return_sequences else y                  # h_T is the last output ...
        return y, keep_initial_state_where_no_step(state, h0, mask, self.dtype)

    def _initial_state(self, state, N):
        return one_initial_state(self, state, N, "SimpleRNN")

    def compute_output_shape(self, input_shape):
        N, T = input_shape[0], input_shape[1]
        out = (N, T, self.units) if self.return_sequences else (N, self.units)
        return (out, (N, self.units)) if self.return_state else out

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "kernel_initializer": self.kernel_initializer, "recurrent_initializer": self.recurrent_initializer,
                "bias_initializer": self.bias_initializer}


# ------------------------------------------------ shared by the one-state recurrent layers (SimpleRNN, GRU)
def one_initial_state(layer, state, N, kind):
    """``initial_state`` of a one-state layer as a Tensor (N, U) of the layer's dtype, or None.

    Takes a Tensor, an array, or a one-element list of either; another float dtype is cast
    differentiably (h0 keeps its gradient). Wrong counts, dtypes and shapes are clear errors.
    """
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        if len(state) != 1:
            raise ValueError(f"{layer.name}: {kind} has one state; initial_state must be one array or a "
                             f"one-element list, got a list of {len(state)}")
        state = state[0]
    if not isinstance(state, Tensor):
        arr = np.asarray(state)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{layer.name}: initial_state must be a numeric array of shape (batch, units) = "
                            f"{(N, layer.units)}, got dtype {arr.dtype}")
        state = Tensor(arr, dtype=layer.dtype)
    elif state.dtype != layer.dtype:
        state = F.cast(state, layer.dtype)
    if state.shape != (N, layer.units):
        raise ValueError(f"{layer.name}: initial_state must have shape (batch, units) = "
                         f"{(N, layer.units)}, got {state.shape}")
    return state


def keep_initial_state_where_no_step(state, h0, mask, dtype):
    """h_T (N, U) as Keras returns it: the last output, except h_0 on a row whose steps are all
    masked (its outputs are 0, its state never moved)."""
    if mask is None or h0 is None:
        return state
    no_step = ~np.asarray(getattr(mask, "data", mask), dtype=bool).any(axis=1)
    if not no_step.any():
        return state
    return state + h0 * Tensor(no_step[:, None].astype(dtype))
