"""conv2d_relu_maxpool: Conv2D(activation="relu") followed by MaxPooling2D, as one node.

    p = max_pool(relu(conv(x, W) + b))       x (N, H, W, C), W (KH, KW, C, F), b (F,) -> p (N, PH, PW, F)

(``activation=None``: p = max_pool(conv(x, W) + b), no relu and no mask below.)

The same numbers as ``max_pool2d(conv2d(x, W, b, ..., activation="relu"), ...)``;
the tier decides how: the reference tier runs the two functions one after the
other, the fast tier fuses them per chunk of images, never storing the
convolution's full output (``fast/conv_pool.py``). Backward, from gp:

    gy = max_pool backward of gp * [p > 0]   the relu mask at each window's arg-max, where y = p
    gx, gW, gb = the convolution's gradients of gy
"""
from __future__ import annotations

from . import tiers
from .conv import _check_bias, _check_image, _wants_grad
from .conv_shapes import check_padding, conv_output_size, conv_pads, pair
from .tensor import Function


class Conv2DReluMaxPool(Function):
    """p = max_pool(relu(conv(x, W) + b)); keeps the pool's arg-max as the mask for backward."""

    def __init__(self, strides, pads, pool, pool_strides, pool_pads, conv_out_hw, pool_out_hw, activation="relu"):
        self.strides, self.pads, self.activation = strides, pads, activation
        self.pool, self.pool_strides, self.pool_pads = pool, pool_strides, pool_pads
        self.conv_out_hw, self.pool_out_hw = conv_out_hw, pool_out_hw

    def forward(self, x, W, b=None):
        p, arg = tiers.current.conv2d_relu_maxpool_forward(x, W, b, self.strides, self.pads, self.pool,
                                                           self.pool_strides, self.pool_pads, self.pool_out_hw,
                                                           self.activation)
        self.x, self.W, self.p, self.arg = x, W, p, arg
        return p

    def backward(self, gp):
        return tiers.current.conv2d_relu_maxpool_backward(
            gp, self.x, self.W, self.p, self.arg, self.strides, self.pads, self.pool, self.pool_strides,
            self.pool_pads, self.conv_out_hw, _wants_grad(self, 0), _wants_grad(self, 1), _wants_grad(self, 2),
            self.activation)


def conv2d_relu_maxpool(x, W, b=None, strides=(1, 1), padding="valid", pool_size=(2, 2), pool_strides=None,
                        pool_padding="valid", activation="relu"):
    """p = max_pool2d(conv2d(x, W, b, strides, padding, activation), pool_size, pool_strides, pool_padding).

    Arguments as ``conv2d`` and ``max_pool2d`` (``pool_strides`` default to ``pool_size``);
    ``activation`` "relu" (the default) or None, the two the node fuses.
    Returns a Tensor (N, PH, PW, F).
    """
    if activation not in ("relu", None):
        raise ValueError(f"conv2d_relu_maxpool: activation must be 'relu' or None (the ones fused into the node), "
                         f"got {activation!r}; run conv2d(..., activation=...) then max_pool2d for any other")
    SH, SW = pair(strides, "strides", "conv2d_relu_maxpool")
    if isinstance(padding, str):
        padding = check_padding(padding, "conv2d_relu_maxpool")
    _check_image(x, W, "conv2d_relu_maxpool", 2)
    _check_bias(b, W.shape[3], "conv2d_relu_maxpool")
    _, H, Wd, _ = x.shape
    KH, KW = W.shape[:2]
    pads = conv_pads(H, Wd, KH, KW, SH, SW, padding)
    OH, OW = (H + pads[0] + pads[1] - KH) // SH + 1, (Wd + pads[2] + pads[3] - KW) // SW + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d_relu_maxpool: kernel {(KH, KW)} is larger than the padded input "
                         f"{(H + pads[0] + pads[1], Wd + pads[2] + pads[3])} (input shape {tuple(x.shape)})")
    PK = pair(pool_size, "pool_size", "conv2d_relu_maxpool")
    PS = PK if pool_strides is None else pair(pool_strides, "pool_strides", "conv2d_relu_maxpool")
    pool_padding = check_padding(pool_padding, "conv2d_relu_maxpool")
    if pool_padding == "valid" and (OH < PK[0] or OW < PK[1]):
        raise ValueError(f"conv2d_relu_maxpool: pool_size {PK} is larger than the convolution's output "
                         f"{(OH, OW)} with pool_padding 'valid' (input shape {tuple(x.shape)})")
    pool_out = conv_output_size(OH, PK[0], PS[0], pool_padding), conv_output_size(OW, PK[1], PS[1], pool_padding)
    pool_pads = conv_pads(OH, OW, *PK, *PS, pool_padding)
    fn = Conv2DReluMaxPool((SH, SW), pads, PK, PS, pool_pads, (OH, OW), pool_out, activation)
    return fn(x, W) if b is None else fn(x, W, b)
