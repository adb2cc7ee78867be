"""Max pooling, forward (keeping the arg-max) and backward.

Notation (NHWC): x (N, H, W, C); window KH x KW; strides SH, SW; padding PT
(top) and PL (left) with the bottom/right padding implied by the output size
OH, OW, which the caller computes ("valid" or "same" rules).

Output pixel (oh, ow) covers input rows h = oh*SH - PT + ki (0 <= ki < KH) and
columns w = ow*SW - PL + kj (0 <= kj < KW). Padded cells never take part: they
act as -inf, so a window that overlaps the border takes the maximum of its
real cells only (every window holds at least one real cell under the
"valid"/"same" rules).

    y[n, oh, ow, c]      = max over the window of x[n, h, w, c]
    arg[n, oh, ow, c]    = h*W + w of the *first* maximum in row-major order
                           (ki, then kj); later equal values do not replace it
    gx[n, h, w, c]       = sum of gy[n, oh, ow, c] over the outputs whose
                           arg-max is (h, w)   (windows may overlap if S < K)
"""
from __future__ import annotations

import numpy as np

from .config import njit


@njit
def max_pool_forward_into(x, KH, KW, SH, SW, PT, PL, y, arg):
    """x (N, H, W, C) -> y (N, OH, OW, C) and arg (N, OH, OW, C) int64 flat h*W + w, written in place."""
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for n in range(N):
        for oh in range(OH):
            h_lo = max(oh * SH - PT, 0)
            h_hi = min(oh * SH - PT + KH, H)
            for ow in range(OW):
                w_lo = max(ow * SW - PL, 0)
                w_hi = min(ow * SW - PL + KW, W)
                for c in range(C):                 # start from the window's first real cell
                    y[n, oh, ow, c] = x[n, h_lo, w_lo, c]
                    arg[n, oh, ow, c] = h_lo * W + w_lo
                for h in range(h_lo, h_hi):        # row-major scan, channels innermost
                    for w in range(w_lo, w_hi):
                        for c in range(C):
                            v = x[n, h, w, c]
                            if v > y[n, oh, ow, c]:  # strict: the first maximum wins
                                y[n, oh, ow, c] = v
                                arg[n, oh, ow, c] = h * W + w


@njit
def max_pool_forward(x, KH, KW, SH, SW, PT, PL, OH, OW):
    """x (N, H, W, C) -> new (y (N, OH, OW, C), arg (N, OH, OW, C) int64 flat h*W + w)."""
    N, C = x.shape[0], x.shape[3]
    y = np.empty((N, OH, OW, C), dtype=x.dtype)
    arg = np.empty((N, OH, OW, C), dtype=np.int64)
    max_pool_forward_into(x, KH, KW, SH, SW, PT, PL, y, arg)
    return y, arg


@njit
def max_pool_backward_into(gy, arg, gx):
    """gy (N, OH, OW, C), arg (N, OH, OW, C) -> gx (N, H, W, C) (zeroed here): route each gy to its arg-max."""
    N, OH, OW, C = gy.shape
    W = gx.shape[2]
    gx[:] = 0
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    k = arg[n, oh, ow, c]
                    gx[n, k // W, k % W, c] += gy[n, oh, ow, c]


@njit
def max_pool_backward(gy, arg, H, W):
    """gy (N, OH, OW, C), arg (N, OH, OW, C) -> a new gx (N, H, W, C)."""
    gx = np.empty((gy.shape[0], H, W, gy.shape[3]), dtype=gy.dtype)
    max_pool_backward_into(gy, arg, gx)
    return gx
