"""The fast tier's max pooling and upsampling: the Numba kernels, run on the threads' parts of the batch.

The math is that of ``numbanet/reference/pooling.py`` and ``reference/upsample.py``;
the index arithmetic lives with the kernels (``kernels/pooling.py``,
``kernels/upsample.py``). Each protocol function records its route
(``routes.last("max_pool2d_forward")``): "split" where the batch is cut into one
part per thread, "serial" where one thread runs it whole (one thread, or one image),
"whole" for bilinear upsampling, whose kernels take the batch in one call on any
number of threads.
"""
from __future__ import annotations

import numpy as np

from . import parallel
from .workspace import empty
from .kernels.pooling import arg_dtype, max_pool_backward_into, max_pool_forward_into
from .kernels.upsample import (upsample_bilinear_backward, upsample_bilinear_forward, upsample_nearest_backward_into,
                               upsample_nearest_forward_into)
from .routes import record


def _by_images(kernel, N):
    """Run kernel(n0, n1) over the batch, split across the threads (``parallel``); -> the route taken."""
    ranges = parallel.split(N)
    parallel.run(lambda n0, n1, _: kernel(n0, n1), ranges)
    return "split" if len(ranges) > 1 else "serial"


def max_pool2d_forward(x, pool, strides, pads, out_hw):
    """(y, arg): x (N, H, W, C) -> y (N, OH, OW, C), arg the window-local i*KW + j of the first maximum.

    arg is uint8 for windows up to 256 cells (``arg_dtype``). Mirrors
    ``reference/tier.py: max_pool2d_forward``.
    """
    (KH, KW), (SH, SW), (OH, OW) = pool, strides, out_hw
    PT, PL = pads[0], pads[2]
    x = np.ascontiguousarray(x)
    N, _, _, C = x.shape
    y = empty("pool.y", (N, OH, OW, C), x.dtype)              # pooled: see workspace.py
    arg = empty("pool.arg", (N, OH, OW, C), arg_dtype(KH, KW))
    record("max_pool2d_forward",
           _by_images(lambda a, b: max_pool_forward_into(x[a:b], KH, KW, SH, SW, PT, PL, y[a:b], arg[a:b]), N))
    return y, arg


def max_pool2d_backward(gy, arg, pool, strides, pads, in_hw):
    """gx (N, H, W, C): each gy[n, oh, ow, c] added to its window's arg-max cell.

    Mirrors ``reference/tier.py: max_pool2d_backward``.
    """
    (KH, KW), (SH, SW), (H, W) = pool, strides, in_hw
    PT, PL = pads[0], pads[2]
    gy = np.ascontiguousarray(gy)
    N, C = gy.shape[0], gy.shape[3]
    gx = empty("pool.gx", (N, H, W, C), gy.dtype)
    record("max_pool2d_backward",
           _by_images(lambda a, b: max_pool_backward_into(gy[a:b], arg[a:b], KH, KW, SH, SW, PT, PL, gx[a:b]), N))
    return gx


def upsample2d_forward(x, size, interpolation):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C), "nearest" or "bilinear"; mirrors ``reference/tier.py``."""
    SH, SW = size
    x = np.ascontiguousarray(x)
    if interpolation == "bilinear":
        record("upsample2d_forward", "whole")
        return upsample_bilinear_forward(x, SH, SW)
    N, H, W, C = x.shape
    y = empty("upsample.y", (N, H * SH, W * SW, C), x.dtype)
    record("upsample2d_forward", _by_images(lambda a, b: upsample_nearest_forward_into(x[a:b], SH, SW, y[a:b]), N))
    return y


def upsample2d_backward(gy, size, interpolation):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C), the transposed map; mirrors ``reference/tier.py``."""
    SH, SW = size
    gy = np.ascontiguousarray(gy)
    if interpolation == "bilinear":
        record("upsample2d_backward", "whole")
        return upsample_bilinear_backward(gy, SH, SW)
    N, OH, OW, C = gy.shape
    gx = empty("upsample.gx", (N, OH // SH, OW // SW, C), gy.dtype)
    record("upsample2d_backward",
           _by_images(lambda a, b: upsample_nearest_backward_into(gy[a:b], SH, SW, gx[a:b]), N))
    return gx


# ------------------------------------------------ average pooling
from .kernels.avg_pool import avg_pool_backward_into, avg_pool_forward_into  # noqa: E402


def avg_pool2d_forward(x, pool, strides, pads, out_hw):
    """y (N, OH, OW, C): the mean of each window's real cells, x (N, H, W, C).

    Mirrors ``reference/tier.py: avg_pool2d_forward``; the Numba kernel
    ``kernels/avg_pool.py`` runs on the threads' parts of the batch.
    """
    (KH, KW), (SH, SW), (OH, OW) = pool, strides, out_hw
    PT, PL = pads[0], pads[2]
    x = np.ascontiguousarray(x)
    N, _, _, C = x.shape
    y = empty("avg_pool.y", (N, OH, OW, C), x.dtype)         # pooled: see workspace.py
    record("avg_pool2d_forward",
           _by_images(lambda a, b: avg_pool_forward_into(x[a:b], KH, KW, SH, SW, PT, PL, y[a:b]), N))
    return y


def avg_pool2d_backward(gy, pool, strides, pads, in_hw):
    """gx (N, H, W, C): each gy / count added to its window's real cells.

    Mirrors ``reference/tier.py: avg_pool2d_backward``.
    """
    (KH, KW), (SH, SW), (H, W) = pool, strides, in_hw
    PT, PL = pads[0], pads[2]
    gy = np.ascontiguousarray(gy)
    N, C = gy.shape[0], gy.shape[3]
    gx = empty("avg_pool.gx", (N, H, W, C), gy.dtype)
    record("avg_pool2d_backward",
           _by_images(lambda a, b: avg_pool_backward_into(gy[a:b], KH, KW, SH, SW, PT, PL, gx[a:b]), N))
    return gx
