"""Whole-model files: model.save("m.numbanet") and nb.models.load_model.

A saved and reloaded model must be the same model: the same configuration, the
same weights bit for bit (so the same predictions, exactly: the same code runs on
the same numbers), the same compile settings, and the same optimizer state, so
that training after the load takes exactly the steps training without the save
takes. Loads that fail raise naming the file and the layer, and change nothing.
"""
import json
import os
import zipfile

import numpy as np
import pytest

import numbanet as nb
from numbanet import utils
from numbanet.models.model_config import model_to_config

L = nb.layers


def _sequential_cnn():
    return nb.Sequential([nb.Input((6, 6, 1)), L.Conv2D(3, 3, padding="same", activation="relu"),
                          L.MaxPooling2D(), L.Conv2DTranspose(2, 2, strides=2, padding="same"),
                          L.UpSampling2D((1, 2), interpolation="bilinear"), L.Flatten(), L.Dropout(0.3),
                          L.Reshape((8, 18)), L.Dense(5, activation="tanh", kernel_initializer="he_normal"),
                          L.Flatten(), L.Dense(2, activation="softmax")])


def _sequential_text():
    return nb.Sequential([nb.Input((7,), dtype="int32"), L.Embedding(11, 4, mask_zero=True),
                          L.SimpleRNN(5, return_sequences=True),
                          L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="ave"),
                          L.GRU(2, reset_after=False), L.Dense(1, activation="sigmoid")])


def _functional_two_in_two_out():
    ids = nb.Input((5,), dtype="int32", name="ids")
    img = nb.Input((4, 4, 2), name="img")
    seq = L.Embedding(9, 3, name="emb")(ids)
    seq, h = L.SimpleRNN(4, return_state=True, name="rnn")(seq)
    shared = L.Dense(4, activation="relu", name="shared")
    a = shared(seq)
    b = shared(h)                                           # a layer called twice: two nodes
    img_feat = L.Flatten(name="flat")(L.Conv2D(2, 3, name="conv")(img))
    out1 = L.Dense(3, activation="softmax", name="cls")(a)
    out2 = L.Dense(1, name="reg")(L.Dense(2, name="mix")(img_feat))
    del b
    return nb.Model([ids, img], [out1, out2], name="two_by_two")


def _data(model, n=12, seed=0):
    rng = np.random.default_rng(seed)
    if model.name == "two_by_two":
        x = [rng.integers(0, 9, (n, 5)), rng.random((n, 4, 4, 2)).astype("float32")]
        y = [np.eye(3)[rng.integers(0, 3, n)], rng.random((n, 1))]
        return x, y
    if model.layers[0].__class__.__name__ == "Embedding":
        return rng.integers(0, 11, (n, 7)), rng.integers(0, 2, (n, 1)).astype("float32")
    return rng.random((n, 6, 6, 1)).astype("float32"), np.eye(2)[rng.integers(0, 2, n)]


BUILDERS = {"cnn": _sequential_cnn, "text": _sequential_text, "functional": _functional_two_in_two_out}


def _compile(model):
    if model.name == "two_by_two":
        model.compile(nb.optimizers.Adam(0.01, amsgrad=True), loss=["categorical_crossentropy", "mse"],
                      loss_weights=[1.0, 0.25], metrics=[["accuracy"], ["mae", "mse"]])
    else:
        model.compile(nb.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
                      loss=nb.losses.BinaryCrossentropy() if model.output_shape[-1] == 1 else "categorical_crossentropy",
                      metrics=["accuracy", "mse"])


def _assert_same_arrays(a, b):
    a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert p.dtype == q.dtype and p.shape == q.shape
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_round_trip_same_model_weights_predictions_and_compile(tmp_path, kind):
    model = BUILDERS[kind]()
    _compile(model)
    x, y = _data(model)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "m.numbanet"
    model.save(path)
    loaded = nb.models.load_model(path)

    assert type(loaded) is type(model)
    assert model_to_config(loaded) == model_to_config(model)
    assert [w.name for w in loaded.weights] == [w.name for w in model.weights]
    _assert_same_arrays(loaded.get_weights(), model.get_weights())
    _assert_same_arrays(loaded.predict(x), model.predict(x))
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 3
    assert [type(l) for l in loaded._output_losses] == [type(l) for l in model._output_losses]
    assert loaded._loss_weights == model._loss_weights
    assert [[n for n, _ in ms] for ms in loaded._output_metrics] == [[n for n, _ in ms] for ms in model._output_metrics]
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_functional_graph_is_rebuilt_with_shared_layer_and_return_state(tmp_path):
    model = _functional_two_in_two_out()
    model.save(tmp_path / "f.numbanet")
    loaded = nb.models.load_model(tmp_path / "f.numbanet")
    assert loaded.input_names == ["ids", "img"] and loaded.output_names == ["cls", "reg"]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    nodes = model_to_config(loaded)["config"]["nodes"]
    assert [n["input"] for n in nodes if n["layer"] == "shared"] == [["rnn", 0, 0]]   # the unused call is not an output path
    cls_inputs = {tuple(n["input"]) for n in nodes if n["layer"] == "cls"}
    assert cls_inputs == {("shared", 0, None)}
    assert model.optimizer is None and loaded.optimizer is None                      # saved uncompiled: loads uncompiled


OPTIMIZERS = {
    "adam": lambda: nb.optimizers.Adam(0.02),
    "adam_amsgrad": lambda: nb.optimizers.Adam(0.02, amsgrad=True),
    "sgd_nesterov": lambda: nb.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: nb.optimizers.RMSprop(0.01, momentum=0.3, centered=True),
    "adagrad": lambda: nb.optimizers.Adagrad(0.1),
    "adadelta": lambda: nb.optimizers.Adadelta(1.0),
    "nadam": lambda: nb.optimizers.Nadam(0.02),                                   # keeps u_product
    "adamw": lambda: nb.optimizers.AdamW(0.02, weight_decay=0.05),
    "sgd_schedule": lambda: nb.optimizers.SGD(nb.schedules.ExponentialDecay(0.1, 3, 0.5), momentum=0.5),
}


def _train_twice(make_opt, tmp_path, save_between):
    """Train 2 epochs, then (maybe through a file) 2 more; the weights and the loss of every epoch."""
    utils.set_random_seed(3)
    model = nb.Sequential([nb.Input((3,)), L.Dense(8, activation="tanh", kernel_regularizer=nb.regularizers.L2(0.01)),
                           L.Dropout(0.2), L.LeakyReLU(0.1), L.Dense(2)])
    model.compile(make_opt(), "mse", metrics=["mae"])
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 3)).astype("float32"), rng.random((40, 2)).astype("float32")
    first = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    if save_between:
        model.save(tmp_path / "mid.numbanet")
        model = nb.models.load_model(tmp_path / "mid.numbanet")
    utils.set_random_seed(4)                 # shuffling and dropout draw the same numbers in both runs
    second = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    return model.get_weights(), first, second, model.optimizer.iterations


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_training_resumes_step_for_step(tmp_path, name):
    w_plain, first_plain, second_plain, it_plain = _train_twice(OPTIMIZERS[name], tmp_path, save_between=False)
    w_saved, first_saved, second_saved, it_saved = _train_twice(OPTIMIZERS[name], tmp_path, save_between=True)
    assert first_saved == first_plain
    assert second_saved == second_plain and it_saved == it_plain == 20
    _assert_same_arrays(w_saved, w_plain)
    if name == "nadam":
        assert nb.models.load_model(tmp_path / "mid.numbanet").optimizer.u_product != 1.0


def test_resuming_without_the_optimizer_state_would_differ(tmp_path):
    """The resume test can fail: loading with compile=False then compiling afresh takes other steps."""
    w_plain, _, second_plain, _ = _train_twice(OPTIMIZERS["adam"], tmp_path, save_between=False)
    utils.set_random_seed(3)
    model = nb.Sequential([nb.Input((3,)), L.Dense(8, activation="tanh"), L.Dropout(0.2), L.Dense(2)])
    model.compile(nb.optimizers.Adam(0.02), "mse", metrics=["mae"])
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 3)).astype("float32"), rng.random((40, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "mid.numbanet")
    fresh = nb.models.load_model(tmp_path / "mid.numbanet", compile=False)
    assert fresh.optimizer is None
    fresh.compile(nb.optimizers.Adam(0.02), "mse", metrics=["mae"])
    utils.set_random_seed(4)
    second = fresh.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    assert second["loss"] != second_plain["loss"]
    assert not np.array_equal(fresh.get_weights()[0], w_plain[0])


def test_optimizer_slots_are_restored_per_weight(tmp_path):
    model = nb.Sequential([nb.Input((3,)), L.Dense(4), L.Dense(1)])
    model.compile(nb.optimizers.Adam(0.01, amsgrad=True), "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.random((10, 3)), rng.random((10, 1)), batch_size=5, epochs=1, verbose=0)
    model.save(tmp_path / "m.numbanet")
    loaded = nb.models.load_model(tmp_path / "m.numbanet")
    for w, v in zip(model.weights, loaded.weights):
        for slot in ("m", "v", "v_hat"):
            got = loaded.optimizer.get_slot(v, slot)
            np.testing.assert_array_equal(got, model.optimizer.get_slot(w, slot))
            assert got is not model.optimizer.get_slot(w, slot)


def test_frozen_layer_stays_frozen_and_float64_stays_float64(tmp_path):
    model = nb.Sequential([nb.Input((3,)), L.Dense(4, dtype="float64", name="frozen"), L.Dense(2, dtype="float64")])
    model.layers[0].trainable = False
    model.save(tmp_path / "m.numbanet")
    loaded = nb.models.load_model(tmp_path / "m.numbanet")
    assert loaded.layers[0].trainable is False and loaded.layers[0].non_trainable_weights
    assert [w.requires_grad for w in loaded.weights] == [False, False, True, True]
    assert all(w.dtype == np.float64 for w in loaded.weights)
    _assert_same_arrays(loaded.get_weights(), model.get_weights())


def test_built_by_input_shape_or_first_call(tmp_path):
    by_shape = nb.Sequential([L.Dense(3, input_shape=(4,)), L.Dense(1)])
    by_call = nb.Sequential([L.Dense(3), L.Dense(1)])
    x = np.random.default_rng(0).random((2, 4)).astype("float32")
    by_call(x)
    for model in (by_shape, by_call):
        model.save(tmp_path / "m.numbanet")
        loaded = nb.models.load_model(tmp_path / "m.numbanet")
        assert loaded.input_shape == (None, 4)
        _assert_same_arrays(loaded.predict(x), model.predict(x))


def test_loading_draws_nothing_from_numbanets_random_stream(tmp_path):
    _sequential_cnn().save(tmp_path / "m.numbanet")
    utils.set_random_seed(7)
    expected = utils.rng().random(3)
    utils.set_random_seed(7)
    nb.models.load_model(tmp_path / "m.numbanet")
    np.testing.assert_array_equal(utils.rng().random(3), expected)


# ------------------------------------------------------ user classes: registry
@nb.saving.register_serializable(package="test_save")
class Scale(L.Layer):
    """y = x * factor * w, one weight per feature."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "ones")

    def call(self, x, training=False):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@nb.saving.register_serializable(package="test_save")
def halved_mse(y_true, y_pred):
    d = y_pred - nb.Tensor(np.asarray(y_true, dtype=y_pred.dtype))
    return (d * d) * 0.5


@nb.saving.register_serializable(package="test_save")
class TwoLayer(nb.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = L.Dense(units, activation="tanh")
        self.out = L.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {"units": self.units, "name": self.name}


class Unregistered(L.Layer):
    def call(self, x, training=False):
        return x


def test_registered_layer_and_loss_function(tmp_path):
    model = nb.Sequential([nb.Input((3,)), Scale(3.0, name="scale"), L.Dense(1)])
    model.compile("sgd", loss=halved_mse)
    x = np.random.default_rng(0).random((4, 3)).astype("float32")
    model.fit(x, np.ones((4, 1)), verbose=0, epochs=1)
    model.save(tmp_path / "m.numbanet")
    loaded = nb.models.load_model(tmp_path / "m.numbanet")
    assert isinstance(loaded.layers[0], Scale) and loaded.layers[0].factor == 3.0
    assert loaded.loss.fn is halved_mse
    _assert_same_arrays(loaded.predict(x), model.predict(x))
    text = json.loads(zipfile.ZipFile(tmp_path / "m.numbanet").read("numbanet.json"))
    assert text["model"]["config"]["layers"][0]["registered_name"] == "test_save>Scale"


def test_subclassed_model_by_registered_class(tmp_path):
    model = TwoLayer(units=4)
    x = np.random.default_rng(0).random((5, 2)).astype("float32")
    model(x)
    model.compile("adam", "mse")
    model.fit(x, np.ones((5, 1)), verbose=0)
    model.save(tmp_path / "s.numbanet")
    loaded = nb.models.load_model(tmp_path / "s.numbanet")
    assert isinstance(loaded, TwoLayer) and loaded.units == 4
    _assert_same_arrays(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == 1


def test_custom_objects_find_an_unregistered_class(tmp_path):
    model = nb.Sequential([nb.Input((2,)), Unregistered(name="same"), L.Dense(1)])
    model.save(tmp_path / "u.numbanet")
    with pytest.raises(ValueError, match=r"layer 'same'.*unknown layer class 'Unregistered'.*register_serializable"):
        nb.models.load_model(tmp_path / "u.numbanet")
    loaded = nb.models.load_model(tmp_path / "u.numbanet", custom_objects={"Unregistered": Unregistered})
    assert isinstance(loaded.layers[0], Unregistered)


def test_subclassed_model_without_get_config_is_refused_at_save(tmp_path):
    class NoConfig(nb.Model):
        def __init__(self, units):
            super().__init__()
            self.d = L.Dense(units)

        def call(self, x):
            return self.d(x)
    model = NoConfig(2)
    model(np.zeros((1, 3), dtype="float32"))
    with pytest.raises(TypeError, match="NoConfig: define get_config"):
        model.save(tmp_path / "n.numbanet")
    assert not os.path.exists(tmp_path / "n.numbanet")


def test_register_rejects_class_without_get_config():
    class Plain:
        pass
    with pytest.raises(ValueError, match="no get_config"):
        nb.saving.register_serializable()(Plain)


@pytest.mark.parametrize("name", ["Zeros", "Ones", "RandomNormal", "RandomUniform", "GlorotUniform", "GlorotNormal",
                                  "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal",
                                  "VarianceScaling", "Constant"])
def test_initializers_rebuild_from_their_config(name):
    cls = getattr(nb.initializers, name)
    args = {"Constant": {"value": 0.5}, "RandomNormal": {"mean": 1.0, "stddev": 0.2, "seed": 4},
            "RandomUniform": {"minval": -1.0, "maxval": 2.0, "seed": 4}, "Orthogonal": {"gain": 2.0, "seed": 4},
            "VarianceScaling": {"scale": 3.0, "mode": "fan_out", "distribution": "uniform", "seed": 4}}.get(name,
                                                                                                       {"seed": 4})
    if name in ("Zeros", "Ones"):
        args = {}
    a = cls(**args)
    b = cls.from_config(a.get_config()) if hasattr(cls, "from_config") else cls(**a.get_config())
    np.testing.assert_array_equal(a((4, 3)), b((4, 3)))


def test_layer_config_round_trip_for_every_layer():
    """``type(layer)(**layer.get_config())`` rebuilds each layer with the same config."""
    model = _sequential_text()
    for layer in _sequential_cnn().layers + model.layers:
        config = layer.get_config()
        rebuilt = nb.saving.deserialize(nb.saving.serialize(layer), "layer")
        assert type(rebuilt) is type(layer)
        assert json.loads(json.dumps(nb.saving.to_json(rebuilt.get_config()))) == \
            json.loads(json.dumps(nb.saving.to_json(config)))


# ------------------------------------------------------------ failures and atomicity
def _saved(tmp_path):
    model = _sequential_cnn()
    path = tmp_path / "m.numbanet"
    model.save(path)
    return model, path


def _rewrite(path, member, new_bytes):
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members[member] = new_bytes
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        nb.models.load_model(tmp_path / "nothing.numbanet")


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04 truncated"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.numbanet"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a model file"):
        nb.models.load_model(path)


def test_zip_of_something_else(tmp_path):
    path = tmp_path / "other.numbanet"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="neither a numbanet model file"):
        nb.models.load_model(path)


def test_unknown_layer_class_names_the_layer(tmp_path):
    _, path = _saved(tmp_path)
    doc = json.loads(zipfile.ZipFile(path).read("numbanet.json"))
    doc["model"]["config"]["layers"][2]["class_name"] = "Conv3D"
    _rewrite(path, "numbanet.json", json.dumps(doc).encode())
    with pytest.raises(ValueError, match=r"layer 'conv2d_transpose.*': unknown layer class 'Conv3D'"):
        nb.models.load_model(path)


def test_weight_shape_mismatch_names_the_layer(tmp_path):
    model, path = _saved(tmp_path)
    doc = json.loads(zipfile.ZipFile(path).read("numbanet.json"))
    doc["model"]["config"]["layers"][-1]["config"]["units"] = 3         # the file's last kernel is (8*5, 2)
    _rewrite(path, "numbanet.json", json.dumps(doc).encode())
    last = model.layers[-1].name
    with pytest.raises(ValueError, match=rf"layer '{last}', weight '{last}/kernel' has shape \(40, 3\), the file "
                                         rf"holds shape \(40, 2\)"):
        nb.models.load_model(path)


def test_corrupt_member_and_wrong_format(tmp_path):
    _, path = _saved(tmp_path)
    _rewrite(path, "weights.npz", b"garbage")
    with pytest.raises(ValueError, match="weights.npz cannot be read"):
        nb.models.load_model(path)
    _, path = _saved(tmp_path)
    _rewrite(path, "numbanet.json", b"{not json")
    with pytest.raises(ValueError, match="numbanet.json is not valid JSON"):
        nb.models.load_model(path)
    _rewrite(path, "numbanet.json", json.dumps({"format": "numbanet-model-99"}).encode())
    with pytest.raises(ValueError, match="not a numbanet model file of format 'numbanet-model-1'"):
        nb.models.load_model(path)


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    model, path = _saved(tmp_path)
    before = path.read_bytes()
    real = zipfile.ZipFile.writestr

    def failing(self, name, data, *args, **kwargs):
        if name == "weights.npz":
            raise OSError("disk full")
        return real(self, name, data, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.numbanet"]
    nb.models.load_model(path)


def test_save_path_and_overwrite_checks(tmp_path):
    model, path = _saved(tmp_path)
    with pytest.raises(ValueError, match=r"must end in '.numbanet'.*or '.keras'"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(path, overwrite=False)


def test_top_level_names():
    assert nb.saving.load_model is not None and nb.models.load_model is not None
    assert nb.saving.register_keras_serializable is nb.saving.register_serializable
