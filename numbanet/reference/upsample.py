"""Upsampling by integer factors (SH, SW), nearest or bilinear, and their backward passes.

Notation: x (N, H, W, C) -> y (N, OH, OW, C), OH = H SH, OW = W SW.

Nearest repeats each pixel into an SH x SW block (rows, then columns):

    y[n, i, j, c] = x[n, i // SH, j // SW, c]          gx = the sum of gy over each block

Bilinear is separable: along each axis, output cell i samples the source position
s_i = (i + 0.5) / S - 0.5 (half-pixel centres), clamped to [0, n - 1], from its two
neighbours lo = floor(s_i) and hi = min(lo + 1, n - 1) with weights 1 - a and
a = s_i - lo. That is a matrix A (n S, n) per axis, and

    y[n, :, :, c] = A_H @ x[n, :, :, c] @ A_W^T       gx[n, :, :, c] = A_H^T @ gy[n, :, :, c] @ A_W

(the backward of a linear map is its transpose). No antialiasing, as in TensorFlow.
"""
from __future__ import annotations

import numpy as np


def upsample_nearest_forward(x, SH, SW):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C).

    fast tier: numbanet.fast.kernels.upsample.upsample_nearest_forward (same signature).
    """
    return np.repeat(np.repeat(x, SH, axis=1), SW, axis=2)


def upsample_nearest_backward(gy, SH, SW):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C), the sum of each SH x SW block.

    fast tier: numbanet.fast.kernels.upsample.upsample_nearest_backward (same signature).
    """
    N, OH, OW, C = gy.shape
    blocks = gy.reshape(N, OH // SH, SH, OW // SW, SW, C)   # (N, H, SH, W, SW, C)
    return blocks.sum(axis=(2, 4))                           # -> (N, H, W, C)


def bilinear_matrix(n, s):
    """A (n*s, n): row i holds the two weights with which output cell i mixes input cells."""
    src = np.clip((np.arange(n * s) + 0.5) / s - 0.5, 0, n - 1)   # half-pixel centres, clamped
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    A = np.zeros((n * s, n))
    A[np.arange(n * s), lo] += 1 - (src - lo)
    A[np.arange(n * s), hi] += src - lo                      # at the edge lo == hi: weights add to 1
    return A


def upsample_bilinear_forward(x, SH, SW):
    """y = A_H x A_W^T per image and channel:  x (N, H, W, C) -> y (N, H*SH, W*SW, C).

    fast tier: numbanet.fast.kernels.upsample.upsample_bilinear_forward (same signature).
    """
    A_H, A_W = bilinear_matrix(x.shape[1], SH), bilinear_matrix(x.shape[2], SW)
    return np.einsum("ih,nhwc,jw->nijc", A_H, x, A_W).astype(x.dtype)


def upsample_bilinear_backward(gy, SH, SW):
    """gx = A_H^T gy A_W per image and channel:  gy (N, H*SH, W*SW, C) -> gx (N, H, W, C).

    fast tier: numbanet.fast.kernels.upsample.upsample_bilinear_backward (same signature).
    """
    A_H, A_W = bilinear_matrix(gy.shape[1] // SH, SH), bilinear_matrix(gy.shape[2] // SW, SW)
    return np.einsum("ih,nijc,jw->nhwc", A_H, gy, A_W).astype(gy.dtype)
