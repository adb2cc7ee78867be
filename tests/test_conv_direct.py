"""The direct convolution loops (kernels/direct_conv.py) against the plain-NumPy im2col reference,
and the layers that use them against the im2col + GEMM path they replace."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numbanet.engine import Tensor, check_grad
from numbanet.engine.conv import conv2d, conv2d_transpose
from numbanet.fast import conv as conv_module
from numbanet.fast.conv import uses_direct
from numbanet.fast.kernels.direct_conv import direct_forward_into, direct_weight_grad_add

from bounds import assert_within, bilinear_bound, eps_of, matmul_bound, sum_bound
from numbanet.reference.conv import col2im as col2im_ref, im2col as im2col_ref
from numbanet.reference.padding import out_size

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def direct_case(draw, max_stride=3):
    """x, W, b, gy and (SH, SW, PT, PB, PL, PR); channels up to 5 so the general loops run too."""
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    PT, PB = draw(st.integers(0, KH - 1)), draw(st.integers(0, KH - 1))
    PL, PR = draw(st.integers(0, KW - 1)), draw(st.integers(0, KW - 1))
    OH, OW = out_size(H, KH, SH, PT, PB), out_size(W, KW, SW, PL, PR)
    assume(OH >= 1 and OW >= 1)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    Wk = rng.standard_normal((KH, KW, C, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    gy = rng.standard_normal((N, OH, OW, F)).astype(dtype)
    return x, Wk, b, gy, (SH, SW, PT, PB, PL, PR)


def reference(x, Wk, b, gy, pads6, relu):
    """y, gz, gW, gb, gx by im2col / col2im in float64 (numbanet/reference/conv.py)."""
    SH, SW, PT, PB, PL, PR = pads6
    KH, KW, C, F = Wk.shape
    x64, W2 = x.astype(np.float64), Wk.reshape(-1, F).astype(np.float64)
    col = im2col_ref(x64, KH, KW, SH, SW, PT, PB, PL, PR)            # (N, OH, OW, KH, KW, C)
    z = col.reshape(-1, W2.shape[0]) @ W2 + b
    y = np.maximum(z, 0) if relu else z
    gz = gy.reshape(-1, F) * (y > 0) if relu else gy.reshape(-1, F).astype(np.float64)
    gW = (col.reshape(-1, W2.shape[0]).T @ gz).reshape(Wk.shape)
    gx = col2im_ref((gz @ W2.T).reshape(col.shape), x.shape[1], x.shape[2], SH, SW, PT, PL)
    return y.reshape(gy.shape), gz.reshape(gy.shape), gW, gz.sum(0), gx


def reference_bounds(x, Wk, b, gy, pads6, relu):
    """Rounding bounds for y, gz, gW, gb, gx of a kernel in x's precision against ``reference``
    (tests/bounds.py); a relu pre-activation within y's bound of 0 is an ``assume`` failure."""
    SH, SW, PT, PB, PL, PR = pads6
    KH, KW, C, F = Wk.shape
    eps = eps_of(x)
    col = im2col_ref(x.astype(np.float64), KH, KW, SH, SW, PT, PB, PL, PR)
    col2, W2 = col.reshape(-1, KH * KW * C), Wk.reshape(-1, F).astype(np.float64)
    b_y = matmul_bound(col2, W2, add=b, eps=eps)
    if relu:
        assume(np.all(np.abs(col2 @ W2 + b) > b_y))          # both sides take the same relu branch
    gz = np.abs(gy.reshape(-1, F).astype(np.float64))         # |gz| <= |gy|
    b_gx = bilinear_bound(col2im_ref((gz @ np.abs(W2).T).reshape(col.shape), x.shape[1], x.shape[2],
                                     SH, SW, PT, PL), F + KH * KW, eps)
    return (b_y.reshape(gy.shape), 0.0, matmul_bound(col2.T, gz, eps=eps).reshape(Wk.shape),
            sum_bound(gz, axis=0, eps=eps), b_gx)


def path_bounds(fn, x, Wk, b, gy):
    """Bounds for two routes of one convolution (y, gx, gW, gb): the same operation on |x|,
    |W|, |b| and |gy| gives each output's sum of |products|; n counts the products of the
    longest of those sums (a window with its bias, a pixel's covering windows, the batch)."""
    mag = _run(fn, np.abs(x), np.abs(Wk), np.abs(b), np.abs(gy))
    n = max(Wk.size + 1, gy.size)
    return [bilinear_bound(m, n) for m in mag]


@SETTINGS
@given(direct_case(), st.booleans())
def test_direct_kernels_match_im2col_reference(case, relu):
    x, Wk, b, gy, pads6 = case
    SH, SW, PT, _, PL, _ = pads6
    y_ref, gz_ref, gW_ref, gb_ref, _ = reference(x, Wk, b, gy, pads6, relu)
    b_y, b_gz, b_gW, b_gb, _ = reference_bounds(x, Wk, b, gy, pads6, relu)

    y = np.empty_like(gy)
    direct_forward_into(x, Wk, b, SH, SW, PT, PL, relu, y)
    assert_within(y, y_ref, b_y, "y")

    gW, gb, gz = np.zeros_like(Wk), np.zeros_like(b), np.full_like(gy, np.nan)
    direct_weight_grad_add(x, gy, y if relu else gy, relu, SH, SW, PT, PL, gW, gb, gz)
    assert_within(gW, gW_ref, b_gW, "gW")
    assert_within(gb, gb_ref, b_gb, "gb")
    assert_within(gz, gz_ref, b_gz, "gz")   # gy or 0, copied: exact; every cell written (no NaN left)

    # the kernel adds into gW, gb: a second call doubles them; a zero-size gz skips writing it
    direct_weight_grad_add(x, gy, y if relu else gy, relu, SH, SW, PT, PL, gW, gb, np.empty((0, 0, 0, 0), x.dtype))
    assert_within(gW, 2 * gW_ref, 2 * b_gW + 2 * eps_of(x) * np.abs(2 * gW_ref), "2 gW")
    assert_within(gb, 2 * gb_ref, 2 * b_gb + 2 * eps_of(x) * np.abs(2 * gb_ref), "2 gb")


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 40), st.integers(1, 11), st.integers(1, 11),
       st.tuples(*[st.integers(0, 2)] * 4), st.booleans(), st.sampled_from([np.float32, np.float64]))
def test_one_channel_3x3_forward_matches_im2col_reference(seed, N, F, H, W, pads, relu, dtype):
    """The one-channel 3x3 stride-1 forward (a first layer): the run of pixels whose windows lie inside the
    image goes two at a time (an odd one left at the end), the edge pixels one by one; any F, image size
    and padding (0-2 each side, so rows and columns with no interior run occur too)."""
    PT, PB, PL, PR = pads
    OH, OW = out_size(H, 3, 1, PT, PB), out_size(W, 3, 1, PL, PR)
    assume(OH >= 1 and OW >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, 1)).astype(dtype)
    Wk = rng.standard_normal((3, 3, 1, F)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    gy = np.zeros((N, OH, OW, F), dtype)
    y_ref = reference(x, Wk, b, gy, (1, 1, *pads), relu)[0]
    b_y = reference_bounds(x, Wk, b, gy, (1, 1, *pads), relu)[0]
    y = np.full_like(gy, np.nan)                                   # every pixel must be written
    direct_forward_into(x, Wk, b, 1, 1, PT, PL, relu, y)
    assert_within(y, y_ref, b_y, "y")


@SETTINGS
@given(direct_case(max_stride=1))
def test_stride1_input_grad_is_the_flipped_full_convolution(case):
    """gx = conv(gz padded by (K-1-P), W flipped, channels swapped): what Conv2D's direct backward uses."""
    x, Wk, _, gy, pads6 = case
    SH, SW, PT, PB, PL, PR = pads6
    KH, KW, C, _ = Wk.shape
    gx_ref = reference(x, Wk, np.zeros(Wk.shape[3]), gy, pads6, False)[4]
    Wf = np.ascontiguousarray(Wk[::-1, ::-1].transpose(0, 1, 3, 2))
    gx = np.empty_like(x)
    direct_forward_into(gy, Wf, np.zeros(C, x.dtype), 1, 1, KH - 1 - PT, KW - 1 - PL, False, gx)
    b_gx = reference_bounds(x, Wk, np.zeros(Wk.shape[3]), gy, pads6, False)[4]
    assert_within(gx, gx_ref, b_gx, "gx")


def test_dispatch_rule():
    assert uses_direct(1, 32, 1, 1) and uses_direct(16, 1, 1, 1)
    assert not uses_direct(16, 8, 1, 1)          # both sides wide: im2col + GEMM
    assert not uses_direct(1, 32, 2, 1)          # strided: im2col


def _run(fn, x, Wk, b, gy):
    tx, tW, tb = (Tensor(a, requires_grad=True) for a in (x, Wk, b))
    y = fn(tx, tW, tb)
    y.backward(gy)
    return y.data, tx.grad, tW.grad, tb.grad


CASES = [  # (N, H, W, C, F, K, padding): first layers, output layers, and a transposed one
    (3, 9, 8, 1, 6, 3, "valid"), (2, 7, 9, 1, 4, 3, "same"), (2, 8, 8, 5, 1, 3, "same"),
    (2, 6, 7, 4, 1, 2, "valid"), (2, 5, 5, 1, 1, 3, "same")]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("N,H,W,C,F,K,padding", CASES)
def test_direct_path_equals_im2col_path(monkeypatch, N, H, W, C, F, K, padding, relu):
    """Conv2D through the direct loops gives the same y, gx, gW, gb as through im2col + GEMM."""
    monkeypatch.setattr(conv_module, "uses_planes", lambda *a: False)   # tests/test_conv_narrow.py tests those
    rng = np.random.default_rng(N * 100 + C * 10 + F)
    x, Wk = rng.standard_normal((N, H, W, C)), rng.standard_normal((K, K, C, F))
    b = rng.standard_normal(F)
    gy = rng.standard_normal(conv2d(x, Wk, b, 1, padding).shape)
    fn = lambda x, W, b: conv2d(x, W, b, 1, padding, activation="relu" if relu else None)  # noqa: E731
    assert uses_direct(C, F, 1, 1)
    direct = _run(fn, x, Wk, b, gy)
    bounds = path_bounds(lambda x, W, b: conv2d(x, W, b, 1, padding), x, Wk, b, gy)
    if relu:
        z = conv2d(x, Wk, b, 1, padding).data
        assert np.all(np.abs(z) > bounds[0]), "a pre-activation within rounding of the relu kink"
    monkeypatch.setattr(conv_module, "uses_direct", lambda *a: False)
    for got, want, bound, name in zip(direct, _run(fn, x, Wk, b, gy), bounds, ("y", "gx", "gW", "gb")):
        assert_within(got, want, bound, name)


@pytest.mark.parametrize("N,H,W,C,F,K,padding", CASES)
def test_direct_transpose_path_equals_im2col_path(monkeypatch, N, H, W, C, F, K, padding):
    """Conv2DTranspose (kernel (K, K, filters, in)) through the direct loops against im2col + GEMM."""
    monkeypatch.setattr(conv_module, "uses_planes", lambda *a: False)
    rng = np.random.default_rng(7 + N + C + F)
    x, Wk = rng.standard_normal((N, H, W, C)), rng.standard_normal((K, K, F, C))
    b = rng.standard_normal(F)
    gy = rng.standard_normal(conv2d_transpose(x, Wk, b, 1, padding).shape)
    fn = lambda x, W, b: conv2d_transpose(x, W, b, 1, padding)  # noqa: E731
    direct = _run(fn, x, Wk, b, gy)
    bounds = path_bounds(fn, x, Wk, b, gy)
    monkeypatch.setattr(conv_module, "uses_direct", lambda *a: False)
    for got, want, bound, name in zip(direct, _run(fn, x, Wk, b, gy), bounds, ("y", "gx", "gW", "gb")):
        assert_within(got, want, bound, name)


@pytest.mark.parametrize("N,H,W,C,F,K,padding", CASES[:3])
def test_direct_relu_conv_gradients_against_finite_differences(N, H, W, C, F, K, padding):
    """The fused relu through the direct path, against central differences (inputs kept off the kink)."""
    rng = np.random.default_rng(3)
    x, Wk = rng.standard_normal((N, H, W, C)), rng.standard_normal((K, K, C, F))
    b = rng.standard_normal(F)
    z = conv2d(x, Wk, b, 1, padding).data
    assert np.abs(z).min() > 1e-4, "a pre-activation sits on the relu kink: pick another seed"
    assert (z > 0).any() and (z < 0).any()                             # both sides of the relu taken
    check_grad(lambda x, W, b: conv2d(x, W, b, 1, padding, activation="relu"), x, Wk, b, raise_on_failure=True)


@pytest.mark.parametrize("pads6", [(1, 1, 0, 0, 5, 0), (1, 1, 0, 0, 0, 5), (1, 1, 4, 3, 0, 0), (2, 1, 4, 4, 4, 4)])
@pytest.mark.parametrize("C,F", [(1, 3), (3, 1), (2, 2)])
def test_direct_windows_wholly_in_the_padding(pads6, C, F):
    SH, SW, PT, PB, PL, PR = pads6
    rng = np.random.default_rng(0)
    x, Wk, b = rng.standard_normal((2, 3, 4, C)), rng.standard_normal((2, 2, C, F)), rng.standard_normal(F)
    gy = rng.standard_normal((2, out_size(3, 2, SH, PT, PB), out_size(4, 2, SW, PL, PR), F))
    y_ref, _, gW_ref, gb_ref, _ = reference(x, Wk, b, gy, pads6, False)
    y = np.empty_like(gy)
    direct_forward_into(x, Wk, b, SH, SW, PT, PL, False, y)
    b_y, _, b_gW, b_gb, _ = reference_bounds(x, Wk, b, gy, pads6, False)
    assert_within(y, y_ref, b_y, "y")
    gW, gb = np.zeros_like(Wk), np.zeros_like(b)
    direct_weight_grad_add(x, gy, gy, False, SH, SW, PT, PL, gW, gb, np.empty((0, 0, 0, 0)))
    assert_within(gW, gW_ref, b_gW, "gW")
    assert_within(gb, gb_ref, b_gb, "gb")


@pytest.mark.parametrize("strides,padding", [(1, "valid"), (2, "same"), (1, "same")])
@pytest.mark.parametrize("C,F", [(3, 2), (1, 4), (4, 1)])
def test_fused_relu_transpose_equals_separate_relu(strides, padding, C, F):
    """conv2d_transpose(activation="relu") against conv2d_transpose followed by the relu op: y and every gradient."""
    from numbanet.engine import functional as Fn
    rng = np.random.default_rng(C * 10 + F + strides)
    x, Wk, b = rng.standard_normal((2, 4, 5, C)), rng.standard_normal((3, 3, F, C)), rng.standard_normal(F)
    gy = rng.standard_normal(conv2d_transpose(x, Wk, b, strides, padding).shape)
    fused = _run(lambda x, W, b: conv2d_transpose(x, W, b, strides, padding, activation="relu"), x, Wk, b, gy)
    separate = _run(lambda x, W, b: Fn.relu(conv2d_transpose(x, W, b, strides, padding)), x, Wk, b, gy)
    assert (fused[0] == 0).any() and (fused[0] > 0).any()
    bounds = path_bounds(lambda x, W, b: conv2d_transpose(x, W, b, strides, padding), x, Wk, b, gy)
    z = conv2d_transpose(x, Wk, b, strides, padding).data
    assert np.all(np.abs(z) > bounds[0]), "a pre-activation within rounding of the relu kink"
    for got, want, bound, name in zip(fused, separate, bounds, ("y", "gx", "gW", "gb")):
        assert_within(got, want, bound, name)


FLIP_CASES = [  # (N, H, W, C, F, (KH, KW), padding): fewer filters than channels, stride 1
    (2, 7, 6, 5, 3, (3, 3), "same"), (3, 8, 9, 4, 2, (3, 2), "valid"), (2, 6, 6, 6, 4, (2, 3), "same"),
    (1, 5, 7, 3, 2, (1, 1), "valid")]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("N,H,W,C,F,K,padding", FLIP_CASES)
def test_flipped_convolution_equals_plain_im2col(monkeypatch, N, H, W, C, F, K, padding, relu):
    """Forward and weight gradient through the flipped convolution: the same numbers as plain im2col."""
    from numbanet.fast.conv import flips_roles
    assert flips_roles(C, F, 1, 1)
    monkeypatch.setattr(conv_module, "uses_planes", lambda *a: False)
    rng = np.random.default_rng(N + H + C * F)
    x, Wk = rng.standard_normal((N, H, W, C)), rng.standard_normal((*K, C, F))
    b = rng.standard_normal(F)
    gy = rng.standard_normal(conv2d(x, Wk, b, 1, padding).shape)
    fn = lambda x, W, b: conv2d(x, W, b, 1, padding, activation="relu" if relu else None)  # noqa: E731
    flipped = _run(fn, x, Wk, b, gy)
    bounds = path_bounds(lambda x, W, b: conv2d(x, W, b, 1, padding), x, Wk, b, gy)
    if relu:
        assert np.all(np.abs(conv2d(x, Wk, b, 1, padding).data) > bounds[0]), "a pre-activation at the relu kink"
    monkeypatch.setattr(conv_module, "flips_roles", lambda *a: False)
    for got, want, bound, name in zip(flipped, _run(fn, x, Wk, b, gy), bounds, ("y", "gx", "gW", "gb")):
        assert_within(got, want, bound, name)


@SETTINGS
@given(direct_case(max_stride=1), st.booleans())
def test_one_channel_weight_grad_matches_im2col_reference(case, relu):
    """The row-at-a-time weight gradient for one input channel (used whenever C == 1, stride 1)."""
    from numbanet.fast.kernels.direct_conv import direct_weight_grad_one_channel_add
    x, Wk, b, gy, pads6 = case
    x, Wk = x[..., :1].copy(), Wk[:, :, :1].copy()
    _, _, PT, _, PL, PR = pads6
    assume(PL <= Wk.shape[1] and PR <= Wk.shape[1])
    y_ref, gz_ref, gW_ref, gb_ref, _ = reference(x, Wk, b, gy, pads6, relu)
    y = np.empty_like(gy)
    direct_forward_into(x, Wk, b, 1, 1, PT, PL, relu, y)
    gW, gb, gz = np.zeros_like(Wk), np.zeros_like(b), np.full_like(gy, np.nan)
    direct_weight_grad_one_channel_add(x, gy, y if relu else gy, relu, PT, PL, gW, gb, gz)
    _, b_gz, b_gW, b_gb, _ = reference_bounds(x, Wk, b, gy, pads6, relu)
    assert_within(gW, gW_ref, b_gW, "gW")
    assert_within(gb, gb_ref, b_gb, "gb")
    assert_within(gz, gz_ref, b_gz, "gz")


@SETTINGS
@given(direct_case(max_stride=1), st.booleans(), st.booleans())
def test_one_filter_row_loops_match_im2col_reference(case, relu, keep_gz):
    """The row-at-a-time forward pass and weight gradient for one filter (F == 1, stride 1)."""
    from numbanet.fast.kernels.direct_conv import (direct_forward_one_filter_into,
                                                     direct_weight_grad_one_filter_add)
    x, Wk, b, gy, pads6 = case
    Wk, b, gy = Wk[..., :1].copy(), b[:1].copy(), gy[..., :1].copy()
    _, _, PT, _, PL, _ = pads6
    y_ref, gz_ref, gW_ref, gb_ref, _ = reference(x, Wk, b, gy, pads6, relu)
    b_y, b_gz, b_gW, b_gb, _ = reference_bounds(x, Wk, b, gy, pads6, relu)
    y = np.full_like(gy, np.nan)
    direct_forward_one_filter_into(x, Wk, b, PT, PL, relu, y)
    assert_within(y, y_ref, b_y, "y")
    gW, gb = np.zeros_like(Wk), np.zeros_like(b)
    gz = np.full_like(gy, np.nan) if keep_gz else np.empty((0, 0, 0, 0), x.dtype)
    direct_weight_grad_one_filter_add(x, gy, y if relu else gy, relu, PT, PL, gW, gb, gz)
    assert_within(gW, gW_ref, b_gW, "gW")
    assert_within(gb, gb_ref, b_gb, "gb")
    if keep_gz:
        assert_within(gz, gz_ref, b_gz, "gz")
