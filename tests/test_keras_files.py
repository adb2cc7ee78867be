"""Keras 3 ``.keras`` files both ways, against TensorFlow's Keras.

* Keras -> numbanet: a model built and saved by Keras loads with ``nb.models.load_model``
  and predicts what Keras predicts on the same input.
* numbanet -> Keras: ``model.save("m.keras")`` opens with ``keras.models.load_model`` and
  predicts what numbanet predicts.
* Compile settings and optimizer state: a Keras-trained Adam model resumes in numbanet with
  the step Keras would take, and the other way.

Tolerance: both sides compute in float32 the same chain of dot products; to first order the
difference of two float32 evaluations of a chain of L layers with inner sizes K_1..K_L and
1-Lipschitz activations is at most about (K_1 + ... + K_L) * eps32 * S, S the scale of the
terms (|weights| <= 1 here, inputs in [0, 1): S <= max|y| + 1), times tests/bounds.SAFETY. A
wrong weight layout (a transposed kernel, swapped gates) moves outputs by about the size of a
weight, some 10^4 times more.
"""
import json
import warnings
import zipfile

import numpy as np
import pytest

import numbanet as nb
from numbanet.models import keras_format
from bounds import SAFETY

EPS32 = float(np.finfo(np.float32).eps)
HAS_LSTM = hasattr(nb.layers, "LSTM")


def _assert_close(actual, desired, terms):
    actual, desired = (actual if isinstance(actual, list) else [actual]), \
        (desired if isinstance(desired, list) else [desired])
    assert len(actual) == len(desired)
    for a, d in zip(actual, desired):
        assert a.shape == d.shape
        bound = SAFETY * terms * EPS32 * (np.abs(d).max() + 1)
        np.testing.assert_allclose(a, d, rtol=0, atol=bound)


# ------------------------------------------------------------------ the models
def keras_models(keras):
    """name -> (Keras model, input, inner sizes summed along the longest path)."""
    K = keras.layers
    rng = np.random.default_rng(0)
    out = {}
    m = keras.Sequential([keras.Input((8, 8, 1)), K.Conv2D(3, 3, padding="same", activation="relu"),
                          K.MaxPooling2D(), K.Conv2D(4, (2, 3), strides=2, activation="tanh"), K.Flatten(),
                          K.Dropout(0.2), K.Dense(3, activation="softmax")], name="cnn")
    out["cnn"] = (m, rng.random((5, 8, 8, 1)).astype("float32"), 9 + 18 + 16 + 3)
    m = keras.Sequential([keras.Input((4, 4, 2)), K.Conv2DTranspose(3, 3, strides=2, padding="same",
                                                                     activation="relu"),
                          K.UpSampling2D(interpolation="bilinear"), K.Conv2DTranspose(2, 2, output_padding=None),
                          K.MaxPooling2D(3, strides=2, padding="same"), K.UpSampling2D((1, 2)),
                          K.LeakyReLU(negative_slope=0.1), K.Flatten(), K.Reshape((9, -1)), K.Dense(2), K.ReLU(),
                          K.Softmax()], name="decoder")
    out["decoder"] = (m, rng.random((3, 4, 4, 2)).astype("float32"), 18 + 4 + 12 + 8)
    recurrent = [K.GRU(3, return_sequences=True, reset_after=False)] + ([K.LSTM(3, return_sequences=True)]
                                                                        if HAS_LSTM else [])
    m = keras.Sequential([keras.Input((6,), dtype="int32"), K.Embedding(12, 4),
                          K.SimpleRNN(5, return_sequences=True),
                          K.Bidirectional(K.GRU(3, return_sequences=True), merge_mode="concat"),
                          *recurrent, K.Bidirectional(K.SimpleRNN(2), merge_mode="sum"),
                          K.Dense(1, activation="sigmoid")], name="text")
    out["text"] = (m, rng.integers(0, 12, (4, 6)), 6 * (4 + 5 + 6 + 3 + 3 + 2) * 4 + 4)
    ids = keras.Input((5,), dtype="int32", name="ids")
    img = keras.Input((6, 6, 2), name="img")
    seq = K.SimpleRNN(3, return_sequences=True, name="rnn")(K.Embedding(10, 4, name="emb")(ids))
    seq = K.Bidirectional(K.GRU(2), name="bi")(seq)
    branch = K.Conv2D(2, 3, name="conv")(img)
    up = K.Flatten(name="up_flat")(K.UpSampling2D(name="up")(img))
    out1 = K.Dense(2, name="out1")(seq)
    out2 = K.Dense(1, name="out2")(K.Flatten(name="flat")(branch))
    out3 = K.Dense(2, activation="tanh", name="out3")(up)
    m = keras.Model([ids, img], [out1, out2, out3], name="functional")
    out["functional"] = (m, [rng.integers(0, 10, (3, 5)), rng.random((3, 6, 6, 2)).astype("float32")],
                         5 * (4 + 3 + 2) * 4 + 18 + 288)
    return out


def _keras_predict(model, x):
    y = model.predict(x, verbose=0)
    return [np.asarray(v) for v in y] if isinstance(y, list) else np.asarray(y)


def _assert_same_layer_weights(ours, kmodel, functional):
    """Layer by layer (a functional model's layer order is numbanet's own), the same arrays in Keras's order."""
    keras_layers = [layer for layer in kmodel.layers if functional or type(layer).__name__ != "InputLayer"]
    assert sorted(layer.name for layer in ours.layers) == sorted(layer.name for layer in keras_layers)
    if not functional:
        assert [layer.name for layer in ours.layers] == [layer.name for layer in keras_layers]
    for klayer in keras_layers:
        mine = ours.get_layer(klayer.name).get_weights()
        theirs = [np.asarray(w) for w in klayer.weights]
        assert len(mine) == len(theirs), klayer.name
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["cnn", "decoder", "text", "functional"])
def test_keras_file_loads_into_numbanet_with_the_same_outputs(keras, tmp_path, name):
    model, x, terms = keras_models(keras)[name]
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = nb.models.load_model(path)
    _assert_same_layer_weights(loaded, model, functional=name == "functional")
    _assert_close(loaded.predict(x), _keras_predict(model, x), terms)


@pytest.mark.parametrize("name", ["cnn", "decoder", "text", "functional"])
def test_numbanet_file_opens_in_keras_with_the_same_outputs(keras, tmp_path, name):
    kmodel, x, terms = keras_models(keras)[name]
    kmodel.save(tmp_path / "k.keras")
    ours = nb.models.load_model(tmp_path / "k.keras")
    rng = np.random.default_rng(5)   # fresh weights, so nothing of Keras's file carries over
    ours.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    assert [layer.name for layer in back.layers] == [layer.name for layer in kmodel.layers]
    _assert_same_layer_weights(ours, back, functional=name == "functional")
    _assert_close(_keras_predict(back, x), ours.predict(x), terms)


def test_numbanet_built_functional_model_in_keras_layer_order(keras, tmp_path):
    """A graph built in numbanet, branches declared in another order: Keras's layer order, Keras's h5 keys."""
    L = nb.layers
    a = nb.Input((4,), name="a")
    b = nb.Input((3,), name="b")
    deep = L.Dense(2, name="deep2")(L.Dense(3, name="deep1")(L.Dense(4, name="deep0")(a)))
    shallow = L.Dense(2, name="shallow")(b)
    shared = L.Dense(2, name="shared")
    model = nb.Model([a, b], [shared(deep), shared(shallow)], name="branches")
    model.save(tmp_path / "b.keras")
    back = keras.models.load_model(tmp_path / "b.keras")
    assert [layer.name for layer in keras_format.keras_layer_order(model)] == [layer.name for layer in back.layers]
    rng = np.random.default_rng(1)
    x = [rng.random((3, 4)).astype("float32"), rng.random((3, 3)).astype("float32")]
    _assert_close(_keras_predict(back, x), model.predict(x), 4 + 3 + 2 + 3 + 2)


@pytest.mark.skipif(not HAS_LSTM, reason="numbanet.layers has no LSTM on this branch")
def test_lstm_both_ways(keras, tmp_path):
    K = keras.layers
    model = keras.Sequential([keras.Input((5, 3)), K.LSTM(4, return_sequences=True),
                              K.Bidirectional(K.LSTM(2)), K.Dense(1)])
    x = np.random.default_rng(0).random((2, 5, 3)).astype("float32")
    model.save(tmp_path / "l.keras")
    ours = nb.models.load_model(tmp_path / "l.keras")
    _assert_close(ours.predict(x), _keras_predict(model, x), 5 * (3 + 4 + 4) * 4 + 4)
    ours.save(tmp_path / "l2.keras")
    _assert_close(_keras_predict(keras.models.load_model(tmp_path / "l2.keras"), x), ours.predict(x),
                  5 * (3 + 4 + 4) * 4 + 4)


# ---------------------------------------------------------------- compile and optimizer
def _step_data():
    rng = np.random.default_rng(2)
    return rng.random((8, 4)).astype("float32"), rng.random((8, 2)).astype("float32")


def _keras_mlp(keras, optimizer):
    K = keras.layers
    model = keras.Sequential([keras.Input((4,)), K.Dense(5, activation="tanh"), K.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


@pytest.mark.parametrize("opt", ["adam", "rmsprop", "sgd_momentum", "adagrad", "nadam", "adamw", "sgd_schedule"])
def test_keras_training_resumes_in_numbanet(keras, tmp_path, opt):
    make = {"adam": lambda: keras.optimizers.Adam(0.01), "rmsprop": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5),
            "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
            "adagrad": lambda: keras.optimizers.Adagrad(0.1), "nadam": lambda: keras.optimizers.Nadam(0.01),
            "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
            "sgd_schedule": lambda: keras.optimizers.SGD(
                keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5), momentum=0.5)}[opt]
    x, y = _step_data()
    model = _keras_mlp(keras, make())
    for _ in range(3):
        model.train_on_batch(x, y)
    model.save(tmp_path / "t.keras")
    ours = nb.models.load_model(tmp_path / "t.keras")
    assert type(ours.optimizer).__name__ == type(model.optimizer).__name__
    assert ours.optimizer.iterations == 3
    assert ours.compiled_metrics[0][0] == "mae"
    model.train_on_batch(x, y)                       # the fourth step, in both
    ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), model.get_weights()):
        _assert_close(a, np.asarray(b), 8 * (4 + 5 + 2))


@pytest.mark.parametrize("opt", ["adam", "nadam"])
def test_numbanet_training_resumes_in_keras(keras, tmp_path, opt):
    L = nb.layers
    x, y = _step_data()
    ours = nb.Sequential([nb.Input((4,)), L.Dense(5, activation="tanh", kernel_regularizer="l2"), L.Dense(2)])
    ours.compile(nb.optimizers.Adam(0.01) if opt == "adam" else nb.optimizers.Nadam(0.01), loss="mse",
                 metrics=["mae"])
    ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    assert type(back.optimizer).__name__ == type(ours.optimizer).__name__ and int(back.optimizer.iterations) == 3
    assert type(back.layers[0].kernel_regularizer).__name__ == "L2"
    assert back.loss == "mean_squared_error" or type(back.loss).__name__ == "MeanSquaredError"
    ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    back.train_on_batch(x, y)
    for a, b in zip(back.get_weights(), ours.get_weights()):
        _assert_close(np.asarray(a), b, 8 * (4 + 5 + 2))


def test_multi_output_compile_settings_both_ways(keras, tmp_path):
    model, x, _ = keras_models(keras)["functional"]
    model.compile(optimizer="adam", loss={"out1": "mse", "out2": "mae", "out3": "mse"},
                  loss_weights={"out1": 1.0, "out2": 0.5, "out3": 2.0}, metrics={"out1": ["mae"]})
    model.save(tmp_path / "f.keras")
    ours = nb.models.load_model(tmp_path / "f.keras")
    assert [type(loss).__name__ for loss in ours._output_losses] == ["MeanSquaredError", "MeanAbsoluteError",
                                                                     "MeanSquaredError"]
    assert ours._loss_weights == [1.0, 0.5, 2.0]
    assert [name for name, _ in ours.compiled_metrics] == ["out1_mae"]
    ours.save(tmp_path / "f2.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "f2.keras").read("config.json"))["compile_config"]
    assert config["loss_weights"] == [1.0, 0.5, 2.0] and config["metrics"] == [["mae"], [], []]
    back = keras.models.load_model(tmp_path / "f2.keras")
    assert back.optimizer.__class__.__name__ == "Adam"


# ------------------------------------------------------------------ refusals
def test_a_layer_numbanet_lacks_is_refused_by_class_and_name(keras, tmp_path):
    K = keras.layers
    model = keras.Sequential([keras.Input((4,)), K.Dense(3), K.LayerNormalization(name="norm"), K.Dense(1)])
    model.save(tmp_path / "x.keras")
    with pytest.raises(ValueError, match=r"layer 'norm' is a Keras LayerNormalization, which numbanet does not have"):
        nb.models.load_model(tmp_path / "x.keras")


def test_an_argument_numbanet_lacks_is_refused_by_layer_and_key(keras, tmp_path):
    K = keras.layers
    model = keras.Sequential([keras.Input((9, 9, 1)), K.Conv2D(2, 3, dilation_rate=2, name="dilated")])
    model.save(tmp_path / "d.keras")
    with pytest.raises(ValueError, match=r"layer 'dilated' \(Conv2D\): numbanet's Conv2D has no argument "
                                         r"'dilation_rate', and the file sets it to \[2, 2\]"):
        nb.models.load_model(tmp_path / "d.keras")


def test_regularizers_carried_constraints_dropped_with_a_warning(keras, tmp_path):
    K = keras.layers
    model = keras.Sequential([keras.Input((4,)), K.Dense(2, kernel_regularizer="l2", kernel_constraint="non_neg",
                                                         name="reg")])
    model.save(tmp_path / "r.keras")
    x = np.random.default_rng(0).random((2, 4)).astype("float32")
    with pytest.warns(UserWarning, match="layer 'reg' .*kernel_constraint is not carried"):
        ours = nb.models.load_model(tmp_path / "r.keras")
    assert ours.layers[0].kernel_regularizer.get_config() == {"l2": pytest.approx(0.01)}    # carried
    _assert_close(ours.predict(x), _keras_predict(model, x), 4)


def test_subclassed_numbanet_model_cannot_be_a_keras_file(tmp_path):
    class Sub(nb.Model):
        def __init__(self):
            super().__init__()
            self.d = nb.layers.Dense(1)

        def call(self, x):
            return self.d(x)
    model = Sub()
    model(np.zeros((1, 2), dtype="float32"))
    with pytest.raises(ValueError, match="subclassed model cannot be written to a .keras file"):
        model.save(tmp_path / "s.keras")
    assert not (tmp_path / "s.keras").exists()


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    import sys
    model = nb.Sequential([nb.Input((2,)), nb.layers.Dense(1)])
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'numbanet\[keras-files\]'"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_h5_keys_are_kerass():
    assert keras_format.h5_keys(["Dense", "Conv2DTranspose", "Dense", "MaxPooling2D", "SimpleRNN", "Dense"]) == \
        ["dense", "conv2d_transpose", "dense_1", "max_pooling2d", "simple_rnn", "dense_2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert keras_format.snake_case("UpSampling2D") == "up_sampling2d"
