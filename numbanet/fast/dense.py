"""The dense layer's fast routes:  y = f(x @ W + b)  and its three gradients.

Mirrors ``numbanet.reference.tier.dense_forward`` / ``dense_backward`` (the math
and the shapes are there): x (B, D), W (D, U), b (U,) or None, y (B, U), f one of
``ops.IN_PLACE_ACTIVATIONS`` (tanh, relu, sigmoid) or None.

Routes, recorded in ``routes.LAST``:

  dense_forward   "small"  fewer than SMALL_DENSE_WORK multiply-adds: one product, then the
                           bias and f in place (the pool and the split would cost more)
                  "blas"   y from the scratch pool when big, one product (BLAS threads it),
                           the bias and f split over the NumPy pool
                  "split"  BLAS is single-threaded (a batch split ran): rows cut over the
                           threads, each part runs product, bias and f
  dense_backward  "serial" gx = gz W^T and gW = x^T gz as one product each
                  "split"  as "split" above: each part computes its rows of gx and its
                           share of gW; the shares are summed
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import IN_PLACE_ACTIVATIONS
from . import parallel, workspace
from .routes import LAST
from .tuning import BLAS_SPLIT_MIN_WORK, SMALL_DENSE_WORK

FUSABLE = ("tanh", "relu", "sigmoid")   # the activations dense_forward runs in place


def _finish(y, b, f):
    """y <- f(y + b), in place (b and f may be None)."""
    if b is not None:
        y += b
    if f is not None:
        f(y)


def dense_forward(x, W, b=None, activation=None):
    """y = f(x @ W + b), fused in place.   reference: numbanet.reference.tier.dense_forward."""
    U = W.shape[1]
    work = x.size * U
    if work < SMALL_DENSE_WORK:                               # written out: this path is all overhead
        y = x @ W
        if b is not None:
            y += b
        if activation is not None:
            IN_PLACE_ACTIVATIONS[activation][0](y)
        LAST["dense_forward"] = "small"
        return y
    f = None if activation is None else IN_PLACE_ACTIVATIONS[activation][0]
    y = workspace.empty("linear.y", (len(x), U), np.result_type(x.dtype, W.dtype))
    parts = parallel.split_for_blas(len(x), work)
    if len(parts) == 1:
        np.matmul(x, W, out=y)                                # (B, D) @ (D, U) -> (B, U)
        parallel.run_numpy(lambda r0, r1, _: _finish(y[r0:r1], b, f), parallel.split_large(len(y), y.size))
        LAST["dense_forward"] = "blas"
        return y

    def rows(r0, r1, _):
        np.matmul(x[r0:r1], W, out=y[r0:r1])
        _finish(y[r0:r1], b, f)

    parallel.run(rows, parts)
    LAST["dense_forward"] = "split"
    return y


def dense_backward(gy, x, W, y=None, activation=None, need_gx=True, need_gb=True):
    """(gx | None, gW, gb | None).   reference: numbanet.reference.tier.dense_backward."""
    gz = gy if activation is None else gy * IN_PLACE_ACTIVATIONS[activation][1](y)   # gy * f'(z), f' from y
    work = x.size * W.shape[1]
    parts = None if work < BLAS_SPLIT_MIN_WORK else parallel.split_for_blas(len(x), work)   # None: one part
    if parts is None or len(parts) == 1:
        gx = gz @ W.T if need_gx else None                    # (B, U) @ (U, D) -> (B, D)
        gW = x.T @ gz                                         # (D, B) @ (B, U) -> (D, U)
        LAST["dense_backward"] = "serial"
    else:
        gx = np.empty(x.shape, dtype=np.result_type(gz.dtype, W.dtype)) if need_gx else None

        def rows(r0, r1, _):
            if gx is not None:
                np.matmul(gz[r0:r1], W.T, out=gx[r0:r1])
            return x[r0:r1].T @ gz[r0:r1]                     # this part's share of gW

        shares = parallel.run(rows, parts)
        gW = shares[0]
        for share in shares[1:]:
            gW += share
        LAST["dense_backward"] = "split"
    gb = parallel.column_sums(gz) if need_gb else None        # (B, U) -> (U,)
    return gx, gW, gb
