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
                           columns of gW (x^T gz[:, c0:c1] over all B rows: no (D, U)
                           partial sums to allocate and add)

Tiny passes (under SMALL_DENSE_WORK) run inline code: "small" forward, "serial"
backward, with the bias add and, backward, gz = gy f'(z) with the bias gradient from
kernels/dense_small.py once Numba is set up in the process (``_kernels_ready``). They
take it with no plans loaded, before any route choosing, and also where this machine's
plan for the shape keeps that route: planning then changes nothing but the label.

The thresholds pick the route (the heuristic); with planning on (``planner.py``) a
plan measured on this machine may pick another of the same routes, recorded as
"blas (planned)". "split" is a candidate only once BLAS is single-threaded, as
running it makes BLAS so for the whole process (``parallel.run``).
"""
from __future__ import annotations

import sys

import numpy as np

from ..engine.ops import IN_PLACE_ACTIVATIONS
from . import parallel, planner, workspace
from .kernels.dense_small import CODES as ACT_CODES, act_grad_bias, bias_add, column_sums_into
from .routes import LAST
from .tuning import BLAS_SPLIT_MIN_WORK, SMALL_DENSE_WORK

FUSABLE = ("tanh", "relu", "sigmoid")   # the activations dense_forward runs in place

#: the tiny passes' kernels (kernels/dense_small.py): None uses them once Numba is set up in this
#: process, True / False always / never (tests set it to run both ways)
USE_KERNELS = [None]


def _kernels_ready() -> bool:
    """True where the tiny passes should call their Numba kernels rather than NumPy.

    A kernel saves about a microsecond per call, but the first Numba call of a
    process sets Numba up: about 0.45 s on a Zen 2 core even with every kernel
    in the disk cache (mostly imports, SciPy's linalg among them), the break-even
    of some 100,000 tiny dense passes. So a model that runs no other kernel (a
    small MLP) keeps NumPy, and the kernels join once anything has set Numba up
    (a convolution, an RNN, a warm-up): Numba's set-up imports its
    implementations, ``numba.np.arraymath`` among them.
    """
    use = USE_KERNELS[0]
    if use is None:
        if "numba.np.arraymath" not in sys.modules:             # Numba's implementations not loaded yet
            return False
        use = USE_KERNELS[0] = True
    return use


def _finish(y, b, f):
    """y <- f(y + b), in place (b and f may be None)."""
    if b is not None:
        y += b
    if f is not None:
        f(y)


def _splittable(B):
    """True where a row split can run without changing BLAS's thread count (see the top)."""
    return B > 1 and parallel.num_threads() > 1 and parallel.split_for_blas(B, 1, 0) != [(0, B)]


def _plan(op, heuristic, x, W, routes, run):
    """(route, planned) of a dense pass: the heuristic, or this machine's plan for its shapes.

    ``routes`` are the op's routes besides "split", which is added where it can run.
    """
    if not planner.active():
        return heuristic, None
    split = _splittable(len(x))
    key = planner.key(op, x=tuple(x.shape), U=W.shape[1], dtype=planner._dtype_name(x.dtype), split=split)
    return planner.choose(key, heuristic, routes + (["split"] if split else []), run)


def dense_forward(x, W, b=None, activation=None):
    """y = f(x @ W + b), fused in place.   reference: numbanet.reference.tier.dense_forward."""
    work = x.size * W.shape[1]
    tiny = work < SMALL_DENSE_WORK
    planned = None
    if tiny and planner.active():
        how, planned = _plan("dense.forward", "small", x, W, ["small", "blas"],
                             lambda name: _forward_by(name, x, W, b, activation))
        if how != "small":
            y = _forward_by(how, x, W, b, activation)
            LAST["dense_forward"] = planner.label(how, planned)
            return y
    if tiny:             # no plan, or one that keeps the heuristic: the same code as planning off, no pool
        LAST["dense_forward"] = planner.label("small", planned)
        y = x @ W                                             # _small_forward, inline: (B, D) @ (D, U) -> (B, U)
        if b is not None:
            if b.dtype == y.dtype and _kernels_ready():
                bias_add(y, b)                                # y += b, NumPy's bits, a third of its overhead
            else:
                y += b
        if activation is not None:
            IN_PLACE_ACTIVATIONS[activation][0](y)
        return y
    heuristic = ("small" if work < SMALL_DENSE_WORK else
                 "split" if len(parallel.split_for_blas(len(x), work)) > 1 else "blas")
    how, planned = _plan("dense.forward", heuristic, x, W, ["small", "blas"],
                         lambda name: _forward_by(name, x, W, b, activation))
    y = _forward_by(how, x, W, b, activation)
    LAST["dense_forward"] = planner.label(how, planned)
    return y


def _forward_by(how, x, W, b, activation):
    """y = f(x @ W + b) by the route ``how``: "small", "blas" or "split" (see the top)."""
    U = W.shape[1]
    if how == "small":
        return _small_forward(x, W, b, activation)
    f = None if activation is None else IN_PLACE_ACTIVATIONS[activation][0]
    y = workspace.empty("linear.y", (len(x), U), np.result_type(x.dtype, W.dtype))
    if how == "blas":
        np.matmul(x, W, out=y)                                # (B, D) @ (D, U) -> (B, U)
        parallel.run_numpy(lambda r0, r1, _: _finish(y[r0:r1], b, f), parallel.split_large(len(y), y.size))
        return y

    def rows(r0, r1, _):
        np.matmul(x[r0:r1], W, out=y[r0:r1])
        _finish(y[r0:r1], b, f)

    parallel.run(rows, parallel.split(len(x)))
    return y


def _small_forward(x, W, b, activation):
    """The "small" route, written out (it is all overhead): one product, then b and f in place."""
    y = x @ W                                                 # (B, D) @ (D, U) -> (B, U)
    if b is not None:
        y += b
    if activation is not None:
        IN_PLACE_ACTIVATIONS[activation][0](y)
    return y


def dense_backward(gy, x, W, y=None, activation=None, need_gx=True, need_gb=True):
    """(gx | None, gW, gb | None).   reference: numbanet.reference.tier.dense_backward."""
    work = x.size * W.shape[1]
    tiny = work < SMALL_DENSE_WORK
    planned = None
    if tiny and planner.active():
        how, planned = _plan("dense.backward", "serial", x, W, ["serial"],
                             lambda name: _backward_by(name, gy if activation is None else _act_grad(gy, y, activation),
                                                          x, W, need_gx))
        tiny = how == "serial"
    if tiny:             # no plan, or one that keeps the heuristic: the same code as planning off
        LAST["dense_backward"] = planner.label("serial", planned)
        kernels = gy.dtype.kind == "f" and _kernels_ready()
        if activation is None:
            gz, gb = gy, None
            if need_gb:                                                        # (B, U) -> (U,)
                if kernels:
                    gb = np.empty(gz.shape[1], dtype=gz.dtype)
                    column_sums_into(gz, gb)
                else:
                    gb = parallel.column_sums(gz)
        elif kernels and activation in ACT_CODES and gy.dtype == y.dtype:
            gz, gb = np.empty_like(gy), np.empty(gy.shape[1], dtype=gy.dtype)  # (B, U), (U,)
            act_grad_bias(gy, y, gz, gb, ACT_CODES[activation])                # gz = gy * f'(z), gb its sums
            gb = gb if need_gb else None
        else:
            gz = _act_grad(gy, y, activation)
            gb = parallel.column_sums(gz) if need_gb else None
        gx = gz @ W.T if need_gx else None                    # (B, U) @ (U, D) -> (B, D)
        return gx, x.T @ gz, gb                               # gW (D, U)
    gz = gy if activation is None else _act_grad(gy, y, activation)
    split = work >= BLAS_SPLIT_MIN_WORK and len(parallel.split_for_blas(len(x), work)) > 1
    how, planned = _plan("dense.backward", "split" if split else "serial", x, W, ["serial"],
                         lambda name: _backward_by(name, gz, x, W, need_gx))
    gx, gW = _backward_by(how, gz, x, W, need_gx)
    LAST["dense_backward"] = planner.label(how, planned)
    gb = parallel.column_sums(gz) if need_gb else None        # (B, U) -> (U,)
    return gx, gW, gb


def _act_grad(gy, y, activation):
    """gz = gy * f'(z), f' read from y (B, U): written into f''s new array where the dtypes allow."""
    gz = IN_PLACE_ACTIVATIONS[activation][1](y)                   # f'(z), a new array
    if gz.dtype == gy.dtype:
        gz *= gy
        return gz
    return gy * gz


def _backward_by(how, gz, x, W, need_gx):
    """(gx | None, gW) from gz = gy * f'(z) by the route ``how``: "serial" or "split" (see the top)."""
    if how == "serial":
        gx = gz @ W.T if need_gx else None                    # (B, U) @ (U, D) -> (B, D)
        gW = x.T @ gz                                         # (D, B) @ (B, U) -> (D, U)
    else:
        gx = np.empty(x.shape, dtype=np.result_type(gz.dtype, W.dtype)) if need_gx else None
        gW = np.empty(W.shape, dtype=np.result_type(x.dtype, gz.dtype))
        row_parts = parallel.split(len(x))
        col_parts = parallel.split(W.shape[1], len(row_parts))

        def part(r0, r1, i):
            if gx is not None:
                np.matmul(gz[r0:r1], W.T, out=gx[r0:r1])      # rows r0:r1 of gx   (r, U) @ (U, D)
            if i < len(col_parts):                            # columns c0:c1 of gW (D, B) @ (B, c)
                c0, c1 = col_parts[i]
                np.matmul(x.T, gz[:, c0:c1], out=gW[:, c0:c1])

        parallel.run(part, row_parts)
    return gx, gW
