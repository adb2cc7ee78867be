"""Average pooling, forward and backward, with padded cells left out of the count.

Notation (NHWC): x (N, H, W, C); window KH x KW; strides SH, SW; padding PT
(top) and PL (left), the bottom/right padding implied by the output size OH, OW
that the caller computes ("valid" or "same" rules).

Output pixel (oh, ow) covers the input rows h0 <= h < h0 + KH, h0 = oh*SH - PT,
and columns w0 <= w < w0 + KW, w0 = ow*SW - PL; only the real ones (inside the
image) take part, and their number is the divisor, as in TensorFlow's avg_pool:

    count[oh, ow]   = (min(H, h0 + KH) - max(0, h0)) * (min(W, w0 + KW) - max(0, w0))
    y[n, oh, ow, c] = sum of x[n, h, w, c] over the real cells / count[oh, ow]
    gx[n, h, w, c]  = sum of gy[n, oh, ow, c] / count[oh, ow] over the windows holding (h, w)

The plain NumPy version is ``numbanet/reference/pooling.py`` (im2col, a sum, a
division). Images are viewed as 2-D (rows, W*C) arrays, channels innermost, as
in ``pooling.py``.
"""
from __future__ import annotations


from .config import U, njit


@njit
def avg_pool_forward_into(x, KH, KW, SH, SW, PT, PL, y):
    """x (N, H, W, C) -> y (N, OH, OW, C), written in place: the mean of each window's real cells."""
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    x2 = x.reshape(N * H, W * C)
    y2 = y.reshape(N * OH, OW * C)
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            h_lo, h_hi = max(0, h0), min(H, h0 + KH)
            yr = y2[U(n * OH + oh)]
            for ow in range(OW):
                w0 = ow * SW - PL
                w_lo, w_hi = max(0, w0), min(W, w0 + KW)
                ys = U(ow * C)
                for c in range(U(C)):
                    yr[ys + c] = 0
                for h in range(h_lo, h_hi):
                    xr = x2[U(n * H + h)]
                    for w in range(w_lo, w_hi):
                        xs = U(w * C)
                        for c in range(U(C)):
                            yr[ys + c] += xr[xs + c]
                inv = 1.0 / ((h_hi - h_lo) * (w_hi - w_lo))
                for c in range(U(C)):
                    yr[ys + c] *= inv


@njit
def avg_pool_backward_into(gy, KH, KW, SH, SW, PT, PL, gx):
    """gy (N, OH, OW, C) -> gx (N, H, W, C), every cell written: each gy / count added to its window's real cells."""
    N, OH, OW, C = gy.shape
    H, W = gx.shape[1], gx.shape[2]
    g2 = gy.reshape(N * OH, OW * C)
    x2 = gx.reshape(N * H, W * C)
    gx[:] = 0
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            h_lo, h_hi = max(0, h0), min(H, h0 + KH)
            gr = g2[U(n * OH + oh)]
            for ow in range(OW):
                w0 = ow * SW - PL
                w_lo, w_hi = max(0, w0), min(W, w0 + KW)
                gs = U(ow * C)
                inv = 1.0 / ((h_hi - h_lo) * (w_hi - w_lo))
                for h in range(h_lo, h_hi):
                    xr = x2[U(n * H + h)]
                    for w in range(w_lo, w_hi):
                        xs = U(w * C)
                        for c in range(U(C)):
                            xr[xs + c] += gr[gs + c] * inv
