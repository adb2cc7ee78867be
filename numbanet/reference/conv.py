"""Convolution as a matrix product, written out: im2col, one product, col2im.

Notation: x (N, H, W, C) input, W (KH, KW, C, F) kernel (Keras layout), b (F,),
strides (SH, SW), pads (PT, PB, PL, PR) (see ``padding.py``), y (N, OH, OW, F),
K = KH*KW*C the length of one patch.

Convolution (a cross-correlation, as in every framework):

    y[n, oh, ow, f] = b[f] + sum_{i, j, c} x[n, oh SH - PT + i, ow SW - PL + j, c] W[i, j, c, f]

im2col unfolds every window of x into one row, so the sum is one matrix product:

    X  = im2col(x)                 (N*OH*OW, K)
    y  = X @ W.reshape(K, F) + b   (N*OH*OW, F) = (N, OH, OW, F): already NHWC

Backward, from gy (N, OH, OW, F) = G (N*OH*OW, F):

    gW = X^T @ G                   (K, F) -> (KH, KW, C, F)
    gb = sum of G over its rows    (F,)
    gx = col2im(G @ W2^T)          (N*OH*OW, K) -> (N, H, W, C), col2im the adjoint of im2col

The transposed convolution is the last line used as a forward pass.
"""
from __future__ import annotations

import numpy as np

from .padding import out_size


def im2col(x, KH, KW, SH, SW, PT, PB, PL, PR):
    """cols[n, oh, ow, i, j, c] = xp[n, oh SH + i, ow SW + j, c], xp = x zero-padded.

    x (N, H, W, C) -> cols (N, OH, OW, KH, KW, C). One loop over the KH*KW kernel
    offsets: offset (i, j) reads a strided grid of OH x OW pixels. A negative PB or
    PR (transposed convolutions) leaves the last rows/columns unread.
    fast tier: numbanet.fast.kernels.im2col.im2col (same signature).
    """
    N, H, W, C = x.shape
    OH, OW = out_size(H, KH, SH, PT, PB), out_size(W, KW, SW, PL, PR)
    xp = np.pad(x, ((0, 0), (PT, max(PB, 0)), (PL, max(PR, 0)), (0, 0)))
    cols = np.zeros((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, :, :, i, j, :] = xp[:, i:i + SH * OH:SH, j:j + SW * OW:SW, :]
    return cols


def col2im(cols, H, W, SH, SW, PT, PL):
    """The adjoint of im2col: every patch entry is added back to the pixel it was read from.

    cols (N, OH, OW, KH, KW, C) -> x (N, H, W, C): the same loop as im2col with
    ``=`` turned into ``+=`` on a zero-padded image, then the padding cut off.
    Pixels that no window reached stay 0.
    fast tier: numbanet.fast.kernels.im2col.col2im (same signature).
    """
    N, OH, OW, KH, KW, C = cols.shape
    HP, WP = max(PT + H, SH * (OH - 1) + KH), max(PL + W, SW * (OW - 1) + KW)
    xp = np.zeros((N, HP, WP, C), dtype=cols.dtype)
    for i in range(KH):
        for j in range(KW):
            xp[:, i:i + SH * OH:SH, j:j + SW * OW:SW, :] += cols[:, :, :, i, j, :]
    return xp[:, PT:PT + H, PL:PL + W, :]


def conv2d_forward(x, W, b, SH, SW, pads):
    """y = im2col(x) @ W2 + b:  x (N, H, W, C), W (KH, KW, C, F), b (F,) or None -> y (N, OH, OW, F).

    fast tier: numbanet.fast.conv.forward (routed, with the relu fused).
    """
    KH, KW, C, F = W.shape
    cols = im2col(x, KH, KW, SH, SW, *pads)                  # (N, OH, OW, KH, KW, C)
    N, OH, OW = cols.shape[:3]
    X = cols.reshape(N * OH * OW, KH * KW * C)              # -> (N*OH*OW, K)
    y = (X @ W.reshape(KH * KW * C, F)).reshape(N, OH, OW, F)  # (N*OH*OW, F) -> (N, OH, OW, F)
    return y if b is None else y + b


def conv2d_input_grad(gy, W, H, Wd, SH, SW, PT, PL):
    """gx = col2im(G @ W2^T):  gy (N, OH, OW, F), W (KH, KW, C, F) -> gx (N, H, Wd, C).

    fast tier: numbanet.fast.conv.input_grad (same signature).
    """
    KH, KW, C, F = W.shape
    N, OH, OW, _ = gy.shape
    G = gy.reshape(N * OH * OW, F)                          # (N, OH, OW, F) -> (N*OH*OW, F)
    gcols = G @ W.reshape(KH * KW * C, F).T                 # (N*OH*OW, F) @ (F, K) -> (N*OH*OW, K)
    return col2im(gcols.reshape(N, OH, OW, KH, KW, C), H, Wd, SH, SW, PT, PL)


def conv2d_weight_grad(x, gy, W_shape, SH, SW, pads):
    """gW = im2col(x)^T @ G:  x (N, H, W, C), gy (N, OH, OW, F) -> gW W_shape = (KH, KW, C, F).

    fast tier: numbanet.fast.conv.weight_grad (same signature).
    """
    KH, KW, C, F = W_shape
    X = im2col(x, KH, KW, SH, SW, *pads).reshape(-1, KH * KW * C)   # (N*OH*OW, K)
    gW = X.T @ gy.reshape(-1, F)                            # (K, N*OH*OW) @ (N*OH*OW, F) -> (K, F)
    return gW.reshape(W_shape)                              # (K, F) -> (KH, KW, C, F)


def conv2d_bias_grad(gy):
    """gb[f] = sum over n, oh, ow of gy[n, oh, ow, f]:  gy (N, OH, OW, F) -> (F,).

    fast tier: numbanet.fast.conv._bias_grad (parallel.column_sums(gy.reshape(-1, F))).
    """
    return gy.sum(axis=(0, 1, 2))


def conv2d_backward(gy, x, W, SH, SW, pads):
    """The three gradients of y = conv2d(x, W) + b, each by its own function -> (gx, gW, gb).

    fast tier: numbanet.fast.conv.conv2d_backward.
    """
    gx = conv2d_input_grad(gy, W, x.shape[1], x.shape[2], SH, SW, pads[0], pads[2])
    return gx, conv2d_weight_grad(x, gy, W.shape, SH, SW, pads), conv2d_bias_grad(gy)


def conv2d_transpose_forward(x, W, b, OH, OW, SH, SW, pads):
    """The transposed convolution IS the convolution's input gradient, used as a forward pass.

    x (N, H, W, C), W (KH, KW, F, C) (Keras layout: filters before inputs), b (F,)
    -> y (N, OH, OW, F). Read as a convolution kernel, W maps an (OH, OW, F)
    image to an (H, W, C) one with ``pads`` (``padding.transpose_pads``); this
    runs that map backwards:  y = col2im(x2 @ W2^T) + b.
    fast tier: numbanet.fast.conv.conv2d_transpose_forward.
    """
    y = conv2d_input_grad(x, W, OH, OW, SH, SW, pads[0], pads[2])
    return y if b is None else y + b


def conv2d_transpose_backward(gy, x, W, SH, SW, pads):
    """(gx, gW, gb) of the transposed convolution: the convolution's own passes, roles swapped.

    gx = conv2d(gy, W)               (N, H, W, C)    the convolution's forward pass
    gW = im2col(gy)^T @ x2           (KH, KW, F, C)  the convolution's weight gradient, gy as input
    gb = sum of gy over N, OH, OW    (F,)
    fast tier: numbanet.fast.conv.conv2d_transpose_backward.
    """
    gx = conv2d_forward(gy, W, None, SH, SW, pads)
    return gx, conv2d_weight_grad(gy, x, W.shape, SH, SW, pads), conv2d_bias_grad(gy)
