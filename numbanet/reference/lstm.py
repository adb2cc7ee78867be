"""LSTM: the forward loop over time, and backpropagation through time gate by gate.

Notation: x (N, T, D), W kernel (D, 4U), R recurrent kernel (U, 4U), b (4U,),
h_0 and c_0 (N, U) (zeros unless given). The four column blocks of W, R and b are
the gates in Keras's order i, f, c, o; the candidate cell (Keras's "c" block) is
called g here, to keep c for the cell state. sigma is the recurrent activation
(sigmoid by default), phi the activation (tanh by default); both come from
``activations.FROM_OUTPUT``, each with its derivative read from its output.
Time runs in processing order t = 1..T (the input read from its end when
``go_backwards``; the outputs stay in that order, as in Keras).

Forward, one step::

    z_t = x_t W + h_{t-1} R + b          (N, 4U) = [z^i | z^f | z^g | z^o], (N, U) each
    i_t = sigma(z^i_t)                   input gate:  how much of g_t to write
    f_t = sigma(z^f_t)                   forget gate: how much of c_{t-1} to keep
    g_t = phi(z^g_t)                     candidate cell values
    o_t = sigma(z^o_t)                   output gate: how much of the cell to show
    c_t = f_t * c_{t-1} + i_t * g_t      cell state
    h_t = o_t * phi(c_t)                 hidden state, the step's output

``mask`` (N, T) marks real steps (m_t = 1) and padding (0). A masked step keeps
both states, and the output repeats the last real one (0 before the first), as
Keras does; the returned states h_T, c_T are the states after the last step (so
a row with no real step returns h_0, c_0 there while its output is 0)::

    h_t = m_t (o_t phi(c_t)) + (1 - m_t) h_{t-1}
    c_t = m_t (f_t c_{t-1} + i_t g_t) + (1 - m_t) c_{t-1}
    y_t = h_t s_t,   s_t = [some m_k = 1 for k <= t]

Backward. L reaches h_t through the output y_t (gy_t) and through z_{t+1}; it
reaches c_t through h_t and through c_{t+1}. Walking t = T..1 carrying
dh = dL/dh_t and dc = dL/dc_t (both start from the gradients of the returned
h_T and c_T, zero when the states are not returned), the chain rule through the
six lines above gives, for a real step (sigma' and phi' from the outputs:
sigmoid y(1 - y), tanh 1 - y^2, relu [y > 0], hard_sigmoid [0 < y < 1] / 6, linear 1)::

    dh_t   = gy_t s_t + (dh carried from t+1)
    dz^o_t = dh_t phi(c_t) sigma'(o_t)                 h = o phi(c):  dL/do = dh phi(c)
    dc_t   = dh_t o_t phi'(phi(c_t)) + (dc carried)    c feeds h_t here and c_{t+1} via f_{t+1}
    dz^i_t = dc_t g_t sigma'(i_t)                      c = f c' + i g:  dL/di = dc g
    dz^f_t = dc_t c_{t-1} sigma'(f_t)                                  dL/df = dc c'
    dz^g_t = dc_t i_t phi'(g_t)                                        dL/dg = dc i
    carried to t-1:  dh <- dz_t R^T,   dc <- dc_t f_t

and on a masked step (m_t = 0) dz_t = 0 and dh, dc pass to t-1 unchanged; in
general ``dh <- m_t dz_t R^T + (1 - m_t) dh_t`` and ``dc <- m_t dc_t f_t + (1 - m_t) dc_t``.
The weight and input gradients sum the per-step ones (z_t is linear in them)::

    gW = sum_t x_t^T dz_t (D, 4U)    gR = sum_t h_{t-1}^T dz_t (U, 4U)    gb = sum_t sum_n dz_t (4U,)
    gx_t = dz_t W^T (N, D)           gh_0, gc_0 = the dh, dc left after t = 1
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


def lstm_states(x, W, R, b=None, h0=None, c0=None, activation="tanh", recurrent_activation="sigmoid",
                go_backwards=False, mask=None):
    """The forward loop: (h (N, T+1, U), c (N, T+1, U), gates (N, T, 4U)).

    h[:, 0] = h_0, c[:, 0] = c_0 and h[:, t], c[:, t] are the states after step t in
    processing order; gates[:, t-1] = [i_t | f_t | g_t | o_t], the gate values of step t.
    """
    phi, sigma = FROM_OUTPUT[activation][0], FROM_OUTPUT[recurrent_activation][0]
    N, T, _ = x.shape
    U = R.shape[0]
    xs, m = _processing_order(x, mask, go_backwards)
    h = [np.zeros((N, U), x.dtype) if h0 is None else h0]
    c = [np.zeros((N, U), x.dtype) if c0 is None else c0]
    gates = []
    for t in range(T):
        z = xs[:, t] @ W + h[-1] @ R + (0 if b is None else b)      # z_t (N, 4U)
        i = sigma(z[:, 0 * U:1 * U])                                 # input gate
        f = sigma(z[:, 1 * U:2 * U])                                 # forget gate
        g = phi(z[:, 2 * U:3 * U])                                   # candidate cell
        o = sigma(z[:, 3 * U:4 * U])                                 # output gate
        c_new = f * c[-1] + i * g
        h_new = o * phi(c_new)
        c.append(m[:, t] * c_new + (1 - m[:, t]) * c[-1])            # masked rows keep c_{t-1}
        h.append(m[:, t] * h_new + (1 - m[:, t]) * h[-1])            # ... and h_{t-1}
        gates.append(np.concatenate([i, f, g, o], axis=1))
    # T+1 arrays (N, U) -> (N, T+1, U); T arrays (N, 4U) -> (N, T, 4U)
    return np.stack(h, axis=1), np.stack(c, axis=1), np.stack(gates, axis=1)


def lstm_forward(x, W, R, b=None, h0=None, c0=None, activation="tanh", recurrent_activation="sigmoid",
                 go_backwards=False, mask=None):
    """(y (N, T, U), h_T (N, U), c_T (N, U)): the outputs in processing order and the final states.

    fast tier: numbanet.fast.lstm.lstm_forward.
    """
    h, c, _ = lstm_states(x, W, R, b, h0, c0, activation, recurrent_activation, go_backwards, mask)
    _, m = _processing_order(x, mask, go_backwards)
    y = h[:, 1:] * (np.cumsum(m, axis=1) > 0)                        # y_t = h_t s_t
    return y, h[:, -1], c[:, -1]


def lstm_backward(gy, gh, gc, x, W, R, b=None, h0=None, c0=None, activation="tanh",
                  recurrent_activation="sigmoid", go_backwards=False, mask=None, dh_out=None):
    """BPTT -> (gx (N, T, D), gW (D, 4U), gR (U, 4U), gb (4U,), gh0 (N, U), gc0 (N, U)).

    gy (N, T, U) is the gradient of ``lstm_forward``'s y (for y_T alone: zeros except
    gy[:, -1]), gh and gc (N, U) those of h_T and c_T (zeros when the states are not
    used); gx comes back in the caller's time order. The states and gates are
    recomputed by the forward loop: the reference keeps nothing between calls.
    ``dh_out`` (N, T, U), when given, receives dh_t = dL/dh_t of every step in
    processing order (the carried gradient just after gy_t is added).
    fast tier: numbanet.fast.lstm.lstm_backward.
    """
    dphi, dsigma = FROM_OUTPUT[activation][1], FROM_OUTPUT[recurrent_activation][1]
    phi = FROM_OUTPUT[activation][0]
    h, c, gates = lstm_states(x, W, R, b, h0, c0, activation, recurrent_activation, go_backwards, mask)
    N, T, _ = x.shape
    U = R.shape[0]
    xs, m = _processing_order(x, mask, go_backwards)
    gy = gy * (np.cumsum(m, axis=1) > 0)                             # through y_t = h_t s_t
    gx, gW, gR = np.zeros(xs.shape, x.dtype), np.zeros_like(W), np.zeros_like(R)
    gb = np.zeros(4 * U, x.dtype)
    dh, dc = gh.copy(), gc.copy()                                    # dL/dh_T, dL/dc_T from the states
    for t in range(T - 1, -1, -1):
        i, f, g, o = (gates[:, t, k * U:(k + 1) * U] for k in range(4))
        c_prev, c_t = c[:, t], c[:, t + 1]                           # c[:, t] is c_{t-1}
        dh = dh + gy[:, t]                                           # dh_t
        if dh_out is not None:
            dh_out[:, t] = dh
        phi_c = phi(c_t)
        dzo = dh * phi_c * dsigma(o)                                 # output gate
        dc_t = dc + dh * o * dphi(phi_c)                             # cell state
        dzi = dc_t * g * dsigma(i)                                   # input gate
        dzf = dc_t * c_prev * dsigma(f)                              # forget gate
        dzg = dc_t * i * dphi(g)                                     # candidate cell
        dz = m[:, t] * np.concatenate([dzi, dzf, dzg, dzo], axis=1)  # dz_t (N, 4U); 0 on masked steps
        gx[:, t] = dz @ W.T
        gW += xs[:, t].T @ dz
        gR += h[:, t].T @ dz                                         # h[:, t] is h_{t-1}
        gb += dz.sum(axis=0)
        dh = dz @ R.T + (1 - m[:, t]) * dh                           # dh_{t-1}
        dc = m[:, t] * dc_t * f + (1 - m[:, t]) * dc                 # dc_{t-1}
    return (gx[:, ::-1] if go_backwards else gx), gW, gR, gb, dh, dc
