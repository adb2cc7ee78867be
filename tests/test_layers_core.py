"""Dense and the core layers: gradients vs finite differences, shapes, weights, activations."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet as nb
from numbanet import activations
from numbanet.layers import Activation, Dense, Dropout, Flatten, Reshape

from bounds import LIBM_ULP, assert_within, elementwise_bound
from grad_helpers import GRAD_SETTINGS, MAX_REL, assert_grad, check_op, draw_values

ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax"]


@pytest.fixture(scope="module", autouse=True)
def _report_max_rel():
    yield
    print(f"\n[gradient checks so far] max rel error {MAX_REL['value']:.2e} ({MAX_REL['where']}), "
          f"max abs error {MAX_REL['abs']:.2e}")


def _dense_fn(layer):
    """fn(x, kernel, bias) running the layer itself with the given weights."""
    def fn(x, W, b=None):
        layer.kernel, layer.bias = W, b
        return layer(x)
    return fn


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(ACTIVATIONS), st.booleans())
def test_dense_grad(data, activation, use_bias):
    lead = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))   # any rank >= 2
    D, U = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    layer = Dense(U, activation=activation, use_bias=use_bias, dtype="float64")
    layer(np.zeros(lead + (D,)))  # build
    x = draw_values(data, lead + (D,), -1.0, 1.0)
    W = draw_values(data, (D, U), -1.0, 1.0)
    gy = draw_values(data, lead + (U,), -1.0, 1.0)
    args = [x, W] + ([draw_values(data, (U,), -0.5, 0.5)] if use_bias else [])
    # keep pre-activations away from relu/leaky_relu/elu's kink at 0
    with nb.no_grad():
        z = nb.engine.functional.linear(nb.Tensor(x), nb.Tensor(W), *(nb.Tensor(a) for a in args[2:])).data
    assume(activation not in ("relu", "leaky_relu", "elu") or np.min(np.abs(z)) > 1e-3)
    assert_grad(_dense_fn(layer), *args, grad_output=gy, label=f"Dense {activation}")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(ACTIVATIONS))
def test_activation_by_name_grad(data, name):
    fn = activations.get(name)
    kinks = (0.0,) if name in ("relu", "leaky_relu", "elu") else ()
    check_op(data, fn, (-3.0, 3.0), kinks=kinks, min_dims=1, label=f"activation {name}")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(ACTIVATIONS))
def test_activation_layer_grad(data, name):
    layer = Activation(name, dtype="float64")
    kinks = (0.0,) if name in ("relu", "leaky_relu", "elu") else ()
    check_op(data, lambda x: layer(x), (-3.0, 3.0), kinks=kinks, min_dims=2, label=f"Activation {name}")


def test_activation_values_follow_keras_definitions():
    x = np.linspace(-3, 3, 25).reshape(5, 5)
    ref = {"linear": x, "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x), "relu": np.maximum(x, 0),
           "leaky_relu": np.where(x > 0, x, 0.2 * x), "elu": np.where(x > 0, x, np.exp(x) - 1),
           "softmax": np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)}
    # linear, relu and leaky_relu are one correctly rounded operation (or none): the same bits;
    # the others an exp/tanh call and a few roundings (elu's exp(x) - 1 relative to exp(x) + 1;
    # softmax's shift by the row max adds up to |x - max| <= 6 eps of relative error)
    ex = np.exp(x)
    bound = {"linear": 0, "relu": 0, "leaky_relu": 0, "sigmoid": elementwise_bound(ref["sigmoid"], LIBM_ULP + 3),
             "tanh": elementwise_bound(np.abs(ref["tanh"]), LIBM_ULP), "elu": elementwise_bound(ex + 1, LIBM_ULP + 2),
             "softmax": elementwise_bound(ref["softmax"], LIBM_ULP + 5 + 6)}
    for name in ACTIVATIONS:
        out = activations.get(name)(nb.Tensor(x))
        out = out.data if isinstance(out, nb.Tensor) else out
        assert_within(out, ref[name], bound[name], name)
    assert activations.get(None) is activations.linear
    assert activations.name_of(activations.get("elu")) == "elu"


@GRAD_SETTINGS
@given(st.data())
def test_flatten_and_reshape_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=4, max_side=3))
    flat = Flatten(dtype="float64")
    check_op(data, lambda x: flat(x), (-1.0, 1.0), shapes=[shape], label="Flatten")
    size = int(np.prod(shape[1:]))
    resh = Reshape((-1, 1), dtype="float64")
    check_op(data, lambda x: resh(x), (-1.0, 1.0), shapes=[shape], label="Reshape")
    assert resh(np.zeros(shape)).shape == (shape[0], size, 1)
    assert flat(np.zeros(shape)).shape == (shape[0], size)


def test_dense_forward_and_weights():
    rng = np.random.default_rng(0)
    layer = Dense(3, activation="tanh")
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = layer(x)
    assert layer.built and y.shape == (5, 3) and y.dtype == np.float32
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_allclose(y.data, np.tanh(x @ kernel + bias), rtol=1e-6)
    assert layer.weights == layer.trainable_weights and len(layer.weights) == 2
    assert layer.count_params() == 15
    # get_weights returns copies
    layer.get_weights()[0][:] = 0
    assert np.any(layer.kernel.data != 0)


def test_dense_any_rank_input():
    layer = Dense(2)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = layer(x)
    k, b = layer.get_weights()
    assert y.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(y.data, x @ k + b, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, 3, 4, 5)) == (None, 3, 4, 2)


def test_dense_backward_fills_weight_grads():
    layer = Dense(2, dtype="float64")
    x = np.random.default_rng(2).standard_normal((4, 3))
    y = layer(x)
    y.sum().backward()
    np.testing.assert_allclose(layer.kernel.grad, x.sum(axis=0)[:, None] * np.ones((1, 2)))
    np.testing.assert_allclose(layer.bias.grad, [4.0, 4.0])


def test_dense_no_bias_and_input_shape_builds_at_once():
    layer = Dense(4, use_bias=False, input_shape=(3,))
    assert not layer.built and layer.batch_input_shape == (None, 3)
    layer(np.zeros((1, 3)))
    assert len(layer.weights) == 1 and layer.bias is None


def test_layer_dtype_float64_and_input_cast():
    layer = Dense(2, dtype="float64")
    y = layer(np.ones((1, 3), dtype=np.float32))
    assert y.dtype == np.float64 and layer.kernel.dtype == np.float64
    layer32 = Dense(2)
    assert layer32(np.ones((1, 3), dtype=np.float64)).dtype == np.float32
    assert layer32(np.ones((1, 3), dtype=np.int64)).dtype == np.float32


def test_set_weights_checks_everything_before_changing_anything():
    layer = Dense(2)
    layer(np.zeros((1, 3)))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"'bias'.*\(2,\).*\(5,\)"):
        layer.set_weights([np.ones((3, 2)), np.ones(5)])   # first is fine, second is not
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected 2 arrays"):
        layer.set_weights([np.ones((3, 2))])
    layer.set_weights([np.ones((3, 2)), np.full(2, 0.5)])
    np.testing.assert_array_equal(layer.bias.data, [0.5, 0.5])
    assert layer.kernel.dtype == np.float32


def test_dropout_layer_training_and_inference():
    nb.utils.set_random_seed(0)
    layer = Dropout(0.5)
    x = np.ones((100, 100), dtype=np.float32)
    np.testing.assert_array_equal(layer(x).data, x)                 # inference: identity
    y = layer(x, training=True).data
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert abs((y == 0).mean() - 0.5) < 0.03
    assert abs(y.mean() - 1.0) < 0.06                                # inverted dropout keeps the mean
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
    a = Dropout(0.3, seed=7)(x, training=True).data
    b = Dropout(0.3, seed=7)(x, training=True).data
    np.testing.assert_array_equal(a, b)


def test_get_config_returns_constructor_arguments():
    layer = Dense(7, activation="relu", use_bias=False, name="my_dense")
    cfg = layer.get_config()
    assert cfg["units"] == 7 and cfg["activation"] == "relu" and cfg["use_bias"] is False
    assert cfg["name"] == "my_dense"
    assert Reshape((2, -1)).get_config()["target_shape"] == (2, -1)


def test_automatic_names_are_unique():
    a, b = Dense(1), Dense(1)
    assert a.name != b.name and a.name.startswith("dense") and b.name.startswith("dense")


@pytest.mark.parametrize("make, shape", [(lambda: nb.layers.Dense(3), (None, 4)),
                                         (lambda: nb.layers.Conv2D(2, 3), (None, 5, 5, 1)),
                                         (lambda: nb.layers.LSTM(2), (None, 3, 4))])
def test_build_by_hand_then_set_weights_keeps_those_weights(make, shape):
    """layer.build(shape) marks the layer built (Keras 3), so weights set right after it are the
    ones the first call uses, not replaced by a second build."""
    layer = make()
    layer.build(shape)
    assert layer.built
    ws = [np.full(w.shape, 0.1, np.float32) for w in layer.get_weights()]
    layer.set_weights(ws)
    layer(np.ones((1,) + shape[1:], np.float32))
    for got, want in zip(layer.get_weights(), ws):
        np.testing.assert_array_equal(got, want)
