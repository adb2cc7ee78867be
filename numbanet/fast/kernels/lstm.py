"""The LSTM's per-step elementwise kernels: the cell update forward, all four gate gradients backward.

Shapes: one time step of a batch, N rows, U units; G (N, 4U) holds the gate values
[i | f | g | o] (the activations already applied), c_prev, c, tc, h_prev, h, dh, dc (N, U),
m (N,) bool (True: a real step, False: padding), dz (N, 4U).

    cell_state(G, c_prev, m, c)       c = f * c_prev + i * g            (c_prev where m is False)
    cell_output(G, tc, h_prev, m, h)  h = o * tc,  tc = phi(c)          (h_prev where m is False)
    cell_backward(G, c_prev, tc, m, dh, dc, dz, phi_code, sigma_code)
        dz = [dz^i | dz^f | dz^g | dz^o] of the step, dc <- dL/dc_{t-1}, and dh <- 0
        on real rows (the caller adds dz R^T); masked rows get dz = 0, dh and dc unchanged

With the Keras defaults (sigmoid gates, tanh cell) the forward step is cut differently:

    sigmoid_gates_in(G, rec)          G <- [-(z^i) | -(z^f) | z^g | -(z^o)],  z = G + rec
    (the caller runs np.exp on the i, f, o blocks and np.tanh on the g block, in place)
    sigmoid_cell_state(G, c_prev, m, c, one)  i, f, o <- 1 / (1 + exp(-z)) in G;  then as cell_state

so a sigmoid is one SIMD exp pass between two Numba passes the cell makes anyway,
instead of four NumPy passes (negate, exp, add 1, reciprocal) per block.

The transcendental functions (sigmoid, tanh) stay outside, as in-place NumPy passes
over whole blocks (``numbanet/fast/lstm.py``): NumPy's exp/tanh run SIMD code, and a
scalar exp in a Numba loop (no SVML here) was 7x slower than the NumPy passes for
N = 64, U = 256. What is left is products and sums, one pass over the arrays each.

The derivatives are read from the activations' outputs (codes in ``ACTIVATION_CODES``):
linear 1, sigmoid y(1 - y), tanh 1 - y^2, relu [y > 0], hard_sigmoid [0 < y < 1] / 6.
The Python float literals make Numba compute each scalar formula in float64; the
results are stored in the arrays' own dtype.
"""
from __future__ import annotations

from numba import uintp

from .config import njit

ACTIVATION_CODES = {"linear": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "hard_sigmoid": 4}


@njit(inline="always")
def _d_from_output(code, y):
    """f'(z) written with y = f(z), for the activation with this code."""
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
def cell_state(G, c_prev, m, c):
    """c[n] = f[n] * c_prev[n] + i[n] * g[n] on real rows, c_prev[n] on masked ones."""
    N, U = c.shape
    for n in range(uintp(N)):
        if m[n]:
            for j in range(uintp(U)):
                c[n, j] = G[n, U + j] * c_prev[n, j] + G[n, j] * G[n, 2 * U + j]
        else:
            for j in range(uintp(U)):
                c[n, j] = c_prev[n, j]


@njit
def sigmoid_gates_in(G, rec):
    """z = G + rec (N, 4U); G <- -z on the i, f, o blocks (exp(-z) comes next), z on the g block."""
    N, U4 = G.shape
    U = U4 // 4
    for n in range(uintp(N)):
        gn, rn = G[n], rec[n]
        for j in range(uintp(2 * U)):                       # i, f
            gn[j] = -(gn[j] + rn[j])
        for j in range(uintp(2 * U), uintp(3 * U)):          # g
            gn[j] = gn[j] + rn[j]
        for j in range(uintp(3 * U), uintp(4 * U)):          # o
            gn[j] = -(gn[j] + rn[j])


@njit(error_model="numpy")   # no zero-division check per element: it kept the loop scalar (19.8 vs 4.5 us, N=32, U=256)
def sigmoid_cell_state(G, c_prev, m, c, one):
    """G's i, f, o blocks hold exp(-z) on entry and sigmoid(z) = 1 / (1 + exp(-z)) on exit
    (every row: the backward reads them); then c = f c_prev + i g on real rows, c_prev on masked ones.

    ``one`` is 1 in G's dtype, so the sigmoid is computed in that dtype and rounded as NumPy's
    passes (add 1, reciprocal) round it: the same bits as ``fast/lstm.py``'s general route."""
    N, U = c.shape
    for n in range(uintp(N)):
        gn = G[n]
        for j in range(uintp(2 * U)):                       # i, f: one contiguous run
            gn[j] = one / (one + gn[j])
        for j in range(uintp(3 * U), uintp(4 * U)):          # o
            gn[j] = one / (one + gn[j])
        cp, cn = c_prev[n], c[n]
        if m[n]:
            for j in range(uintp(U)):
                cn[j] = gn[U + j] * cp[j] + gn[j] * gn[2 * U + j]
        else:
            for j in range(uintp(U)):
                cn[j] = cp[j]


@njit
def cell_output(G, tc, h_prev, m, h):
    """h[n] = o[n] * tc[n] on real rows, h_prev[n] on masked ones."""
    N, U = h.shape
    for n in range(uintp(N)):
        if m[n]:
            for j in range(uintp(U)):
                h[n, j] = G[n, 3 * U + j] * tc[n, j]
        else:
            for j in range(uintp(U)):
                h[n, j] = h_prev[n, j]


def _make_cell_backward(phi_code, sigma_code):
    """The compiled ``cell_backward`` for one pair of activation codes.

    The codes are closure constants, so the derivative's branch is decided at compile
    time and the loop over j vectorises (a code read at run time inside the loop kept it
    scalar: about 5x slower for N = 32, U = 256). Each gate is addressed through a row
    view (G[n, k U:(k + 1) U]), one unit-stride stream per gate, which LLVM vectorises
    where the index arithmetic G[n, k U + j] kept it from proving the accesses apart.
    Numba's cache keys a closure by its cell contents, so each pair is cached on its own.
    """
    @njit
    def kernel(G, c_prev, tc, m, dh, dc, dz):
        N, U = dc.shape
        for n in range(uintp(N)):
            if m[n]:
                gi, gf, gg, go = G[n, :U], G[n, U:2 * U], G[n, 2 * U:3 * U], G[n, 3 * U:]
                zi, zf, zg, zo = dz[n, :U], dz[n, U:2 * U], dz[n, 2 * U:3 * U], dz[n, 3 * U:]
                cp, tcn, dhn, dcn = c_prev[n], tc[n], dh[n], dc[n]
                for j in range(uintp(U)):
                    i, f, g, o = gi[j], gf[j], gg[j], go[j]
                    d = dhn[j]
                    t = tcn[j]
                    dct = dcn[j] + d * o * _d_from_output(phi_code, t)        # dL/dc_t
                    zi[j] = dct * g * _d_from_output(sigma_code, i)            # input gate
                    zf[j] = dct * cp[j] * _d_from_output(sigma_code, f)        # forget gate
                    zg[j] = dct * i * _d_from_output(phi_code, g)              # candidate cell
                    zo[j] = d * t * _d_from_output(sigma_code, o)              # output gate
                    dcn[j] = dct * f                                           # dL/dc_{t-1}
                    dhn[j] = 0
            else:
                for j in range(uintp(4 * U)):
                    dz[n, j] = 0
    return kernel


_CELL_BACKWARD = {}   # (phi_code, sigma_code) -> compiled kernel, made on first use


def cell_backward(G, c_prev, tc, m, dh, dc, dz, phi_code, sigma_code):
    """One step of BPTT through the gates (the formulas are in ``numbanet/reference/lstm.py``).

    On entry dh = dL/dh_t and dc = dL/dc_t carried from t+1 (before the cell's own
    contribution); on exit dz holds dL/dz_t, dc = dL/dc_{t-1} and dh = 0 on real rows.
    """
    kernel = _CELL_BACKWARD.get((phi_code, sigma_code))
    if kernel is None:
        kernel = _CELL_BACKWARD[phi_code, sigma_code] = _make_cell_backward(phi_code, sigma_code)
    kernel(G, c_prev, tc, m, dh, dc, dz)
