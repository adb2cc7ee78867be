"""The vanilla recurrent network (SimpleRNN): a loop over time forward, and BPTT backward.

Notation: x (N, T, D), W kernel (D, U), R recurrent kernel (U, U), b (U,), h_0 (N, U)
(zeros unless given), f the activation (``activations.FROM_OUTPUT``: tanh, relu,
sigmoid, linear). Time runs in processing order t = 1..T (the input read from its
end when ``go_backwards``; the output stays in that order, as in Keras):

    a_t = x_t W + h_{t-1} R + b          h_t = f(a_t)

``mask`` (N, T) marks real steps (1) and padding (0). A masked step keeps the state,
and the output repeats the last real one (0 before the first):

    h_t = m_t f(a_t) + (1 - m_t) h_{t-1}        y_t = h_t s_t,  s_t = [some m_k = 1, k <= t]

Backpropagation through time walks t = T..1 carrying dh = dL/dh_t, which gets
gy_t directly and the rest through h_{t+1}:

    dh_t     = gy_t s_t + (carried from t+1)
    da_t     = m_t dh_t f'(a_t)              (f' read from h_t)
    gx_t = da_t W^T    gW += x_t^T da_t    gR += h_{t-1}^T da_t    gb += sum_n da_t
    dh_{t-1} = da_t R^T + (1 - m_t) dh_t     (what is left at the end is gh_0)
"""
from __future__ import annotations

import numpy as np

from .activations import FROM_OUTPUT


def _processing_order(x, mask, go_backwards):
    """x (N, T, D) and m (N, T, 1) in the order the steps run (m = 1 everywhere without a mask)."""
    m = np.ones(x.shape[:2], dtype=x.dtype) if mask is None else np.asarray(mask, dtype=x.dtype)
    if go_backwards:
        x, m = x[:, ::-1], m[:, ::-1]
    return x, m[:, :, None]


def simple_rnn_states(x, W, R, b=None, h0=None, activation="tanh", go_backwards=False, mask=None):
    """h (N, T+1, U): h[:, 0] = h_0, h[:, t] = h_t, the state after step t in processing order."""
    f = FROM_OUTPUT[activation][0]
    xs, m = _processing_order(x, mask, go_backwards)
    h = [np.zeros((x.shape[0], W.shape[1]), dtype=x.dtype) if h0 is None else h0]
    for t in range(x.shape[1]):
        a = xs[:, t] @ W + h[-1] @ R + (0 if b is None else b)   # a_t (N, U)
        h.append(m[:, t] * f(a) + (1 - m[:, t]) * h[-1])          # masked rows keep h_{t-1}
    return np.stack(h, axis=1)                                      # T+1 arrays (N, U) -> (N, T+1, U)


def simple_rnn_forward(x, W, R, b=None, h0=None, activation="tanh", go_backwards=False, mask=None):
    """y (N, T, U), the whole output sequence in processing order (h_T is y[:, -1]).

    fast tier: numbanet.fast.recurrent.simple_rnn_forward (with return_sequences=True).
    """
    h = simple_rnn_states(x, W, R, b, h0, activation, go_backwards, mask)[:, 1:]
    _, m = _processing_order(x, mask, go_backwards)
    return h * (np.cumsum(m, axis=1) > 0)                            # y_t = h_t s_t


def simple_rnn_backward(gy, x, W, R, b=None, h0=None, activation="tanh", go_backwards=False, mask=None,
                        dh_out=None):
    """BPTT -> (gx (N, T, D), gW (D, U), gR (U, U), gb (U,), gh0 (N, U)).

    gy (N, T, U) is the gradient of ``simple_rnn_forward``'s output (for h_T alone:
    zeros except gy[:, -1]); gx comes back in the caller's time order. The states
    are recomputed by the forward loop: the reference keeps nothing between calls.
    ``dh_out`` (N, T, U), when given, receives dh_t = dL/dh_t of every step in
    processing order (the carried gradient just after gy_t is added).
    fast tier: numbanet.fast.recurrent.simple_rnn_backward.
    """
    df = FROM_OUTPUT[activation][1]
    h = simple_rnn_states(x, W, R, b, h0, activation, go_backwards, mask)   # (N, T+1, U)
    xs, m = _processing_order(x, mask, go_backwards)
    gy = gy * (np.cumsum(m, axis=1) > 0)                             # through y_t = h_t s_t
    gx, gW, gR, gb = np.zeros(xs.shape, x.dtype), np.zeros_like(W), np.zeros_like(R), np.zeros(W.shape[1], x.dtype)
    dh = np.zeros_like(h[:, 0])                                      # nothing carried past t = T
    for t in range(x.shape[1] - 1, -1, -1):
        dh = dh + gy[:, t]                                           # dh_t
        if dh_out is not None:
            dh_out[:, t] = dh
        da = m[:, t] * dh * df(h[:, t + 1])                          # da_t (N, U)
        gx[:, t] = da @ W.T
        gW += xs[:, t].T @ da
        gR += h[:, t].T @ da                                         # h[:, t] is h_{t-1}
        gb += da.sum(axis=0)
        dh = da @ R.T + (1 - m[:, t]) * dh                           # dh_{t-1}
    return (gx[:, ::-1] if go_backwards else gx), gW, gR, gb, dh
