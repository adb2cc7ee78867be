"""BatchNormalization against tf.keras 3: the same weights (set_weights), the same inputs, the same
outputs, gradients (tf.GradientTape) and moving statistics, in training and inference mode, for
Dense outputs, sequences and conv maps on every axis; then a whole model trained by fit.
"""
import numpy as np
import pytest

import numbanet as nb
from numbanet import Tensor
from numbanet.layers import BatchNormalization

from bounds import assert_within
from test_batchnorm import bn_bounds

CASES = [  # (shape, axis, center, scale, momentum, epsilon)
    ((8, 5), -1, True, True, 0.99, 1e-3),
    ((1, 3), -1, True, True, 0.99, 1e-3),                # one sample: var 0, y = beta
    ((6, 4), 1, False, True, 0.9, 1e-5),
    ((4, 7, 3), -1, True, False, 0.5, 1e-3),
    ((4, 7, 3), 1, False, False, 0.99, 0.1),
    ((3, 5, 4, 2), -1, True, True, 0.9, 1e-3),           # a conv map, channels last
    ((3, 5, 4, 2), 1, True, True, 0.8, 1e-3),
    ((3, 5, 4, 2), 2, True, False, 0.99, 1e-4),
    ((2, 3, 3, 6), -3, False, True, 0.7, 1e-3),
]


def _weights(rng, C, center, scale, dtype):
    """Random gamma, beta, moving mean and variance in Keras's order (only those the layer has)."""
    ws = []
    if scale:
        ws.append(rng.uniform(0.5, 2.0, C).astype(dtype))
    if center:
        ws.append(rng.standard_normal(C).astype(dtype))
    return ws + [rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)]


def _per_channel(x, axis):
    """x with channels on ``axis`` as (M, C), for the bounds."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return x.reshape(-1, x.shape[-1])


def _back(a, shape, axis):
    """The inverse of _per_channel."""
    moved = np.moveaxis(np.empty(shape), axis, -1).shape
    return np.moveaxis(a.reshape(moved), -1, axis)


@pytest.mark.parametrize("tier", ["fast", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-axis{c[1]}-c{int(c[2])}s{int(c[3])}")
def test_keras_parity_layer(tf, keras, case, training, dtype, tier):
    shape, axis, center, scale, momentum, eps_bn = case
    C = shape[axis]
    rng = np.random.default_rng(sum(shape) + axis)
    x = (rng.standard_normal(shape) * 1.5 + 0.5).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    weights = _weights(rng, C, center, scale, dtype)
    kw = dict(axis=axis, center=center, scale=scale, momentum=momentum, epsilon=eps_bn, dtype=dtype)

    k_layer = keras.layers.BatchNormalization(**kw)
    k_layer.build(shape)
    k_layer.set_weights(weights)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        k_y = k_layer(xt, training=training)
        k_loss = tf.reduce_sum(k_y * gy)
    k_grads = tape.gradient(k_loss, [xt] + k_layer.trainable_weights)

    with nb.kernels(tier):
        layer = BatchNormalization(**kw)
        layer.build_from_shape((None,) + shape[1:])
        layer.set_weights(weights)
        xn = Tensor(x, requires_grad=True)
        y = layer(xn, training=training)
        (y * Tensor(gy)).sum().backward()
    ours = [xn.grad] + [w.grad for w in layer.trainable_weights]
    assert [w.name.split("/")[-1] for w in layer.weights] == [w.path.split("/")[-1] for w in k_layer.weights]
    assert y.dtype == np.dtype(dtype) and y.shape == shape

    u = np.finfo(dtype).eps
    x2, gy2 = _per_channel(x, axis), _per_channel(gy, axis)
    gamma = weights[0].astype(np.float64) if scale else np.ones(C)
    beta = weights[1 if scale else 0].astype(np.float64) if center else np.zeros(C)
    if training:
        y_bound, gx_bound = bn_bounds(x2, gamma, beta, gy2, eps_bn, u)
    else:   # an affine map per channel: a few roundings of each term
        mm, mv = (w.astype(np.float64) for w in weights[-2:])
        inv = 1 / np.sqrt(mv + eps_bn)
        y_bound = 16 * u * (np.abs(gamma) * inv * (np.abs(x2) + np.abs(mm)) + np.abs(beta))
        gx_bound = 16 * u * np.abs(gamma) * inv * np.abs(gy2)
    assert_within(y.data, k_y.numpy(), _back(y_bound, shape, axis), "y")
    assert_within(ours[0], k_grads[0].numpy(), _back(gx_bound, shape, axis), "gx")
    # ggamma = sum gy xhat, gbeta = sum gy: sums of M terms, xhat carrying the statistics' error
    M = x2.shape[0]
    a = (np.abs(x2 - x2.mean(axis=0)) + np.abs(x2).mean(axis=0)) / np.sqrt(x2.var(axis=0) + eps_bn)
    if not training:
        a = (np.abs(x2) + np.abs(mm)) * inv
    sum_bound = 4 * (2 * M + 16) * u * (np.abs(gy2) * (a + 1)).sum(axis=0)
    names = (["gamma"] if scale else []) + (["beta"] if center else [])
    for name, g, k in zip(names, ours[1:], k_grads[1:]):
        assert_within(g, k.numpy(), sum_bound, name)
    stat_bound = (4 * (2 * M + 16) * u * (np.abs(x2).mean(axis=0) + x2.var(axis=0) + 1) if training else 0)
    for name, w, k in zip(("moving_mean", "moving_variance"), layer.get_weights()[-2:], k_layer.get_weights()[-2:]):
        assert_within(w, k, stat_bound, name)


def _keras_model(keras, dtype):
    return keras.Sequential([keras.Input((6,), dtype=dtype),
                             keras.layers.Dense(8, activation="tanh", dtype=dtype),
                             keras.layers.BatchNormalization(momentum=0.9, dtype=dtype),
                             keras.layers.Dense(8, dtype=dtype),
                             keras.layers.BatchNormalization(dtype=dtype, center=False),
                             keras.layers.Dense(3, dtype=dtype)])


def _our_model(dtype):
    return nb.Sequential([nb.Input((6,)),
                          nb.layers.Dense(8, activation="tanh", dtype=dtype),
                          BatchNormalization(momentum=0.9, dtype=dtype),
                          nb.layers.Dense(8, dtype=dtype),
                          BatchNormalization(dtype=dtype, center=False),
                          nb.layers.Dense(3, dtype=dtype)], dtype=dtype)


@pytest.mark.parametrize("tier", ["fast", "reference"])
def test_keras_parity_fit_evaluate_predict(tf, keras, tier):
    """Three epochs of SGD with momentum in float64, no shuffling: the same weights (moving statistics
    included), the same history, and the same predict / evaluate afterwards (inference mode).

    Keras computes its losses in ``floatx`` (float32 by default), so floatx is float64 here;
    the learning rate and momentum are powers of two, exact in both. Both sides then run the
    same float64 arithmetic up to the order of sums: rounding differences of ~1e-16 grow
    through the 18 steps to about 1e-14 relative (measured), far below 1e-10, while any
    difference in semantics (the mode, the biased variance, the moving-average rule, an
    optimizer touching the statistics) changes these numbers by more than 1e-3.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 6)) * 2 + 1
    y = rng.standard_normal((48, 3))
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()   # Keras keeps both globally
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        k_model = _keras_model(keras, "float64")
        initial = k_model.get_weights()
        k_model.compile(optimizer=keras.optimizers.SGD(0.0625, momentum=0.5), loss="mse")
        k_hist = k_model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        k_pred, k_loss = k_model.predict(x, verbose=0), k_model.evaluate(x, y, verbose=0)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    with nb.kernels(tier):
        model = _our_model("float64")
        model.set_weights(initial)
        model.compile(optimizer=nb.optimizers.SGD(0.0625, momentum=0.5), loss="mse")
        hist = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        pred = model.predict(x, verbose=0)
        loss = model.evaluate(x, y, verbose=0)
    assert len(model.get_weights()) == len(k_model.get_weights()) == 13
    for w, kw, kv in zip(model.get_weights(), k_model.get_weights(), k_model.weights):
        np.testing.assert_allclose(w, kw, rtol=1e-10, atol=1e-13, err_msg=kv.path)
    np.testing.assert_allclose(hist.history["loss"], k_hist.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(pred, k_pred, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(loss, k_loss, rtol=1e-10)
    # the statistics moved from their initial values, so the comparison above compared something
    assert not np.allclose(model.layers[1].moving_mean.data, 0)


def test_keras_parity_summary_counts(keras):
    k_model = _keras_model(keras, "float32")
    model = _our_model("float32")
    lines = []
    model.summary(print_fn=lines.append)
    k_total = k_model.count_params()
    k_trainable = sum(int(np.prod(w.shape)) for w in k_model.trainable_weights)
    assert any(f"Total params: {k_total:,} " in s for s in lines)
    assert any(f"Trainable params: {k_trainable:,} " in s for s in lines)
    assert any(f"Non-trainable params: {k_total - k_trainable:,} " in s for s in lines)
    assert [w.name.split("/")[-1] for w in model.weights] == [w.path.split("/")[-1] for w in k_model.weights]
    assert ([w.name.split("/")[-1] for w in model.non_trainable_weights]
            == [w.path.split("/")[-1] for w in k_model.non_trainable_weights])


def test_frozen_layer_parity(tf, keras):
    """trainable=False: Keras runs the layer in inference mode even with training=True; so do we."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    weights = _weights(rng, 3, True, True, np.float32)
    k_layer = keras.layers.BatchNormalization()
    k_layer.build((5, 3))
    k_layer.set_weights(weights)
    k_layer.trainable = False
    layer = BatchNormalization()
    layer.build_from_shape((None, 3))
    layer.set_weights(weights)
    layer.trainable = False
    y = layer(x, training=True).data
    np.testing.assert_allclose(y, k_layer(x, training=True).numpy(), rtol=1e-6, atol=1e-6)
    for a, b in zip(layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_array_equal(a, b)              # neither updated its statistics


def test_keras_parity_regularizers(tf, keras):
    """gamma_regularizer and beta_regularizer: the same penalties in ``losses`` as Keras's layer.losses,
    and their gradients reach gamma and beta (sums of C terms: float32 rounding, 1e-6 relative)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    weights = _weights(rng, 4, True, True, np.float32)
    k_layer = keras.layers.BatchNormalization(gamma_regularizer=keras.regularizers.L2(0.1),
                                              beta_regularizer=keras.regularizers.L1(0.01))
    k_layer.build((6, 4))
    k_layer.set_weights(weights)
    with tf.GradientTape() as tape:
        k_layer(x, training=True)
        k_total = tf.add_n(k_layer.losses)
    k_grads = tape.gradient(k_total, k_layer.trainable_weights)
    layer = BatchNormalization(gamma_regularizer=nb.regularizers.L2(0.1), beta_regularizer="l1")
    layer.build_from_shape((None, 4))
    layer.set_weights(weights)
    layer.beta_regularizer = nb.regularizers.L1(0.01)
    layer(x, training=True)
    assert len(layer.losses) == len(k_layer.losses) == 2
    for ours, theirs in zip(layer.losses, k_layer.losses):
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)
    sum(layer.losses[1:], layer.losses[0]).backward()
    for w, k in zip(layer.trainable_weights, k_grads):
        np.testing.assert_allclose(w.grad, k.numpy(), rtol=1e-6)
    config = layer.get_config()
    assert config["gamma_regularizer"] is not None and config["beta_regularizer"] is not None
