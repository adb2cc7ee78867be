"""The LSTM's fast forward loop and backpropagation through time.

Mirrors ``numbanet.reference.tier.lstm_forward`` / ``lstm_backward`` (the math is in
``numbanet/engine/lstm.py`` and ``numbanet/reference/lstm.py``; the output layout with
the states stacked on is in the comment above them in ``reference/tier.py``).
How it is made fast:

* the input products z_t = x_t W + b of all steps are ONE (T*N, D) @ (D, 4U) product
  before the loop; after the loop gW, gR and gx are one product each over all T*N rows;
* each step makes ONE (N, U) @ (U, 4U) product for the recurrent part of all four
  gates, and backward ONE (N, 4U) @ (4U, U) product dz_t R^T;
* the arrays are time-major (T, N, .), so step t is one contiguous block for BLAS;
  the gate pre-activations are overwritten by the gate values in place (G), and
  the states are kept with h_0, c_0 in front (Hs, Cs (T+1, N, U)) so h_{t-1} of every
  step is the contiguous slice Hs[:-1] for gR's single product;
* the gate nonlinearities are in-place NumPy passes over whole column blocks (SIMD
  exp/tanh), the rest of the cell is one Numba pass (``kernels/lstm.py``); with
  sigmoid gates and a tanh cell (Keras's defaults) the sigmoid's negation, 1 + e and
  reciprocal ride in the Numba passes, leaving one exp pass per block; the
  backward reads the kept gate values and phi(c_t) (TC) and recomputes nothing;
* the loops allocate nothing: each step writes into preallocated buffers;
* with more than one thread (``set_num_threads``) and at least RECURRENT_SPLIT_MIN_WORK
  multiply-adds, the batch is cut into row blocks and each thread runs the whole
  recurrence of its rows, forward and backward (``split_rows``): the rows of a batch
  never meet, so the threads need no barrier per step, and each step's gate work is
  split as well as its product; the weights' gradients are the sum of the blocks'.
  The blocks run through ``parallel.run``, which holds BLAS to one thread per product
  from then on (process-wide), so two levels of threads never compete for the cores.

Routes, recorded in ``routes.LAST``: "time_major" without a mask, "time_major_masked" with
one; "_split" added when the rows were cut over the threads.
"""
from __future__ import annotations

import numpy as np

from . import parallel
from .kernels.lstm import (ACTIVATION_CODES, cell_backward, cell_output, cell_state, sigmoid_cell_state,
                           sigmoid_gates_in)
from .routes import LAST
from .tuning import RECURRENT_SPLIT_MIN_WORK


def _rows(a, r0, r1):
    return None if a is None else a[r0:r1]


class SplitSaved(tuple):
    """What ``split_rows`` keeps for the backward: (blocks [(r0, r1), ...], [each block's saved])."""


def split_rows(forward, x, row_args, args, work, op):
    """forward(x, *row_args, *args) -> (y, saved), run over row blocks of the batch on the threads.

    x (N, T, D) and every array of ``row_args`` (h0 (N, U), c0, mask (N, T), or None) are cut
    along their first axis; y (N, ...) is the blocks' outputs stacked. ``work`` is the call's
    multiply-adds: below RECURRENT_SPLIT_MIN_WORK, or with one thread, ``forward`` runs once
    on the whole batch and its own ``saved`` comes back. Otherwise saved is a ``SplitSaved``
    (blocks, [each block's saved]) for ``backward_rows``.
    """
    parts = parallel.split(len(x)) if parallel.num_threads() > 1 and work >= RECURRENT_SPLIT_MIN_WORK else [(0, len(x))]
    if len(parts) == 1:
        return forward(x, *row_args, *args)
    outs = parallel.run(lambda r0, r1, _: forward(x[r0:r1], *(_rows(a, r0, r1) for a in row_args), *args), parts)
    LAST[op] += "_split"
    return np.concatenate([y for y, _ in outs]), SplitSaved((parts, [saved for _, saved in outs]))


def backward_rows(backward, gy, saved, need_gx, row_outputs, op, dh_out=None):
    """The backward of ``split_rows``: each block's ``backward(gy rows, its saved, need_gx)`` on
    its thread; the outputs at the indices ``row_outputs`` (gx, gh0, ...: one row per sample)
    are stacked, the others (the weights' gradients) summed; None stays None. ``dh_out``
    (N, T, U) or None: each block writes dL/dh_t of its own rows into its slice."""
    if not isinstance(saved, SplitSaved):
        return backward(gy, saved, need_gx, dh_out)
    parts, blocks = saved
    outs = parallel.run(lambda r0, r1, i: backward(gy[r0:r1], blocks[i], need_gx,
                                                   None if dh_out is None else dh_out[r0:r1]), parts)
    grads = []
    for k, first in enumerate(outs[0]):
        if first is None:
            grads.append(None)
        elif k in row_outputs:
            grads.append(np.concatenate([o[k] for o in outs]))
        else:                                                 # each block's own array: summed in place
            grads.append(parallel.summed([o[k] for o in outs]))
    LAST[op] += "_split"
    return tuple(grads)


def _sigmoid_(a, out):
    """1 / (1 + exp(-a)) written into ``out``, which may be ``a`` itself or a strided column block.

    -a is a multiplication by -1: NumPy 2.4's in-place ``np.negative`` on a view whose
    stride is 16 bytes (float32) or 64 bytes (float64) writes wrong elements, and a
    gate block of one unit, G[t][:, 3:4] for U = 1, is such a view. exp overflows to inf
    for a < -88 (float32), giving the correctly rounded 0, so that warning is silenced.
    """
    np.multiply(a, -1, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _hard_sigmoid_(a, out):
    """Keras 3's hard_sigmoid, clip(a / 6 + 1/2, 0, 1), written into ``out``."""
    np.divide(a, 6, out=out)
    out += 0.5
    np.clip(out, 0, 1, out=out)


# name -> f(a, out): out = f(a); ``out`` may be ``a`` itself
ACTIVATIONS_INTO = {
    "linear": lambda a, out: None if out is a else np.copyto(out, a),
    "sigmoid": _sigmoid_,
    "tanh": lambda a, out: np.tanh(a, out=out),
    "relu": lambda a, out: np.maximum(a, 0, out=out),
    "hard_sigmoid": _hard_sigmoid_,
}


def _time_major_mask(mask, go_backwards, N, T, dtype):
    """m (T, N) bool (all True without a mask) and seen (T, N, 1) = [a real step up to t], or None."""
    if mask is None:
        return np.ones((T, N), np.bool_), None
    m = np.ascontiguousarray((mask[:, ::-1] if go_backwards else mask).T, dtype=np.bool_)   # (N, T) -> (T, N)
    return m, (np.cumsum(m, axis=0) > 0).astype(dtype)[:, :, None]


def _recur(G, Hs, Cs, TC, R, m, phi, sigma):
    """The forward loop over G (T, N, 4U), which holds z_t = x_t W + b on entry and the gate values on exit."""
    T, N, U = TC.shape
    rec = np.empty((N, 4 * U), G.dtype)                        # h_{t-1} R, reused every step
    for t in range(T):
        np.matmul(Hs[t], R, out=rec)                           # (N, U) @ (U, 4U): all four gates at once
        z = G[t]
        z += rec                                               # z_t
        zif, zg, zo = z[:, :2 * U], z[:, 2 * U:3 * U], z[:, 3 * U:]
        sigma(zif, zif)                                        # i_t, f_t
        phi(zg, zg)                                            # g_t
        sigma(zo, zo)                                          # o_t
        cell_state(z, Cs[t], m[t], Cs[t + 1])                  # c_t = f c_{t-1} + i g
        phi(Cs[t + 1], TC[t])                                  # phi(c_t), kept for backward
        cell_output(z, TC[t], Hs[t], m[t], Hs[t + 1])          # h_t = o phi(c_t)


def _recur_sigmoid_tanh(G, Hs, Cs, TC, R, m):
    """``_recur`` for recurrent_activation="sigmoid", activation="tanh" (Keras's defaults), with
    the sigmoids finished inside the Numba passes (``kernels/lstm.py``): per step one product,
    two Numba passes and four NumPy passes (exp of i|f and of o, tanh of g and of c_t)."""
    T, N, U = TC.shape
    rec = np.empty((N, 4 * U), G.dtype)
    one = G.dtype.type(1)
    with np.errstate(over="ignore"):                           # exp(-z) = inf for z < -88 (float32): sigmoid 0
        for t in range(T):
            np.matmul(Hs[t], R, out=rec)                       # (N, U) @ (U, 4U): all four gates at once
            z = G[t]
            sigmoid_gates_in(z, rec)                           # -z_t on i, f, o; z_t on g
            np.exp(z[:, :2 * U], out=z[:, :2 * U])
            np.exp(z[:, 3 * U:], out=z[:, 3 * U:])
            np.tanh(z[:, 2 * U:3 * U], out=z[:, 2 * U:3 * U])  # g_t
            sigmoid_cell_state(z, Cs[t], m[t], Cs[t + 1], one)  # i_t, f_t, o_t; c_t = f c_{t-1} + i g
            np.tanh(Cs[t + 1], out=TC[t])                      # phi(c_t), kept for backward
            cell_output(z, TC[t], Hs[t], m[t], Hs[t + 1])      # h_t = o phi(c_t)


def lstm_forward(x, W, R, b=None, h0=None, c0=None, activation="tanh", recurrent_activation="sigmoid",
                 return_sequences=True, return_state=False, go_backwards=False, mask=None):
    """(y, saved).   reference: numbanet.reference.tier.lstm_forward."""
    N, T, D = x.shape
    work = N * T * (D + R.shape[0]) * R.shape[1]              # multiply-adds of the products
    return split_rows(_forward, x, (h0, c0, mask), (W, R, b, activation, recurrent_activation, return_sequences,
                                                    return_state, go_backwards), work, "lstm_forward")


def _forward(x, h0, c0, mask, W, R, b, activation, recurrent_activation, return_sequences, return_state,
             go_backwards):
    """``lstm_forward`` on one block of rows (or the whole batch), on the calling thread."""
    N, T, D = x.shape
    U = R.shape[0]
    dt = x.dtype
    if go_backwards:
        x = x[:, ::-1]                                         # read time in reverse
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))           # (N, T, D) -> (T, N, D)
    G = xt.reshape(T * N, D) @ W                              # z_t - h_{t-1} R for every t: (T*N, D) @ (D, 4U)
    if b is not None:
        G += b
    G = G.reshape(T, N, 4 * U)                                # (T*N, 4U) -> (T, N, 4U)
    Hs, Cs, TC = np.empty((T + 1, N, U), dt), np.empty((T + 1, N, U), dt), np.empty((T, N, U), dt)
    Hs[0] = 0 if h0 is None else h0
    Cs[0] = 0 if c0 is None else c0
    m, seen = _time_major_mask(mask, go_backwards, N, T, dt)
    if activation == "tanh" and recurrent_activation == "sigmoid":
        _recur_sigmoid_tanh(G, Hs, Cs, TC, R, m)
    else:
        _recur(G, Hs, Cs, TC, R, m, ACTIVATIONS_INTO[activation], ACTIVATIONS_INTO[recurrent_activation])
    LAST["lstm_forward"] = "time_major" if seen is None else "time_major_masked"
    saved = (xt, G, Hs, Cs, TC, W, R, m, seen, activation, recurrent_activation, return_sequences, return_state,
             go_backwards, b is not None, h0 is not None, c0 is not None)
    Y = Hs[1:] if seen is None else Hs[1:] * seen             # outputs (T, N, U): 0 before the first real step
    if not return_sequences:
        Y = Y[-1:]                                             # (1, N, U)
    if not return_state:
        return (np.ascontiguousarray(Y.transpose(1, 0, 2)) if return_sequences else Y[0].copy()), saved
    out = np.empty((N, Y.shape[0] + 2, U), dt)                # [y .., h_T, c_T] along the time axis
    out[:, :-2] = Y.transpose(1, 0, 2)                         # (T, N, U) -> (N, T, U)
    out[:, -2], out[:, -1] = Hs[-1], Cs[-1]
    return out, saved


def _bptt(gy, G, Cs, TC, R, m, seen, phi_code, sigma_code, return_sequences, return_state, dh_out=None):
    """The backward loop t = T..1: dZ (T, N, 4U) and the dh, dc left at the end (gh_0, gc_0).

    dh_t goes into dh_out[:, t] when dh_out is given.
    """
    T, N, U = TC.shape
    dh, dc = np.zeros((N, U), G.dtype), np.zeros((N, U), G.dtype)
    if return_state:                                           # the states' own gradients start the carry
        dh += gy[:, -2]
        dc += gy[:, -1]
        gy = gy[:, :-2]
    gY = gy.transpose(1, 0, 2) if return_sequences else gy.reshape(N, 1, U).transpose(1, 0, 2)  # (T|1, N, U)
    if seen is not None:
        gY = gY * (seen if return_sequences else seen[-1:])    # y_t = h_t s_t
    dZ = np.empty_like(G)
    rec = np.empty((N, U), G.dtype)
    RT = np.ascontiguousarray(R.T)                             # (4U, U): the product with R^T as a view ran 1.5x slower
    for t in range(T - 1, -1, -1):
        if return_sequences:
            dh += gY[t]                                        # dh_t = gy_t + (carried from t+1)
        elif t == T - 1:
            dh += gY[0]
        if dh_out is not None:
            dh_out[:, t] = dh                                  # before cell_backward zeroes dh
        cell_backward(G[t], Cs[t], TC[t], m[t], dh, dc, dZ[t], phi_code, sigma_code)
        if seen is None:
            np.matmul(dZ[t], RT, out=dh)                       # dh_{t-1} = dz_t R^T
        else:                                                  # masked rows kept dh_t: add dz_t R^T (0 there)
            np.matmul(dZ[t], RT, out=rec)
            dh += rec
    return dZ, dh, dc


def lstm_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx | None, gW, gR, gb | None, gh0 | None, gc0 | None).   reference: numbanet.reference.tier.lstm_backward.

    dh_out: None, or an (N, T, U) array that receives dL/dh_t of every step in processing order.
    """
    return backward_rows(_backward, gy, saved, need_gx, (0, 4, 5), "lstm_backward", dh_out)


def _backward(gy, saved, need_gx, dh_out=None):
    """``lstm_backward`` of one block of rows (or the whole batch), on the calling thread."""
    (xt, G, Hs, Cs, TC, W, R, m, seen, activation, recurrent_activation, return_sequences, return_state,
     go_backwards, has_b, has_h0, has_c0) = saved
    T, N, U = TC.shape
    D = xt.shape[2]
    dZ, gh0, gc0 = _bptt(gy, G, Cs, TC, R, m, seen, ACTIVATION_CODES[activation],
                         ACTIVATION_CODES[recurrent_activation], return_sequences, return_state, dh_out)
    dZ2 = dZ.reshape(T * N, 4 * U)                            # (T, N, 4U) -> (T*N, 4U)
    gW = xt.reshape(T * N, D).T @ dZ2                          # sum_t x_t^T dz_t          (D, 4U)
    gR = Hs[:-1].reshape(T * N, U).T @ dZ2                     # sum_t h_{t-1}^T dz_t      (U, 4U)
    gb = dZ2.sum(axis=0) if has_b else None                    # (4U,)
    gx = None
    if need_gx:
        gx = (dZ2 @ W.T).reshape(T, N, D).transpose(1, 0, 2)  # (T*N, D) -> (N, T, D)
        if go_backwards:
            gx = gx[:, ::-1]                                   # back to the caller's time order
        gx = np.ascontiguousarray(gx)
    LAST["lstm_backward"] = "time_major" if seen is None else "time_major_masked"
    return gx, gW, gR, gb, (gh0 if has_h0 else None), (gc0 if has_c0 else None)
