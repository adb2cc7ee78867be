"""Output shapes against the Keras formulas, for every configuration in a grid (and the real output)."""
import itertools
import math

import numpy as np
import pytest

from numbanet.engine import functional as F
from numbanet.layers import Conv2D, Conv2DTranspose, MaxPooling2D, UpSampling2D

SIZES, KERNELS, STRIDES = [1, 2, 3, 5, 8], [1, 2, 3, 4], [1, 2, 3]


def keras_conv_size(n, k, s, padding):
    return math.ceil(n / s) if padding == "same" else math.floor((n - k) / s) + 1


def keras_transpose_size(n, k, s, padding, op):
    if op is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    return (n - 1) * s + k - 2 * (k // 2 if padding == "same" else 0) + op


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_and_pool_shapes(padding):
    for h, w, kh, kw, s in itertools.product(SIZES, SIZES[:3], KERNELS, KERNELS[:2], STRIDES):
        if padding == "valid" and (h < kh or w < kw):   # a kernel larger than the input: rejected
            x = np.zeros((1, h, w, 1), np.float32)
            with pytest.raises(ValueError, match="conv2d"):
                Conv2D(2, (kh, kw), s, padding)(x)
            with pytest.raises(ValueError, match="max_pooling2d"):
                MaxPooling2D((kh, kw), s, padding)(x)
            continue
        want = (None, keras_conv_size(h, kh, s, padding), keras_conv_size(w, kw, s, padding))
        conv = Conv2D(2, (kh, kw), s, padding)
        pool = MaxPooling2D((kh, kw), s, padding)
        assert conv.compute_output_shape((None, h, w, 1)) == want + (2,)
        assert pool.compute_output_shape((None, h, w, 3)) == want + (3,)
        x = np.zeros((1, h, w, 1), np.float32)
        assert conv(x).shape == (1,) + want[1:] + (2,)
        assert pool(x).shape == (1,) + want[1:] + (1,)


def test_same_padding_puts_the_extra_cell_bottom_right():
    # 1x4 input of ones, kernel (1, 2) stride 1 "same": total pad 1, all on the right
    x = np.ones((1, 1, 4, 1))
    W = np.ones((1, 2, 1, 1))
    y = F.conv2d(x, W, padding="same").data[0, 0, :, 0]
    np.testing.assert_array_equal(y, [2, 2, 2, 1])


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_transpose_shapes(padding):
    for n, k, s in itertools.product(SIZES, KERNELS, STRIDES):
        for op in [None] + list(range(s)):
            want = keras_transpose_size(n, k, s, padding, op)
            layer = Conv2DTranspose(2, (k, 1), (s, 1), padding, output_padding=None if op is None else (op, 0))
            back = keras_conv_size(want, k, s, padding)
            if want < 1 or back != n:   # TensorFlow rejects these (checked in test_conv_keras)
                with pytest.raises(ValueError, match="conv2d_transpose"):
                    layer.compute_output_shape((None, n, 3, 1))
                continue
            assert layer.compute_output_shape((None, n, 3, 1))[:2] == (None, want)
            assert layer(np.zeros((1, n, 3, 1), np.float32)).shape[1] == want


def test_unknown_dimensions_stay_unknown():
    assert Conv2D(4, 3, padding="same").compute_output_shape((None, None, 7, 2)) == (None, None, 7, 4)
    assert Conv2DTranspose(4, 3, 2).compute_output_shape((5, None, 7, 2)) == (5, None, 15, 4)
    assert MaxPooling2D().compute_output_shape((None, 6, None, 2)) == (None, 3, None, 2)
    assert UpSampling2D((2, 3)).compute_output_shape((None, 4, None, 2)) == (None, 8, None, 2)


def test_upsampling_shapes():
    for size in [1, 2, (3, 2)]:
        layer = UpSampling2D(size)
        sh, sw = (size, size) if isinstance(size, int) else size
        assert layer(np.zeros((2, 3, 5, 4), np.float32)).shape == (2, 3 * sh, 5 * sw, 4)


def test_weight_layouts():
    conv, tconv = Conv2D(5, (3, 2)), Conv2DTranspose(5, (3, 2))
    conv(np.zeros((1, 4, 4, 3), np.float32))
    tconv(np.zeros((1, 4, 4, 3), np.float32))
    assert [w.shape for w in conv.get_weights()] == [(3, 2, 3, 5), (5,)]
    assert [w.shape for w in tconv.get_weights()] == [(3, 2, 5, 3), (5,)]
    assert conv.get_config()["kernel_size"] == (3, 2)
    assert tconv.get_config()["output_padding"] is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_flow_through(dtype):
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 2))
    for layer in [Conv2D(2, 3, dtype=dtype), Conv2DTranspose(2, 3, 2, dtype=dtype),
                  MaxPooling2D(dtype=dtype), UpSampling2D(interpolation="bilinear", dtype=dtype)]:
        assert layer(x).dtype == np.dtype(dtype)
