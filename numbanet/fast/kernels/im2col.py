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

Indexing: the arrays are viewed as 2-D (image rows (W*C), patch rows
(KH*KW*C)) and indexed with unsigned integers (``uintp``), so that Numba emits
no negative-index fix-up and each window row is one vectorised copy; this
measured 1.1-1.4x faster for im2col and 1.3-2.4x for col2im than 6-D signed
indexing (``direct_conv.py`` explains the cause).
"""
from __future__ import annotations

import numpy as np

from .config import U, njit


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
    x2 = x.reshape(N * H, W * C)                     # image rows, (w, c) contiguous
    c2 = col.reshape(N * OH * OW, KH * KW * C)       # one patch per row, (ki, kj, c) contiguous
    KC = KW * C
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            for ow in range(OW):
                w0 = ow * SW - PL
                kj_lo = min(KW, max(0, -w0))             # window columns inside the image:
                kj_hi = max(kj_lo, min(KW, W - w0))       # an empty range past the edge, never negative
                cr = c2[U((n * OH + oh) * OW + ow)]
                lo, hi = U(kj_lo * C), U(kj_hi * C)            # the real cells of a window row
                xs = U(max(0, w0 + kj_lo) * C)             # (unused when the window misses the image)
                for ki in range(KH):
                    h = h0 + ki
                    base = U(ki * KC)
                    if h < 0 or h >= H:                       # padded row
                        for t in range(U(KC)):
                            cr[base + t] = 0
                        continue
                    xr = x2[U(n * H + h)]
                    for t in range(lo):                       # padded columns, left
                        cr[base + t] = 0
                    for t in range(hi - lo):                  # one contiguous copy
                        cr[base + lo + t] = xr[xs + t]
                    for t in range(hi, U(KC)):                # padded columns, right
                        cr[base + t] = 0


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
    g2 = gx.reshape(N * H, W * C)
    c2 = col.reshape(N * OH * OW, KH * KW * C)
    KC = KW * C
    for n in range(N):
        for h in range(H):
            gr = g2[U(n * H + h)]
            for t in range(U(W * C)):
                gr[t] = 0
        for oh in range(OH):
            h0 = oh * SH - PT
            for ow in range(OW):
                w0 = ow * SW - PL
                kj_lo = min(KW, max(0, -w0))             # window columns inside the image:
                kj_hi = max(kj_lo, min(KW, W - w0))       # an empty range past the edge, never negative
                cr = c2[U((n * OH + oh) * OW + ow)]
                lo, L = U(kj_lo * C), U((kj_hi - kj_lo) * C)
                xs = U(max(0, w0 + kj_lo) * C)             # (unused when the window misses the image)
                for ki in range(KH):
                    h = h0 + ki
                    if h < 0 or h >= H:
                        continue
                    gr = g2[U(n * H + h)]
                    base = U(ki * KC) + lo
                    for t in range(L):                        # one contiguous run of (kj, c)
                        gr[xs + t] += cr[base + t]


@njit
def col2im(col, H, W, SH, SW, PT, PL):
    """Fold patches back, summing overlaps:  col (N, OH, OW, KH, KW, C) -> a new gx (N, H, W, C)."""
    N, C = col.shape[0], col.shape[5]
    gx = np.empty((N, H, W, C), dtype=col.dtype)
    col2im_into(col, SH, SW, PT, PL, gx)
    return gx
