"""AveragePooling2D, MaxPooling1D, AveragePooling1D and the global poolings.

An independent loop oracle in both tiers (the mean / max of each window's real
cells, written out), float64 finite differences (Hypothesis), Keras parity of
outputs and gradients (including GlobalAveragePooling1D under an Embedding mask),
configs and bad input.
"""
import itertools
import os
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from bounds import assert_within, bilinear_bound, eps_of
from numbanet.engine import Tensor, check_grad
from numbanet.engine import functional as F
from numbanet.layers import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
                             GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D)
from test_conv1d import assert_parity, keras_pair

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SETTINGS = settings(max_examples=30, deadline=None)


def same_before(n, k, s):
    out = -(-n // s)
    return max((out - 1) * s + k - n, 0) // 2


def avg_pool_oracle(x, pool, strides, padding):
    """The mean of each window's real cells, in float64, looping over output pixels; and the |x| means."""
    N, H, W, C = x.shape
    (KH, KW), (SH, SW) = pool, strides
    if padding == "valid":
        OH, OW, PT, PL = (H - KH) // SH + 1, (W - KW) // SW + 1, 0, 0
    else:
        OH, OW, PT, PL = -(-H // SH), -(-W // SW), same_before(H, KH, SH), same_before(W, KW, SW)
    y, mag = np.zeros((N, OH, OW, C)), np.zeros((N, OH, OW, C))
    for oh in range(OH):
        rows = [h for h in range(oh * SH - PT, oh * SH - PT + KH) if 0 <= h < H]
        for ow in range(OW):
            cols = [w for w in range(ow * SW - PL, ow * SW - PL + KW) if 0 <= w < W]
            window = x[:, rows][:, :, cols].astype(np.float64)              # (N, rows, cols, C)
            y[:, oh, ow] = window.mean(axis=(1, 2))
            mag[:, oh, ow] = np.abs(window).sum(axis=(1, 2)) / window[0, :, :, 0].size
    return y, mag


@st.composite
def pool_case(draw, one_d=False):
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H = 1 if one_d else draw(st.integers(1, 7))
    W = draw(st.integers(1, 9))
    pool = (1 if one_d else draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    if one_d and strides is not None:
        strides = (1, strides[1])
    padding = draw(st.sampled_from(["valid", "same"]))
    assume(padding == "same" or (H >= pool[0] and W >= pool[1]))
    # no ties (for max): a shuffled ramp with steps far larger than the finite-difference eps
    x = rng.permutation(N * H * W * C).reshape(N, H, W, C) / 10.0 - 1.0
    return x, pool, strides, padding


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(pool_case(), st.sampled_from(["float32", "float64"]))
def test_avg_pool2d_matches_the_loop_definition(case, dtype):
    x, pool, strides, padding = case
    x = (x * np.random.default_rng(0).uniform(0.5, 1.5, x.shape)).astype(dtype)
    y = F.avg_pool2d(x, pool, strides, padding).data
    want, mag = avg_pool_oracle(x, pool, strides or pool, padding)
    assert y.dtype == np.dtype(dtype)
    # a sum of at most KH*KW terms, then one division: KH*KW + 1 roundings relative to the window's mean |x|
    assert_within(y, want, bilinear_bound(mag, pool[0] * pool[1] + 1, eps_of(x)),
                  f"avg_pool2d {pool} {strides} {padding} {dtype}")


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(pool_case(one_d=True), st.booleans())
def test_1d_pooling_is_the_2d_pooling_of_one_row(case, average):
    x, pool, strides, padding = case
    x1 = x[:, 0]                                                            # (N, 1, T, C) -> (N, T, C)
    s1 = None if strides is None else strides[1]
    if average:
        y = F.avg_pool1d(x1, pool[1], s1, padding).data
        want, _ = avg_pool_oracle(x, pool, strides or pool, padding)
        np.testing.assert_allclose(y, want[:, 0], rtol=1e-14, atol=1e-14)
    else:
        y = F.max_pool1d(x1, pool[1], s1, padding).data
        S = pool[1] if s1 is None else s1
        PL = same_before(x1.shape[1], pool[1], S) if padding == "same" else 0
        OT = y.shape[1]
        for t in range(OT):
            lo, hi = max(t * S - PL, 0), min(t * S - PL + pool[1], x1.shape[1])
            assert np.array_equal(y[:, t], x1[:, lo:hi].max(axis=1))


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(pool_case())
def test_avg_pool2d_gradients(case):
    x, pool, strides, padding = case
    gy = np.random.default_rng(1).standard_normal(F.avg_pool2d(x, pool, strides, padding).shape)
    check_grad(lambda x: F.avg_pool2d(x, pool, strides, padding), x, grad_output=gy, raise_on_failure=True)


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(pool_case(one_d=True), st.booleans())
def test_1d_pooling_gradients(case, average):
    x, pool, strides, padding = case
    op = F.avg_pool1d if average else F.max_pool1d
    s1 = None if strides is None else strides[1]
    x1 = x[:, 0]
    gy = np.random.default_rng(1).standard_normal(op(x1, pool[1], s1, padding).shape)
    check_grad(lambda x: op(x, pool[1], s1, padding), x1, grad_output=gy, raise_on_failure=True)


@SETTINGS
@given(pool_case(), st.booleans(), st.booleans())
def test_global_pooling_values_and_gradients(case, average, keepdims):
    x, _, _, _ = case
    for arr, op in [(x, F.global_avg_pool2d if average else F.global_max_pool2d),
                    (x[:, 0], F.global_avg_pool1d if average else F.global_max_pool1d)]:
        axes = tuple(range(1, arr.ndim - 1))
        want = arr.mean(axis=axes, keepdims=keepdims) if average else arr.max(axis=axes, keepdims=keepdims)
        y = op(arr, keepdims=keepdims).data
        np.testing.assert_allclose(y, want, rtol=1e-14, atol=0)
        gy = np.random.default_rng(2).standard_normal(y.shape)
        check_grad(lambda v: op(v, keepdims=keepdims), arr, grad_output=gy, raise_on_failure=True)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 6), st.booleans())
def test_masked_global_average_values_and_gradients(seed, T, keepdims):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, T, 2))
    mask = rng.random((3, T)) < 0.6
    mask[0] = True
    mask[1, 0] = True
    y = F.global_avg_pool1d(x, keepdims, mask).data.reshape(3, 2)
    for n in range(3):
        real = x[n][mask[n]]                                                # (real steps, 2)
        want = real.mean(axis=0) if len(real) else np.zeros(2)             # no real step: 0 (Keras: NaN)
        np.testing.assert_allclose(y[n], want, rtol=1e-14, atol=1e-15)
    gy = rng.standard_normal((3, 1, 2) if keepdims else (3, 2))
    report = check_grad(lambda v: F.global_avg_pool1d(v, keepdims, mask), x, grad_output=gy, raise_on_failure=True)
    assert report.passed


# ------------------------------------------------------------------ Keras parity
POOL2D_CASES = list(itertools.product([(5, 7), (4, 4), (1, 2)], [(2, 2), (3, 1), (1, 1)], [None, (1, 1), (3, 2)],
                                      ["valid", "same"]))


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("hw,pool,strides,padding", POOL2D_CASES)
def test_average_pooling2d_matches_keras(tf, keras, hw, pool, strides, padding):
    x = np.random.default_rng(0).standard_normal((2, *hw, 3)).astype(np.float32)
    ours = AveragePooling2D(pool, strides, padding)
    if padding == "valid" and (hw[0] < pool[0] or hw[1] < pool[1]):
        # TensorFlow's kernel gives an empty output or dies of SIGFPE here: numbanet refuses, naming the shapes
        with pytest.raises(ValueError, match=rf"{ours.name}: pool_size {re.escape(str(pool))} is larger than the input "
                                             rf"\(None, {hw[0]}, {hw[1]}, 3\)"):
            ours(x)
        return
    theirs = keras.layers.AveragePooling2D(pool, strides, padding)
    assert_parity(*keras_pair(tf, ours, theirs, x))


POOL1D_CASES = list(itertools.product([7, 6, 1], [1, 2, 3], [None, 1, 2], ["valid", "same"], ["max", "average"]))


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("T,pool,strides,padding,kind", POOL1D_CASES)
def test_1d_pooling_matches_keras(tf, keras, T, pool, strides, padding, kind):
    x = np.random.default_rng(0).permutation(2 * T * 3).reshape(2, T, 3).astype(np.float32) / 7 - 2   # no ties
    ours = (MaxPooling1D if kind == "max" else AveragePooling1D)(pool, strides, padding)
    if padding == "valid" and T < pool:
        with pytest.raises(ValueError, match=rf"{ours.name}: pool_size \({pool},\) is larger than the input "
                                             rf"\(None, {T}, 3\)"):
            ours(x)
        return
    theirs = (keras.layers.MaxPooling1D if kind == "max" else keras.layers.AveragePooling1D)(pool, strides, padding)
    assert ours.compute_output_shape((None, T, 3)) == theirs.compute_output_shape((None, T, 3))
    assert_parity(*keras_pair(tf, ours, theirs, x))


GLOBAL_CASES = list(itertools.product(["GlobalMaxPooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling2D",
                                       "GlobalAveragePooling2D"], [False, True]))


@pytest.mark.parametrize("name,keepdims", GLOBAL_CASES)
def test_global_pooling_matches_keras(tf, keras, name, keepdims):
    shape = (3, 5, 4) if name.endswith("1D") else (3, 4, 5, 2)
    x = np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) / 9
    ours = getattr(nb.layers, name)(keepdims=keepdims)
    theirs = getattr(keras.layers, name)(keepdims=keepdims)
    assert ours.compute_output_shape((None,) + shape[1:]) == theirs.compute_output_shape((None,) + shape[1:])
    assert_parity(*keras_pair(tf, ours, theirs, x))


def _masked_model(lib, vocab, dim, weights):
    model = lib.Sequential([lib.layers.Embedding(vocab, dim, mask_zero=True), lib.layers.GlobalAveragePooling1D(),
                            lib.layers.Dense(2)])
    model(np.ones((1, 4), dtype=np.int32))
    model.set_weights(weights)
    return model


def test_masked_global_average_matches_keras(tf, keras):
    """Embedding(mask_zero=True) -> GlobalAveragePooling1D -> Dense: the mean over the real words only."""
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal((9, 3)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32),
               rng.standard_normal(2).astype(np.float32)]
    ids = np.array([[3, 1, 4, 0, 0], [5, 0, 2, 6, 0], [8, 7, 6, 5, 4]], dtype=np.int32)
    ours, theirs = _masked_model(nb, 9, 3, weights), _masked_model(keras, 9, 3, weights)
    gy = rng.standard_normal((3, 2)).astype(np.float32)
    with tf.GradientTape() as tape:
        yt = theirs(ids)
        loss = tf.reduce_sum(yt * gy)
    g_tf = [g.numpy() if not hasattr(g, "values") else tf.convert_to_tensor(g).numpy()
            for g in tape.gradient(loss, theirs.trainable_weights)]
    yo = ours(ids)
    yo.backward(gy)
    np.testing.assert_allclose(yo.data, yt.numpy(), rtol=1e-5, atol=1e-6)
    for w, g in zip(ours.trainable_weights, g_tf):
        np.testing.assert_allclose(w.grad, g, rtol=1e-5, atol=1e-6)
    emb = weights[0]
    manual = emb[[5, 2, 6]].mean(axis=0) @ weights[1] + weights[2]          # row 1: ids 5, 2, 6 are real
    np.testing.assert_allclose(yo.data[1], manual, rtol=1e-5)


def test_a_fully_masked_row_gives_zero_where_keras_gives_nan(keras):
    x = np.ones((2, 3, 2), dtype=np.float32)
    mask = np.array([[True, False, False], [False, False, False]])
    ours = GlobalAveragePooling1D()(x, mask=mask).data
    theirs = keras.layers.GlobalAveragePooling1D()(x, mask=mask).numpy()
    np.testing.assert_array_equal(ours, [[1, 1], [0, 0]])
    assert np.array_equal(theirs[0], [1, 1]) and np.isnan(theirs[1]).all()   # the departure, on purpose


# ------------------------------------------------------------------ configs and bad input
LAYERS = [AveragePooling2D((3, 2), (1, 2), "same", name="p"), MaxPooling1D(3, 2, "same", name="p"),
          AveragePooling1D(4, None, "valid", name="p"), GlobalMaxPooling1D(keepdims=True, name="p"),
          GlobalAveragePooling1D(name="p"), GlobalMaxPooling2D(name="p"), GlobalAveragePooling2D(True, name="p")]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_rebuilds_the_layer(layer):
    cls = type(layer)
    rebuild = getattr(cls, "from_config", None) or (lambda c: cls(**c))
    assert rebuild(layer.get_config()).get_config() == layer.get_config()


def test_1d_pool_config_uses_keras_tuples(keras):
    ours, theirs = MaxPooling1D(3), keras.layers.MaxPooling1D(3)
    for key in ("pool_size", "strides", "padding"):
        assert ours.get_config()[key] == theirs.get_config()[key]


@pytest.mark.parametrize("make,shape,match", [
    (lambda: AveragePooling2D(name="bad"), (2, 5, 3), r"4-D input.*\(None, 5, 3\)"),
    (lambda: MaxPooling1D(name="bad"), (2, 5, 3, 1), r"3-D input \(batch, steps, channels\).*\(None, 5, 3, 1\)"),
    (lambda: AveragePooling1D(name="bad"), (2, 5), r"3-D input.*\(None, 5\)"),
    (lambda: GlobalMaxPooling1D(name="bad"), (2, 5, 3, 1), r"3-D input.*\(None, 5, 3, 1\)"),
    (lambda: GlobalAveragePooling2D(name="bad"), (2, 5, 3), r"4-D input.*\(None, 5, 3\)"),
])
def test_pooling_layers_reject_wrong_ranks(make, shape, match):
    with pytest.raises(ValueError, match=match) as err:
        make()(np.ones(shape))
    assert "bad" in str(err.value)


@pytest.mark.parametrize("make,match", [
    (lambda: MaxPooling1D(0, name="bad"), "pool_size"),
    (lambda: AveragePooling1D((2, 2), name="bad"), "pool_size"),
    (lambda: MaxPooling1D(2, 0, name="bad"), "strides"),
    (lambda: AveragePooling1D(2, padding="causal", name="bad"), "padding"),
    (lambda: AveragePooling2D((2, 0), name="bad"), "pool_size"),
    (lambda: GlobalAveragePooling1D(keepdims="yes", name="bad"), "keepdims"),
])
def test_pooling_layers_reject_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        make()
    assert "bad" in str(err.value)


def test_masked_average_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"global_avg_pool1d: mask must have the shape \(batch, steps\) = \(2, 3\)"):
        F.global_avg_pool1d(np.ones((2, 3, 4)), mask=np.ones((2, 4), dtype=bool))


def test_keras_short_names_are_the_same_classes(keras):
    for short, full in [("MaxPool1D", "MaxPooling1D"), ("AvgPool1D", "AveragePooling1D"),
                        ("AvgPool2D", "AveragePooling2D"), ("GlobalMaxPool1D", "GlobalMaxPooling1D"),
                        ("GlobalAvgPool1D", "GlobalAveragePooling1D"), ("GlobalMaxPool2D", "GlobalMaxPooling2D"),
                        ("GlobalAvgPool2D", "GlobalAveragePooling2D"), ("Convolution1D", "Conv1D")]:
        assert getattr(keras.layers, short) is getattr(keras.layers, full)     # Keras has both names
        assert getattr(nb.layers, short) is getattr(nb.layers, full)
