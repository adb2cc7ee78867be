"""Numba kernels of the Winograd convolution: the tile transforms around the matrix products.

Both kernels apply a two-sided transform P t P^T to small square tiles, one tile
and all channels at a time (the innermost loops run over the contiguous channel
axis, so LLVM vectorises them). The products between them are BLAS calls in
``numbanet/fast/winograd.py``; the math is in ``numbanet/reference/winograd.py``.

Layout of the transformed tiles: V (alpha*alpha, T, C), one contiguous (T, C)
matrix per position (xi, nu) of the alpha x alpha tile, so that each of the
alpha^2 products reads and writes whole matrices. T counts the tiles of the
images given, image-major, then tile row, then tile column.
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit
def tiles_transform_into(x, P, step, top, left, TH, TW, V):
    """V[xi*a + nu, t, :] = sum_(u, v) P[xi, u] P[nu, v] x[n, i*step - top + u, j*step - left + v, :].

    x (N, H, W, C) read as zero outside its bounds; P (a, s) with s the tile side
    read from x; t = (n*TH + i)*TW + j; V (a*a, N*TH*TW, C) filled.
    Input tiles: P = B^T (s = a, step m, top/left = the padding). The gradient's
    tiles: P = A (s = m, step m, no padding).
    """
    N, H, W, C = x.shape
    a, s = P.shape
    d = np.zeros((s, s, C), dtype=x.dtype)
    tmp = np.empty((a, s, C), dtype=x.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for u in range(s):                      # load the tile, zeros outside x
                    h = i * step - top + u
                    for v in range(s):
                        w = j * step - left + v
                        if 0 <= h < H and 0 <= w < W:
                            for c in range(C):
                                d[u, v, c] = x[n, h, w, c]
                        else:
                            for c in range(C):
                                d[u, v, c] = 0.0
                for xi in range(a):                     # tmp = P d
                    for v in range(s):
                        for c in range(C):
                            tmp[xi, v, c] = 0.0
                        for u in range(s):
                            p = P[xi, u]
                            if p != 0.0:
                                for c in range(C):
                                    tmp[xi, v, c] += p * d[u, v, c]
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
def output_transform_into(M, AT, b, relu, TH, TW, y):
    """y[n, i*m + k, j*m + l, :] = act((A^T M_t A)[k, l, :] + b), the part inside y only.

    M (a*a, N*TH*TW, F) the products; AT (m, a); b (F,) (zeros for no bias);
    y (N, OH, OW, F) filled; act = relu if ``relu`` else identity.
    """
    N, OH, OW, F = y.shape
    m, a = AT.shape
    tmp = np.empty((m, a, F), dtype=M.dtype)
    for n in range(N):
        for i in range(TH):
            for j in range(TW):
                t = (n * TH + i) * TW + j
                for k in range(m):                      # tmp = A^T M
                    for nu in range(a):
                        for f in range(F):
                            tmp[k, nu, f] = 0.0
                        for xi in range(a):
                            p = AT[k, xi]
                            if p != 0.0:
                                row = M[xi * a + nu, t]
                                for f in range(F):
                                    tmp[k, nu, f] += p * row[f]
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
