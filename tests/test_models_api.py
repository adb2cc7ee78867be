"""The three ways to build a model, compile/evaluate/predict, weights and weight files."""
import os

import numpy as np
import pytest

import numbanet as nb
from numbanet.layers import Dense, Dropout, Flatten, Input


def data(seed=0, n=24):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    return x, y


def seq_model(seed=0):
    nb.utils.set_random_seed(seed)
    return nb.Sequential([Dense(5, activation="tanh", input_shape=(4,)), Dense(2)])


def functional_model(seed=0):
    nb.utils.set_random_seed(seed)
    inp = Input((4,))
    h = Dense(5, activation="tanh")(inp)
    out = Dense(2)(h)
    return nb.Model(inp, out)


class Subclassed(nb.Model):
    def __init__(self):
        super().__init__()
        self.hidden = Dense(5, activation="tanh")
        self.out = Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def subclassed_model(seed=0):
    nb.utils.set_random_seed(seed)
    m = Subclassed()
    m(np.zeros((1, 4), np.float32))
    return m


BUILDERS = [seq_model, functional_model, subclassed_model]


# --------------------------------------------------------------- construction
def test_sequential_list_add_and_input_first_are_equivalent():
    nb.utils.set_random_seed(0)
    a = nb.Sequential([Dense(3, input_shape=(4,)), Dense(1)])
    nb.utils.set_random_seed(0)
    b = nb.Sequential()
    b.add(Input((4,)))
    b.add(Dense(3))
    b.add(Dense(1))
    nb.utils.set_random_seed(0)
    c = nb.Sequential([Input((4,)), Dense(3), Dense(1)])
    for m in (a, b, c):
        assert m.built and m.output_shape == (None, 1) and len(m.layers) == 2
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(wa, wc)


def test_input_shape_builds_at_once_so_summary_works_before_data():
    model = nb.Sequential([Dense(10, activation="relu", input_shape=(3,)), Dropout(0.1), Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 10)" in text and "(None, 2)" in text
    assert "Total params: 62" in text            # (3*10 + 10) + (10*2 + 2)
    assert "40" in text and "22" in text


def test_sequential_without_input_builds_on_first_call():
    model = nb.Sequential([Dense(3), Dense(1)])
    assert not model.built and model.weights == []
    y = model(np.ones((2, 7), np.float32))
    assert y.shape == (2, 1) and model.built
    assert [w.shape for w in model.weights] == [(7, 3), (3,), (3, 1), (1,)]
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 28" in "\n".join(lines)


def test_sequential_pop():
    model = nb.Sequential([Dense(3, input_shape=(2,)), Dense(1)])
    layer = model.pop()
    assert isinstance(layer, Dense) and len(model.layers) == 1 and len(model.weights) == 2


def test_functional_model():
    model = functional_model()
    x, _ = data()
    y = model(x)
    assert isinstance(y, nb.Tensor) and y.shape == (24, 2)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Dense"]
    assert [w.shape for w in model.weights] == [(4, 5), (5,), (5, 2), (2,)]
    k1, b1, k2, b2 = model.get_weights()
    np.testing.assert_allclose(y.data, np.tanh(x @ k1 + b1) @ k2 + b2, rtol=1e-5, atol=1e-6)


def test_functional_model_with_shared_branches():
    inp = Input((4,))
    shared = Dense(3)
    a = shared(inp)
    b = nb.layers.Activation("relu")(a)
    out = Dense(1)(b)
    model = nb.Model(inp, out)
    assert len(model.weights) == 4
    assert model(np.ones((2, 4), np.float32)).shape == (2, 1)


def test_subclassed_model_tracks_layers_in_assignment_order():
    class Backwards(nb.Model):
        def __init__(self):
            super().__init__()
            self.second = Dense(2)     # assigned first, called last
            self.first = Dense(3)
            self.blocks = [Dense(4), Dense(4)]

        def call(self, x):
            return self.second(self.blocks[1](self.blocks[0](self.first(x))))

    m = Backwards()
    y = m(np.ones((1, 5), np.float32))
    assert y.shape == (1, 2)
    assert [w.shape for w in m.weights] == [(4, 2), (2,), (5, 3), (3,), (3, 4), (4,), (4, 4), (4,)]
    assert m.layers == [m.second, m.first, m.blocks[0], m.blocks[1]]


def test_model_call_returns_tensor_for_array_and_tensor():
    model = seq_model()
    x, _ = data()
    assert isinstance(model(x), nb.Tensor)
    assert isinstance(model(nb.Tensor(x)), nb.Tensor)
    np.testing.assert_array_equal(model(x).data, model(nb.Tensor(x)).data)


@pytest.mark.parametrize("builder", BUILDERS)
def test_three_model_forms_train_the_same(builder):
    x, y = data()
    reference = seq_model()
    reference.compile(nb.optimizers.SGD(0.1, momentum=0.5), "mse")
    reference.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    model = builder()
    model.set_weights(seq_model().get_weights())       # same initial weights
    model.compile(nb.optimizers.SGD(0.1, momentum=0.5), "mse")
    h = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert h.history["loss"][-1] < h.history["loss"][0]


# --------------------------------------------------- compile / evaluate / predict
def test_compile_again_changes_loss_and_optimizer():
    x, y = data()
    model = seq_model()
    model.compile("sgd", "mse")
    assert isinstance(model.optimizer, nb.optimizers.SGD)
    mse = model.evaluate(x, y)
    model.compile(nb.optimizers.Adam(0.01), "mae", metrics=["mse"])
    assert isinstance(model.optimizer, nb.optimizers.Adam)
    mae, mse2 = model.evaluate(x, y)
    pred = model.predict(x)
    assert mae == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-5)
    assert mse2 == pytest.approx(mse, rel=1e-6) == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.iterations == 1


def test_evaluate_returns_loss_or_list_and_matches_numpy():
    x, y = data(n=21)                              # 21 is not a multiple of the batch size
    model = seq_model()
    model.compile("sgd", "mse")
    loss = model.evaluate(x, y, batch_size=4)
    assert isinstance(loss, float)
    pred = model.predict(x)
    assert loss == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    model.compile("sgd", "mse", metrics=["mae", "mse"])
    out = model.evaluate(x, y, batch_size=4)
    assert isinstance(out, list) and len(out) == 3
    assert out[1] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-5)
    assert model.evaluate(x, y, return_dict=True).keys() == {"loss", "mae", "mse"}


def test_predict_returns_ndarray_in_batches():
    x, _ = data(n=37)
    model = seq_model()
    out = model.predict(x, batch_size=5)             # predict needs no compile
    assert isinstance(out, np.ndarray) and out.shape == (37, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, model(x).data, rtol=1e-6)


def test_predict_and_evaluate_record_no_graph_and_keep_weights():
    x, y = data()
    model = seq_model()
    model.compile("sgd", "mse")
    before = model.get_weights()
    model.predict(x)
    model.evaluate(x, y)
    assert all(w.grad is None for w in model.weights)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dropout_only_in_training():
    model = nb.Sequential([Dropout(0.5, input_shape=(100,))])
    x = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(model.predict(x), x)
    assert np.any(model(x, training=True).data == 0)


def test_metrics_accuracy_kinds():
    probs = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]], np.float32)
    model = nb.Sequential([nb.layers.Activation("linear", input_shape=(3,))])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    assert model.evaluate(probs, np.array([[0, 1, 0], [0, 0, 1]], np.float32))[1] == 0.5
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model.evaluate(probs, np.array([1, 0]))[1] == 1.0
    model2 = nb.Sequential([nb.layers.Activation("linear", input_shape=(1,))])
    model2.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    assert model2.evaluate(np.array([[0.7], [0.2], [0.6]], np.float32), np.array([[1], [1], [0]], np.float32))[1] \
        == pytest.approx(1 / 3)


# ----------------------------------------------------------------------- weights
@pytest.mark.parametrize("builder", BUILDERS)
def test_get_set_weights_round_trip(builder):
    a, b = builder(0), builder(1)
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])
    b.set_weights(a.get_weights())
    x, _ = data()
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    w = a.get_weights()
    w[0][:] = 123.0
    assert not np.any(a.get_weights()[0] == 123.0)   # copies
    b.set_weights([v.tolist() for v in w])            # array-likes are accepted, as in Keras
    np.testing.assert_array_equal(b.get_weights()[0], w[0])
    assert b.get_weights()[0].dtype == np.float32


@pytest.mark.parametrize("builder", BUILDERS)
def test_save_and_load_weights_round_trip(tmp_path, builder):
    a, b = builder(0), builder(1)
    path = tmp_path / "weights.npz"
    a.save_weights(path)
    b.load_weights(path)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x, _ = data()
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert os.listdir(tmp_path) == ["weights.npz"]


def test_save_weights_is_atomic(tmp_path, monkeypatch):
    """A crash in the middle of writing leaves the old file intact and no temporary file behind."""
    path = tmp_path / "w.npz"
    model = seq_model(0)
    model.save_weights(path)
    old_bytes = path.read_bytes()
    real_savez = np.savez

    def crashing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", crashing_savez)
    other = seq_model(5)
    with pytest.raises(OSError, match="simulated"):
        other.save_weights(path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]
    fresh = seq_model(9)
    fresh.load_weights(path)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_weights_overwrites_and_file_is_readable_by_numpy(tmp_path):
    path = tmp_path / "w.npz"
    seq_model(0).save_weights(path)
    m = seq_model(1)
    m.save_weights(path)
    with np.load(path) as f:
        np.testing.assert_array_equal(f["w0"], m.get_weights()[0])
    mode = os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask                 # a normal file's permissions, not mkstemp's 0600


def _assert_unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_wrong_shapes_leaves_weights_unchanged(tmp_path):
    path = tmp_path / "w.npz"
    nb.Sequential([Dense(6, input_shape=(4,)), Dense(2)]).save_weights(path)
    model = seq_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"weight 0 .*\(4, 5\).*\(4, 6\)"):
        model.load_weights(path)
    _assert_unchanged(model, before)
    nb.Sequential([Dense(5, input_shape=(4,))]).save_weights(path)
    with pytest.raises(ValueError, match="holds 2 arrays.*4 weights"):
        model.load_weights(path)
    _assert_unchanged(model, before)


def test_load_weights_missing_file(tmp_path):
    model = seq_model()
    before = model.get_weights()
    with pytest.raises(FileNotFoundError, match="no such file"):
        model.load_weights(tmp_path / "nope.npz")
    _assert_unchanged(model, before)


@pytest.mark.parametrize("content", ["garbage", "truncated", "empty", "npy", "other_npz", "bad_crc"])
def test_load_weights_corrupt_file(tmp_path, content):
    model = seq_model()
    good = tmp_path / "good.npz"
    model.save_weights(good)
    path = tmp_path / "bad.npz"
    if content == "garbage":
        path.write_bytes(b"this is not a weight file" * 20)
    elif content == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.ones(3))
    elif content == "other_npz":
        np.savez(path, a=np.ones(3))
    else:
        raw = bytearray(good.read_bytes())
        raw[200:260] = b"\x00" * 60
        path.write_bytes(bytes(raw))
    other = seq_model(3)
    before = other.get_weights()
    with pytest.raises(ValueError, match="corrupt|not a numbanet weight file") as err:
        other.load_weights(path)
    assert "bad.npz" in str(err.value)
    _assert_unchanged(other, before)


def test_save_weights_of_unbuilt_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no weights"):
        nb.Sequential([Dense(2)]).save_weights(tmp_path / "w.npz")


def test_flatten_in_a_model():
    model = nb.Sequential([Input((2, 3)), Flatten(), Dense(4)])
    assert model.output_shape == (None, 4)
    assert model.predict(np.ones((5, 2, 3), np.float32)).shape == (5, 4)
