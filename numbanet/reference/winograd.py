"""Winograd's minimal filtering: a 3x3 stride-1 convolution with fewer multiplications than im2col.

The textbook version, beside ``conv.py``'s im2col; the fast tier's ``fast/winograd.py``
computes the same thing with Numba transforms and BLAS products.

One dimension first. F(m, r) computes m outputs of a correlation with an r-tap
filter, y_i = sum_k g_k d_(i+k) (i < m), from a tile of alpha = m + r - 1 inputs
with only alpha multiplications instead of m*r:

    y = A^T [ (G g) * (B^T d) ]           (* elementwise; A^T (m, alpha), G (alpha, r), B^T (alpha, alpha))

Derivation (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2015, after Winograd 1980 and Toom-Cook): write the filter and a reversed output
as polynomials, g(x) = sum g_k x^k; the outputs are coefficients of a product of
polynomials of degrees r-1 and m-1, a polynomial of degree alpha-1, which is
fixed by its values at alpha points. Evaluate g and the data at the points
(the rows of G and B^T: the Vandermonde rows [1, p, p^2, ...], G's scaled by
1 / prod_(l != j) (p_j - p_l)), multiply the values point by point (the alpha
products), and interpolate back (A^T: the Lagrange / Chinese-remainder
reconstruction, a polynomial is the sum of its residues modulo (x - p_j)).
The point "infinity" stands for the leading coefficient (the product of the
two leading coefficients, g_(r-1) * d_last: the last row of G is [0 .. 0 1]).
Choosing small points keeps every matrix entry small and exact in binary.

F(2, 3), points 0, 1, -1, inf (alpha = 4): 2 outputs from 4 products instead of 6::

    B^T = [[1,  0, -1,  0],      G = [[1,    0,   0  ],      A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],           [1/2,  1/2, 1/2],             [0, 1, -1, -1]]
           [0, -1,  1,  0],           [1/2, -1/2, 1/2],
           [0,  1,  0, -1]]           [0,    0,   1  ]]

so m1 = (d0 - d2) g0, m2 = (d1 + d2)(g0 + g1 + g2)/2, m3 = (d2 - d1)(g0 - g1 + g2)/2,
m4 = (d1 - d3) g2, y0 = m1 + m2 + m3, y1 = m2 - m3 - m4.

F(4, 3), points 0, 1, -1, 2, -2, inf (alpha = 6): 4 outputs from 6 products
(``F43``). Larger tiles save more products but the entries grow (2^3 = 8 in A^T,
4 and 5 in B^T), and so does the float32 rounding error.

Two dimensions nest the one-dimensional algorithm, F(m x m, 3 x 3):

    Y = A^T [ (G g G^T) * (B^T d B) ] A       d (alpha, alpha) input tile, g (3, 3), Y (m, m)

Input tiles overlap by r - 1 = 2 and step by m. With C channels and F filters the
elementwise product becomes, for each of the alpha^2 positions (xi, nu), a matrix
product over the channels, alpha^2 GEMMs of (tiles, C) @ (C, F):

    U[xi, nu] = (G g G^T)[xi, nu]        (alpha, alpha, C, F)   the kernel, transformed once
    V[xi, nu] = (B^T d B)[xi, nu]        (alpha, alpha, T, C)   T = N * TH * TW input tiles
    M[xi, nu] = V[xi, nu] @ U[xi, nu]    (alpha, alpha, T, F)   alpha^2 matrix products
    Y         = A^T M A                  (T, m, m, F)           per tile and filter

F(2x2, 3x3) needs 16 products per 2x2 outputs against 36 for im2col, 2.25x fewer.
The convolution is a correlation (Keras's Conv2D), stride 1, any padding; a
partial last tile reads zeros past the padded image and its extra outputs are
dropped. Shapes: x (N, H, W, C), W (3, 3, C, F), pads (PT, PB, PL, PR),
y (N, OH, OW, F), OH = H + PT + PB - 2, OW = W + PL + PR - 2, TH = ceil(OH / m).
"""
from __future__ import annotations

import numpy as np

# F(2, 3): points 0, 1, -1, inf.
F23 = dict(
    m=2,
    BT=np.array([[1, 0, -1, 0],
                 [0, 1, 1, 0],
                 [0, -1, 1, 0],
                 [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0],
                [0.5, 0.5, 0.5],
                [0.5, -0.5, 0.5],
                [0, 0, 1]], dtype=np.float64),
    AT=np.array([[1, 1, 1, 0],
                 [0, 1, -1, -1]], dtype=np.float64),
)

# F(4, 3): points 0, 1, -1, 2, -2, inf.
F43 = dict(
    m=4,
    BT=np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], dtype=np.float64),
    G=np.array([[1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1]], dtype=np.float64),
    AT=np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], dtype=np.float64),
)

ALGORITHMS = {2: F23, 4: F43}    # output tile size m -> the transform matrices


def transform_kernel(W, alg=F23):
    """U = G g G^T for every (c, f):  W (3, 3, C, F) -> U (alpha, alpha, C, F)."""
    G = alg["G"].astype(W.dtype)
    return np.einsum("pk,klcf,ql->pqcf", G, W, G)


def input_tiles(x, pads, m, tiles_hw):
    """The overlapping input tiles d:  x (N, H, W, C) -> (N, TH, TW, alpha, alpha, C).

    Tile (i, j) starts at padded row i*m, column j*m; zeros beyond the padded image.
    """
    N, H, Wd, C = x.shape
    (TH, TW), alpha = tiles_hw, m + 2
    PT, _, PL, _ = pads
    xp = np.zeros((N, TH * m + 2, TW * m + 2, C), dtype=x.dtype)
    rows, cols = min(H, TH * m + 2 - PT), min(Wd, TW * m + 2 - PL)   # a big bottom/right pad is cut off
    xp[:, PT:PT + rows, PL:PL + cols] = x[:, :rows, :cols]
    d = np.empty((N, TH, TW, alpha, alpha, C), dtype=x.dtype)
    for u in range(alpha):
        for v in range(alpha):
            d[:, :, :, u, v] = xp[:, u:u + TH * m:m, v:v + TW * m:m]
    return d


def winograd_conv2d(x, W, pads, m=2):
    """y = conv(x, W) by Winograd F(m x m, 3 x 3):  x (N, H, W, C), W (3, 3, C, F) -> y (N, OH, OW, F).

    The four steps of the module docstring: transform the kernel (U) and the input
    tiles (V), alpha^2 matrix products over the channels (M), transform back (Y),
    and cut the tiled output to (OH, OW). ``m`` is 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)).
    """
    alg = ALGORITHMS[m]
    KH, KW, C, F = W.shape
    if (KH, KW) != (3, 3):
        raise ValueError(f"winograd_conv2d: the transforms are for 3x3 kernels, got a {KH}x{KW} kernel "
                         f"{W.shape}; use conv2d (im2col) for other sizes")
    N, H, Wd, _ = x.shape
    PT, PB, PL, PR = pads
    OH, OW = H + PT + PB - 2, Wd + PL + PR - 2
    TH, TW = -(-OH // m), -(-OW // m)
    BT, AT = alg["BT"].astype(x.dtype), alg["AT"].astype(x.dtype)
    U = transform_kernel(W, alg)                                        # (a, a, C, F)
    d = input_tiles(x, pads, m, (TH, TW))                               # (N, TH, TW, a, a, C)
    V = np.einsum("pu,ntjuvc,qv->pqntjc", BT, d, BT)                    # B^T d B: (a, a, N, TH, TW, C)
    M = np.empty(V.shape[:-1] + (F,), dtype=x.dtype)                    # (a, a, N, TH, TW, F)
    for xi in range(m + 2):
        for nu in range(m + 2):                                         # alpha^2 products over the channels
            M[xi, nu] = V[xi, nu] @ U[xi, nu]                           # (N, TH, TW, C) @ (C, F)
    Y = np.einsum("ip,pqntkf,jq->ntikjf", AT, M, AT)                    # A^T M A: (N, TH, m, TW, m, F)
    return Y.reshape(N, TH * m, TW * m, F)[:, :OH, :OW]                 # tiled rows/cols -> (N, OH, OW, F)


def flipped_kernel(W):
    """Wf[a, b, f, c] = W[2-a, 2-b, c, f]:  (3, 3, C, F) -> (3, 3, F, C)."""
    return W[::-1, ::-1].transpose(0, 1, 3, 2)


def input_grad_pads(in_hw, out_hw, pads):
    """Pads that make the stride-1 convolution of gy (OH, OW) with the flipped kernel come out (H, W).

    Top/left 2 - PT, 2 - PL (a row h = o - PT + k of x meets gy's row o through tap k);
    bottom/right so that H = OH + PT' + PB' - 2.
    """
    (H, Wd), (OH, OW) = in_hw, out_hw
    PT2, PL2 = 2 - pads[0], 2 - pads[2]
    return (PT2, H - OH - PT2 + 2, PL2, Wd - OW - PL2 + 2)


def winograd_input_grad(gy, W, in_hw, pads, m=2):
    """gx = dL/dx of y = conv(x, W): the Winograd convolution of gy with the flipped kernel.

    gx[n, h, w, c] = sum_(k, l, f) gy[n, h + PT - k, w + PL - l, f] W[k, l, c, f]
                   = conv(gy, Wf) with Wf = ``flipped_kernel(W)`` and ``input_grad_pads``.
    gy (N, OH, OW, F), W (3, 3, C, F) -> gx (N, H, W, C).
    """
    pads2 = input_grad_pads(in_hw, gy.shape[1:3], pads)
    return winograd_conv2d(gy, flipped_kernel(W), pads2, m)


def winograd_input_grad_transposed(gy, W, in_hw, pads, m=2):
    """gx = dL/dx by the transpose of the Winograd forward pass:  gy (N, OH, OW, F) -> gx (N, H, W, C).

    The forward pass is a chain of linear maps of x, so its gradient runs the
    transposes of the same maps backwards (the same idea as ``winograd_weight_grad``):

        d_t        tiles of the padded x          (T, a, a, C)   read at rows i*m.., columns j*m.., overlapping by 2
        V[xi, nu]  = (B^T d B)[xi, nu]            (a, a, T, C)
        M[xi, nu]  = V[xi, nu] @ U[xi, nu]        (a, a, T, F)
        Y          = A^T M A, cut to (OH, OW)

    backwards, each step's transpose:

        gM[xi, nu] = (A gY A^T)[xi, nu]           (a, a, T, F)   gY cut into m x m tiles, zeros past (OH, OW)
        gV[xi, nu] = gM[xi, nu] @ U[xi, nu]^T     (a, a, T, C)   alpha^2 products over the filters
        gd_t       = B gV_t B^T                   (T, a, a, C)
        gx         = the tiles gd_t added back where d_t was read (the overlaps sum), padding dropped

    It gives the same numbers as ``winograd_input_grad`` (a Winograd convolution of gy
    with the flipped kernel, "full" padding) up to rounding, but its tiles are the
    forward pass's: on a "valid" layer 11x11 -> 13x13 that is 3x3 tiles of 4 instead
    of 4x4, and the kernel transform U is the forward pass's own.
    """
    alg = ALGORITHMS[m]
    N, OH, OW, F = gy.shape
    H, Wd = in_hw
    C = W.shape[2]
    PT, _, PL, _ = pads
    TH, TW, a = -(-OH // m), -(-OW // m), m + 2
    BT, AT = alg["BT"].astype(gy.dtype), alg["AT"].astype(gy.dtype)
    U = transform_kernel(W, alg)                                        # (a, a, C, F)
    gYp = np.zeros((N, TH * m, TW * m, F), dtype=gy.dtype)
    gYp[:, :OH, :OW] = gy
    gM = np.einsum("ip,ntikjf,jq->pqntkf", AT, gYp.reshape(N, TH, m, TW, m, F), AT)   # (a, a, N, TH, TW, F)
    gV = np.empty(gM.shape[:-1] + (C,), dtype=gy.dtype)                 # (a, a, N, TH, TW, C)
    for xi in range(a):
        for nu in range(a):
            gV[xi, nu] = gM[xi, nu] @ U[xi, nu].T                       # (N, TH, TW, F) @ (F, C)
    gd = np.einsum("pu,pqntjc,qv->ntjuvc", BT, gV, BT)                  # B gV B^T: (N, TH, TW, a, a, C)
    gxp = np.zeros((N, TH * m + 2, TW * m + 2, C), dtype=gy.dtype)     # the padded frame ``input_tiles`` reads
    for u in range(a):
        for v in range(a):                                              # for one (u, v) no two tiles meet
            gxp[:, u:u + TH * m:m, v:v + TW * m:m] += gd[:, :, :, u, v]
    gx = np.zeros((N, H, Wd, C), dtype=gy.dtype)
    rows, cols = min(H, TH * m + 2 - PT), min(Wd, TW * m + 2 - PL)     # as ``input_tiles`` cuts a big pad
    gx[:, :rows, :cols] = gxp[:, PT:PT + rows, PL:PL + cols]
    return gx


def winograd_weight_grad(x, gy, pads, m=2):
    """gW = dL/dW by the transpose of the Winograd forward pass:  -> (3, 3, C, F).

    Y = A^T M A with M = V @ U, U = G g G^T, so, with the same tiles V:

        gM[xi, nu] = (A gY A^T)[xi, nu]          (a, a, T, F)  gY cut into m x m tiles, zeros past (OH, OW)
        gU[xi, nu] = V[xi, nu]^T @ gM[xi, nu]    (a, a, C, F)  alpha^2 products over the tiles
        gW         = G^T gU G                    (3, 3, C, F)
    """
    alg = ALGORITHMS[m]
    N, H, Wd, C = x.shape
    _, OH, OW, F = gy.shape
    TH, TW = -(-OH // m), -(-OW // m)
    BT, AT, G = (alg[k].astype(x.dtype) for k in ("BT", "AT", "G"))
    d = input_tiles(x, pads, m, (TH, TW))
    V = np.einsum("pu,ntjuvc,qv->pqntjc", BT, d, BT)                    # (a, a, N, TH, TW, C)
    gYp = np.zeros((N, TH * m, TW * m, F), dtype=gy.dtype)
    gYp[:, :OH, :OW] = gy
    gYt = gYp.reshape(N, TH, m, TW, m, F)                               # (N, TH, m, TW, m, F)
    gM = np.einsum("ip,ntikjf,jq->pqntkf", AT, gYt, AT)                 # A gY A^T: (a, a, N, TH, TW, F)
    gU = np.empty((m + 2, m + 2, C, F), dtype=x.dtype)
    for xi in range(m + 2):
        for nu in range(m + 2):
            gU[xi, nu] = V[xi, nu].reshape(-1, C).T @ gM[xi, nu].reshape(-1, F)   # (C, T) @ (T, F)
    return np.einsum("pk,pqcf,ql->klcf", G, gU, G)
