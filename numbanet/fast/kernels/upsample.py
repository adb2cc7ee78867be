"""Nearest and bilinear upsampling by integer factors, forward and backward.

Notation (NHWC): x (N, H, W, C), factors SH, SW, y (N, OH, OW, C) with
OH = H*SH, OW = W*SW.

Nearest (repeat rows, then columns):
    y[n, i, j, c]  = x[n, i // SH, j // SW, c]
    gx[n, h, w, c] = sum of gy over the SH x SW block  i in [h*SH, h*SH+SH),
                                                       j in [w*SW, w*SW+SW)

Bilinear with half-pixel centres (TensorFlow's resize, no antialiasing). The
output row i samples the source coordinate

    s = (i + 0.5) / SH - 0.5, clamped to [0, H - 1],
    h0 = floor(s),  h1 = min(h0 + 1, H - 1),  a = s - h0,

and likewise (w0, w1, b) for column j. Then

    y[n, i, j, c] = (1-a)(1-b) x[h0, w0] + (1-a) b x[h0, w1] + a (1-b) x[h1, w0] + a b x[h1, w1]

and backward adds each gy[n, i, j, c] into those four input pixels with the
same four weights (the adjoint of a linear map is its transpose).
"""
from __future__ import annotations

import numpy as np

from .config import U, njit


@njit
def upsample_nearest_forward_into(x, SH, SW, y):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C) in place,  y[n, i, j] = x[n, i // SH, j // SW].

    Per input row r = n*H + h: its first output row (r*SH) is written pixel by pixel,
    each pixel's C numbers SW times; the other SH - 1 output rows are copies of it,
    one contiguous loop of OW*C numbers each. Rows as flat (N*H, W*C) and
    (N*OH, OW*C) views, unsigned indices: no division and no index wraparound in the loops.
    """
    N, H, W, C = x.shape
    OWC = W * SW * C
    x2 = x.reshape(N * H, W * C)
    y2 = y.reshape(N * H * SH, OWC)
    for r in range(N * H):
        xr = x2[U(r)]
        y0 = y2[U(r * SH)]
        for w in range(U(W)):
            for s in range(U(SW)):
                o = (w * U(SW) + s) * U(C)
                for c in range(U(C)):
                    y0[o + c] = xr[w * U(C) + c]
        for k in range(1, SH):
            yk = y2[U(r * SH + k)]
            for t in range(U(OWC)):
                yk[t] = y0[t]


@njit
def upsample_nearest_forward(x, SH, SW):
    """x (N, H, W, C) -> a new y (N, H*SH, W*SW, C) (see ``upsample_nearest_forward_into``)."""
    N, H, W, C = x.shape
    y = np.empty((N, H * SH, W * SW, C), dtype=x.dtype)
    upsample_nearest_forward_into(x, SH, SW, y)
    return y


@njit
def upsample_nearest_backward_into(gy, SH, SW, gx):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C) in place: each gx pixel sums its SH x SW block.

    Per input row r = n*H + h: the SH output rows of gy are summed into one row of
    OW*C numbers (contiguous, vectorised loops), then each pixel of gx adds its SW
    columns of that row: gx = sum over the block's columns of (sum over its rows).
    """
    N, H, W, C = gx.shape
    OWC = W * SW * C
    g2 = gy.reshape(N * H * SH, OWC)
    x2 = gx.reshape(N * H, W * C)
    acc = np.empty(OWC, dtype=gx.dtype)
    for r in range(N * H):
        g0 = g2[U(r * SH)]
        for t in range(U(OWC)):
            acc[t] = g0[t]
        for k in range(1, SH):
            gk = g2[U(r * SH + k)]
            for t in range(U(OWC)):
                acc[t] += gk[t]
        xr = x2[U(r)]
        for w in range(U(W)):
            o = w * U(SW) * U(C)
            for c in range(U(C)):
                xr[w * U(C) + c] = acc[o + c]
            for s in range(U(1), U(SW)):
                for c in range(U(C)):
                    xr[w * U(C) + c] += acc[o + s * U(C) + c]


@njit
def upsample_nearest_backward(gy, SH, SW):
    """gy (N, H*SH, W*SW, C) -> a new gx (N, H, W, C)."""
    N, OH, OW, C = gy.shape
    gx = np.empty((N, OH // SH, OW // SW, C), dtype=gy.dtype)
    upsample_nearest_backward_into(gy, SH, SW, gx)
    return gx


@njit
def bilinear_taps(in_size, out_size, scale):
    """Source taps for one axis: (lo (out,), hi (out,), frac (out,)) as in the module docstring."""
    lo = np.empty(out_size, dtype=np.int64)
    hi = np.empty(out_size, dtype=np.int64)
    frac = np.empty(out_size, dtype=np.float64)
    for i in range(out_size):
        s = (i + 0.5) / scale - 0.5
        s = min(max(s, 0.0), in_size - 1.0)
        lo[i] = int(np.floor(s))
        hi[i] = min(lo[i] + 1, in_size - 1)
        frac[i] = s - lo[i]
    return lo, hi, frac


@njit
def upsample_bilinear_forward(x, SH, SW):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C) by half-pixel bilinear interpolation."""
    N, H, W, C = x.shape
    OH, OW = H * SH, W * SW
    h0, h1, a = bilinear_taps(H, OH, SH)
    w0, w1, b = bilinear_taps(W, OW, SW)
    y = np.empty((N, OH, OW, C), dtype=x.dtype)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                w00 = (1.0 - a[i]) * (1.0 - b[j])
                w01 = (1.0 - a[i]) * b[j]
                w10 = a[i] * (1.0 - b[j])
                w11 = a[i] * b[j]
                for c in range(C):
                    y[n, i, j, c] = (w00 * x[n, h0[i], w0[j], c] + w01 * x[n, h0[i], w1[j], c]
                                     + w10 * x[n, h1[i], w0[j], c] + w11 * x[n, h1[i], w1[j], c])
    return y


@njit
def upsample_bilinear_backward(gy, SH, SW):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C): each gy feeds back its four taps."""
    N, OH, OW, C = gy.shape
    H, W = OH // SH, OW // SW
    h0, h1, a = bilinear_taps(H, OH, SH)
    w0, w1, b = bilinear_taps(W, OW, SW)
    gx = np.zeros((N, H, W, C), dtype=gy.dtype)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                w00 = (1.0 - a[i]) * (1.0 - b[j])
                w01 = (1.0 - a[i]) * b[j]
                w10 = a[i] * (1.0 - b[j])
                w11 = a[i] * b[j]
                for c in range(C):
                    g = gy[n, i, j, c]
                    gx[n, h0[i], w0[j], c] += w00 * g
                    gx[n, h0[i], w1[j], c] += w01 * g
                    gx[n, h1[i], w0[j], c] += w10 * g
                    gx[n, h1[i], w1[j], c] += w11 * g
    return gx
