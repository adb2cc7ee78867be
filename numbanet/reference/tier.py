"""The reference tier's functions, called by the engine's Functions through ``engine.tiers.active()``.

Each one is the textbook computation, built from this package's topic modules
(``conv``, ``pooling``, ``linear``, ...); ``numbanet/fast/tier.py`` has the same
names and signatures and gives the same numbers within rounding.
"""
from __future__ import annotations

from . import activations as A
from . import conv, pooling, upsample

# ------------------------------------------------ convolution, pooling, upsampling
# Shapes: x (N, H, W, C), W (KH, KW, C, F) (a transposed convolution's (KH, KW, F, C)),
# b (F,) or None, strides (SH, SW), pads (PT, PB, PL, PR), y (N, OH, OW, F).
# activation: None or "relu", applied after the bias as its own step.
CONV_ACTIVATIONS = {None: (A.linear, A.d_linear), "relu": (A.relu, A.d_relu)}   # name -> (f, f' from y)


def conv2d_forward(x, W, b, strides, pads, activation=None):
    """y = act(z), z = conv(x, W) + b = im2col(x) @ W2 + b:  (N, H, W, C) -> (N, OH, OW, F).

    Three plain steps: the convolution, the bias, the activation.
    fast tier: numbanet.fast.conv.conv2d_forward.
    """
    z = conv.conv2d_forward(x, W, b, *strides, pads)
    return CONV_ACTIVATIONS[activation][0](z)


def conv2d_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """The three gradients of y = act(conv(x, W) + b), given gy = dL/dy (N, OH, OW, F):

        gz = gy * act'(y)                      (N, OH, OW, F)   back through the activation
        gx = col2im(gz2 @ W2^T)                (N, H, W, C)     the input gradient
        gW = im2col(x)^T @ gz2                 (KH, KW, C, F)   the weight gradient
        gb = sum of gz over N, OH, OW          (F,)             the bias gradient

    Each is None where not needed. fast tier: numbanet.fast.conv.conv2d_backward.
    """
    SH, SW = strides
    gz = gy if activation is None else gy * CONV_ACTIVATIONS[activation][1](y)
    gx = conv.conv2d_input_grad(gz, W, x.shape[1], x.shape[2], SH, SW, pads[0], pads[2]) if need_gx else None
    gW = conv.conv2d_weight_grad(x, gz, W.shape, SH, SW, pads) if need_gW else None
    gb = conv.conv2d_bias_grad(gz) if need_gb else None
    return gx, gW, gb


def conv2d_transpose_forward(x, W, b, strides, out_hw, pads, activation=None):
    """y = act(z), z = the convolution's INPUT GRADIENT of x, plus b:  (N, H, W, C) -> (N, OH, OW, F).

    W (KH, KW, F, C) read as a convolution kernel maps an (OH, OW, F) image to an
    (H, W, C) one with ``pads``; the transposed convolution runs that map backwards,
    z = col2im(x2 @ W2^T) + b. fast tier: numbanet.fast.conv.conv2d_transpose_forward.
    """
    z = conv.conv2d_transpose_forward(x, W, b, *out_hw, *strides, pads)
    return CONV_ACTIVATIONS[activation][0](z)


def conv2d_transpose_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """The three gradients of the transposed convolution: the convolution's own passes, roles swapped.

        gz = gy * act'(y)                      (N, OH, OW, F)
        gx = conv(gz, W) = im2col(gz) @ W2     (N, H, W, C)     the convolution's forward pass
        gW = im2col(gz)^T @ x2                 (KH, KW, F, C)   its weight gradient, gz as the input
        gb = sum of gz over N, OH, OW          (F,)

    Each is None where not needed. fast tier: numbanet.fast.conv.conv2d_transpose_backward.
    """
    SH, SW = strides
    gz = gy if activation is None else gy * CONV_ACTIVATIONS[activation][1](y)
    gx = conv.conv2d_forward(gz, W, None, SH, SW, pads) if need_gx else None
    gW = conv.conv2d_weight_grad(gz, x, W.shape, SH, SW, pads) if need_gW else None
    gb = conv.conv2d_bias_grad(gz) if need_gb else None
    return gx, gW, gb


def max_pool2d_forward(x, pool, strides, pads, out_hw):
    """(y, arg): y the maximum of each window (padding -inf), arg the window-local index i*KW + j
    of its first maximum:  x (N, H, W, C) -> y, arg (N, OH, OW, C).

    fast tier: numbanet.fast.pooling.max_pool2d_forward.
    """
    return pooling.max_pool2d_forward(x, *pool, *strides, pads[0], pads[2], *out_hw)


def max_pool2d_backward(gy, arg, pool, strides, pads, in_hw):
    """gx (N, H, W, C): gy[n, oh, ow, c] goes to the cell arg names in its window, 0 elsewhere
    (summed where windows overlap).  fast tier: numbanet.fast.pooling.max_pool2d_backward.
    """
    return pooling.max_pool2d_backward(gy, arg, *pool, *strides, pads[0], pads[2], *in_hw)


def upsample2d_forward(x, size, interpolation):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C): "nearest" repeats pixels, "bilinear" y = A_H x A_W^T.

    fast tier: numbanet.fast.pooling.upsample2d_forward.
    """
    if interpolation == "nearest":
        return upsample.upsample_nearest_forward(x, *size)
    return upsample.upsample_bilinear_forward(x, *size)


def upsample2d_backward(gy, size, interpolation):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C): "nearest" block sums, "bilinear" A_H^T gy A_W.

    fast tier: numbanet.fast.pooling.upsample2d_backward.
    """
    if interpolation == "nearest":
        return upsample.upsample_nearest_backward(gy, *size)
    return upsample.upsample_bilinear_backward(gy, *size)
