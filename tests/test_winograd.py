"""Winograd F(2x2, 3x3) and F(4x4, 3x3): the reference tier's textbook version and the fast route,
against a direct convolution written here in plain NumPy, with error bounds derived below.

Float32 error bound. Each output of the Winograd algorithm is
Y = A^T [ sum_c (G g G^T) * (B^T d B) ] A; computed in floating point, every
rounding is relative to a partial result, and every partial result is bounded by
the same algorithm run on absolute values, |A^T| [ sum_c (|G| |g| |G|^T) * (|B^T| |d| |B|) ] |A|
(``magnitude``). Along one output's path there are at most
  input transform  1 + 1   (F(2,3)'s rows of B^T have two non-zeros: one addition per side)
  kernel transform 2 + 2 + 2 (three non-zeros per row of G: two additions per side, the 1/2 exact;
                             +2 spare, for F(4,3)'s entries of G rounded to the working precision)
  product 1, channel sum C, bias 1
  output transform 2 + 2   (three non-zeros per row of A^T)
roundings, n = C + 14, so |Y - y| <= SAFETY * n * eps * magnitude (``bounds.bilinear_bound``).
For F(4,3) the rows have up to 4 (B^T), 3 (G, entries 1/6 and 1/12 themselves
rounded) and 5 (A^T) non-zeros, with inexact products by 5, 1/6 and 1/24:
n = C + 2*(4 + 4 + 5) + 2 = C + 28. The magnitude itself grows with the
transforms: the test ``test_growth_of_the_transforms`` measures by how much
(``magnitude`` over the direct convolution's sum |g||d|).

The input gradient by the transposed forward pass, gx = the tiles B (gM @ U^T) B^T added
back, gM = A gY A^T, runs the same three transforms with their matrices transposed: A's
rows are A^T's columns (at most 4 non-zeros for F(4,3), 2 for F(2,3)) and B's rows B^T's
columns (at most 5, and 3), so one side of each transform rounds as often as the other
side did in the forward pass; the sum runs over the F filters, and a cell of gx adds the
shares of at most four overlapping tiles (tiles step by m and are m + 2 wide): three
roundings more, n = F + ROUNDINGS[m] + OVERLAP, bounded by the same algorithm on absolute
values (``input_magnitude``).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import Tensor, check_grad
from numbanet.engine import functional as EF
from numbanet.fast import routes, tuning
from numbanet.fast import winograd as FW
from numbanet.fast.kernels.winograd import (grad_transform_f43_into, input_adjoint_f23_into, input_adjoint_f43_into,
                                            input_transform_f23_into, input_transform_f43_into,
                                            output_transform_f23_into, output_transform_f43_into,
                                            output_transform_into, tiles_adjoint_into, tiles_transform_into)
from numbanet.reference import winograd as RW

from bounds import bilinear_bound

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUNDINGS = {2: 14, 4: 28}     # n = C + ROUNDINGS[m], derived in the module docstring
OVERLAP = 3                    # the input gradient's cells add up to four tiles' shares


# ------------------------------------------------ the oracle: plain NumPy, written here
def padded(x, pads):
    PT, PB, PL, PR = pads
    return np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))


def direct_conv(x, W, pads):
    """y[n, o, p, f] = sum_(k, l, c) xp[n, o + k, p + l, c] W[k, l, c, f], as 9 shifted products."""
    xp = padded(x, pads)
    OH, OW = xp.shape[1] - 2, xp.shape[2] - 2
    y = np.zeros((x.shape[0], OH, OW, W.shape[3]))
    for k in range(3):
        for l in range(3):
            y += np.einsum("nhwc,cf->nhwf", xp[:, k:k + OH, l:l + OW], W[k, l])
    return y


def direct_input_grad(gy, W, x_shape, pads):
    """gx: each shifted product sends gy back through W[k, l]^T; padding cut off."""
    PT, PB, PL, PR = pads
    N, H, Wd, C = x_shape
    OH, OW = gy.shape[1:3]
    gxp = np.zeros((N, H + PT + PB, Wd + PL + PR, C))
    for k in range(3):
        for l in range(3):
            gxp[:, k:k + OH, l:l + OW] += np.einsum("nhwf,cf->nhwc", gy, W[k, l])
    return gxp[:, PT:PT + H, PL:PL + Wd]


def direct_weight_grad(x, gy, pads):
    xp = padded(x, pads)
    OH, OW = gy.shape[1:3]
    return np.stack([np.stack([np.einsum("nhwc,nhwf->cf", xp[:, k:k + OH, l:l + OW], gy) for l in range(3)])
                     for k in range(3)])


def abs_tiles(x, pads, m, tiles_hw):
    """|B^T| |d| |B| of every input tile: (N, TH, TW, a, a, C)."""
    aBT = np.abs(RW.ALGORITHMS[m]["BT"])
    (TH, TW), xp = tiles_hw, padded(np.abs(x).astype(np.float64), pads)
    big = np.zeros((x.shape[0], TH * m + 2, TW * m + 2, x.shape[3]))
    h, w = min(xp.shape[1], big.shape[1]), min(xp.shape[2], big.shape[2])
    big[:, :h, :w] = xp[:, :h, :w]
    d = np.stack([np.stack([big[:, u:u + TH * m:m, v:v + TW * m:m] for v in range(m + 2)], 3)
                  for u in range(m + 2)], 3)                                  # (N, TH, TW, a, a, C)
    return np.einsum("pu,ntjuvc,qv->ntjpqc", aBT, d, aBT)


def magnitude(x, W, pads, m):
    """The Winograd algorithm on absolute values: bounds every partial result of one output."""
    aG, aAT = (np.abs(RW.ALGORITHMS[m][k]) for k in ("G", "AT"))
    OH, OW = x.shape[1] + pads[0] + pads[1] - 2, x.shape[2] + pads[2] + pads[3] - 2
    TH, TW = -(-OH // m), -(-OW // m)
    V = abs_tiles(x, pads, m, (TH, TW))
    U = np.einsum("pk,klcf,ql->pqcf", aG, np.abs(W).astype(np.float64), aG)
    Mg = np.einsum("ntjpqc,pqcf->ntjpqf", V, U)
    Y = np.einsum("ip,ntupqf,jq->ntiujf", aAT, Mg, aAT)                       # (N, TH, m, TW, m, F)
    return Y.reshape(x.shape[0], TH * m, TW * m, -1)[:, :OH, :OW]


def weight_magnitude(x, gy, pads, m):
    """The Winograd weight gradient on absolute values, |G|^T (sum over tiles |V|^T |gM|) |G|: (3, 3, C, F)."""
    aG, aAT = (np.abs(RW.ALGORITHMS[m][k]) for k in ("G", "AT"))
    N, OH, OW, F = gy.shape
    TH, TW = -(-OH // m), -(-OW // m)
    V = abs_tiles(x, pads, m, (TH, TW))
    g = np.zeros((N, TH * m, TW * m, F))
    g[:, :OH, :OW] = np.abs(gy)
    gM = np.einsum("ip,ntiujf,jq->ntupqf", aAT, g.reshape(N, TH, m, TW, m, F), aAT)
    gU = np.einsum("ntjpqc,ntjpqf->pqcf", V, gM)
    return np.einsum("pk,pqcf,ql->klcf", aG, gU, aG)


def input_magnitude(gy, W, x_hw, pads, m):
    """The transposed algorithm (``RW.winograd_input_grad_transposed``) on absolute values: (N, H, W, C).

    |A| |gY| |A^T| per tile, products with |U| = |G| |g| |G^T| over the filters, |B| . |B^T|, the
    tiles' shares added where they overlap; every partial result of one gx cell is at most this.
    """
    aBT, aG, aAT = (np.abs(RW.ALGORITHMS[m][k]) for k in ("BT", "G", "AT"))
    N, OH, OW, F = gy.shape
    (H, Wd), C, a = x_hw, W.shape[2], m + 2
    TH, TW = -(-OH // m), -(-OW // m)
    g = np.zeros((N, TH * m, TW * m, F))
    g[:, :OH, :OW] = np.abs(gy)
    gM = np.einsum("ip,ntikjf,jq->pqntkf", aAT, g.reshape(N, TH, m, TW, m, F), aAT)
    U = np.einsum("pk,klcf,ql->pqcf", aG, np.abs(W).astype(np.float64), aG)
    gd = np.einsum("pu,pqntjf,pqcf,qv->ntjuvc", aBT, gM, U, aBT, optimize=True)        # (N, TH, TW, a, a, C)
    gxp = np.zeros((N, TH * m + 2, TW * m + 2, C))
    for u in range(a):
        for v in range(a):
            gxp[:, u:u + TH * m:m, v:v + TW * m:m] += gd[:, :, :, u, v]
    out = np.zeros((N, H, Wd, C))
    rows, cols = min(H, TH * m + 2 - pads[0]), min(Wd, TW * m + 2 - pads[2])
    out[:, :rows, :cols] = gxp[:, pads[0]:pads[0] + rows, pads[2]:pads[2] + cols]
    return out


@st.composite
def case(draw, max_c=5):
    """x, W, gy, pads: sizes 1-9 (partial tiles), pads 0-2 on each side, output at least 1x1."""
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, max_c)), draw(st.integers(1, max_c))
    H, Wd = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    OH, OW = H + pads[0] + pads[1] - 2, Wd + pads[2] + pads[3] - 2
    assume(OH >= 1 and OW >= 1)
    x = rng.standard_normal((N, H, Wd, C))
    W = rng.standard_normal((3, 3, C, F))
    gy = rng.standard_normal((N, OH, OW, F))
    return x, W, gy, pads


# ------------------------------------------------ the one-dimensional identity
@pytest.mark.parametrize("m", [2, 4])
def test_one_dimensional_minimal_filtering(m):
    """y = A^T [(G g) * (B^T d)] is the correlation y_i = sum_k g_k d_(i+k), for every basis d and g."""
    alg = RW.ALGORITHMS[m]
    for a in range(m + 2):
        for k in range(3):
            d, g = np.eye(m + 2)[a], np.eye(3)[k]
            expected = np.array([d[i + k] for i in range(m)])          # only tap k meets input a
            got = alg["AT"] @ ((alg["G"] @ g) * (alg["BT"] @ d))
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


# ------------------------------------------------ reference tier against the direct convolution
@SETTINGS
@given(case(), st.sampled_from([2, 4]))
def test_reference_winograd_equals_direct_float64(c, m):
    x, W, gy, pads = c
    bound = bilinear_bound(magnitude(x, W, pads, m), x.shape[3] + ROUNDINGS[m])
    np.testing.assert_array_less(np.abs(RW.winograd_conv2d(x, W, pads, m) - direct_conv(x, W, pads)), bound + 1e-300)


@SETTINGS
@given(case(), st.sampled_from([2, 4]))
def test_reference_gradients_equal_direct_float64(c, m):
    x, W, gy, pads = c
    gx = RW.winograd_input_grad(gy, W, x.shape[1:3], pads, m)
    gW = RW.winograd_weight_grad(x, gy, pads, m)
    gx_ref, gW_ref = direct_input_grad(gy, W, x.shape, pads), direct_weight_grad(x, gy, pads)
    # gx is a Winograd convolution (of gy with the flipped kernel): its own magnitude bound
    pads2 = RW.input_grad_pads(x.shape[1:3], gy.shape[1:3], pads)
    bound_gx = bilinear_bound(magnitude(gy, RW.flipped_kernel(W), pads2, m), W.shape[3] + ROUNDINGS[m])
    np.testing.assert_array_less(np.abs(gx - gx_ref), bound_gx + 1e-300)
    # the same gx by the transpose of the forward pass: its own tiles and magnitude
    gxt = RW.winograd_input_grad_transposed(gy, W, x.shape[1:3], pads, m)
    bound_gxt = bilinear_bound(input_magnitude(gy, W, x.shape[1:3], pads, m), W.shape[3] + ROUNDINGS[m] + OVERLAP)
    np.testing.assert_array_less(np.abs(gxt - gx_ref), bound_gxt + 1e-300)
    # gW sums over the T tiles, then the same roundings as a forward output
    T = x.shape[0] * (-(-gy.shape[1] // m)) * (-(-gy.shape[2] // m))
    bound_gW = bilinear_bound(weight_magnitude(x, gy, pads, m), T + ROUNDINGS[m])
    np.testing.assert_array_less(np.abs(gW - gW_ref), bound_gW + 1e-300)


def test_reference_rejects_other_kernel_sizes():
    with pytest.raises(ValueError, match=r"3x3 kernels, got a 5x5 kernel"):
        RW.winograd_conv2d(np.zeros((1, 8, 8, 2)), np.zeros((5, 5, 2, 3)), (0, 0, 0, 0))


# ------------------------------------------------ the fast route
@SETTINGS
@given(case(max_c=6), st.booleans(), st.sampled_from([np.float32, np.float64]), st.sampled_from([2, 4]))
def test_fast_forward_equals_direct(c, relu, dtype, m):
    x, W, gy, pads = c
    b = np.linspace(-1, 1, W.shape[3])
    y = FW.forward(x.astype(dtype), W.astype(dtype), b.astype(dtype), pads, relu, m)
    z = direct_conv(x, W, pads) + b
    expected = np.maximum(z, 0) if relu else z
    eps = np.finfo(dtype).eps
    bound = bilinear_bound(magnitude(x, W, pads, m) + np.abs(b), x.shape[3] + ROUNDINGS[m], eps)
    assert y.dtype == dtype and y.shape == expected.shape
    np.testing.assert_array_less(np.abs(y - expected), bound + 1e-300)


@SETTINGS
@given(case(max_c=6), st.sampled_from([np.float32, np.float64]), st.sampled_from([2, 4]))
def test_fast_gradients_equal_direct(c, dtype, m):
    """``input_grad``, ``weight_grad`` and ``backward`` (both at once, gy's tiles shared) against the direct sums."""
    x, W, gy, pads = c
    eps = np.finfo(dtype).eps
    gx_ref, gW_ref = direct_input_grad(gy, W, x.shape, pads), direct_weight_grad(x, gy, pads)
    bound_gx = bilinear_bound(input_magnitude(gy, W, x.shape[1:3], pads, m), W.shape[3] + ROUNDINGS[m] + OVERLAP, eps)
    T = x.shape[0] * (-(-gy.shape[1] // m)) * (-(-gy.shape[2] // m))
    bound_gW = bilinear_bound(weight_magnitude(x, gy, pads, m), T + ROUNDINGS[m], eps)
    xd, Wd, gyd = x.astype(dtype), W.astype(dtype), gy.astype(dtype)
    gx = FW.input_grad(gyd, Wd, x.shape[1:3], pads, m)
    np.testing.assert_array_less(np.abs(gx - gx_ref), bound_gx + 1e-300)
    gW = FW.weight_grad(xd, gyd, pads, m)
    np.testing.assert_array_less(np.abs(gW - gW_ref), bound_gW + 1e-300)
    gx2, gW2 = FW.backward(xd, gyd, Wd, pads, m)
    assert gx2.dtype == gW2.dtype == dtype
    np.testing.assert_array_less(np.abs(gx2 - gx_ref), bound_gx + 1e-300)
    np.testing.assert_array_less(np.abs(gW2 - gW_ref), bound_gW + 1e-300)


@SETTINGS
@given(case(), st.sampled_from([2, 4]))
def test_the_adjoint_kernels_are_the_transposes_of_the_tile_transforms(c, m):
    """<P-transform of x, V> = <x, adjoint of V> for random x and V (the dot-product test of a transpose),
    with P = B^T; and the written-out adjoint equals the general one within rounding."""
    x, _, gy, pads = c
    rng = np.random.default_rng(x.shape[1] * 10 + x.shape[2])
    BT, _, _, _ = FW._matrices(np.float64, m)
    OH, OW = gy.shape[1:3]
    TH, TW = -(-OH // m), -(-OW // m)
    a = m + 2
    V = np.empty((a * a, x.shape[0] * TH * TW, x.shape[3]))
    tiles_transform_into(x, BT, m, pads[0], pads[2], TH, TW, V)
    R = rng.standard_normal(V.shape)
    back = np.full_like(x, np.nan)                                  # every cell written (zeroed first)
    tiles_adjoint_into(R, BT, m, pads[0], pads[2], TH, TW, back)
    lhs, rhs = np.sum(V * R), np.sum(x * back)
    assert abs(lhs - rhs) <= 1e-12 * (np.sum(np.abs(V) * np.abs(R)) + 1)
    written = np.full_like(x, np.nan)
    (input_adjoint_f43_into if m == 4 else input_adjoint_f23_into)(R, pads[0], pads[2], TH, TW, written)
    mag = np.empty_like(x)
    tiles_adjoint_into(np.abs(R), np.abs(BT), m, pads[0], pads[2], TH, TW, mag)
    np.testing.assert_array_less(np.abs(written - back), 30 * np.finfo(float).eps * mag + 1e-300)


def test_written_out_f23_kernels_equal_the_general_ones():
    """The F(2,3) kernels spelt as additions give the general matrix kernels' numbers exactly."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 5))
    BT, _, AT, _ = FW._matrices(np.float64)
    TH, TW = 4, 3
    V1, V2 = np.empty((16, 2 * TH * TW, 5)), np.empty((16, 2 * TH * TW, 5))
    tiles_transform_into(x, BT, 2, 1, 1, TH, TW, V1)
    input_transform_f23_into(x, 1, 1, TH, TW, V2)
    np.testing.assert_array_equal(V1, V2)
    M, b = rng.standard_normal((16, 2 * TH * TW, 3)), rng.standard_normal(3)
    y1, y2 = np.empty((2, 7, 5, 3)), np.empty((2, 7, 5, 3))
    output_transform_into(M, AT, b, True, TH, TW, y1)
    output_transform_f23_into(M, b, True, TH, TW, y2)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=4 * np.finfo(float).eps * (np.abs(M).sum(0).max() + 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_written_out_f43_kernels_equal_the_general_ones(dtype):
    """The F(4,3) kernels spelt as shared sums give the general matrix kernels' numbers within rounding.

    The order of the additions differs (e.g. (d3 + d4) - 4 (d1 + d2) against -4 d1 - 4 d2 + d3 + d4), so
    each result may differ by the roundings of both: at most 2 * 10 of eps times the same transform
    run on absolute values (two sides of at most 5 terms each, every sum and product rounded once).
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 11, 9, 5)).astype(dtype)
    BT, _, AT, _ = FW._matrices(dtype, 4)
    TH, TW, eps = 3, 2, np.finfo(dtype).eps
    V1, V2, Vabs = (np.empty((36, 2 * TH * TW, 5), dtype=dtype) for _ in range(3))
    tiles_transform_into(x, BT, 4, 1, 2, TH, TW, V1)
    input_transform_f43_into(x, 1, 2, TH, TW, V2)
    tiles_transform_into(np.abs(x), np.abs(BT), 4, 1, 2, TH, TW, Vabs)
    np.testing.assert_array_less(np.abs(V1 - V2), 20 * eps * Vabs + 1e-300)
    M, b = rng.standard_normal((36, 2 * TH * TW, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)
    for relu in (False, True):
        y1, y2 = np.empty((2, 10, 7, 3), dtype=dtype), np.empty((2, 10, 7, 3), dtype=dtype)
        yabs = np.empty((2, 10, 7, 3), dtype=dtype)
        y1[:], y2[:] = np.nan, 7.0                                 # cells not written would fail below
        output_transform_into(M, AT, b, relu, TH, TW, y1)
        output_transform_f43_into(M, b, relu, TH, TW, y2)
        output_transform_into(np.abs(M), np.abs(AT), np.abs(b), False, TH, TW, yabs)
        np.testing.assert_array_less(np.abs(y1 - y2), 24 * eps * yabs + 1e-300)
    gy = rng.standard_normal((2, 10, 7, 3)).astype(dtype)       # the weight gradient's tiles: A gY A^T
    A = np.ascontiguousarray(AT.T)
    g1, g2, gabs = (np.empty((36, 2 * TH * TW, 3), dtype=dtype) for _ in range(3))
    g2[:] = np.nan
    tiles_transform_into(gy, A, 4, 0, 0, TH, TW, g1)
    grad_transform_f43_into(gy, TH, TW, g2)
    tiles_transform_into(np.abs(gy), np.abs(A), 4, 0, 0, TH, TW, gabs)
    np.testing.assert_array_less(np.abs(g1 - g2), 20 * eps * gabs.astype(np.float64) + 1e-300)   # zero rows: 0 < 1e-300


def test_growth_of_the_transforms():
    """How much larger the Winograd partial results are than the direct sum sum |g||d|, with all |g|, |d| = 1.

    One dimension, by hand: F(2,3) has |G| 1 = [1, 3/2, 3/2, 1] and |B^T| 1 = [2, 2, 2, 2], products
    [2, 3, 3, 2], and |A^T| sums them to [8, 8] against a direct 3: 8/3 per dimension, (8/3)^2 = 7.1 in 2-D.
    F(4,3): |G| 1 = [1/4, 1/2, 1/2, 7/24, 7/24, 1], |B^T| 1 = [10, 10, 10, 6, 6, 10], products
    [5/2, 5, 5, 7/4, 7/4, 10], |A^T| sums [16, 17, 24, 48]: up to 16 per dimension, 256 in 2-D, so the
    float32 error of F(4,3) is up to 36x that of F(2,3) for the same inputs.
    """
    x, W = np.ones((1, 10, 10, 1)), np.ones((3, 3, 1, 1))
    direct = 9.0
    np.testing.assert_allclose(magnitude(x, W, (0, 0, 0, 0), 2) / direct, (8 / 3) ** 2, rtol=1e-14)
    per_dim = np.array([16, 17, 24, 48]) / 3
    expected = np.tile(np.outer(per_dim, per_dim), (2, 2))                  # 8x8 output, two 4x4 tiles a side
    np.testing.assert_allclose(magnitude(x, W, (0, 0, 0, 0), 4)[0, :, :, 0] / direct, expected, rtol=1e-14)


# ------------------------------------------------ the engine takes the route
@pytest.fixture(params=[2, 4])
def narrow_winograd(monkeypatch, request):
    """The fast tier, with the Winograd route (F(2x2) or F(4x4)) taken from one channel on, so small layers
    exercise it; yields the route's name."""
    monkeypatch.setattr(tuning, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(tuning, "WINOGRAD_FORWARD_TILE", request.param)
    with nb.kernels("fast"):
        yield FW.ROUTE_NAMES[request.param]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case(max_c=3), st.sampled_from(["valid", "same"]), st.sampled_from([None, "relu"]))
def test_conv2d_gradients_through_the_winograd_route(narrow_winograd, c, padding, activation):
    x, W, gy, _ = c
    H, Wd = x.shape[1:3]
    assume(padding == "same" or (H >= 3 and Wd >= 3))
    b = np.linspace(-0.5, 0.5, W.shape[3])
    y = EF.conv2d(Tensor(x), Tensor(W), Tensor(b), (1, 1), padding, activation)
    assert routes.last("conv2d_forward") == narrow_winograd
    check_grad(lambda x, W, b: EF.conv2d(x, W, b, (1, 1), padding, activation), x, W, b,
               grad_output=np.random.default_rng(0).standard_normal(y.shape), raise_on_failure=True)


def test_w2_second_layer_takes_the_winograd_route():
    """W2's 32 -> 64 layer (13x13, valid) runs Winograd F(4x4, 3x3) (the default tile); the 1 -> 32 layer stays
    direct; the numbers of a direct convolution within F(4x4)'s float32 bound."""
    rng = np.random.default_rng(0)
    with nb.kernels("fast"):
        model = nb.Sequential([nb.layers.Input((28, 28, 1)),
                               nb.layers.Conv2D(32, 3, activation="relu"), nb.layers.MaxPooling2D(2),
                               nb.layers.Conv2D(64, 3, activation="relu")])
        x = rng.random((4, 28, 28, 1), dtype=np.float32)
        model(x)
        assert tuning.WINOGRAD_FORWARD_TILE == 4 and routes.last("conv2d_forward") == "winograd4"
        h = model.layers[1](model.layers[0](x))
        assert routes.last("conv2d_forward") == "direct"
        assert not FW.applies(x.shape, (3, 3, 1, 32), (1, 1))
        assert FW.applies((64, 13, 13, 32), (3, 3, 32, 64), (1, 1), (0, 0, 0, 0))
        y = model.layers[2](h).numpy()
    W, b = (np.asarray(w, dtype=np.float64) for w in model.layers[2].get_weights())
    z = direct_conv(np.asarray(h.numpy(), np.float64), W, (0, 0, 0, 0)) + b
    bound = bilinear_bound(magnitude(h.numpy(), W, (0, 0, 0, 0), 4) + np.abs(b), 32 + ROUNDINGS[4],
                           np.finfo(np.float32).eps)
    np.testing.assert_array_less(np.abs(y - np.maximum(z, 0)), bound + 1e-300)


@pytest.mark.parametrize("W_shape, strides, pads", [((5, 5, 64, 64), (1, 1), None), ((3, 3, 64, 64), (2, 2), None),
                                                     ((3, 3, 8, 64), (1, 1), None),
                                                     ((3, 3, 64, 64), (1, 1), (3, 0, 0, 0))])
def test_applies_only_to_3x3_stride_1_wide_layers(W_shape, strides, pads):
    assert not FW.applies((2, 16, 16, W_shape[2]), W_shape, strides, pads)


# ------------------------------------------------ nb.functional.conv2d_winograd, for learners
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case(max_c=3), st.sampled_from(["valid", "same"]), st.sampled_from([2, 4]),
       st.sampled_from(["fast", "reference"]))
def test_conv2d_winograd_function_and_its_gradients(c, padding, tile, tier):
    x, W, _, _ = c
    assume(padding == "same" or min(x.shape[1:3]) >= 3)
    b = np.linspace(-0.5, 0.5, W.shape[3])
    with nb.kernels(tier):
        y = nb.functional.conv2d_winograd(Tensor(x), Tensor(W), Tensor(b), padding, tile).numpy()
        pads = (1, 1, 1, 1) if padding == "same" else (0, 0, 0, 0)
        bound = bilinear_bound(magnitude(x, W, pads, tile) + np.abs(b), x.shape[3] + ROUNDINGS[tile])
        np.testing.assert_array_less(np.abs(y - direct_conv(x, W, pads) - b), bound + 1e-300)
        check_grad(lambda x, W, b: nb.functional.conv2d_winograd(x, W, b, padding, tile), x, W, b,
                   grad_output=np.random.default_rng(1).standard_normal(y.shape), raise_on_failure=True)


@pytest.mark.parametrize("x_shape, W_shape, kwargs, message", [
    ((1, 8, 8, 2), (5, 5, 2, 3), {}, r"for 3x3 kernels, got kernel shape \(5, 5, 2, 3\); use conv2d"),
    ((1, 8, 8, 2), (3, 3, 4, 3), {}, r"input has 2 channels but the kernel of shape \(3, 3, 4, 3\) expects 4"),
    ((1, 8, 8, 2), (3, 3, 2, 3), {"tile": 3}, r"tile must be 2 .* or 4 .*, got 3"),
    ((1, 8, 8, 2), (3, 3, 2, 3), {"padding": (3, 0, 0, 0)}, r"pads \(3, 0, 0, 0\) .* must be at most 2"),
    ((1, 2, 8, 2), (3, 3, 2, 3), {}, r"leave an output of at least 1x1"),
    ((8, 8, 2), (3, 3, 2, 3), {}, r"expected a 4-D NHWC input"),
])
def test_conv2d_winograd_bad_input(x_shape, W_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        nb.functional.conv2d_winograd(Tensor(np.zeros(x_shape)), Tensor(np.zeros(W_shape)), **kwargs)
