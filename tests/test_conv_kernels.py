"""The Numba kernels against the reference tier (numbanet/reference/), float32 and float64."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numbanet.fast.kernels.im2col import col2im, im2col
from numbanet.fast.kernels.pooling import max_pool_backward, max_pool_forward
from numbanet.fast.kernels.upsample import (upsample_bilinear_backward, upsample_bilinear_forward,
                                              upsample_nearest_backward, upsample_nearest_forward)

from bounds import assert_within, bilinear_bound, eps_of, sum_bound
from numbanet.reference.conv import col2im as col2im_ref, im2col as im2col_ref
from numbanet.reference.pooling import max_pool2d_backward as max_pool_backward_ref, max_pool2d_forward as max_pool_ref
from numbanet.reference.upsample import (upsample_bilinear_backward as bilinear_backward_ref,
                                         upsample_bilinear_forward as bilinear_ref,
                                         upsample_nearest_backward as nearest_backward_ref,
                                         upsample_nearest_forward as nearest_ref)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def window_case(draw):
    """Image, kernel, strides and explicit pads (tests skip draws with no output pixel)."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    PT, PB = draw(st.integers(0, KH - 1)), draw(st.integers(0, KH - 1))
    PL, PR = draw(st.integers(0, KW - 1)), draw(st.integers(0, KW - 1))
    dtype = draw(DTYPES)
    x = np.random.default_rng(draw(st.integers(0, 999))).standard_normal((N, H, W, C)).astype(dtype)
    return x, (KH, KW, SH, SW, PT, PB, PL, PR)


@SETTINGS
@given(window_case())
def test_im2col_matches_numpy_twin(case):
    x, (KH, KW, SH, SW, PT, PB, PL, PR) = case
    assume(x.shape[1] + PT + PB >= KH and x.shape[2] + PL + PR >= KW)
    col = im2col(x, KH, KW, SH, SW, PT, PB, PL, PR)
    assert col.dtype == x.dtype
    np.testing.assert_array_equal(col, im2col_ref(x, KH, KW, SH, SW, PT, PB, PL, PR))


@SETTINGS
@given(window_case())
def test_col2im_matches_twin_and_is_adjoint_of_im2col(case):
    x, (KH, KW, SH, SW, PT, PB, PL, PR) = case
    N, H, W, C = x.shape
    assume(H + PT + PB >= KH and W + PL + PR >= KW)
    col = np.random.default_rng(1).standard_normal(im2col(x, KH, KW, SH, SW, PT, PB, PL, PR).shape)
    col = col.astype(x.dtype)
    gx = col2im(col, H, W, SH, SW, PT, PL)
    # each pixel sums the <= KH*KW window cells that cover it, in x's precision
    gx_bound = bilinear_bound(col2im_ref(np.abs(col), H, W, SH, SW, PT, PL), KH * KW, eps_of(x))
    assert_within(gx, col2im_ref(col, H, W, SH, SW, PT, PL), gx_bound)
    # <im2col(x), col> == <x, col2im(col)>: col2im is im2col's transpose. The same products
    # grouped two ways (float64 sums), plus gx's own rounding weighted by |x|
    products = im2col(x, KH, KW, SH, SW, PT, PB, PL, PR).astype(np.float64) * col
    lhs = np.sum(products)
    rhs = np.sum(x.astype(np.float64) * gx)
    assert_within(lhs, rhs, sum_bound(products) + np.sum(np.abs(x) * gx_bound), "adjoint")


def test_col2im_output_larger_than_windows_reach():
    """Transposed convolution case: the last rows are reached by no window and stay 0."""
    col = np.ones((1, 2, 2, 3, 3, 1))
    gx = col2im(col, 7, 6, 2, 2, 0, 0)          # windows cover rows 0..4 only
    np.testing.assert_array_equal(gx, col2im_ref(col, 7, 6, 2, 2, 0, 0))   # sums of a few ones: exact
    assert gx[0, 5:].sum() == 0 and gx[0, :, 5:].sum() == 0


def _distinct(shape, dtype, seed):
    """Values with no ties (a shuffled ramp), so the arg-max is unique."""
    v = np.random.default_rng(seed).permutation(int(np.prod(shape))).astype(dtype)
    return (v / max(v.size, 1) - 0.5).reshape(shape)


@SETTINGS
@given(window_case(), st.booleans())
def test_max_pool_matches_numpy_twin(case, ties):
    x, (KH, KW, SH, SW, PT, PB, PL, PR) = case
    N, H, W, C = x.shape
    # keep every window on at least one real cell, as the valid/same rules guarantee
    PT, PL = min(PT, KH - 1), min(PL, KW - 1)
    OH, OW = (H + PT + PB - KH) // SH + 1, (W + PL + PR - KW) // SW + 1
    assume(OH >= 1 and OW >= 1 and (OH - 1) * SH - PT < H and (OW - 1) * SW - PL < W)
    if ties:  # many equal values: the first maximum in row-major order must win
        x = np.round(x).astype(x.dtype)
    y, arg = max_pool_forward(x, KH, KW, SH, SW, PT, PL, OH, OW)
    y_ref, arg_ref = max_pool_ref(x, KH, KW, SH, SW, PT, PL, OH, OW)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)            # both window-local, ki*KW + kj
    gy = np.random.default_rng(2).standard_normal(y.shape).astype(x.dtype)
    np.testing.assert_allclose(max_pool_backward(gy, arg, KH, KW, SH, SW, PT, PL, H, W),
                               max_pool_backward_ref(gy, arg_ref, KH, KW, SH, SW, PT, PL, H, W), rtol=1e-6, atol=1e-6)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 3, 3, 1)) * 5.0          # all negative: a zero pad would win
    y, arg = max_pool_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)  # "same": pad 1 at bottom/right
    np.testing.assert_array_equal(y, -5.0)


@st.composite
def upsample_case(draw):
    N, H, W, C = (draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 3)))
    S = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    x = np.random.default_rng(draw(st.integers(0, 999))).standard_normal((N, H, W, C)).astype(draw(DTYPES))
    return x, S


@SETTINGS
@given(upsample_case())
def test_nearest_matches_numpy_twin(case):
    x, (SH, SW) = case
    y = upsample_nearest_forward(x, SH, SW)
    np.testing.assert_array_equal(y, nearest_ref(x, SH, SW))
    gy = np.random.default_rng(3).standard_normal(y.shape).astype(x.dtype)
    np.testing.assert_allclose(upsample_nearest_backward(gy, SH, SW), nearest_backward_ref(gy, SH, SW),
                               rtol=1e-5, atol=1e-5)


@SETTINGS
@given(upsample_case())
def test_bilinear_matches_numpy_twin(case):
    x, (SH, SW) = case
    y = upsample_bilinear_forward(x, SH, SW)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y, bilinear_ref(x, SH, SW), rtol=1e-5, atol=1e-5)
    gy = np.random.default_rng(4).standard_normal(y.shape).astype(x.dtype)
    np.testing.assert_allclose(upsample_bilinear_backward(gy, SH, SW), bilinear_backward_ref(gy, SH, SW),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pads", [(0, 0, 5, 0), (0, 0, 0, 5), (4, 3, 0, 0), (4, 4, 4, 4)])
def test_windows_wholly_in_the_padding(pads):
    """Pads wider than the kernel (explicit padding): whole windows fall outside the image."""
    PT, PB, PL, PR = pads
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2))
    col = im2col(x, 2, 2, 1, 1, PT, PB, PL, PR)
    np.testing.assert_array_equal(col, im2col_ref(x, 2, 2, 1, 1, PT, PB, PL, PR))
    g = np.random.default_rng(1).standard_normal(col.shape)
    # each pixel sums the <= KH*KW = 4 window cells that cover it, perhaps in another order
    bound = bilinear_bound(col2im_ref(np.abs(g), 3, 4, 1, 1, PT, PL), 4)
    assert_within(col2im(g, 3, 4, 1, 1, PT, PL), col2im_ref(g, 3, 4, 1, 1, PT, PL), bound)


def test_relu_mask_kernel_matches_numpy():
    from numbanet.fast.kernels.elementwise import relu_mask_into
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        gy, y = rng.standard_normal((3, 5, 4, 2)).astype(dtype), rng.standard_normal((3, 5, 4, 2)).astype(dtype)
        y[0, 0, 0, 0], y[0, 0, 0, 1], gy[1, 0, 0, 0] = np.nan, 0.0, np.nan
        y[1, 0, 0, 0] = 1.0                                   # NaN gradient where the relu is open: kept
        gz = np.full_like(gy, 7.0)
        relu_mask_into(gy, y, gz)
        np.testing.assert_array_equal(gz, np.where(y > 0, gy, 0))
