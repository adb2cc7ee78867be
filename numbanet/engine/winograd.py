"""conv2d_winograd: a 3x3 stride-1 convolution computed by Winograd's minimal filtering, for learners.

The same result as ``conv2d(x, W, padding=...)`` (within rounding), computed as

    U = G W G^T,  V = B^T d B (every input tile d),  M = V @ U (alpha^2 products over the channels),
    y = A^T M A (every output tile)

with F(2x2, 3x3) (``tile=2``: 16 products per 2x2 outputs, against 36) or
F(4x4, 3x3) (``tile=4``: 36 products per 4x4 outputs, against 144). The matrices
and their derivation are in ``numbanet/reference/winograd.py``. Backward:
gx is the Winograd convolution of gy with the flipped kernel, gW the transpose
of the forward pass (``winograd_weight_grad``). ``conv2d`` itself already takes
this route in the fast tier where it pays (``nb.fast.routes.last("conv2d_forward")
in ("winograd4", "winograd")``); this function runs it whatever the layer's size.

Shapes: x (N, H, W, C), W (3, 3, C, F), b (F,) -> y (N, OH, OW, F).
"""
from __future__ import annotations

from . import tiers
from .conv import _check_bias, _check_image, _wants_grad
from .conv_shapes import check_padding, conv_pads
from .tensor import Function


class Conv2DWinograd(Function):
    """y = conv(x, W) by Winograd F(m x m, 3 x 3); gx, gW from ``tiers.current.conv2d_winograd_backward``."""

    def __init__(self, pads, tile):
        self.pads = pads                          # (PT, PB, PL, PR)
        self.tile = tile                          # m: 2 or 4

    def forward(self, x, W):
        self.x, self.W = x, W
        return tiers.current.conv2d_winograd_forward(x, W, self.pads, self.tile)

    def backward(self, gy):
        return tiers.current.conv2d_winograd_backward(gy, self.x, self.W, self.pads, self.tile,
                                                       _wants_grad(self, 0), _wants_grad(self, 1))


def conv2d_winograd(x, W, b=None, padding="valid", tile=2):
    """y = conv(x, W) + b by Winograd F(tile x tile, 3 x 3): x (N, H, W, C), W (3, 3, C, F) -> (N, OH, OW, F).

    ``padding`` "valid", "same" or explicit (PT, PB, PL, PR) with each pad at most 2;
    stride 1; ``tile`` 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3), more float32 rounding).
    """
    if isinstance(padding, str):
        padding = check_padding(padding, "conv2d_winograd")
    _check_image(x, W, "conv2d_winograd", 2)
    _check_bias(b, W.shape[3], "conv2d_winograd")
    if tuple(W.shape[:2]) != (3, 3):
        raise ValueError(f"conv2d_winograd: Winograd's transforms here are for 3x3 kernels, got kernel shape "
                         f"{tuple(W.shape)}; use conv2d for other kernel sizes")
    if tile not in (2, 4):
        raise ValueError(f"conv2d_winograd: tile must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)), got {tile!r}")
    _, H, Wd, _ = x.shape
    pads = conv_pads(H, Wd, 3, 3, 1, 1, padding)
    if max(pads) > 2 or H + pads[0] + pads[1] < 3 or Wd + pads[2] + pads[3] < 3:
        raise ValueError(f"conv2d_winograd: pads {pads} with input shape {tuple(x.shape)} must be at most 2 "
                         f"each and leave an output of at least 1x1")
    y = Conv2DWinograd(pads, tile)(x, W)
    return y if b is None else y + b
