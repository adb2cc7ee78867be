"""The planes route for narrow convolutions (kernels/narrow_conv.py, fast/conv.py's "planes") against
a plain-NumPy twin (shifted slices of the padded image, float64) and, through the layers, against the
reference tier. Tolerances from tests/bounds.py: the same computation on |inputs| gives each output's
sum of |products|, times n * eps.

With NUMBA_DISABLE_JIT=1 the loops run as plain Python, so the kernel grid runs on one image of
5x6 instead of two of 6x7 (every (C, F), padding, relu and dtype still runs)."""
import os

import numpy as np
import pytest

from numbanet.fast import conv as fconv
from numbanet.fast import routes, tuning
from numbanet.fast.kernels.narrow_conv import (from_planes_into, masked_to_planes_into, planes_forward_into,
                                               planes_weight_grad_add, to_planes_into)
from numbanet.reference import tier as rtier

from bounds import assert_within, bilinear_bound, eps_of

CF_GRID = [(1, 2), (2, 1), (2, 2), (3, 5), (5, 3), (4, 8), (8, 4), (7, 16), (16, 8), (16, 16), (16, 1), (1, 16)]
PADDINGS = {"same": (1, 1, 1, 1), "valid": (0, 0, 0, 0)}
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def twin(x, W, b, gy, pads, relu):
    """y, gz, gx, gW, gb of a stride-1 convolution in float64, one shifted slice of the padded image per tap.

    x (N, H, Wd, C), W (KH, KW, C, F), b (F,), gy (N, OH, OW, F), pads (PT, PB, PL, PR) >= 0.
    """
    PT, PB, PL, PR = pads
    KH, KW, C, F = W.shape
    N, H, Wd, _ = x.shape
    x, W, b, gy = (np.asarray(a, dtype=np.float64) for a in (x, W, b, gy))
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))
    OH, OW = xp.shape[1] - KH + 1, xp.shape[2] - KW + 1
    z = np.broadcast_to(b, (N, OH, OW, F)).copy()
    for ki in range(KH):
        for kj in range(KW):
            z += xp[:, ki:ki + OH, kj:kj + OW, :] @ W[ki, kj]
    y = np.maximum(z, 0) if relu else z
    gz = gy * (z > 0) if relu else gy
    gxp = np.zeros_like(xp)
    gW = np.zeros_like(W)
    for ki in range(KH):
        for kj in range(KW):
            gxp[:, ki:ki + OH, kj:kj + OW, :] += gz @ W[ki, kj].T
            gW[ki, kj] = np.einsum("nhwc,nhwf->cf", xp[:, ki:ki + OH, kj:kj + OW, :], gz)
    return y, gz, gxp[:, PT:PT + H, PL:PL + Wd, :], gW, gz.sum(axis=(0, 1, 2))


def twin_bounds(x, W, b, gy, pads, eps=None):
    """Bounds on y, gx, gW, gb: n * eps * (the twin on |x|, |W|, |b|, |gy|), n the terms of each sum;
    eps that of x unless given."""
    KH, KW, C, F = W.shape
    eps = eps_of(x) if eps is None else eps
    y, _, gx, gW, gb = twin(np.abs(x), np.abs(W), np.abs(b), np.abs(gy), pads, False)
    n_pixels = gy.shape[0] * gy.shape[1] * gy.shape[2]
    return (bilinear_bound(y, KH * KW * C + 1, eps), bilinear_bound(gx, KH * KW * F, eps),
            bilinear_bound(gW, n_pixels, eps), bilinear_bound(gb, n_pixels, eps))


def case(C, F, padding, dtype, relu, N=2, H=6, Wd=7, K=3, seed=0):
    """x, W, b, gy, pads; with relu, x, W, b are small integers, so that every pre-activation is exact in
    both precisions and the twin and the kernels take the same side of the relu (0 included)."""
    rng = np.random.default_rng(seed + 100 * C + F)
    pads = PADDINGS[padding] if K == 3 else ((K - 1) // 2, K // 2, (K - 1) // 2, K // 2)
    if padding == "valid":
        pads = (0, 0, 0, 0)
    if relu:
        x = rng.integers(-3, 4, (N, H, Wd, C)).astype(dtype)
        W = rng.integers(-2, 3, (K, K, C, F)).astype(dtype)
        b = rng.integers(-2, 3, F).astype(dtype)
    else:
        x = rng.standard_normal((N, H, Wd, C)).astype(dtype)
        W = rng.standard_normal((K, K, C, F)).astype(dtype)
        b = rng.standard_normal(F).astype(dtype)
    OH, OW = H + pads[0] + pads[1] - K + 1, Wd + pads[2] + pads[3] - K + 1
    gy = rng.standard_normal((N, OH, OW, F)).astype(dtype)
    return x, W, b, gy, pads


# ------------------------------------------------------------------ the kernels, one chunk
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("C,F", CF_GRID)
def test_plane_kernels_match_the_twin(C, F, padding, relu, dtype):
    x, W, b, gy, pads = case(C, F, padding, dtype, relu, **(dict(N=1, H=5, Wd=6) if NO_JIT else {}))
    N, KH, KW = x.shape[0], W.shape[0], W.shape[1]
    OH, OW = gy.shape[1:3]
    y_t, gz_t, gx_t, gW_t, _ = twin(x, W, b, gy, pads, relu)
    b_y, b_gx, b_gW, _ = twin_bounds(x, W, b, gy, pads)
    Hp, Wp = OH + KH - 1, OW + KW - 1
    L, extra = Hp * Wp, (KH - 1) * Wp + KW - 1
    XP = np.full((C, N * L + extra), np.nan, dtype)          # every cell must be written
    to_planes_into(x, 0, N, pads[0], pads[2], Hp, Wp, XP)
    YP = np.full((F, N * L), np.nan, dtype)
    T = (N - 1) * L + OH * Wp
    planes_forward_into(XP, W, b, Wp, T, YP)
    y = np.full(gy.shape, np.nan, dtype)
    from_planes_into(YP, 0, N, Hp, Wp, relu, y)
    assert_within(y, y_t, b_y, "y")

    gz = gz_t.astype(dtype)                                   # the masked gradient, exact in dtype
    GP = np.full((F, N * L), np.nan, dtype)
    masked_to_planes_into(gz, gz, False, 0, N, 0, 0, Hp, Wp, GP)   # no mask, no pads
    gW = np.zeros_like(W)
    planes_weight_grad_add(XP, GP, Wp, T, gW)
    assert_within(gW, gW_t, b_gW, "gW")
    planes_weight_grad_add(XP, GP, Wp, T, gW)                 # it adds: twice the gradient
    assert_within(gW, 2 * gW_t, 2 * b_gW + 2 * eps_of(x) * np.abs(2 * gW_t), "2 gW")

    # the input gradient: the forward loops on gz with the flipped kernel, pads K-1-P
    H, Wd = x.shape[1:3]
    Hq, Wq = H + KH - 1, Wd + KW - 1
    Lq = Hq * Wq
    GQ = np.full((F, N * Lq + (KH - 1) * Wq + KW - 1), np.nan, dtype)
    to_planes_into(gz, 0, N, KH - 1 - pads[0], KW - 1 - pads[2], Hq, Wq, GQ)
    XQ = np.full((C, N * Lq), np.nan, dtype)
    Wf = np.ascontiguousarray(W[::-1, ::-1].transpose(0, 1, 3, 2))
    planes_forward_into(GQ, Wf, np.zeros(C, dtype), Wq, (N - 1) * Lq + H * Wq, XQ)
    gx = np.full(x.shape, np.nan, dtype)
    from_planes_into(XQ, 0, N, Hq, Wq, False, gx)
    assert_within(gx, gx_t, b_gx, "gx")


@pytest.mark.parametrize("K", [1, 2, 4, 5])
@pytest.mark.parametrize("C,F", [(3, 2), (2, 5)])
def test_other_kernel_sizes_match_the_twin(K, C, F):
    """Kernels other than 3x3 take the one-tap-per-loop path of planes_forward_into / planes_weight_grad_add."""
    x, W, b, gy, pads = case(C, F, "same", np.float64, False, H=7, Wd=6, K=K)
    y_t, _, gx_t, gW_t, gb_t = twin(x, W, b, gy, pads, False)
    b_y, b_gx, b_gW, _ = twin_bounds(x, W, b, gy, pads)
    assert_within(fconv.forward(x, W, b, 1, 1, pads, False, "planes"), y_t, b_y, "y")
    assert_within(fconv.input_grad(gy, W, 7, 6, 1, 1, pads[0], pads[2], "planes"), gx_t, b_gx, "gx")
    assert_within(fconv.weight_grad(x, gy, W.shape, 1, 1, pads, "planes"), gW_t, b_gW, "gW")


def test_to_planes_crops_rows_and_columns_past_the_plane():
    """Negative bottom/right padding (an input larger than the windows reach): the extra cells are left out."""
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float64).reshape(2, 4, 5, 3)
    Hp, Wp, PT, PL = 4, 5, 1, 2              # rows 0..2 and columns 0..2 of x fit
    XP = np.full((3, 2 * Hp * Wp + 3), np.nan)
    to_planes_into(x, 0, 2, PT, PL, Hp, Wp, XP)
    want = np.zeros((3, 2, Hp, Wp))
    want[:, :, PT:, PL:] = x[:, :Hp - PT, :Wp - PL, :].transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(XP[:, :2 * Hp * Wp].reshape(3, 2, Hp, Wp), want)
    np.testing.assert_array_equal(XP[:, 2 * Hp * Wp:], 0)


# ------------------------------------------------------------------ the drivers: chunks and threads
@pytest.mark.parametrize("chunk_bytes", [1, 4096, 1 << 20])
@pytest.mark.parametrize("C,F,padding", [(3, 5, "same"), (16, 8, "valid"), (5, 1, "same")])
def test_planes_route_over_chunks_and_threads(monkeypatch, chunk_bytes, C, F, padding):
    """One image per chunk, a few, or the whole batch: the same y, gx, gW (the batch split over 2 threads)."""
    monkeypatch.setattr(tuning, "PLANES_CHUNK_BYTES", chunk_bytes)
    x, W, b, gy, pads = case(C, F, padding, np.float32, True, N=5, H=7, Wd=6)
    y_t, gz_t, gx_t, gW_t, _ = twin(x, W, b, gy, pads, True)
    b_y, b_gx, b_gW, _ = twin_bounds(x, W, b, gy, pads)
    gz = gz_t.astype(np.float32)
    assert_within(fconv.forward(x, W, b, 1, 1, pads, True, "planes"), y_t, b_y, "y")
    assert_within(fconv.input_grad(gz, W, 7, 6, 1, 1, pads[0], pads[2], "planes"), gx_t, b_gx, "gx")
    assert_within(fconv.weight_grad(x, gz, W.shape, 1, 1, pads, "planes"), gW_t, b_gW, "gW")


def test_planes_falls_back_where_it_does_not_apply():
    """Stride 2, or a top pad over K-1: how="planes" runs the route of the other rules instead."""
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((2, 9, 9, 3)), rng.standard_normal((3, 3, 3, 4))
    pads = (1, 1, 1, 1)
    want = fconv.forward(x, W, None, 2, 2, pads, False, "im2col").copy()
    got = fconv.forward(x, W, None, 2, 2, pads, False, "planes")
    assert_within(got, want, 1e-12 * (1 + np.abs(want)), "stride 2")
    big = (3, 0, 0, 0)                              # PT = 3 > K - 1: an explicit pad Keras never makes
    want = fconv.forward(x, W, None, 1, 1, big, False, "im2col").copy()
    assert_within(fconv.forward(x, W, None, 1, 1, big, False, "planes"), want, 1e-12 * (1 + np.abs(want)), "pad")


def test_route_rule():
    assert fconv.route(16, 8, 1, 1) == "planes" and fconv.route(8, 16, 1, 1) == "planes"
    assert fconv.route(16, 1, 1, 1) == "planes" and fconv.route(2, 2, 1, 1) == "planes"
    assert fconv.route(1, 16, 1, 1) == "direct"              # one channel: the fused direct walk
    assert fconv.route(32, 64, 1, 1) == "im2col" and fconv.route(32, 16, 1, 1) == "flipped"
    assert fconv.route(16, 8, 2, 2) == "im2col"              # strided
    assert fconv.input_route(1, 16, 1, 1) == "planes" and fconv.input_route(32, 16, 1, 1) == "im2col"
    assert fconv.forward_route(1, 16, 1, 1) == "planes" and fconv.forward_route(1, 17, 1, 1) == "direct"
    assert fconv.forward_route(16, 8, 1, 1) == "planes" and fconv.forward_route(1, 16, 2, 2) == "im2col"
    assert "planes" in fconv.candidates("conv.input_grad", 16, 8, 1, 1)
    assert "planes" not in fconv.candidates("conv.forward", 32, 64, 1, 1)


# ------------------------------------------------------------------ through the layers, against the reference tier
LAYER_CASES = [(16, 8, "same"), (8, 16, "valid"), (3, 5, "same"), (16, 1, "same"), (4, 4, "valid")]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("C,F,padding", LAYER_CASES)
def test_conv2d_planes_against_reference_tier(C, F, padding, relu):
    x, W, b, gy, pads = case(C, F, padding, np.float32, relu, N=3, H=8, Wd=7, seed=5)
    act = "relu" if relu else None
    y = fconv.conv2d_forward(x, W, b, (1, 1), pads, act).copy()
    assert routes.last("conv2d_forward") == "planes"
    y_r = rtier.conv2d_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64), (1, 1), pads, act)
    b_y, b_gx, b_gW, b_gb = twin_bounds(x, W, b, gy, pads)
    assert_within(y, y_r, b_y, "y")
    gx, gW, gb = fconv.conv2d_backward(gy, x, W, y, (1, 1), pads, act)
    assert routes.last("conv2d_backward") == "planes"
    g_r = rtier.conv2d_backward(gy.astype(np.float64), x.astype(np.float64), W.astype(np.float64), y_r,
                                (1, 1), pads, act)
    for got, want, bound, name in zip((gx, gW, gb), g_r, (b_gx, b_gW, b_gb), ("gx", "gW", "gb")):
        assert_within(got, want, bound, name)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("C,F,padding", LAYER_CASES + [(1, 16, "valid")])
def test_conv2d_transpose_planes_against_reference_tier(C, F, padding, relu):
    """The transposed convolution with kernel W (K, K, C, F) read as a convolution (H, W, C) -> (OH, OW, F):
    its forward pass is that convolution's input gradient, its backward the convolution's forward pass and
    weight gradient, all by the planes loops (one input channel: the forward pass, the input gradient).
    With both gradients asked for, the backward is one walk over the batch (``_planes_weight_grad`` with W)."""
    conv_x, W, b_conv, conv_gy, pads = case(C, F, padding, np.float32, relu, N=3, H=8, Wd=7, seed=9)
    x = conv_gy                                         # the transposed layer's input: (N, OH, OW, F)
    b = b_conv[:1].repeat(C) if relu else np.random.default_rng(2).standard_normal(C).astype(np.float32)
    if relu:
        x = np.round(x * 2).astype(np.float32)          # small integers again: exact pre-activations
    out_hw = conv_x.shape[1:3]
    act = "relu" if relu else None
    y = fconv.conv2d_transpose_forward(x, W, b, (1, 1), out_hw, pads, act).copy()
    assert routes.last("conv2d_transpose_forward") == "planes"
    x64, W64, b64 = x.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    y_r = rtier.conv2d_transpose_forward(x64, W64, b64, (1, 1), out_hw, pads, act)
    # bounds: the transposed forward is the convolution's input gradient of x, plus b
    _, b_gx, _, _ = twin_bounds(conv_x, W, np.zeros(F, np.float32), x, pads)
    eps = eps_of(x)
    assert_within(y, y_r, b_gx + 2 * eps * np.abs(b64), "y")
    gy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    gx, gW, gb = fconv.conv2d_transpose_backward(gy, x, W, y, (1, 1), pads, act)
    gx_r, gW_r, gb_r = rtier.conv2d_transpose_backward(gy.astype(np.float64), x64, W64, y_r, (1, 1), pads, act)
    gz = gy.astype(np.float64) * (y_r > 0) if relu else gy.astype(np.float64)
    b_fwd, _, b_gW, _ = twin_bounds(gz, W, np.zeros(F), x, pads, eps)          # gx = conv(gz, W), gW = conv's gW
    n_pix = gz.shape[0] * gz.shape[1] * gz.shape[2]
    assert_within(gx, gx_r, b_fwd, "gx")
    assert_within(gW, gW_r, b_gW, "gW")
    assert_within(gb, gb_r, bilinear_bound(np.abs(gz).sum(axis=(0, 1, 2)), n_pix, eps), "gb")


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False), (False, False, True),
                                  (False, True, True)])
@pytest.mark.parametrize("C,F,padding", [(16, 8, "same"), (3, 5, "valid")])
def test_planes_backward_gives_only_what_is_asked(C, F, padding, need):
    """The one-walk backward (``_planes_backward``) with each gradient on its own: None for the others,
    the reference tier's value for the ones asked for (relu on, so the mask is applied on the way)."""
    x, W, b, gy, pads = case(C, F, padding, np.float32, True, N=3, H=7, Wd=8, seed=11)
    y = fconv.conv2d_forward(x, W, b, (1, 1), pads, "relu").copy()
    got = fconv.conv2d_backward(gy, x, W, y, (1, 1), pads, "relu", *need)
    assert routes.last("conv2d_backward") == "planes"
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    y_r = rtier.conv2d_forward(x64, W64, b.astype(np.float64), (1, 1), pads, "relu")
    want = rtier.conv2d_backward(gy.astype(np.float64), x64, W64, y_r, (1, 1), pads, "relu", *need)
    _, b_gx, b_gW, b_gb = twin_bounds(x, W, b, gy, pads)
    for g, r, bound, asked, name in zip(got, want, (b_gx, b_gW, b_gb), need, ("gx", "gW", "gb")):
        assert (g is None) == (not asked), name
        if asked:
            assert_within(g, r, bound, name)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_one_channel_forward_by_planes_backward_by_direct(padding, relu):
    """One input channel: the forward pass by the planes loops (``forward_route``), the backward by the
    direct loops' fused walk (``route``), against the reference tier."""
    x, W, b, gy, pads = case(1, 6, padding, np.float32, relu, N=3, H=9, Wd=7, seed=13)
    act = "relu" if relu else None
    y = fconv.conv2d_forward(x, W, b, (1, 1), pads, act).copy()
    assert routes.last("conv2d_forward") == "planes"
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    y_r = rtier.conv2d_forward(x64, W64, b.astype(np.float64), (1, 1), pads, act)
    b_y, b_gx, b_gW, b_gb = twin_bounds(x, W, b, gy, pads)
    assert_within(y, y_r, b_y, "y")
    got = fconv.conv2d_backward(gy, x, W, y, (1, 1), pads, act)
    assert routes.last("conv2d_backward") == "direct"
    want = rtier.conv2d_backward(gy.astype(np.float64), x64, W64, y_r, (1, 1), pads, act)
    for g, r, bound, name in zip(got, want, (b_gx, b_gW, b_gb), ("gx", "gW", "gb")):
        assert_within(g, r, bound, name)


@pytest.mark.parametrize("need", [(True, True, False), (True, True, True), (True, False, True), (False, True, False)])
def test_transposed_planes_backward_gives_only_what_is_asked(need):
    """The transposed convolution's backward with relu: the one walk (gx and gW both asked for, gz masked on its
    way into the planes, gb from the same planes) and the separate passes give None for what is not asked and
    the reference tier's value for the rest."""
    C, F = 4, 8
    conv_x, W, b_conv, x, pads = case(C, F, "valid", np.float32, True, N=3, H=8, Wd=7, seed=13)
    x = np.round(x * 2).astype(np.float32)
    b = b_conv[:1].repeat(C)
    out_hw = conv_x.shape[1:3]
    y = fconv.conv2d_transpose_forward(x, W, b, (1, 1), out_hw, pads, "relu").copy()
    gy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    got = fconv.conv2d_transpose_backward(gy, x, W, y, (1, 1), pads, "relu", *need)
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    y_r = rtier.conv2d_transpose_forward(x64, W64, b.astype(np.float64), (1, 1), out_hw, pads, "relu")
    want = rtier.conv2d_transpose_backward(gy.astype(np.float64), x64, W64, y_r, (1, 1), pads, "relu")
    gz = gy.astype(np.float64) * (y_r > 0)
    eps = eps_of(x)
    b_fwd, _, b_gW, _ = twin_bounds(gz, W, np.zeros(F), x, pads, eps)
    b_gb = bilinear_bound(np.abs(gz).sum(axis=(0, 1, 2)), gz.shape[0] * gz.shape[1] * gz.shape[2], eps)
    for asked, g, w, bound, name in zip(need, got, want, (b_fwd, b_gW, b_gb), ("gx", "gW", "gb")):
        if asked:
            assert_within(g, w, bound, name)
        else:
            assert g is None, name
