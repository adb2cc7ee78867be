"""The GRU's elementwise work of one time step, fused: one pass over (N, U) per kernel.

The matrix products stay in NumPy (BLAS); these kernels do everything between
them, which NumPy would run as a dozen passes with temporaries. The math and the
names (z, r, q, c, da_z, da_r, da_c, dq) are those of ``numbanet/reference/gru.py``.
Shapes of one step: G (N, 3U) the gate block [z | r | c] (the input products
x_t W + b_x on the way in, the gate values on the way out), h_prev and h (N, U),
m (N,) 1 for a real step and 0 for padding (all ones without a mask).

Forward:
    gates_after(G, RH, bh, h_prev, m, act, rec, Q, h)   reset_after=True, RH = h_prev R
    gates_zr(G, RZR, h_prev, rec, Q)                     reset_after=False, first half
    candidate(G, RC, h_prev, m, act, h)                  reset_after=False, after RC = Q R_c
Backward:
    grads_after(dh, G, Q, h_prev, m, act, rec, DX, DH)   reset_after=True
    grads_c_z(dh, G, h_prev, m, act, rec, DX)            reset_after=False, before d(rh) = da_c R_c^T
    grads_r(drh, G, h_prev, m, rec, DX, dh)              reset_after=False, after it

Activations are passed as integer codes (``CODES``), so one compiled kernel serves
every pair; the derivative is read from the activation's output, as the reference does.
Sigmoid is written in its two-sided form so that exp never overflows (which
would raise in plain Python under ``NUMBA_DISABLE_JIT=1``).
"""
from __future__ import annotations

import math

from .config import njit

CODES = {"linear": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "hard_sigmoid": 4}


@njit
def act(code, a):
    """f(a) for the activation ``code`` (``CODES``)."""
    if code == 1:
        if a >= 0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    if code == 2:
        return math.tanh(a)
    if code == 3:
        return max(a, 0.0)
    if code == 4:
        return min(max(a / 6.0 + 0.5, 0.0), 1.0)
    return a


@njit
def dact(code, y):
    """f' read from the output y = f(a)."""
    if code == 1:
        return y * (1.0 - y)
    if code == 2:
        return 1.0 - y * y
    if code == 3:
        return 1.0 if y > 0 else 0.0
    if code == 4:
        return 1.0 / 6.0 if 0 < y < 1 else 0.0
    return 1.0


@njit
def gates_after(G, RH, bh, h_prev, m, act_code, rec_code, Q, h):
    """reset_after=True: G <- [z | r | c], Q <- q, h <- h_t.

    RH (N, 3U) = h_prev R; bh (3U,) the recurrent bias (zeros without one);
    q = RH[:, 2U:] + bh[2U:]; a masked row keeps h_prev.
    """
    N, U = h.shape
    for n in range(N):
        for u in range(U):
            z = act(rec_code, G[n, u] + RH[n, u] + bh[u])
            r = act(rec_code, G[n, U + u] + RH[n, U + u] + bh[U + u])
            q = RH[n, 2 * U + u] + bh[2 * U + u]
            c = act(act_code, G[n, 2 * U + u] + r * q)
            G[n, u], G[n, U + u], G[n, 2 * U + u], Q[n, u] = z, r, c, q
            hp = h_prev[n, u]
            h[n, u] = z * hp + (1.0 - z) * c if m[n] != 0 else hp


@njit
def gates_zr(G, RZR, h_prev, rec_code, Q):
    """reset_after=False, first half: G[:, :2U] <- [z | r], Q <- q = r h_prev. RZR (N, 2U) = h_prev R[:, :2U]."""
    N, U = Q.shape
    for n in range(N):
        for u in range(U):
            z = act(rec_code, G[n, u] + RZR[n, u])
            r = act(rec_code, G[n, U + u] + RZR[n, U + u])
            G[n, u], G[n, U + u] = z, r
            Q[n, u] = r * h_prev[n, u]


@njit
def candidate(G, RC, h_prev, m, act_code, h):
    """reset_after=False, second half: G[:, 2U:] <- c = act(G[:, 2U:] + RC), h <- h_t. RC (N, U) = q R_c."""
    N, U = h.shape
    for n in range(N):
        for u in range(U):
            z = G[n, u]
            c = act(act_code, G[n, 2 * U + u] + RC[n, u])
            G[n, 2 * U + u] = c
            hp = h_prev[n, u]
            h[n, u] = z * hp + (1.0 - z) * c if m[n] != 0 else hp


@njit
def grads_after(dh, G, Q, h_prev, m, act_code, rec_code, DX, DH):
    """reset_after=True: DX <- [da_z | da_r | da_c], DH <- [da_z | da_r | dq], dh <- z dh.

    dh (N, U) holds dL/dh_t on the way in and the part of dL/dh_{t-1} that does not
    pass through R on the way out (dh itself on a masked row, whose da are all 0).
    """
    N, U = dh.shape
    for n in range(N):
        if m[n] == 0:
            for j in range(3 * U):
                DX[n, j] = 0.0
                DH[n, j] = 0.0
            continue
        for u in range(U):
            d = dh[n, u]
            z, r, c = G[n, u], G[n, U + u], G[n, 2 * U + u]
            da_c = d * (1.0 - z) * dact(act_code, c)
            da_z = d * (h_prev[n, u] - c) * dact(rec_code, z)
            da_r = da_c * Q[n, u] * dact(rec_code, r)
            DX[n, u], DX[n, U + u], DX[n, 2 * U + u] = da_z, da_r, da_c
            DH[n, u], DH[n, U + u], DH[n, 2 * U + u] = da_z, da_r, da_c * r
            dh[n, u] = z * d


@njit
def grads_c_z(dh, G, h_prev, m, act_code, rec_code, DX):
    """reset_after=False, first half: DX[:, 2U:] <- da_c, DX[:, :U] <- da_z, dh <- z dh (dh on a masked row)."""
    N, U = dh.shape
    for n in range(N):
        if m[n] == 0:
            for j in range(3 * U):
                DX[n, j] = 0.0
            continue
        for u in range(U):
            d = dh[n, u]
            z, c = G[n, u], G[n, 2 * U + u]
            DX[n, 2 * U + u] = d * (1.0 - z) * dact(act_code, c)
            DX[n, u] = d * (h_prev[n, u] - c) * dact(rec_code, z)
            dh[n, u] = z * d


@njit
def grads_r(drh, G, h_prev, m, rec_code, DX, dh):
    """reset_after=False, second half: DX[:, U:2U] <- da_r = drh h_prev sigma'(r), dh += drh r.

    drh (N, U) = da_c R_c^T, the gradient of q = r h_prev (0 on a masked row).
    """
    N, U = dh.shape
    for n in range(N):
        if m[n] == 0:
            continue
        for u in range(U):
            r = G[n, U + u]
            DX[n, U + u] = drh[n, u] * h_prev[n, u] * dact(rec_code, r)
            dh[n, u] += drh[n, u] * r
