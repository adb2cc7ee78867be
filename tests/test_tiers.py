"""Each tier tests the other: the reference tier (numbanet/reference/) against the fast engine.

Every property draws shapes, strides, paddings, dtypes and the configurations that
switch the fast tier's routes (one input channel or one filter -> direct loops; fewer
filters than channels at stride 1 -> flipped convolution; stride > 1 -> im2col; tiny
chunks; two threads), runs the same computation through both tiers, and compares
them within a bound on the rounding error, never a tolerance found by trial:

* a sum of n products computed in any order differs from the exact value by at most
  about n u sum|terms| (u = eps / 2, the unit roundoff), so two such sums differ by at
  most n eps sum|terms|. sum|terms| is the same computation on absolute values,
  which the reference computes in float64 (``magnitude``);
* an elementwise formula of k roundings (and library exp/log, within a few ulp)
  differs by a few eps times the sizes of its intermediates.

The second half checks each reference backward on its own against central finite
differences in float64: the reference must be right, not only equal to the fast tier.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bounds import bilinear_bound

import numbanet as nb
from numbanet import losses as fast_losses
from numbanet import optimizers as fast_optimizers
from numbanet.engine import Tensor, conv as fast_conv, conv_shapes, functional as Fn, ops
from numbanet.fast import parallel, routes, tuning
from numbanet.fast import tier as fast_tier
from numbanet.reference import (activations as A, conv as rc, embedding as re_, linear as rl, losses as rloss,
                                optimizers as ropt, padding as rpad, pooling as rpool, recurrent as rrnn,
                                upsample as rup)
from numbanet.reference import tier as ref_tier

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
DTYPES = st.sampled_from([np.float32, np.float64])


def eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_within(got, ref, bound, what):
    """|got - ref| <= bound elementwise; the message names the worst element and the shapes."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} vs reference {ref.shape}"
    excess = np.abs(got - ref) - bound
    if excess.size and excess.max() > 0:
        i = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(f"{what} {got.shape}: at {i} fast {got[i]!r} vs reference {ref[i]!r}, "
                             f"|diff| {abs(got[i] - ref[i]):.3g} > bound {np.broadcast_to(bound, got.shape)[i]:.3g}")


def f64abs(*arrays):
    return [None if a is None else np.abs(np.asarray(a, np.float64)) for a in arrays]


@contextmanager
def fast_route(threads=1, chunk_bytes=None):
    """Run the fast tier on ``threads`` threads and, if given, with cache chunks of ``chunk_bytes``."""
    saved = tuning.CHUNK_BYTES
    parallel.set_num_threads(threads)
    if chunk_bytes is not None:
        tuning.CHUNK_BYTES = chunk_bytes
    try:
        yield
    finally:
        tuning.CHUNK_BYTES = saved
        parallel.set_num_threads(1)


def run_fast(fn, arrays, gy):
    """y, then the gradient of sum(gy * y) for every array input, through the engine's graph."""
    ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(gy)
    return y.data, [None if t is None else t.grad for t in ts]


# ---------------------------------------------------------------- padding rules
@SETTINGS
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4),
       st.integers(1, 4), st.sampled_from(["valid", "same"]), st.one_of(st.none(), st.integers(0, 3)))
def test_padding_rules_agree(H, W, KH, KW, SH, SW, padding, op):
    assert rpad.conv_pads(H, W, KH, KW, SH, SW, padding) == conv_shapes.conv_pads(H, W, KH, KW, SH, SW, padding)
    PT, PB, _, _ = rpad.conv_pads(H, W, KH, KW, SH, SW, padding)
    if padding == "same" or H >= KH:
        assert rpad.out_size(H, KH, SH, PT, PB) == conv_shapes.conv_output_size(H, KH, SH, padding)
    assert rpad.transpose_out_size(H, KH, SH, padding, op) == conv_shapes.transpose_output_size(H, KH, SH, padding, op)
    OH = rpad.transpose_out_size(H, KH, SH, padding, op)
    assert rpad.transpose_pads(H, W, OH, OH, KH, KW, SH, SW, padding)[0] == \
        conv_shapes.transpose_pad_before(H, OH, KH, SH, padding)


# ------------------------------------------------------------------ convolution
@st.composite
def conv_case(draw):
    """Shapes that take each fast route: C or F = 1 (direct), F < C at stride 1 (flipped), strides > 1."""
    N, C, F = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 2, 4]))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    SH, SW = draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.sampled_from(["valid", "same", "explicit"]))
    if padding == "explicit":
        padding = tuple(draw(st.integers(0, k - 1)) for k in (KH, KH, KW, KW))
    return dict(N=N, C=C, F=F, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, padding=padding,
                dtype=draw(DTYPES), relu=draw(st.booleans()), bias=draw(st.booleans()),
                chunk=draw(st.sampled_from([None, 64])), threads=draw(st.sampled_from([1, 2])),
                seed=draw(st.integers(0, 2 ** 16)))


@SETTINGS
@given(conv_case())
def test_conv2d_tiers_agree(c):
    rng = np.random.default_rng(c["seed"])
    dt, KH, KW, SH, SW, F = c["dtype"], c["KH"], c["KW"], c["SH"], c["SW"], c["F"]
    pads = rpad.conv_pads(c["H"], c["W"], KH, KW, SH, SW, c["padding"])
    OH, OW = rpad.out_size(c["H"], KH, SH, pads[0], pads[1]), rpad.out_size(c["W"], KW, SW, pads[2], pads[3])
    assume(OH >= 1 and OW >= 1)
    x = rng.standard_normal((c["N"], c["H"], c["W"], c["C"])).astype(dt)
    Wk = rng.standard_normal((KH, KW, c["C"], F)).astype(dt)
    b = rng.standard_normal(F).astype(dt) if c["bias"] else None
    gy = rng.standard_normal((c["N"], OH, OW, F)).astype(dt)
    # reference: convolution, then relu as its own step
    z = rc.conv2d_forward(x, Wk, b, SH, SW, pads)
    ax, aW, ab = f64abs(x, Wk, b)
    K = KH * KW * c["C"]
    bound_z = (K + 2) * eps(dt) * rc.conv2d_forward(ax, aW, ab, SH, SW, pads)
    if c["relu"]:   # where z is within rounding of the kink the two tiers may mask differently: no gradient there
        gy = np.where(np.abs(z) <= bound_z, 0, gy).astype(dt)
        y_ref, gz = A.relu(z), gy * A.d_relu(A.relu(z))
    else:
        y_ref, gz = z, gy
    gx_ref, gW_ref, gb_ref = rc.conv2d_backward(gz, x, Wk, SH, SW, pads)
    with fast_route(c["threads"], c["chunk"]):
        y, (gx, gW, gb) = run_fast(lambda x, W, b: fast_conv.conv2d(x, W, b, (SH, SW), c["padding"],
                                                                          "relu" if c["relu"] else None),
                                   [x, Wk, b], gy)
    agz = np.abs(gz.astype(np.float64))
    assert y.dtype == gx.dtype == gW.dtype == dt
    assert_within(y, y_ref, bound_z, "conv2d y")
    assert_within(gx, gx_ref, (F * KH * KW + 1) * eps(dt) *
                  rc.conv2d_input_grad(agz, aW, c["H"], c["W"], SH, SW, pads[0], pads[2]), "conv2d gx")
    R = c["N"] * OH * OW
    assert_within(gW, gW_ref, (R + 1) * eps(dt) * rc.conv2d_weight_grad(ax, agz, Wk.shape, SH, SW, pads), "conv2d gW")
    if b is not None:
        assert_within(gb, gb_ref, (R + 1) * eps(dt) * rc.conv2d_bias_grad(agz), "conv2d gb")


@SETTINGS
@given(conv_case(), st.one_of(st.none(), st.integers(0, 2)))
def test_conv2d_transpose_tiers_agree(c, op):
    rng = np.random.default_rng(c["seed"])
    dt, KH, KW, SH, SW, F, C = c["dtype"], c["KH"], c["KW"], c["SH"], c["SW"], c["F"], c["C"]
    padding = c["padding"] if isinstance(c["padding"], str) else "same"
    x = rng.standard_normal((c["N"], c["H"], c["W"], C)).astype(dt)
    Wk = rng.standard_normal((KH, KW, F, C)).astype(dt)          # Keras layout: filters before inputs
    b = rng.standard_normal(F).astype(dt) if c["bias"] else None
    ops_ = None if op is None else (min(op, SH - 1), min(op, SW - 1))
    try:
        probe = fast_conv.conv2d_transpose(Tensor(x), Tensor(Wk), None, (SH, SW), padding, ops_)
    except ValueError:                      # a configuration Keras rejects too (tested in test_conv_keras)
        assume(False)
    OH, OW = probe.shape[1:3]
    assert (OH, OW) == (rpad.transpose_out_size(c["H"], KH, SH, padding, None if ops_ is None else ops_[0]),
                        rpad.transpose_out_size(c["W"], KW, SW, padding, None if ops_ is None else ops_[1]))
    pads = rpad.transpose_pads(c["H"], c["W"], OH, OW, KH, KW, SH, SW, padding)
    z = rc.conv2d_transpose_forward(x, Wk, b, OH, OW, SH, SW, pads)
    ax, aW, ab = f64abs(x, Wk, b)
    bound_z = (C * KH * KW + 2) * eps(dt) * rc.conv2d_transpose_forward(ax, aW, ab, OH, OW, SH, SW, pads)
    gy = rng.standard_normal((c["N"], OH, OW, F)).astype(dt)
    if c["relu"]:
        gy = np.where(np.abs(z) <= bound_z, 0, gy).astype(dt)
        y_ref, gz = A.relu(z), gy * A.d_relu(A.relu(z))
    else:
        y_ref, gz = z, gy
    gx_ref, gW_ref, gb_ref = rc.conv2d_transpose_backward(gz, x, Wk, SH, SW, pads)
    with fast_route(c["threads"], c["chunk"]):
        y, (gx, gW, gb) = run_fast(lambda x, W, b: fast_conv.conv2d_transpose(x, W, b, (SH, SW), padding, ops_,
                                                                               "relu" if c["relu"] else None),
                                   [x, Wk, b], gy)
    agz = np.abs(gz.astype(np.float64))
    assert_within(y, y_ref, bound_z, "conv2d_transpose y")
    assert_within(gx, gx_ref, (KH * KW * F + 1) * eps(dt) * rc.conv2d_forward(agz, aW, None, SH, SW, pads),
                  "conv2d_transpose gx")
    R = c["N"] * c["H"] * c["W"]
    assert_within(gW, gW_ref, (R + 1) * eps(dt) * rc.conv2d_weight_grad(agz, ax, Wk.shape, SH, SW, pads),
                  "conv2d_transpose gW")
    if b is not None:
        assert_within(gb, gb_ref, (c["N"] * OH * OW + 1) * eps(dt) * rc.conv2d_bias_grad(agz), "conv2d_transpose gb")


# --------------------------------------------------------------- pooling, upsampling
@SETTINGS
@given(st.integers(1, 2), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 4), st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       st.sampled_from(["valid", "same"]), DTYPES, st.booleans(), st.integers(0, 2 ** 16))
def test_max_pool_tiers_agree(N, H, W, C, KH, KW, strides, padding, dt, ties, seed):
    assume(padding == "same" or (H >= KH and W >= KW))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C))
    x = (np.round(x) if ties else x).astype(dt)             # ties: the first maximum must win in both tiers
    SH, SW = strides or (KH, KW)
    PT, PB, PL, PR = rpad.conv_pads(H, W, KH, KW, SH, SW, padding)
    OH, OW = rpad.out_size(H, KH, SH, PT, PB), rpad.out_size(W, KW, SW, PL, PR)
    gy = rng.standard_normal((N, OH, OW, C)).astype(dt)
    y_ref, arg_ref = rpool.max_pool2d_forward(x, KH, KW, SH, SW, PT, PL, OH, OW)
    gx_ref = rpool.max_pool2d_backward(gy, arg_ref, KH, KW, SH, SW, PT, PL, H, W)
    xt = Tensor(x, requires_grad=True)
    yt = Fn.max_pool2d(xt, (KH, KW), strides, padding)
    yt.backward(gy)
    np.testing.assert_array_equal(yt.data, y_ref)              # a maximum is exact: no rounding at all
    np.testing.assert_array_equal(yt.creator.arg, arg_ref)
    # overlapping windows add up to KH*KW gradients in each cell
    bound = KH * KW * eps(dt) * rpool.max_pool2d_backward(np.abs(gy.astype(np.float64)), arg_ref, KH, KW, SH, SW,
                                                          PT, PL, H, W)
    assert_within(xt.grad, gx_ref, bound, "max_pool gx")


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 4), st.sampled_from(["nearest", "bilinear"]), DTYPES, st.integers(0, 2 ** 16))
def test_upsample_tiers_agree(N, H, W, C, SH, SW, interpolation, dt, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dt)
    gy = rng.standard_normal((N, H * SH, W * SW, C)).astype(dt)
    xt = Tensor(x, requires_grad=True)
    yt = Fn.upsample2d(xt, (SH, SW), interpolation)
    yt.backward(gy)
    ax, agy = f64abs(x, gy)
    if interpolation == "nearest":
        np.testing.assert_array_equal(yt.data, rup.upsample_nearest_forward(x, SH, SW))   # a copy
        bound = SH * SW * eps(dt) * rup.upsample_nearest_backward(agy, SH, SW)
        assert_within(xt.grad, rup.upsample_nearest_backward(gy, SH, SW), bound, "nearest gx")
    else:
        # forward: 4 taps, each weight a product of two, a 4-term sum, one final rounding
        assert_within(yt.data, rup.upsample_bilinear_forward(x, SH, SW),
                      8 * eps(dt) * rup.upsample_bilinear_forward(ax, SH, SW), "bilinear y")
        # backward: a cell gathers at most (2 SH + 2)(2 SW + 2) weighted terms (edge clamping adds 2)
        n = (2 * SH + 2) * (2 * SW + 2) + 4
        assert_within(xt.grad, rup.upsample_bilinear_backward(gy, SH, SW),
                      n * eps(dt) * rup.upsample_bilinear_backward(agy, SH, SW), "bilinear gx")


# ============================== convolution, pooling, upsampling: the protocol functions of both tiers
# Each protocol function of numbanet/fast/tier.py against the same-named one of
# numbanet/reference/tier.py, on the route-triggering configurations of conv_case
# (one channel, one filter, fewer filters than channels at stride 1, strides > 1,
# 64-byte chunks, two threads), and the route the fast tier recorded for it.
def expected_route(C, F, SH, SW):
    """The fast tier's documented rule (numbanet/fast/conv.py), restated: planes, direct, flipped, im2col."""
    if SH == SW == 1 and C >= 2 and max(C, F) <= 16:
        return "planes"
    if SH == SW == 1 and min(C, F) == 1:
        return "direct"
    return "flipped" if SH == SW == 1 and F < C else "im2col"


def expected_forward_route(C, F, SH, SW):
    """A forward pass's rule: ``expected_route``, except that one input channel takes planes too (up to 16 filters)."""
    if SH == SW == 1 and C == 1 and F <= 16:
        return "planes"
    return expected_route(C, F, SH, SW)


def expected_input_route(C, F, SH, SW):
    """The input gradient's rule (a transposed convolution's forward pass): planes, direct, im2col; never flipped."""
    if SH == SW == 1 and max(C, F) <= 16:
        return "planes"
    return "direct" if SH == SW == 1 and min(C, F) == 1 else "im2col"


def assert_grads_within(got, ref, bounds, what):
    """Both tiers return None for the same gradients, and the others agree within their bounds."""
    for name, g, r, bound in zip(("gx", "gW", "gb"), got, ref, bounds):
        assert (g is None) == (r is None), f"{what} {name}: fast gives {g is None and 'None'}, reference {r is None}"
        if r is not None:
            assert g.dtype == r.dtype, f"{what} {name}: dtype {g.dtype} vs reference {r.dtype}"
            assert_within(g, r, bound, f"{what} {name}")


# one configuration per route and split, so that each runs on every test run (not only when drawn):
# (C, F, strides, chunk bytes, threads) -> the route; padding "same", 2 images, float32 and float64
ROUTE_CASES = [(1, 4, (1, 1), None, 1, "direct"), (17, 1, (1, 1), 64, 2, "direct"),
               (17, 2, (1, 1), None, 2, "flipped"), (18, 3, (1, 1), 64, 1, "flipped"),
               (17, 20, (1, 1), 64, 2, "im2col"), (1, 4, (2, 1), None, 2, "im2col"), (5, 2, (1, 2), 64, 1, "im2col"),
               (5, 2, (1, 1), None, 2, "planes"), (3, 4, (1, 1), 64, 1, "planes"), (5, 1, (1, 1), 64, 2, "planes")]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("C,F,strides,chunk,threads,route", ROUTE_CASES)
def test_conv_protocol_each_route(C, F, strides, chunk, threads, route, dt):
    assert expected_route(C, F, *strides) == route
    for relu in (False, True):
        c = dict(N=2, C=C, F=F, H=6, W=5, KH=3, KW=2, SH=strides[0], SW=strides[1], padding="same", dtype=dt,
                 relu=relu, bias=True, chunk=chunk, threads=threads, seed=C * 10 + F)
        assert check_conv2d_protocol(c, True, True) and check_conv2d_transpose_protocol(c, None, True, True)


@SETTINGS
@given(conv_case(), st.booleans(), st.booleans())
def test_conv2d_protocol_tiers_agree(c, need_gx, need_gW):
    assume(check_conv2d_protocol(c, need_gx, need_gW))


def check_conv2d_protocol(c, need_gx, need_gW):
    """Both tiers' conv2d_forward and conv2d_backward on case ``c``; False if its sizes are not a convolution."""
    rng = np.random.default_rng(c["seed"])
    dt, KH, KW, SH, SW, C, F = c["dtype"], c["KH"], c["KW"], c["SH"], c["SW"], c["C"], c["F"]
    pads = rpad.conv_pads(c["H"], c["W"], KH, KW, SH, SW, c["padding"])
    OH, OW = rpad.out_size(c["H"], KH, SH, pads[0], pads[1]), rpad.out_size(c["W"], KW, SW, pads[2], pads[3])
    if OH < 1 or OW < 1:
        return False
    x = rng.standard_normal((c["N"], c["H"], c["W"], C)).astype(dt)
    Wk = rng.standard_normal((KH, KW, C, F)).astype(dt)
    b = rng.standard_normal(F).astype(dt) if c["bias"] else None
    act = "relu" if c["relu"] else None
    K, R, e = KH * KW * C, c["N"] * OH * OW, eps(dt)
    ax, aW, ab = f64abs(x, Wk, b)
    bound_y = bilinear_bound(rc.conv2d_forward(ax, aW, ab, SH, SW, pads), K + 1, e)   # K products and the bias
    y_ref = ref_tier.conv2d_forward(x, Wk, b, (SH, SW), pads, act)
    gy = rng.standard_normal((c["N"], OH, OW, F)).astype(dt)
    if act:   # a pre-activation within rounding of the kink may be masked differently: no gradient there
        gy[np.abs(rc.conv2d_forward(x, Wk, b, SH, SW, pads)) <= bound_y] = 0
    flags = (need_gx, need_gW, b is not None)
    ref = ref_tier.conv2d_backward(gy, x, Wk, y_ref, (SH, SW), pads, act, *flags)
    with fast_route(c["threads"], c["chunk"]):
        y = fast_tier.conv2d_forward(x, Wk, b, (SH, SW), pads, act)
        assert routes.last("conv2d_forward") == expected_forward_route(C, F, SH, SW)
        got = fast_tier.conv2d_backward(gy, x, Wk, y, (SH, SW), pads, act, *flags)
        assert routes.last("conv2d_backward") == expected_route(C, F, SH, SW)
    assert y.dtype == y_ref.dtype == dt
    assert_within(y, y_ref, bound_y, "conv2d_forward y")
    agy = np.abs(gy.astype(np.float64))
    assert_grads_within(got, ref, (bilinear_bound(rc.conv2d_input_grad(agy, aW, c["H"], c["W"], SH, SW, pads[0],
                                                                       pads[2]), F * KH * KW, e),
                                   bilinear_bound(rc.conv2d_weight_grad(ax, agy, Wk.shape, SH, SW, pads), R, e),
                                   bilinear_bound(rc.conv2d_bias_grad(agy), R, e)), "conv2d_backward")
    return True


@SETTINGS
@given(conv_case(), st.one_of(st.none(), st.integers(0, 2)), st.booleans(), st.booleans())
def test_conv2d_transpose_protocol_tiers_agree(c, op, need_gx, need_gW):
    assume(check_conv2d_transpose_protocol(c, op, need_gx, need_gW))


def check_conv2d_transpose_protocol(c, op, need_gx, need_gW):
    """Both tiers' transposed convolution on case ``c``; False if Keras would reject its sizes."""
    rng = np.random.default_rng(c["seed"])
    dt, KH, KW, SH, SW, C, F = c["dtype"], c["KH"], c["KW"], c["SH"], c["SW"], c["C"], c["F"]
    H, W = c["H"], c["W"]
    padding = c["padding"] if isinstance(c["padding"], str) else "same"
    OH = rpad.transpose_out_size(H, KH, SH, padding, None if op is None else min(op, SH - 1))
    OW = rpad.transpose_out_size(W, KW, SW, padding, None if op is None else min(op, SW - 1))
    if OH < 1 or OW < 1:
        return False
    pads = rpad.transpose_pads(H, W, OH, OW, KH, KW, SH, SW, padding)
    # only sizes that the convolution (OH, OW) -> (H, W) really comes back from (Keras rejects the others)
    if rpad.out_size(OH, KH, SH, pads[0], pads[1]) != H or rpad.out_size(OW, KW, SW, pads[2], pads[3]) != W:
        return False
    x = rng.standard_normal((c["N"], H, W, C)).astype(dt)
    Wk = rng.standard_normal((KH, KW, F, C)).astype(dt)          # Keras layout: filters before inputs
    b = rng.standard_normal(F).astype(dt) if c["bias"] else None
    act, e = ("relu" if c["relu"] else None), eps(dt)
    ax, aW, ab = f64abs(x, Wk, b)
    bound_y = bilinear_bound(rc.conv2d_transpose_forward(ax, aW, ab, OH, OW, SH, SW, pads), C * KH * KW + 1, e)
    y_ref = ref_tier.conv2d_transpose_forward(x, Wk, b, (SH, SW), (OH, OW), pads, act)
    gy = rng.standard_normal((c["N"], OH, OW, F)).astype(dt)
    if act:
        gy[np.abs(rc.conv2d_transpose_forward(x, Wk, b, OH, OW, SH, SW, pads)) <= bound_y] = 0
    flags = (need_gx, need_gW, b is not None)
    ref = ref_tier.conv2d_transpose_backward(gy, x, Wk, y_ref, (SH, SW), pads, act, *flags)
    with fast_route(c["threads"], c["chunk"]):
        y = fast_tier.conv2d_transpose_forward(x, Wk, b, (SH, SW), (OH, OW), pads, act)
        # read as a convolution: F inputs, C filters; its forward pass is that convolution's input gradient
        assert routes.last("conv2d_transpose_forward") == expected_input_route(F, C, SH, SW)
        got = fast_tier.conv2d_transpose_backward(gy, x, Wk, y, (SH, SW), pads, act, *flags)
        assert routes.last("conv2d_transpose_backward") == expected_route(F, C, SH, SW)
    assert y.dtype == y_ref.dtype == dt
    assert_within(y, y_ref, bound_y, "conv2d_transpose_forward y")
    agy = np.abs(gy.astype(np.float64))
    R = c["N"] * OH * OW
    assert_grads_within(got, ref, (bilinear_bound(rc.conv2d_forward(agy, aW, None, SH, SW, pads), KH * KW * F, e),
                                   bilinear_bound(rc.conv2d_weight_grad(agy, ax, Wk.shape, SH, SW, pads),
                                                  c["N"] * H * W, e),
                                   bilinear_bound(rc.conv2d_bias_grad(agy), R, e)), "conv2d_transpose_backward")
    return True


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 4), st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       st.sampled_from(["valid", "same"]), DTYPES, st.booleans(), st.sampled_from([1, 2]), st.integers(0, 2 ** 16))
def test_max_pool2d_protocol_tiers_agree(N, H, W, C, KH, KW, strides, padding, dt, ties, threads, seed):
    assume(padding == "same" or (H >= KH and W >= KW))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C))
    x = (np.round(x) if ties else x).astype(dt)              # ties: the first maximum wins in both tiers
    SH, SW = strides or (KH, KW)
    pads = rpad.conv_pads(H, W, KH, KW, SH, SW, padding)
    out_hw = rpad.out_size(H, KH, SH, pads[0], pads[1]), rpad.out_size(W, KW, SW, pads[2], pads[3])
    gy = rng.standard_normal((N, *out_hw, C)).astype(dt)
    y_ref, arg_ref = ref_tier.max_pool2d_forward(x, (KH, KW), (SH, SW), pads, out_hw)
    gx_ref = ref_tier.max_pool2d_backward(gy, arg_ref, (KH, KW), (SH, SW), pads, (H, W))
    with fast_route(threads):
        y, arg = fast_tier.max_pool2d_forward(x, (KH, KW), (SH, SW), pads, out_hw)
        gx = fast_tier.max_pool2d_backward(gy, arg, (KH, KW), (SH, SW), pads, (H, W))
        split = "split" if threads > 1 and N > 1 else "serial"
        assert routes.last("max_pool2d_forward") == routes.last("max_pool2d_backward") == split
    np.testing.assert_array_equal(y, y_ref)                   # a maximum is exact: no rounding at all
    np.testing.assert_array_equal(arg, arg_ref)
    assert y.dtype == gx.dtype == dt
    # a cell sums the gradients of at most ceil(KH/SH) * ceil(KW/SW) overlapping windows
    n = -(-KH // SH) * -(-KW // SW)
    agy = np.abs(gy.astype(np.float64))
    assert_within(gx, gx_ref, bilinear_bound(ref_tier.max_pool2d_backward(agy, arg_ref, (KH, KW), (SH, SW), pads,
                                                                        (H, W)), n, eps(dt)), "max_pool2d gx")


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 4),
       st.integers(1, 4), st.sampled_from(["nearest", "bilinear"]), DTYPES, st.sampled_from([1, 2]),
       st.integers(0, 2 ** 16))
def test_upsample2d_protocol_tiers_agree(N, H, W, C, SH, SW, interpolation, dt, threads, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dt)
    gy = rng.standard_normal((N, H * SH, W * SW, C)).astype(dt)
    y_ref = ref_tier.upsample2d_forward(x, (SH, SW), interpolation)
    gx_ref = ref_tier.upsample2d_backward(gy, (SH, SW), interpolation)
    with fast_route(threads):
        y = fast_tier.upsample2d_forward(x, (SH, SW), interpolation)
        gx = fast_tier.upsample2d_backward(gy, (SH, SW), interpolation)
        want = "whole" if interpolation == "bilinear" else ("split" if threads > 1 and N > 1 else "serial")
        assert routes.last("upsample2d_forward") == routes.last("upsample2d_backward") == want
    assert y.dtype == gx.dtype == dt
    ax, agy = f64abs(x, gy)
    if interpolation == "nearest":
        np.testing.assert_array_equal(y, y_ref)                          # a copy
        assert_within(gx, gx_ref, bilinear_bound(ref_tier.upsample2d_backward(agy, (SH, SW), "nearest"), SH * SW,
                                               eps(dt)), "nearest gx")
    else:
        # each output mixes 4 taps whose weights are products of two: 4 terms, a few roundings each
        assert_within(y, y_ref, bilinear_bound(ref_tier.upsample2d_forward(ax, (SH, SW), "bilinear"), 8, eps(dt)),
                      "bilinear y")
        # a cell gathers at most (2 SH + 2)(2 SW + 2) weighted terms (edge clamping adds 2 per axis)
        assert_within(gx, gx_ref, bilinear_bound(ref_tier.upsample2d_backward(agy, (SH, SW), "bilinear"),
                                                 (2 * SH + 2) * (2 * SW + 2) + 4, eps(dt)), "bilinear gx")


@SETTINGS
@given(st.sampled_from([None, "relu"]), st.booleans(), st.booleans(), st.booleans(), DTYPES, st.integers(0, 2 ** 16))
def test_conv_functions_under_both_tiers(activation, transpose, x_grad, bias, dt, seed):
    """The engine's Conv2D / Conv2DTranspose nodes give the same y and gradients under
    ``nb.kernels("reference")`` as under the fast tier; gx only where x asks for one."""
    rng = np.random.default_rng(seed)
    N, H, W, C, F, K, S = 2, 5, 4, 3, 2, 3, 2
    x = rng.standard_normal((N, H, W, C)).astype(dt)
    Wk = rng.standard_normal((K, K, F, C) if transpose else (K, K, C, F)).astype(dt)
    b = rng.standard_normal(F).astype(dt) if bias else None
    ax, aW, ab = f64abs(x, Wk, b)
    if transpose:
        OH, OW = rpad.transpose_out_size(H, K, S, "same"), rpad.transpose_out_size(W, K, S, "same")
        pads = rpad.transpose_pads(H, W, OH, OW, K, K, S, S, "same")
        z = rc.conv2d_transpose_forward(x, Wk, b, OH, OW, S, S, pads)
        mag_z, n_z = rc.conv2d_transpose_forward(ax, aW, ab, OH, OW, S, S, pads), K * K * C + 1
    else:
        pads = rpad.conv_pads(H, W, K, K, S, S, "same")
        z = rc.conv2d_forward(x, Wk, b, S, S, pads)
        mag_z, n_z = rc.conv2d_forward(ax, aW, ab, S, S, pads), K * K * C + 1
    gy = rng.standard_normal(z.shape).astype(dt)
    if activation:   # no gradient where the pre-activation is within rounding of the kink
        gy[np.abs(z) <= bilinear_bound(mag_z, n_z, eps(dt))] = 0
    agy = np.abs(gy.astype(np.float64))
    if transpose:
        mags = (rc.conv2d_forward(agy, aW, None, S, S, pads), rc.conv2d_weight_grad(agy, ax, Wk.shape, S, S, pads))
        ns = (K * K * F, N * H * W)
    else:
        mags = (rc.conv2d_input_grad(agy, aW, H, W, S, S, pads[0], pads[2]),
                rc.conv2d_weight_grad(ax, agy, Wk.shape, S, S, pads))
        ns = (K * K * F, N * z.shape[1] * z.shape[2])
    conv = fast_conv.conv2d_transpose if transpose else fast_conv.conv2d

    def run(tier):
        with nb.kernels(tier):
            tx, tW = Tensor(x, requires_grad=x_grad), Tensor(Wk, requires_grad=True)
            tb = None if b is None else Tensor(b, requires_grad=True)
            y = conv(tx, tW, tb, S, "same", activation=activation)
            assert y.creator.activation == activation            # computed inside the convolution's node
            y.backward(gy)
            return y.data, tx.grad, tW.grad, None if tb is None else tb.grad

    fast, ref = run("fast"), run("reference")
    bounds = (bilinear_bound(mag_z, n_z, eps(dt)), bilinear_bound(mags[0], ns[0], eps(dt)),
              bilinear_bound(mags[1], ns[1], eps(dt)),
              bilinear_bound(agy.sum(axis=(0, 1, 2)), gy[..., 0].size, eps(dt)))     # gb: N*OH*OW terms
    for name, g, r, bound in zip(("y", "gx", "gW", "gb"), fast, ref, bounds):
        assert (g is None) == (r is None), name
        if r is not None:
            assert g.dtype == r.dtype == dt, name
            assert_within(g, r, bound, f"{'transposed ' * transpose}conv {name}")
    assert (fast[1] is None) == (not x_grad) and (fast[3] is None) == (not bias)


@pytest.mark.parametrize("transpose", [False, True])
def test_conv_activation_fused_or_its_own_node(transpose):
    """"relu" (by name, or the relu function a layer holds) is computed in the convolution's node;
    any other activation is a node of its own after it; a bad one is a TypeError naming the function."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((1, 4, 4, 2)), requires_grad=True)
    W = Tensor(rng.standard_normal((3, 3, 2, 2)), requires_grad=True)
    conv = fast_conv.conv2d_transpose if transpose else fast_conv.conv2d
    for act in ("relu", nb.activations.relu, nb.activations.get("relu")):
        y = conv(x, W, None, 1, "same", activation=act)
        assert isinstance(y.creator, (fast_conv.Conv2D, fast_conv.Conv2DTranspose)) and y.creator.activation == "relu"
    plain = conv(x, W, None, 1, "same").data
    y = conv(x, W, None, 1, "same", activation="tanh")
    assert type(y.creator).__name__ == "Tanh" and y.creator.inputs[0].creator.activation is None
    np.testing.assert_array_equal(y.data, np.tanh(plain))      # the same tanh node as ops.tanh on the result
    layer = (nb.layers.Conv2DTranspose if transpose else nb.layers.Conv2D)(2, 3, padding="same", activation="relu")
    assert layer(x).creator.activation == "relu"
    name = "conv2d_transpose" if transpose else "conv2d"
    with pytest.raises(TypeError, match=name + ": activation must be None, an activation name"):
        conv(x, W, None, 1, "same", activation=3)
    with pytest.raises(ValueError, match="activation"):
        conv(x, W, None, 1, "same", activation="no_such_activation")
    with pytest.raises(ValueError, match="conv2d_forward: activation must be None or .relu."):
        fast_tier.conv2d_forward(x.data, W.data, None, (1, 1), (1, 1, 1, 1), "tanh")



@pytest.mark.parametrize("forward_tier,backward_tier", [("fast", "reference"), ("reference", "fast")])
def test_max_pool_recorded_under_one_tier_differentiates_under_the_other(forward_tier, backward_tier):
    """Each tier reads the other's arg-max (the window-local index i*KW + j, uint8 or int64). With
    windows that do not overlap each cell receives one gradient or none, so gx is exact."""
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 6, 7, 3)), requires_grad=True)
    gy = rng.standard_normal((2, 3, 4, 3))
    with nb.kernels(forward_tier):
        y = Fn.max_pool2d(x, 2, padding="same")
    with nb.kernels(backward_tier):
        y.backward(gy)
    _, arg = rpool.max_pool2d_forward(x.data, 2, 2, 2, 2, 0, 0, 3, 4)
    np.testing.assert_array_equal(x.grad, rpool.max_pool2d_backward(gy, arg, 2, 2, 2, 2, 0, 0, 6, 7))

# ------------------------------------------------------------------ dense layers
@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 6), st.integers(1, 6),
       st.sampled_from([None, "tanh", "relu", "sigmoid"]), st.booleans(), st.booleans(), DTYPES,
       st.integers(0, 2 ** 16))
def test_linear_tiers_agree(lead, D, U, activation, bias, big, dt, seed):
    rng = np.random.default_rng(seed)
    if big:      # 1024 x 16 x 64 multiply-adds: the fast tier's scratch-pool path (SMALL_WORK)
        lead, D, U = [1024], 16, 64
    x = rng.standard_normal((*lead, D)).astype(dt)
    W = (rng.standard_normal((D, U)) / np.sqrt(D)).astype(dt)
    b = rng.standard_normal(U).astype(dt) if bias else None
    gy = rng.standard_normal((*lead, U)).astype(dt)
    f, df = A.FROM_OUTPUT[activation or "linear"]
    z = rl.linear_forward(x, W, b)
    ax, aW, ab = f64abs(x, W, b)
    bz = (D + 2) * eps(dt) * rl.linear_forward(ax, aW, ab)               # rounding of x @ W + b
    if activation == "relu":
        gy = np.where(np.abs(z) <= bz, 0, gy).astype(dt)                 # no gradient at a near-kink
    y_ref = f(z)
    by = bz + 4 * eps(dt) * np.abs(y_ref)                                # f is 1-Lipschitz; exp within a few ulp
    gz = gy * df(y_ref)
    bgz = np.abs(gy) * (2 * by + 3 * eps(dt))                            # |d f'(y) / dy| <= 2 for these f
    gx_ref, gW_ref, gb_ref = rl.linear_backward(gz, x, W)
    y, (gx, gW, gb) = run_fast(lambda x, W, b: Fn.linear(x, W, b, activation), [x, W, b], gy)
    agz, x2, B = np.abs(gz.astype(np.float64)), ax.reshape(-1, D), ax.size // D
    assert_within(y, y_ref, by, "linear y")
    assert_within(gx, gx_ref, (U + 1) * eps(dt) * (agz @ aW.T) + bgz @ aW.T, "linear gx")
    assert_within(gW, gW_ref, (B + 1) * eps(dt) * (x2.T @ agz.reshape(-1, U)) + x2.T @ bgz.reshape(-1, U),
                  "linear gW")
    if bias:
        assert_within(gb, gb_ref, (B + 1) * eps(dt) * agz.reshape(-1, U).sum(0) + bgz.reshape(-1, U).sum(0),
                      "linear gb")


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.floats(0.0, 0.9), DTYPES, st.integers(0, 2 ** 16))
def test_dropout_tiers_agree(N, D, rate, dt, seed):
    x = np.random.default_rng(seed).standard_normal((N, D)).astype(dt)
    gy = np.random.default_rng(seed + 1).standard_normal((N, D)).astype(dt)
    y, (gx,) = run_fast(lambda x: Fn.dropout(x, rate, np.random.default_rng(seed)), [x], gy)
    keep = np.random.default_rng(seed).random((N, D)) >= rate            # the same draw as the fast tier
    # x * keep / (1 - rate) vs x * (keep / (1 - rate)): two roundings each
    assert_within(y, rl.dropout_forward(x, keep, rate), 2 * eps(dt) * np.abs(y), "dropout y")
    assert_within(gx, rl.dropout_backward(gy, keep, rate), 2 * eps(dt) * np.abs(gx), "dropout gx")


ELEMENTWISE = {   # name -> (fast Tensor op, reference f, gradient factor f' from (x, y))
    "sigmoid": (ops.sigmoid, A.sigmoid, lambda x, y: A.d_sigmoid(y)),
    "tanh": (ops.tanh, A.tanh, lambda x, y: A.d_tanh(y)),
    "relu": (ops.relu, A.relu, lambda x, y: A.d_relu(y)),
    "leaky_relu": (ops.leaky_relu, A.leaky_relu, lambda x, y: A.d_leaky_relu(x)),
    "elu": (ops.elu, A.elu, lambda x, y: A.d_elu(x, y)),
}


@SETTINGS
@given(st.sampled_from(sorted(ELEMENTWISE)), st.integers(1, 20), DTYPES, st.integers(0, 2 ** 16))
def test_activation_tiers_agree(name, n, dt, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 4).astype(dt)
    x[rng.random(n) < 0.1] = 0                                           # the kinks themselves
    gy = rng.standard_normal(n).astype(dt)
    fast_op, f, df = ELEMENTWISE[name]
    y, (gx,) = run_fast(fast_op, [x], gy)
    y_ref = f(x)
    # at most 4 roundings (or a few-ulp exp), then f' from y: |d f'/dy| <= 2 and |f'| <= 1 + |y|
    assert_within(y, y_ref, 4 * eps(dt) * np.abs(y_ref), f"{name} y")
    assert_within(gx, gy * df(x, y_ref), 16 * eps(dt) * np.abs(gy) * (1 + np.abs(y_ref)) ** 2, f"{name} gx")


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 8), st.booleans(), DTYPES, st.integers(0, 2 ** 16))
def test_softmax_tiers_agree(N, D, log, dt, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, D)) * 3).astype(dt)
    gy = rng.standard_normal((N, D)).astype(dt)
    agy = np.abs(gy.astype(np.float64))
    e = (D + 6) * eps(dt)               # a D-term sum of exp, a log or a division, a few more roundings
    if log:
        y, (gx,) = run_fast(Fn.log_softmax, [x], gy)
        y_ref = A.log_softmax(x)
        lse = np.abs(np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)))
        size = np.abs(x - x.max(-1, keepdims=True)) + lse
        assert_within(y, y_ref, e * size, "log_softmax y")
        # gy - exp(y) sum(gy): exp turns y's absolute error into a relative one
        bound = e * (agy + np.exp(y_ref) * agy.sum(-1, keepdims=True) * (1 + size))
        assert_within(gx, A.log_softmax_backward(gy, y_ref), bound, "log_softmax gx")
    else:
        y, (gx,) = run_fast(Fn.softmax, [x], gy)
        y_ref = A.softmax(x)
        assert_within(y, y_ref, e * np.abs(y_ref), "softmax y")
        bound = 2 * e * np.abs(y_ref) * (agy + (agy * np.abs(y_ref)).sum(-1, keepdims=True))
        assert_within(gx, A.softmax_backward(gy, y_ref), bound, "softmax gx")


# -------------------------------------------------------------- embedding, RNN
@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 6), st.integers(1, 5), DTYPES,
       st.integers(0, 2 ** 16))
def test_embedding_tiers_agree(shape, V, D, dt, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=shape)                                  # small V: repeated ids
    W = rng.standard_normal((V, D)).astype(dt)
    gy = rng.standard_normal((*shape, D)).astype(dt)
    Wt = Tensor(W, requires_grad=True)
    y = Fn.embedding(ids, Wt)
    y.backward(gy)
    np.testing.assert_array_equal(y.data, re_.embedding_forward(ids, W))  # a gather: exact
    M = ids.size
    bound = M * eps(dt) * re_.embedding_backward(ids, np.abs(gy.astype(np.float64)), V)
    assert_within(Wt.grad, re_.embedding_backward(ids, gy, V), bound, "embedding gW")


rnn_configs = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 5), "D": st.integers(1, 4), "U": st.integers(1, 4),
    "act": st.sampled_from(["tanh", "relu", "sigmoid", "linear"]), "seq": st.booleans(), "back": st.booleans(),
    "bias": st.booleans(), "h0": st.booleans(), "masked": st.booleans(), "dtype": DTYPES,
    "seed": st.integers(0, 2 ** 16)})


def _rnn_inputs(c, dt):
    rng = np.random.default_rng(c["seed"])
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    x = rng.standard_normal((N, T, D)).astype(dt)
    W = (rng.standard_normal((D, U)) * 0.6).astype(dt)
    R = (rng.standard_normal((U, U)) * 0.4 / np.sqrt(U)).astype(dt)
    b = (rng.standard_normal(U) * 0.3).astype(dt) if c["bias"] else None
    h0 = (rng.standard_normal((N, U)) * 0.5).astype(dt) if c["h0"] else None
    mask = rng.random((N, T)) < 0.7 if c["masked"] else None
    return x, W, R, b, h0, mask, rng


def _pre_activations(x, W, R, b, h0, c, mask):
    """a_t of every real step, in float64 from the reference states (for the relu kink test)."""
    h = rrnn.simple_rnn_states(x, W, R, b, h0, c["act"], c["back"], mask)
    xs = x[:, ::-1] if c["back"] else x
    a = np.einsum("ntd,du->ntu", xs, W) + h[:, :-1] @ R + (0 if b is None else b)
    m = np.ones(x.shape[:2], bool) if mask is None else (mask[:, ::-1] if c["back"] else mask)
    return a[m]


def _rnn_error_bound(c, x, W, R, b, h0, mask, dt):
    """(e, env, |inputs| in float64) of a first-order error bound on the two tiers' RNN results, |diff| <= e * env.

    Every step adds (D + U + 2) roundings of terms no larger than the float64 run on absolute
    values (f replaced by |a| + 1 >= |f(a)|), and errors carried from earlier steps shrink or
    grow with the same |R|: T (D + U + 4) eps times that envelope; the backward multiplies in
    f'(h), whose sensitivity to h is at most 2 (the callers add that factor 4). With relu, the
    example is assumed away unless both tiers take the same side of every kink.
    """
    T, D, U = c["T"], c["D"], c["U"]
    ax, aW, aR, ab, ah0 = f64abs(x, W, R, b, h0)
    env = rrnn.simple_rnn_states(ax, aW, aR, ab, ah0, "linear", c["back"], None)[:, 1:] + 1
    env = env + np.maximum.accumulate(env, axis=1)
    e = T * (D + U + 4) * eps(dt)
    if c["act"] == "relu":
        assume(np.abs(_pre_activations(*(v if v is None else v.astype(np.float64) for v in (x, W, R, b, h0)),
                                       c, mask)).min(initial=1) > 4 * e * env.max())
    return e, env, (ax, aW, aR, ab, ah0)


@SETTINGS
@given(rnn_configs)
def test_simple_rnn_tiers_agree(c):
    dt = c["dtype"]
    x, W, R, b, h0, mask, rng = _rnn_inputs(c, dt)
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    e, env, (ax, aW, aR, ab, ah0) = _rnn_error_bound(c, x, W, R, b, h0, mask, dt)
    gy_full = rng.standard_normal((N, T, U)).astype(dt)
    if not c["seq"]:
        gy_full[:, :-1] = 0                                            # only h_T is returned
    y_ref = rrnn.simple_rnn_forward(x, W, R, b, h0, c["act"], c["back"], mask)
    grads_ref = rrnn.simple_rnn_backward(gy_full, x, W, R, b, h0, c["act"], c["back"], mask)
    arrays = [x, W, R, b, h0]

    def fast(x, W, R, b, h0):
        return Fn.simple_rnn(x, W, R, b, h0, c["act"], c["seq"], c["back"], mask)
    y, grads = run_fast(fast, arrays, gy_full if c["seq"] else gy_full[:, -1])
    assert_within(y, y_ref if c["seq"] else y_ref[:, -1], e * (env if c["seq"] else env[:, -1]), "rnn y")
    # the backward's envelope: the same loop on absolute values with f' = 1
    genv = rrnn.simple_rnn_backward(np.abs(gy_full.astype(np.float64)), ax, aW, aR, ab,
                                    ah0 if ah0 is not None else None, "linear", c["back"], None)
    scale = 4 * e * (1 + env.max())
    for name, g, g_ref, ge in zip(["gx", "gW", "gR", "gb", "gh0"], grads, grads_ref, genv):
        if g is not None:
            assert_within(g, g_ref, scale * ge + scale * np.abs(gy_full).sum() * eps(dt), f"rnn {name}")


# --------------------------------------------------------------------- losses
LOSSES = {   # name -> (fast Loss, reference values, reference backward, sparse labels?)
    "mse": (lambda fl: fast_losses.MeanSquaredError(), rloss.mean_squared_error,
            rloss.mean_squared_error_backward, False),
    "mae": (lambda fl: fast_losses.MeanAbsoluteError(), rloss.mean_absolute_error,
            rloss.mean_absolute_error_backward, False),
    "binary": (lambda fl: fast_losses.BinaryCrossentropy(from_logits=fl), rloss.binary_crossentropy,
               rloss.binary_crossentropy_backward, False),
    "categorical": (lambda fl: fast_losses.CategoricalCrossentropy(from_logits=fl),
                    rloss.categorical_crossentropy, rloss.categorical_crossentropy_backward, False),
    "sparse": (lambda fl: fast_losses.SparseCategoricalCrossentropy(from_logits=fl),
               rloss.sparse_categorical_crossentropy, rloss.sparse_categorical_crossentropy_backward, True),
}


@SETTINGS
@given(st.sampled_from(sorted(LOSSES)), st.booleans(), st.integers(1, 6), st.integers(2, 5), st.booleans(),
       DTYPES, st.integers(0, 2 ** 16))
def test_loss_tiers_agree(name, from_logits, N, D, weighted, dt, seed):
    rng = np.random.default_rng(seed)
    make, values, backward, sparse = LOSSES[name]
    from_logits = from_logits and name not in ("mse", "mae")
    if from_logits or name in ("mse", "mae"):
        p = (rng.standard_normal((N, D)) * 2).astype(dt)
    else:       # probabilities, a few exactly 0 or 1 so that the clip and its zero gradient take part
        p = rng.uniform(0.02, 0.98, (N, D))
        p[rng.random((N, D)) < 0.1] = rng.choice([0.0, 1.0])
        p = (p / p.sum(-1, keepdims=True) if name != "binary" else p).astype(dt)
    if sparse:
        t = rng.integers(0, D, N)
    elif name == "categorical":
        t = np.eye(D, dtype=dt)[rng.integers(0, D, N)]
    else:
        t = rng.uniform(0, 1, (N, D)).astype(dt) if name == "binary" else rng.standard_normal((N, D)).astype(dt)
    sw = rng.uniform(0.5, 2, N).astype(dt) if weighted else None
    loss = make(from_logits)
    pt = Tensor(p, requires_grad=True)
    L = loss(t, pt, sample_weight=sw)
    L.backward()
    kw = {} if name in ("mse", "mae") else {"from_logits": from_logits}
    l_ref = values(t, p, **kw)
    L_ref = rloss.reduce_loss(l_ref, sw)
    c = rloss.reduce_loss_backward(np.asarray(1.0, dt), sw, N, (N,)).astype(dt)
    g_ref = backward(t, p, c, **kw)
    # every intermediate of a row is at most M (1/q up to 1/EPSILON where p is clipped, the logs,
    # |p|, |t|); a value takes at most D + 8 roundings, a gradient entry D + 16 (the row sums)
    q = np.clip(p.astype(np.float64), rloss.EPSILON, 1 - rloss.EPSILON)
    tf = np.eye(D)[t] if sparse else np.abs(t.astype(np.float64))
    M = (2 + 2 * np.abs(p) + 2 * tf + np.abs(np.log(q)) + np.abs(np.log1p(-q)) + (np.abs(p) + tf) ** 2
         + np.log(D) + 2 * np.abs(p).max(-1, keepdims=True)).max(-1)
    w = np.ones(N) if sw is None else sw.astype(np.float64)
    assert_within(L.data, L_ref, (N + D + 8) * eps(dt) * D * (w * M).sum() / N, f"{name} loss")
    inside = (p >= rloss.EPSILON) & (p <= 1 - rloss.EPSILON)          # clipped entries pass no gradient
    Mg = M + np.where(inside, tf / q + (1 - np.minimum(tf, 1)) / (1 - q), 0).max(-1)
    assert_within(pt.grad, g_ref, (D + 16) * eps(dt) * (D * np.abs(c) * Mg)[:, None], f"{name} dL/dp")


# ------------------------------------------------------------------ optimizers
OPTIMIZERS = {   # name -> (fast optimizer, reference step(w, g, state, t), reference state)
    "sgd": (lambda: fast_optimizers.SGD(0.1), lambda w, g, s, t: ropt.sgd(w, g, 0.1), lambda w: {}),
    "momentum": (lambda: fast_optimizers.SGD(0.1, momentum=0.9),
                 lambda w, g, s, t: ropt.sgd(w, g, 0.1, s["m"], 0.9), lambda w: {"m": np.zeros_like(w)}),
    "nesterov": (lambda: fast_optimizers.SGD(0.1, momentum=0.7, nesterov=True),
                 lambda w, g, s, t: ropt.sgd(w, g, 0.1, s["m"], 0.7, nesterov=True),
                 lambda w: {"m": np.zeros_like(w)}),
    "adam": (lambda: fast_optimizers.Adam(0.01), lambda w, g, s, t: ropt.adam(w, g, s["m"], s["v"], t, 0.01),
             lambda w: {"m": np.zeros_like(w), "v": np.zeros_like(w)}),
    "amsgrad": (lambda: fast_optimizers.Adam(0.01, amsgrad=True),
                lambda w, g, s, t: ropt.adam(w, g, s["m"], s["v"], t, 0.01, v_hat=s["vh"]),
                lambda w: {"m": np.zeros_like(w), "v": np.zeros_like(w), "vh": np.zeros_like(w)}),
    "adagrad": (lambda: fast_optimizers.Adagrad(0.05), lambda w, g, s, t: ropt.adagrad(w, g, s["a"], 0.05),
                lambda w: {"a": np.full_like(w, 0.1)}),
    "rmsprop": (lambda: fast_optimizers.RMSprop(0.01), lambda w, g, s, t: ropt.rmsprop(w, g, s["v"], 0.01),
                lambda w: {"v": np.zeros_like(w)}),
    "rmsprop_centered_momentum": (
        lambda: fast_optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        lambda w, g, s, t: ropt.rmsprop(w, g, s["v"], 0.01, mg=s["mg"], b=s["b"], momentum=0.5),
        lambda w: {"v": np.zeros_like(w), "mg": np.zeros_like(w), "b": np.zeros_like(w)}),
    "adadelta": (lambda: fast_optimizers.Adadelta(1.0), lambda w, g, s, t: ropt.adadelta(w, g, s["E"], s["D"], 1.0),
                 lambda w: {"E": np.zeros_like(w), "D": np.zeros_like(w)}),
}
CLIPS = {None: None, "clipvalue": ropt.clip_by_value, "clipnorm": ropt.clip_by_norm,
         "global_clipnorm": ropt.clip_by_global_norm}


@SETTINGS
@given(st.sampled_from(sorted(OPTIMIZERS)), st.sampled_from(list(CLIPS)), st.integers(1, 6), st.integers(1, 4),
       DTYPES, st.integers(0, 2 ** 16))
def test_optimizer_tiers_agree(name, clip, n, steps, dt, seed):
    rng = np.random.default_rng(seed)
    make, step, state = OPTIMIZERS[name]
    opt = make()
    if clip is not None:
        setattr(opt, clip, 0.5)
    w0 = [rng.standard_normal((n, 3)).astype(dt), rng.standard_normal(n).astype(dt)]
    grads = [[rng.standard_normal(w.shape).astype(dt) * 2 for w in w0] for _ in range(steps)]
    weights = [Tensor(w.copy()) for w in w0]
    ws, states = [w.copy() for w in w0], [state(w) for w in w0]
    moved = [np.abs(w.astype(np.float64)) for w in w0]
    for t, gs in enumerate(grads, start=1):
        opt.apply_gradients(zip(gs, weights))
        gs = gs if clip is None else CLIPS[clip](gs, 0.5)
        for w, g, s, m in zip(ws, gs, states, moved):
            before = w.astype(np.float64)
            step(w, g, s, t)
            m += np.abs(w - before)                              # |w_0| + sum of |updates|
    # each update is a few roundings (<= 16) plus what the state arrays carry from earlier steps
    # (one more such error per step); the clipping scale is a norm over all gradient entries
    k = 16 * steps + 2 * sum(w.size for w in w0)
    for wt, w, m in zip(weights, ws, moved):
        assert_within(wt.data, w, k * steps * eps(dt) * m, f"{name} w")


# ============================== dense, sequences, losses, optimizers: the protocol functions
# Each function of numbanet/fast/tier.py against its namesake in numbanet/reference/tier.py,
# called directly, on the configurations that switch the fast tier's routes, and the route
# it recorded (numbanet.fast.routes).
from numbanet.fast import routes as fast_routes  # noqa: E402
from numbanet.fast import tier as fast_tier  # noqa: E402
from numbanet.fast.tuning import (BLAS_SPLIT_MIN_WORK, NUMPY_SPLIT_MIN_ELEMENTS,  # noqa: E402
                                  OPTIMIZER_SPLIT_MIN_ELEMENTS, SMALL_DENSE_WORK)
from numbanet.reference import tier as ref_tier  # noqa: E402

from bounds import LIBM_ULP, SAFETY, elementwise_bound, matmul_bound, sum_bound  # noqa: E402


@contextmanager
def blas_split(threads):
    """``threads`` threads; with 2, BLAS single-threaded as after a batch split (the "split" routes)."""
    parallel.set_num_threads(threads)
    try:
        if threads > 1:
            parallel.run(lambda a, b, i: None, parallel.split(threads))   # a batch split: BLAS goes single
            if not parallel._STATE["blas_single"]:
                pytest.skip("threadpoolctl cannot set the BLAS thread count here")
        yield
    finally:
        parallel.set_num_threads(1)


DENSE_ROUTES = {   # route -> (rows B, D, U, threads): the smallest work that takes it
    "small": (None, None, None, 1),
    "blas": (1100, 16, 64, 1),
    "split": (1100, 16, 64, 2),
}


@SETTINGS
@given(st.sampled_from(sorted(DENSE_ROUTES)), st.integers(1, 9), st.integers(1, 7), st.integers(1, 7),
       st.sampled_from([None, "tanh", "relu", "sigmoid"]), st.booleans(), st.booleans(), DTYPES,
       st.integers(0, 2 ** 16))
def test_dense_protocol_tiers_agree(route, B, D, U, activation, bias, need_gx, dt, seed):
    rng = np.random.default_rng(seed)
    big = DENSE_ROUTES[route]
    if route != "small":
        B, D, U = big[0] + B, big[1], big[2]
        assert B * D * U >= max(SMALL_DENSE_WORK, BLAS_SPLIT_MIN_WORK)
    x = rng.standard_normal((B, D)).astype(dt)
    W = (rng.standard_normal((D, U)) / np.sqrt(D)).astype(dt)
    b = rng.standard_normal(U).astype(dt) if bias else None
    gy = rng.standard_normal((B, U)).astype(dt)
    e = eps(dt)
    bz = matmul_bound(x, W, add=b, eps=e)                                # the two products (+ bias)
    z = x.astype(np.float64) @ W + (0 if b is None else b)
    if activation == "relu":
        gy = np.where(np.abs(z) <= bz, 0, gy).astype(dt)                 # no gradient at a near-kink
    with blas_split(big[3]):
        y = fast_tier.dense_forward(x, W, b, activation)
        assert fast_routes.last("dense_forward") == route
        y_ref = ref_tier.dense_forward(x, W, b, activation)
        # f has slope <= 1: z's error, then f's own roundings (exp within LIBM_ULP, 3 more)
        assert_within(y, y_ref, bz + elementwise_bound(np.abs(z) + 1, LIBM_ULP + 3, e), f"dense y {route}")
        # both backwards read f' from the same y, so gz differs only by f''s few roundings
        gz = gy.astype(np.float64) * A.FROM_OUTPUT[activation or "linear"][1](y_ref.astype(np.float64))
        bgz = elementwise_bound(np.abs(gy), 4, e)
        got = fast_tier.dense_backward(gy, x, W, y_ref, activation, need_gx, bias)
        assert fast_routes.last("dense_backward") == ("split" if route == "split" else "serial")
    want = ref_tier.dense_backward(gy, x, W, y_ref, activation, need_gx, bias)
    ax, aW = f64abs(x, W)
    bounds = (matmul_bound(gz, W.T, eps=e) + bgz @ aW.T, matmul_bound(x.T, gz, eps=e) + ax.T @ bgz,
              sum_bound(gz, axis=0, eps=e) + bgz.sum(0))
    for name, g, g_ref, bound in zip(("gx", "gW", "gb"), got, want, bounds):
        assert (g is None) == (g_ref is None) == (name == "gx" and not need_gx or name == "gb" and not bias)
        if g is not None:
            assert g.dtype == dt, f"dense {name} dtype {g.dtype}"
            assert_within(g, g_ref, bound, f"dense {name} {route}")


@SETTINGS
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(1, 7), st.integers(1, 5), DTYPES,
       st.integers(0, 2 ** 16))
def test_embedding_protocol_tiers_agree(shape, V, D, dt, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=shape)                                  # small V: repeated ids
    gy = rng.standard_normal((*shape, D)).astype(dt)
    gW = fast_tier.embedding_backward(ids, gy, V)
    assert fast_routes.last("embedding_backward") == "scatter"
    # each entry of gW is a sum of at most M = ids.size entries of gy, in two orders
    bound = SAFETY * ids.size * eps(dt) * ref_tier.embedding_backward(ids, np.abs(gy.astype(np.float64)), V)
    assert_within(gW, ref_tier.embedding_backward(ids, gy, V), bound, "embedding gW")


@SETTINGS
@given(rnn_configs, st.booleans())
def test_simple_rnn_protocol_tiers_agree(c, need_gx):
    dt = c["dtype"]
    x, W, R, b, h0, mask, rng = _rnn_inputs(c, dt)
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    e, env, (ax, aW, aR, ab, ah0) = _rnn_error_bound(c, x, W, R, b, h0, mask, dt)
    args = (x, W, R, b, h0, c["act"], c["seq"], c["back"], mask)
    y, saved = fast_tier.simple_rnn_forward(*args)
    assert fast_routes.last("simple_rnn_forward") == ("time_major" if mask is None else "time_major_masked")
    y_ref, saved_ref = ref_tier.simple_rnn_forward(*args)
    assert_within(y, y_ref, e * (env if c["seq"] else env[:, -1]), "rnn y")
    gy = rng.standard_normal(y.shape).astype(dt)
    got = fast_tier.simple_rnn_backward(gy, saved, need_gx)
    want = ref_tier.simple_rnn_backward(gy, saved_ref, need_gx)
    gy_full = np.zeros((N, T, U)) if not c["seq"] else np.abs(gy.astype(np.float64))
    if not c["seq"]:
        gy_full[:, -1] = np.abs(gy)
    genv = rrnn.simple_rnn_backward(gy_full, ax, aW, aR, ab, ah0, "linear", c["back"], None)
    scale = 4 * e * (1 + env.max())
    present = (need_gx, True, True, b is not None, h0 is not None)
    for name, g, g_ref, ge, there in zip(("gx", "gW", "gR", "gb", "gh0"), got, want, genv, present):
        assert (g is None) == (g_ref is None) == (not there), f"rnn {name}: present {there}"
        if g is not None:
            assert_within(g, g_ref, scale * ge + scale * gy_full.sum() * eps(dt), f"rnn {name}")


@SETTINGS
@given(st.booleans(), st.integers(1, 40), st.integers(2, 30), st.booleans(), DTYPES, st.integers(0, 2 ** 16))
def test_sparse_ce_protocol_tiers_agree(split, B, V, scalar_c, dt, seed):
    rng = np.random.default_rng(seed)
    if split:                                   # enough elements for the rows to go to both threads
        B, V = B + NUMPY_SPLIT_MIN_ELEMENTS // 64, 64
    z = (rng.standard_normal((B, V)) * 3).astype(dt)
    labels = rng.integers(0, V, B)
    c = np.asarray(rng.uniform(0.1, 2), dt) if scalar_c else rng.uniform(0.1, 2, B).astype(dt)
    with blas_split(2 if split else 1):
        l, saved = fast_tier.sparse_ce_forward(labels, z)
        assert fast_routes.last("sparse_ce_forward") == ("split" if split else "serial")
        g = fast_tier.sparse_ce_backward(labels, saved, c)
        assert fast_routes.last("sparse_ce_backward") == ("split" if split else "serial")
    l_ref, saved_ref = ref_tier.sparse_ce_forward(labels, z)
    g_ref = ref_tier.sparse_ce_backward(labels, saved_ref, c)
    # l = log(sum_V exp(z - max)) + max - z[label]: the sum of V terms each within LIBM_ULP of
    # exp and eps |z - max| (the subtraction) relative; log and the two adds: a few eps of
    # |log s| + |max| + |z[label]|. dl/dz = c (e / s - one_hot): e / s carries the same relative
    # error (V + LIBM_ULP + 4 + |z - max|) eps, times |c| e / s, plus c one_hot's rounding
    e = eps(dt)
    za = np.abs(z.astype(np.float64))
    spread = za.max(-1) * 2                                            # >= |z - max| on the row
    rel = SAFETY * (V + LIBM_ULP + 4 + spread) * e
    zmax = z.astype(np.float64).max(-1)
    lse = np.log(np.exp(z.astype(np.float64) - zmax[:, None]).sum(-1))
    assert_within(l, l_ref, rel + SAFETY * 4 * e * (lse + np.abs(zmax) + za[np.arange(B), labels]),
                  "sparse ce l")
    p = np.exp(z.astype(np.float64) - zmax[:, None] - lse[:, None])
    ac = np.broadcast_to(np.abs(c.astype(np.float64)), (B,))[:, None]
    assert_within(g, g_ref, ac * (rel[:, None] * p + SAFETY * 4 * e), "sparse ce dl/dz")


def _optimizer_case(name, w):
    """(function name, its arguments after w and g with fresh state arrays, the index of lr in them)."""
    z = np.zeros_like(w)
    return {"sgd": ("sgd_update", [0.1], 0),
            "momentum": ("sgd_update", [0.1, z.copy(), 0.9, False], 0),
            "nesterov": ("sgd_update", [0.1, z.copy(), 0.7, True], 0),
            "adam": ("adam_update", [z.copy(), z.copy(), 1, 0.01], 3),
            "amsgrad": ("adam_update", [z.copy(), z.copy(), 1, 0.01, 0.9, 0.999, 1e-7, z.copy()], 3),
            "adagrad": ("adagrad_update", [np.full_like(w, 0.1), 0.05], 1),
            "rmsprop": ("rmsprop_update", [z.copy(), 0.01], 1),
            "rmsprop_centered_momentum": ("rmsprop_update", [z.copy(), 0.01, 0.9, 1e-7, z.copy(), z.copy(), 0.5], 1),
            "adadelta": ("adadelta_update", [z.copy(), z.copy(), 1.0], 2)}[name]


@SETTINGS
@given(st.sampled_from(["sgd", "momentum", "nesterov", "adam", "amsgrad", "adagrad", "rmsprop",
                        "rmsprop_centered_momentum", "adadelta"]),
       st.booleans(), st.integers(1, 50), st.integers(1, 3), DTYPES, st.integers(0, 2 ** 16))
def test_optimizer_protocol_tiers_agree(name, big, n, steps, dt, seed):
    rng = np.random.default_rng(seed)
    if big:                                     # Adam's flat halves on both threads
        n += OPTIMIZER_SPLIT_MIN_ELEMENTS
    w0 = rng.standard_normal(n).astype(dt)
    fn, args, i_lr = _optimizer_case(name, w0)
    args[i_lr] = dt(args[i_lr])                 # as Optimizer._apply passes it: in the weight's dtype
    sides = []
    with blas_split(2 if big else 1):
        for tier in (fast_tier, ref_tier):
            w, state = w0.copy(), [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            moved = np.abs(w0.astype(np.float64))
            for t in range(1, steps + 1):
                g = (np.random.default_rng(seed + t).standard_normal(n) * 2).astype(dt)
                if fn == "adam_update":
                    state[2] = t
                before = w.astype(np.float64)
                getattr(tier, fn)(w, g, *state)
                moved += np.abs(w - before)                          # |w_0| + sum of |updates|
            if tier is fast_tier:
                expect = ("fused_split" if big else "fused") if fn == "adam_update" else "inplace"
                assert fast_routes.last(fn) == expect
            sides.append((w, moved))
    # an update is at most 16 roundings of terms no larger than |w| + |update|, and each step
    # carries the state arrays' earlier errors: 16 steps^2 eps (|w_0| + sum |updates|)
    (w_fast, moved), (w_ref, _) = sides
    assert w_fast.dtype == dt
    assert_within(w_fast, w_ref, SAFETY * 16 * steps ** 2 * eps(dt) * moved, f"{name} w")


@pytest.mark.parametrize("forward_tier, backward_tier", [("fast", "reference"), ("reference", "fast")])
def test_a_graph_recorded_under_one_tier_differentiates_under_the_other(forward_tier, backward_tier):
    """SimpleRNN and the sparse cross-entropy keep tier-specific state between forward and backward:
    switching tiers in between still gives the gradient of a run that stays on one tier."""
    rng = np.random.default_rng(7)
    x, W, R = rng.standard_normal((3, 4, 2)), rng.standard_normal((2, 5)) * 0.5, rng.standard_normal((5, 5)) * 0.3
    labels = rng.integers(0, 5, (3, 4))
    loss = fast_losses.SparseCategoricalCrossentropy(from_logits=True)

    def grads(fwd, bwd):
        ts = [Tensor(a, requires_grad=True) for a in (x, W, R)]
        with nb.kernels(fwd):
            L = loss(labels, Fn.simple_rnn(*ts))
        with nb.kernels(bwd):
            L.backward()
        return [t.grad for t in ts]

    mixed, plain = grads(forward_tier, backward_tier), grads(forward_tier, forward_tier)
    # the forward's tier ran every array operation of both, in the same order: the same bits
    for g, g_ref in zip(mixed, plain):
        np.testing.assert_array_equal(g, g_ref)


def test_fit_of_a_small_rnn_gives_the_same_losses_under_both_tiers():
    """Embedding(mask_zero) - SimpleRNN - Dense, Adam, sparse CE from logits, float64, 3 epochs."""
    V, T, N, D, U = 12, 6, 16, 4, 7
    rng = np.random.default_rng(0)
    x = rng.integers(1, V, size=(N, T))
    x[::3, 4:] = 0                                                     # padding: the mask takes part
    y = rng.integers(0, V, size=(N, T))

    def losses_under(tier):
        nb.utils.set_random_seed(3)
        m = nb.Sequential([nb.layers.Embedding(V, D, mask_zero=True, dtype="float64"),
                           nb.layers.SimpleRNN(U, return_sequences=True, dtype="float64"),
                           nb.layers.Dense(V, dtype="float64")])
        m.compile(optimizer=nb.optimizers.Adam(0.01), loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
        with nb.kernels(tier):
            return np.array(m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"])

    fast, ref = losses_under("fast"), losses_under("reference")
    assert nb.get_kernels() == "fast"
    # every quantity of a step is a sum of at most n = T (D + U + 4) + V terms, computed in
    # another order by each tier; with a learning rate of 0.01 the updates do not amplify a
    # weight's error by more than the number of steps taken (6): SAFETY * 6 * n * eps * loss
    n = T * (D + U + 4) + V
    assert np.all(np.abs(fast - ref) <= SAFETY * 6 * n * eps(np.float64) * np.abs(ref)), (fast, ref)
    assert fast[-1] < fast[0]                                          # it trained


# ============================================ the reference alone: finite differences
def central_differences(f, arrays, gy, h=1e-6):
    """d sum(gy * f(*arrays)) / d a for every array a, by central differences in float64.

    Truncation h^2 |f'''| / 6 and rounding ~1e-16 |L| / h are both about 1e-10 of the
    scales here, so the comparisons below allow 1e-6 relative and 1e-7 absolute.
    """
    out = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + h
            plus = float((gy * f(*arrays)).sum())
            a[i] = old - h
            minus = float((gy * f(*arrays)).sum())
            a[i] = old
            g[i] = (plus - minus) / (2 * h)
        out.append(g)
    return out


def assert_fd(f, arrays, grads, gy, what):
    for k, (g, n) in enumerate(zip(grads, central_differences(f, arrays, gy))):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-7, err_msg=f"{what}: input {k}")


FD = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FD
@given(conv_case(), st.integers(0, 2 ** 16))
def test_reference_conv_gradients_match_finite_differences(c, seed):
    rng = np.random.default_rng(seed)
    KH, KW, SH, SW = c["KH"], c["KW"], c["SH"], c["SW"]
    N, C, F = min(c["N"], 2), min(c["C"], 2), min(c["F"], 2)
    pads = rpad.conv_pads(c["H"], c["W"], KH, KW, SH, SW, c["padding"])
    OH, OW = rpad.out_size(c["H"], KH, SH, pads[0], pads[1]), rpad.out_size(c["W"], KW, SW, pads[2], pads[3])
    assume(OH >= 1 and OW >= 1)
    x, W, b = rng.standard_normal((N, c["H"], c["W"], C)), rng.standard_normal((KH, KW, C, F)), rng.standard_normal(F)
    gy = rng.standard_normal((N, OH, OW, F))
    assert_fd(lambda x, W, b: rc.conv2d_forward(x, W, b, SH, SW, pads), [x, W, b],
              rc.conv2d_backward(gy, x, W, SH, SW, pads), gy, "conv2d")
    # the transposed convolution, read with the same kernel: (OH, OW, F) -> (H, W, C)
    Wt = rng.standard_normal((KH, KW, C, F))
    gz = rng.standard_normal((N, c["H"], c["W"], C))
    xt = rng.standard_normal((N, OH, OW, F))
    assert_fd(lambda x, W, b: rc.conv2d_transpose_forward(x, W, b, c["H"], c["W"], SH, SW, pads),
              [xt, Wt, rng.standard_normal(C)], rc.conv2d_transpose_backward(gz, xt, Wt, SH, SW, pads), gz,
              "conv2d_transpose")


@FD
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["valid", "same"]), st.integers(0, 2 ** 16))
def test_reference_pool_and_upsample_gradients_match_finite_differences(H, W, K, S, up, padding, seed):
    assume(padding == "same" or (H >= K and W >= K))
    rng = np.random.default_rng(seed)
    x = rng.permutation(H * W * 2).reshape(1, H, W, 2) * 0.01            # distinct, 0.01 apart >> h: no ties
    PT, PB, PL, PR = rpad.conv_pads(H, W, K, K, S, S, padding)
    OH, OW = rpad.out_size(H, K, S, PT, PB), rpad.out_size(W, K, S, PL, PR)
    gy = rng.standard_normal((1, OH, OW, 2))
    _, arg = rpool.max_pool2d_forward(x, K, K, S, S, PT, PL, OH, OW)
    assert_fd(lambda x: rpool.max_pool2d_forward(x, K, K, S, S, PT, PL, OH, OW)[0], [x],
              [rpool.max_pool2d_backward(gy, arg, K, K, S, S, PT, PL, H, W)], gy, "max_pool")
    gu = rng.standard_normal((1, H * up, W * (up % 2 + 1), 2))
    for fwd, bwd in ((rup.upsample_nearest_forward, rup.upsample_nearest_backward),
                     (rup.upsample_bilinear_forward, rup.upsample_bilinear_backward)):
        assert_fd(lambda x: fwd(x, up, up % 2 + 1), [x], [bwd(gu, up, up % 2 + 1)], gu, fwd.__name__)


@FD
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2 ** 16))
def test_reference_linear_and_embedding_gradients_match_finite_differences(N, D, U, V, seed):
    rng = np.random.default_rng(seed)
    x, W, b, gy = (rng.standard_normal(s) for s in ((N, 2, D), (D, U), (U,), (N, 2, U)))
    assert_fd(rl.linear_forward, [x, W, b], rl.linear_backward(gy, x, W), gy, "linear")
    ids = rng.integers(0, V, (N, 3))
    E, ge = rng.standard_normal((V, U)), rng.standard_normal((N, 3, U))
    assert_fd(lambda E: re_.embedding_forward(ids, E), [E], [re_.embedding_backward(ids, ge, V)], ge, "embedding")


@FD
@given(st.sampled_from(sorted(ELEMENTWISE) + ["softmax", "log_softmax"]), st.integers(1, 6), st.integers(0, 2 ** 16))
def test_reference_activation_gradients_match_finite_differences(name, D, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, D)) * 2
    x = np.where(np.abs(x) < 1e-3, 1e-3, x)                              # away from the kinks at 0
    gy = rng.standard_normal((2, D))
    if name in ("softmax", "log_softmax"):
        f, fb = (A.softmax, A.softmax_backward) if name == "softmax" else (A.log_softmax, A.log_softmax_backward)
        assert_fd(f, [x], [fb(gy, f(x))], gy, name)
    else:
        _, f, df = ELEMENTWISE[name]
        assert_fd(f, [x], [gy * df(x, f(x))], gy, name)


@FD
@given(rnn_configs)
def test_reference_rnn_gradients_match_finite_differences(c):
    x, W, R, b, h0, mask, rng = _rnn_inputs(c, np.float64)
    if c["act"] == "relu":
        assume(np.abs(_pre_activations(x, W, R, b, h0, c, mask)).min(initial=1) > 1e-4)
    b = np.zeros(c["U"]) if b is None else b
    h0 = np.zeros((c["N"], c["U"])) if h0 is None else h0
    gy = rng.standard_normal((c["N"], c["T"], c["U"]))

    def f(x, W, R, b, h0):
        return rrnn.simple_rnn_forward(x, W, R, b, h0, c["act"], c["back"], mask)
    grads = rrnn.simple_rnn_backward(gy, x, W, R, b, h0, c["act"], c["back"], mask)
    assert_fd(f, [x, W, R, b, h0], grads, gy, "simple_rnn")


@FD
@given(st.sampled_from(sorted(LOSSES)), st.booleans(), st.integers(1, 3), st.integers(2, 4), st.integers(0, 2 ** 16))
def test_reference_loss_gradients_match_finite_differences(name, from_logits, N, D, seed):
    rng = np.random.default_rng(seed)
    _, values, backward, sparse = LOSSES[name]
    kw = {} if name in ("mse", "mae") else {"from_logits": from_logits}
    logits = from_logits or name in ("mse", "mae")
    p = rng.standard_normal((N, D)) if logits else rng.uniform(0.05, 0.95, (N, D))   # inside the clip range
    if name == "mae":
        p = p + 0.01 * np.sign(p)                                          # away from |p - t|'s kink at t = 0
    t = rng.integers(0, D, N) if sparse else (rng.uniform(0, 1, (N, D)) if name != "mae" else np.zeros((N, D)))
    c = rng.uniform(0.5, 2, N)
    assert_fd(lambda p: values(t, p, **kw), [p], [backward(t, p, c, **kw)], c, name)


def test_reference_tier_imports_no_fast_machinery():
    """The reference tier stands on NumPy alone: no Numba, threads, scratch pools or fast kernels."""
    import ast
    import pathlib
    import numbanet.reference as ref
    for path in pathlib.Path(ref.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert all(a.name in ("numpy", "math") for a in node.names), f"{path.name}: {ast.dump(node)}"
            elif isinstance(node, ast.ImportFrom):
                assert node.level > 0 or node.module in ("numpy", "math", "__future__"), \
                    f"{path.name} imports from {node.module}"
