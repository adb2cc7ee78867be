"""The LSTM over a whole sequence as ONE differentiable node: forward loop + BPTT.

Notation: N batch, T time steps, D input features, U units.
x (N, T, D), W = kernel (D, 4U), R = recurrent_kernel (U, 4U), b (4U,),
h_0 and c_0 (N, U). The four column blocks of W, R, b are the gates in Keras's
order i, f, c, o (the candidate cell, Keras's "c", is called g below).
sigma = recurrent_activation (sigmoid), phi = activation (tanh).

Forward (the recurrence)::

    z_t = x_t W + b + h_{t-1} R          x_t W + b for all t at once: ONE (T*N, D) @ (D, 4U)
    i_t, f_t, o_t = sigma(z^i_t), sigma(z^f_t), sigma(z^o_t)      (N, U) each
    g_t = phi(z^g_t)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * phi(c_t)                 the output of step t

Backward (backpropagation through time), t = T..1, carrying dh = dL/dh_t and dc = dL/dc_t::

    dh_t   = gy_t + dz_{t+1} R^T
    dz^o_t = dh_t phi(c_t) sigma'(o_t)
    dc_t   = dh_t o_t phi'(c_t) + dc_{t+1} f_{t+1}
    dz^i_t = dc_t g_t sigma'(i_t)      dz^f_t = dc_t c_{t-1} sigma'(f_t)      dz^g_t = dc_t i_t phi'(g_t)
    gW = sum_t x_t^T dz_t   gR = sum_t h_{t-1}^T dz_t   gb = sum_t sum_n dz_t   gx_t = dz_t W^T
    gh_0 = dz_1 R^T         gc_0 = dc_1 f_1

(the derivation, gate by gate, is in ``numbanet/reference/lstm.py``; the arrays are
computed by the active tier's ``lstm_forward`` / ``lstm_backward``: the reference
loop, or the fast tier's fused, time-major one in ``numbanet/fast/lstm.py``).

``mask`` (N, T): a masked step keeps both states (h and c), and its output repeats
the previous output (0 before the first real step), as Keras 3 does.
``go_backwards``: the input is read from t = T down to 1 and the outputs are
returned in that processing order (not flipped back).

One node has one output, so under ``return_state`` the final states are stacked
onto the output along the time axis and the caller slices them apart (ordinary
differentiable indexing)::

    return_sequences, return_state:   (N, T+2, U) = [y_1 .. y_T, h_T, c_T]
    return_state only:                (N, 3, U)   = [y_T, h_T, c_T]
    return_sequences only:            (N, T, U);  neither: y_T (N, U)

h_T is stacked on rather than read from the last output because the two differ
for a row with no real step: its outputs are 0 while Keras returns h_0 as h_T.
"""
from __future__ import annotations

import numpy as np

from . import tiers
from .tensor import Function

#: the activations a gate may use, each with its derivative read from its output
GATE_ACTIVATIONS = ("hard_sigmoid", "linear", "relu", "sigmoid", "tanh")


class LSTM(Function):
    """The whole LSTM sequence as one graph node.

    Inputs: x (N, T, D), W (D, 4U), R (U, 4U), then b (4U,) if ``use_bias``,
    h0 (N, U) if ``has_h0`` and c0 (N, U) if ``has_c0`` (else zeros).
    Output: laid out as in the module docstring.
    Backward: (gx, gW, gR[, gb][, gh0][, gc0]), gx only when x wants a gradient.
    """

    #: None, or an (N, T, U) array that backward fills with dL/dh_t of every step in processing
    #: order (attached to one node by GradientHealth's probe; the tier is asked only then)
    record_dh = None

    def __init__(self, activation="tanh", recurrent_activation="sigmoid", use_bias=True, has_h0=False,
                 has_c0=False, return_sequences=True, return_state=False, go_backwards=False, mask=None):
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.use_bias, self.has_h0, self.has_c0 = use_bias, has_h0, has_c0
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards
        self.mask = mask  # (N, T) bool or None; not an input: it has no gradient

    def forward(self, x, W, R, *rest):
        rest = list(rest)
        b = rest.pop(0) if self.use_bias else None
        h0 = rest.pop(0) if self.has_h0 else None
        c0 = rest.pop(0) if self.has_c0 else None
        # what a tier saves is its own: the backward runs on the tier that ran the forward
        self.tier = tiers.current
        y, self.saved = self.tier.lstm_forward(x, W, R, b, h0, c0, self.activation, self.recurrent_activation,
                                               self.return_sequences, self.return_state, self.go_backwards,
                                               self.mask)
        return y

    def backward(self, gy):
        x = self.inputs[0]
        need_gx = x is not None and x.requires_grad
        if self.record_dh is None:
            gx, gW, gR, gb, gh0, gc0 = self.tier.lstm_backward(gy, self.saved, need_gx)
        else:
            gx, gW, gR, gb, gh0, gc0 = self.tier.lstm_backward(gy, self.saved, need_gx, dh_out=self.record_dh)
        return ((gx, gW, gR) + ((gb,) if self.use_bias else ()) + ((gh0,) if self.has_h0 else ())
                + ((gc0,) if self.has_c0 else ()))


def _shape(a):
    return np.shape(getattr(a, "data", a))


def _check(x, W, R, b, h0, c0, activation, recurrent_activation, mask):
    """The mask as (N, T) bool (or None), after checking every name, shape and dtype."""
    for arg, name in (("activation", activation), ("recurrent_activation", recurrent_activation)):
        if name not in GATE_ACTIVATIONS:
            raise ValueError(f"lstm: {arg} must be one of {list(GATE_ACTIVATIONS)}, got {name!r}")
    xs, Ws, Rs = _shape(x), _shape(W), _shape(R)
    if len(xs) != 3 or xs[1] == 0:
        raise ValueError(f"lstm: x must have shape (batch, time, features) with time >= 1, got {xs}")
    if len(Rs) != 2 or Rs[1] != 4 * Rs[0] or Rs[0] == 0:
        raise ValueError(f"lstm: recurrent kernel must have shape (units, 4 * units), got {Rs}")
    U = Rs[0]
    if Ws != (xs[2], 4 * U):
        raise ValueError(f"lstm: kernel must have shape (features, 4 * units) = {(xs[2], 4 * U)}, got {Ws}")
    if b is not None and _shape(b) != (4 * U,):
        raise ValueError(f"lstm: bias must have shape (4 * units,) = {(4 * U,)}, got {_shape(b)}")
    for arg, s in (("h0", h0), ("c0", c0)):
        if s is not None and _shape(s) != (xs[0], U):
            raise ValueError(f"lstm: initial state {arg} must have shape (batch, units) = {(xs[0], U)}, "
                             f"got {_shape(s)}")
    dtypes = {np.asarray(getattr(a, "data", a)).dtype for a in (x, W, R, b, h0, c0) if a is not None}
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        raise TypeError(f"lstm: x, the weights and the states must share one floating dtype, got "
                        f"{sorted(str(d) for d in dtypes)}; cast them (the LSTM layer casts to its dtype)")
    if mask is None:
        return None
    m = np.asarray(getattr(mask, "data", mask))
    if m.shape != tuple(xs[:2]):
        raise ValueError(f"lstm: mask must have shape (batch, time) = {tuple(xs[:2])}, got {m.shape}")
    return m.astype(bool)


def lstm(x, W, R, b=None, h0=None, c0=None, activation="tanh", recurrent_activation="sigmoid",
         return_sequences=True, return_state=False, go_backwards=False, mask=None):
    """Run an LSTM over ``x`` (N, T, D); see the module docstring for the math and the output layout.

    W (D, 4U), R (U, 4U); ``b`` (4U,), ``h0``, ``c0`` (N, U) and ``mask`` (N, T)
    are optional. ``activation`` and ``recurrent_activation``: one of GATE_ACTIVATIONS.
    """
    mask = _check(x, W, R, b, h0, c0, activation, recurrent_activation, mask)
    fn = LSTM(activation, recurrent_activation, b is not None, h0 is not None, c0 is not None,
              return_sequences, return_state, go_backwards, mask)
    return fn(*[a for a in (x, W, R, b, h0, c0) if a is not None])
