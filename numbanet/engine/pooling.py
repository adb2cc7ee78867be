"""Max pooling and upsampling as differentiable functions on NHWC Tensors.

Max pooling, window (KH, KW), strides (SH, SW), x (N, H, W, C) -> y (N, OH, OW, C)::

    y[n, oh, ow, c] = max_{ki, kj} x[n, oh*SH - PT + ki, ow*SW - PL + kj, c]   (padding = -inf)
    gx[n, h, w, c]  = sum of gy[n, oh, ow, c] over the windows whose first maximum is (h, w)

Upsampling by integer factors (SH, SW), x (N, H, W, C) -> y (N, H*SH, W*SW, C)::

    nearest:   y[n, i, j] = x[n, i // SH, j // SW]      gx = block sums of gy
    bilinear:  y = four-tap half-pixel interpolation   gx = the same taps, transposed

The index arithmetic lives with the kernels (``kernels/pooling.py``,
``kernels/upsample.py``).
"""
from __future__ import annotations

import numpy as np

from .conv_shapes import check_padding, conv_output_size, conv_pads, pair
from ..fast import parallel
from ..fast.kernels.pooling import arg_dtype, max_pool_backward_into, max_pool_forward_into
from ..fast.kernels.upsample import (upsample_bilinear_backward, upsample_bilinear_forward,
                               upsample_nearest_backward_into, upsample_nearest_forward_into)
from .tensor import Function


def _by_images(kernel, N):
    """Run kernel(n0, n1) over the batch, split across the threads (``parallel``)."""
    parallel.run(lambda n0, n1, _: kernel(n0, n1), parallel.split(N))


class MaxPool2D(Function):
    """y = max over each window; gx routes gy to the window's first arg-max.

    Shapes: x (N, H, W, C) -> y (N, OH, OW, C); the window-local arg-max (N, OH, OW, C), uint8 for
    windows up to 256 cells, is kept for backward.
    """

    def __init__(self, pool, strides, pads, out_hw):
        self.KH, self.KW = pool
        self.SH, self.SW = strides
        self.PT, self.PL = pads[0], pads[2]
        self.OH, self.OW = out_hw

    def forward(self, x):
        x = np.ascontiguousarray(x)
        N, self.H, self.W, C = x.shape
        y = np.empty((N, self.OH, self.OW, C), dtype=x.dtype)
        self.arg = arg = np.empty((N, self.OH, self.OW, C), dtype=arg_dtype(self.KH, self.KW))
        _by_images(lambda a, b: max_pool_forward_into(x[a:b], self.KH, self.KW, self.SH, self.SW,
                                                      self.PT, self.PL, y[a:b], arg[a:b]), N)
        return y

    def backward(self, gy):
        gy = np.ascontiguousarray(gy)
        N, C = gy.shape[0], gy.shape[3]
        gx = np.empty((N, self.H, self.W, C), dtype=gy.dtype)
        _by_images(lambda a, b: max_pool_backward_into(gy[a:b], self.arg[a:b], self.KH, self.KW, self.SH, self.SW,
                                                       self.PT, self.PL, gx[a:b]), N)
        return gx


class Upsample2D(Function):
    """y = upsample(x) by (SH, SW), "nearest" or "bilinear"; gx = the transposed map of gy."""

    INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size, interpolation):
        self.SH, self.SW = size
        self.nearest = interpolation == "nearest"

    def forward(self, x):
        x = np.ascontiguousarray(x)
        if not self.nearest:
            return upsample_bilinear_forward(x, self.SH, self.SW)
        N, H, W, C = x.shape
        y = np.empty((N, H * self.SH, W * self.SW, C), dtype=x.dtype)
        _by_images(lambda a, b: upsample_nearest_forward_into(x[a:b], self.SH, self.SW, y[a:b]), N)
        return y

    def backward(self, gy):
        gy = np.ascontiguousarray(gy)
        if not self.nearest:
            return upsample_bilinear_backward(gy, self.SH, self.SW)
        N, OH, OW, C = gy.shape
        gx = np.empty((N, OH // self.SH, OW // self.SW, C), dtype=gy.dtype)
        _by_images(lambda a, b: upsample_nearest_backward_into(gy[a:b], self.SH, self.SW, gx[a:b]), N)
        return gx


def _check_4d(x, owner):
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D NHWC input (batch, height, width, channels), "
                         f"got shape {tuple(x.shape)}")


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid"):
    """Max pooling of NHWC ``x``; ``strides`` default to ``pool_size``; padded cells never win.

    Output size per axis: "valid" floor((H - K)/S) + 1, "same" ceil(H/S).
    """
    KH, KW = pair(pool_size, "pool_size", "max_pool2d")
    SH, SW = (KH, KW) if strides is None else pair(strides, "strides", "max_pool2d")
    padding = check_padding(padding, "max_pool2d")
    _check_4d(x, "max_pool2d")
    _, H, W, _ = x.shape
    if padding == "valid" and (H < KH or W < KW):
        raise ValueError(f"max_pool2d: pool_size {(KH, KW)} is larger than the input "
                         f"{(H, W)} with padding 'valid' (input shape {tuple(x.shape)})")
    if H < 1 or W < 1:
        raise ValueError(f"max_pool2d: empty image, input shape {tuple(x.shape)}")
    out_hw = conv_output_size(H, KH, SH, padding), conv_output_size(W, KW, SW, padding)
    pads = conv_pads(H, W, KH, KW, SH, SW, padding)
    return MaxPool2D((KH, KW), (SH, SW), pads, out_hw)(x)


def upsample2d(x, size=(2, 2), interpolation="nearest"):
    """Upsample NHWC ``x`` by integer factors ``size``: "nearest" or "bilinear" (half-pixel)."""
    SH, SW = pair(size, "size", "upsample2d")
    if interpolation not in Upsample2D.INTERPOLATIONS:
        raise ValueError(f"upsample2d: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    _check_4d(x, "upsample2d")
    return Upsample2D((SH, SW), interpolation)(x)
