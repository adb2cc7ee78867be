"""The fast tier's convolutions: route choice, cache-sized chunks, thread splits, the fused relu.

The math is that of ``numbanet/reference/conv.py`` (im2col, one matrix product,
col2im; the transposed convolution as the convolution's input gradient); here each
pass picks one of three routes from the layer's shape and records it
(``routes.last("conv2d_forward")``):

* ``"im2col"``: unfold + GEMM (+ col2im for the input gradient), the general route;
* ``"direct"``: the direct loops of ``kernels/direct_conv.py``, for one input
  channel or one filter at stride 1 (``uses_direct``), where the product would have
  K = KH*KW columns or a single output column and unfolding costs more than the
  arithmetic;
* ``"flipped"``: for stride 1 and fewer filters than channels (``flips_roles``), the
  forward pass and the weight gradient run as the convolution with the kernel turned
  around, Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f], which unfolds the narrower side.

The three passes, ``forward``, ``input_grad`` and ``weight_grad``, are used by the
protocol functions at the bottom (and timed by ``benchmarks/bench_conv_paths.py``).
Every route splits the batch over the threads (``parallel``); im2col and col2im
work chunk by chunk (``_over_chunks``) in reused scratch buffers, and the outputs
and gradients come from the same pool (``workspace``).
The relu is fused: into the direct loops, or applied to each chunk right after its
product; its backward mask gz = gy * [y > 0] is one pass (``_masked_by_relu``) or
part of the direct weight-gradient walk.

These rules are the heuristics. With planning on (``planner.py``: a plan file for
this machine, or ``set_planning("measure")``), each pass may instead take the route
this machine's plan names for its shapes, among the candidates of ``candidates``
(the three routes, other im2col chunk sizes, serial); the record then reads
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
    weight-gradient walk. With several channels on both sides the GEMM wins, so
    everything else stays on im2col. Measured with ``python -m
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


def route(C, F, SH, SW):
    """The route of a forward pass or weight gradient: "direct", "flipped" or "im2col"."""
    if uses_direct(C, F, SH, SW):
        return "direct"
    return "flipped" if flips_roles(C, F, SH, SW) else "im2col"


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
                      dtype=str(dtype))
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


def _direct_input_grad(gz, W, H, Wd, PT, PL):
    """gx as the stride-1 'full' convolution of gz with the flipped, channel-swapped kernel."""
    KH, KW = W.shape[:2]
    return _direct_forward(gz, _flipped(W), None, KH - 1 - PT, KW - 1 - PL, False, (H, Wd))


def _direct_weight_grad(x, gy, y, relu, W_shape, PT, PL, keep_gz):
    """(gW, gb, gz) in one walk over the batch; gz (the relu-masked gy) only if ``keep_gz`` and relu."""
    gz = empty("conv.gz", gy.shape, gy.dtype) if keep_gz and relu else np.empty((0, 0, 0, 0), dtype=gy.dtype)
    y = y if relu else gy      # the kernels take an array either way; without relu they never read it

    C, F = W_shape[2], W_shape[3]
    rows = _rows_fit(W_shape, x.shape[2], gy.shape[2], PL)   # a row-at-a-time loop applies

    def part(n0, n1, _):
        gW, gb = np.zeros(W_shape, dtype=gy.dtype), np.zeros(F, dtype=gy.dtype)
        xs, gys, ys, z = x[n0:n1], gy[n0:n1], y[n0:n1], gz[n0:n1] if gz.size else gz
        if rows and C == 1:
            direct_weight_grad_one_channel_add(xs, gys, ys, relu, PT, PL, gW, gb, z)
        elif rows and F == 1:
            direct_weight_grad_one_filter_add(xs, gys, ys, relu, PT, PL, gW, gb, z)
        else:
            direct_weight_grad_add(xs, gys, ys, relu, 1, 1, PT, PL, gW, gb, z)
        return gW, gb

    parts = parallel.run(part, parallel.split(len(x)))
    gW, gb = parts[0]
    for pW, pb in parts[1:]:
        gW += pW
        gb += pb
    return gW, gb, (gz if gz.size else gy)


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
    """y = act(im2col(x) @ W2 + b), by the route ``how`` (default ``route``'s); x (N, H, W, C) -> y (N, OH, OW, F).

    Mirrors ``reference/conv.py: conv2d_forward``, with act = relu if ``relu`` else identity.
    """
    KH, KW, C, F = W.shape
    x = np.ascontiguousarray(x)
    N, H, Wd, _ = x.shape
    OH, OW = _out_hw(H, Wd, KH, KW, SH, SW, pads)
    how = how or route(C, F, SH, SW)
    if how == "direct":
        return _direct_forward(x, np.ascontiguousarray(W), b, pads[0], pads[2], relu, (OH, OW))
    if not how.startswith("im2col") and how != "flipped":
        return _added("conv.forward", how, x, W, b, SH, SW, pads, relu)
    if how == "flipped":                         # GEMM with K = C, then col2im of KH*KW*F per pixel
        y = input_grad(x, _flipped(W), OH, OW, 1, 1, KH - 1 - pads[0], KW - 1 - pads[2], how="im2col")
        if b is not None or relu:
            _bias_relu(y, b, relu)
        return y
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


def input_grad(gy, W, H, Wd, SH, SW, PT, PL, how=None):
    """gx = col2im(gy2 @ W2^T), direct or im2col (never flipped); gy (N, OH, OW, F) -> gx (N, H, Wd, C).

    Mirrors ``reference/conv.py: conv2d_input_grad``; also the transposed convolution's forward pass.
    ``how`` names the route (default: "direct" where ``uses_direct``, else "im2col").
    """
    KH, KW, C, F = W.shape
    gy = np.ascontiguousarray(gy)
    how = how or ("direct" if uses_direct(C, F, SH, SW) else "im2col")
    if how == "direct":
        return _direct_input_grad(gy, W, H, Wd, PT, PL)
    if not how.startswith("im2col"):
        return _added("conv.input_grad", how, gy, W, H, Wd, SH, SW, PT, PL)
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

    _over_chunks(N, R, K, gy.itemsize, chunk, how)
    return gx


def weight_grad(x, gy, W_shape, SH, SW, pads, how=None):
    """gW = sum over chunks of im2col(x_c)^T @ G_c, by the route ``how`` (default ``route``'s): -> (KH, KW, C, F).

    Mirrors ``reference/conv.py: conv2d_weight_grad``.
    """
    KH, KW, C, F = W_shape
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    how = how or route(C, F, SH, SW)
    if how == "direct":
        return _direct_weight_grad(x, gy, None, False, W_shape, pads[0], pads[2], False)[0]
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

    Route "winograd" where ``winograd.applies``, else "direct", "flipped" or "im2col" (``route``),
    the relu fused into it.
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_forward")
    heuristic = ("winograd" if winograd.applies(x.shape, W.shape, strides, pads)   # 3x3 stride 1, wide enough
                 else route(W.shape[2], W.shape[3], SH, SW))
    how, planned = _plan("conv.forward", heuristic, x.shape, W.shape, strides, pads,
                         x.dtype, lambda name: forward(x, W, b, SH, SW, pads, relu, name))
    record("conv2d_forward", planner.label(how, planned))
    return forward(x, W, b, SH, SW, pads, relu, how)


def conv2d_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """(gx, gW, gb) of y = act(conv(x, W) + b), None where not needed; mirrors ``reference/tier.py``.

    Route "direct": one walk over the batch gives gz = gy * [y > 0], gW and gb
    together, then gx by the direct loops. Routes "flipped" (gW flipped, gx by
    im2col) and "im2col": gz in one pass, then each gradient by its own chunked pass.
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_backward")
    _, H, Wd, C = x.shape
    PT, _, PL, _ = pads
    way = route(C, W.shape[3], SH, SW)
    if planner.departs_conv_backward(x.shape, W.shape, strides, pads, gy.dtype, way, need_gx, need_gW):
        gz = _masked_by_relu(gy, y) if relu else gy
        gx, gW, how = _planned_grads(gz, x, W, strides, pads, need_gx, need_gW)
        record("conv2d_backward", how)
        return gx, gW, (_bias_grad(gz) if need_gb else None)
    record("conv2d_backward", planner.label(way, False if planner.active() else None))
    if way == "direct":
        gW, gb, gz = _direct_weight_grad(np.ascontiguousarray(x), np.ascontiguousarray(gy), y, relu,
                                         W.shape, PT, PL, need_gx)
        gx = _direct_input_grad(gz, W, H, Wd, PT, PL) if need_gx else None
        return gx, (gW if need_gW else None), (gb if need_gb else None)
    gz = _masked_by_relu(gy, y) if relu else gy
    gx = input_grad(gz, W, H, Wd, SH, SW, PT, PL) if need_gx else None
    gW = weight_grad(x, gz, W.shape, SH, SW, pads) if need_gW else None
    return gx, gW, (_bias_grad(gz) if need_gb else None)


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
        hx, px = _plan("conv.input_grad", "direct" if uses_direct(C, F, SH, SW) else "im2col", x.shape, W.shape,
                       strides, pads, gz.dtype, lambda name: input_grad(gz, W, H, Wd, SH, SW, PT, PL, name))
        gx = input_grad(gz, W, H, Wd, SH, SW, PT, PL, hx)
        ways.append(("gx", hx, px))
    if need_gW:
        hw, pw = _plan("conv.weight_grad", route(C, F, SH, SW), x.shape, W.shape, strides, pads, gz.dtype,
                       lambda name: weight_grad(x, gz, W.shape, SH, SW, pads, name))
        gW = weight_grad(x, gz, W.shape, SH, SW, pads, hw)
        ways.append(("gW", hw, pw))
    return gx, gW, _ways_label(ways)


def conv2d_transpose_forward(x, W, b, strides, out_hw, pads, activation=None):
    """y = act(conv2d's input gradient of x + b) -> (N, OH, OW, F); mirrors ``reference/tier.py``.

    W (KH, KW, F, C) read as a convolution kernel (OH, OW, F) -> (H, W, C) with
    ``pads``. Route "direct" or "im2col" (the input gradient is never flipped).
    """
    SH, SW = strides
    relu = _relu(activation, "conv2d_transpose_forward")
    x = np.ascontiguousarray(x)
    C, F, N = W.shape[2], W.shape[3], x.shape[0]
    how, planned = _plan("conv.input_grad", "direct" if uses_direct(C, F, SH, SW) else "im2col",
                         (N, *out_hw, C), W.shape, strides, pads, x.dtype,
                         lambda name: input_grad(x, W, out_hw[0], out_hw[1], SH, SW, pads[0], pads[2], name))
    record("conv2d_transpose_forward", planner.label(how, planned))
    y = input_grad(x, W, out_hw[0], out_hw[1], SH, SW, pads[0], pads[2], how)
    if b is not None or relu:
        _bias_relu(y, b, relu)
    return y


def conv2d_transpose_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """(gx, gW, gb) of the transposed convolution, None where not needed; mirrors ``reference/tier.py``.

    gx is the convolution's forward pass of gz, gW its weight gradient with gz as
    the input; both by the route of ``route`` (W read as a convolution kernel).
    """
    SH, SW = strides
    gz = _masked_by_relu(gy, y) if _relu(activation, "conv2d_transpose_backward") else gy
    if planner.active():
        gx, gW, how = _planned_transpose_grads(gz, x, W, strides, pads, need_gx, need_gW)
        record("conv2d_transpose_backward", how)
        return gx, gW, (_bias_grad(gz) if need_gb else None)
    record("conv2d_transpose_backward", route(W.shape[2], W.shape[3], SH, SW))
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
        hx, px = _plan("conv.forward", heuristic, gz.shape, W.shape, strides, pads, gz.dtype,
                       lambda name: forward(gz, W, None, SH, SW, pads, False, name))
        gx = forward(gz, W, None, SH, SW, pads, False, hx)
        ways.append(("gx", hx, px))
    if need_gW:
        hw, pw = _plan("conv.weight_grad", heuristic, gz.shape, W.shape, strides, pads, gz.dtype,
                       lambda name: weight_grad(gz, x, W.shape, SH, SW, pads, name))
        gW = weight_grad(gz, x, W.shape, SH, SW, pads, hw)
        ways.append(("gW", hw, pw))
    return gx, gW, _ways_label(ways)
