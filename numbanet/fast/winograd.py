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
* ``input_grad(gy, W, in_hw, pads, m)``: gx, the Winograd convolution of gy with the
  flipped kernel;
* ``weight_grad(x, gy, pads, m)``: gW by the transpose of the forward pass (gY's
  tiles transformed by A, alpha^2 products V^T @ gM over the tiles, then G^T gU G).

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

from ..reference.winograd import ALGORITHMS, flipped_kernel, input_grad_pads
from . import parallel, tuning
from .kernels.winograd import (grad_transform_f43_into, input_transform_f23_into, input_transform_f43_into,
                               output_transform_f23_into, output_transform_f43_into, tiles_transform_into)
from .workspace import scratch

# m (outputs per tile side) -> the written-out input and output transforms of F(m x m, 3 x 3)
TRANSFORMS = {2: (input_transform_f23_into, output_transform_f23_into),
              4: (input_transform_f43_into, output_transform_f43_into)}
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

    A 3x3 kernel at stride 1 with pads of at most 2 (the input gradient's pads are
    2 - P), and at least ``tuning.WINOGRAD_MIN_CHANNELS`` channels on both sides:
    below that the alpha^2 products are too thin for BLAS and the transforms dominate.
    """
    KH, KW, C, F = W_shape
    if (KH, KW) != (3, 3) or tuple(strides) != (1, 1):
        return False
    if pads is not None and max(pads) > 2:
        return False
    return min(C, F) >= tuning.WINOGRAD_MIN_CHANNELS


def transform_kernel(W, m=2):
    """U = G W G^T, (3, 3, C, F) -> (alpha^2, C, F) contiguous, one (C, F) matrix per tile position."""
    _, G, _, _ = _matrices(W.dtype, m)
    U = np.einsum("pk,klcf,ql->pqcf", G, W, G, optimize=True)       # (alpha, alpha, C, F)
    return np.ascontiguousarray(U.reshape((m + 2) ** 2, *W.shape[2:]))


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
    """gx = conv(gy, Wf) by F(m x m, 3 x 3), Wf the flipped kernel: gy (N, OH, OW, F) -> gx (N, H, W, C).

    Mirrors ``reference/winograd.py: winograd_input_grad``.
    """
    pads2 = input_grad_pads(in_hw, gy.shape[1:3], pads)
    return forward(gy, np.ascontiguousarray(flipped_kernel(W)), None, pads2, False, m)


def weight_grad(x, gy, pads, m=2):
    """gW = G^T (sum over chunks of V^T @ gM) G: x (N, H, W, C), gy (N, OH, OW, F) -> (3, 3, C, F).

    Mirrors ``reference/winograd.py: winograd_weight_grad``: V the input tiles
    (B^T d B), gM = A gY A^T of gy's m x m tiles, alpha^2 products (C, T) @ (T, F) per chunk.
    """
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    N, H, Wd, C = x.shape
    _, OH, OW, F = gy.shape
    TH, TW = _tiles(OH, OW, m)
    _, G, _, A = _matrices(x.dtype, m)
    T1, A2 = TH * TW, (m + 2) ** 2
    input_transform = TRANSFORMS[m][0]

    sums = {}                                                      # each thread's tag -> its chunks' sum

    def chunk(n0, n1, tag, B):
        V = scratch(tag + "V", (A2, B * T1, C), x.dtype)[:, :(n1 - n0) * T1]
        gM = scratch(tag + "M", (A2, B * T1, F), x.dtype)[:, :(n1 - n0) * T1]
        input_transform(x[n0:n1], pads[0], pads[2], TH, TW, V)                # (alpha^2, T, C)
        if m == 4:
            grad_transform_f43_into(gy[n0:n1], TH, TW, gM)                    # A gY A^T -> (36, T, F)
        else:
            tiles_transform_into(gy[n0:n1], A, m, 0, 0, TH, TW, gM)           # A gY A^T -> (16, T, F)
        if tag in sums:                                            # (a^2, C, T) @ (a^2, T, F) -> (a^2, C, F)
            sums[tag] += np.matmul(V.transpose(0, 2, 1), gM, out=scratch(tag + "U", (A2, C, F), x.dtype))
        else:
            sums[tag] = np.matmul(V.transpose(0, 2, 1), gM)

    _chunks(N, A2 * T1 * (C + F) * x.itemsize, chunk)
    parts = list(sums.values())
    gU = parts[0]
    for p in parts[1:]:
        gU += p
    gU = gU.reshape(m + 2, m + 2, C, F)
    return np.einsum("pk,pqcf,ql->klcf", G, gU, G, optimize=True)


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
    """The Winograd kernels here take pads 0-2 on each side (the input gradient's are 2 - P, which must be >= 0)."""
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
