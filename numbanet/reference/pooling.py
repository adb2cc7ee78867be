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
