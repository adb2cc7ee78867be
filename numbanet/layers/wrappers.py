"""Bidirectional: run a recurrent layer over the sequence both ways and merge the two results (Keras 3)."""
from __future__ import annotations

import numpy as np

from ..engine import Tensor
from ..engine import functional as F
from .base import Layer, _set_mask

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
RECURRENT_ATTRIBUTES = ("go_backwards", "return_sequences", "return_state", "get_config")


def _strip_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


def _layer_from_config(cls, config):
    """A fresh, unbuilt layer of class ``cls`` from its ``get_config()`` dict."""
    from_config = getattr(cls, "from_config", None)
    return from_config(config) if from_config is not None else cls(**config)


class Bidirectional(Layer):
    """Bidirectional wrapper of a recurrent layer: one copy reads time 1..T, another T..1.

    ``layer`` is any recurrent layer with ``go_backwards``, ``return_sequences``,
    ``return_state`` and ``get_config()`` (SimpleRNN, LSTM, GRU). As in Keras, it is
    not used itself: two fresh layers are made from its config, ``forward_<name>``
    and ``backward_<name>`` (the latter with ``go_backwards=True``), or the given
    ``backward_layer`` is used as the backward one. Their outputs are

        y_f = forward_layer(x)          (N, T, U_f) or (N, U_f)
        y_b = backward_layer(x)         (N, T, U_b) or (N, U_b), read from t = T down to 1

    and, with ``return_sequences``, y_b is flipped back to input time order,
    ``y_b[:, t] <- y_b[:, T-1-t]``, so position t of both holds the state after
    reading x_t. The merge, by ``merge_mode``:

        "concat"  y = [y_f, y_b] on the last axis      (..., U_f + U_b)
        "sum"     y = y_f + y_b                         (..., U)
        "mul"     y = y_f * y_b                         (..., U)
        "ave"     y = (y_f + y_b) / 2                   (..., U)
        None      the list [y_f, y_b]

    Shape: input (N, T, D) -> output as above. With ``return_state`` the call
    returns ``(output, *forward_states, *backward_states)`` (with merge_mode None,
    ``(y_f, y_b, *forward_states, *backward_states)``): one state each for
    SimpleRNN and GRU (h_T (N, U)), two for LSTM (h_T, c_T).
    Attributes: the forward layer's weights, then the backward layer's (Keras's
    order; e.g. over SimpleRNN: kernel (D, U), recurrent_kernel (U, U), bias (U,),
    twice).

    Call: ``initial_state=`` a list of the forward layer's states followed by the
    backward layer's (``[h_f, h_b]``, or ``[h_f, c_f, h_b, c_b]`` for LSTM): the
    first half goes to the forward layer, the second to the backward one.
    ``mask=`` (N, T) bool goes to both layers; with ``return_sequences`` the output
    at a masked step is 0 in both directions (Keras forces ``zero_output_for_mask``
    inside Bidirectional), and the output carries the mask on.

    ``dtype`` defaults to the wrapped layer's dtype; a different one given here
    makes both copies in that dtype.
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise TypeError(f"Bidirectional: layer must be a recurrent layer instance such as SimpleRNN(16), "
                            f"LSTM(16) or GRU(16), got {layer!r}")
        missing = [a for a in RECURRENT_ATTRIBUTES if not hasattr(layer, a)]
        if missing:
            raise TypeError(f"Bidirectional: layer must be a recurrent layer (SimpleRNN, LSTM, GRU, or one with "
                            f"{', '.join(RECURRENT_ATTRIBUTES)}); {layer.name} ({type(layer).__name__}) has no "
                            f"{', '.join(missing)}")
        if not (merge_mode is None or isinstance(merge_mode, str)) or merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None, "
                             f"got {merge_mode!r}")
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = layer.dtype
        super().__init__(**kwargs)
        self.merge_mode = merge_mode

        config = {**layer.get_config(), "dtype": self.dtype.name}
        self.forward_layer = _layer_from_config(
            type(layer), {**config, "name": "forward_" + _strip_prefix(layer.name, "forward_")})
        if backward_layer is None:
            self.backward_layer = _layer_from_config(
                type(layer), {**config, "go_backwards": True,
                              "name": "backward_" + _strip_prefix(layer.name, "backward_")})
        else:
            self.backward_layer = backward_layer
        self._check_pair(backward_layer is not None)
        self.return_sequences = bool(self.forward_layer.return_sequences)
        self.return_state = bool(self.forward_layer.return_state)

    def _check_pair(self, given):
        """The checks Keras makes on the two layers, and the ones a merge or a dtype needs."""
        fwd, bwd = self.forward_layer, self.backward_layer
        if given:
            if not isinstance(bwd, Layer) or any(not hasattr(bwd, a) for a in RECURRENT_ATTRIBUTES):
                raise TypeError(f"{self.name}: backward_layer must be a recurrent layer instance like the forward "
                                f"one, e.g. {type(fwd).__name__}(..., go_backwards=True), got {bwd!r}")
        if fwd.go_backwards == bwd.go_backwards:
            if not given:
                raise ValueError(f"{self.name}: the wrapped layer has go_backwards=True, so the forward and the "
                                 f"backward copy would both read time backwards; pass it with go_backwards=False "
                                 f"(Bidirectional makes the backward copy itself)")
            raise ValueError(f"{self.name}: the forward and backward layers must differ in go_backwards, got "
                             f"go_backwards={fwd.go_backwards} for both; make the backward layer with "
                             f"go_backwards={not fwd.go_backwards}")
        for attr in ("return_sequences", "return_state"):
            a, b = bool(getattr(fwd, attr)), bool(getattr(bwd, attr))
            if a != b:
                raise ValueError(f"{self.name}: the forward and backward layers must have the same {attr}, got "
                                 f"{attr}={a} for the forward layer ({fwd.name}) and {attr}={b} for the backward "
                                 f"layer ({bwd.name})")
        if bwd.dtype != self.dtype:
            raise ValueError(f"{self.name}: backward_layer {bwd.name} has dtype {bwd.dtype}, the forward layer "
                             f"{self.dtype}; give both the same dtype")
        units_f, units_b = getattr(fwd, "units", None), getattr(bwd, "units", None)
        if self.merge_mode not in ("concat", None) and units_f is not None and units_b is not None \
                and units_f != units_b:
            raise ValueError(f"{self.name}: merge_mode={self.merge_mode!r} combines the two outputs elementwise, so "
                             f"both layers need the same units; got {units_f} (forward) and {units_b} (backward). "
                             f"Use merge_mode='concat' or equal units")

    # ----------------------------------------------------------------- weights
    @property
    def _weight_list(self):
        """The forward layer's weights, then the backward layer's (Keras order), named ``<layer>/<weight>``."""
        return [(f"{layer.name}/{name}", w) for layer in (self.forward_layer, self.backward_layer)
                for name, w in layer._weight_list]

    @_weight_list.setter
    def _weight_list(self, value):  # Layer.__init__ assigns it; the weights live in the two sub-layers
        pass

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freezing the wrapper freezes both directions, as in Keras."""
        self._trainable = bool(value)
        for layer in (self.forward_layer, self.backward_layer):
            layer.trainable = value

    # --------------------------------------------------------------- lifecycle
    def validate_input_shape(self, input_shape):
        self.forward_layer.validate_input_shape(input_shape)
        self.backward_layer.validate_input_shape(input_shape)

    def build(self, input_shape):
        self.forward_layer.build_from_shape(input_shape)
        self.backward_layer.build_from_shape(input_shape)

    def __call__(self, x, training=False, **kwargs):
        # a failed first call leaves both sub-layers unbuilt too (Layer.__call__ does it for its own weights)
        unbuilt = [layer for layer in (self.forward_layer, self.backward_layer) if not layer.built]
        try:
            return super().__call__(x, training=training, **kwargs)
        except BaseException:
            if not self.built:
                for layer in unbuilt:
                    layer._weight_list[:] = []
                    layer.built = False
                    layer.input_shape = layer.output_shape = None
            raise

    def call(self, x, initial_state=None, mask=None, training=False):
        state_f, state_b = self._split_state(initial_state)
        y_f = self.forward_layer(x, initial_state=state_f, mask=mask, training=training)
        y_b = self.backward_layer(x, initial_state=state_b, mask=mask, training=training)
        states = ()
        if self.return_state:
            states = tuple(y_f[1:]) + tuple(y_b[1:])
            y_f, y_b = y_f[0], y_b[0]
        if self.return_sequences:
            y_b = y_b[:, ::-1]                                   # processing order -> input time order
            if mask is not None:                                 # zero_output_for_mask, both directions
                keep = np.asarray(getattr(mask, "data", mask), dtype=self.dtype)[:, :, None]   # (N, T, 1)
                y_f, y_b = y_f * keep, y_b * keep
        output = self._merge(y_f, y_b)
        if mask is not None and self.return_sequences:
            for y in (output if self.merge_mode is None else (output,)):
                _set_mask(y, np.asarray(getattr(mask, "data", mask), dtype=bool))
        if self.merge_mode is None:
            return (*output, *states) if self.return_state else list(output)
        return (output, *states) if self.return_state else output

    def _merge(self, y_f, y_b):
        if self.merge_mode == "concat":
            return F.concatenate([y_f, y_b], axis=-1)
        if self.merge_mode == "sum":
            return y_f + y_b
        if self.merge_mode == "mul":
            return y_f * y_b
        if self.merge_mode == "ave":
            return (y_f + y_b) / 2
        return y_f, y_b

    def _split_state(self, state):
        """``initial_state`` -> (forward states, backward states): the first half and the second half."""
        if state is None:
            return None, None
        if isinstance(state, (Tensor, np.ndarray)) or not isinstance(state, (list, tuple)) \
                or len(state) == 0 or len(state) % 2:
            got = (f"a list of {len(state)}" if isinstance(state, (list, tuple))
                   else f"one {type(state).__name__}")
            raise ValueError(f"{self.name}: initial_state must be a list of the forward layer's states followed by "
                             f"the backward layer's, e.g. [h_forward, h_backward] for SimpleRNN or GRU, "
                             f"[h_f, c_f, h_b, c_b] for LSTM; got {got}")
        half = len(state) // 2
        f, b = list(state[:half]), list(state[half:])
        return (f[0] if half == 1 else f), (b[0] if half == 1 else b)

    def compute_output_shape(self, input_shape):
        out_f = self.forward_layer.compute_output_shape(input_shape)
        out_b = self.backward_layer.compute_output_shape(input_shape)
        states = ()
        if self.return_state:
            states = tuple(out_f[1:]) + tuple(out_b[1:])
            out_f, out_b = out_f[0], out_b[0]
        if self.merge_mode is None:
            return (out_f, out_b) + states
        if self.merge_mode == "concat":
            last = None if out_f[-1] is None or out_b[-1] is None else out_f[-1] + out_b[-1]
            out_f = tuple(out_f[:-1]) + (last,)
        return ((out_f,) + states) if self.return_state else tuple(out_f)

    def get_config(self):
        def serialize(layer):
            return {"class_name": type(layer).__name__, "config": layer.get_config()}
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": serialize(self.forward_layer), "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        """The layer ``get_config()`` describes (its sub-layers by class name from ``numbanet.layers``)."""
        from .. import layers

        def deserialize(entry):
            return _layer_from_config(getattr(layers, entry["class_name"]), dict(entry["config"]))
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)
