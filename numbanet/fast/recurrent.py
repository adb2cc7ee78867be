"""SimpleRNN's fast forward loop and backpropagation through time.

Mirrors ``numbanet.reference.tier.simple_rnn_forward`` / ``simple_rnn_backward``
(the math is in ``numbanet/engine/recurrent.py`` and ``numbanet/reference/recurrent.py``).
How it is made fast:

* the input products z_t = x_t W + b of all steps are ONE (T*N, D) @ (D, U) product,
  and after the loop gW, gR, gx are one product each over all T*N rows;
* the arrays are time-major (T, N, .), so that step t is one contiguous (N, U) block
  for BLAS. Keeping the caller's (N, T, .) layout and stepping through strided views
  saves three transposed copies but was slower (figures in
  ``benchmarks/results/tuning.md``, "SimpleRNN layout"): rows T*U apart thrash the cache;
* each step of either loop writes into preallocated buffers (the loops allocate
  nothing), and f is applied in place (``ops.IN_PLACE_ACTIVATIONS``; a float32 tanh
  by ``kernels/exp32.py``'s vectorised polynomial, NumPy's float32 tanh being a scalar
  loop on AVX2 machines);
* with more than one thread (``set_num_threads``) and at least RECURRENT_SPLIT_MIN_WORK
  multiply-adds, the batch is cut into row blocks and each thread runs the whole
  recurrence of its rows, forward and backward, as the LSTM's and the GRU's
  (``lstm.split_rows``): the rows never meet, so the threads need no barrier per step
  (OpenBLAS's own threads would meet twice per step, for products of N x U x U only),
  and f of each step is split as well; gW, gR, gb are the sum of the blocks'.

The forward keeps H (T, N, U), the states, for f' and gR; ``saved`` holds them.
Routes, recorded in ``routes.LAST``: "time_major" without a mask, "time_major_masked" with one;
"_split" added when the rows were cut over the threads.
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import IN_PLACE_ACTIVATIONS
from .kernels.exp32 import tanh_inplace
from .lstm import backward_rows, split_rows
from .routes import LAST


def _time_major_mask(mask, go_backwards, dtype):
    """m (T, N, 1) in ``dtype`` and s (T, N, 1) = [a real step was seen up to t]; or None, None."""
    if mask is None:
        return None, None
    m = mask[:, ::-1] if go_backwards else mask
    m = np.ascontiguousarray(m.T, dtype=dtype)[:, :, None]     # (N, T) -> (T, N, 1)
    return m, (np.cumsum(m, axis=0) > 0).astype(dtype)


def _recur(H, h0, R, f, m):
    """In place over H (T, N, U) holding z_t:  H[t] = f(H[t] + h_{t-1} R) (masked rows keep h_{t-1})."""
    rec = np.empty_like(h0)                                    # (N, U), reused every step
    h_prev = h0
    for t in range(H.shape[0]):
        np.matmul(h_prev, R, out=rec)                          # h_{t-1} R
        H[t] += rec                                            # a_t = z_t + h_{t-1} R
        f(H[t])                                                # h_t = f(a_t), in place
        if m is not None:
            np.copyto(H[t], h_prev, where=m[t] == 0)
        h_prev = H[t]


def simple_rnn_forward(x, W, R, b=None, h0=None, activation="tanh", return_sequences=True, go_backwards=False,
                       mask=None):
    """(y, saved).   reference: numbanet.reference.tier.simple_rnn_forward."""
    N, T, D = x.shape
    work = N * T * (D + R.shape[0]) * R.shape[1]              # multiply-adds of the products
    return split_rows(_forward, x, (h0, mask), (W, R, b, activation, return_sequences, go_backwards), work,
                      "simple_rnn_forward")


def _forward(x, h0, mask, W, R, b, activation, return_sequences, go_backwards):
    """(y, saved) of the rows x (N, T, D), h0 (N, U) or None, mask (N, T) or None, on this thread."""
    N, T, D = x.shape
    U = W.shape[1]
    has_h0 = h0 is not None
    h0 = h0.astype(x.dtype, copy=False) if has_h0 else np.zeros((N, U), x.dtype)
    if go_backwards:
        x = x[:, ::-1]                                         # read time in reverse
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))           # (N, T, D) -> (T, N, D)
    H = xt.reshape(T * N, D) @ W                              # z_t for every t: (T*N, D) @ (D, U)
    if b is not None:
        H += b
    H = H.reshape(T, N, U)                                    # (T*N, U) -> (T, N, U)
    m, seen = _time_major_mask(mask, go_backwards, x.dtype)
    f = tanh_inplace if activation == "tanh" and H.dtype == np.float32 else IN_PLACE_ACTIVATIONS[activation][0]
    _recur(H, h0, R, f, m)
    LAST["simple_rnn_forward"] = "time_major" if m is None else "time_major_masked"
    saved = (xt, H, h0, W, R, m, seen, activation, return_sequences, go_backwards, b is not None, has_h0)
    Y = H if m is None else H * seen                          # outputs: 0 before the first real step
    if return_sequences:
        return np.ascontiguousarray(Y.transpose(1, 0, 2)), saved   # (T, N, U) -> (N, T, U)
    return Y[-1].copy(), saved                                 # h_T (N, U)


def _bptt(gy, H, R, df, m, seen, return_sequences, dh_out=None):
    """The backward loop t = T..1; returns da (T, N, U) and gh_0 = dh_0 (dh_t into dh_out[:, t] if given)."""
    T = H.shape[0]
    dA = df(H)                                                 # f'(a_t) now, da_t after the loop
    dh = np.zeros_like(H[0])                                   # (N, U) carried gradient
    gH = gy.transpose(1, 0, 2) if return_sequences else gy[None]   # (T, N, U) view, or (1, N, U)
    if m is not None:
        gH = gH * (seen if return_sequences else seen[-1:])    # y_t = h_t * s_t
        rec = np.empty_like(dh)
    for t in range(T - 1, -1, -1):
        if return_sequences or t == T - 1:
            dh += gH[t if return_sequences else 0]             # dh_t = gy_t + (carried from t+1)
        if dh_out is not None:
            dh_out[:, t] = dh
        np.multiply(dh, dA[t], out=dA[t])                      # da_t = dh_t * f'(a_t)
        if m is None:
            np.matmul(dA[t], R.T, out=dh)                      # dh_{t-1} = da_t R^T
        else:
            dA[t] *= m[t]                                      # masked steps: da_t = 0
            np.matmul(dA[t], R.T, out=rec)
            dh *= 1 - m[t]                                     # dh_{t-1} = da_t R^T + (1 - m_t) dh_t
            dh += rec
    return dA, dh


def simple_rnn_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx | None, gW, gR, gb | None, gh0 | None).   reference: numbanet.reference.tier.simple_rnn_backward.

    dh_out: None, or an (N, T, U) array that receives dL/dh_t of every step in processing order.
    """
    return backward_rows(_backward, gy, saved, need_gx, (0, 4), "simple_rnn_backward", dh_out)


def _backward(gy, saved, need_gx, dh_out=None):
    """The gradients of one block's rows from its own ``saved`` (see simple_rnn_backward)."""
    xt, H, h0, W, R, m, seen, activation, return_sequences, go_backwards, has_b, has_h0 = saved
    T, N, U = H.shape
    D = xt.shape[2]
    dA, gh0 = _bptt(gy, H, R, IN_PLACE_ACTIVATIONS[activation][1], m, seen, return_sequences, dh_out)
    dA2 = dA.reshape(T * N, U)
    gW = xt.reshape(T * N, D).T @ dA2                          # sum_t x_t^T da_t      (D, U)
    gR = h0.T @ dA[0]                                          # h_0^T da_1 ...
    if T > 1:                                                  # ... + sum_{t>1} h_{t-1}^T da_t
        gR += H[:-1].reshape((T - 1) * N, U).T @ dA[1:].reshape((T - 1) * N, U)
    gx = None
    if need_gx:
        gx = (dA2 @ W.T).reshape(T, N, D).transpose(1, 0, 2)  # (T*N, D) -> (N, T, D)
        if go_backwards:
            gx = gx[:, ::-1]                                   # back to the caller's time order
        gx = np.ascontiguousarray(gx)
    gb = dA2.sum(axis=0) if has_b else None                   # (U,)
    LAST["simple_rnn_backward"] = "time_major" if m is None else "time_major_masked"
    return gx, gW, gR, gb, (gh0 if has_h0 else None)
