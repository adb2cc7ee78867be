"""The gated recurrent unit (GRU) over a whole sequence as ONE differentiable node.

Notation: N batch, T time steps, D input features, U units. x (N, T, D),
W = kernel (D, 3U), R = recurrent_kernel (U, 3U), columns in Keras's gate order
[z | r | c] (update, reset, candidate); h_0 (N, U). sigma is the recurrent
activation (default sigmoid), phi the activation (default tanh).

Forward, ``reset_after=True`` (Keras 3's default; bias (2, 3U): row 0 b_x on the
input side, row 1 b_h on the recurrent side)::

    [x_z | x_r | x_c] = x_t W + b_x          all t at once: ONE (T*N, D) @ (D, 3U) product
    [h_z | h_r | q_t] = h_{t-1} R + b_h      ONE (N, U) @ (U, 3U) product per step
    z_t = sigma(x_z + h_z)
    r_t = sigma(x_r + h_r)
    c_t = phi(x_c + r_t * q_t)
    h_t = z_t * h_{t-1} + (1 - z_t) * c_t

``reset_after=False`` (bias (3U,), input side only): the reset gate scales h_{t-1}
before the candidate's product, c_t = phi(x_c + (r_t * h_{t-1}) R_c), so each step
takes two products (h_{t-1} [R_z | R_r], then (r_t h_{t-1}) R_c).

Backward (backpropagation through time, t = T..1, carrying dh = dL/dh_t)::

    dc = dh (1 - z_t)      dz = dh (h_{t-1} - c_t)      da_c = dc phi'(c_t)
    dq = da_c r_t          dr = da_c q_t                    (reset_after)
    d(rh) = da_c R_c^T     dr = d(rh) h_{t-1}               (reset_after=False)
    da_z = dz sigma'(z_t)  da_r = dr sigma'(r_t)
    gW = sum_t x_t^T [da_z | da_r | da_c]      gx_t = [da_z | da_r | da_c] W^T
    gR = sum_t h_{t-1}^T [da_z | da_r | dq]    (reset_after=False: the c block from (r_t h_{t-1})^T da_c)
    dh_{t-1} = z_t dh + (the gates' products' share, through R^T)

every line derived in ``numbanet/reference/gru.py``; the arrays are computed by the
active tier's ``gru_forward`` / ``gru_backward`` (reference: that loop as written;
fast: ``numbanet/fast/gru.py``, in-place gate arithmetic between BLAS products).

``go_backwards``: the input is read from t = T down to 1 and the output sequence is
returned in that processing order (Keras semantics, not flipped back).

``mask`` (N, T), optional, 1 for real steps and 0 for padding: a masked step keeps
the state, its output repeats the previous output (0 before the first real step),
as Keras 3 does: h_t = m_t h_t' + (1 - m_t) h_{t-1}, y_t = h_t s_t with
s_t = [some m_k = 1 for k <= t]. h_T is the last output; a row with no real step at
all has output 0 (the layer returns its state h_0 separately, as Keras does).
"""
from __future__ import annotations

import numpy as np

from . import tiers
from .tensor import Function

GATE_ACTIVATIONS = ("hard_sigmoid", "linear", "relu", "sigmoid", "tanh")   # both tiers' GRU accepts these


class GRU(Function):
    """The whole GRU output sequence (or h_T) as one graph node.

    Inputs: x (N, T, D), W (D, 3U), R (U, 3U), then b ((2, 3U) if ``reset_after`` else
    (3U,)) if ``use_bias``, and h0 (N, U) if ``has_h0`` (else h_0 = 0).
    Output: Y (N, T, U) if ``return_sequences`` else h_T (N, U).
    Backward: (gx, gW, gR[, gb][, gh0]), gx only when x wants a gradient.
    """

    #: None, or an (N, T, U) array that backward fills with dL/dh_t of every step in processing
    #: order (attached to one node by GradientHealth's probe; the tier is asked only then)
    record_dh = None

    def __init__(self, activation="tanh", recurrent_activation="sigmoid", reset_after=True, use_bias=True,
                 has_h0=False, return_sequences=True, go_backwards=False, mask=None):
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.reset_after, self.use_bias, self.has_h0 = reset_after, use_bias, has_h0
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.mask = mask  # (N, T) bool or None; not an input: it has no gradient

    def forward(self, x, W, R, *rest):
        b = rest[0] if self.use_bias else None
        h0 = rest[-1] if self.has_h0 else None
        # what a tier saves is its own: the backward runs on the tier that ran the forward
        self.tier = tiers.current
        y, self.saved = self.tier.gru_forward(x, W, R, b, h0, self.activation, self.recurrent_activation,
                                              self.reset_after, self.return_sequences, self.go_backwards,
                                              self.mask)
        return y

    def backward(self, gy):
        x = self.inputs[0]
        need_gx = x is not None and x.requires_grad
        if self.record_dh is None:
            gx, gW, gR, gb, gh0 = self.tier.gru_backward(gy, self.saved, need_gx)
        else:
            gx, gW, gR, gb, gh0 = self.tier.gru_backward(gy, self.saved, need_gx, dh_out=self.record_dh)
        return (gx, gW, gR) + ((gb,) if self.use_bias else ()) + ((gh0,) if self.has_h0 else ())


def _shape(a):
    return np.shape(getattr(a, "data", a))


def _check(x, W, R, b, h0, mask, activation, recurrent_activation, reset_after):
    """Raise a ValueError naming the argument, the shapes expected and given; return the mask as bool or None."""
    for arg, name in (("activation", activation), ("recurrent_activation", recurrent_activation)):
        if name not in GATE_ACTIVATIONS:
            raise ValueError(f"gru: {arg} must be one of {list(GATE_ACTIVATIONS)}, got {name!r}")
    x_shape, W_shape, R_shape = _shape(x), _shape(W), _shape(R)
    if len(x_shape) != 3 or x_shape[1] == 0:
        raise ValueError(f"gru: x must have shape (batch, time, features) with time >= 1, got {x_shape}")
    if len(R_shape) != 2 or R_shape[1] != 3 * R_shape[0]:
        raise ValueError(f"gru: recurrent kernel must have shape (units, 3*units), got {R_shape}")
    U = R_shape[0]
    if W_shape != (x_shape[2], 3 * U):
        raise ValueError(f"gru: kernel must have shape (features, 3*units) = {(x_shape[2], 3 * U)}, got {W_shape}")
    want_b = (2, 3 * U) if reset_after else (3 * U,)
    if b is not None and _shape(b) != want_b:
        raise ValueError(f"gru: bias must have shape {want_b} with reset_after={reset_after}, got {_shape(b)}")
    if h0 is not None and _shape(h0) != (x_shape[0], U):
        raise ValueError(f"gru: initial state must have shape (batch, units) = {(x_shape[0], U)}, got {_shape(h0)}")
    if mask is None:
        return None
    if _shape(mask) != x_shape[:2]:
        raise ValueError(f"gru: mask must have shape (batch, time) = {x_shape[:2]}, got {_shape(mask)}")
    return np.asarray(getattr(mask, "data", mask)).astype(bool)


def gru(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
        return_sequences=True, go_backwards=False, mask=None):
    """Run a GRU over ``x`` (N, T, D); see the module docstring for the math.

    Returns Y (N, T, U) when ``return_sequences`` else h_T (N, U). ``b`` ((2, 3U) with
    ``reset_after``, else (3U,)), ``h0`` (N, U) and ``mask`` (N, T) are optional.
    ``activation`` and ``recurrent_activation``: one of ``GATE_ACTIVATIONS``.
    """
    mask = _check(x, W, R, b, h0, mask, activation, recurrent_activation, reset_after)
    fn = GRU(activation, recurrent_activation, bool(reset_after), b is not None, h0 is not None, return_sequences,
             go_backwards, mask)
    inputs = [x, W, R] + ([b] if b is not None else []) + ([h0] if h0 is not None else [])
    return fn(*inputs)
