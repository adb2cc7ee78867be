"""Batch normalization, the textbook way: the forward pass as a chain of small steps, and the
backward pass walking that chain in reverse, one intermediate's gradient per line.

Shapes: x (M, C), M rows (every position of every sample: N, or N*H*W for an image batch)
and C channels; gamma, beta, mu, var (C,). Every sum below runs over the M rows.

Forward (training mode, the batch's own statistics; Ioffe & Szegedy 2015, Algorithm 1)::

    mu   = (1/M) sum_m x[m]                      (C,)     batch mean
    xc   = x - mu                                (M, C)   centred input
    sq   = xc ** 2                               (M, C)
    var  = (1/M) sum_m sq[m]                     (C,)     biased variance (divides by M, as Keras)
    std  = sqrt(var + eps)                       (C,)
    inv  = 1 / std                               (C,)
    xhat = xc * inv                              (M, C)   normalized input
    y    = gamma * xhat + beta                   (M, C)

Backward, from gy = dL/dy (M, C), each step the chain rule through one line above, latest
first; a quantity used twice (xc feeds both xhat and sq) adds up the gradients of its uses::

    gbeta = sum_m gy                             (C,)
    ggamma = sum_m gy * xhat                     (C,)
    gxhat = gy * gamma                           (M, C)
    ginv  = sum_m gxhat * xc                     (C,)     xhat = xc * inv, through inv
    gxc   = gxhat * inv                          (M, C)   ... and through xc
    gstd  = -ginv / std**2                       (C,)     d(1/s)/ds = -1/s^2
    gvar  = gstd / (2 std)                       (C,)     d sqrt(v + eps)/dv = 1/(2 std)
    gsq   = gvar / M  (every row)                (M, C)   var is the mean of sq
    gxc  += 2 xc * gsq                           (M, C)   sq = xc^2, the second use of xc
    gmu   = -sum_m gxc                           (C,)     xc = x - mu, through mu
    gx    = gxc + gmu / M  (every row)           (M, C)   ... and through x; mu is the mean of x

Collecting the terms gives the closed form the fast tier computes,
``gx = (gamma inv / M) (M gy - sum gy - xhat sum(gy xhat))``.
"""
from __future__ import annotations

import numpy as np


def batch_norm_forward(x, gamma, beta, eps):
    """(y, mu, var, cache) of training-mode batch normalization, step by step (module docstring).

    x (M, C), gamma (C,) or None (no scale: 1), beta (C,) or None (no offset: 0), eps a float.
    y (M, C); mu, var (C,) the batch's statistics; cache the intermediates the backward reads.
    """
    M = x.shape[0]
    mu = x.sum(axis=0) / M                     # (M, C) -> (C,)
    xc = x - mu                                # (M, C)
    sq = xc ** 2                               # (M, C)
    var = sq.sum(axis=0) / M                   # (M, C) -> (C,)
    std = np.sqrt(var + eps)                   # (C,)
    inv = 1 / std                              # (C,)
    xhat = xc * inv                            # (M, C)
    y = xhat if gamma is None else gamma * xhat
    y = y if beta is None else y + beta
    cache = (xc, std, inv, xhat, gamma)
    return y, mu, var, cache


def forward_intermediates(x, mu, var, gamma, eps):
    """The forward's intermediates (xc, std, inv, xhat, gamma) again, from x (M, C) and the batch's
    statistics mu, var (C,): what ``batch_norm_backward`` reads."""
    xc = x - mu                                # (M, C)
    std = np.sqrt(var + eps)                   # (C,)
    inv = 1 / std                              # (C,)
    xhat = xc * inv                            # (M, C)
    return xc, std, inv, xhat, gamma


def batch_norm_backward(gy, cache):
    """(gx, ggamma, gbeta) of ``batch_norm_forward``, each intermediate's gradient on its own line.

    gy (M, C) -> gx (M, C), ggamma (C,), gbeta (C,) (the last two also when gamma/beta were None;
    the caller drops them).
    """
    xc, std, inv, xhat, gamma = cache
    M = gy.shape[0]
    gbeta = gy.sum(axis=0)                     # y = ... + beta
    ggamma = (gy * xhat).sum(axis=0)           # y = gamma * xhat + ...
    gxhat = gy if gamma is None else gy * gamma
    ginv = (gxhat * xc).sum(axis=0)            # xhat = xc * inv: through inv
    gxc = gxhat * inv                          # ... and through xc
    gstd = -ginv / std ** 2                    # inv = 1 / std
    gvar = gstd / (2 * std)                    # std = sqrt(var + eps)
    gsq = np.ones_like(gy) * gvar / M          # var = (1/M) sum sq
    gxc = gxc + 2 * xc * gsq                   # sq = xc^2
    gmu = -gxc.sum(axis=0)                     # xc = x - mu: through mu
    gx = gxc + np.ones_like(gy) * gmu / M      # ... and through x; mu = (1/M) sum x
    return gx, ggamma, gbeta
