"""The Keras feature-extractor idiom: ``layer.input`` / ``layer.output``, ``model.inputs`` /
``model.outputs``, ``get_layer``, and ``Model(inputs=model.inputs, outputs=[l.output for l in
model.layers])`` on a CNN, for Sequential models built with an Input, ``input_shape=``,
``build()`` or a first batch, and for functional models.
"""
import numpy as np
import pytest

import numbanet as nb
from numbanet import layers as L
from bounds import SAFETY, assert_within, bilinear_bound

pytestmark = pytest.mark.usefixtures("tier")

EPS32 = float(np.finfo(np.float32).eps)


def cnn_layers():
    return [L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a"),
            L.MaxPooling2D(name="pool"),
            L.Conv2D(3, 3, activation="tanh", name="conv_b"),
            L.Flatten(name="flat"),
            L.Dense(2, activation="softmax", name="probs")]


def images(n=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 8, 8, 1)).astype(np.float32)


def by_hand(layers, x):
    """Each layer's output, calling the layers one after another on real data."""
    outs = []
    for layer in layers:
        x = layer(x)
        outs.append(x.data)
    return outs


def conv_same_numpy(x, W, b):
    """Stride-1 "same" convolution (odd kernel, symmetric pads) in float64 loops, and its |terms| sum."""
    KH, KW, _, _ = W.shape
    p = np.pad(x.astype(np.float64), ((0, 0), (KH // 2, KH // 2), (KW // 2, KW // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (W.shape[3],))
    mag = np.zeros_like(out)
    for i in range(KH):
        for j in range(KW):
            patch = p[:, i:i + x.shape[1], j:j + x.shape[2], :]
            out += patch @ W[i, j]
            mag += np.abs(patch) @ np.abs(W[i, j])
    return out + b, mag + np.abs(b)


def make_sequential(how):
    if how == "Input":
        return nb.Sequential([nb.Input((8, 8, 1))] + cnn_layers())
    if how == "input_shape":
        first, *rest = cnn_layers()
        first = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a", input_shape=(8, 8, 1))
        return nb.Sequential([first] + rest)
    model = nb.Sequential(cnn_layers())
    if how == "build":
        model.build((None, 8, 8, 1))
    else:                                         # built by its first batch
        model(images(1))
    return model


@pytest.mark.parametrize("how", ["Input", "input_shape", "build", "first batch"])
def test_every_feature_map_of_a_sequential_cnn(how):
    model = make_sequential(how)
    extractor = nb.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = images()
    maps = extractor.predict(x)
    assert isinstance(maps, list) and len(maps) == 5
    assert [m.shape for m in maps] == [(5, 8, 8, 4), (5, 4, 4, 4), (5, 2, 2, 3), (5, 12), (5, 2)]
    for got, expected in zip(maps, by_hand(model.layers, x)):
        np.testing.assert_array_equal(got, expected)   # the same layers, weights and batch
    np.testing.assert_array_equal(maps[-1], model.predict(x))
    # the first map against a convolution written here, within its float32 rounding bound
    W, b = model.get_layer("conv_a").get_weights()
    z, mag = conv_same_numpy(x, W, b)
    assert_within(maps[0], np.maximum(z, 0), bilinear_bound(mag, 9 + 1, EPS32), "conv_a feature map")
    # the extractor holds the model's layers: training the model changes what it extracts
    model.compile("sgd", loss="categorical_crossentropy")
    model.fit(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0]], epochs=1, verbose=0)
    np.testing.assert_array_equal(extractor.predict(x)[-1], model.predict(x))
    assert len(extractor.weights) == len(model.weights)
    assert all(a is b for a, b in zip(extractor.weights, model.weights))


def test_the_get_layer_idiom_and_model_input():
    model = make_sequential("Input")
    extractor = nb.Model(inputs=model.input, outputs=model.get_layer("conv_b").output)
    assert model.input is model.inputs[0] and model.output is model.outputs[0]
    assert model.output is model.layers[-1].output
    assert model.get_layer("conv_b").input is model.get_layer("pool").output
    x = images(3, seed=1)
    y = extractor.predict(x)
    assert isinstance(y, np.ndarray) and y.shape == (3, 2, 2, 3)
    np.testing.assert_array_equal(y, by_hand(model.layers[:3], x)[-1])
    assert [layer.name for layer in extractor.layers][1:] == ["conv_a", "pool", "conv_b"]


def test_functional_cnn_extractor_includes_the_input_layer():
    inp = nb.Input((8, 8, 1), name="image")
    h = inp
    for layer in cnn_layers():
        h = layer(h)
    model = nb.Model(inp, h)
    assert [layer.name for layer in model.layers] == ["image", "conv_a", "pool", "conv_b", "flat", "probs"]
    assert model.get_layer("image").output is inp and model.get_layer("image").input is inp
    extractor = nb.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = images(4, seed=2)
    maps = extractor.predict(x)
    np.testing.assert_array_equal(maps[0], x)
    for got, expected in zip(maps[1:], by_hand(model.layers[1:], x)):
        np.testing.assert_array_equal(got, expected)


def test_extractor_matches_keras(keras):
    ours = make_sequential("Input")
    theirs = keras.Sequential([keras.Input((8, 8, 1)),
                               keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                               keras.layers.MaxPooling2D(), keras.layers.Conv2D(3, 3, activation="tanh"),
                               keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    x = images(6, seed=3)
    maps = nb.Model(ours.inputs, [layer.output for layer in ours.layers]).predict(x)
    k_maps = keras.Model(theirs.inputs, [layer.output for layer in theirs.layers]).predict(x, verbose=0)
    W, _ = ours.get_layer("conv_a").get_weights()
    _, mag = conv_same_numpy(x, W, np.zeros(W.shape[-1]))
    # conv_a: 9 products per tap position and channel, both sides float32, hence 2 * the one-sided bound
    assert_within(maps[0], k_maps[0], 2 * bilinear_bound(mag + 1, 10, EPS32), "conv_a")
    assert_within(maps[1], k_maps[1], 2 * bilinear_bound(np.abs(k_maps[1]) * 10 + 1, 10, EPS32), "pool")
    for i in (2, 3, 4):                           # deeper maps: 36 more products and a tanh / softmax on top
        n_chain = 10 + 36 + 12 + 2 * 4
        assert_within(maps[i], k_maps[i], 2 * SAFETY * n_chain * EPS32 * (np.abs(k_maps[i]) * 10 + 1),
                      ours.layers[i].name)


# ---------------------------------------------------------------------- the errors, as Keras
def test_layer_never_called_has_no_input_or_output():
    layer = L.Dense(3, name="lonely")
    with pytest.raises(AttributeError, match=r"The layer lonely has never been called.*no defined output"):
        layer.output
    with pytest.raises(AttributeError, match=r"never been called.*no defined input"):
        layer.input
    layer(np.ones((2, 4), np.float32))            # an eager call is not a graph: still none (Keras 3)
    with pytest.raises(AttributeError, match=r"no defined output"):
        layer.output


def test_unbuilt_sequential_and_subclassed_models_have_no_inputs():
    model = nb.Sequential([L.Dense(2)])
    for attr in ("input", "output", "inputs", "outputs"):
        with pytest.raises(AttributeError, match=r"has no defined (inputs|outputs) yet.*Input\(shape\)"):
            getattr(model, attr)
    with pytest.raises(AttributeError, match=r"never been called"):
        model.layers[0].output

    class Net(nb.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)
    net = Net()
    net(np.ones((1, 3), np.float32))
    with pytest.raises(AttributeError, match=r"subclassed model has no defined inputs"):
        net.inputs
    assert net.get_layer(index=0) is net.d


def test_shared_layer_output_is_its_first_call_and_tuple_outputs_are_lists():
    a, b = nb.Input((4,)), nb.Input((4,))
    shared = L.Dense(3, name="shared_d")
    first, second = shared(a), shared(b)
    assert shared.output is first and shared.input is a      # Keras 3: the first call, no error
    assert (first.node_index, second.node_index) == (0, 1)
    seq = nb.Input((5, 2))
    rnn = L.SimpleRNN(3, return_state=True)
    out, state = rnn(seq)
    assert rnn.output == [out, state]


def test_get_layer_errors_as_keras():
    model = make_sequential("Input")
    assert model.get_layer(index=0).name == "conv_a" and model.get_layer(index=-1).name == "probs"
    assert model.get_layer("pool") is model.layers[1]
    with pytest.raises(ValueError, match=r"provide either a layer name or a layer index"):
        model.get_layer()
    with pytest.raises(ValueError, match=r"provide only a layer name or a layer index.*index=1, name='pool'"):
        model.get_layer("pool", 1)
    with pytest.raises(ValueError, match=r"no such layer: 'nope'.*\['conv_a', 'pool', 'conv_b', 'flat', 'probs'\]"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match=r"index 5, but the model only has 5 layers"):
        model.get_layer(index=5)
    with pytest.raises(TypeError, match=r"index must be an integer"):
        model.get_layer(index="0")


def test_add_and_pop_keep_outputs_on_the_current_stack():
    model = nb.Sequential([nb.Input((3,)), L.Dense(4, name="d1")])
    model.add(L.Dense(2, name="d2"))
    assert model.output is model.get_layer("d2").output
    assert model.get_layer("d2").input is model.get_layer("d1").output
    assert len(model.get_layer("d1")._call_sites) == 1      # rebuilding left no stale call behind
    model.pop()
    assert model.output is model.get_layer("d1").output and model.output_shape == (None, 4)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(nb.Model(model.inputs, model.outputs).predict(x), model.predict(x))
