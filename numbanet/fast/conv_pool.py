"""The fast tier's fused Conv2D(relu) -> MaxPooling2D: the pooled map written chunk by chunk.

The composition it replaces (``reference/tier.py: conv2d_relu_maxpool_forward``) is

    y = relu(conv(x, W) + b)                (N, OH, OW, F)     the convolution's output
    p, arg = max_pool(y)                    (N, PH, PW, F)     each window's maximum and its window-local index

Here each thread takes its part of the batch and walks it in chunks of B images:
the chunk's convolution (by the route ``fast/conv.py`` would take: the planes loops, direct loops,
Winograd, the flipped product + col2im, or im2col + GEMM, bias and relu fused) goes into a cache-sized scratch
buffer, and the max-pool kernel reads it from there while it is still in cache,
writing p and arg. The full (N, OH, OW, F) map is never stored.

With ``activation`` None the relu is left out: p = max_pool(conv(x, W) + b).

Backward needs no y: the pool's gradient lands only on each window's arg-max cell,
whose value is the pooled p, so the relu mask there is [p > 0]. One Numba pass
(``kernels/conv_pool.py``) writes the convolution's gradient from the pooled arrays,

    gz = gp * [p > 0] at each window's arg-max cell, 0 elsewhere   (N, OH, OW, F)
    gx, gW, gb = the convolution's gradients of gz (no activation: already masked)

where the two nodes would write the pool's gradient gy in full, then read it again
with the stored y for the relu mask.

Shapes: x (N, H, W, C), W (KH, KW, C, F), b (F,), strides (SH, SW), pads
(PT, PB, PL, PR); pool (KH2, KW2), pool_strides, pool_pads, pool_out_hw (PH, PW).
"""
from __future__ import annotations

import numpy as np

from . import conv, parallel, planner, tuning, winograd
from .kernels.conv_pool import pooled_relu_backward_into
from .kernels.direct_conv import (direct_forward_into, direct_forward_one_filter_into,
                                  direct_weight_grad_one_channel_pooled_add)
from .kernels.im2col import col2im_into, im2col_into
from .kernels.pooling import arg_dtype, max_pool_forward_into
from .routes import last, record
from .workspace import empty, scratch


def fused_route(x_shape, W_shape, strides, pads):
    """The convolution route of each chunk: "winograd4" or "winograd" (``tuning.WINOGRAD_FORWARD_TILE``), else
    ``conv.forward_route``'s "planes", "direct", "flipped" or "im2col" (the forward pass's heuristic of
    ``fast/conv.py``)."""
    if winograd.applies(x_shape, W_shape, strides, pads):
        return winograd.ROUTE_NAMES[tuning.WINOGRAD_FORWARD_TILE]
    KH, KW, C, F = W_shape
    way = conv.forward_route(C, F, *strides)
    if way == "planes" and not conv._planes_fit(W_shape, pads):
        return conv._fallback(C, F, *strides)
    return way


def _conv_chunk(xc, W, U, b, strides, pads, way, tag, yc, relu=True):
    """yc = act(conv(xc, W) + b) for one chunk of images (act = relu, or identity if not ``relu``),
    on the calling thread only. ``U``: Winograd's transformed kernel, or for "flipped" the flipped
    kernel as a (C, KH*KW*F) matrix."""
    B, OH, OW, F = yc.shape
    KH, KW, C, _ = W.shape
    if way == "flipped":
        # the stride-1 convolution as the flipped one's input gradient (``conv.flips_roles``):
        # one product with K = C, then col2im of KH*KW*F numbers per input pixel
        _, H, Wd, _ = xc.shape
        c = scratch(tag + "col", (B, H, Wd, KH, KW, F), xc.dtype)
        np.matmul(xc.reshape(-1, C), U, out=c.reshape(-1, KH * KW * F))   # (B*H*Wd, C) @ (C, KH*KW*F)
        col2im_into(c, 1, 1, KH - 1 - pads[0], KW - 1 - pads[2], yc)         # -> (B, OH, OW, F)
        Y2 = yc.reshape(-1, F)
        Y2 += b
        if relu:
            np.maximum(Y2, 0, out=Y2)
    elif way == "direct":
        direct_forward_into(xc, W, b, 1, 1, pads[0], pads[2], relu, yc)
    elif way == "planes":
        # zero-padded channel planes, one vectorised loop per (filter, channel) (``kernels/narrow_conv.py``)
        conv.planes_forward_serial(xc, W, b, pads[0], pads[2], relu, yc, tag=tag + "planes")
    elif way in winograd.ROUTE_TILES:                                  # F(m x m, 3 x 3), bias and act fused
        winograd.forward_chunk(xc, U, b, relu, pads[0], pads[2], winograd.ROUTE_TILES[way], tag, B, yc)
    else:
        K = KH * KW * C
        c = scratch(tag + "col", (B, OH, OW, KH, KW, C), xc.dtype)
        im2col_into(xc, KH, KW, strides[0], strides[1], pads[0], pads[2], c)
        Y2 = yc.reshape(-1, F)                                         # (B, OH, OW, F) -> (B*OH*OW, F)
        np.matmul(c.reshape(-1, K), W.reshape(K, F), out=Y2)          # (B*OH*OW, K) @ (K, F)
        Y2 += b
        if relu:
            np.maximum(Y2, 0, out=Y2)


def _scratch_bytes_per_image(way, W_shape, out_hw, itemsize, in_hw=(0, 0)):
    KH, KW, C, F = W_shape
    OH, OW = out_hw
    if way in winograd.ROUTE_TILES:
        m = winograd.ROUTE_TILES[way]
        tiles = -(-OH // m) * -(-OW // m)
        return ((m + 2) ** 2 * tiles * (C + F) + OH * OW * F) * itemsize
    if way == "im2col":
        return OH * OW * (KH * KW * C + F) * itemsize
    if way == "flipped":
        return (in_hw[0] * in_hw[1] * KH * KW + OH * OW) * F * itemsize
    return OH * OW * F * itemsize


def conv2d_relu_maxpool_forward(x, W, b, strides, pads, pool, pool_strides, pool_pads, pool_out_hw,
                                activation="relu"):
    """(p, arg) = max_pool(act(conv(x, W) + b)), fused per chunk, act relu (or none for ``activation``
    None); mirrors ``reference/tier.py: conv2d_relu_maxpool_forward``. p (N, PH, PW, F), arg its
    window-local arg-max (N, PH, PW, F)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, H, Wd, _ = x.shape
    KH, KW, C, F = W.shape
    out_hw = conv._out_hw(H, Wd, KH, KW, *strides, pads)
    way = fused_route(x.shape, W.shape, strides, pads)
    relu = conv._relu(activation, "conv2d_relu_maxpool_forward")
    record("conv2d_relu_maxpool_forward", f"conv+{'relu+' if relu else ''}maxpool, fused: {way}")
    U = (winograd.transform_kernel(W, winograd.ROUTE_TILES[way]) if way in winograd.ROUTE_TILES else  # (a^2, C, F)
         conv._flipped(W).reshape(KH * KW * F, C).T if way == "flipped" else None)  # (KH, KW, F, C) -> (C, KH*KW*F)
    b = np.zeros(F, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    p = empty("convpool.p", (N, *pool_out_hw, F), x.dtype)              # pooled: see workspace.py
    arg = empty("convpool.arg", (N, *pool_out_hw, F), arg_dtype(*pool))
    B = max(1, min(N, tuning.CHUNK_BYTES // _scratch_bytes_per_image(way, W.shape, out_hw, x.itemsize, (H, Wd))))

    def work(first, last, worker):
        tag = f"convpool{worker}"
        for n0 in range(first, last, B):
            n1 = min(last, n0 + B)
            yc = scratch(tag + "y", (B, *out_hw, F), x.dtype)[:n1 - n0]
            _conv_chunk(x[n0:n1], W, U, b, strides, pads, way, tag, yc, relu)
            max_pool_forward_into(yc, *pool, *pool_strides, pool_pads[0], pool_pads[2], p[n0:n1], arg[n0:n1])

    parallel.run(work, parallel.split(N))
    return p, arg


def conv2d_relu_maxpool_backward(gp, x, W, p, arg, strides, pads, pool, pool_strides, pool_pads, conv_out_hw,
                                 need_gx=True, need_gW=True, need_gb=True, activation="relu"):
    """(gx, gW, gb) of p = max_pool(act(conv(x, W) + b)), None where not needed; mirrors
    ``reference/tier.py: conv2d_relu_maxpool_backward``. gp (N, PH, PW, F); gz (N, OH, OW, F) =
    gp * [p > 0] at the arg-max cells, 0 elsewhere (``kernels/conv_pool.py``), then the convolution's
    gradients of gz, no activation left to undo.

    Route "direct" (``conv.uses_direct``, without planning): each thread walks its images in
    cache-sized chunks, gz of a chunk written to a scratch buffer and read at once by the direct
    weight-gradient loops (and the input gradient's), so gz is never stored in full; a first layer
    (one channel, no gx wanted, pool windows tiling the output) builds each output row of gz inside
    those loops instead and stores none of it (``_direct_backward_by_rows``). Otherwise gz in full,
    then ``fast/conv.py: conv2d_backward``.
    """
    relu = conv._relu(activation, "conv2d_relu_maxpool_backward")
    gp, p, arg = np.ascontiguousarray(gp), np.ascontiguousarray(p), np.ascontiguousarray(arg)
    N, F = gp.shape[0], gp.shape[3]
    label = f"conv+{'relu+' if relu else ''}maxpool, fused: gz from gp, conv "
    KH, KW, C, _ = W.shape
    if conv.uses_direct(C, F, *strides) and not planner.active():
        if _gz_by_rows(W.shape, x.shape[2], conv_out_hw[1], pads[2], need_gx, pool, pool_strides, pool_pads):
            record("conv2d_relu_maxpool_backward", label.replace("gz from gp,", "gz from gp by rows,") + "direct")
            return _direct_backward_by_rows(gp, x, W, p, arg, pads, pool, conv_out_hw, relu, need_gW, need_gb)
        record("conv2d_relu_maxpool_backward", label + "direct by chunks")
        return _direct_backward_by_chunks(gp, x, W, p, arg, pads, pool, pool_strides, pool_pads, conv_out_hw, relu,
                                          need_gx, need_gW, need_gb)
    gz = empty("convpool.gz", (N, *conv_out_hw, F), gp.dtype)
    parallel.run(lambda a, c, _: pooled_relu_backward_into(gp[a:c], p[a:c], arg[a:c], *pool, *pool_strides,
                                                           pool_pads[0], pool_pads[2], relu, gz[a:c]),
                 parallel.split(N))
    gx, gW, gb = conv.conv2d_backward(gz, x, W, None, strides, pads, None, need_gx, need_gW, need_gb)
    record("conv2d_relu_maxpool_backward", label + last("conv2d_backward"))
    return gx, gW, gb


def _gz_by_rows(W_shape, in_w, out_w, PL, need_gx, pool, pool_strides, pool_pads):
    """Whether ``_direct_backward_by_rows`` applies: a first layer (one channel, no input gradient wanted)
    whose pool windows tile its output (strides equal to the window, no padding), within the row loops' padding."""
    return (W_shape[2] == 1 and not need_gx and tuple(pool) == tuple(pool_strides) and not any(pool_pads)
            and conv._rows_fit(W_shape, in_w, out_w, PL))


def _direct_backward_by_rows(gp, x, W, p, arg, pads, pool, conv_out_hw, relu, need_gW, need_gb):
    """(None, gW, gb) of a first layer: each thread's images by
    ``kernels/direct_conv.py: direct_weight_grad_one_channel_pooled_add``, which builds gz one output
    row at a time from gp, p and arg inside its loops, so gz is never written out (the chunked path
    writes it, about 86 KB an image at 26x26x32, and reads it back)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, F = x.shape[0], W.shape[3]

    def work(first, last, _):
        gW, gb = np.zeros(W.shape, dtype=gp.dtype), np.zeros(F, dtype=gp.dtype)
        direct_weight_grad_one_channel_pooled_add(x[first:last], gp[first:last], p[first:last], arg[first:last],
                                                  *pool, relu, pads[0], pads[2], conv_out_hw, gW, gb)
        return gW, gb

    gW, gb = parallel.summed(parallel.run(work, parallel.split(N)))
    return None, (gW if need_gW else None), (gb if need_gb else None)


def _direct_backward_by_chunks(gp, x, W, p, arg, pads, pool, pool_strides, pool_pads, conv_out_hw, relu,
                               need_gx, need_gW, need_gb):
    """(gx, gW, gb) at stride 1 with one channel or one filter: per chunk of images, gz into scratch,
    then ``fast/conv.py``'s direct kernels on it (gW, gb summed over the chunks and the threads)."""
    x, W = np.ascontiguousarray(x), np.ascontiguousarray(W)
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    PT, PL = pads[0], pads[2]
    OH, OW = conv_out_hw
    rows = conv._rows_fit(W.shape, Wd, OW, PL)
    gx = empty("conv.gx", (N, H, Wd, C), gp.dtype) if need_gx else None
    Wf = conv._flipped(W) if need_gx else None                      # (KH, KW, F, C): gx = conv(gz, Wf), full
    one_channel_out = need_gx and C == 1 and conv._rows_fit(Wf.shape, OW, Wd, KW - 1 - PL)  # its one-filter loops
    zero_b = np.zeros(C, dtype=gp.dtype)
    no_gz = np.empty((0, 0, 0, 0), dtype=gp.dtype)
    B = max(1, min(N, tuning.CHUNK_BYTES // (OH * OW * F * gp.itemsize)))

    def work(first, last, worker):
        gW, gb = np.zeros(W.shape, dtype=gp.dtype), np.zeros(F, dtype=gp.dtype)
        for n0 in range(first, last, B):
            n1 = min(last, n0 + B)
            gz = scratch(f"convpool{worker}gz", (B, OH, OW, F), gp.dtype)[:n1 - n0]
            pooled_relu_backward_into(gp[n0:n1], p[n0:n1], arg[n0:n1], *pool, *pool_strides, pool_pads[0],
                                      pool_pads[2], relu, gz)
            conv._direct_weight_grad_add(x[n0:n1], gz, gz, False, PT, PL, rows, gW, gb, no_gz)
            if need_gx and one_channel_out:
                direct_forward_one_filter_into(gz, Wf, zero_b, KH - 1 - PT, KW - 1 - PL, False, gx[n0:n1])
            elif need_gx:
                direct_forward_into(gz, Wf, zero_b, 1, 1, KH - 1 - PT, KW - 1 - PL, False, gx[n0:n1])
        return gW, gb

    gW, gb = parallel.summed(parallel.run(work, parallel.split(N)))
    return gx, (gW if need_gW else None), (gb if need_gb else None)
