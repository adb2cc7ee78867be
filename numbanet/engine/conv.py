"""Convolution as a matrix product, and transposed convolution as its input-gradient.

Notation: x (N, H, W, C) input, W (KH, KW, C, F) kernel (Keras layout), b (F,),
strides (SH, SW), padding (PT, PB, PL, PR), y (N, OH, OW, F), K = KH*KW*C.

Convolution (really cross-correlation, as in every framework)::

    y[n, oh, ow, f] = b[f] + sum_{ki, kj, c} x[n, oh*SH - PT + ki, ow*SW - PL + kj, c] W[ki, kj, c, f]

is one matrix product once the patches are unfolded (``im2col``)::

    X = im2col(x)                 (N*OH*OW, K)      one patch per row
    Y = X @ W2 + b                (N*OH*OW, F)      W2 = W.reshape(K, F)  (BLAS)
    y = Y.reshape(N, OH, OW, F)                     already NHWC: no transpose

Backward, from gy (N, OH, OW, F) reshaped to G (N*OH*OW, F)::

    gW = X^T @ G                  (K, F) -> (KH, KW, C, F)
    gb = sum of G over its rows   (F,)
    gx = col2im(G @ W2^T)         (N*OH*OW, K) -> (N, H, W, C)     (the adjoint of im2col)

The last line, ``conv2d_input_grad``, is a linear map from an (N, OH, OW, F)
array to an (N, H, W, C) one. Used as a *forward* pass it is the transposed
convolution (``Conv2DTranspose``): its kernel (KH, KW, filters, in) is exactly
a convolution kernel read the other way round, and its own backward passes are
the convolution's forward (for gx) and weight gradient (for gW).
"""
from __future__ import annotations

import numpy as np

from .conv_shapes import check_padding, conv_output_size, conv_pads, pair, transpose_output_size, transpose_pad_before
from .kernels.im2col import col2im, im2col
from .tensor import Function, is_grad_enabled


# --------------------------------------------------------------- array level
def conv2d_forward(x, W, SH, SW, pads):
    """y = im2col(x) @ W2 on arrays. Returns (y (N, OH, OW, F), X (N*OH*OW, K))."""
    KH, KW, C, F = W.shape
    X = im2col(np.ascontiguousarray(x), KH, KW, SH, SW, *pads)  # (N, OH, OW, KH, KW, C)
    N, OH, OW = X.shape[:3]
    X = X.reshape(N * OH * OW, KH * KW * C)     # (N, OH, OW, KH, KW, C) -> (N*OH*OW, K)
    Y = X @ W.reshape(KH * KW * C, F)           # (N*OH*OW, K) @ (K, F) -> (N*OH*OW, F)
    return Y.reshape(N, OH, OW, F), X           # (N*OH*OW, F) -> (N, OH, OW, F)


def conv2d_input_grad(gy, W, H, Wd, SH, SW, PT, PL):
    """gx = col2im(gy2 @ W2^T): the gradient of a convolution with respect to its input.

    gy (N, OH, OW, F), W (KH, KW, C, F) -> gx (N, H, Wd, C). Also the forward
    pass of the transposed convolution.
    """
    KH, KW, C, F = W.shape
    N, OH, OW, _ = gy.shape
    G = gy.reshape(N * OH * OW, F)              # (N, OH, OW, F) -> (N*OH*OW, F)
    GX = G @ W.reshape(KH * KW * C, F).T        # (N*OH*OW, F) @ (F, K) -> (N*OH*OW, K)
    GX = GX.reshape(N, OH, OW, KH, KW, C)       # (N*OH*OW, K) -> (N, OH, OW, KH, KW, C)
    return col2im(GX, H, Wd, SH, SW, PT, PL)    # -> (N, H, Wd, C)


def conv2d_weight_grad(X, gy, W_shape):
    """gW = X^T @ G:  X (N*OH*OW, K), gy (N, OH, OW, F) -> (KH, KW, C, F)."""
    G = gy.reshape(-1, W_shape[-1])             # (N, OH, OW, F) -> (N*OH*OW, F)
    return (X.T @ G).reshape(W_shape)           # (K, N*OH*OW) @ (N*OH*OW, F) -> (K, F) -> (KH, KW, C, F)


def _wants_grad(fn, i):
    inputs = getattr(fn, "inputs", None)
    return inputs is not None and len(inputs) > i and inputs[i] is not None and inputs[i].requires_grad


# ------------------------------------------------------------ differentiable
class Conv2D(Function):
    """y = conv(x, W) + b  (see the module docstring for the forward and backward formulas).

    Shapes: x (N, H, W, C), W (KH, KW, C, F), b (F,) -> y (N, OH, OW, F).
    """

    def __init__(self, strides, pads):
        self.SH, self.SW = strides
        self.pads = pads                          # (PT, PB, PL, PR)

    def forward(self, x, W, b=None):
        y, X = conv2d_forward(x, W, self.SH, self.SW, self.pads)
        if b is not None:
            y += b                                # (N, OH, OW, F) + (F,)
        self.x_shape, self.W = x.shape, W
        self.X = X if is_grad_enabled() else None  # the patches, kept for gW
        return y

    def backward(self, gy):
        _, H, Wd, _ = self.x_shape
        PT, _, PL, _ = self.pads
        gx = gW = None
        if _wants_grad(self, 0):
            gx = conv2d_input_grad(gy, self.W, H, Wd, self.SH, self.SW, PT, PL)
        if _wants_grad(self, 1):
            gW = conv2d_weight_grad(self.X, gy, self.W.shape)
        gb = gy.sum(axis=(0, 1, 2))               # (N, OH, OW, F) -> (F,)
        return gx, gW, gb


class Conv2DTranspose(Function):
    """The transposed convolution: convolution's input-gradient used as a forward pass.

    Shapes: x (N, H, W, C), W (KH, KW, F, C) (Keras layout: filters before
    inputs), b (F,) -> y (N, OH, OW, F). Read as a convolution, W maps an
    (OH, OW, F) image to an (H, W, C) one; this layer runs that map backwards:

        forward:   y  = conv2d_input_grad(x, W)       (col2im of x2 @ W2^T)
        backward:  gx = conv2d(gy, W)                 (im2col(gy) @ W2)
                   gW = im2col(gy)^T @ x2             (the convolution's weight gradient,
                                                       with the roles of x and gy swapped)
                   gb = sum of gy over N, OH, OW
    """

    def __init__(self, strides, out_hw, pads):
        self.SH, self.SW = strides
        self.OH, self.OW = out_hw
        self.pads = pads                          # (PT, PB, PL, PR) of the convolution it inverts

    def forward(self, x, W, b=None):
        PT, _, PL, _ = self.pads
        y = conv2d_input_grad(np.ascontiguousarray(x), W, self.OH, self.OW, self.SH, self.SW, PT, PL)
        if b is not None:
            y += b
        self.x, self.W = x, W
        return y

    def backward(self, gy):
        gx, GY = conv2d_forward(gy, self.W, self.SH, self.SW, self.pads)  # the convolution itself
        if not _wants_grad(self, 0):
            gx = None
        gW = None
        if _wants_grad(self, 1):
            C = self.x.shape[-1]
            gW = (GY.T @ self.x.reshape(-1, C)).reshape(self.W.shape)
            # (K, N*H*W) @ (N*H*W, C) -> (K, C) -> (KH, KW, F, C)
        gb = gy.sum(axis=(0, 1, 2))               # (N, OH, OW, F) -> (F,)
        return gx, gW, gb


# --------------------------------------------------------------- public API
def _check_image(x, W, owner, channel_axis):
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D NHWC input (batch, height, width, channels), "
                         f"got shape {tuple(x.shape)}")
    if W.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D kernel, got shape {tuple(W.shape)}")
    if x.shape[-1] != W.shape[channel_axis]:
        raise ValueError(f"{owner}: input has {x.shape[-1]} channels but the kernel of shape "
                         f"{tuple(W.shape)} expects {W.shape[channel_axis]}")


def _check_bias(b, F, owner):
    if b is not None and tuple(b.shape) != (F,):
        raise ValueError(f"{owner}: bias must have shape ({F},), got {tuple(b.shape)}")


def conv2d(x, W, b=None, strides=(1, 1), padding="valid"):
    """2-D convolution of NHWC ``x`` with kernel ``W`` (KH, KW, C, F), plus bias ``b`` (F,).

    ``padding`` is "valid", "same" (TensorFlow's split: extra cell bottom/right)
    or explicit (PT, PB, PL, PR). Returns a Tensor (N, OH, OW, F).
    """
    SH, SW = pair(strides, "strides", "conv2d")
    if isinstance(padding, str):
        padding = check_padding(padding, "conv2d")
    _check_image(x, W, "conv2d", 2)
    _check_bias(b, W.shape[3], "conv2d")
    _, H, Wd, _ = x.shape
    KH, KW = W.shape[:2]
    pads = conv_pads(H, Wd, KH, KW, SH, SW, padding)
    if H + pads[0] + pads[1] < KH or Wd + pads[2] + pads[3] < KW:
        raise ValueError(f"conv2d: kernel {(KH, KW)} is larger than the padded input "
                         f"{(H + pads[0] + pads[1], Wd + pads[2] + pads[3])} (input shape {tuple(x.shape)})")
    fn = Conv2D((SH, SW), pads)
    return fn(x, W) if b is None else fn(x, W, b)


def conv2d_transpose(x, W, b=None, strides=(1, 1), padding="valid", output_padding=None):
    """Transposed 2-D convolution of NHWC ``x`` with kernel ``W`` (KH, KW, F, C), bias (F,).

    Output size per axis (Keras): output_padding None -> "valid" H*S + max(K - S, 0),
    "same" H*S; else (H - 1)*S + K - 2*pad + op with pad = K//2 ("same") or 0.
    Returns a Tensor (N, OH, OW, F).
    """
    SH, SW = pair(strides, "strides", "conv2d_transpose")
    padding = check_padding(padding, "conv2d_transpose")
    _check_image(x, W, "conv2d_transpose", 3)
    KH, KW, F, _ = W.shape
    _check_bias(b, F, "conv2d_transpose")
    ops = (None, None) if output_padding is None else pair(output_padding, "output_padding",
                                                            "conv2d_transpose", minimum=0)
    if ops[0] is not None and (ops[0] >= SH or ops[1] >= SW):
        raise ValueError(f"conv2d_transpose: output_padding {ops} must be smaller than strides {(SH, SW)}")
    _, H, Wd, _ = x.shape
    OH = transpose_output_size(H, KH, SH, padding, ops[0])
    OW = transpose_output_size(Wd, KW, SW, padding, ops[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d_transpose: output size {(OH, OW)} is not positive for input "
                         f"{tuple(x.shape)}, kernel {tuple(W.shape)}, strides {(SH, SW)}")
    if conv_output_size(OH, KH, SH, padding) != H or conv_output_size(OW, KW, SW, padding) != Wd:
        raise ValueError(f"conv2d_transpose: output_padding {output_padding} gives output size {(OH, OW)}, "
                         f"which a {padding!r} convolution with kernel {(KH, KW)} and strides {(SH, SW)} "
                         f"does not map back to the input size {(H, Wd)} (TensorFlow rejects it too)")
    PT = transpose_pad_before(H, OH, KH, SH, padding)
    PL = transpose_pad_before(Wd, OW, KW, SW, padding)
    # the convolution (OH, OW) -> (H, W) that this inverts; PB, PR may be negative
    pads = (PT, (H - 1) * SH + KH - OH - PT, PL, (Wd - 1) * SW + KW - OW - PL)
    fn = Conv2DTranspose((SH, SW), (OH, OW), pads)
    return fn(x, W) if b is None else fn(x, W, b)
