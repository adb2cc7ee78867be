"""Bad input at every public entry point of the foundation: a clear error naming what is wrong,
and nothing half-changed."""
import numpy as np
import pytest

import numbanet as nb
from numbanet import activations, initializers, losses, metrics, optimizers
from numbanet.layers import Dense, Dropout, Input, Reshape


def compiled_model():
    nb.utils.set_random_seed(0)
    model = nb.Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(1)])
    model.compile("sgd", "mse")
    return model


def snapshot(model):
    return [w.copy() for w in model.get_weights()], model.optimizer.iterations if model.optimizer else None


def assert_unchanged(model, snap):
    weights, iterations = snap
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    if model.optimizer is not None:
        assert model.optimizer.iterations == iterations


# ----------------------------------------------------------------- layer input
def test_built_dense_rejects_wrong_feature_size():
    layer = Dense(2, name="d1")
    layer(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"d1.*size 4.*\(None, 5\)"):
        layer(np.zeros((3, 5)))


def test_dense_rejects_rank_1_input():
    with pytest.raises(ValueError, match=r"rank >= 2.*\(None,\)"):
        Dense(2)(np.zeros(4))
    layer = Dense(2)
    layer(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="rank"):
        layer(np.zeros(3))


@pytest.mark.parametrize("shape", [(5, 3), (5, 4, 1), (5,)])
def test_model_with_declared_input_rejects_wrong_shape(shape):
    model = compiled_model()
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"\(None, 4\)"):
        model.predict(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=r"\(None, 4\)"):
        model.fit(np.zeros(shape, np.float32), np.zeros((shape[0], 1), np.float32), verbose=0)
    assert_unchanged(model, snap)


def test_functional_model_rejects_wrong_shape():
    inp = Input((4,))
    model = nb.Model(inp, Dense(1)(inp))
    with pytest.raises(ValueError, match=r"expected input of shape \(None, 4\), got \(2, 3\)"):
        model(np.zeros((2, 3), np.float32))


def test_string_input_is_a_type_error():
    with pytest.raises(TypeError, match="numeric"):
        Dense(2)(np.array([["a", "b"]]))


def test_reshape_to_impossible_shape():
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((4,))(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="target_shape"):
        Reshape((-1, -1))


# ---------------------------------------------------------- constructor values
@pytest.mark.parametrize("units", [0, -3])
def test_non_positive_units(units):
    with pytest.raises(ValueError, match=rf"units must be a positive integer, got {units}"):
        Dense(units)


@pytest.mark.parametrize("units", [2.5, "3", None, True])
def test_non_integer_units(units):
    with pytest.raises(TypeError, match="units must be a positive integer"):
        Dense(units)


def test_bad_input_shape_and_dropout_rate_and_kwargs():
    with pytest.raises(ValueError, match="positive integers"):
        Input((0, 3))
    with pytest.raises(ValueError, match="positive integers"):
        Input((-1,))
    with pytest.raises(ValueError, match="rate"):
        Dropout(-0.1)
    with pytest.raises(TypeError, match="unexpected keyword.*unitz"):
        Dense(3, unitz=4)
    with pytest.raises(TypeError, match="floating"):
        Dense(3, dtype="int32")


# --------------------------------------------------------------- unknown names
@pytest.mark.parametrize("getter,name,kind,valid", [
    (activations.get, "relux", "activation", ["relu", "sigmoid", "softmax", "tanh"]),
    (losses.get, "mean_squared_errors", "loss", ["mse", "binary_crossentropy", "categorical_crossentropy"]),
    (optimizers.get, "adamz", "optimizer", ["adam", "sgd", "rmsprop", "adagrad", "adadelta"]),
    (initializers.get, "glorot", "initializer", ["glorot_uniform", "he_normal", "zeros", "orthogonal"]),
    (lambda n: metrics.get(n), "acuracy", "metric", ["accuracy", "mse", "mae"]),
])
def test_unknown_names_list_the_valid_ones(getter, name, kind, valid):
    with pytest.raises(ValueError) as err:
        getter(name)
    msg = str(err.value)
    assert f"unknown {kind} {name!r}" in msg
    assert all(v in msg for v in valid), msg


def test_unknown_names_through_the_public_api():
    with pytest.raises(ValueError, match="unknown activation 'swishy'.*relu"):
        Dense(3, activation="swishy")
    with pytest.raises(ValueError, match="unknown initializer 'glorot'.*glorot_uniform"):
        Dense(3, kernel_initializer="glorot")(np.zeros((1, 2)))
    model = compiled_model()
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'.*sgd"):
        model.compile("sgdd", "mse")
    with pytest.raises(ValueError, match="unknown loss 'msee'.*mse"):
        model.compile("sgd", "msee")
    with pytest.raises(ValueError, match="unknown metric 'acc2'.*accuracy"):
        model.compile("sgd", "mse", metrics=["acc2"])
    with pytest.raises(TypeError, match="optimizer must be"):
        model.compile(3, "mse")
    with pytest.raises(ValueError, match="needs a loss"):
        model.compile("sgd")


def test_initializer_that_fails_leaves_layer_unbuilt():
    with pytest.raises(ValueError, match="kernel_initializer: unknown initializer 'nope'"):
        Dense(3, kernel_initializer="nope")  # an unknown name fails at construction, as in Keras
    layer = Dense(3, bias_initializer="orthogonal")  # a known one that cannot make a 1-D bias fails at build
    with pytest.raises(ValueError, match=r"dense.*'bias' of shape \(3,\).*orthogonal"):
        layer(np.zeros((1, 2)))
    assert not layer.built and layer.weights == []  # the kernel made before the bias failed is gone


# ------------------------------------------------------------------------ data
def test_x_y_length_mismatch():
    model = compiled_model()
    snap = snapshot(model)
    x, y = np.zeros((10, 4), np.float32), np.zeros((9, 1), np.float32)
    with pytest.raises(ValueError, match=r"same number of samples.*\(10, 4\).*\(9, 1\)"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, x[:, :1], validation_data=(x, y), verbose=0)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("where", ["x", "y", "x_inf", "val_x"])
def test_nan_in_data(where):
    model = compiled_model()
    snap = snapshot(model)
    x, y = np.ones((10, 4), np.float32), np.ones((10, 1), np.float32)
    vx = x.copy()
    if where == "x":
        x[3, 2] = np.nan
    elif where == "y":
        y[5, 0] = np.nan
    elif where == "x_inf":
        x[0, 0] = np.inf
    else:
        vx[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"(x|y) contains NaN or infinity"):
        model.fit(x, y, verbose=0, validation_data=(vx, y))
    assert_unchanged(model, snap)
    if where == "x":
        with pytest.raises(ValueError, match=r"NaN.*\(3, 2\)"):
            model.evaluate(x, y)
        out = model.predict(x)  # as Keras: predict lets NaN through, only into its own sample's row
        assert np.isnan(out[3]).all() and np.isfinite(np.delete(out, 3, axis=0)).all()


def test_fit_and_evaluate_before_compile():
    model = nb.Sequential([Dense(1, input_shape=(2,))])
    before = model.get_weights()
    for call in (lambda: model.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0),
                 lambda: model.evaluate(np.zeros((2, 2)), np.zeros((2, 1)))):
        with pytest.raises(RuntimeError, match=r"compile\(optimizer, loss\) before (fit|evaluate)"):
            call()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_fit_arguments():
    model = compiled_model()
    snap = snapshot(model)
    x, y = np.zeros((10, 4), np.float32), np.zeros((10, 1), np.float32)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="validation_split=0.95 leaves 0 of 10"):   # floor(10 * 0.05), as Keras
        model.fit(x, y, validation_split=0.95, verbose=0)
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, callbacks=[lambda: None], verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        model.fit(np.zeros((0, 4)), np.zeros((0, 1)), verbose=0)
    with pytest.raises(ValueError, match="scalar"):
        model.predict(np.float32(1.0))
    with pytest.raises(ValueError, match=r"fit: needs x and y \(the targets\)"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: needs x and y"):
        model.evaluate(x)
    with pytest.raises(ValueError, match=r"predict: needs x"):
        model.predict(None)
    with pytest.raises(ValueError, match="sample_weight has 3 entries for 10 samples"):
        model.fit(x, y, sample_weight=np.ones(3), verbose=0)
    assert_unchanged(model, snap)


def test_loss_shape_and_label_errors():
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 3\) but y_pred has shape \(2, 2\)"):
        losses.MeanSquaredError()(np.zeros((2, 3)), nb.Tensor(np.zeros((2, 2))))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 3]), nb.Tensor(np.full((2, 3), 1 / 3)))
    with pytest.raises(ValueError, match="integer class ids"):
        losses.SparseCategoricalCrossentropy()(np.array([0.5, 1.0]), nb.Tensor(np.full((2, 3), 1 / 3)))
    with pytest.raises(ValueError, match="labels of shape"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 1, 2]), nb.Tensor(np.full((2, 3), 1 / 3)))
    with pytest.raises(ValueError, match="mask of shape"):
        losses.MeanSquaredError()(np.zeros((2, 3, 1)), nb.Tensor(np.zeros((2, 3, 1))), mask=np.ones((2, 2)))
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="mean_please")


def test_fit_with_wrong_target_shape_changes_nothing():
    model = compiled_model()
    snap = snapshot(model)
    with pytest.raises(ValueError, match="y_true has shape"):
        model.fit(np.zeros((8, 4), np.float32), np.zeros((8, 3), np.float32), verbose=0)
    assert_unchanged(model, snap)


# -------------------------------------------------------------------- weights
def test_set_weights_wrong_count_or_shape_changes_nothing():
    model = compiled_model()
    snap = snapshot(model)
    good = model.get_weights()
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        model.set_weights(good[:3])
    bad = [w.copy() for w in good]
    bad[3] = np.zeros((2,))
    with pytest.raises(ValueError, match=r"shape \(1,\), got an array of shape \(2,\)"):
        model.set_weights(bad)
    assert_unchanged(model, snap)


def test_load_weights_of_wrong_model_changes_nothing(tmp_path):
    path = tmp_path / "w.npz"
    nb.Sequential([Dense(3, input_shape=(5,)), Dense(1)]).save_weights(path)
    model = compiled_model()
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        model.load_weights(path)
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="corrupt"):
        model.load_weights(tmp_path / "junk.npz")
    assert_unchanged(model, snap)


# -------------------------------------------------------------------- engine
def test_engine_errors():
    x = nb.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        nb.Tensor(np.ones(2)).sum().backward()
    with pytest.raises(ValueError):
        x @ nb.Tensor(np.ones((2, 2)))
    assert x.grad is None
