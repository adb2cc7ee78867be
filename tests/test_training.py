"""Training: small problems that must learn (sine, XOR, iris), callbacks, History, validation_split,
reproducibility and the fit output at each verbosity."""
import os
import re

import numpy as np
import pytest

import numbanet as nb
from numbanet.callbacks import Callback, EarlyStopping, ModelCheckpoint, TerminateOnNaN
from numbanet.layers import Dense, Dropout


def small_regression(seed=0, n=40):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


def mlp(seed=0, units=8, out=1, act="tanh", dropout=0.0):
    nb.utils.set_random_seed(seed)
    layers = [Dense(units, activation=act, input_shape=(3,))]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(out))
    return nb.Sequential(layers)


class RecordWeights(Callback):
    """Keeps the model's weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(self.model.get_weights())


class Script(Callback):
    """Puts a scripted value into the epoch logs (before the callbacks after it see them)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


# ------------------------------------------------------------ problems that learn
def test_sine_demo_learns(tmp_path):
    from numbanet.demos import sine
    result = sine.main(["--verbose", "0", "--out", str(tmp_path)])
    assert result["mse"] < 0.05
    assert os.path.exists(result["png"])


def test_xor_learns():
    nb.utils.set_random_seed(1)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = nb.Sequential([Dense(8, activation="tanh", input_shape=(2,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=300, verbose=0)
    loss, acc = model.evaluate(x, y)
    assert acc == 1.0
    assert loss < 0.1 and history.history["loss"][-1] < history.history["loss"][0] / 5
    np.testing.assert_array_equal((model.predict(x) > 0.5).astype(np.float32), y)


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_iris_demo_learns(tmp_path, seed):
    from numbanet.demos import iris
    args = ["--verbose", "0", "--out", str(tmp_path)] + ([] if seed is None else ["--seed", str(seed)])
    result = iris.main(args)
    assert result["accuracy"] >= 0.9 - 1e-6     # at least 27 of the 30 held-out flowers


def test_loss_decreases_on_linear_regression():
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.05, momentum=0.9), "mse")
    history = model.fit(x, y, batch_size=8, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]


# ---------------------------------------------------------------------- History
def test_history_keys_and_lengths():
    x, y = small_regression()
    model = mlp()
    model.compile("adam", "mse", metrics=["mse", "mae"])
    h = model.fit(x, y, epochs=3, verbose=0, validation_data=(x[:10], y[:10]))
    assert set(h.history) == {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.epoch == [0, 1, 2] and model.history is h
    # mse metric on an mse loss: the same figure
    np.testing.assert_allclose(h.history["mse"], h.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h.history["val_mse"], h.history["val_loss"], rtol=1e-5)


def test_history_accuracy_name_as_given():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    model = mlp(out=3)
    model.compile("adam", nb.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    h = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(0 <= a <= 1 for a in h.history["accuracy"] + h.history["val_accuracy"])


def test_validation_split_takes_the_last_samples_before_shuffling():
    """The first 6 samples have y = 0, the last 2 have y = 100. A model predicting 0 everywhere
    then has training loss 0 and validation loss 100^2 exactly when the last 2 are held out."""
    x = np.arange(8, dtype=np.float32).reshape(8, 1)
    y = np.zeros((8, 1), np.float32)
    y[6:] = 100.0
    model = nb.Sequential([Dense(1, input_shape=(1,), kernel_initializer="zeros")])
    model.compile(nb.optimizers.SGD(learning_rate=1e-30), "mse")
    for shuffle in (True, False):
        h = model.fit(x, y, batch_size=2, epochs=2, validation_split=0.25, shuffle=shuffle, verbose=0)
        assert h.history["loss"] == [0.0, 0.0]
        np.testing.assert_allclose(h.history["val_loss"], [10000.0, 10000.0], rtol=1e-6)


# -------------------------------------------------------------- reproducibility
def _train(seed, shuffle=True):
    x, y = small_regression(5)
    model = mlp(seed=seed, dropout=0.3)
    model.compile(nb.optimizers.Adam(0.01), "mse")
    h = model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=shuffle, validation_split=0.2)
    return model.get_weights(), h.history


def test_reproducible_given_seed():
    w1, h1 = _train(3)
    w2, h2 = _train(3)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2
    w3, _ = _train(4)
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3))


# ------------------------------------------------------------------- callbacks
def test_early_stopping_stops_and_restores_best_weights():
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.01), "mse")
    record = RecordWeights()
    values = [5.0, 3.0, 4.0, 4.0, 2.0, 1.0, 1.0, 1.0]
    es = EarlyStopping(monitor="val_fake", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=8, verbose=0, callbacks=[Script("val_fake", values), record, es])
    # best at epoch 1 (3.0); epochs 2 and 3 do not improve -> stop after epoch 3 (patience 2)
    assert len(h.history["loss"]) == 4
    assert es.stopped_epoch == 3 and es.best == 3.0
    for a, b in zip(model.get_weights(), record.per_epoch[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(record.per_epoch[1][0], record.per_epoch[3][0])


def test_early_stopping_min_delta_and_without_restore():
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.01), "mse")
    record = RecordWeights()
    values = [1.0, 0.95, 0.92, 0.5, 0.1]
    es = EarlyStopping(monitor="val_fake", min_delta=0.1, patience=1)
    h = model.fit(x, y, epochs=5, verbose=0, callbacks=[Script("val_fake", values), record, es])
    # 0.95 is not better than 1.0 by more than 0.1: stop after epoch 1, keeping the last weights
    assert len(h.history["loss"]) == 2
    for a, b in zip(model.get_weights(), record.per_epoch[-1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_on_real_val_loss_restores_the_best_epoch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    y = rng.standard_normal((30, 1)).astype(np.float32)           # noise: validation loss soon rises
    model = mlp(units=32)
    model.compile(nb.optimizers.Adam(0.05), "mse")
    record = RecordWeights()
    es = EarlyStopping(patience=3, restore_best_weights=True)
    h = model.fit(x[:20], y[:20], epochs=200, verbose=0, validation_data=(x[20:], y[20:]), callbacks=[record, es])
    n = len(h.history["loss"])
    assert n < 200
    best = int(np.argmin(h.history["val_loss"]))
    assert n == best + 1 + 3
    for a, b in zip(model.get_weights(), record.per_epoch[best]):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(x[20:], y[20:]) == pytest.approx(min(h.history["val_loss"]), rel=1e-5)


def test_early_stopping_mode_auto_maximises_accuracy_and_warns_on_missing_monitor():
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.01), "mse")
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    h = model.fit(x, y, epochs=6, verbose=0, callbacks=[Script("val_accuracy", [0.5, 0.6, 0.7, 0.65, 0.9, 1.0]), es])
    assert len(h.history["loss"]) == 4 and es.best == 0.7           # a drop in accuracy is no improvement
    es2 = EarlyStopping(monitor="val_nothing", patience=0)
    with pytest.warns(RuntimeWarning, match="val_nothing.*loss"):
        h = model.fit(x, y, epochs=2, verbose=0, callbacks=[es2])
    assert len(h.history["loss"]) == 2


class CountBatches(Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_terminate_on_nan(capsys):
    x, y = small_regression()
    calls = {"n": 0}

    def loss_fn(y_true, y_pred):
        calls["n"] += 1
        d = y_pred - nb.Tensor(y_true)
        return (d * d).mean() * (float("nan") if calls["n"] == 3 else 1.0)

    model = mlp()
    model.compile(nb.optimizers.SGD(0.01), loss_fn)
    counter = CountBatches()
    with pytest.warns(RuntimeWarning, match="nan"):
        h = model.fit(x, y, batch_size=4, epochs=5, verbose=0, callbacks=[TerminateOnNaN(), counter])
    assert counter.batches == 3                      # stopped at the batch that gave NaN
    assert len(h.history["loss"]) == 1
    assert "Invalid loss" in capsys.readouterr().out


def test_terminate_on_nan_callback_alone_sets_stop_training():
    class Fake:
        stop_training = False
    cb = TerminateOnNaN()
    cb.set_model(Fake())
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert not cb.model.stop_training
    cb.on_train_batch_end(1, {"loss": float("inf")})
    assert cb.model.stop_training


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.05), "mse")
    record = RecordWeights()
    pattern = str(tmp_path / "w-{epoch:02d}.npz")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[record, ModelCheckpoint(pattern, save_weights_only=True)])
    for epoch in range(3):
        path = tmp_path / f"w-{epoch + 1:02d}.npz"
        assert path.exists()
        other = mlp(seed=9)
        other.load_weights(path)
        for a, b in zip(other.get_weights(), record.per_epoch[epoch]):
            np.testing.assert_array_equal(a, b)
    best_path = tmp_path / "best.npz"
    values = [3.0, 1.0, 2.0, 5.0]
    model2 = mlp(seed=1)
    model2.compile(nb.optimizers.SGD(0.05), "mse")
    rec2 = RecordWeights()
    model2.fit(x, y, epochs=4, verbose=0,
               callbacks=[Script("val_fake", values), rec2, ModelCheckpoint(best_path, monitor="val_fake",
                                                                            save_best_only=True,
                                                                            save_weights_only=True)])
    other = mlp(seed=9)
    other.load_weights(best_path)
    for a, b in zip(other.get_weights(), rec2.per_epoch[1]):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_model_checkpoint_saves_the_whole_model_by_default(tmp_path):
    """Keras 3's default save_weights_only=False: each checkpoint is a model file that loads on its own."""
    x, y = small_regression()
    model = mlp()
    model.compile(nb.optimizers.SGD(0.05), "mse")
    record = RecordWeights()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[record, ModelCheckpoint(str(tmp_path / "m-{epoch}.numbanet"))])
    loaded = nb.models.load_model(tmp_path / "m-2.numbanet")
    for a, b in zip(loaded.get_weights(), record.per_epoch[1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="save_weights_only=True"):
        ModelCheckpoint(str(tmp_path / "w.npz"))
    with pytest.raises(ValueError, match="must end in .npz"):
        ModelCheckpoint(str(tmp_path / "w.numbanet"), save_weights_only=True)


# ------------------------------------------------------------------ fit output
def _fit_output(capsys, verbose, epochs=2):
    x, y = small_regression()
    model = mlp()
    model.compile("sgd", "mse", metrics=["mae"])
    capsys.readouterr()
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=verbose, validation_split=0.25)
    return capsys.readouterr().out


def test_fit_verbose_1_prints_a_progress_bar(capsys):
    out = _fit_output(capsys, 1)
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "\r" in out and re.search(r"\d+/4 \[=*>?\.*\]", out)
    assert "ETA" in out
    assert re.search(r"4/4 \[={30}\]", out)
    assert "loss:" in out and "mae:" in out and "val_loss:" in out and "val_mae:" in out


def test_fit_verbose_2_prints_one_line_per_epoch(capsys):
    out = _fit_output(capsys, 2, epochs=3)
    lines = [line for line in out.splitlines() if line.strip()]
    summary = [line for line in lines if "loss:" in line]
    assert len(summary) == 3
    assert all("val_loss:" in line and "mae:" in line for line in summary)
    assert "\r" not in out and "[" not in out and "ETA" not in out


def test_fit_verbose_0_prints_nothing(capsys):
    assert _fit_output(capsys, 0) == ""


def test_evaluate_and_predict_print_nothing_by_default(capsys):
    x, y = small_regression()
    model = mlp()
    model.compile("sgd", "mse")
    capsys.readouterr()
    model.evaluate(x, y)
    model.predict(x)
    assert capsys.readouterr().out == ""


def test_the_first_batch_updates_weights_that_the_first_call_builds():
    """A subclassed model without an Input builds its weights in the first batch's forward pass;
    that batch's SGD step still applies, as in Keras: w1 = w0 - lr * dL/dw at w0."""
    class Net(nb.Model):
        def __init__(self):
            super().__init__()
            self.dense = nb.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")

        def call(self, x):
            return self.dense(x)

    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], np.float32)
    y = np.array([[1.0], [0.0], [2.0]], np.float32)
    model = Net()
    model.compile(nb.optimizers.SGD(0.1), "mse")
    model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    w0, b0 = np.ones((2, 1)), np.zeros(1)
    residual = x @ w0 + b0 - y                           # mse gradient: 2/N X^T r, 2/N sum r
    w1 = w0 - 0.1 * 2 / 3 * x.T @ residual
    b1 = b0 - 0.1 * 2 / 3 * residual.sum(axis=0)
    np.testing.assert_allclose(model.dense.kernel.data, w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.dense.bias.data, b1, rtol=1e-5, atol=1e-6)
