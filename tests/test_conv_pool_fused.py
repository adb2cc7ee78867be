"""Conv2D(relu) -> MaxPooling2D as one node (nb.functional.conv2d_relu_maxpool): the fast tier's fused
chunks and the reference tier's composition, against plain NumPy written here, and their gradients.

Bound: the pooled value is a maximum of convolution outputs, and max is 1-Lipschitz in the max norm,
so |p - p_exact| <= max over the window of |y - y_exact|, bounded by the convolution's own bound
``SAFETY * (K + 1) * eps * (|x| conv |W| + |b|)`` (K = KH*KW*C products and the bias), taken over the
window; where the chunks take a Winograd route the bound is ``test_winograd.py``'s instead (the
algorithm run on absolute values, n = C + 14 roundings for F(2x2), C + 28 for F(4x4)).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import Tensor, check_grad
from numbanet.fast import routes, tuning
from numbanet.fast import winograd as FW

from bounds import bilinear_bound
from test_winograd import ROUNDINGS, magnitude

F = nb.functional
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def same_pads(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def np_conv(x, W, b, strides, pads):
    """y[n, o, q, f] = b[f] + sum_(k, l, c) xp[n, o*SH + k, q*SW + l, c] W[k, l, c, f]."""
    PT, PB, PL, PR = pads
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))
    KH, KW = W.shape[:2]
    SH, SW = strides
    OH, OW = (xp.shape[1] - KH) // SH + 1, (xp.shape[2] - KW) // SW + 1
    y = np.zeros((x.shape[0], OH, OW, W.shape[3])) + b
    for k in range(KH):
        for l in range(KW):
            y += np.einsum("nhwc,cf->nhwf", xp[:, k:k + (OH - 1) * SH + 1:SH, l:l + (OW - 1) * SW + 1:SW], W[k, l])
    return y


def np_max_pool(y, pool, strides, padding):
    """Each window's maximum, padding cells -inf (never win): y (N, H, W, C) -> (N, PH, PW, C)."""
    (KH, KW), (SH, SW) = pool, strides
    N, H, Wd, C = y.shape
    if padding == "same":
        (PT, PB), (PL, PR) = same_pads(H, KH, SH), same_pads(Wd, KW, SW)
    else:
        PT = PB = PL = PR = 0
    yp = np.pad(y, ((0, 0), (PT, PB), (PL, PR), (0, 0)), constant_values=-np.inf)
    PH, PW = (yp.shape[1] - KH) // SH + 1, (yp.shape[2] - KW) // SW + 1
    out = np.full((N, PH, PW, C), -np.inf)
    for k in range(KH):
        for l in range(KW):
            out = np.maximum(out, yp[:, k:k + (PH - 1) * SH + 1:SH, l:l + (PW - 1) * SW + 1:SW])
    return out


@st.composite
def case(draw):
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, C, Fo = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, Wd = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    K = draw(st.sampled_from([1, 2, 3]))
    S = draw(st.sampled_from([1, 2])) if K != 3 else draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.sampled_from(["valid", "same"]))
    pool = draw(st.sampled_from([2, 3]))
    pool_stride = draw(st.sampled_from([1, 2, pool]))
    pool_padding = draw(st.sampled_from(["valid", "same"]))
    pads = ((*same_pads(H, K, S), *same_pads(Wd, K, S)) if padding == "same" else (0, 0, 0, 0))
    OH, OW = (H + pads[0] + pads[1] - K) // S + 1, (Wd + pads[2] + pads[3] - K) // S + 1
    assume(pool_padding == "same" or (OH >= pool and OW >= pool))
    x = rng.standard_normal((N, H, Wd, C))
    W = rng.standard_normal((K, K, C, Fo))
    b = rng.standard_normal(Fo) * 0.5
    return x, W, b, (S, S), padding, pads, (pool, pool), (pool_stride, pool_stride), pool_padding


@pytest.fixture(params=["fast", "fast-winograd", "fast-winograd2", "reference"])
def tier_name(request, monkeypatch):
    """The two tiers; "fast-winograd" lowers the Winograd threshold so the small 3x3 stride-1 layers take that
    route (F(4x4, 3x3), the default tile), "fast-winograd2" also with F(2x2, 3x3)."""
    if request.param.startswith("fast-winograd"):
        monkeypatch.setattr(tuning, "WINOGRAD_MIN_CHANNELS", 1)
    if request.param == "fast-winograd2":
        monkeypatch.setattr(tuning, "WINOGRAD_FORWARD_TILE", 2)
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 2048)     # several chunks per thread even for small batches
    with nb.kernels("reference" if request.param == "reference" else "fast"):
        yield request.param


@SETTINGS
@given(c=case(), dtype=st.sampled_from([np.float32, np.float64]))
def test_pooled_map_equals_numpy(tier_name, c, dtype):
    x, W, b, strides, padding, pads, pool, pool_strides, pool_padding = c
    p = F.conv2d_relu_maxpool(Tensor(x.astype(dtype)), Tensor(W.astype(dtype)), Tensor(b.astype(dtype)), strides,
                              padding, pool, pool_strides, pool_padding).numpy()
    expected = np_max_pool(np.maximum(np_conv(x, W, b, strides, pads), 0), pool, pool_strides, pool_padding)
    K = W.shape[0] * W.shape[1] * W.shape[2]
    fused_way = routes.last("conv2d_relu_maxpool_forward") if tier_name != "reference" else ""
    way = fused_way.rsplit(": ", 1)[-1]
    if way in FW.ROUTE_TILES:                   # the Winograd algorithm on absolute values, its roundings
        m = FW.ROUTE_TILES[way]
        conv_bound = bilinear_bound(magnitude(x, W, pads, m) + np.abs(b), x.shape[3] + ROUNDINGS[m],
                                    np.finfo(dtype).eps)
    else:
        conv_bound = bilinear_bound(np_conv(np.abs(x), np.abs(W), np.abs(b), strides, pads), K + 1,
                                    np.finfo(dtype).eps)
    window_bound = np_max_pool(conv_bound, pool, pool_strides, pool_padding)
    assert p.dtype == dtype and p.shape == expected.shape
    np.testing.assert_array_less(np.abs(p - expected), window_bound + 1e-300)
    if tier_name.startswith("fast-winograd") and strides == (1, 1) and W.shape[0] == 3:
        assert way == FW.ROUTE_NAMES[tuning.WINOGRAD_FORWARD_TILE], fused_way
    if tier_name != "reference":
        # each chunk takes the route the unfused convolution takes for the same layer
        F.conv2d(Tensor(x.astype(dtype)), Tensor(W.astype(dtype)), Tensor(b.astype(dtype)), strides, padding,
                 activation="relu")
        assert fused_way.endswith(": " + routes.last("conv2d_forward")), (fused_way, routes.last("conv2d_forward"))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(c=case())
def test_gradients_by_finite_differences(tier_name, c):
    x, W, b, strides, padding, pads, pool, pool_strides, pool_padding = c
    # central differences step every weight by 1e-6, moving a pre-activation by up to 1e-6 * sum|x|:
    # one that close to relu's kink (or two window values that close to a tie) has no derivative there
    y = np_conv(x, W, b, strides, pads)
    assume(np.abs(y).min() > 1e-6 * (np.abs(x).sum() + 1))

    def fn(x, W, b):
        return F.conv2d_relu_maxpool(x, W, b, strides, padding, pool, pool_strides, pool_padding)

    p = fn(Tensor(x), Tensor(W), Tensor(b))
    check_grad(fn, x, W, b, grad_output=np.random.default_rng(0).standard_normal(p.shape), raise_on_failure=True)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(c=case())
def test_same_gradients_as_the_two_layers(tier_name, c):
    """Backward through the fused node equals backward through conv2d(relu) then max_pool2d (float64)."""
    x, W, b, strides, padding, pads, pool, pool_strides, pool_padding = c
    gp = np.random.default_rng(1).standard_normal(
        F.conv2d_relu_maxpool(Tensor(x), Tensor(W), Tensor(b), strides, padding, pool, pool_strides,
                              pool_padding).shape)
    grads = []
    for fused in (True, False):
        xs, Ws, bs = (Tensor(a, requires_grad=True) for a in (x, W, b))
        if fused:
            p = F.conv2d_relu_maxpool(xs, Ws, bs, strides, padding, pool, pool_strides, pool_padding)
        else:
            p = F.max_pool2d(F.conv2d(xs, Ws, bs, strides, padding, "relu"), pool, pool_strides, pool_padding)
        (p * Tensor(gp)).sum().backward()
        grads.append([t.grad.numpy() if hasattr(t.grad, "numpy") else np.asarray(t.grad) for t in (xs, Ws, bs)])
    # every gradient is a sum of products of gp with W (gx), x (gW) or 1 (gb): bounded by these sums of |terms|
    gp_sum = np.abs(gp).sum()
    magnitudes = (np.abs(W).sum() * gp_sum, np.abs(x).sum() * gp_sum, gp_sum)
    n_terms = x.size + W.size + gp.size
    for g1, g2, magnitude in zip(*grads, magnitudes):
        np.testing.assert_allclose(g1, g2, rtol=0, atol=bilinear_bound(16 * magnitude, n_terms))


@pytest.mark.parametrize("tile", [4, 2])
def test_w2_block_takes_the_fused_winograd_route(tile, monkeypatch):
    """W2's second block, Conv2D(64, 3, relu) on (13, 13, 32) then MaxPooling2D(2): Winograd inside the fused node,
    F(4x4, 3x3) by default (3x3 tiles of 4 cover the 11x11 map, one row and column cut off), or F(2x2, 3x3)."""
    monkeypatch.setattr(tuning, "WINOGRAD_FORWARD_TILE", tile)
    rng = np.random.default_rng(0)
    x = rng.random((8, 13, 13, 32), dtype=np.float32)
    W = (rng.standard_normal((3, 3, 32, 64)) * 0.1).astype(np.float32)
    b = np.zeros(64, np.float32)
    with nb.kernels("fast"):
        p = F.conv2d_relu_maxpool(Tensor(x), Tensor(W), Tensor(b)).numpy()
        assert routes.last("conv2d_relu_maxpool_forward").endswith(": " + FW.ROUTE_NAMES[tile])
    expected = np_max_pool(np.maximum(np_conv(x.astype(float), W.astype(float), b, (1, 1), (0, 0, 0, 0)), 0),
                           (2, 2), (2, 2), "valid")
    assert p.shape == (8, 5, 5, 64)
    bound = bilinear_bound(magnitude(x, W, (0, 0, 0, 0), tile), 32 + ROUNDINGS[tile], np.finfo(np.float32).eps)
    np.testing.assert_array_less(np.abs(p - expected), np_max_pool(bound, (2, 2), (2, 2), "valid"))


@pytest.mark.parametrize("x_shape, W_shape, kwargs, message", [
    ((1, 8, 8, 2), (3, 3, 4, 3), {}, r"input has 2 channels but the kernel of shape \(3, 3, 4, 3\) expects 4"),
    ((1, 3, 3, 2), (3, 3, 2, 3), {},
     r"pool_size \(2, 2\) is larger than the convolution's output \(1, 1\)"),
    ((1, 2, 2, 2), (3, 3, 2, 3), {}, r"kernel \(3, 3\) is larger than the padded input"),
    ((1, 8, 8, 2), (3, 3, 2, 3), {"pool_padding": "full"}, r"padding"),
    ((1, 8, 8, 2), (3, 3, 2, 3), {"b": np.zeros(4)}, r"bias must have shape \(3,\), got \(4,\)"),
])
def test_bad_input(x_shape, W_shape, kwargs, message):
    b = kwargs.pop("b", None)
    with pytest.raises(ValueError, match=message):
        F.conv2d_relu_maxpool(Tensor(np.zeros(x_shape)), Tensor(np.zeros(W_shape)),
                              None if b is None else Tensor(b), **kwargs)


@st.composite
def first_layer_case(draw):
    """A one-channel stride-1 layer with a pool whose windows tile its output ("valid" pooling)."""
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, H, Wd = draw(st.integers(1, 3)), draw(st.integers(3, 12)), draw(st.integers(3, 12))
    K, filters = draw(st.sampled_from([2, 3])), draw(st.integers(1, 40))
    padding, pool = draw(st.sampled_from(["valid", "same"])), draw(st.sampled_from([2, 3]))
    OH, OW = (H, Wd) if padding == "same" else (H - K + 1, Wd - K + 1)
    assume(OH >= pool and OW >= pool)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal((N, H, Wd, 1)).astype(dtype)
    W = rng.standard_normal((K, K, 1, filters)).astype(dtype)
    b = (rng.standard_normal(filters) * 0.5).astype(dtype)
    return x, W, b, ((1, 1), padding, (pool, pool), (pool, pool), "valid")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=first_layer_case())
def test_first_layer_builds_gz_by_rows(c):
    """A one-channel layer whose input wants no gradient (a first layer), pool windows tiling its output:
    the fast tier builds gz row by row inside the weight-gradient loops
    (``kernels/direct_conv.py: direct_weight_grad_one_channel_pooled_add``); gW and gb equal the reference
    tier's within the rounding of their sums of |x * gp| and |gp| terms (rows and columns past the last
    window included: 3x3 pools of sizes not divisible by 3)."""
    x, W, b, args = c
    gp = np.random.default_rng(W.shape[3]).standard_normal(
        F.conv2d_relu_maxpool(Tensor(x), Tensor(W), Tensor(b), *args).shape).astype(x.dtype)
    grads = []
    for tier in ("fast", "reference"):
        with nb.kernels(tier):
            Ws, bs = Tensor(W, requires_grad=True), Tensor(b, requires_grad=True)
            (F.conv2d_relu_maxpool(Tensor(x), Ws, bs, *args) * Tensor(gp)).sum().backward()
            grads.append((np.asarray(Ws.grad), np.asarray(bs.grad)))
            if tier == "fast":
                way = routes.last("conv2d_relu_maxpool_backward")
                assert way == "conv+relu+maxpool, fused: gz from gp by rows, conv direct", way
    (gW, gb), (gW_ref, gb_ref) = grads
    eps = np.finfo(x.dtype).eps
    gp_sum = float(np.abs(gp).sum())            # each pooled value reaches one cell of gz
    n = x.size + W.size + gp.size
    np.testing.assert_allclose(gW, gW_ref, rtol=0, atol=bilinear_bound(16 * np.abs(x).max() * gp_sum, n, eps))
    np.testing.assert_allclose(gb, gb_ref, rtol=0, atol=bilinear_bound(16 * gp_sum, n, eps))
