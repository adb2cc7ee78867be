"""nb.functional.im2col / col2im: Keras-style arguments, the engine's tap order, adjointness, errors.

Every expected value is computed here independently: the patches by plain loops
over Keras's padding rule (written out below), TensorFlow's
``tf.image.extract_patches`` (same row and column order), the window counts by
a loop over the windows, and Conv2D's output by the layer itself.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbanet as nb
from bounds import matmul_bound, sum_bound

pytestmark = pytest.mark.usefixtures("tier")


def keras_pads(n, k, s, padding):
    """(before, after) on one axis: Keras/TF "same" out = floor((n - 1)/s) + 1, total pad split with
    the odd cell after; "valid" none."""
    if padding == "valid":
        return 0, 0
    out = (n - 1) // s + 1
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def loop_im2col(x, KH, KW, SH, SW, padding):
    """Row (n, oh, ow), column (i, j, c): x[n, oh*SH - PT + i, ow*SW - PL + j, c], 0 outside."""
    N, H, W, C = x.shape
    PT, PB = keras_pads(H, KH, SH, padding)
    PL, PR = keras_pads(W, KW, SW, padding)
    OH, OW = (H + PT + PB - KH) // SH + 1, (W + PL + PR - KW) // SW + 1
    out = np.zeros((N * OH * OW, KH * KW * C), dtype=x.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for i in range(KH):
                    for j in range(KW):
                        h, w = oh * SH - PT + i, ow * SW - PL + j
                        if 0 <= h < H and 0 <= w < W:
                            out[(n * OH + oh) * OW + ow, (i * KW + j) * C:(i * KW + j + 1) * C] = x[n, h, w]
    return out


def loop_window_counts(H, W, KH, KW, SH, SW, padding):
    """How many windows cover each input pixel, counted window by window."""
    PT, PB = keras_pads(H, KH, SH, padding)
    PL, PR = keras_pads(W, KW, SW, padding)
    counts = np.zeros((H, W), dtype=int)
    for top in range(-PT, H + PB - KH + 1, SH):
        for left in range(-PL, W + PR - KW + 1, SW):
            for h in range(max(top, 0), min(top + KH, H)):
                for w in range(max(left, 0), min(left + KW, W)):
                    counts[h, w] += 1
    return counts


geometry = st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3),   # N H W C
                     st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),   # KH KW SH SW
                     st.sampled_from(["valid", "same"]))


def _valid(H, W, KH, KW, padding):
    return padding == "same" or (KH <= H and KW <= W)


@settings(max_examples=40, deadline=None)
@given(geometry, st.integers(0, 2**31 - 1))
def test_im2col_equals_the_loops_and_col2im_of_ones_counts_the_windows(g, seed):
    N, H, W, C, KH, KW, SH, SW, padding = g
    if not _valid(H, W, KH, KW, padding):
        return
    x = np.random.default_rng(seed).standard_normal((N, H, W, C))
    cols = nb.functional.im2col(x, (KH, KW), (SH, SW), padding)
    np.testing.assert_array_equal(cols.data, loop_im2col(x, KH, KW, SH, SW, padding))   # copies: exact
    ones = np.ones(cols.shape)
    counts = nb.functional.col2im(ones, x.shape, (KH, KW), (SH, SW), padding).data
    expected = loop_window_counts(H, W, KH, KW, SH, SW, padding)
    np.testing.assert_array_equal(counts, np.broadcast_to(expected[None, :, :, None], x.shape))


@settings(max_examples=40, deadline=None)
@given(geometry, st.integers(0, 2**31 - 1))
def test_col2im_is_the_adjoint_of_im2col(g, seed):
    """<im2col(x), c> == <x, col2im(c)>: the same products summed in two orders."""
    N, H, W, C, KH, KW, SH, SW, padding = g
    if not _valid(H, W, KH, KW, padding):
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C))
    cols = nb.functional.im2col(x, (KH, KW), (SH, SW), padding).data
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * nb.functional.col2im(c, x.shape, (KH, KW), (SH, SW), padding).data)
    assert abs(lhs - rhs) <= sum_bound(cols * c) + 1e-300


@pytest.mark.parametrize("H, W, K, S, padding", [(5, 5, 3, 2, "same"), (6, 7, (2, 3), (2, 1), "same"),
                                                 (7, 6, 4, 3, "valid"), (4, 4, 2, 2, "same"), (6, 6, 3, 2, "same")])
def test_im2col_matmul_equals_the_conv2d_layer(H, W, K, S, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, H, W, 3))
    layer = nb.layers.Conv2D(4, K, strides=S, padding=padding, use_bias=False, dtype="float64")
    y = layer(x).data
    kernel = layer.get_weights()[0]                                     # (KH, KW, C, F)
    cols = nb.functional.im2col(x, K, S, padding).data                  # (N*OH*OW, KH*KW*C)
    W2 = kernel.reshape(-1, kernel.shape[-1])                           # (KH*KW*C, F)
    got = (cols @ W2).reshape(y.shape)
    assert np.all(np.abs(got - y) <= matmul_bound(cols, W2).reshape(y.shape))


@pytest.mark.parametrize("H, W, K, S, padding", [(5, 5, 3, 2, "same"), (6, 7, (2, 3), (2, 1), "same"),
                                                 (7, 6, 4, 3, "valid"), (8, 5, (3, 2), (3, 2), "same"),
                                                 (5, 6, 2, 1, "valid"), (4, 4, 2, 2, "same")])
def test_im2col_equals_tensorflow_extract_patches(tf, H, W, K, S, padding):
    """tf.image.extract_patches: (N, OH, OW, KH*KW*C), patch entries in (i, j, c) order, TF's padding."""
    KH, KW = (K, K) if isinstance(K, int) else K
    SH, SW = (S, S) if isinstance(S, int) else S
    x = np.random.default_rng(1).standard_normal((2, H, W, 3))
    patches = tf.image.extract_patches(x, sizes=[1, KH, KW, 1], strides=[1, SH, SW, 1], rates=[1, 1, 1, 1],
                                       padding=padding.upper()).numpy()
    got = nb.functional.im2col(x, K, S, padding).data
    np.testing.assert_array_equal(got, patches.reshape(-1, KH * KW * 3))


def test_a_3d_input_is_one_image():
    x = np.random.default_rng(2).standard_normal((5, 4, 2))
    cols = nb.functional.im2col(x, 3, 1, "same")
    np.testing.assert_array_equal(cols.data, nb.functional.im2col(x[None], 3, 1, "same").data)
    assert cols.shape == (5 * 4, 9 * 2)
    back = nb.functional.col2im(cols, x.shape, 3, 1, "same")
    assert back.shape == (5, 4, 2)
    np.testing.assert_array_equal(back.data, nb.functional.col2im(cols, (1, 5, 4, 2), 3, 1, "same").data[0])


def test_keras_style_arguments_ints_pairs_and_any_case_padding():
    x = np.random.default_rng(3).standard_normal((1, 6, 6, 1))
    a = nb.functional.im2col(x, 3, 2, "SAME").data
    b = nb.functional.im2col(x, (3, 3), (2, 2), "same").data
    np.testing.assert_array_equal(a, b)
    assert a.shape == (math.ceil(6 / 2) ** 2, 9)


def test_both_are_differentiable_in_float64():
    rng = np.random.default_rng(4)
    x = nb.Tensor(rng.standard_normal((1, 4, 5, 2)), requires_grad=True)
    for fn, arg in [(lambda t: nb.functional.im2col(t, (2, 3), (2, 1), "same") ** 2, x),
                    (lambda t: nb.functional.col2im(t, (1, 4, 5, 2), (2, 3), (2, 1), "same") ** 2,
                     nb.Tensor(rng.standard_normal((10, 12)), requires_grad=True))]:
        report = nb.check_grad(fn, arg)
        assert report.passed, str(report)


@pytest.mark.parametrize("x_shape, kwargs, words", [
    ((5, 5), dict(kernel_size=3), ["rank 2", "(5, 5)", "x[..., None]"]),
    ((1, 1, 5, 5, 1), dict(kernel_size=3), ["rank 5"]),
    ((1, 5, 5, 1), dict(kernel_size=0), ["kernel_size", ">= 1"]),
    ((1, 5, 5, 1), dict(kernel_size=(3, -1)), ["kernel_size", ">= 1"]),
    ((1, 5, 5, 1), dict(kernel_size=3, strides=0), ["strides", ">= 1"]),
    ((1, 5, 5, 1), dict(kernel_size=6), ["kernel_size (6, 6)", "(5, 5)", "'valid'", "padding='same'"]),
    ((1, 5, 5, 1), dict(kernel_size=3, padding="full"), ["padding", "'valid' or 'same'"]),
    ((1, 0, 5, 1), dict(kernel_size=1), ["(1, 0, 5, 1)", ">= 1"]),
])
def test_im2col_bad_input_is_a_value_error_naming_the_argument(x_shape, kwargs, words):
    with pytest.raises(ValueError) as err:
        nb.functional.im2col(np.zeros(x_shape), **kwargs)
    assert "im2col" in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_col2im_bad_input():
    with pytest.raises(ValueError, match=r"col2im: cols must have shape .* = \(9, 9\).*got \(9, 8\)"):
        nb.functional.col2im(np.zeros((9, 8)), (5, 5, 1), 3, 2, "same")
    with pytest.raises(ValueError, match="col2im: expected an input of shape"):
        nb.functional.col2im(np.zeros((9, 9)), (5, 5), 3, 2, "same")
    with pytest.raises(TypeError, match="strides"):
        nb.functional.col2im(np.zeros((9, 9)), (5, 5, 1), 3, True, "same")
