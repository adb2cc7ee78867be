"""Numba kernels of the Winograd convolution: the tile transforms around the matrix products.

The kernels apply a two-sided transform P t P^T to small square tiles, one tile
and all channels at a time (the innermost loops run over the contiguous channel
axis, so LLVM vectorises them). The input gradient runs the input transform
backwards: its transpose (the "adjoint" kernels, ``tiles_adjoint_into`` and the
written-out ``input_adjoint_f23_into`` / ``input_adjoint_f43_into``) maps each
transformed tile back, P^T t P, and adds it where the forward pass read that tile;
tiles overlap by 2, so the overlaps sum. The products between them are BLAS calls in
``numbanet/fast/winograd.py``; the math is in ``numbanet/reference/winograd.py``.

Layout of the transformed tiles: V (alpha*alpha, T, C), one contiguous (T, C)
matrix per position (xi, nu) of the alpha x alpha tile, so that each of the
alpha^2 products reads and writes whole matrices. T counts the tiles of the
images given, image-major, then tile row, then tile column.
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit(inline="always")
def _load_tile(x, n, h0, w0, d):
    """d[u, v, :] = x[n, h0 + u, w0 + v, :] for a tile d (s, s, C), zeros where that lies outside x."""
    _, H, W, C = x.shape
    s = d.shape[0]
    for u in range(s):
        h = h0 + u
        for v in range(s):
            w = w0 + v
            duv = d[u, v]
            if 0 <= h < H and 0 <= w < W:
                xhw = x[n, h, w]
                for c in range(C):
                    duv[c] = xhw[c]
            else:
                for c in range(C):
                    duv[c] = 0.0


@njit(inline="always")
def _add_tile(x, n, h0, w0, d):
    """x[n, h0 + u, w0 + v, :] += d[u, v, :] for a tile d (s, s, C), the cells inside x only.

    ``_load_tile``'s transpose."""
    _, H, W, C = x.shape
    s = d.shape[0]
    for u in range(s):
        h = h0 + u
        if h < 0 or h >= H:
            continue
        for v in range(s):
            w = w0 + v
            if 0 <= w < W:
                xhw = x[n, h, w]
                duv = d[u, v]
                for c in range(C):
                    xhw[c] += duv[c]


@njit(inline="always")
def _left_combine(Q, src, dst):
    """dst[k, j, :] = sum_i Q[k, i] src[i, j, :]: Q (k_out, i_in), src (i_in, J, C), dst (k_out, J, C) filled.

    One side of a tile's two-sided transform; zero entries of Q skipped. The other side is
    the same call on the transposed tiles, (t Q^T)^T = Q t^T.
    """
    kk, ii = Q.shape
    J, C = src.shape[1], src.shape[2]
    for k in range(kk):
        for j in range(J):
            for c in range(C):
                dst[k, j, c] = 0.0
            for i in range(ii):
                p = Q[k, i]
                if p != 0.0:
                    for c in range(C):
                        dst[k, j, c] += p * src[i, j, c]


@njit
def tiles_transform_into(x, P, step, top, left, TH, TW, V):
    """V[xi*a + nu, t, :] = sum_(u, v) P[xi, u] P[nu, v] x[n, i*step - top + u, j*step - left + v, :].

    x (N, H, W, C) read as zero outside its bounds; P (a, s) with s the tile side
    read from x; t = (n*TH + i)*TW + j; V (a*a, N*TH*TW, C) filled.
    Input tiles: P = B^T (s = a, step m, top/left = the padding). The gradient's
    tiles: P = A (s = m, step m, no padding).
    """
    N, _, _, C = x.shape
    a, s = P.shape
    d = np.zeros((s, s, C), dtype=x.dtype)
    tmp = np.empty((a, s, C), dtype=x.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _load_tile(x, n, i * step - top, j * step - left, d)     # zeros outside x
                _left_combine(P, d, tmp)                # tmp = P d
                for xi in range(a):                     # V = tmp P^T
                    for nu in range(a):
                        out = V[xi * a + nu, t]
                        for c in range(C):
                            out[c] = 0.0
                        for v in range(s):
                            p = P[nu, v]
                            if p != 0.0:
                                for c in range(C):
                                    out[c] += p * tmp[xi, v, c]


@njit
def tiles_adjoint_into(V, P, step, top, left, TH, TW, x):
    """The transpose of ``tiles_transform_into``: x = sum over tiles of P^T V_t P, each placed where its tile was read.

    x[n, i*step - top + u, j*step - left + v, :] += sum_(xi, nu) P[xi, u] P[nu, v] V[xi*a + nu, t, :],
    the cells inside x only (the padding's share is dropped); x (N, H, W, C) is zeroed first.
    With P = B^T this is the input gradient's last step (``fast/winograd.py: input_grad``).
    """
    N, _, _, C = x.shape
    a, s = P.shape
    V4 = np.ascontiguousarray(V).reshape(a, a, V.shape[1], C)    # V4[xi, nu, t] = V[xi*a + nu, t]
    d = np.empty((s, s, C), dtype=x.dtype)
    tmp = np.empty((s, a, C), dtype=x.dtype)
    x[:] = 0.0
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _left_combine(P.T, V4[:, :, t], tmp)    # tmp = P^T V
                _left_combine(P.T, tmp.transpose((1, 0, 2)), d.transpose((1, 0, 2)))   # d = tmp P
                _add_tile(x, n, i * step - top, j * step - left, d)


@njit
def output_transform_into(M, AT, b, relu, TH, TW, y):
    """y[n, i*m + k, j*m + l, :] = act((A^T M_t A)[k, l, :] + b), the part inside y only.

    M (a*a, N*TH*TW, F) the products; AT (m, a); b (F,) (zeros for no bias);
    y (N, OH, OW, F) filled; act = relu if ``relu`` else identity.
    """
    N, OH, OW, F = y.shape
    m, a = AT.shape
    M4 = np.ascontiguousarray(M).reshape(a, a, M.shape[1], F)    # M4[xi, nu, t] = M[xi*a + nu, t]
    tmp = np.empty((m, a, F), dtype=M.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _left_combine(AT, M4[:, :, t], tmp)     # tmp = A^T M
                for k in range(m):                      # y = tmp A, + b, act
                    h = i * m + k
                    if h >= OH:
                        break
                    for l in range(m):
                        w = j * m + l
                        if w >= OW:
                            break
                        out = y[n, h, w]
                        for f in range(F):
                            out[f] = b[f]
                        for nu in range(a):
                            p = AT[l, nu]
                            if p != 0.0:
                                for f in range(F):
                                    out[f] += p * tmp[k, nu, f]
                        if relu:
                            for f in range(F):
                                if out[f] < 0.0:
                                    out[f] = 0.0


# ------------------------------------------------ F(2x2, 3x3) written out
# The same transforms with F(2, 3)'s matrices spelt as additions (B^T rows
# d0 - d2, d1 + d2, d2 - d1, d1 - d3; A^T rows m0 + m1 + m2, m1 - m2 - m3; A rows
# g0, g0 + g1, g0 - g1, -g1): no multiplications, no zero tests, one pass over the
# channels per tile position. They replace the general kernels above on the fast
# route; tests check them against those and against the reference tier.


@njit
def input_transform_f23_into(x, top, left, TH, TW, V):
    """V[4*xi + nu, t, :] = (B^T d B)[xi, nu, :] of tile (n, i, j), d = x[n, 2i - top : +4, 2j - left : +4, :].

    x (N, H, W, C) read as zero outside its bounds; V (16, N*TH*TW, C) filled.
    """
    N, _, _, C = x.shape
    d = np.zeros((4, 4, C), dtype=x.dtype)
    r = np.empty((4, 4, C), dtype=x.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _load_tile(x, n, 2 * i - top, 2 * j - left, d)
                for v in range(4):                      # r = B^T d, column by column
                    for c in range(C):
                        d0, d1, d2, d3 = d[0, v, c], d[1, v, c], d[2, v, c], d[3, v, c]
                        r[0, v, c] = d0 - d2
                        r[1, v, c] = d1 + d2
                        r[2, v, c] = d2 - d1
                        r[3, v, c] = d1 - d3
                for xi in range(4):                     # V = r B, row by row
                    o0, o1, o2, o3 = V[4 * xi, t], V[4 * xi + 1, t], V[4 * xi + 2, t], V[4 * xi + 3, t]
                    for c in range(C):
                        r0, r1, r2, r3 = r[xi, 0, c], r[xi, 1, c], r[xi, 2, c], r[xi, 3, c]
                        o0[c] = r0 - r2
                        o1[c] = r1 + r2
                        o2[c] = r2 - r1
                        o3[c] = r1 - r3


@njit
def output_transform_f23_into(M, b, relu, TH, TW, y):
    """y[n, 2i + k, 2j + l, :] = act((A^T M_t A)[k, l, :] + b), inside y only.

    M (16, N*TH*TW, F); b (F,); y (N, OH, OW, F) filled; act = relu if ``relu``.
    """
    N, OH, OW, F = y.shape
    s = np.empty((2, 4, F), dtype=M.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for nu in range(4):                     # s = A^T M, column by column
                    m0, m1, m2, m3 = M[nu, t], M[4 + nu, t], M[8 + nu, t], M[12 + nu, t]
                    for f in range(F):
                        s[0, nu, f] = m0[f] + m1[f] + m2[f]
                        s[1, nu, f] = m1[f] - m2[f] - m3[f]
                for k in range(2):                      # y = s A, + b, act
                    h = 2 * i + k
                    if h >= OH:
                        break
                    for l in range(2):
                        w = 2 * j + l
                        if w >= OW:
                            break
                        out = y[n, h, w]
                        for f in range(F):
                            if l == 0:
                                z = s[k, 0, f] + s[k, 1, f] + s[k, 2, f] + b[f]
                            else:
                                z = s[k, 1, f] - s[k, 2, f] - s[k, 3, f] + b[f]
                            out[f] = max(z, 0.0) if relu else z


@njit
def input_adjoint_f23_into(gV, top, left, TH, TW, gx):
    """gx = sum over tiles of B gV_t B^T, tile (n, i, j) added at (2i - top, 2j - left), inside gx only.

    ``input_transform_f23_into``'s transpose; B's rows are B^T's columns:
    (B g) = [g0, g1 - g2 + g3, g1 + g2 - g0, -g3]. gV (16, N*TH*TW, C); gx (N, H, W, C) zeroed, then filled.
    """
    N, _, _, C = gx.shape
    r = np.empty((4, 4, C), dtype=gx.dtype)
    d = np.empty((4, 4, C), dtype=gx.dtype)
    gx[:] = 0.0
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for xi in range(4):                     # r = gV B^T, row by row
                    g0, g1, g2, g3 = gV[4 * xi, t], gV[4 * xi + 1, t], gV[4 * xi + 2, t], gV[4 * xi + 3, t]
                    for c in range(C):
                        r[xi, 0, c] = g0[c]
                        r[xi, 1, c] = g1[c] - g2[c] + g3[c]
                        r[xi, 2, c] = g1[c] + g2[c] - g0[c]
                        r[xi, 3, c] = -g3[c]
                for v in range(4):                      # d = B r, column by column
                    for c in range(C):
                        r0, r1, r2, r3 = r[0, v, c], r[1, v, c], r[2, v, c], r[3, v, c]
                        d[0, v, c] = r0
                        d[1, v, c] = r1 - r2 + r3
                        d[2, v, c] = r1 + r2 - r0
                        d[3, v, c] = -r3
                _add_tile(gx, n, 2 * i - top, 2 * j - left, d)


# ------------------------------------------------ F(4x4, 3x3) written out
# F(4, 3)'s matrices (``reference/winograd.py: F43``) spelt as additions and
# multiplications by 2, 4, 5 and 8, with the common sums shared:
#   B^T d:  4 d0 - 5 d2 + d4,  -4 (d1 + d2) + (d3 + d4),  4 (d1 - d2) + (d4 - d3),
#           2 (d3 - d1) + (d4 - d2),  2 (d1 - d3) + (d4 - d2),  4 d1 - 5 d3 + d5
#   A^T m:  with a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4:
#           m0 + a + c,  b + 2 e,  a + 4 c,  b + 8 e + m5
# One pass over the channels per tile position, as in the F(2, 3) kernels above.
# The constants are made in the array's dtype (``_constants``): a float64 literal
# would turn every float32 operation into a float64 one and back.


@njit
def _constants(dtype):
    """(2, 4, 5, 8, 0) in ``dtype``."""
    k = np.array([2.0, 4.0, 5.0, 8.0, 0.0]).astype(dtype)
    return k[0], k[1], k[2], k[3], k[4]


@njit
def input_transform_f43_into(x, top, left, TH, TW, V):
    """V[6*xi + nu, t, :] = (B^T d B)[xi, nu, :] of tile (n, i, j), d = x[n, 4i - top : +6, 4j - left : +6, :].

    x (N, H, W, C) read as zero outside its bounds; V (36, N*TH*TW, C) filled.
    """
    N, _, _, C = x.shape
    d = np.zeros((6, 6, C), dtype=x.dtype)
    r = np.empty((6, 6, C), dtype=x.dtype)
    two, four, five = _constants(x.dtype)[:3]
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _load_tile(x, n, 4 * i - top, 4 * j - left, d)
                for v in range(6):                      # r = B^T d, column by column
                    for c in range(C):
                        d0, d1, d2, d3, d4, d5 = d[0, v, c], d[1, v, c], d[2, v, c], d[3, v, c], d[4, v, c], d[5, v, c]
                        r[0, v, c] = four * d0 - five * d2 + d4
                        r[1, v, c] = (d3 + d4) - four * (d1 + d2)
                        r[2, v, c] = four * (d1 - d2) + (d4 - d3)
                        r[3, v, c] = two * (d3 - d1) + (d4 - d2)
                        r[4, v, c] = two * (d1 - d3) + (d4 - d2)
                        r[5, v, c] = four * d1 - five * d3 + d5
                for xi in range(6):                     # V = r B, row by row
                    o0, o1, o2 = V[6 * xi, t], V[6 * xi + 1, t], V[6 * xi + 2, t]
                    o3, o4, o5 = V[6 * xi + 3, t], V[6 * xi + 4, t], V[6 * xi + 5, t]
                    for c in range(C):
                        r0, r1, r2, r3, r4, r5 = r[xi, 0, c], r[xi, 1, c], r[xi, 2, c], r[xi, 3, c], r[xi, 4, c], r[xi, 5, c]
                        o0[c] = four * r0 - five * r2 + r4
                        o1[c] = (r3 + r4) - four * (r1 + r2)
                        o2[c] = four * (r1 - r2) + (r4 - r3)
                        o3[c] = two * (r3 - r1) + (r4 - r2)
                        o4[c] = two * (r1 - r3) + (r4 - r2)
                        o5[c] = four * r1 - five * r3 + r5


@njit
def output_transform_f43_into(M, b, relu, TH, TW, y):
    """y[n, 4i + k, 4j + l, :] = act((A^T M_t A)[k, l, :] + b), inside y only.

    M (36, N*TH*TW, F); b (F,); y (N, OH, OW, F) filled; act = relu if ``relu``.
    """
    N, OH, OW, F = y.shape
    s = np.empty((4, 6, F), dtype=M.dtype)
    z = np.empty((4, F), dtype=M.dtype)
    two, four, five, eight, zero = _constants(M.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for nu in range(6):                     # s = A^T M, column by column
                    m0, m1, m2 = M[nu, t], M[6 + nu, t], M[12 + nu, t]
                    m3, m4, m5 = M[18 + nu, t], M[24 + nu, t], M[30 + nu, t]
                    for f in range(F):
                        a, bb = m1[f] + m2[f], m1[f] - m2[f]
                        c, e = m3[f] + m4[f], m3[f] - m4[f]
                        s[0, nu, f] = m0[f] + a + c
                        s[1, nu, f] = bb + two * e
                        s[2, nu, f] = a + four * c
                        s[3, nu, f] = bb + eight * e + m5[f]
                cols = min(4, OW - 4 * j)
                for k in range(4):                      # y = s A, + b, act
                    h = 4 * i + k
                    if h >= OH:
                        break
                    sk = s[k]
                    for f in range(F):
                        a, bb = sk[1, f] + sk[2, f], sk[1, f] - sk[2, f]
                        c, e = sk[3, f] + sk[4, f], sk[3, f] - sk[4, f]
                        z0 = sk[0, f] + a + c + b[f]
                        z1 = bb + two * e + b[f]
                        z2 = a + four * c + b[f]
                        z3 = bb + eight * e + sk[5, f] + b[f]
                        if relu:
                            z0, z1, z2, z3 = max(z0, zero), max(z1, zero), max(z2, zero), max(z3, zero)
                        z[0, f], z[1, f], z[2, f], z[3, f] = z0, z1, z2, z3
                    for l in range(cols):
                        yl, zl = y[n, h, 4 * j + l], z[l]
                        for f in range(F):
                            yl[f] = zl[f]


@njit
def grad_transform_f43_into(gy, TH, TW, gM):
    """gM[6*xi + nu, t, :] = (A gY A^T)[xi, nu, :] of gy's 4x4 tile (n, i, j), zeros past gy's edge.

    The weight gradient's tiles of F(4x4, 3x3) (``fast/winograd.py: weight_grad``): A = (A^T)^T
    (6, 4), rows [1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8], [1, -2, 4, -8], [0, 0, 0, 1],
    spelt as shared sums. gy (N, OH, OW, F); gM (36, N*TH*TW, F) filled.
    """
    N, _, _, F = gy.shape
    d = np.zeros((4, 4, F), dtype=gy.dtype)
    r = np.empty((6, 4, F), dtype=gy.dtype)
    two, four, _, eight, _ = _constants(gy.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                _load_tile(gy, n, 4 * i, 4 * j, d)                       # zeros past gy's edge
                for v in range(4):                      # r = A gY, column by column
                    for f in range(F):
                        g0, g1, g2, g3 = d[0, v, f], d[1, v, f], d[2, v, f], d[3, v, f]
                        s02, s13 = g0 + g2, g1 + g3
                        p, q = g0 + four * g2, two * g1 + eight * g3
                        r[0, v, f] = g0
                        r[1, v, f] = s02 + s13
                        r[2, v, f] = s02 - s13
                        r[3, v, f] = p + q
                        r[4, v, f] = p - q
                        r[5, v, f] = g3
                for xi in range(6):                     # gM = r A^T, row by row
                    o0, o1, o2 = gM[6 * xi, t], gM[6 * xi + 1, t], gM[6 * xi + 2, t]
                    o3, o4, o5 = gM[6 * xi + 3, t], gM[6 * xi + 4, t], gM[6 * xi + 5, t]
                    for f in range(F):
                        g0, g1, g2, g3 = r[xi, 0, f], r[xi, 1, f], r[xi, 2, f], r[xi, 3, f]
                        s02, s13 = g0 + g2, g1 + g3
                        p, q = g0 + four * g2, two * g1 + eight * g3
                        o0[f] = g0
                        o1[f] = s02 + s13
                        o2[f] = s02 - s13
                        o3[f] = p + q
                        o4[f] = p - q
                        o5[f] = g3


@njit(inline="always")
def _f43_b_row(u, g0, g1, g2, g3, g4, g5, two, four, five):
    """(B g)[u] for F(4, 3)'s B = (B^T)^T: row u of B is column u of B^T."""
    if u == 0:
        return four * g0
    if u == 1:
        return four * (g2 - g1) + two * (g4 - g3) + four * g5
    if u == 2:
        return -(five * g0 + four * (g1 + g2) + (g3 + g4))
    if u == 3:
        return (g1 - g2) + two * (g3 - g4) - five * g5
    if u == 4:
        return g0 + g1 + g2 + g3 + g4
    return g5


@njit
def input_adjoint_f43_into(gV, top, left, TH, TW, gx):
    """gx = sum over tiles of B gV_t B^T, tile (n, i, j) added at (4i - top, 4j - left), inside gx only.

    ``input_transform_f43_into``'s transpose, for the input gradient (``fast/winograd.py: input_grad``).
    B's rows are B^T's columns: with g = (g0, .., g5),
        B g = [4 g0,  4 (g2 - g1) + 2 (g4 - g3) + 4 g5,  -(5 g0 + 4 (g1 + g2) + (g3 + g4)),
               (g1 - g2) + 2 (g3 - g4) - 5 g5,  g0 + g1 + g2 + g3 + g4,  g5]   (``_f43_b_row``).
    The second side is added straight into gx, one (row, column) cell of the tile at a
    time (the choice of row u is the same for all channels, so LLVM takes it out of the
    channel loop). gV (36, N*TH*TW, C); gx (N, H, W, C) zeroed, then filled.
    """
    N, H, Wd, C = gx.shape
    r = np.empty((6, 6, C), dtype=gx.dtype)
    two, four, five = _constants(gx.dtype)[:3]
    gx[:] = 0.0
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for xi in range(6):                     # r = gV B^T, row by row
                    g0, g1, g2 = gV[6 * xi, t], gV[6 * xi + 1, t], gV[6 * xi + 2, t]
                    g3, g4, g5 = gV[6 * xi + 3, t], gV[6 * xi + 4, t], gV[6 * xi + 5, t]
                    for c in range(C):
                        a0, a1, a2, a3, a4, a5 = g0[c], g1[c], g2[c], g3[c], g4[c], g5[c]
                        r[xi, 0, c] = four * a0
                        r[xi, 1, c] = four * (a2 - a1) + two * (a4 - a3) + four * a5
                        r[xi, 2, c] = -(five * a0 + four * (a1 + a2) + (a3 + a4))
                        r[xi, 3, c] = (a1 - a2) + two * (a3 - a4) - five * a5
                        r[xi, 4, c] = a0 + a1 + a2 + a3 + a4
                        r[xi, 5, c] = a5
                h0, w0 = 4 * i - top, 4 * j - left
                for v in range(6):                      # gx += B r, column by column, inside gx only
                    w = w0 + v
                    if w < 0 or w >= Wd:
                        continue
                    for u in range(6):
                        h = h0 + u
                        if h < 0 or h >= H:
                            continue
                        out = gx[n, h, w]
                        for c in range(C):
                            out[c] += _f43_b_row(u, r[0, v, c], r[1, v, c], r[2, v, c], r[3, v, c], r[4, v, c],
                                                 r[5, v, c], two, four, five)
