"""The fast tier's Winograd route for 3x3 stride-1 convolutions: transforms in Numba, products in BLAS.

The math, the transform matrices and their derivation are in
``numbanet/reference/winograd.py``; here the same F(m x m, 3 x 3) algorithm, m = 2
or 4, runs chunk by chunk over the batch, each chunk's tiles transformed by the
Numba kernels of ``kernels/winograd.py`` into a scratch buffer and multiplied by
alpha^2 BLAS products (one stacked ``np.matmul`` of (alpha^2, T, C) @ (alpha^2, C, F)),
the threads splitting the batch (``parallel``). ``fast/conv.py`` takes this route
for the forward pass and the weight gradient where ``applies`` says so, with the tile
``tuning.WINOGRAD_FORWARD_TILE`` / ``WINOGRAD_WEIGHT_GRAD_TILE`` names ("winograd4" for
F(4x4, 3x3), "winograd" for F(2x2, 3x3) in ``routes.last``: ``ROUTE_NAMES``); the route
planner lists both tiles as candidates of all three passes:

* ``applies(x_shape, W_shape, strides, pads=None)``: whether the route computes
  this convolution and pays (3x3, stride 1, min(C, F) >= ``tuning.WINOGRAD_MIN_CHANNELS``);
* ``forward(x, W, b, pads, relu, m)``: y = act(conv(x, W) + b), bias and relu fused
  into the output transform;
* ``input_grad(gy, W, in_hw, pads, m)``: gx by the transpose of the forward pass (gY's
  tiles transformed by A, alpha^2 products gM @ U^T over the filters, then B gV B^T
  added back into x's overlapping tiles);
* ``weight_grad(x, gy, pads, m)``: gW by the transpose of the forward pass (gY's
  tiles transformed by A, alpha^2 products V^T @ gM over the tiles, then G^T gU G);
* ``backward(x, gy, W, pads, m, need_gx, need_gW)``: both, gY's tiles transformed once.

F(4x4, 3x3) does 36 products per 16 outputs against F(2x2)'s 16 per 4 (44% fewer
multiply-adds) and was the faster forward pass on every layer measured from 32
channels (``tuning.WINOGRAD_FORWARD_TILE``); its float32 rounding is larger (its
transforms multiply by up to 8 and 5 where F(2x2)'s only add).

Notation: x (N, H, W, C), W (3, 3, C, F), b (F,), pads (PT, PB, PL, PR),
y (N, OH, OW, F); m outputs per tile side, alpha = m + 2, TH = ceil(OH / m),
TW = ceil(OW / m), T = the tiles of one chunk.
"""
from __future__ import annotations

import numpy as np

from ..reference.winograd import ALGORITHMS
from . import parallel, tuning
from .kernels.winograd import (grad_transform_f43_into, input_adjoint_f23_into, input_adjoint_f43_into,
                               input_transform_f23_into, input_transform_f43_into, output_transform_f23_into,
                               output_transform_f43_into, tiles_transform_into)
from .workspace import empty, scratch

# m (outputs per tile side) -> the written-out input and output transforms of F(m x m, 3 x 3)
TRANSFORMS = {2: (input_transform_f23_into, output_transform_f23_into),
              4: (input_transform_f43_into, output_transform_f43_into)}
# m -> the written-out transpose of the input transform, x's tiles back to x (the input gradient's last step)
ADJOINTS = {2: input_adjoint_f23_into, 4: input_adjoint_f43_into}
# the route names of the planner and of ``routes.last``: "winograd" is F(2x2, 3x3), "winograd4" F(4x4, 3x3)
ROUTE_TILES = {"winograd": 2, "winograd4": 4}
ROUTE_NAMES = {m: name for name, m in ROUTE_TILES.items()}
_MATRICES = {}                    # (dtype, m) -> (BT, G, AT, A) in that dtype, contiguous


def _matrices(dtype, m=2):
    key = (np.dtype(dtype), m)
    if key not in _MATRICES:
        BT, G, AT = (np.ascontiguousarray(ALGORITHMS[m][k], dtype=key[0]) for k in ("BT", "G", "AT"))
        _MATRICES[key] = (BT, G, AT, np.ascontiguousarray(AT.T))
    return _MATRICES[key]


def applies(x_shape, W_shape, strides, pads=None):
    """True where the Winograd route computes this convolution and is expected to pay.

    A 3x3 kernel at stride 1 with pads of at most 2 (a "valid" or "same" layer's; the
    kernels are tested for pads 0-2), and at least ``tuning.WINOGRAD_MIN_CHANNELS`` channels on both sides:
    below that the alpha^2 products are too thin for BLAS and the transforms dominate.
    """
    KH, KW, C, F = W_shape
    if (KH, KW) != (3, 3) or tuple(strides) != (1, 1):
        return False
    if pads is not None and max(pads) > 2:
        return False
    return min(C, F) >= tuning.WINOGRAD_MIN_CHANNELS


def transform_kernel(W, m=2):
    """U = G W G^T, (3, 3, C, F) -> (alpha^2, C, F) contiguous, one (C, F) matrix per tile position.

    As two small products over all (c, f) at once, rows then columns: T[p, l] = sum_k G[p, k] W[k, l]
    is (alpha, 3) @ (3, 3*C*F), then U[p, q] = sum_l G[q, l] T[p, l] is G @ T[p] for each p
    (``np.einsum`` of the three took 6x longer on W2's 32 -> 64 kernel).
    """
    _, G, _, _ = _matrices(W.dtype, m)
    KH, KW, C, F = W.shape
    T = (G @ W.reshape(KH, KW * C * F)).reshape(m + 2, KW, C * F)       # (alpha, 3, C*F)
    return np.matmul(G, T).reshape((m + 2) ** 2, C, F)                   # (alpha, alpha, C*F) -> (alpha^2, C, F)


def _untransform_kernel(gU, m):
    """gW = G^T gU G, the transpose of ``transform_kernel``: gU (alpha^2, C, F) -> (3, 3, C, F), by the same
    two small products (G^T on the rows, then on the columns)."""
    _, G, _, _ = _matrices(gU.dtype, m)
    a, (C, F) = m + 2, gU.shape[1:]
    T = (G.T @ gU.reshape(a, a * C * F)).reshape(3, a, C * F)            # (3, alpha, C*F)
    return np.matmul(G.T, T).reshape(3, 3, C, F)


def _chunks(N, per_image_bytes, body):
    """body(n0, n1, tag) over chunks of images of about ``tuning.CHUNK_BYTES`` scratch, split over the threads."""
    B = max(1, min(N, tuning.CHUNK_BYTES // max(per_image_bytes, 1)))

    def work(first, last, worker):
        return [body(n0, min(last, n0 + B), f"winograd{worker}", B) for n0 in range(first, last, B)]

    return parallel.run(work, parallel.split(N))


def _tiles(OH, OW, m):
    return -(-OH // m), -(-OW // m)


def forward(x, W, b, pads, relu, m=2):
    """y = act(conv(x, W) + b) by F(m x m, 3 x 3): x (N, H, W, C), W (3, 3, C, F) -> y (N, OH, OW, F).

    Mirrors ``reference/winograd.py: winograd_conv2d``, with the bias and the relu
    applied in the output transform; ``m`` 2 or 4.
    """
    x = np.ascontiguousarray(x)
    N, H, Wd, C = x.shape
    F = W.shape[3]
    PT, PB, PL, PR = pads
    OH, OW = H + PT + PB - 2, Wd + PL + PR - 2
    TH, TW = _tiles(OH, OW, m)
    U = transform_kernel(W, m)                                     # (alpha^2, C, F)
    bias = np.zeros(F, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    y = np.empty((N, OH, OW, F), dtype=x.dtype)

    def chunk(n0, n1, tag, B):
        forward_chunk(x[n0:n1], U, bias, relu, PT, PL, m, tag, B, y[n0:n1])

    _chunks(N, (m + 2) ** 2 * TH * TW * (C + F) * x.itemsize, chunk)
    return y


def forward_chunk(x, U, bias, relu, PT, PL, m, tag, capacity, y):
    """y = act(conv(x, W) + b) for the n images of one chunk, on the calling thread.

    x (n, H, W, C), U = ``transform_kernel(W, m)`` (alpha^2, C, F), bias (F,), y (n, OH, OW, F)
    filled. The scratch V (alpha^2, T, C) and M (alpha^2, T, F) is tagged ``tag`` and sized
    for ``capacity`` images, so every chunk of a pass reuses it.
    """
    n, OH, OW, F = y.shape
    TH, TW = _tiles(OH, OW, m)
    A2, T = (m + 2) ** 2, n * TH * TW
    input_transform, output_transform = TRANSFORMS[m]
    V = scratch(tag + "V", (A2, capacity * TH * TW, x.shape[3]), x.dtype)[:, :T]
    M = scratch(tag + "M", (A2, capacity * TH * TW, F), x.dtype)[:, :T]
    input_transform(x, PT, PL, TH, TW, V)                          # B^T d B -> (alpha^2, T, C)
    np.matmul(V, U, out=M)                                         # (a^2, T, C) @ (a^2, C, F) -> (a^2, T, F)
    output_transform(M, bias, relu, TH, TW, y)                     # A^T M A + b, act -> (n, OH, OW, F)


def input_grad(gy, W, in_hw, pads, m=2):
    """gx by the transpose of the forward pass: gy (N, OH, OW, F), W (3, 3, C, F) -> gx (N, H, W, C).

    Mirrors ``reference/winograd.py: winograd_input_grad_transposed``: per chunk,
    gM = A gY A^T of gy's m x m tiles, alpha^2 products gV = gM @ U^T (K = F), then
    gx = the tiles B gV B^T added back where the forward pass read its input tiles.
    Its tiles are the forward pass's (TH x TW of the output), not those of a "full"
    convolution of gy with the flipped kernel (``winograd_input_grad``), which has
    (TH + 1) x (TW + 1) on a "valid" layer.
    """
    return backward(None, gy, W, pads, m, need_gx=True, need_gW=False, in_hw=in_hw)[0]


def backward(x, gy, W, pads, m=2, need_gx=True, need_gW=True, in_hw=None):
    """(gx, gW) by F(m x m, 3 x 3), None where not needed, sharing gy's transformed tiles gM.

    x (N, H, W, C) (None when only gx is needed: then ``in_hw`` = (H, W)), gy (N, OH, OW, F),
    W (3, 3, C, F) (read for gx only; None without it). Per chunk of images, on each thread:

        gM = A gY A^T                      (alpha^2, T, F)   once for both gradients
        gx: gV = gM @ U^T                  (alpha^2, T, C)   then B gV B^T added into gx's tiles
        gW: gU += V^T @ gM                 (alpha^2, C, F)   V = B^T d B, x's tiles; at the end gW = G^T gU G
    """
    gy = np.ascontiguousarray(gy)
    N, OH, OW, F = gy.shape
    C = x.shape[3] if x is not None else W.shape[2]
    H, Wd = in_hw if x is None else x.shape[1:3]
    if x is not None:
        x = np.ascontiguousarray(x)
    TH, TW = _tiles(OH, OW, m)
    A = _matrices(gy.dtype, m)[3]
    T1, A2 = TH * TW, (m + 2) ** 2
    PT, PL = pads[0], pads[2]
    gx = empty("conv.gx", (N, H, Wd, C), gy.dtype) if need_gx else None           # pooled: see workspace.py
    UT = (np.ascontiguousarray(transform_kernel(W, m).transpose(0, 2, 1))          # (alpha^2, F, C)
          if need_gx else None)
    input_transform = TRANSFORMS[m][0]
    adjoint = ADJOINTS[m]
    sums = {}                                                      # each thread's tag -> its chunks' gU

    def chunk(n0, n1, tag, B):
        T = (n1 - n0) * T1
        gM = scratch(tag + "M", (A2, B * T1, F), gy.dtype)[:, :T]
        if m == 4:
            grad_transform_f43_into(gy[n0:n1], TH, TW, gM)                    # A gY A^T -> (36, T, F)
        else:
            tiles_transform_into(gy[n0:n1], A, m, 0, 0, TH, TW, gM)           # A gY A^T -> (16, T, F)
        if need_gx:
            gV = scratch(tag + "gV", (A2, B * T1, C), gy.dtype)[:, :T]
            np.matmul(gM, UT, out=gV)                                        # (a^2, T, F) @ (a^2, F, C)
            adjoint(gV, PT, PL, TH, TW, gx[n0:n1])                           # B gV B^T, overlap-added
        if need_gW:
            V = scratch(tag + "V", (A2, B * T1, C), gy.dtype)[:, :T]
            input_transform(x[n0:n1], PT, PL, TH, TW, V)                     # (alpha^2, T, C)
            if tag in sums:                                        # (a^2, C, T) @ (a^2, T, F) -> (a^2, C, F)
                sums[tag] += np.matmul(V.transpose(0, 2, 1), gM, out=scratch(tag + "U", (A2, C, F), gy.dtype))
            else:
                sums[tag] = np.matmul(V.transpose(0, 2, 1), gM)

    _chunks(N, A2 * T1 * (F + (C if need_gx else 0) + (C if need_gW else 0)) * gy.itemsize, chunk)
    gW = None
    if need_gW:
        gW = _untransform_kernel(parallel.summed(list(sums.values())), m)   # G^T (sum of the threads' gU) G
    return gx, gW


def weight_grad(x, gy, pads, m=2):
    """gW = G^T (sum over chunks of V^T @ gM) G: x (N, H, W, C), gy (N, OH, OW, F) -> (3, 3, C, F).

    Mirrors ``reference/winograd.py: winograd_weight_grad``: V the input tiles
    (B^T d B), gM = A gY A^T of gy's m x m tiles, alpha^2 products (C, T) @ (T, F) per chunk
    (``backward`` without the input gradient).
    """
    return backward(x, gy, None, pads, m, need_gx=False, need_gW=True)[1]


# ------------------------------------------------------------------ planner candidates
# Winograd, F(2x2, 3x3) and F(4x4, 3x3), is a candidate route of all three passes
# for the route planner (``planner.py``; ``fast/conv.py`` dispatches the names
# "winograd" and "winograd4" to these), on
# more layers than ``applies`` takes by default: every 3x3 stride-1 layer with
# min(C, F) >= PLAN_MIN_CHANNELS, so that a machine where the transforms pay from
# fewer channels (or where they do not pay at 32) finds out. Below 8 channels each
# of the 16 products has K <= 8, too thin to beat im2col's K = 72 anywhere
# (benchmarks/results/tuning.md, "Winograd": a tie at 16 on the machine measured).
PLAN_MIN_CHANNELS = 8


def plannable(C, F, SH, SW, KH=None, KW=None, **_):
    """Whether the planner may time the Winograd route for a layer of this shape (3x3, stride 1, wide enough).

    The kernel size must be given (``conv.candidates(..., KH=, KW=)``): without it, never.
    """
    return (KH, KW) == (3, 3) and (SH, SW) == (1, 1) and min(C, F) >= PLAN_MIN_CHANNELS


def _pads_fit(pads):
    """The Winograd kernels here take pads 0-2 on each side (what ``tests/test_winograd.py`` covers)."""
    return max(pads) <= 2 and min(pads) >= 0


def _routes(m):
    """The three planner routes of F(m x m, 3 x 3); pads outside 0-2 go to im2col (the same numbers)."""
    def forward_route(x, W, b, SH, SW, pads, relu):
        """conv.forward by Winograd: y (N, OH, OW, F)."""
        if not _pads_fit(pads):
            from . import conv
            return conv.forward(x, W, b, SH, SW, pads, relu, "im2col")
        return forward(x, W, b, pads, relu, m)

    def input_grad_route(gy, W, H, Wd, SH, SW, PT, PL):
        """conv.input_grad by Winograd: gx (N, H, Wd, C) from gy (N, OH, OW, F), pads (PT, ., PL, .)."""
        PB, PR = gy.shape[1] + 2 - H - PT, gy.shape[2] + 2 - Wd - PL      # from OH = H + PT + PB - 2
        if not _pads_fit((PT, PB, PL, PR)):
            from . import conv
            return conv.input_grad(gy, W, H, Wd, SH, SW, PT, PL, "im2col")
        return input_grad(gy, np.ascontiguousarray(W), (H, Wd), (PT, PB, PL, PR), m)

    def weight_grad_route(x, gy, W_shape, SH, SW, pads):
        """conv.weight_grad by Winograd: gW (3, 3, C, F) from x (N, H, W, C) and gy (N, OH, OW, F)."""
        if not _pads_fit(pads):
            from . import conv
            return conv.weight_grad(x, gy, W_shape, SH, SW, pads, "im2col")
        return weight_grad(x, gy, pads, m)

    return forward_route, input_grad_route, weight_grad_route


def _register():
    from . import planner
    for name, m in ROUTE_TILES.items():
        fwd, gx, gW = _routes(m)
        planner.add_route("conv.forward", name, fwd, plannable)
        planner.add_route("conv.input_grad", name, gx, plannable)
        planner.add_route("conv.weight_grad", name, gW, plannable)


_register()
