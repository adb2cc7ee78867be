"""The vanilla recurrent network as ONE differentiable node: forward loop + BPTT.

Notation: N batch, T time steps, D input features, U units.
x (N, T, D), W = kernel (D, U), R = recurrent_kernel (U, U), b (U,), h_0 (N, U).

Forward (the recurrence)::

    z_t = x_t W + b                      all t at once: ONE (T*N, D) @ (D, U) product
    a_t = z_t + h_{t-1} R                the only truly sequential work
    h_t = f(a_t)                         f = tanh | relu | sigmoid | linear

Backward (backpropagation through time). The loss L sees h_t directly (through
the returned sequence, gy_t; only gy_T when just the last state is returned)
and indirectly through h_{t+1}. Walking t = T..1 with a carried ``dh``::

    dh_t  = gy_t + da_{t+1} R^T          (da_{T+1} = 0)
    da_t  = dh_t * f'(a_t)               f' from the output: tanh 1-h^2, relu [h>0],
                                         sigmoid h(1-h), linear 1
    gR    = sum_t h_{t-1}^T da_t         (U, U)     } after the loop, each ONE
    gW    = sum_t x_t^T da_t             (D, U)     } matrix product over all
    gb    = sum_t sum_n da_t             (U,)       } T*N rows at once
    gx_t  = da_t W^T                     (N, D)     }
    gh_0  = da_1 R^T                     (N, U)     (the ``dh`` left after the loop)

The arrays are computed by the active tier's ``simple_rnn_forward`` /
``simple_rnn_backward`` (``numbanet/reference/recurrent.py`` is the loop as
written above; ``numbanet/fast/recurrent.py`` the time-major, allocation-free one).

``go_backwards``: the input is read from t = T down to 1 and the output sequence
is returned in that processing order (Keras semantics, not flipped back).

``mask`` (N, T), optional, m_t = 1 for real steps and 0 for padding (what
``Embedding(mask_zero=True).compute_mask`` gives). A masked step keeps the state,
and its output repeats the previous output (0 before the first real step), as
Keras does::

    h_t   = m_t f(a_t) + (1 - m_t) h_{t-1}
    y_t   = h_t * s_t,  s_t = [some m_k = 1 for k <= t]
    da_t  = m_t dh_t * f'(a_t)
    dh_{t-1} = da_t R^T + (1 - m_t) dh_t       (a masked step passes dh straight back)
"""
from __future__ import annotations

import numpy as np

from . import tiers
from .ops import IN_PLACE_ACTIVATIONS
from .tensor import Function


ACTIVATIONS = IN_PLACE_ACTIVATIONS   # name -> (f in place, f' from the output), engine/ops.py


class SimpleRNN(Function):
    """The whole sequence h_1..h_T of a vanilla RNN as one graph node.

    Inputs: x (N, T, D), W (D, U), R (U, U), then b (U,) if ``use_bias`` and
    h0 (N, U) if ``has_h0`` (else h_0 = 0).
    Output: H (N, T, U) if ``return_sequences`` else h_T (N, U).
    Backward: (gx, gW, gR[, gb][, gh0]), gx only when x wants a gradient.
    """

    #: None, or an (N, T, U) array that backward fills with dL/dh_t of every step in processing
    #: order (attached to one node by GradientHealth's probe; the tier is asked only then)
    record_dh = None

    def __init__(self, activation="tanh", use_bias=True, has_h0=False,
                 return_sequences=True, go_backwards=False, mask=None):
        self.activation, self.use_bias, self.has_h0 = activation, use_bias, has_h0
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.mask = mask  # (N, T) bool or None; not an input: it has no gradient

    def forward(self, x, W, R, *rest):
        b = rest[0] if self.use_bias else None
        h0 = rest[-1] if self.has_h0 else None
        # what a tier saves is its own: the backward runs on the tier that ran the forward
        self.tier = tiers.current
        y, self.saved = self.tier.simple_rnn_forward(x, W, R, b, h0, self.activation, self.return_sequences,
                                                     self.go_backwards, self.mask)
        return y

    def backward(self, gy):
        x = self.inputs[0]
        need_gx = x is not None and x.requires_grad
        if self.record_dh is None:
            gx, gW, gR, gb, gh0 = self.tier.simple_rnn_backward(gy, self.saved, need_gx)
        else:
            gx, gW, gR, gb, gh0 = self.tier.simple_rnn_backward(gy, self.saved, need_gx, dh_out=self.record_dh)
        return (gx, gW, gR) + ((gb,) if self.use_bias else ()) + ((gh0,) if self.has_h0 else ())


def _check_mask(mask, x_shape):
    if mask is None:
        return None
    m = np.asarray(getattr(mask, "data", mask))
    if m.shape != tuple(x_shape[:2]):
        raise ValueError(f"simple_rnn: mask must have shape (batch, time) = {tuple(x_shape[:2])}, got {m.shape}")
    return m.astype(bool)


def _check_shapes(x, W, R, b, h0):
    x_shape, W_shape, R_shape = np.shape(getattr(x, "data", x)), np.shape(getattr(W, "data", W)), np.shape(getattr(R, "data", R))
    if len(x_shape) != 3 or x_shape[1] == 0:
        raise ValueError(f"simple_rnn: x must have shape (batch, time, features) with time >= 1, got {x_shape}")
    if len(W_shape) != 2 or W_shape[0] != x_shape[2]:
        raise ValueError(f"simple_rnn: kernel must have shape (features, units) = ({x_shape[2]}, U), got {W_shape}")
    U = W_shape[1]
    if R_shape != (U, U):
        raise ValueError(f"simple_rnn: recurrent kernel must have shape {(U, U)}, got {R_shape}")
    if b is not None and np.shape(getattr(b, "data", b)) != (U,):
        raise ValueError(f"simple_rnn: bias must have shape {(U,)}, got {np.shape(getattr(b, 'data', b))}")
    if h0 is not None and np.shape(getattr(h0, "data", h0)) != (x_shape[0], U):
        raise ValueError(f"simple_rnn: initial state must have shape {(x_shape[0], U)}, "
                         f"got {np.shape(getattr(h0, 'data', h0))}")


def simple_rnn(x, W, R, b=None, h0=None, activation="tanh", return_sequences=True, go_backwards=False,
               mask=None):
    """Run a vanilla RNN over ``x`` (N, T, D); see the module docstring for the math.

    Returns H (N, T, U) when ``return_sequences`` else h_T (N, U). ``b`` (U,),
    ``h0`` (N, U) and ``mask`` (N, T) are optional. ``activation``: "tanh",
    "relu", "sigmoid" or "linear".
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"simple_rnn: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    _check_shapes(x, W, R, b, h0)
    mask = _check_mask(mask, np.shape(getattr(x, "data", x)))
    fn = SimpleRNN(activation, b is not None, h0 is not None, return_sequences, go_backwards, mask)
    inputs = [x, W, R] + ([b] if b is not None else []) + ([h0] if h0 is not None else [])
    return fn(*inputs)
