"""Slow, obviously correct NumPy twins of the convolution-family kernels (the test oracles).

Each works with whole-array slicing on a padded copy, never with the kernels'
per-pixel index arithmetic, so the two are independent.
"""
from __future__ import annotations

import numpy as np


def out_size(n, k, s, before, after):
    return (n + before + after - k) // s + 1


def im2col_ref(x, KH, KW, SH, SW, PT, PB, PL, PR):
    """x (N, H, W, C) -> (N, OH, OW, KH, KW, C) by slicing a zero-padded copy."""
    N, H, W, C = x.shape
    OH, OW = out_size(H, KH, SH, PT, PB), out_size(W, KW, SW, PL, PR)
    xp = np.pad(x, ((0, 0), (PT, max(PB, 0)), (PL, max(PR, 0)), (0, 0)))
    col = np.zeros((N, OH, OW, KH, KW, C), x.dtype)
    for ki in range(KH):
        for kj in range(KW):
            col[:, :, :, ki, kj, :] = xp[:, ki:ki + SH * (OH - 1) + 1:SH, kj:kj + SW * (OW - 1) + 1:SW, :]
    return col


def col2im_ref(col, H, W, SH, SW, PT, PL):
    """The adjoint of im2col_ref: add every window slice back into a padded buffer, then crop."""
    N, OH, OW, KH, KW, C = col.shape
    HP = max(PT + H, SH * (OH - 1) + KH)
    WP = max(PL + W, SW * (OW - 1) + KW)
    xp = np.zeros((N, HP, WP, C), col.dtype)
    for ki in range(KH):
        for kj in range(KW):
            xp[:, ki:ki + SH * (OH - 1) + 1:SH, kj:kj + SW * (OW - 1) + 1:SW, :] += col[:, :, :, ki, kj, :]
    return xp[:, PT:PT + H, PL:PL + W, :]


def conv2d_ref(x, W, b, SH, SW, pads):
    """Direct definition: y[n, oh, ow, f] = sum x_window * W[..., f] + b[f] via einsum on windows."""
    KH, KW, C, F = W.shape
    col = im2col_ref(x, KH, KW, SH, SW, *pads)
    y = np.einsum("nhwijc,ijcf->nhwf", col, W)
    return y if b is None else y + b


def max_pool_ref(x, KH, KW, SH, SW, PT, PB, PL, PR):
    """(y, arg) with -inf padding; arg = h*W + w of the first maximum (np.argmax takes the first)."""
    N, H, W, C = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (PT, PB), (PL, PR), (0, 0)), constant_values=-np.inf)
    hh, ww = np.meshgrid(np.arange(-PT, H + PB), np.arange(-PL, W + PR), indexing="ij")
    flat = (hh * W + ww)[None, :, :, None] * np.ones((N, 1, 1, C), np.int64)
    win = im2col_ref(xp, KH, KW, SH, SW, 0, 0, 0, 0)           # (N, OH, OW, KH, KW, C)
    idx = im2col_ref(flat, KH, KW, SH, SW, 0, 0, 0, 0)
    N_, OH, OW = win.shape[:3]
    win = win.transpose(0, 1, 2, 5, 3, 4).reshape(N, OH, OW, C, KH * KW)
    idx = idx.transpose(0, 1, 2, 5, 3, 4).reshape(N, OH, OW, C, KH * KW)
    k = np.argmax(win, axis=-1)
    y = np.take_along_axis(win, k[..., None], -1)[..., 0].astype(x.dtype)
    arg = np.take_along_axis(idx, k[..., None], -1)[..., 0]
    return y, arg


def max_pool_backward_ref(gy, arg, H, W):
    N, OH, OW, C = gy.shape
    gx = np.zeros((N, H * W, C), gy.dtype)
    n, _, _, c = np.indices(gy.shape)
    np.add.at(gx, (n.ravel(), arg.ravel(), c.ravel()), gy.ravel())
    return gx.reshape(N, H, W, C)


def nearest_ref(x, SH, SW):
    return np.repeat(np.repeat(x, SH, axis=1), SW, axis=2)


def nearest_backward_ref(gy, SH, SW):
    N, OH, OW, C = gy.shape
    return gy.reshape(N, OH // SH, SH, OW // SW, SW, C).sum(axis=(2, 4))


def bilinear_matrix(n, s):
    """(n*s, n) interpolation matrix of one axis, half-pixel centres, clamped edges."""
    src = np.clip((np.arange(n * s) + 0.5) / s - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    A = np.zeros((n * s, n))
    A[np.arange(n * s), lo] += 1 - (src - lo)
    A[np.arange(n * s), hi] += src - lo
    return A


def bilinear_ref(x, SH, SW):
    Ah, Aw = bilinear_matrix(x.shape[1], SH), bilinear_matrix(x.shape[2], SW)
    return np.einsum("ih,nhwc,jw->nijc", Ah, x, Aw).astype(x.dtype)


def bilinear_backward_ref(gy, SH, SW):
    H, W = gy.shape[1] // SH, gy.shape[2] // SW
    Ah, Aw = bilinear_matrix(H, SH), bilinear_matrix(W, SW)
    return np.einsum("ih,nijc,jw->nhwc", Ah, gy, Aw).astype(gy.dtype)
