"""The activations softplus, softsign, selu, gelu, swish/silu, hard_sigmoid, exponential, and the
LeakyReLU, ReLU and Softmax layers.

Each against Keras 3 (values and gradients with tf.GradientTape, float64 and float32), central
finite differences in float64 (Hypothesis over shapes, away from kinks), through
``Dense(activation=...)``, ``Activation(...)`` and ``activations.get``, and bad input.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanet as nb
from numbanet import activations
from numbanet.layers import LeakyReLU, ReLU, Softmax

from bounds import LIBM_ULP, assert_within, elementwise_bound, matmul_bound
from grad_helpers import GRAD_SETTINGS, check_op

NEW = ["softplus", "softsign", "selu", "gelu", "swish", "silu", "hard_sigmoid", "exponential"]
# rounded operations in each formula and in its derivative, a libm call counting LIBM_ULP
N_OPS = {"softplus": 2 * LIBM_ULP + 3, "softsign": 4, "selu": LIBM_ULP + 3, "gelu": LIBM_ULP + 6,
         "gelu_approximate": LIBM_ULP + 10, "swish": LIBM_ULP + 5, "silu": LIBM_ULP + 5, "hard_sigmoid": 3,
         "exponential": LIBM_ULP, "elu": LIBM_ULP + 2, "leaky_relu": 1, "relu": 1}
KINKS = {"selu": (0.0,), "hard_sigmoid": (-3.0, 3.0)}
# TensorFlow's float64 gelu (both forms) is accurate to float32 precision only: at x = 1 it gives
# 0.8413447419273903 where x/2 erfc(-x/sqrt 2) = 0.8413447460685429 (and tf.math.erfc itself is exact),
# so Keras's gelu is compared within float32 bounds; the erf form is checked tightly against math.erf.
KERAS_EPS = {"gelu": float(np.finfo(np.float32).eps), "gelu_approximate": float(np.finfo(np.float32).eps)}


def magnitude(x, *arrays):
    """Largest |intermediate| of these formulas at x: (1 + |x|)^2 covers x^2, x^3 / 20 and the products;
    the results themselves (exp(x) grows faster) are added."""
    m = (1 + np.abs(x)) ** 2
    for a in arrays:
        m = np.maximum(m, np.abs(a))
    return m


def samples(dtype, kinks=()):
    x = np.concatenate([np.linspace(-6, 6, 61), np.random.default_rng(0).uniform(-8, 8, 60)])
    for k in kinks:                                   # both sides of a kink, never on it
        x = np.where(np.abs(x - k) < 1e-3, k + 1e-3, x)
    return x.reshape(11, 11).astype(dtype)


def ours_and_keras(tf, fn_ours, fn_keras, x):
    xt = nb.Tensor(x, requires_grad=True)
    y = fn_ours(xt)
    y.backward(np.ones_like(x))
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        yk = fn_keras(xv)
    gk = tape.gradient(yk, xv)
    return y.data, xt.grad, yk.numpy(), gk.numpy()


# ------------------------------------------------------------------ activations vs Keras
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NEW)
def test_activation_values_and_gradients_match_keras(tf, keras, name, dtype):
    x = samples(dtype, KINKS.get(name, ()))
    y, g, yk, gk = ours_and_keras(tf, activations.get(name), keras.activations.get(name), x)
    assert y.dtype == dtype and g.dtype == dtype
    eps = max(float(np.finfo(dtype).eps), KERAS_EPS.get(name, 0.0))
    bound = elementwise_bound(magnitude(x, yk, gk), N_OPS[name], eps)
    assert_within(y, yk, bound, f"{name} values")
    assert_within(g, gk, bound, f"{name} gradients")


def test_gelu_is_the_erf_form_by_default_and_approximate_is_the_tanh_form(tf, keras):
    x = samples(np.float64)
    exact = x / 2 * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))    # independent of erfc
    assert_within(activations.gelu(nb.Tensor(x)).data, exact, elementwise_bound(magnitude(x), N_OPS["gelu"]))
    y, g, yk, gk = ours_and_keras(tf, lambda t: activations.gelu(t, approximate=True),
                                  lambda t: keras.activations.gelu(t, approximate=True), x)
    bound = elementwise_bound(magnitude(x, yk, gk), N_OPS["gelu_approximate"], KERAS_EPS["gelu_approximate"])
    assert_within(y, yk, bound, "gelu approximate values")
    assert_within(g, gk, bound, "gelu approximate gradients")
    assert np.abs(y - exact).max() > 1e-5            # the two forms differ: the default is not the tanh one


def test_closed_forms_at_known_points():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    y = {n: activations.get(n)(nb.Tensor(x)).data for n in NEW}
    np.testing.assert_allclose(y["softplus"], np.log1p(np.exp(x)), rtol=1e-15)
    np.testing.assert_array_equal(y["softsign"], x / (1 + np.abs(x)))
    np.testing.assert_array_equal(y["hard_sigmoid"], [0.0, 1 / 3, 0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(y["swish"], x / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(y["selu"][3], 1.0507009873554805, rtol=1e-15)
    np.testing.assert_allclose(y["exponential"], np.exp(x), rtol=1e-15)
    assert activations.get("silu") is activations.get("swish")


# ------------------------------------------------------------------ finite differences
@GRAD_SETTINGS
@given(st.data(), st.sampled_from(NEW + ["gelu_approximate"]))
def test_activation_gradients_match_finite_differences(data, name):
    fn = (lambda t: activations.gelu(t, approximate=True)) if name == "gelu_approximate" else activations.get(name)
    check_op(data, fn, (-5.0, 5.0) if name != "exponential" else (-3.0, 3.0), kinks=KINKS.get(name, ()),
             margin=1e-2, label=name)


@GRAD_SETTINGS
@given(st.data(), st.floats(0.0, 2.0), st.one_of(st.none(), st.floats(0.5, 4.0)), st.floats(0.0, 1.0))
def test_relu_layer_gradients_match_finite_differences(data, slope, max_value, threshold):
    layer = ReLU(max_value=max_value, negative_slope=slope, threshold=threshold, dtype="float64")
    kinks = (threshold,) + (() if max_value is None else (max_value,))
    check_op(data, layer, (-5.0, 5.0), kinks=kinks, margin=1e-2, min_dims=2, label=f"ReLU({layer.get_config()})")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from([-1, 1, (1, 2)]))
def test_softmax_layer_gradients_match_finite_differences(data, axis):
    layer = Softmax(axis=axis, dtype="float64")
    check_op(data, layer, (-3.0, 3.0), min_dims=3, max_dims=3, broadcast=False, label=f"Softmax({axis})")


# ------------------------------------------------------------------ through layers
@pytest.mark.parametrize("name", NEW)
def test_dense_and_activation_layer_with_the_new_names_match_keras(tf, keras, name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    ours = nb.layers.Dense(3, activation=name, dtype="float64", bias_initializer="random_normal")
    theirs = keras.layers.Dense(3, activation=name, dtype="float64")
    z_ours = ours(x)
    theirs.build((None, 4))
    theirs.set_weights(ours.get_weights())
    W, b = ours.get_weights()
    z = x @ W + b
    with tf.GradientTape() as tape:
        yk = theirs(x)
    gk = tape.gradient(yk, theirs.trainable_variables)
    z_ours.backward(np.ones_like(z))
    z_err = matmul_bound(x, W, b)                                  # the pre-activation's rounding, elementwise
    dy = np.abs(gk[1].numpy()).max() + 1                            # |f'| bound over the batch, plus a margin
    eps = KERAS_EPS.get(name, float(np.finfo(np.float64).eps))
    bound = elementwise_bound(magnitude(z, yk.numpy()), N_OPS[name], eps) + 2 * dy * z_err
    assert_within(z_ours.data, yk.numpy(), bound, f"Dense({name}) values")
    for w, g in zip(ours.trainable_weights, gk):
        mag = np.abs(x).T @ magnitude(z) if w.ndim == 2 else magnitude(z).sum(0)
        assert_within(w.grad, g.numpy(), elementwise_bound(mag, N_OPS[name] + 5 + x.shape[0], eps), f"{w.name}")
    layer = nb.layers.Activation(name, dtype="float64")
    assert_within(layer(z).data, keras.layers.Activation(name, dtype="float64")(z).numpy(),
                  elementwise_bound(magnitude(z, np.exp(z) if name == "exponential" else 0), N_OPS[name], eps), name)
    assert type(ours).from_config(ours.get_config()).get_config()["activation"] in (name, "swish")


# ------------------------------------------------------------------ the three layers
@pytest.mark.parametrize("kwargs", [{}, {"negative_slope": 0.05}, {"negative_slope": 1.5}])
def test_leaky_relu_layer_matches_keras(tf, keras, kwargs):
    x = samples(np.float32, (0.0,))
    y, g, yk, gk = ours_and_keras(tf, LeakyReLU(**kwargs), keras.layers.LeakyReLU(**kwargs), x)
    np.testing.assert_array_equal(y, yk)                 # one product per element: exactly rounded both ways
    np.testing.assert_array_equal(g, gk)


def test_leaky_relu_defaults_are_keras_layer_0_3_and_activation_0_2(keras):
    assert LeakyReLU().negative_slope == keras.layers.LeakyReLU().negative_slope == 0.3
    x = np.array([-2.0])
    # TensorFlow's leaky_relu keeps its slope as a float32 attribute, so in float64 Keras gives -0.4000000059604645
    assert activations.get("leaky_relu")(nb.Tensor(x)).data[0] == -0.4
    assert float(keras.activations.leaky_relu(x)[0]) == pytest.approx(-0.4, rel=float(np.finfo(np.float32).eps))
    with pytest.warns(DeprecationWarning, match="alpha is deprecated"):
        assert LeakyReLU(alpha=0.1).negative_slope == 0.1


@pytest.mark.parametrize("kwargs", [{}, {"max_value": 6.0}, {"max_value": 2.5, "negative_slope": 0.5},
                                    {"threshold": 1.0}, {"threshold": 1.0, "negative_slope": 0.25},
                                    {"max_value": 3.0, "negative_slope": 0.1, "threshold": 0.5},
                                    {"negative_slope": 0.375}])    # slopes exact in float32: TF's leaky_relu
def test_relu_layer_matches_keras(tf, keras, kwargs):
    kinks = [kwargs.get("threshold", 0.0)] + ([kwargs["max_value"]] if "max_value" in kwargs else [])
    x = samples(np.float64, kinks)
    y, g, yk, gk = ours_and_keras(tf, ReLU(dtype="float64", **kwargs), keras.layers.ReLU(dtype="float64", **kwargs), x)
    bound = elementwise_bound(magnitude(x), 2)           # a * (x - th): two roundings
    assert_within(y, yk, bound, f"ReLU({kwargs}) values")
    assert_within(g, gk, bound, f"ReLU({kwargs}) gradients")
    config = ReLU(**kwargs).get_config()
    assert ReLU.from_config(config).get_config() == config


@pytest.mark.parametrize("axis, mask_shape", [(-1, None), (1, None), ((1, 2), None), (-1, (2, 3, 4)),
                                              (-1, (2, 1, 4)), (1, (4,)), (-1, "all_masked")])
def test_softmax_layer_matches_keras(tf, keras, axis, mask_shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4))
    gy = rng.standard_normal((2, 3, 4))
    mask = None
    if mask_shape == "all_masked":
        mask = np.ones((2, 3, 4), dtype=bool)
        mask[0, 1] = False                               # a whole row masked: zeros, as Keras
    elif mask_shape is not None:
        mask = rng.random(mask_shape) > 0.3
    ours, theirs = Softmax(axis=axis, dtype="float64"), keras.layers.Softmax(axis=axis, dtype="float64")
    xt = nb.Tensor(x, requires_grad=True)
    y = ours(xt, mask=mask) if mask is not None else ours(xt)
    (y * nb.Tensor(gy)).sum().backward()
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        yk = theirs(xv, mask=mask) if mask is not None else theirs(xv)
        obj = tf.reduce_sum(yk * gy)
    gk = tape.gradient(obj, xv).numpy()
    n = 12 if axis == (1, 2) else x.shape[axis]
    bound = elementwise_bound(magnitude(x), 2 * n + LIBM_ULP + 4)   # the sums over the axis, exp, the division
    assert_within(y.data, yk.numpy(), bound, "Softmax values")
    assert_within(xt.grad, gk, bound * (1 + np.abs(gy).sum()), "Softmax gradients")
    if mask_shape == "all_masked":
        assert not y.data[0, 1].any()


def test_layers_are_exported_keep_shapes_and_rebuild_from_config():
    for layer in (LeakyReLU(0.1), ReLU(max_value=1.0), Softmax(axis=(1, 2))):
        assert getattr(nb.layers, type(layer).__name__) is type(layer)
        assert layer.compute_output_shape((None, 3, 4)) == (None, 3, 4)
        again = type(layer).from_config(layer.get_config())
        assert {k: v for k, v in again.get_config().items()} == layer.get_config()
        assert layer.weights == []
    model = nb.Sequential([nb.layers.Dense(4, input_shape=(3,)), LeakyReLU(), nb.layers.Dense(2), Softmax()])
    np.testing.assert_allclose(model.predict(np.ones((2, 3))).sum(-1), 1.0, rtol=1e-6)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: LeakyReLU(-0.1, name="lr"), ValueError, r"lr: negative_slope must be >= 0, got -0.1"),
    (lambda: LeakyReLU(None, name="lr"), TypeError, r"lr: negative_slope must be a number >= 0"),
    (lambda: ReLU(max_value=-1, name="r"), ValueError, r"r: max_value must be >= 0"),
    (lambda: ReLU(threshold="1", name="r"), TypeError, r"r: threshold must be a number"),
    (lambda: ReLU(negative_slope=float("nan"), name="r"), ValueError, r"r: negative_slope must be >= 0"),
    (lambda: Softmax(axis="last", name="s"), TypeError, r"s: axis must be an integer or a tuple"),
    (lambda: Softmax(axis=3, name="s")(np.ones((2, 3))), ValueError, r"s: axis 3 is out of range.*\(None, 3\)"),
    (lambda: Softmax(name="s")(np.ones((2, 3)), mask=np.ones((2, 2), bool)), ValueError,
     r"s: the mask must be broadcastable.*\(2, 2\).*\(2, 3\)"),
    (lambda: nb.layers.Dense(2, activation="gelu_fast"), ValueError, r"unknown activation 'gelu_fast'.*gelu"),
])
def test_bad_input_is_named(make, error, match):
    with pytest.raises(error, match=match):
        make()
