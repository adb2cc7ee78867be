"""Max pooling: the maximum of each window, and the gradient routed to where it came from.

Notation: x (N, H, W, C), window (KH, KW), strides (SH, SW), top/left padding
(PT, PL), output (N, OH, OW, C) (sizes from ``padding.py``). Padded cells are
-inf, so they never win:

    y[n, oh, ow, c]   = max_{i, j} xp[n, oh SH + i, ow SW + j, c]
    arg[n, oh, ow, c] = i KW + j of the FIRST maximum in row-major (i, then j) order
    gx                = col2im of gy placed at each window's arg-max cell, 0 elsewhere

so a pixel that is the maximum of several (overlapping) windows receives the sum
of their gradients, and tied maxima send everything to the first one.
"""
from __future__ import annotations

import numpy as np

from .conv import col2im, im2col


def max_pool2d_forward(x, KH, KW, SH, SW, PT, PL, OH, OW):
    """(y, arg):  x (N, H, W, C) -> y (N, OH, OW, C), arg (N, OH, OW, C) window-local i*KW + j.

    fast tier: numbanet.fast.kernels.pooling.max_pool_forward (same signature, same arg).
    """
    N, H, W, C = x.shape
    PB, PR = max((OH - 1) * SH + KH - H - PT, 0), max((OW - 1) * SW + KW - W - PL, 0)
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)), constant_values=-np.inf)
    cols = im2col(xp, KH, KW, SH, SW, 0, 0, 0, 0)[:, :OH, :OW]   # (N, OH, OW, KH, KW, C)
    cols = cols.reshape(N, OH, OW, KH * KW, C)                 # one axis over the window's cells
    arg = cols.argmax(axis=3)                                  # argmax returns the first maximum
    return cols.max(axis=3), arg


def max_pool2d_backward(gy, arg, KH, KW, SH, SW, PT, PL, H, W):
    """gx (N, H, W, C): each gy[n, oh, ow, c] goes to its window's arg-max cell.

    gy, arg (N, OH, OW, C) -> gx (N, H, W, C).
    fast tier: numbanet.fast.kernels.pooling.max_pool_backward (same signature).
    """
    N, OH, OW, C = gy.shape
    cells = np.arange(KH * KW).reshape(1, 1, 1, KH * KW, 1)
    routed = np.where(cells == arg[:, :, :, None, :], gy[:, :, :, None, :], 0)   # (N, OH, OW, KH*KW, C)
    routed = routed.astype(gy.dtype).reshape(N, OH, OW, KH, KW, C)
    return col2im(routed, H, W, SH, SW, PT, PL)


# ------------------------------------------------------------------ average pooling
# Average pooling over the same windows, with zero padding that does not count:
#
#     y[n, oh, ow, c] = sum_{i, j} xp[n, oh SH + i, ow SW + j, c] / count[oh, ow]
#     count[oh, ow]   = number of real (unpadded) cells in window (oh, ow)
#     gx              = col2im of gy[n, oh, ow, c] / count[oh, ow] spread over every cell of the window
#
# as TensorFlow's avg_pool does for "same" padding (a border window of 2 real cells
# out of 3 is the mean of those 2). Under "valid" every count is KH*KW.


def window_counts(H, W, KH, KW, SH, SW, PT, PB, PL, PR):
    """count (OH, OW, 1): the number of real cells in each window, i.e. the window sums of an
    all-ones image zero-padded by (PT, PB, PL, PR)."""
    ones = np.ones((1, H, W, 1))
    return im2col(ones, KH, KW, SH, SW, PT, PB, PL, PR).sum(axis=(3, 4))[0]   # (1, OH, OW, KH, KW, 1) -> (OH, OW, 1)


def avg_pool2d_forward(x, KH, KW, SH, SW, PT, PL, OH, OW):
    """y (N, OH, OW, C): the mean of the real cells of each window of x (N, H, W, C).

    fast tier: numbanet.fast.kernels.avg_pool.avg_pool_forward_into.
    """
    N, H, W, C = x.shape
    PB, PR = max((OH - 1) * SH + KH - H - PT, 0), max((OW - 1) * SW + KW - W - PL, 0)
    cols = im2col(x, KH, KW, SH, SW, PT, PB, PL, PR)[:, :OH, :OW]   # (N, OH, OW, KH, KW, C), padding 0
    count = window_counts(H, W, KH, KW, SH, SW, PT, PB, PL, PR)[:OH, :OW]
    return (cols.sum(axis=(3, 4)) / count).astype(x.dtype)


def avg_pool2d_backward(gy, KH, KW, SH, SW, PT, PL, H, W):
    """gx (N, H, W, C): gy[n, oh, ow, c] / count[oh, ow] added to every real cell of window (oh, ow).

    gy (N, OH, OW, C) -> gx (N, H, W, C).
    fast tier: numbanet.fast.kernels.avg_pool.avg_pool_backward_into.
    """
    N, OH, OW, C = gy.shape
    PB, PR = max((OH - 1) * SH + KH - H - PT, 0), max((OW - 1) * SW + KW - W - PL, 0)
    count = window_counts(H, W, KH, KW, SH, SW, PT, PB, PL, PR)[:OH, :OW]
    share = (gy / count)[:, :, :, None, None, :]                          # (N, OH, OW, 1, 1, C)
    cols = np.broadcast_to(share, (N, OH, OW, KH, KW, C)).astype(gy.dtype)  # the same share to every cell
    return col2im(cols, H, W, SH, SW, PT, PL)                            # padded cells are dropped
