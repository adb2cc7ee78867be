"""Planar direct convolution loops for layers with few channels on both sides (stride 1).

For 2-16 channels in and out, im2col + GEMM runs at a fraction of BLAS's speed:
the unfolded matrix (KH*KW*C numbers per pixel) is as big as the arithmetic is
small, and the product's K or N is too thin for the BLAS kernels. The NHWC
direct loops (``direct_conv.py``) have an innermost loop over F or C = 2-16
numbers, shorter than LLVM's vector body. These loops change the layout
instead: a chunk of B images is copied into *planes*, one zero-padded image
plane per channel, the B images' planes laid end to end:

    L  = Hp * Wp,   Hp = OH + KH - 1,   Wp = OW + KW - 1      (the padded image; stride 1)
    XP[c, i*L + (h + PT)*Wp + (w + PL)] = x[n0 + i, h, w, c]     (zeros elsewhere, and
                                                 (KH-1)*Wp + KW-1 zeros past the last image)

Then output pixel (oh, ow) of image i sits at t = i*L + oh*Wp + ow, and its
window's tap (ki, kj) reads XP[c, t + ki*Wp + kj]: every tap is the whole plane
shifted by a constant. The convolution becomes, for each (f, c), one long loop
over t < B*L with the KH*KW weights held in registers:

    YP[f, t] = b[f] + sum_c sum_{ki, kj} W[ki, kj, c, f] * XP[c, t + ki*Wp + kj]        (forward)

which LLVM vectorises over t (8 float32 lanes on AVX2; FASTMATH lets it fuse the
multiply-adds, in any order within one t). The positions t whose
(oh, ow) falls outside the output (ow >= OW, or oh >= OH in the plane's last
rows) compute numbers nobody reads; that costs (Hp*Wp)/(OH*OW) - 1 of the work
(15% at 28x28 "same"). ``from_planes_into`` writes y back in NHWC with the relu.

The input gradient of a stride-1 convolution is the forward loop on the
flipped kernel (``direct_conv.py``'s docstring: gz padded by KH-1-PT, KW-1-PL,
Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f]), so the caller runs the same loops.

The weight gradient reads both planes, x's (XP, as above) and gz's on the same
grid (GP[f, t] = gz[n0 + i, oh, ow, f] at t = i*L + oh*Wp + ow, zero at the
unread positions), and sums over t:

    gW[ki, kj, c, f] += sum_t XP[c, t + ki*Wp + kj] * GP[f, t]

Without reassociation LLVM keeps a sum's order, so a dot product would run one
lane at a time; these sums are compiled with FASTMATH (``config.py``), so each
runs as 8-lane partial sums added up at the end, and a 3x3 kernel's 9 sums share
one pass over GP (``_dots_3x3``). The result differs from the sequential sum by
rounding only (``tests/test_conv_narrow.py`` bounds it).

Notation: x (N, H, W, C), W (KH, KW, C, F), b (F,), top/left pads PT, PL
(>= 0; the bottom/right ones follow from OH, OW, and may be negative, cutting
the image), y (N, OH, OW, F). All loops are serial and ``nogil``: the caller
splits the batch over threads (``fast/conv.py``). Indices are unsigned
(``uintp``) so that no negative-index fix-up blocks the vectoriser.
"""
from __future__ import annotations

import numpy as np

from .config import FASTMATH, U, njit


@njit
def to_planes_into(x, n0, n1, PT, PL, Hp, Wp, XP):
    """XP[c, i*L + (h + PT)*Wp + (w + PL)] = x[n0 + i, h, w, c], L = Hp*Wp; zero everywhere else.

    x (N, H, W, C) NHWC; XP (C, >= (n1 - n0)*L) is overwritten entirely: zeroed
    (one vectorised pass per plane), then x's rows are read in order and each
    pixel's C numbers go to the C planes. Image rows and columns that land
    outside the Hp x Wp plane (negative bottom/right padding) are left out.
    """
    H, Wd, C = x.shape[1], x.shape[2], x.shape[3]
    L = Hp * Wp
    for c in range(C):
        xp = XP[U(c)]
        for t in range(U(xp.size)):
            xp[t] = 0
    h_hi = min(H, Hp - PT)                 # image rows and columns inside the plane
    w_hi = min(Wd, Wp - PL)
    x2 = x.reshape(x.shape[0] * H, Wd * C)
    for i in range(n1 - n0):
        for h in range(h_hi):
            xr = x2[U((n0 + i) * H + h)]
            base = U(i * L + (h + PT) * Wp + PL)
            for w in range(U(w_hi)):
                for c in range(U(C)):
                    XP[c, base + w] = xr[w * U(C) + c]


@njit
def masked_to_planes_into(gy, y, relu, n0, n1, PT, PL, Hp, Wp, GP):
    """GP[f, i*L + (oh + PT)*Wp + (ow + PL)] = gz[n0 + i, oh, ow, f], zero elsewhere; gz = gy * [y > 0] if relu.

    ``to_planes_into`` of the relu-masked gradient, the mask applied on the way
    (y is read only with relu; pass gy itself otherwise). gy, y (N, OH, OW, F);
    GP (F, >= (n1 - n0)*L) is overwritten entirely. With PT = PL = 0 and no relu
    it is the weight gradient's gz on the grid of the input's planes (the same
    Hp, Wp as ``to_planes_into``).
    """
    OH, OW, F = gy.shape[1], gy.shape[2], gy.shape[3]
    L = Hp * Wp
    for f in range(F):
        gp = GP[U(f)]
        for t in range(U(gp.size)):
            gp[t] = 0
    h_hi = min(OH, Hp - PT)
    w_hi = min(OW, Wp - PL)
    g2 = gy.reshape(gy.shape[0] * OH, OW * F)
    y2 = y.reshape(y.shape[0] * OH, OW * F)
    for i in range(n1 - n0):
        for oh in range(h_hi):
            r = U((n0 + i) * OH + oh)
            gr, yr = g2[r], y2[r]
            base = U(i * L + (oh + PT) * Wp + PL)
            for ow in range(U(w_hi)):
                for f in range(U(F)):
                    k = ow * U(F) + f
                    v = gr[k]
                    if relu and not yr[k] > 0:
                        v = 0
                    GP[f, base + ow] = v


@njit(fastmath=FASTMATH)
def planes_row_sums_add(GP, T, out):
    """out[f] += sum_{t < T} GP[f, t] (any order: FASTMATH lets LLVM vectorise the sums)."""
    for f in range(GP.shape[0]):
        gp = GP[U(f)]
        s = gp.dtype.type(0)
        for t in range(U(T)):
            s += gp[t]
        out[f] += s


@njit
def from_planes_into(YP, n0, n1, Hp, Wp, relu, y):
    """y[n0 + i, oh, ow, f] = act(YP[f, i*L + oh*Wp + ow]), act = relu or identity; y (N, OH, OW, F)."""
    OH, OW, F = y.shape[1], y.shape[2], y.shape[3]
    L = Hp * Wp
    y2 = y.reshape(y.shape[0] * OH, OW * F)
    for i in range(n1 - n0):
        for oh in range(OH):
            yr = y2[U((n0 + i) * OH + oh)]
            base = U(i * L + oh * Wp)
            for ow in range(U(OW)):
                for f in range(U(F)):
                    v = YP[f, base + ow]
                    yr[ow * U(F) + f] = max(v, 0) if relu else v


@njit(fastmath=FASTMATH)
def planes_forward_into(XP, W, b, Wp, T, YP):
    """YP[f, t] = b[f] + sum_{ki, kj, c} W[ki, kj, c, f] * XP[c, t + ki*Wp + kj], for t < T.

    XP (C, >= T + (KH-1)*Wp + KW-1) planes, W (KH, KW, C, F), b (F,), YP (F, >= T).
    A 3x3 kernel runs its 9 taps in one loop over t (9 weights in registers, one
    load and store of YP per 9 multiply-adds); other sizes one kernel row (KW
    taps) per loop.
    """
    KH, KW, C, F = W.shape
    Wq = U(Wp)
    for f in range(F):
        yp = YP[U(f)]
        bf = b[f]
        for t in range(U(T)):
            yp[t] = bf
        for c in range(C):
            xp = XP[U(c)]
            if KH == 3 and KW == 3:
                w0, w1, w2 = W[0, 0, c, f], W[0, 1, c, f], W[0, 2, c, f]
                w3, w4, w5 = W[1, 0, c, f], W[1, 1, c, f], W[1, 2, c, f]
                w6, w7, w8 = W[2, 0, c, f], W[2, 1, c, f], W[2, 2, c, f]
                for t in range(U(T)):
                    r1 = t + Wq
                    r2 = r1 + Wq
                    yp[t] += ((w0 * xp[t] + w1 * xp[t + U(1)] + w2 * xp[t + U(2)])
                              + (w3 * xp[r1] + w4 * xp[r1 + U(1)] + w5 * xp[r1 + U(2)])
                              + (w6 * xp[r2] + w7 * xp[r2 + U(1)] + w8 * xp[r2 + U(2)]))
                continue
            for ki in range(KH):
                for kj in range(KW):
                    wv = W[ki, kj, c, f]
                    s = U(ki * Wp + kj)
                    for t in range(U(T)):
                        yp[t] += wv * xp[s + t]


@njit(fastmath=FASTMATH)
def _dot_shift(xp, s, gp, T):
    """sum_{t < T} xp[s + t] * gp[t], in any order (FASTMATH's reassociation lets LLVM vectorise it)."""
    a = xp.dtype.type(0)             # xp[0] * 0 would be float64: float32 * int64
    for t in range(U(T)):
        a += xp[s + t] * gp[t]
    return a


@njit(fastmath=FASTMATH)
def _dots_3x3(xp, Wp, gp, T, out):
    """out[ki*3 + kj] = sum_{t < T} xp[t + ki*Wp + kj] * gp[t]: the 9 taps of a 3x3 kernel in one pass,
    gp read once for all nine (FASTMATH's reassociation lets LLVM vectorise the nine sums)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = xp.dtype.type(0)   # in xp's precision
    Wq = U(Wp)
    for t in range(U(T)):
        g = gp[t]
        r1 = t + Wq
        r2 = r1 + Wq
        a0 += xp[t] * g
        a1 += xp[t + U(1)] * g
        a2 += xp[t + U(2)] * g
        a3 += xp[r1] * g
        a4 += xp[r1 + U(1)] * g
        a5 += xp[r1 + U(2)] * g
        a6 += xp[r2] * g
        a7 += xp[r2 + U(1)] * g
        a8 += xp[r2 + U(2)] * g
    out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], out[8] = a0, a1, a2, a3, a4, a5, a6, a7, a8


@njit
def planes_weight_grad_add(XP, GP, Wp, T, gW):
    """gW[ki, kj, c, f] += sum_{t < T} XP[c, t + ki*Wp + kj] * GP[f, t].

    XP (C, >= T + (KH-1)*Wp + KW-1) the input's planes, GP (F, >= T) gz's planes on
    the same grid (zero where no output pixel is), gW (KH, KW, C, F). A 3x3 kernel
    sums its 9 taps in one pass over t.
    """
    KH, KW, C, F = gW.shape
    taps = np.empty(9, dtype=gW.dtype)
    for c in range(C):
        xp = XP[U(c)]
        for f in range(F):
            gp = GP[U(f)]
            if KH == 3 and KW == 3:
                _dots_3x3(xp, Wp, gp, T, taps)
                for k in range(9):
                    gW[k // 3, k % 3, c, f] += taps[k]
                continue
            for ki in range(KH):
                for kj in range(KW):
                    gW[ki, kj, c, f] += _dot_shift(xp, U(ki * Wp + kj), gp, T)
