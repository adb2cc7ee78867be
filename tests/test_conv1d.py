"""Conv1D: an independent NumPy oracle in both tiers, float64 finite differences, Keras parity, bad input.

The oracle is the defining sum written out with loops over output steps,
    y[n, t, f] = b[f] + sum_{k, c} xp[n, t*S + k*D, c] W[k, c, f],   xp = x zero-padded by (PL, PR),
with (PL, PR) from Keras's rules ("same": TensorFlow's split of the dilated kernel's
total; "causal": (K - 1)*D zeros in front).
"""
import itertools
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from bounds import assert_within, bilinear_bound, eps_of
from numbanet.engine import Tensor, check_grad
from numbanet.engine import functional as F
from numbanet.layers import Conv1D

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SETTINGS = settings(max_examples=30, deadline=None)


def oracle_pads(T, K, S, D, padding):
    KD = (K - 1) * D + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return KD - 1, 0
    out = -(-T // S)
    total = max((out - 1) * S + KD - T, 0)
    return total // 2, total - total // 2


def conv1d_oracle(x, W, b, S, D, padding):
    """(y, magnitude): the loop definition in float64, and the same sum over |terms| (for the error bound)."""
    N, T, C = x.shape
    K, _, Fo = W.shape
    PL, PR = oracle_pads(T, K, S, D, padding)
    xp = np.zeros((N, T + PL + PR, C))
    xp[:, PL:PL + T] = x
    OT = (T + PL + PR - ((K - 1) * D + 1)) // S + 1
    y, mag = np.zeros((N, OT, Fo)), np.zeros((N, OT, Fo))
    for t in range(OT):
        taps = xp[:, t * S: t * S + (K - 1) * D + 1: D]                  # (N, K, C)
        y[:, t] = np.einsum("nkc,kcf->nf", taps, W)
        mag[:, t] = np.einsum("nkc,kcf->nf", np.abs(taps), np.abs(W))
    if b is not None:
        y, mag = y + b, mag + np.abs(b)
    return y, mag


@st.composite
def conv1d_case(draw):
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    N, T, C, Fo = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    K = draw(st.integers(1, 4))
    S, D = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    assume(S == 1 or D == 1)
    padding = draw(st.sampled_from(["valid", "same", "causal"]))
    assume(padding != "valid" or T >= (K - 1) * D + 1)
    bias = rng.standard_normal(Fo) if draw(st.booleans()) else None
    return rng.standard_normal((N, T, C)), rng.standard_normal((K, C, Fo)), bias, S, D, padding


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(conv1d_case(), st.sampled_from(["float32", "float64"]))
def test_conv1d_matches_the_loop_definition(case, dtype):
    x, W, b, S, D, padding = case
    xs, Ws = x.astype(dtype), W.astype(dtype)
    bs = None if b is None else b.astype(dtype)
    y = F.conv1d(Tensor(xs), Tensor(Ws), None if bs is None else Tensor(bs), S, padding, D).data
    want, mag = conv1d_oracle(xs.astype(np.float64), Ws.astype(np.float64),
                              None if bs is None else bs.astype(np.float64), S, D, padding)
    assert y.dtype == np.dtype(dtype)
    assert_within(y, want, bilinear_bound(mag, W.shape[0] * W.shape[1] + 1, eps_of(xs)),
                  f"conv1d S={S} D={D} {padding} {dtype}")


@pytest.mark.usefixtures("tier")
@SETTINGS
@given(conv1d_case())
def test_conv1d_gradients_match_finite_differences(case):
    x, W, b, S, D, padding = case
    inputs = (x, W) if b is None else (x, W, b)
    gy = np.random.default_rng(0).standard_normal(F.conv1d(*inputs[:2], b, S, padding, D).shape)
    check_grad(lambda x, W, *b: F.conv1d(x, W, b[0] if b else None, S, padding, D), *inputs,
               grad_output=gy, raise_on_failure=True)


@pytest.mark.usefixtures("tier")
@settings(max_examples=20, deadline=None)
@given(conv1d_case(), st.sampled_from(["relu", "tanh", "sigmoid"]))
def test_conv1d_layer_gradients_with_activation(case, activation):
    """The layer's output equals conv1d + activation, and that composite's gradients match finite differences."""
    x, W, b, S, D, padding = case
    z = F.conv1d(x, W, b, S, padding, D).data
    assume(activation != "relu" or np.abs(z).min() > 1e-3)        # away from relu's kink
    layer = Conv1D(W.shape[2], W.shape[0], S, padding, D, activation=activation, use_bias=b is not None,
                   dtype="float64")
    layer(x[:1])
    layer.set_weights([W] if b is None else [W, b])
    act = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}
    np.testing.assert_allclose(layer(x).data, act[activation](z), rtol=1e-12, atol=1e-12)
    inputs = (x, W) if b is None else (x, W, b)
    check_grad(lambda x, W, *b: F.conv1d(x, W, b[0] if b else None, S, padding, D, activation=activation),
               *inputs, grad_output=np.random.default_rng(1).standard_normal(z.shape), raise_on_failure=True)


def test_causal_output_step_t_sees_steps_up_to_t_only():
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((1, 8, 2)), rng.standard_normal((3, 2, 1))
    base = F.conv1d(x, W, None, 1, "causal", 2).data
    for t in range(8):
        x2 = x.copy()
        x2[:, t:] += 1.0                                  # change step t and everything after it
        moved = F.conv1d(x2, W, None, 1, "causal", 2).data
        assert np.array_equal(moved[:, :t], base[:, :t]), f"outputs before step {t} changed"
        assert not np.allclose(moved[:, t], base[:, t])


# ------------------------------------------------------------------ Keras parity
def keras_pair(tf, ours, theirs, x, weights=()):
    """((y_ours, y_keras), [(g_ours, g_keras), ...]) for the input and each trainable weight, one random gy."""
    theirs.build(x.shape)
    if weights:
        theirs.set_weights(weights)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = theirs(xt)
        gy = np.random.default_rng(1).standard_normal(yt.shape).astype(x.dtype)
        loss = tf.reduce_sum(yt * gy)
    g_tf = tape.gradient(loss, [xt] + list(theirs.trainable_weights))
    xo = Tensor(x, requires_grad=True)
    ours(xo)
    if weights:
        ours.set_weights(weights)
    yo = ours(xo)
    yo.backward(gy)
    g_ours = [xo.grad] + [w.grad for w in ours.trainable_weights]
    return (yo.data, yt.numpy()), list(zip(g_ours, [g.numpy() for g in g_tf]))


def assert_parity(results, grads, tol=2e-4):
    ours, theirs = results
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()))
    for g_ours, g_tf in grads:
        assert g_ours.shape == g_tf.shape
        np.testing.assert_allclose(g_ours, g_tf, rtol=tol, atol=tol * max(1.0, np.abs(g_tf).max()))


CONV1D_CASES = list(itertools.product([7, 2], [1, 3, 4], [1, 2], [1, 2], ["valid", "same", "causal"]))


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("T,k,s,d,padding", CONV1D_CASES)
def test_conv1d_matches_keras(tf, keras, T, k, s, d, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, T, 3)).astype(np.float32)
    w = [rng.standard_normal((k, 3, 4)).astype(np.float32) * 0.5, rng.standard_normal(4).astype(np.float32)]
    if s > 1 and d > 1:                                   # both refuse the combination at construction
        with pytest.raises(ValueError, match="conv1d.*dilation_rate"):
            Conv1D(4, k, s, padding, d)
        with pytest.raises(ValueError):
            keras.layers.Conv1D(4, k, s, padding, dilation_rate=d)
        return
    ours = Conv1D(4, k, s, padding, d, activation="tanh")
    theirs = keras.layers.Conv1D(4, k, s, padding, dilation_rate=d, activation="tanh")
    if padding == "valid" and T < (k - 1) * d + 1:        # the dilated kernel is longer than the input
        with pytest.raises(ValueError, match=rf"{ours.name}.*\(None, {T}, 3\)"):
            ours(x)
        with pytest.raises((ValueError, tf.errors.OpError)):
            theirs(x)
        return
    assert ours.compute_output_shape((None, T, 3)) == theirs.compute_output_shape((None, T, 3))
    assert_parity(*keras_pair(tf, ours, theirs, x, w))


def test_conv1d_float64_and_relu_match_keras(tf, keras):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 2))
    w = [rng.standard_normal((3, 2, 5)), rng.standard_normal(5)]
    ours = Conv1D(5, 3, 2, "same", activation="relu", dtype="float64")
    theirs = keras.layers.Conv1D(5, 3, 2, "same", activation="relu", dtype="float64")
    results, grads = keras_pair(tf, ours, theirs, x, w)
    assert results[0].dtype == np.float64
    assert_parity(results, grads, tol=1e-10)


def test_conv1d_weights_and_initialiser_follow_keras(keras):
    nb.utils.set_random_seed(0)
    ours = Conv1D(6, 5, use_bias=True)
    ours.build((None, 10, 4))
    theirs = keras.layers.Conv1D(6, 5)
    theirs.build((None, 10, 4))
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights] == [(5, 4, 6), (6,)]
    assert [n for n, _ in ours._weight_list] == [w.name for w in theirs.weights] == ["kernel", "bias"]
    limit = np.sqrt(6 / (5 * 4 + 5 * 6))                 # glorot_uniform, fans K*C and K*F
    kernel = ours.get_weights()[0]
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
    assert np.array_equal(ours.get_weights()[1], np.zeros(6))
    layer = Conv1D(2, 3, use_bias=False)
    layer(np.ones((1, 4, 2)))
    assert [w.shape for w in layer.weights] == [(3, 2, 2)]


def test_conv1d_config_rebuilds_the_layer():
    layer = Conv1D(3, (4,), strides=[2], padding="CAUSAL", activation="relu", use_bias=False,
                   kernel_initializer="he_normal", bias_initializer="ones", name="c1", dtype="float64")
    config = layer.get_config()
    rebuild = getattr(Conv1D, "from_config", None) or (lambda c: Conv1D(**c))
    again = rebuild(config)
    assert again.get_config() == config
    assert config["kernel_size"] == (4,) and config["strides"] == (2,) and config["padding"] == "causal"
    assert config["dilation_rate"] == (1,)


def test_conv1d_drops_a_padding_mask_as_keras_does():
    emb = nb.layers.Embedding(10, 4, mask_zero=True)
    y = Conv1D(2, 3, padding="same")(emb(np.array([[1, 2, 0, 0]])))
    assert nb.layers.base.mask_of(y) is None


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,match", [
    ({"filters": 0, "kernel_size": 3}, "filters"),
    ({"filters": 2, "kernel_size": (3, 3)}, "kernel_size"),
    ({"filters": 2, "kernel_size": 0}, "kernel_size"),
    ({"filters": 2, "kernel_size": 3, "strides": 0}, "strides"),
    ({"filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 0}, "dilation_rate"),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}, "dilation_rate"),
    ({"filters": 2, "kernel_size": 3, "kernel_initializer": "nope"}, "kernel_initializer"),
])
def test_conv1d_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        Conv1D(name="bad_conv", **kwargs)
    assert "bad_conv" in str(err.value)


@pytest.mark.parametrize("shape,match", [
    ((2, 5), r"3-D input \(batch, steps, channels\).*\(None, 5\)"),
    ((2, 5, 5, 3), r"3-D input.*\(None, 5, 5, 3\)"),
    ((2, 2, 3), r"kernel_size \(3,\).*\(None, 2, 3\)"),
])
def test_conv1d_rejects_bad_inputs(shape, match):
    layer = Conv1D(2, 3, name="c1d")
    with pytest.raises(ValueError, match=match) as err:
        layer(np.ones(shape))
    assert "c1d" in str(err.value)


def test_conv1d_rejects_a_change_of_channels():
    layer = Conv1D(2, 3, name="c1d")
    layer(np.ones((1, 5, 3)))
    with pytest.raises(ValueError, match=r"c1d: expected 3 input channels.*\(None, 5, 4\)"):
        layer(np.ones((1, 5, 4)))


def test_functional_conv1d_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="conv1d: input has 3 channels but the kernel of shape"):
        F.conv1d(np.ones((1, 5, 3)), np.ones((2, 4, 1)))
    with pytest.raises(ValueError, match="conv1d: expected a 3-D kernel"):
        F.conv1d(np.ones((1, 5, 3)), np.ones((2, 3)))
