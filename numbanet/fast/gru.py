"""The GRU's fast forward loop and backpropagation through time.

Mirrors ``numbanet.reference.tier.gru_forward`` / ``gru_backward`` (the math is in
``numbanet/reference/gru.py``). How it is made fast:

* the input products x_t W + b_x of all steps and all three gates are ONE
  (T*N, D) @ (D, 3U) product before the loop, time-major (T, N, 3U) so that step t
  is one contiguous block, as SimpleRNN's fast loop does;
* per step, the recurrent products are one GEMM for all three gates with
  ``reset_after=True`` (h_{t-1} @ R, R (U, 3U)); with ``reset_after=False`` the
  candidate's product needs r_t h_{t-1} first, so there are two (h_{t-1} @ R[:, :2U],
  then (r_t h_{t-1}) @ R[:, 2U:]);
* everything between the products is one fused Numba pass per step
  (``kernels/gru.py``), writing the gate values [z | r | c] over the input products
  they came from: the backward reads them instead of recomputing;
* the backward loop does one GEMM per step for the gates' share of dh_{t-1}
  (two with ``reset_after=False``), and after it gW, gR, gx and the biases are one
  product (or sum) each over all T*N rows.

Saved for the backward: G (T, N, 3U) the gates, Q (T, N, U) the candidate's
recurrent term q_t, S (T+1, N, U) the states with S[0] = h_0.
Routes, recorded in ``routes.LAST``: "reset_after" or "reset_before", with "_masked" when a mask is given.
"""
from __future__ import annotations

import numpy as np

from .kernels import gru as K
from .routes import LAST


def _time_major_mask(mask, go_backwards, N, T, dtype):
    """(m (T, N) in ``dtype``, 1 for real steps, all ones without a mask; seen (T, N, 1) = [a real step up to t] or None)."""
    if mask is None:
        return np.ones((T, N), dtype), None
    m = mask[:, ::-1] if go_backwards else mask
    m = np.ascontiguousarray(m.T, dtype=dtype)                 # (N, T) -> (T, N)
    return m, (np.cumsum(m, axis=0) > 0).astype(dtype)[:, :, None]


def _recur_after(G, S, Q, R, bh, m, codes):
    """reset_after=True: one GEMM and one fused kernel per step."""
    RH = np.empty(G.shape[1:], G.dtype)                         # (N, 3U), reused every step
    for t in range(G.shape[0]):
        np.matmul(S[t], R, out=RH)                              # h_{t-1} [R_z | R_r | R_c]
        K.gates_after(G[t], RH, bh, S[t], m[t], *codes, Q[t], S[t + 1])


def _recur_before(G, S, Q, R, m, codes):
    """reset_after=False: two GEMMs per step, the candidate's after r_t h_{t-1} is known."""
    U = S.shape[2]
    R_zr, R_c = np.ascontiguousarray(R[:, :2 * U]), np.ascontiguousarray(R[:, 2 * U:])
    RZR, RC = np.empty((S.shape[1], 2 * U), G.dtype), np.empty(S.shape[1:], G.dtype)
    for t in range(G.shape[0]):
        np.matmul(S[t], R_zr, out=RZR)                          # h_{t-1} [R_z | R_r]
        K.gates_zr(G[t], RZR, S[t], codes[1], Q[t])             # z, r and q = r h_{t-1}
        np.matmul(Q[t], R_c, out=RC)                            # (r h_{t-1}) R_c
        K.candidate(G[t], RC, S[t], m[t], codes[0], S[t + 1])


def gru_forward(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                return_sequences=True, go_backwards=False, mask=None):
    """(y, saved).   reference: numbanet.reference.tier.gru_forward."""
    N, T, D = x.shape
    U = R.shape[0]
    dt = x.dtype
    if go_backwards:
        x = x[:, ::-1]                                          # read time in reverse
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))            # (N, T, D) -> (T, N, D)
    G = xt.reshape(T * N, D) @ W                               # every step's input products: (T*N, D) @ (D, 3U)
    bh = np.zeros(3 * U, dt)
    if b is not None:
        G += b[0] if reset_after else b
        if reset_after:
            bh = np.ascontiguousarray(b[1], dtype=dt)
    G = G.reshape(T, N, 3 * U)                                 # (T*N, 3U) -> (T, N, 3U)
    S = np.empty((T + 1, N, U), dt)                            # S[0] = h_0, S[t] = h_t
    S[0] = 0 if h0 is None else h0
    Q = np.empty((T, N, U), dt)
    m, seen = _time_major_mask(mask, go_backwards, N, T, dt)
    codes = (K.CODES[activation], K.CODES[recurrent_activation])
    if reset_after:
        _recur_after(G, S, Q, R, bh, m, codes)
    else:
        _recur_before(G, S, Q, R, m, codes)
    LAST["gru_forward"] = ("reset_after" if reset_after else "reset_before") + ("" if seen is None else "_masked")
    saved = (xt, G, Q, S, W, R, m, seen, codes, reset_after, return_sequences, go_backwards, b is not None,
             h0 is not None)
    Y = S[1:] if seen is None else S[1:] * seen                # outputs: 0 before the first real step
    if return_sequences:
        return np.ascontiguousarray(Y.transpose(1, 0, 2)), saved   # (T, N, U) -> (N, T, U)
    return Y[-1].copy(), saved                                 # h_T (N, U)


def _bptt(gy, G, Q, S, R, m, seen, codes, reset_after, return_sequences):
    """The backward loop t = T..1: DX (T, N, 3U) the input-side gate gradients, DH the recurrent
    side (reset_after; None otherwise), and gh_0 = dh_0."""
    T, N, U = Q.shape
    DX = np.empty_like(G)
    DH = np.empty_like(G) if reset_after else None
    dh = np.zeros((N, U), G.dtype)                             # carried dL/dh_t
    rec = np.empty_like(dh)
    gH = gy.transpose(1, 0, 2) if return_sequences else gy[None]   # (T, N, U) view, or (1, N, U)
    if seen is not None:
        gH = gH * (seen if return_sequences else seen[-1:])    # y_t = h_t s_t
    if not reset_after:
        R_zr_T, R_c_T = R[:, :2 * U].T, R[:, 2 * U:].T         # (2U, U), (U, U) views
        drh = np.empty_like(dh)
    for t in range(T - 1, -1, -1):
        if return_sequences or t == T - 1:
            dh += gH[t if return_sequences else 0]             # dh_t = gy_t + (carried from t+1)
        if reset_after:
            K.grads_after(dh, G[t], Q[t], S[t], m[t], *codes, DX[t], DH[t])
            np.matmul(DH[t], R.T, out=rec)                     # [da_z | da_r | dq] R^T
        else:
            K.grads_c_z(dh, G[t], S[t], m[t], *codes, DX[t])
            np.matmul(DX[t, :, 2 * U:], R_c_T, out=drh)        # d(r h_{t-1}) = da_c R_c^T
            K.grads_r(drh, G[t], S[t], m[t], codes[1], DX[t], dh)
            np.matmul(DX[t, :, :2 * U], R_zr_T, out=rec)       # [da_z | da_r] [R_z | R_r]^T
        dh += rec                                              # dh_{t-1}
    return DX, DH, dh


def gru_backward(gy, saved, need_gx=True):
    """(gx | None, gW, gR, gb | None, gh0 | None).   reference: numbanet.reference.tier.gru_backward."""
    xt, G, Q, S, W, R, m, seen, codes, reset_after, return_sequences, go_backwards, has_b, has_h0 = saved
    T, N, U = Q.shape
    D = xt.shape[2]
    DX, DH, gh0 = _bptt(gy, G, Q, S, R, m, seen, codes, reset_after, return_sequences)
    DX2 = DX.reshape(T * N, 3 * U)                             # (T, N, 3U) -> (T*N, 3U)
    H_prev = S[:-1].reshape(T * N, U)                          # h_{t-1} for every step, (T*N, U)
    gW = xt.reshape(T * N, D).T @ DX2                          # sum_t x_t^T [da_z | da_r | da_c]   (D, 3U)
    if reset_after:
        DH2 = DH.reshape(T * N, 3 * U)
        gR = H_prev.T @ DH2                                    # sum_t h_{t-1}^T [da_z | da_r | dq]  (U, 3U)
    else:
        gR = np.empty_like(R)
        gR[:, :2 * U] = H_prev.T @ DX2[:, :2 * U]              # sum_t h_{t-1}^T [da_z | da_r]
        gR[:, 2 * U:] = Q.reshape(T * N, U).T @ DX2[:, 2 * U:]   # sum_t (r_t h_{t-1})^T da_c
    gb = None
    if has_b:
        gb = np.stack([DX2.sum(axis=0), DH2.sum(axis=0)]) if reset_after else DX2.sum(axis=0)
    gx = None
    if need_gx:
        gx = (DX2 @ W.T).reshape(T, N, D).transpose(1, 0, 2)  # (T*N, D) -> (N, T, D)
        if go_backwards:
            gx = gx[:, ::-1]                                   # back to the caller's time order
        gx = np.ascontiguousarray(gx)
    LAST["gru_backward"] = ("reset_after" if reset_after else "reset_before") + ("" if seen is None else "_masked")
    return gx, gW, gR, gb, (gh0 if has_h0 else None)
