"""Max pooling and upsampling as differentiable functions on NHWC Tensors.

Max pooling, window (KH, KW), strides (SH, SW), x (N, H, W, C) -> y (N, OH, OW, C)::

    y[n, oh, ow, c] = max_{ki, kj} x[n, oh*SH - PT + ki, ow*SW - PL + kj, c]   (padding = -inf)
    gx[n, h, w, c]  = sum of gy[n, oh, ow, c] over the windows whose first maximum is (h, w)

Upsampling by integer factors (SH, SW), x (N, H, W, C) -> y (N, H*SH, W*SW, C)::

    nearest:   y[n, i, j] = x[n, i // SH, j // SW]      gx = block sums of gy
    bilinear:  y = four-tap half-pixel interpolation   gx = the same taps, transposed

The reference tier computes these as written here (``numbanet/reference/pooling.py``,
``reference/upsample.py``); the fast tier runs Numba kernels on the threads' parts
of the batch (``numbanet/fast/pooling.py``). Each Function below calls the active
tier once forward and once backward (``tiers.current``).
"""
from __future__ import annotations

from . import tiers
from .conv_shapes import check_padding, conv_output_size, conv_pads, pair
from .tensor import Function


class MaxPool2D(Function):
    """y = max over each window; gx routes gy to the window's first arg-max.

    Shapes: x (N, H, W, C) -> y (N, OH, OW, C). The forward also returns arg
    (N, OH, OW, C), the window-local index i*KW + j of each window's first
    maximum, kept for the backward: gx[n, h, w, c] = sum of gy[n, oh, ow, c] over
    the windows whose arg names (h, w).
    """

    def __init__(self, pool, strides, pads, out_hw):
        self.pool = pool                          # (KH, KW)
        self.strides = strides                    # (SH, SW)
        self.pads = pads                          # (PT, PB, PL, PR)
        self.out_hw = out_hw                      # (OH, OW)

    def forward(self, x):
        self.in_hw = x.shape[1:3]
        y, self.arg = tiers.current.max_pool2d_forward(x, self.pool, self.strides, self.pads, self.out_hw)
        return y

    def backward(self, gy):
        return tiers.current.max_pool2d_backward(gy, self.arg, self.pool, self.strides, self.pads, self.in_hw)


class Upsample2D(Function):
    """y = upsample(x) by (SH, SW), "nearest" or "bilinear"; gx = the transposed map of gy.

    Shapes: x (N, H, W, C) -> y (N, H*SH, W*SW, C); gy of y's shape -> gx of x's.
    """

    INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size, interpolation):
        self.size = size                          # (SH, SW)
        self.interpolation = interpolation

    def forward(self, x):
        return tiers.current.upsample2d_forward(x, self.size, self.interpolation)

    def backward(self, gy):
        return tiers.current.upsample2d_backward(gy, self.size, self.interpolation)


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


class AvgPool2D(Function):
    """y = the mean of each window's real cells; gx shares gy equally among them.

    Shapes: x (N, H, W, C) -> y (N, OH, OW, C). With count[oh, ow] the number of
    real (unpadded) cells of window (oh, ow), KH*KW except at a "same" border::

        y[n, oh, ow, c] = sum_{ki, kj} x[n, oh*SH - PT + ki, ow*SW - PL + kj, c] / count[oh, ow]
        gx[n, h, w, c]  = sum of gy[n, oh, ow, c] / count[oh, ow] over the windows holding (h, w)

    (padded cells neither add to the sum nor to the count, as in TensorFlow).
    """

    def __init__(self, pool, strides, pads, out_hw):
        self.pool = pool                          # (KH, KW)
        self.strides = strides                    # (SH, SW)
        self.pads = pads                          # (PT, PB, PL, PR)
        self.out_hw = out_hw                      # (OH, OW)

    def forward(self, x):
        self.in_hw = x.shape[1:3]
        return tiers.current.avg_pool2d_forward(x, self.pool, self.strides, self.pads, self.out_hw)

    def backward(self, gy):
        return tiers.current.avg_pool2d_backward(gy, self.pool, self.strides, self.pads, self.in_hw)


def pool_geometry(x, pool_size, strides, padding, owner):
    """((KH, KW), (SH, SW), pads (PT, PB, PL, PR), (OH, OW)) of a pooling of NHWC ``x``, or the ValueError.

    ``strides`` None means ``pool_size``; "valid" needs the window inside the image.
    """
    KH, KW = pair(pool_size, "pool_size", owner)
    SH, SW = (KH, KW) if strides is None else pair(strides, "strides", owner)
    padding = check_padding(padding, owner)
    _check_4d(x, owner)
    _, H, W, _ = x.shape
    if H < 1 or W < 1:
        raise ValueError(f"{owner}: empty image, input shape {tuple(x.shape)}")
    if padding == "valid" and (H < KH or W < KW):
        raise ValueError(f"{owner}: pool_size {(KH, KW)} is larger than the input "
                         f"{(H, W)} with padding 'valid' (input shape {tuple(x.shape)})")
    out_hw = conv_output_size(H, KH, SH, padding), conv_output_size(W, KW, SW, padding)
    return (KH, KW), (SH, SW), conv_pads(H, W, KH, KW, SH, SW, padding), out_hw


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid"):
    """Average pooling of NHWC ``x``; ``strides`` default to ``pool_size``; padded cells are not counted.

    Output size per axis: "valid" floor((H - K)/S) + 1, "same" ceil(H/S).
    """
    pool, strides, pads, out_hw = pool_geometry(x, pool_size, strides, padding, "avg_pool2d")
    return AvgPool2D(pool, strides, pads, out_hw)(x)
