"""Keras parity: same weights, same inputs -> same outputs and gradients as tf.keras (where installed)."""
import itertools
import os

import numpy as np
import pytest

from numbanet.engine import Tensor
from numbanet.layers import Conv2D, Conv2DTranspose, MaxPooling2D, UpSampling2D

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# the tf fixture comes from conftest.py (skip without TensorFlow, fail in CI)


def run_both(tf, ours, theirs, x, weights=()):
    """Outputs and gradients (wrt the input and each weight) of both layers for one random gy."""
    theirs.build(x.shape)
    if weights:
        theirs.set_weights(weights)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = theirs(xt)
        gy = np.random.default_rng(1).standard_normal(yt.shape).astype(np.float32)
        loss = tf.reduce_sum(yt * gy)
    g_tf = tape.gradient(loss, [xt] + list(theirs.trainable_weights))
    xo = Tensor(x, requires_grad=True)
    ours(xo)                       # build
    if weights:
        ours.set_weights(weights)
    yo = ours(xo)
    yo.backward(gy)
    g_ours = [xo.grad] + [w.grad for w in ours.trainable_weights]
    return (yo.data, yt.numpy()), list(zip(g_ours, [g.numpy() for g in g_tf]))


def assert_parity(results, grads, tol=2e-4):
    ours, theirs = results
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    for g_ours, g_tf in grads:
        assert g_ours.shape == g_tf.shape
        np.testing.assert_allclose(g_ours, g_tf, rtol=tol, atol=tol * max(1.0, np.abs(g_tf).max()))


def assert_both_reject(tf, ours, theirs, x):
    """numbanet raises a ValueError naming the layer and the input's shape; Keras has no output either.

    Keras raises a ValueError when it checks the shape itself. Otherwise TensorFlow's
    kernel decides, and which kernel runs depends on the CPU: oneDNN's (AVX-512
    Intel) raises an ``OpError`` (InvalidArgumentError, AbortedError) for a pooling
    window larger than the input, where the Eigen kernel (AVX2 AMD) returns an output
    with a zero-size axis; for a transposed convolution whose output would be empty
    it is the other way round. Either is Keras having no output; a non-empty output
    fails the test.
    """
    with pytest.raises(ValueError) as ours_error:
        ours(x)
    message = str(ours_error.value)
    assert ours.name in message, message
    assert f"{x.shape[1]}, {x.shape[2]}, {x.shape[3]})" in message, message
    try:
        out = theirs(x)
    except (ValueError, tf.errors.OpError):
        return
    assert 0 in tuple(out.shape), f"Keras gave a non-empty output {tuple(out.shape)} where numbanet rejects the input"


def _weights(rng, kernel_shape, filters):
    return [rng.standard_normal(kernel_shape).astype(np.float32) * 0.5,
            rng.standard_normal(filters).astype(np.float32)]


CONV_CASES = list(itertools.product([(5, 7), (6, 6), (1, 3)], [(3, 3), (2, 4), (1, 1)], [(1, 1), (2, 3), (4, 4)],
                                    ["valid", "same"]))


@pytest.mark.parametrize("hw,k,s,padding", CONV_CASES)
def test_conv2d_matches_keras(tf, hw, k, s, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    w = _weights(rng, (*k, 3, 4), 4)
    ours = Conv2D(4, k, s, padding, activation="relu")
    theirs = tf.keras.layers.Conv2D(4, k, s, padding, activation="relu")
    if padding == "valid" and (hw[0] < k[0] or hw[1] < k[1]):   # a kernel larger than the input
        assert_both_reject(tf, ours, theirs, x)
        return
    assert_parity(*run_both(tf, ours, theirs, x, w))


TRANSPOSE_CASES = [(hw, k, s, p, op) for hw, k, s, p, op in itertools.product(
    [(4, 5), (1, 2), (3, 3)], [(3, 3), (2, 4), (1, 1), (5, 2)], [(1, 1), (2, 2), (3, 2)], ["valid", "same"],
    [None, (0, 0), (1, 1)]) if op is None or (op[0] < s[0] and op[1] < s[1])]


@pytest.mark.parametrize("hw,k,s,padding,op", TRANSPOSE_CASES)
def test_conv2d_transpose_matches_keras(tf, hw, k, s, padding, op):
    ours = Conv2DTranspose(2, k, s, padding, output_padding=op)
    try:
        shape = ours.compute_output_shape((2, *hw, 3))
    except ValueError:
        shape = None
    theirs = tf.keras.layers.Conv2DTranspose(2, k, s, padding, output_padding=op)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    if shape is None:  # we reject it: TensorFlow must reject it too, or give an empty output
        assert_both_reject(tf, ours, theirs, x)
        return
    assert_parity(*run_both(tf, ours, theirs, x, _weights(rng, (*k, 2, 3), 2)))


@pytest.mark.parametrize("hw,pool,strides,padding", list(itertools.product(
    [(5, 7), (4, 4), (1, 2)], [(2, 2), (3, 1), (1, 1)], [None, (1, 1), (3, 2)], ["valid", "same"])))
def test_max_pooling_matches_keras(tf, hw, pool, strides, padding):
    x = np.random.default_rng(0).permutation(2 * hw[0] * hw[1] * 3).reshape(2, *hw, 3).astype(np.float32) - 20
    ours = MaxPooling2D(pool, strides, padding)
    theirs = tf.keras.layers.MaxPooling2D(pool, strides, padding)
    if padding == "valid" and (hw[0] < pool[0] or hw[1] < pool[1]):   # a window larger than the input
        # TensorFlow raises or gives 0 output rows, depending on the CPU's kernel
        assert_both_reject(tf, ours, theirs, x)
        return
    assert_parity(*run_both(tf, ours, theirs, x))


@pytest.mark.parametrize("size,interpolation", list(itertools.product([1, 2, 3, (2, 3)], ["nearest", "bilinear"])))
def test_upsampling_matches_keras(tf, size, interpolation):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 2)).astype(np.float32)
    ours = UpSampling2D(size, interpolation)
    theirs = tf.keras.layers.UpSampling2D(size, interpolation=interpolation)
    assert_parity(*run_both(tf, ours, theirs, x))


def test_float64_conv_matches_keras(tf):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 5, 2))
    w = [rng.standard_normal((3, 2, 2, 3)), rng.standard_normal(3)]
    ours = Conv2D(3, (3, 2), 2, "same", dtype="float64")
    theirs = tf.keras.layers.Conv2D(3, (3, 2), 2, "same", dtype="float64")
    results, grads = run_both(tf, ours, theirs, x, w)
    assert results[0].dtype == np.float64
    assert_parity(results, grads, tol=1e-10)
