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
* the gate nonlinearities run in place over the step's block (z and r as ONE
  (N, 2U) call), writing the gate values [z | r | c] over the input products they
  came from, and the loops allocate nothing (preallocated (N, .) buffers). NumPy's
  SIMD exp and tanh make this faster than a scalar Numba loop over the elements,
  which calls libm once per element (measured 0.34 ms against 1.4 ms for the
  gates of one (64, 256) step; Numba here has no SVML to vectorise them);
* the backward reads the kept gate values instead of recomputing them, takes every
  step's derivatives sigma'(z), sigma'(r), phi'(c) in one call before its loop, does
  one GEMM per step for the gates' share of dh_{t-1} (two with ``reset_after=False``),
  and after the loop gW, gR, gx and the biases are one product (or sum) each over
  all T*N rows.

Saved for the backward: G (T, N, 3U) the gates, Q (T, N, U) the candidate's
recurrent term q_t, S (T+1, N, U) the states with S[0] = h_0.
With more than one thread and enough work, the batch is cut into row blocks, each
running the whole recurrence on its own thread, as the LSTM's (``lstm.split_rows``).

Routes, recorded in ``routes.LAST``: "reset_after" or "reset_before", with "_masked" when a
mask is given and "_split" when the rows were cut over the threads.
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import IN_PLACE_ACTIVATIONS
from .lstm import backward_rows, split_rows
from .routes import LAST


def _hard_sigmoid_(a):
    """clip(a / 6 + 1/2, 0, 1) in place (Keras 3's relu6(a + 3) / 6)."""
    a *= 1 / 6
    a += 0.5
    np.clip(a, 0, 1, out=a)


def _d_hard_sigmoid(y):
    return ((y > 0) & (y < 1)).astype(y.dtype) / 6


# name -> (f applied in place, f' from the output y), the gate activations of both tiers
GATE_ACTIVATIONS = {**IN_PLACE_ACTIVATIONS, "hard_sigmoid": (_hard_sigmoid_, _d_hard_sigmoid)}


def _route(reset_after, masked):
    return ("reset_after" if reset_after else "reset_before") + ("_masked" if masked else "")


def _time_major_mask(mask, go_backwards, dtype):
    """m (T, N, 1) in ``dtype`` (1 real step, 0 padding) and seen (T, N, 1) = [a real step up to t]; or None, None."""
    if mask is None:
        return None, None
    m = mask[:, ::-1] if go_backwards else mask
    m = np.ascontiguousarray(m.T, dtype=dtype)[:, :, None]     # (N, T) -> (T, N, 1)
    return m, (np.cumsum(m, axis=0) > 0).astype(dtype)


def _mix(S, t, G, m):
    """h_t = z h_{t-1} + (1 - z) c = z (h_{t-1} - c) + c into S[t+1]; a masked row keeps h_{t-1}."""
    U = S.shape[2]
    h = S[t + 1]
    np.subtract(S[t], G[t, :, 2 * U:], out=h)
    h *= G[t, :, :U]
    h += G[t, :, 2 * U:]
    if m is not None:
        np.copyto(h, S[t], where=m[t] == 0)


def _recur_after(G, S, Q, R, bh, m, act, rec):
    """reset_after=True: one GEMM per step, the gates in place over G[t]."""
    U = S.shape[2]
    RH = np.empty(G.shape[1:], G.dtype)                         # (N, 3U), reused every step
    for t in range(G.shape[0]):
        np.matmul(S[t], R, out=RH)                              # h_{t-1} [R_z | R_r | R_c]
        if bh is not None:
            RH += bh
        zr = G[t, :, :2 * U]
        zr += RH[:, :2 * U]
        rec(zr)                                                 # [z | r]
        np.copyto(Q[t], RH[:, 2 * U:])                          # q = h_{t-1} R_c + b_hc
        c = G[t, :, 2 * U:]
        RH[:, :U] = Q[t]
        RH[:, :U] *= zr[:, U:]                                  # r q (in a free part of RH)
        c += RH[:, :U]
        act(c)                                                  # c = phi(x_c + r q)
        _mix(S, t, G, m)


def _recur_before(G, S, Q, R, m, act, rec):
    """reset_after=False: two GEMMs per step, the candidate's after r_t h_{t-1} is known."""
    U = S.shape[2]
    R_zr, R_c = np.ascontiguousarray(R[:, :2 * U]), np.ascontiguousarray(R[:, 2 * U:])
    RZR, RC = np.empty((S.shape[1], 2 * U), G.dtype), np.empty(S.shape[1:], G.dtype)
    for t in range(G.shape[0]):
        np.matmul(S[t], R_zr, out=RZR)                          # h_{t-1} [R_z | R_r]
        zr = G[t, :, :2 * U]
        zr += RZR
        rec(zr)                                                 # [z | r]
        np.multiply(zr[:, U:], S[t], out=Q[t])                  # q = r h_{t-1}
        np.matmul(Q[t], R_c, out=RC)                            # (r h_{t-1}) R_c
        c = G[t, :, 2 * U:]
        c += RC
        act(c)
        _mix(S, t, G, m)


def gru_forward(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                return_sequences=True, go_backwards=False, mask=None):
    """(y, saved).   reference: numbanet.reference.tier.gru_forward."""
    N, T, D = x.shape
    work = N * T * (D + R.shape[0]) * R.shape[1]              # multiply-adds of the products
    return split_rows(_forward, x, (h0, mask), (W, R, b, activation, recurrent_activation, reset_after,
                                                return_sequences, go_backwards), work, "gru_forward")


def _forward(x, h0, mask, W, R, b, activation, recurrent_activation, reset_after, return_sequences, go_backwards):
    """``gru_forward`` on one block of rows (or the whole batch), on the calling thread."""
    N, T, D = x.shape
    U = R.shape[0]
    dt = x.dtype
    if go_backwards:
        x = x[:, ::-1]                                          # read time in reverse
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))            # (N, T, D) -> (T, N, D)
    G = xt.reshape(T * N, D) @ W                               # every step's input products: (T*N, D) @ (D, 3U)
    if b is not None:
        G += b[0] if reset_after else b
    G = G.reshape(T, N, 3 * U)                                 # (T*N, 3U) -> (T, N, 3U)
    S = np.empty((T + 1, N, U), dt)                            # S[0] = h_0, S[t] = h_t
    S[0] = 0 if h0 is None else h0
    Q = np.empty((T, N, U), dt)
    m, seen = _time_major_mask(mask, go_backwards, dt)
    act, rec = GATE_ACTIVATIONS[activation][0], GATE_ACTIVATIONS[recurrent_activation][0]
    if reset_after:
        _recur_after(G, S, Q, R, None if b is None else b[1], m, act, rec)
    else:
        _recur_before(G, S, Q, R, m, act, rec)
    LAST["gru_forward"] = _route(reset_after, m is not None)
    saved = (xt, G, Q, S, W, R, m, seen, activation, recurrent_activation, reset_after, return_sequences,
             go_backwards, b is not None, h0 is not None)
    Y = S[1:] if seen is None else S[1:] * seen                # outputs: 0 before the first real step
    if return_sequences:
        return np.ascontiguousarray(Y.transpose(1, 0, 2)), saved   # (T, N, U) -> (N, T, U)
    return Y[-1].copy(), saved                                 # h_T (N, U)


def _bptt(gy, G, Q, S, R, m, seen, activation, recurrent_activation, reset_after, return_sequences, dh_out=None):
    """The backward loop t = T..1: DX (T, N, 3U) = [da_z | da_r | da_c] (the input side), DH the
    recurrent side [da_z | da_r | dq] (reset_after; None otherwise), and gh_0 = dh_0.
    dh_t goes into dh_out[:, t] when dh_out is given."""
    T, N, U = Q.shape
    dZR = GATE_ACTIVATIONS[recurrent_activation][1](G[:, :, :2 * U])   # sigma'(z), sigma'(r), every step
    dC = GATE_ACTIVATIONS[activation][1](G[:, :, 2 * U:])             # phi'(c), every step
    DX = np.empty_like(G)
    DH = np.empty_like(G) if reset_after else None
    dh = np.zeros((N, U), G.dtype)                             # carried dL/dh_t
    zdh = np.empty_like(dh)
    gH = gy.transpose(1, 0, 2) if return_sequences else gy[None]   # (T, N, U) view, or (1, N, U)
    if seen is not None:
        gH = gH * (seen if return_sequences else seen[-1:])    # y_t = h_t s_t
    if not reset_after:
        R_zr_T, R_c_T = R[:, :2 * U].T, R[:, 2 * U:].T         # (2U, U), (U, U) views
        drh = np.empty_like(dh)
    for t in range(T - 1, -1, -1):
        if return_sequences or t == T - 1:
            dh += gH[t if return_sequences else 0]             # dh_t = gy_t + (carried from t+1)
        if dh_out is not None:
            dh_out[:, t] = dh
        z, r, c = G[t, :, :U], G[t, :, U:2 * U], G[t, :, 2 * U:]
        da_z, da_r, da_c = DX[t, :, :U], DX[t, :, U:2 * U], DX[t, :, 2 * U:]
        np.multiply(z, dh, out=zdh)                            # z dh: h_{t-1}'s share through the mixing
        np.subtract(dh, zdh, out=da_c)                         # (1 - z) dh
        da_c *= dC[t]                                          # da_c = (1 - z) dh phi'(c)
        np.subtract(S[t], c, out=da_z)
        da_z *= dh
        da_z *= dZR[t, :, :U]                                  # da_z = (h_{t-1} - c) dh sigma'(z)
        if m is not None:                                      # masked rows: no gate gradient, dh passes as is
            da_c *= m[t]
            da_z *= m[t]
            np.copyto(zdh, dh, where=m[t] == 0)
        if reset_after:
            np.multiply(da_c, Q[t], out=da_r)
            da_r *= dZR[t, :, U:]                              # da_r = da_c q sigma'(r)
            DH[t, :, :2 * U] = DX[t, :, :2 * U]
            np.multiply(da_c, r, out=DH[t, :, 2 * U:])         # dq = da_c r
            np.matmul(DH[t], R.T, out=dh)                      # [da_z | da_r | dq] R^T
        else:
            np.matmul(da_c, R_c_T, out=drh)                    # d(r h_{t-1}) = da_c R_c^T
            np.multiply(drh, S[t], out=da_r)
            da_r *= dZR[t, :, U:]                              # da_r = d(rh) h_{t-1} sigma'(r)
            np.matmul(DX[t, :, :2 * U], R_zr_T, out=dh)        # [da_z | da_r] [R_z | R_r]^T
            drh *= r
            dh += drh                                          # + d(rh) r
        dh += zdh                                              # dh_{t-1}
    return DX, DH, dh


def gru_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx | None, gW, gR, gb | None, gh0 | None).   reference: numbanet.reference.tier.gru_backward.

    dh_out: None, or an (N, T, U) array that receives dL/dh_t of every step in processing order.
    """
    return backward_rows(_backward, gy, saved, need_gx, (0, 4), "gru_backward", dh_out)


def _backward(gy, saved, need_gx, dh_out=None):
    """``gru_backward`` of one block of rows (or the whole batch), on the calling thread."""
    (xt, G, Q, S, W, R, m, seen, activation, recurrent_activation, reset_after, return_sequences, go_backwards,
     has_b, has_h0) = saved
    T, N, U = Q.shape
    D = xt.shape[2]
    DX, DH, gh0 = _bptt(gy, G, Q, S, R, m, seen, activation, recurrent_activation, reset_after, return_sequences,
                        dh_out)
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
    LAST["gru_backward"] = _route(reset_after, m is not None)
    return gx, gW, gR, gb, (gh0 if has_h0 else None)
