"""An LSTM written for the tests alone, with first-order rounding-error bounds beside every value.

Independent of numbanet's two tiers on purpose: float64 throughout, each gate its
own weight slice and product (as Keras's ``implementation=1``), Python loops over
the steps in the caller's time order, derivatives taken from the pre-activations
(the tiers read them from the outputs), and masks applied with ``np.where``.

Error bounds (``eps`` that of the computation under test, float32's or float64's;
this oracle's own rounding, float64 on exact copies of the same inputs, is part of
the same bound). Forward, per step, for the affine sums and each nonlinearity::

    e_z   = SAFETY (D + U + 1) eps (|x_t| |W_k| + |h| |R_k| + |b_k|) + e_h |R_k|
    e_a   = e_z + (LIBM_ULP + 3) eps |a|            every gate activation has slope <= 1
    e_c   = |f| e_c' + |c'| e_f + |i| e_g + |g| e_i + 3 eps (|f c'| + |i g|)
    e_phi = e_c + (LIBM_ULP + 1) eps |phi(c)|
    e_h   = |o| e_phi + |phi(c)| e_o + eps |h|

(first order: the products of two errors are some 1e7 times smaller in float32).
Backward, ``bptt`` runs the same chain rule three ways: on the values, on absolute
values (``env``), and on absolute values each enlarged by its forward error bound
(``env_e``; a derivative f'(z) by 2 e_a, the most a derivative read from a = f(z)
moves). Every gradient is a sum of products of those factors, so

    |g_tested - g| <= SAFETY * n * eps * env_e + (env_e - env)

with n = T (N + D + 4U + 12) the roundings along any chain: the products and
carries of T steps (sums over 4U for dh, over N for the weights' sums, over D
for nothing more than a copy) and the final sums over T*N rows. The second term
is the first-order effect of the forward errors on the products.
"""
from __future__ import annotations

import numpy as np

from bounds import LIBM_ULP, SAFETY

GATE_F = {
    "linear": lambda z: z,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "hard_sigmoid": lambda z: np.clip(z / 6 + 0.5, 0, 1),
}
GATE_DF = {   # f'(z) from z
    "linear": lambda z: np.ones_like(z),
    "sigmoid": lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2,
    "tanh": lambda z: 1 / np.cosh(z) ** 2,
    "relu": lambda z: (z > 0).astype(float),
    "hard_sigmoid": lambda z: (np.abs(z) < 3) / 6.0,
}
KINKS = {"linear": (), "sigmoid": (), "tanh": (), "relu": (0.0,), "hard_sigmoid": (-3.0, 3.0)}


def forward(x, W, R, b, h0, c0, act, ract, back, mask, eps):
    """Run the LSTM in float64. Returns (y (N, T, U), h_T, c_T, ey, eh_T, ec_T, steps):
    the outputs in processing order, the final states, their error bounds, and each
    step's values for ``bptt`` and for the kink checks."""
    x, W, R = (np.asarray(a, np.float64) for a in (x, W, R))
    N, T, D = x.shape
    U = R.shape[0]
    b = np.zeros(4 * U) if b is None else np.asarray(b, np.float64)
    h = np.zeros((N, U)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((N, U)) if c0 is None else np.asarray(c0, np.float64)
    e_h, e_c = np.zeros((N, U)), np.zeros((N, U))
    m = np.ones((N, T), bool) if mask is None else np.asarray(mask, bool)
    started = np.zeros((N, 1), bool)
    sig, dsig, phi, dphi = GATE_F[ract], GATE_DF[ract], GATE_F[act], GATE_DF[act]
    ys, eys, steps = [], [], []
    for t in (range(T - 1, -1, -1) if back else range(T)):
        s = {"t": t, "x": x[:, t], "h_prev": h, "c_prev": c, "e_h_prev": e_h, "e_c_prev": e_c,
             "real": m[:, t:t + 1]}
        for k, gate in enumerate("ifgo"):
            Wk, Rk, bk = W[:, k * U:(k + 1) * U], R[:, k * U:(k + 1) * U], b[k * U:(k + 1) * U]
            z = x[:, t] @ Wk + h @ Rk + bk
            e_z = (SAFETY * (D + U + 1) * eps * (np.abs(x[:, t]) @ np.abs(Wk) + np.abs(h) @ np.abs(Rk) + np.abs(bk))
                   + e_h @ np.abs(Rk))
            f, df = (phi, dphi) if gate == "g" else (sig, dsig)
            a = f(z)
            s["z" + gate], s[gate], s["d" + gate] = z, a, df(z)
            s["e_" + gate] = e_z + (LIBM_ULP + 3) * eps * np.abs(a)
        i, f, g, o = s["i"], s["f"], s["g"], s["o"]
        c_new = f * c + i * g
        e_c_new = (np.abs(f) * e_c + np.abs(c) * s["e_f"] + np.abs(i) * s["e_g"] + np.abs(g) * s["e_i"]
                   + 3 * eps * (np.abs(f * c) + np.abs(i * g)))
        tc = phi(c_new)
        e_tc = e_c_new + (LIBM_ULP + 1) * eps * np.abs(tc)
        h_new = o * tc
        e_h_new = np.abs(o) * e_tc + np.abs(tc) * s["e_o"] + eps * np.abs(h_new)
        s.update(c=c_new, tc=tc, dtc=dphi(c_new), e_tc=e_tc)
        real = s["real"]
        h, c = np.where(real, h_new, h), np.where(real, c_new, c)
        e_h, e_c = np.where(real, e_h_new, e_h), np.where(real, e_c_new, e_c)
        started = started | real
        s["started"] = started
        ys.append(np.where(started, h, 0))
        eys.append(np.where(started, e_h, 0))
        steps.append(s)
    return np.stack(ys, 1), h, c, np.stack(eys, 1), e_h, e_c, steps


def bptt(steps, gy, gh, gc, x_shape, W, R, mode="value"):
    """The gradients (gx (N, T, D) in the caller's order, gW, gR, gb, gh0, gc0).

    gy (N, T, U) in processing order (the outputs' gradient), gh, gc (N, U) those of
    h_T, c_T. ``mode``: "value", "abs" (every factor by its absolute value: the
    magnitude of the terms) or "abs_e" (absolute values enlarged by their error bounds).
    """
    N, T, D = x_shape
    U = R.shape[0]

    def q(s, name, err=None):
        v = s[name]
        if mode == "value":
            return v
        return np.abs(v) + (s[err] if (mode == "abs_e" and err) else 0)

    def dq(s, name, err):      # a derivative: read from an output with error e_a, it moves by <= 2 e_a
        v = s[name]
        return v if mode == "value" else np.abs(v) + (2 * s[err] if mode == "abs_e" else 0)

    W = np.asarray(W, np.float64) if mode == "value" else np.abs(np.asarray(W, np.float64))
    R = np.asarray(R, np.float64) if mode == "value" else np.abs(np.asarray(R, np.float64))
    fix = (lambda a: np.asarray(a, np.float64)) if mode == "value" else (lambda a: np.abs(np.asarray(a, np.float64)))
    gy, dh, dc = fix(gy), fix(gh), fix(gc)
    gx, gW, gR, gb = np.zeros((N, T, D)), np.zeros_like(W), np.zeros_like(R), np.zeros(4 * U)
    for k in range(len(steps) - 1, -1, -1):
        s = steps[k]
        real = s["real"].astype(float)
        dh = dh + gy[:, k] * s["started"]
        dzo = dh * q(s, "tc", "e_tc") * dq(s, "do", "e_o")
        dct = dc + dh * q(s, "o", "e_o") * dq(s, "dtc", "e_tc")
        dzi = dct * q(s, "g", "e_g") * dq(s, "di", "e_i")
        dzf = dct * q(s, "c_prev", "e_c_prev") * dq(s, "df", "e_f")
        dzg = dct * q(s, "i", "e_i") * dq(s, "dg", "e_g")
        dz = real * np.concatenate([dzi, dzf, dzg, dzo], axis=1)
        gx[:, s["t"]] = dz @ W.T
        gW += fix(s["x"]).T @ dz
        gR += q(s, "h_prev", "e_h_prev").T @ dz
        gb += dz.sum(0)
        dh = dz @ R.T + (1 - real) * dh
        dc = real * dct * q(s, "f", "e_f") + (1 - real) * dc
    return gx, gW, gR, gb, dh, dc


def gradient_bounds(steps, gy, gh, gc, x_shape, W, R, eps):
    """The error bound of each of ``bptt``'s gradients (see the module docstring)."""
    N, T, D = x_shape
    U = R.shape[0]
    n = T * (N + D + 4 * U + 12)
    env = bptt(steps, gy, gh, gc, x_shape, W, R, "abs")
    env_e = bptt(steps, gy, gh, gc, x_shape, W, R, "abs_e")
    return [SAFETY * n * eps * ee + (ee - e) for e, ee in zip(env, env_e)]


def kink_distance(steps, act, ract):
    """The smallest distance of a real step's pre-activation (or cell state under phi) from a kink."""
    d = np.inf
    for s in steps:
        real = np.broadcast_to(s["real"], s["zi"].shape)
        for name, fn in (("zi", ract), ("zf", ract), ("zo", ract), ("zg", act), ("c", act)):
            for k in KINKS[fn]:
                vals = np.abs(s[name] - k)[real]
                if vals.size:
                    d = min(d, float(vals.min()))
    return d
