"""The gated recurrent unit (GRU): a loop over time forward, and BPTT backward.

Notation: x (N, T, D), h_0 (N, U) (zeros unless given), the kernel W (D, 3U) and the
recurrent kernel R (U, 3U) split by columns into the gates z (update), r (reset) and
c (the candidate, Keras's ``hh``): W = [W_z | W_r | W_c], R = [R_z | R_r | R_c].
sigma is the recurrent activation (default sigmoid), phi the activation (default
tanh); both are ``activations.FROM_OUTPUT`` names, with their derivatives read from
their outputs. Time runs in processing order t = 1..T (the input read from its end
when ``go_backwards``; the output stays in that order, as in Keras).

Keras 3's two variants (``keras/src/layers/rnn/gru.py``, ``GRUCell.call``):

``reset_after=True`` (the default; bias (2, 3U): b_x = bias[0] for the input
products, b_h = bias[1] for the recurrent ones)::

    z_t = sigma(x_t W_z + b_xz + h_{t-1} R_z + b_hz)
    r_t = sigma(x_t W_r + b_xr + h_{t-1} R_r + b_hr)
    q_t = h_{t-1} R_c + b_hc                           the candidate's recurrent product
    c_t = phi(x_t W_c + b_xc + r_t * q_t)              the reset gate applied AFTER R_c
    h_t = z_t * h_{t-1} + (1 - z_t) * c_t

``reset_after=False`` (bias (3U,), input side only)::

    z_t = sigma(x_t W_z + b_z + h_{t-1} R_z)
    r_t = sigma(x_t W_r + b_r + h_{t-1} R_r)
    c_t = phi(x_t W_c + b_c + (r_t * h_{t-1}) R_c)     the reset gate applied BEFORE R_c
    h_t = z_t * h_{t-1} + (1 - z_t) * c_t

``mask`` (N, T) marks real steps (1) and padding (0). A masked step keeps the state,
and the output repeats the last real one (0 before the first), as Keras does:

    h_t = m_t h_t' + (1 - m_t) h_{t-1}          y_t = h_t s_t,  s_t = [some m_k = 1, k <= t]

Backpropagation through time walks t = T..1 carrying dh = dL/dh_t, which gets gy_t
s_t directly and the rest through h_{t+1}. Each gate's gradient, by the chain rule
through the lines above (a_z, a_r, a_c are the pre-activations of z, r, c)::

    dc_t   = dh_t (1 - z_t)                       h_t is linear in c_t with slope 1 - z_t
    dz_t   = dh_t (h_{t-1} - c_t)                 ... and in z_t with slope h_{t-1} - c_t
    da_c   = m_t dc_t phi'(c_t)
  reset_after=True:
    dq_t   = da_c r_t                             a_c = ... + r_t q_t
    dr_t   = da_c q_t
  reset_after=False:
    d(rh)  = da_c R_c^T                           a_c = ... + (r_t h_{t-1}) R_c
    dr_t   = d(rh) h_{t-1}
    da_z   = m_t dz_t sigma'(z_t)                 da_r = m_t dr_t sigma'(r_t)

The weights collect every step's contribution (one row block per gate)::

    gW   += x_t^T [da_z | da_r | da_c]            gb_x += sum_n [da_z | da_r | da_c]
  reset_after=True:
    gR   += h_{t-1}^T [da_z | da_r | dq_t]        gb_h += sum_n [da_z | da_r | dq_t]
  reset_after=False:
    gR_z += h_{t-1}^T da_z    gR_r += h_{t-1}^T da_r    gR_c += (r_t h_{t-1})^T da_c
    gx_t  = [da_z | da_r | da_c] W^T

and the state passes its gradient back through every place h_{t-1} appears
(the z-mixing, the gates' recurrent products and, before reset, r_t h_{t-1})::

    reset_after=True:   dh_{t-1} = z_t dh_t + [da_z | da_r | dq_t] R^T
    reset_after=False:  dh_{t-1} = z_t dh_t + da_z R_z^T + da_r R_r^T + d(rh) r_t
    masked step:        dh_{t-1} = dh_t  (all da are 0 and z_t drops out)

What is left after the loop is gh_0.
"""
from __future__ import annotations

import numpy as np

from .activations import FROM_OUTPUT
from .recurrent import _processing_order


def _split_bias(b, U, reset_after, dtype):
    """(b_x (3U,), b_h (3U,)): the input-side and recurrent-side biases (zeros where there are none)."""
    zeros = np.zeros(3 * U, dtype=dtype)
    if b is None:
        return zeros, zeros
    return (b[0], b[1]) if reset_after else (b, zeros)


def gru_cell(x_t, h_prev, W, R, b_x, b_h, activation="tanh", recurrent_activation="sigmoid", reset_after=True):
    """One step: (z, r, q, c, h), each (N, U), from x_t (N, D) and h_{t-1} (N, U).

    q is the candidate's recurrent product h_{t-1} R_c + b_hc (reset_after) or
    r h_{t-1} (reset_after=False): what the backward needs to reach r.
    """
    phi, sigma = FROM_OUTPUT[activation][0], FROM_OUTPUT[recurrent_activation][0]
    U = h_prev.shape[1]
    Wz, Wr, Wc = W[:, :U], W[:, U:2 * U], W[:, 2 * U:]
    Rz, Rr, Rc = R[:, :U], R[:, U:2 * U], R[:, 2 * U:]
    z = sigma(x_t @ Wz + b_x[:U] + h_prev @ Rz + b_h[:U])
    r = sigma(x_t @ Wr + b_x[U:2 * U] + h_prev @ Rr + b_h[U:2 * U])
    if reset_after:
        q = h_prev @ Rc + b_h[2 * U:]
        c = phi(x_t @ Wc + b_x[2 * U:] + r * q)
    else:
        q = r * h_prev
        c = phi(x_t @ Wc + b_x[2 * U:] + q @ Rc)
    h = z * h_prev + (1 - z) * c
    return z, r, q, c, h


def gru_steps(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
              go_backwards=False, mask=None):
    """Every step's (z, r, q, c) and the states: (steps, h), h (N, T+1, U) with h[:, 0] = h_0.

    ``steps[t]`` is ``gru_cell``'s (z, r, q, c) at step t + 1 in processing order;
    a masked row keeps h_{t-1} (its gates are computed and then not used).
    """
    U = R.shape[0]
    b_x, b_h = _split_bias(b, U, reset_after, x.dtype)
    xs, m = _processing_order(x, mask, go_backwards)
    h = [np.zeros((x.shape[0], U), dtype=x.dtype) if h0 is None else h0]
    steps = []
    for t in range(x.shape[1]):
        z, r, q, c, h_new = gru_cell(xs[:, t], h[-1], W, R, b_x, b_h, activation, recurrent_activation,
                                     reset_after)
        steps.append((z, r, q, c))
        h.append(m[:, t] * h_new + (1 - m[:, t]) * h[-1])               # masked rows keep h_{t-1}
    return steps, np.stack(h, axis=1)                                   # T+1 arrays (N, U) -> (N, T+1, U)


def gru_forward(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                go_backwards=False, mask=None):
    """y (N, T, U), the whole output sequence in processing order (y_t = h_t s_t).

    fast tier: numbanet.fast.gru.gru_forward (with return_sequences=True).
    """
    _, h = gru_steps(x, W, R, b, h0, activation, recurrent_activation, reset_after, go_backwards, mask)
    _, m = _processing_order(x, mask, go_backwards)
    return h[:, 1:] * (np.cumsum(m, axis=1) > 0)


def gru_backward(gy, x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, go_backwards=False, mask=None, dh_out=None):
    """BPTT -> (gx (N, T, D), gW (D, 3U), gR (U, 3U), gb (bias's shape), gh0 (N, U)).

    gy (N, T, U) is the gradient of ``gru_forward``'s output (for h_T alone: zeros
    except gy[:, -1]); gx comes back in the caller's time order. The gates are
    recomputed by the forward loop: the reference keeps nothing between calls.
    ``dh_out`` (N, T, U), when given, receives dh_t = dL/dh_t of every step in
    processing order (the carried gradient just after gy_t is added).
    fast tier: numbanet.fast.gru.gru_backward.
    """
    dphi, dsigma = FROM_OUTPUT[activation][1], FROM_OUTPUT[recurrent_activation][1]
    U = R.shape[0]
    Rz, Rr, Rc = R[:, :U], R[:, U:2 * U], R[:, 2 * U:]
    steps, h = gru_steps(x, W, R, b, h0, activation, recurrent_activation, reset_after, go_backwards, mask)
    xs, m = _processing_order(x, mask, go_backwards)
    gy = gy * (np.cumsum(m, axis=1) > 0)                                # through y_t = h_t s_t
    gx, gW, gR = np.zeros(xs.shape, x.dtype), np.zeros_like(W), np.zeros_like(R)
    gb_x, gb_h = np.zeros(3 * U, x.dtype), np.zeros(3 * U, x.dtype)
    dh = np.zeros_like(h[:, 0])                                         # nothing carried past t = T
    for t in range(x.shape[1] - 1, -1, -1):
        z, r, q, c = steps[t]
        h_prev = h[:, t]                                                # h[:, t] is h_{t-1}
        dh = dh + gy[:, t]                                              # dh_t
        if dh_out is not None:
            dh_out[:, t] = dh
        dc = dh * (1 - z)
        dz = dh * (h_prev - c)
        da_c = m[:, t] * dc * dphi(c)
        if reset_after:
            dq = da_c * r
            dr = da_c * q
        else:
            drh = da_c @ Rc.T
            dr = drh * h_prev
        da_z = m[:, t] * dz * dsigma(z)
        da_r = m[:, t] * dr * dsigma(r)
        da_x = np.concatenate([da_z, da_r, da_c], axis=1)               # (N, 3U), the input side
        gW += xs[:, t].T @ da_x
        gb_x += da_x.sum(axis=0)
        gx[:, t] = da_x @ W.T
        if reset_after:
            da_h = np.concatenate([da_z, da_r, dq], axis=1)             # (N, 3U), the recurrent side
            gR += h_prev.T @ da_h
            gb_h += da_h.sum(axis=0)
            dh = m[:, t] * z * dh + (1 - m[:, t]) * dh + da_h @ R.T     # dh_{t-1}
        else:
            gR[:, :U] += h_prev.T @ da_z
            gR[:, U:2 * U] += h_prev.T @ da_r
            gR[:, 2 * U:] += q.T @ da_c                                 # q = r_t h_{t-1}
            dh = m[:, t] * z * dh + (1 - m[:, t]) * dh + da_z @ Rz.T + da_r @ Rr.T + drh * r
    gb = None if b is None else (np.stack([gb_x, gb_h]) if reset_after else gb_x)
    return (gx[:, ::-1] if go_backwards else gx), gW, gR, gb, dh
