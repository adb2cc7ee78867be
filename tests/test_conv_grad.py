"""Gradients of conv2d, conv2d_transpose, max_pool2d, upsample2d and their layers vs finite differences.

Random shapes and hyper-parameters (Hypothesis), float64, ``numbanet.check_grad``
(central differences for small inputs, a random-direction check for big ones)
with a random output gradient so every output element is weighted differently.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numbanet.engine import check_grad
from numbanet.engine import functional as F
from numbanet.engine.conv_shapes import conv_output_size, transpose_output_size
from numbanet.layers import Conv2D, Conv2DTranspose, MaxPooling2D, UpSampling2D

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rand(rng, *shape):
    return rng.standard_normal(shape)


@st.composite
def conv_case(draw, transpose=False):
    """(x, W, b, strides, padding, output_padding) with a valid configuration."""
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, C, Fo = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    SH, SW = draw(st.integers(1, 4)), draw(st.integers(1, 4))   # includes stride > kernel
    padding = draw(st.sampled_from(["valid", "same"]))
    op = None
    if transpose:
        if draw(st.booleans()):
            op = (draw(st.integers(0, SH - 1)), draw(st.integers(0, SW - 1)))
            outs = [transpose_output_size(n, k, s, padding, o) for n, k, s, o in
                    zip((H, W), (KH, KW), (SH, SW), op)]
            assume(all(o >= 1 and conv_output_size(o, k, s, padding) == n for o, n, k, s in
                       zip(outs, (H, W), (KH, KW), (SH, SW))))
        kernel = rand(rng, KH, KW, Fo, C)
    else:
        assume(padding == "same" or (H >= KH and W >= KW))
        kernel = rand(rng, KH, KW, C, Fo)
    return rand(rng, N, H, W, C), kernel, rand(rng, Fo), (SH, SW), padding, op


@SETTINGS
@given(conv_case())
def test_conv2d_gradients(case):
    x, W, b, strides, padding, _ = case
    gy = np.random.default_rng(0).standard_normal(F.conv2d(x, W, b, strides, padding).shape)
    check_grad(lambda x, W, b: F.conv2d(x, W, b, strides, padding), x, W, b, grad_output=gy,
               raise_on_failure=True)


@SETTINGS
@given(conv_case(transpose=True))
def test_conv2d_transpose_gradients(case):
    x, W, b, strides, padding, op = case
    gy = np.random.default_rng(0).standard_normal(F.conv2d_transpose(x, W, b, strides, padding, op).shape)
    check_grad(lambda x, W, b: F.conv2d_transpose(x, W, b, strides, padding, op), x, W, b, grad_output=gy,
               raise_on_failure=True)


@st.composite
def pool_case(draw):
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, H, W, C = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 3))
    pool = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    padding = draw(st.sampled_from(["valid", "same"]))
    assume(padding == "same" or (H >= pool[0] and W >= pool[1]))
    # no ties: a shuffled ramp with steps far larger than the finite-difference eps
    x = rng.permutation(N * H * W * C).reshape(N, H, W, C) / 10.0
    return x, pool, strides, padding


@SETTINGS
@given(pool_case())
def test_max_pool2d_gradients(case):
    x, pool, strides, padding = case
    gy = np.random.default_rng(0).standard_normal(F.max_pool2d(x, pool, strides, padding).shape)
    check_grad(lambda x: F.max_pool2d(x, pool, strides, padding), x, grad_output=gy, raise_on_failure=True)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 3), st.sampled_from(["nearest", "bilinear"]))
def test_upsample2d_gradients(seed, N, H, W, C, SH, SW, interpolation):
    x = np.random.default_rng(seed).standard_normal((N, H, W, C))
    gy = np.random.default_rng(0).standard_normal((N, H * SH, W * SW, C))
    check_grad(lambda x: F.upsample2d(x, (SH, SW), interpolation), x, grad_output=gy, raise_on_failure=True)


# ------------------------------------------------------------------ layers
def _layer_fn(layer):
    """fn(x, kernel, bias) that runs ``layer`` with the given weight Tensors."""
    def fn(x, kernel, bias):
        layer.kernel, layer.bias = kernel, bias
        return layer(x)
    return fn


@SETTINGS
@given(conv_case(), st.sampled_from([None, "tanh", "sigmoid"]))
def test_conv2d_layer_gradients(case, activation):
    x, W, b, strides, padding, _ = case
    layer = Conv2D(W.shape[-1], W.shape[:2], strides, padding, activation=activation, dtype="float64")
    layer(x)
    check_grad(_layer_fn(layer), x, W, b, raise_on_failure=True)


@SETTINGS
@given(conv_case(transpose=True), st.sampled_from([None, "tanh"]))
def test_conv2d_transpose_layer_gradients(case, activation):
    x, W, b, strides, padding, op = case
    layer = Conv2DTranspose(W.shape[2], W.shape[:2], strides, padding, output_padding=op,
                            activation=activation, dtype="float64")
    layer(x)
    check_grad(_layer_fn(layer), x, W, b, raise_on_failure=True)


@SETTINGS
@given(pool_case())
def test_pooling_layer_gradients(case):
    x, pool, strides, padding = case
    check_grad(MaxPooling2D(pool, strides, padding, dtype="float64"), x, raise_on_failure=True)


@SETTINGS
@given(st.integers(0, 100), st.sampled_from([1, 2, 3, (2, 3)]), st.sampled_from(["nearest", "bilinear"]))
def test_upsampling_layer_gradients(seed, size, interpolation):
    x = np.random.default_rng(seed).standard_normal((2, 3, 4, 2))
    check_grad(UpSampling2D(size, interpolation, dtype="float64"), x, raise_on_failure=True)
