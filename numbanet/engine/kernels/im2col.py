"""im2col and col2im: unfold image patches into matrix rows, and fold them back.

Notation (NHWC throughout):
    x    (N, H, W, C)              an image batch
    KH, KW                         kernel (window) height and width
    SH, SW                         strides
    PT, PB, PL, PR                 zero padding at the top, bottom, left, right
    OH = (H + PT + PB - KH) // SH + 1,   OW = (W + PL + PR - KW) // SW + 1
    col  (N, OH, OW, KH, KW, C)    one row per output pixel, i.e. the matrix
                                   (N*OH*OW, KH*KW*C) after a free reshape

Index arithmetic. Output pixel (oh, ow) looks at the window whose top-left
corner, in unpadded input coordinates, is (oh*SH - PT, ow*SW - PL). Its entry
(ki, kj) is the input pixel

    h = oh*SH - PT + ki,      w = ow*SW - PL + kj,

or zero when (h, w) falls in the padding. im2col copies

    col[n, oh, ow, ki, kj, c] = x[n, h, w, c]        (0 where padded)

and col2im is its adjoint (transpose): every column entry is added back to the
input pixel it was copied from,

    gx[n, h, w, c] = sum over (oh, ki, ow, kj) with oh*SH - PT + ki = h
                     and ow*SW - PL + kj = w  of  col[n, oh, ow, ki, kj, c].

Loop order, chosen by measurement (``benchmarks/bench_kernels_conv.py``, 2 shared
cores, float32): col is by far the biggest array, so col2im reads it once, in
memory order, and adds each (KW, C) run into the input row it came from; that
row stays in cache for the KH*KW windows that touch it. A gather-style loop
(each gx pixel visits the windows that reach it, writing it once) reads col
out of order and measured 2-6x slower here (e.g. 64x28x28x16, 3x3 "same":
1.5 ms against 8-9 ms), and a row-at-a-time loop 1.4-2x slower.

Both kernels are serial (``nogil``): ``parallel=True`` with ``prange`` over the
batch measured slower on two shared cores (thread start-up dominates).
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit
def im2col_into(x, KH, KW, SH, SW, PT, PL, col):
    """Unfold patches of x (N, H, W, C) into the given col (N, OH, OW, KH, KW, C).

    ``col[n, oh, ow, ki, kj, c] = x[n, oh*SH - PT + ki, ow*SW - PL + kj, c]``,
    0 where that index falls in the padding. Every entry of col is written
    (padding included), so col may come uninitialised from a reused buffer.
    OH, OW are read from col's shape.
    """
    N, H, W, C = x.shape
    OH, OW = col.shape[1], col.shape[2]
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            for ow in range(OW):
                w0 = ow * SW - PL
                kj_lo, kj_hi = max(0, -w0), min(KW, W - w0)   # window columns inside the image
                for ki in range(KH):
                    h = h0 + ki
                    if h < 0 or h >= H:                       # padded row
                        for kj in range(KW):
                            for c in range(C):
                                col[n, oh, ow, ki, kj, c] = 0
                        continue
                    for kj in range(KW):
                        if kj < kj_lo or kj >= kj_hi:         # padded column
                            for c in range(C):
                                col[n, oh, ow, ki, kj, c] = 0
                        else:
                            for c in range(C):
                                col[n, oh, ow, ki, kj, c] = x[n, h, w0 + kj, c]


@njit
def im2col(x, KH, KW, SH, SW, PT, PB, PL, PR):
    """Unfold patches:  x (N, H, W, C) -> a new col (N, OH, OW, KH, KW, C) (see ``im2col_into``).

    OH, OW as in the module docstring; the caller checks that they are positive.
    """
    N, H, W, C = x.shape
    OH = (H + PT + PB - KH) // SH + 1
    OW = (W + PL + PR - KW) // SW + 1
    col = np.empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
    im2col_into(x, KH, KW, SH, SW, PT, PL, col)
    return col


@njit
def col2im_into(col, SH, SW, PT, PL, gx):
    """Fold patches back into the given gx (N, H, W, C), summing overlaps; gx is zeroed first.

    The adjoint of ``im2col``:  gx[n, oh*SH - PT + ki, ow*SW - PL + kj, c] += col[n, oh, ow, ki, kj, c]
    for every column entry whose target lies inside the image (padding cells
    are dropped). Only PT and PL are needed: bottom/right padding is whatever
    remains of H and W; it may even be negative, as in a transposed
    convolution whose last rows no window reaches (they stay 0).
    """
    N, OH, OW, KH, KW, C = col.shape
    H, W = gx.shape[1], gx.shape[2]
    for n in range(N):
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    gx[n, h, w, c] = 0
        for oh in range(OH):
            h0 = oh * SH - PT
            for ow in range(OW):
                w0 = ow * SW - PL
                kj_lo, kj_hi = max(0, -w0), min(KW, W - w0)   # window columns inside the image
                for ki in range(KH):
                    h = h0 + ki
                    if h < 0 or h >= H:
                        continue
                    for kj in range(kj_lo, kj_hi):
                        for c in range(C):
                            gx[n, h, w0 + kj, c] += col[n, oh, ow, ki, kj, c]


@njit
def col2im(col, H, W, SH, SW, PT, PL):
    """Fold patches back, summing overlaps:  col (N, OH, OW, KH, KW, C) -> a new gx (N, H, W, C)."""
    N, C = col.shape[0], col.shape[5]
    gx = np.empty((N, H, W, C), dtype=col.dtype)
    col2im_into(col, SH, SW, PT, PL, gx)
    return gx
