"""The fast tier's convolutions: route choice, cache-sized chunks, thread splits, the fused relu.

The math is that of ``numbanet/reference/conv.py`` (im2col, one matrix product,
col2im; the transposed convolution as the convolution's input gradient); here each
pass picks one of four routes from the layer's shape and records it
(``routes.last("conv2d_forward")``):

* ``"im2col"``: unfold + GEMM (+ col2im for the input gradient), the general route;
* ``"planes"``: the planar loops of ``kernels/narrow_conv.py``, for stride 1 with
  2-16 input channels and at most 16 filters (``uses_planes``; the input gradient
  also for one input channel, ``input_route``): a chunk of images is copied into
  zero-padded channel planes, and each (filter, channel) pair is one long
  vectorised loop over them, where im2col's product would be too thin for BLAS;
* ``"direct"``: the NHWC direct loops of ``kernels/direct_conv.py``, for one input
  channel or one filter at stride 1 (``uses_direct``) where the planes route does
  not apply, where the product would have K = KH*KW columns or a single output
  column and unfolding costs more than the arithmetic;
* ``"flipped"``: for stride 1 and fewer filters than channels (``flips_roles``), the
  forward pass and the weight gradient run as the convolution with the kernel turned
  around, Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f], which unfolds the narrower side.

The three passes, ``forward``, ``input_grad`` and ``weight_grad``, are used by the
protocol functions at the bottom (and timed by ``benchmarks/bench_conv_paths.py``).
Every route splits the batch over the threads (``parallel``); im2col and col2im
work chunk by chunk (``_over_chunks``) in reused scratch buffers, and the outputs
and gradients come from the same pool (``workspace``).
The relu is fused: into the direct and planes loops, or applied to each chunk right
after its product; its backward mask gz = gy * [y > 0] is one pass (``_masked_by_relu``) or
part of the direct weight-gradient walk or of the planes loops' copy into planes (the
convolution's and the transposed convolution's one-walk backward passes).

These rules are the heuristics. With planning on (``planner.py``: a plan file for
this machine, or ``set_planning("measure")``), each pass may instead take the route
this machine's plan names for its shapes, among the candidates of ``candidates``
(the four routes, other im2col chunk sizes, serial); the record then reads
"im2col/1MiB (planned)", or "flipped (heuristic)" where the plan has no entry.

Notation: x (N, H, W, C), W (KH, KW, C, F), b (F,), strides (SH, SW), pads
(PT, PB, PL, PR), y (N, OH, OW, F), K = KH*KW*C.
"""
from __future__ import annotations

import numpy as np

from . import parallel, planner, tuning, winograd
from .kernels.direct_conv import (direct_forward_into, direct_forward_one_filter_into, direct_weight_grad_add,
                                  direct_weight_grad_one_channel_add, direct_weight_grad_one_filter_add)
from .kernels.elementwise import relu_mask_into
from .kernels.im2col import col2im_into, im2col_into
from .kernels.narrow_conv import (from_planes_into, masked_to_planes_into, planes_forward_into,
                                  planes_row_sums_add, planes_weight_grad_add, to_planes_into)
from .routes import record
from .workspace import empty, scratch

ACTIVATIONS = (None, "relu")   # what the convolutions fuse; the engine runs any other one as its own node


# ------------------------------------------------------------------ route choice
def uses_direct(C, F, SH, SW):
    """True where the direct loops (``kernels/direct_conv.py``) replace im2col + GEMM.

    With one input channel or one filter at stride 1, the unfolded matrix has only
    KH*KW columns (C = 1) or the product a single output column (F = 1): the
    unfolding then costs more than the arithmetic, and the direct loops win every
    pass; their backward also fuses the relu mask and the bias gradient into the
    weight-gradient walk. ``route`` asks ``uses_planes`` first, so these loops
    serve one channel, and one filter behind more than 16 channels. Measured with ``python -m
    benchmarks.bench_conv_paths``: figures in ``benchmarks/results/tuning.md``,
    "Convolution routes".
    """
    return SH == 1 and SW == 1 and min(C, F) == 1


def flips_roles(C, F, SH, SW):
    """True where a stride-1 forward pass or weight gradient is cheaper as the flipped convolution.

    im2col unfolds the image it reads, KH*KW*C numbers per output pixel, for
    the forward pass and the weight gradient. Both can also be run through the
    *flipped* convolution (kernel Wf = ``_flipped(W)``, padding
    ``_flipped_pads``), which unfolds the other side, KH*KW*F numbers per pixel:

        conv2d_forward(x, W)          = input_grad(x, Wf)              (GEMM with K = C, then col2im)
        weight_grad(x, gy, W)         = flip of weight_grad(gy, x, Wf)

    With fewer filters than channels (an encoder's 16 -> 8 layers; a decoder's
    transposed 8 -> 16 ones, read as convolutions) that moves about half the data,
    and measured faster for both passes from 14x14 images up; the input gradient
    gains nothing this way, so it is never flipped (figures in
    ``benchmarks/results/tuning.md``, "Convolution routes").
    """
    return SH == 1 and SW == 1 and F < C


def uses_planes(C, F, SH, SW):
    """True where a stride-1 forward pass or weight gradient takes the planes loops (``kernels/narrow_conv.py``).

    With at most ``tuning.PLANES_MAX_CHANNELS`` channels and filters, im2col's
    unfolded matrix is large beside its thin product and the NHWC direct loops'
    innermost runs over too few numbers to vectorise; the planes loops run every
    (filter, channel) pair as one long vectorised loop over a chunk's planes.
    With one input channel the weight gradient stays "direct" (those loops fuse
    the relu mask and the bias gradient into the weight-gradient walk); its
    forward pass and input gradient take the planes loops (``forward_route``,
    ``input_route``).
    Measured with ``python -m benchmarks.bench_conv_paths`` (``benchmarks/results/tuning.md``,
    "Convolution routes").
    """
    return SH == 1 and SW == 1 and 2 <= C and max(C, F) <= tuning.PLANES_MAX_CHANNELS


def _fallback(C, F, SH, SW, op="conv.forward"):
    """The route of a pass when the planes loops do not apply (stride > 1, pads over K-1)."""
    if op == "conv.input_grad":
        return "direct" if uses_direct(C, F, SH, SW) else "im2col"
    if uses_direct(C, F, SH, SW):
        return "direct"
    return "flipped" if flips_roles(C, F, SH, SW) else "im2col"


def route(C, F, SH, SW):
    """The route of a forward pass or weight gradient: "planes", "direct", "flipped" or "im2col"."""
    if uses_planes(C, F, SH, SW):
        return "planes"
    return _fallback(C, F, SH, SW)


def forward_route(C, F, SH, SW):
    """The route of a forward pass: ``route``'s, except that one input channel also takes the planes loops.

    With one channel the planes forward measured 1.2x the direct loops' at 28x28
    "same" (W3's first layer) and even at "valid"; the weight gradient stays on
    the direct loops (``route``), whose backward is one fused walk.
    """
    if uses_planes(max(C, 2), F, SH, SW):
        return "planes"
    return route(C, F, SH, SW)


def input_route(C, F, SH, SW):
    """The route of an input gradient (a transposed convolution's forward pass): "planes", "direct" or "im2col".

    The planes loops wherever ``uses_planes`` holds; the input gradient is their
    forward loop on the flipped kernel, so, unlike the other two passes, one input
    channel takes them too (a transposed convolution's 16 -> 1 output layer).
    """
    if uses_planes(max(C, 2), F, SH, SW):
        return "planes"
    return _fallback(C, F, SH, SW, "conv.input_grad")


# ------------------------------------------------------------------ planned route choice
# With planning on (``planner.py``), each pass takes the route this machine's plan
# names for its shapes. A route name is "direct", "flipped", "im2col" (chunks of
# tuning.CHUNK_BYTES, split over the threads), "im2col/4MiB" (another chunk size),
# "im2col/serial" (one part on the calling thread), or a name given by
# ``planner.add_route(op, name, run, applies)``. Such a route's ``applies(C, F, SH, SW,
# KH, KW)`` says which layers it can compute, and ``run`` takes the pass's own arguments:
#   "conv.forward"      run(x, W, b, SH, SW, pads, relu)        -> y  (N, OH, OW, F)
#   "conv.input_grad"   run(gy, W, H, Wd, SH, SW, PT, PL)       -> gx (N, H, Wd, C)
#   "conv.weight_grad"  run(x, gy, W_shape, SH, SW, pads)       -> gW (KH, KW, C, F)
# A name that ``route`` returns is dispatched the same way, so a new route can also
# become a heuristic's choice.


def _mib(nbytes):
    return f"{nbytes / (1 << 20):g}MiB"


def candidates(op, C, F, SH, SW, **shape):
    """Every route that computes ``op`` ("conv.forward", "conv.input_grad", "conv.weight_grad")."""
    names = ["im2col"] + [f"im2col/{_mib(int(tuning.CHUNK_BYTES * k))}" for k in tuning.PLAN_CHUNK_FACTORS]
    if parallel.num_threads() > 1:
        names.append("im2col/serial")
    if SH == SW == 1:
        if min(C, F) <= tuning.PLAN_DIRECT_MAX_CHANNELS:
            names.append("direct")
        if op != "conv.input_grad":
            names.append("flipped")
        if max(C, F) <= tuning.PLANES_MAX_CHANNELS:
            names.append("planes")
    return names + planner.added_routes(op, C=C, F=F, SH=SH, SW=SW, **shape)


def _im2col_settings(how):
    """(chunk bytes, serial) of an im2col route name: "im2col", "im2col/4MiB", "im2col/serial"."""
    chunk, serial = tuning.CHUNK_BYTES, False
    for part in how.split("/")[1:]:
        if part == "serial":
            serial = True
        else:
            chunk = int(float(part[:-3]) * (1 << 20))
    return chunk, serial


def _plan(op, heuristic, x_shape, W_shape, strides, pads, dtype, run):
    """(route name, planned) of one pass; ``run(name)`` computes it by that route (for timing)."""
    if not planner.active():
        return heuristic, None
    KH, KW, C, F = W_shape
    key = planner.key(op, x=tuple(x_shape), W=tuple(W_shape), strides=tuple(strides), pads=tuple(pads),
                      dtype=planner._dtype_name(dtype))
    return planner.choose(key, heuristic, candidates(op, C, F, *strides, KH=KH, KW=KW), run)


def _added(op, how, *args):
    """Run a route that ``planner.add_route`` registered under ``how``."""
    if how not in planner.ROUTES.get(op, {}):
        raise ValueError(f"fast tier {op}: unknown route {how!r}; the routes are {candidates(op, 2, 2, 1, 1)} "
                         f"and those added with planner.add_route")
    return planner.ROUTES[op][how][0](*args)


# ------------------------------------------------------------------ the chunks
# The batch is processed in chunks of B images whose patch matrix (B*OH*OW, K) is
# about tuning.CHUNK_BYTES: im2col writes it, the matrix product reads it while it
# is still in cache, and the full (N*OH*OW, K) matrix is never stored. The backward
# pass unfolds each chunk again rather than keeping it. CHUNK_BYTES is read at
# each call, so a test or a tuning run may set it.


def _over_chunks(N, R, K, itemsize, body, how="im2col"):
    """body(n0, n1, col_tag, B) over cache-sized chunks of images; returns each thread's list of results.

    ``how`` may name another chunk size or one serial part ("im2col/4MiB", "im2col/serial").
    """
    chunk, serial = _im2col_settings(how)
    B = max(1, min(N, chunk // max(R * K * itemsize, 1)))

    def work(first, last, worker):
        return [body(n0, min(last, n0 + B), f"conv.col{worker}", B) for n0 in range(first, last, B)]

    return parallel.run(work, parallel.split(N, 1 if serial else None))


def _out_hw(H, Wd, KH, KW, SH, SW, pads):
    PT, PB, PL, PR = pads
    return (H + PT + PB - KH) // SH + 1, (Wd + PL + PR - KW) // SW + 1


# ------------------------------------------------------------------ direct route
def _rows_fit(W_shape, in_w, out_w, PL):
    """The row-at-a-time loops pad each image row by KW on both sides: left and right padding <= KW."""
    KW = W_shape[1]
    return PL <= KW and (out_w - 1) + KW - in_w - PL <= KW


def _direct_forward(x, W, b, PT, PL, relu, out_hw):
    """The direct forward pass over the threads' parts of the batch -> y (N, OH, OW, F)."""
    N, F = x.shape[0], W.shape[3]
    y = empty("conv.y", (N, *out_hw, F), x.dtype)    # pooled: see workspace.py
    b = np.zeros(F, dtype=x.dtype) if b is None else b
    one_filter = F == 1 and _rows_fit(W.shape, x.shape[2], out_hw[1], PL)

    def part(n0, n1, _):
        if one_filter:
            direct_forward_one_filter_into(x[n0:n1], W, b, PT, PL, relu, y[n0:n1])
        else:
            direct_forward_into(x[n0:n1], W, b, 1, 1, PT, PL, relu, y[n0:n1])

    parallel.run(part, parallel.split(N))
    return y


def _direct_input_grad(gz, W, H, Wd, PT, PL, b=None, relu=False):
    """gx as the stride-1 'full' convolution of gz with the flipped, channel-swapped kernel;
    act(gx + b) with a bias b (C,) or relu (a transposed convolution's forward pass)."""
    KH, KW = W.shape[:2]
    return _direct_forward(gz, _flipped(W), b, KH - 1 - PT, KW - 1 - PL, relu, (H, Wd))


def _direct_weight_grad_add(x, gy, y, relu, PT, PL, rows, gW, gb, gz):
    """gW, gb += the stride-1 direct loops' weight and bias gradients of one part of the batch.

    ``rows`` (``_rows_fit``): the row-at-a-time loops for one channel or one filter
    apply; otherwise the general loops. gz (the relu-masked gy) is written where it
    has any size (see ``kernels/direct_conv.py``).
    """
    C, F = gW.shape[2], gW.shape[3]
    if rows and C == 1:
        direct_weight_grad_one_channel_add(x, gy, y, relu, PT, PL, gW, gb, gz)
    elif rows and F == 1:
        direct_weight_grad_one_filter_add(x, gy, y, relu, PT, PL, gW, gb, gz)
    else:
        direct_weight_grad_add(x, gy, y, relu, 1, 1, PT, PL, gW, gb, gz)


def _direct_weight_grad(x, gy, y, relu, W_shape, PT, PL, keep_gz):
    """(gW, gb, gz) in one walk over the batch; gz (the relu-masked gy) only if ``keep_gz`` and relu."""
    gz = empty("conv.gz", gy.shape, gy.dtype) if keep_gz and relu else np.empty((0, 0, 0, 0), dtype=gy.dtype)
    y = y if relu else gy      # the kernels take an array either way; without relu they never read it
    rows = _rows_fit(W_shape, x.shape[2], gy.shape[2], PL)   # a row-at-a-time loop applies

    def part(n0, n1, _):
        gW, gb = np.zeros(W_shape, dtype=gy.dtype), np.zeros(W_shape[3], dtype=gy.dtype)
        _direct_weight_grad_add(x[n0:n1], gy[n0:n1], y[n0:n1], relu, PT, PL, rows, gW, gb,
                                gz[n0:n1] if gz.size else gz)
        return gW, gb

    gW, gb = parallel.summed(parallel.run(part, parallel.split(len(x))))
    return gW, gb, (gz if gz.size else gy)


# ------------------------------------------------------------------ planes route
def _planes_fit(W_shape, pads):
    """The planes loops take stride 1 with top/left pads 0..K-1 (the input gradient's pads K-1-P too)."""
    KH, KW = W_shape[:2]
    return 0 <= pads[0] <= KH - 1 and 0 <= pads[2] <= KW - 1


def _planes_grid(out_hw, KH, KW):
    """(Hp, Wp, L, extra): the padded plane of a stride-1 convolution and the zeros past the last image."""
    Hp, Wp = out_hw[0] + KH - 1, out_hw[1] + KW - 1
    return Hp, Wp, Hp * Wp, (KH - 1) * Wp + KW - 1


def _planes_images(N, channels, L, itemsize):
    """Images per chunk: the chunk's planes (``channels`` of L numbers per image) in tuning.PLANES_CHUNK_BYTES."""
    return max(1, min(N, tuning.PLANES_CHUNK_BYTES // max(channels * L * itemsize, 1)))


def planes_forward_serial(x, W, b, PT, PL, relu, y, tag="conv.planes"):
    """y (N, OH, OW, F) = act(conv(x, W) + b) by the planes loops, stride 1, on the calling thread only.

    x (N, H, W, C), W (KH, KW, C, F) contiguous, b (F,) in x's dtype, 0 <= PT < KH,
    0 <= PL < KW. Chunks of ``_planes_images`` images, planes in the scratch buffers
    ``tag + "x"`` and ``tag + "y"`` (a caller on another thread passes another tag).
    For a caller that walks its own chunks (a fused convolution + pooling).
    """
    N, C = x.shape[0], x.shape[3]
    KH, KW, _, F = W.shape
    OH, OW = y.shape[1:3]
    Hp, Wp, L, extra = _planes_grid((OH, OW), KH, KW)
    B = _planes_images(N, C + F, L, x.itemsize)
    XP = scratch(tag + "x", (C, B * L + extra), x.dtype)
    YP = scratch(tag + "y", (F, B * L), x.dtype)
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        to_planes_into(x, n0, n1, PT, PL, Hp, Wp, XP)
        planes_forward_into(XP, W, b, Wp, (n1 - n0 - 1) * L + OH * Wp, YP)
        from_planes_into(YP, n0, n1, Hp, Wp, relu, y)


def _planes_forward(x, W, b, PT, PL, relu, out_hw, pool_tag="conv.y"):
    """y = act(conv(x, W) + b) by the planes loops (``kernels/narrow_conv.py``), stride 1 -> (N, OH, OW, F),
    y from the workspace pool under ``pool_tag``."""
    N, F = x.shape[0], W.shape[3]
    y = empty(pool_tag, (N, *out_hw, F), x.dtype)
    b = np.zeros(F, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    parallel.run(lambda n0, n1, worker: planes_forward_serial(x[n0:n1], W, b, PT, PL, relu, y[n0:n1],
                                                              f"conv.planes{worker}"),
                 parallel.split(N))
    return y


def _planes_input_grad(gz, W, H, Wd, PT, PL, b=None, relu=False):
    """gx (N, H, Wd, C) from gz (N, OH, OW, F) by the planes loops: the forward loops on gz with the
    flipped kernel Wf (KH, KW, F, C) and pads K-1-P (``kernels/narrow_conv.py``'s docstring);
    act(gx + b) with a bias b (C,) or relu (a transposed convolution's forward pass)."""
    KH, KW = W.shape[:2]
    return _planes_forward(gz, _flipped(W), b, KH - 1 - PT, KW - 1 - PL, relu, (H, Wd), "conv.gx")


def _planes_weight_grad(x, gz, W_shape, PT, PL, W=None, mask=None, need_sums=False):
    """(gW (KH, KW, C, F), y | None, sums | None) by the planes loops: x's planes and gz's on the same grid,
    one shifted dot per tap; with the kernel W also y = conv(x, W) (no bias) from the same planes of x.

    The transposed convolution's backward needs both with the same x (its gz): the
    convolution's forward pass is its gx, the weight gradient its gW, so one copy of
    x into planes per chunk serves the two. Its gz is gy * [y > 0] after a relu:
    with ``mask`` (x's shape) x is read as x * [mask > 0] on its way into the planes,
    so the masked array is never stored; with ``need_sums`` also sums (C,) = x (masked)
    summed over N, H, W, from the planes (the transposed convolution's bias gradient).
    """
    N, C = x.shape[0], x.shape[3]
    KH, KW, _, F = W_shape
    OH, OW = gz.shape[1:3]
    Hp, Wp, L, extra = _planes_grid((OH, OW), KH, KW)
    B = _planes_images(N, C + (F if W is None else 2 * F), L, x.itemsize)
    y = None if W is None else empty("conv.y", (N, OH, OW, F), x.dtype)
    zeros = np.zeros(F, dtype=x.dtype)
    relu = mask is not None
    mask = mask if relu else x         # the kernel takes an array either way; without relu it never reads it

    def work(first, last, worker):
        XP = scratch(f"conv.planes{worker}x", (C, B * L + extra), x.dtype)
        GP = scratch(f"conv.planes{worker}y", (F, B * L), x.dtype)
        YP = None if W is None else scratch(f"conv.planes{worker}z", (F, B * L), x.dtype)
        gW = np.zeros(W_shape, dtype=gz.dtype)
        sums = np.zeros(C, dtype=x.dtype)
        for n0 in range(first, last, B):
            n1 = min(last, n0 + B)
            T = (n1 - n0 - 1) * L + OH * Wp
            masked_to_planes_into(x, mask, relu, n0, n1, PT, PL, Hp, Wp, XP)
            if need_sums:
                planes_row_sums_add(XP, (n1 - n0) * L, sums)      # the zeros around the images add nothing
            if W is not None:
                planes_forward_into(XP, W, zeros, Wp, T, YP)
                from_planes_into(YP, n0, n1, Hp, Wp, False, y)
            masked_to_planes_into(gz, gz, False, n0, n1, 0, 0, Hp, Wp, GP)
            planes_weight_grad_add(XP, GP, Wp, T, gW)
        return gW, sums

    gW, sums = parallel.summed(parallel.run(work, parallel.split(N)))
    return gW, y, (sums if need_sums else None)


def _planes_backward(gy, x, W, y, relu, pads, need_gx, need_gW, need_gb):
    """(gx | None, gW | None, gb | None) of y = act(conv(x, W) + b) by the planes loops, in one walk over the batch.

    Per chunk: gz = gy * [y > 0] (or gy) goes straight into planes, once on the
    input gradient's grid (padded by K-1-P, read by the forward loops with the
    flipped kernel) and once on x's grid (zero where no output pixel is, read by
    the weight-gradient sums and summed for gb); gz itself is never stored.
    """
    gy, x = np.ascontiguousarray(gy), np.ascontiguousarray(x)
    y = np.ascontiguousarray(y) if relu else gy
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    OH, OW = gy.shape[1:3]
    PT, PL = pads[0], pads[2]
    Hp, Wp, L, extra = _planes_grid((OH, OW), KH, KW)           # x's grid: the weight gradient, gb
    Hq, Wq, Lq, extra_q = _planes_grid((H, Wd), KH, KW)          # gx's grid
    # the budget holds one grid's planes (C + F per image): the walk's two grids take twice that,
    # which measured faster than fitting both (W3's 16 -> 1 and 16 -> 8 backward passes, tuning.md)
    B = _planes_images(N, C + F, max(L, Lq), x.itemsize)
    gx = empty("conv.gx", (N, H, Wd, C), gy.dtype) if need_gx else None
    Wf = _flipped(W) if need_gx else W
    zeros = np.zeros(C, dtype=gy.dtype)

    def work(first, last, worker):
        gW = np.zeros(W.shape, dtype=gy.dtype)
        gb = np.zeros(F, dtype=gy.dtype)
        if need_gx:
            GQ = scratch(f"conv.planes{worker}q", (F, B * Lq + extra_q), gy.dtype)
            XQ = scratch(f"conv.planes{worker}r", (C, B * Lq), gy.dtype)
        if need_gW or need_gb:
            GP = scratch(f"conv.planes{worker}y", (F, B * L), gy.dtype)
        if need_gW:
            XP = scratch(f"conv.planes{worker}x", (C, B * L + extra), x.dtype)
        for n0 in range(first, last, B):
            n1 = min(last, n0 + B)
            if need_gx:
                masked_to_planes_into(gy, y, relu, n0, n1, KH - 1 - PT, KW - 1 - PL, Hq, Wq, GQ)
                planes_forward_into(GQ, Wf, zeros, Wq, (n1 - n0 - 1) * Lq + H * Wq, XQ)
                from_planes_into(XQ, n0, n1, Hq, Wq, False, gx)
            if need_gW or need_gb:
                T = (n1 - n0 - 1) * L + OH * Wp
                masked_to_planes_into(gy, y, relu, n0, n1, 0, 0, Hp, Wp, GP)
                if need_gb:
                    planes_row_sums_add(GP, T, gb)
                if need_gW:
                    to_planes_into(x, n0, n1, PT, PL, Hp, Wp, XP)
                    planes_weight_grad_add(XP, GP, Wp, T, gW)
        return gW, gb

    gW, gb = parallel.summed(parallel.run(work, parallel.split(N)))
    return gx, (gW if need_gW else None), (gb if need_gb else None)


# ------------------------------------------------------------------ flipped route
def _flipped(W):
    """Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f]: (KH, KW, C, F) -> (KH, KW, F, C), contiguous."""
    return np.ascontiguousarray(W[::-1, ::-1].transpose(0, 1, 3, 2))


def _flipped_pads(in_hw, out_hw, KH, KW, PT, PL):
    """Pads of the flipped stride-1 convolution, which maps the (OH, OW) side back to (H, W).

    Top/left K-1-P (a = K-1-k turns input row h = o - P + k into o = h + (K-1-P) - a);
    bottom/right whatever makes the output exactly (H, W): H = OH + PT' + PB' - KH + 1.
    """
    (H, Wd), (OH, OW) = in_hw, out_hw
    PT2, PL2 = KH - 1 - PT, KW - 1 - PL
    return (PT2, H - OH - PT2 + KH - 1, PL2, Wd - OW - PL2 + KW - 1)


# ------------------------------------------------------------------ the three passes
def forward(x, W, b, SH, SW, pads, relu, how=None):
    """y = act(im2col(x) @ W2 + b), by the route ``how`` (default ``forward_route``'s):
    x (N, H, W, C) -> y (N, OH, OW, F).

    Mirrors ``reference/conv.py: conv2d_forward``, with act = relu if ``relu`` else identity.
    """
    KH, KW, C, F = W.shape
    x = np.ascontiguousarray(x)
    N, H, Wd, _ = x.shape
    OH, OW = _out_hw(H, Wd, KH, KW, SH, SW, pads)
    how = how or forward_route(C, F, SH, SW)
    if how == "planes" and not (SH == SW == 1 and _planes_fit(W.shape, pads)):
        how = _fallback(C, F, SH, SW)
    if how == "direct":
        return _direct_forward(x, np.ascontiguousarray(W), b, pads[0], pads[2], relu, (OH, OW))
    if how == "planes":
        return _planes_forward(x, np.ascontiguousarray(W), b, pads[0], pads[2], relu, (OH, OW))
    if not how.startswith("im2col") and how != "flipped":
        return _added("conv.forward", how, x, W, b, SH, SW, pads, relu)
    if how == "flipped":                         # GEMM with K = C, then col2im of KH*KW*F per pixel
        return input_grad(x, _flipped(W), OH, OW, 1, 1, KH - 1 - pads[0], KW - 1 - pads[2], how="im2col",
                          b=b, relu=relu)
    K, R = KH * KW * C, OH * OW                 # patch length, rows (output pixels) per image
    W2 = W.reshape(K, F)                        # (KH, KW, C, F) -> (K, F)
    y = empty("conv.y", (N, OH, OW, F), x.dtype)
    Y2 = y.reshape(N * R, F)                    # (N, OH, OW, F) -> (N*OH*OW, F), a view

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), x.dtype)[:n1 - n0]
        im2col_into(x[n0:n1], KH, KW, SH, SW, pads[0], pads[2], c)
        Yc = Y2[n0 * R:n1 * R]
        np.matmul(c.reshape(-1, K), W2, out=Yc)  # (B*OH*OW, K) @ (K, F) -> (B*OH*OW, F)
        if b is not None:
            Yc += b
        if relu:
            np.maximum(Yc, 0, out=Yc)

    _over_chunks(N, R, K, x.itemsize, chunk, how)
    return y


def input_grad(gy, W, H, Wd, SH, SW, PT, PL, how=None, b=None, relu=False):
    """gx = col2im(gy2 @ W2^T), direct, planes or im2col (never flipped); gy (N, OH, OW, F) -> gx (N, H, Wd, C).

    Mirrors ``reference/conv.py: conv2d_input_grad``; also the transposed convolution's forward pass,
    which passes its bias b (C,) and ``relu``: the result is then act(gx + b). The direct and
    planes loops add them as they write each pixel, im2col chunk by chunk after col2im, so the
    output is not read a second time after the pass.
    ``how`` names the route (default ``input_route``'s).
    """
    KH, KW, C, F = W.shape
    gy = np.ascontiguousarray(gy)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=gy.dtype)
    how = how or input_route(C, F, SH, SW)
    if how == "planes" and not (SH == SW == 1 and _planes_fit(W.shape, (PT, 0, PL, 0))):
        how = _fallback(C, F, SH, SW, "conv.input_grad")
    if how == "direct":
        return _direct_input_grad(gy, W, H, Wd, PT, PL, b, relu)
    if how == "planes":
        return _planes_input_grad(gy, W, H, Wd, PT, PL, b, relu)
    if not how.startswith("im2col"):
        gx = _added("conv.input_grad", how, gy, W, H, Wd, SH, SW, PT, PL)
        if b is not None or relu:
            _bias_relu(gx, b, relu)
        return gx
    N, OH, OW, _ = gy.shape
    K, R = KH * KW * C, OH * OW
    W2T = W.reshape(K, F).T                     # (F, K)
    G2 = gy.reshape(N * R, F)                   # (N, OH, OW, F) -> (N*OH*OW, F)
    gx = empty("conv.gx", (N, H, Wd, C), gy.dtype)

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), gy.dtype)[:n1 - n0]
        if F == 1:  # an outer product: a broadcast multiply beats BLAS's GEMM (benchmarks/results/tuning.md)
            np.multiply(G2[n0 * R:n1 * R], W2T, out=c.reshape(-1, K))   # (B*OH*OW, 1) * (1, K)
        else:
            np.matmul(G2[n0 * R:n1 * R], W2T, out=c.reshape(-1, K))     # (B*OH*OW, F) @ (F, K) -> (B*OH*OW, K)
        col2im_into(c, SH, SW, PT, PL, gx[n0:n1])                       # -> (B, H, Wd, C)
        if b is not None:
            gx[n0:n1] += b
        if relu:
            np.maximum(gx[n0:n1], 0, out=gx[n0:n1])

    _over_chunks(N, R, K, gy.itemsize, chunk, how)
    return gx


def weight_grad(x, gy, W_shape, SH, SW, pads, how=None):
    """gW = sum over chunks of im2col(x_c)^T @ G_c, by the route ``how`` (default ``route``'s): -> (KH, KW, C, F).

    Mirrors ``reference/conv.py: conv2d_weight_grad``.
    """
    KH, KW, C, F = W_shape
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    how = how or route(C, F, SH, SW)
    if how == "planes" and not (SH == SW == 1 and _planes_fit(W_shape, pads)):
        how = _fallback(C, F, SH, SW)
    if how == "direct":
        return _direct_weight_grad(x, gy, None, False, W_shape, pads[0], pads[2], False)[0]
    if how == "planes":
        return _planes_weight_grad(x, gy, W_shape, pads[0], pads[2])[0]
    if not how.startswith("im2col") and how != "flipped":
        return _added("conv.weight_grad", how, x, gy, W_shape, SH, SW, pads)
    N, OH, OW, _ = gy.shape
    if how == "flipped":                         # unfold gy (F channels) rather than x (C channels)
        gWf = weight_grad(gy, x, (KH, KW, F, C), 1, 1,
                           _flipped_pads(x.shape[1:3], (OH, OW), KH, KW, pads[0], pads[2]), how="im2col")
        return _flipped(gWf)                     # the flip is its own inverse
    K, R = KH * KW * C, OH * OW
    G2 = gy.reshape(N * R, F)                   # (N, OH, OW, F) -> (N*OH*OW, F)

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), x.dtype)[:n1 - n0]
        im2col_into(x[n0:n1], KH, KW, SH, SW, pads[0], pads[2], c)
        return c.reshape(-1, K).T @ G2[n0 * R:n1 * R]   # (K, B*OH*OW) @ (B*OH*OW, F) -> (K, F)

    gW = np.zeros((K, F), dtype=gy.dtype)
    for partials in _over_chunks(N, R, K, x.itemsize, chunk, how):
        for p in partials:
            gW += p
    return gW.reshape(W_shape)


def _bias_grad(gz):
    """gb = sum of gz over N, OH, OW, as one matrix-vector product (``parallel.column_sums``).

    Mirrors ``reference/conv.py: conv2d_bias_grad``.
    """
    return parallel.column_sums(gz.reshape(-1, gz.shape[-1]))   # (N*OH*OW, F) -> (F,)


def _bias_relu(y, b, relu):
    """y = act(y + b) in place, on the threads' parts of the batch (b may be None)."""
    def part(n0, n1, _):
        if b is not None:
            y[n0:n1] += b
        if relu:
            np.maximum(y[n0:n1], 0, out=y[n0:n1])
    parallel.run(part, parallel.split(len(y)))


def _masked_by_relu(gy, y):
    """gy * [y > 0], computed on the threads' parts of the batch (one fused pass each)."""
    gy = np.ascontiguousarray(gy)
    gz = empty("conv.gz", gy.shape, gy.dtype)
    parallel.run(lambda a, b, _: relu_mask_into(gy[a:b], y[a:b], gz[a:b]), parallel.split(len(gy)))
    return gz


def _relu(activation, op):
    """True for "relu", False for None; any other activation is not fused here."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"fast tier {op}: activation must be None or 'relu' (the ones fused into the convolution), "
                         f"got {activation!r}; functional.conv2d / conv2d_transpose(activation=...) run any other "
                         f"activation as its own node")
    return activation == "relu"


# ------------------------------------------------------------------ protocol functions
def conv2d_forward(x, W, b, strides, pads, activation=None):
    """y = act(conv(x, W) + b) -> (N, OH, OW, F); mirrors ``reference/tier.py: conv2d_forward``.

    Route "winograd4" (F(4x4, 3x3)) or "winograd" (F(2x2, 3x3)) where ``winograd.applies``
    (``tuning.WINOGRAD_FORWARD_TILE``), else "direct", "flipped" or "im2col" (``route``),
    the relu fused into it.
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_forward")
    heuristic = (winograd.ROUTE_NAMES[tuning.WINOGRAD_FORWARD_TILE]                 # 3x3 stride 1, wide enough
                 if winograd.applies(x.shape, W.shape, strides, pads)
                 else forward_route(W.shape[2], W.shape[3], SH, SW))
    how, planned = _plan("conv.forward", heuristic, x.shape, W.shape, strides, pads,
                         x.dtype, lambda name: forward(x, W, b, SH, SW, pads, relu, name))
    record("conv2d_forward", planner.label(how, planned))
    return forward(x, W, b, SH, SW, pads, relu, how)


def conv2d_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """(gx, gW, gb) of y = act(conv(x, W) + b), None where not needed; mirrors ``reference/tier.py``.

    Route "direct": one walk over the batch gives gz = gy * [y > 0], gW and gb
    together, then gx by the direct loops. Route "planes": one walk gives all three
    (``_planes_backward``). Routes "flipped" (gW flipped, gx by im2col) and
    "im2col": gz in one pass, then each gradient by its own chunked pass; where
    ``winograd.applies``, both by Winograd F(4x4, 3x3) (``_backward_input_route``,
    ``weight_grad_route``: "winograd4"), gy's tiles transformed once for the two
    (``winograd.backward``).
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_backward")
    _, H, Wd, C = x.shape
    PT, _, PL, _ = pads
    way = route(C, W.shape[3], SH, SW)
    gx_way = _backward_input_route(x.shape, W.shape, strides, pads)
    gW_way = weight_grad_route(x.shape, W.shape, strides, pads)
    if planner.departs_conv_backward(x.shape, W.shape, strides, pads, gy.dtype, gW_way, need_gx, need_gW, gx_way):
        gz = _masked_by_relu(gy, y) if relu else gy
        gx, gW, how = _planned_grads(gz, x, W, strides, pads, need_gx, need_gW)
        record("conv2d_backward", how)
        return gx, gW, (_bias_grad(gz) if need_gb else None)
    text = way if gW_way == way else gx_way if gx_way == gW_way else f"gx {gx_way}, gW {gW_way}"
    record("conv2d_backward", planner.label(text, False if planner.active() else None))
    if way == "direct":
        gW, gb, gz = _direct_weight_grad(np.ascontiguousarray(x), np.ascontiguousarray(gy), y, relu,
                                         W.shape, PT, PL, need_gx)
        gx = _direct_input_grad(gz, W, H, Wd, PT, PL) if need_gx else None
        return gx, (gW if need_gW else None), (gb if need_gb else None)
    if way == "planes" and _planes_fit(W.shape, pads):
        return _planes_backward(gy, x, np.ascontiguousarray(W), y, relu, pads, need_gx, need_gW, need_gb)
    gz = _masked_by_relu(gy, y) if relu else gy
    if gx_way == gW_way and gx_way in winograd.ROUTE_TILES and need_gx and need_gW:
        # both by the same Winograd tile: gy's tiles are transformed once for the two
        gx, gW = winograd.backward(x, gz, np.ascontiguousarray(W), pads, winograd.ROUTE_TILES[gx_way])
        return gx, gW, (_bias_grad(gz) if need_gb else None)
    gx = input_grad(gz, W, H, Wd, SH, SW, PT, PL, gx_way) if need_gx else None
    gW = weight_grad(x, gz, W.shape, SH, SW, pads, gW_way) if need_gW else None
    return gx, gW, (_bias_grad(gz) if need_gb else None)


def weight_grad_route(x_shape, W_shape, strides, pads):
    """The heuristic route of a convolution's weight gradient: Winograd (``tuning.WINOGRAD_WEIGHT_GRAD_TILE``:
    "winograd4") where ``winograd.applies``, else ``route``'s. Its input gradient stays on
    ``input_route``'s (Winograd's gx measured slower on W2's "valid" layer: benchmarks/results/tuning.md,
    "Winograd tile")."""
    if winograd.applies(x_shape, W_shape, strides, pads):
        return winograd.ROUTE_NAMES[tuning.WINOGRAD_WEIGHT_GRAD_TILE]
    return route(W_shape[2], W_shape[3], *strides)


def _backward_input_route(x_shape, W_shape, strides, pads):
    """The heuristic route of a convolution's input gradient inside ``conv2d_backward``: the direct
    loops where the layer is on the direct route (its fused walk computes gx by them), Winograd
    (``tuning.WINOGRAD_INPUT_GRAD_TILE``: "winograd4") where ``winograd.applies``, else
    ``input_route``'s. The planner's keys name this route as the heuristic, so a plan that keeps
    it runs the same code as planning off."""
    C, F = W_shape[2], W_shape[3]
    SH, SW = strides
    if route(C, F, SH, SW) == "direct":
        return "direct"
    if winograd.applies(x_shape, W_shape, strides, pads):
        return winograd.ROUTE_NAMES[tuning.WINOGRAD_INPUT_GRAD_TILE]
    return input_route(C, F, SH, SW)


def _ways_label(ways):
    """[(gradient, route, planned), ...] -> "im2col (planned)" or "gx im2col, gW flipped (planned)"."""
    names = {h for _, h, _ in ways}
    text = names.pop() if len(names) == 1 else ", ".join(f"{g} {h}" for g, h, _ in ways)
    return planner.label(text or "none", any(p for _, _, p in ways))


def _planned_grads(gz, x, W, strides, pads, need_gx, need_gW):
    """(gx | None, gW | None, the routes as recorded) of a convolution, each pass by its planned route."""
    (SH, SW), (_, H, Wd, C), F = strides, x.shape, W.shape[3]
    PT, PL = pads[0], pads[2]
    gx = gW = None
    ways = []
    if need_gx:
        hx, px = _plan("conv.input_grad", _backward_input_route(x.shape, W.shape, strides, pads), x.shape, W.shape,
                       strides, pads, gz.dtype, lambda name: input_grad(gz, W, H, Wd, SH, SW, PT, PL, name))
        gx = input_grad(gz, W, H, Wd, SH, SW, PT, PL, hx)
        ways.append(("gx", hx, px))
    if need_gW:
        hw, pw = _plan("conv.weight_grad", weight_grad_route(x.shape, W.shape, strides, pads), x.shape, W.shape,
                       strides, pads, gz.dtype,
                       lambda name: weight_grad(x, gz, W.shape, SH, SW, pads, name))
        gW = weight_grad(x, gz, W.shape, SH, SW, pads, hw)
        ways.append(("gW", hw, pw))
    return gx, gW, _ways_label(ways)


def conv2d_transpose_forward(x, W, b, strides, out_hw, pads, activation=None):
    """y = act(conv2d's input gradient of x + b) -> (N, OH, OW, F); mirrors ``reference/tier.py``.

    W (KH, KW, F, C) read as a convolution kernel (OH, OW, F) -> (H, W, C) with
    ``pads``. The input gradient's routes ("planes", "direct", "im2col" or an added
    one; never flipped), with the bias and relu applied inside ``input_grad``.
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_transpose_forward")
    x = np.ascontiguousarray(x)
    C, F, N = W.shape[2], W.shape[3], x.shape[0]
    how, planned = _plan("conv.input_grad", input_route(C, F, SH, SW),
                         (N, *out_hw, C), W.shape, strides, pads, x.dtype,
                         lambda name: input_grad(x, W, out_hw[0], out_hw[1], SH, SW, pads[0], pads[2], name))
    record("conv2d_transpose_forward", planner.label(how, planned))
    return input_grad(x, W, out_hw[0], out_hw[1], SH, SW, pads[0], pads[2], how, b=b, relu=relu)


def conv2d_transpose_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """(gx, gW, gb) of the transposed convolution, None where not needed; mirrors ``reference/tier.py``.

    gx is the convolution's forward pass of gz, gW its weight gradient with gz as
    the input; both by the route of ``route`` (W read as a convolution kernel). On the
    planes route with both asked for, one walk over the batch gives gx, gW and gb,
    the relu mask applied on the way into the planes; with planning on, each pass by
    its plan unless both plans name these heuristic routes (``planner.departs``).
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_transpose_backward")
    C, F = W.shape[2], W.shape[3]
    way = route(C, F, SH, SW)
    if (way == "planes" and need_gx and need_gW and _planes_fit(W.shape, pads)
            and not planner.departs([("conv.forward", forward_route(C, F, SH, SW)), ("conv.weight_grad", way)],
                                    gy.shape, W.shape, strides, pads, gy.dtype)):
        # one walk: gz = gy * [y > 0] goes into planes once and serves gx, gW and gb; gz is never stored
        # (also with planning on, where the plans of both passes name these heuristic routes)
        record("conv2d_transpose_backward", planner.label(way, False if planner.active() else None))
        gW, gx, gb = _planes_weight_grad(np.ascontiguousarray(gy), np.ascontiguousarray(x), W.shape, pads[0],
                                         pads[2], np.ascontiguousarray(W),
                                         mask=np.ascontiguousarray(y) if relu else None, need_sums=need_gb)
        return gx, gW, gb
    gz = _masked_by_relu(gy, y) if relu else gy
    if planner.active():
        gx, gW, how = _planned_transpose_grads(gz, x, W, strides, pads, need_gx, need_gW)
        record("conv2d_transpose_backward", how)
        return gx, gW, (_bias_grad(gz) if need_gb else None)
    record("conv2d_transpose_backward", way)
    gx = forward(gz, W, None, SH, SW, pads, False) if need_gx else None
    gW = weight_grad(gz, x, W.shape, SH, SW, pads) if need_gW else None
    return gx, gW, (_bias_grad(gz) if need_gb else None)


def _planned_transpose_grads(gz, x, W, strides, pads, need_gx, need_gW):
    """(gx | None, gW | None, the routes as recorded) of a transposed convolution, each pass planned:
    gx is the convolution's forward pass of gz, gW its weight gradient with gz as the input."""
    (SH, SW), C, F = strides, W.shape[2], W.shape[3]
    heuristic = route(C, F, SH, SW)
    gx = gW = None
    ways = []
    if need_gx:
        hx, px = _plan("conv.forward", forward_route(C, F, SH, SW), gz.shape, W.shape, strides, pads, gz.dtype,
                       lambda name: forward(gz, W, None, SH, SW, pads, False, name))
        gx = forward(gz, W, None, SH, SW, pads, False, hx)
        ways.append(("gx", hx, px))
    if need_gW:
        hw, pw = _plan("conv.weight_grad", heuristic, gz.shape, W.shape, strides, pads, gz.dtype,
                       lambda name: weight_grad(gz, x, W.shape, SH, SW, pads, name))
        gW = weight_grad(gz, x, W.shape, SH, SW, pads, hw)
        ways.append(("gW", hw, pw))
    return gx, gW, _ways_label(ways)
