"""LearningRateScheduler, ReduceLROnPlateau and CSVLogger against Keras 3 on the same small,
deterministic fit (same data and weights, no shuffling): the learning rate in the history, the
CSV file, the weights and losses (within the float32 bound of tests/linear_fit.py); the
plateau rule on scripted monitor values; bad arguments."""
import csv
import io

import numpy as np
import pytest

import numbanet as nb
from numbanet import callbacks as C
from numbanet import optimizers as O

import linear_fit

EPS32 = float(np.finfo(np.float32).eps)


def rate_bound(epoch, lr):
    """Keras keeps the rate in a float32 variable: each epoch's new rate, computed from the last
    float32 one, is rounded again; numbanet rounds once, when the update casts it to float32."""
    return (epoch + 2) * EPS32 * lr


def assert_rates(ours, theirs, label=""):
    assert len(ours) == len(theirs), (ours, theirs)
    for e, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= rate_bound(e, abs(a)), f"{label} epoch {e}: {a} vs {b}"


def fit_both(keras, make_ours, make_theirs, epochs, lr=0.1, validation=False, batch_size=8, seed=3):
    """The same fit in numbanet and Keras: (model, history) for each, and the data."""
    x, y, W, b = linear_fit.data(seed)
    val = (x[:7], y[:7]) if validation else None
    ours, theirs = linear_fit.models(keras, nb, W, b, O.SGD(lr), keras.optimizers.SGD(lr))
    h_ours = ours.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0, validation_data=val,
                      callbacks=make_ours())
    h_theirs = theirs.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0,
                          validation_data=val, callbacks=make_theirs())
    return (ours, h_ours), (theirs, h_theirs), (x, y, W, b, val)


def check_fit(ours, h_ours, theirs, h_theirs, data, rates, batch_size=8):
    """Weights and per-epoch losses of both within the bound of the float64 run with ``rates`` per epoch."""
    x, y, W, b, val = data
    ref = linear_fit.sgd_fit(x, y, W, b, batch_size, len(rates), lambda e, t: rates[e],
                             lambda e, t: rate_bound(e, rates[e]), validation_data=val)
    linear_fit.assert_weights_within(ours, ref, "numbanet")
    linear_fit.assert_weights_within(theirs, ref, "keras")
    for key in ["loss"] + (["val_loss"] if val is not None else []):
        for e, (a, t, want, bound) in enumerate(zip(h_ours.history[key], h_theirs.history[key], ref[key],
                                                    ref[key + "_bound"])):
            assert abs(a - want) <= bound and abs(t - want) <= bound, (key, e, a, t, want, bound)
    return ref


# ------------------------------------------------------------------ LearningRateScheduler
def test_fit_without_rate_callbacks_logs_no_rate(tf, keras):
    (_, h_ours), (_, h_theirs), _ = fit_both(keras, list, list, epochs=1, validation=True)
    assert list(h_ours.history) == list(h_theirs.history) == ["loss", "val_loss"]


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("schedule", [lambda epoch, lr: lr * 0.7, lambda epoch: 0.2 / (epoch + 1)],
                         ids=["two_arguments", "one_argument"])
def test_scheduler_equals_keras(tf, keras, schedule):
    (ours, h_ours), (theirs, h_theirs), data = fit_both(
        keras, lambda: [C.LearningRateScheduler(schedule)], lambda: [keras.callbacks.LearningRateScheduler(schedule)],
        epochs=4, validation=True)
    assert list(h_ours.history) == list(h_theirs.history) == ["loss", "val_loss", "learning_rate"]
    assert_rates(h_ours.history["learning_rate"], h_theirs.history["learning_rate"])
    rates = h_ours.history["learning_rate"]
    assert len(set(rates)) == 4                      # the rate did change every epoch
    check_fit(ours, h_ours, theirs, h_theirs, data, rates)


def test_scheduler_sets_the_rate_at_epoch_begin_and_says_so(capsys):
    x, y, W, b = linear_fit.data(0)
    seen = []

    class Spy(C.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(self.model.optimizer.learning_rate)

    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(O.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=10, epochs=3, verbose=0, shuffle=False,
              callbacks=[C.LearningRateScheduler(lambda e, lr: 0.5 ** e, verbose=1), Spy()])
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    out = capsys.readouterr().out
    assert "\nEpoch 1: LearningRateScheduler setting learning rate to 1.0.\n" in out
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.25." in out


def test_epoch_line_shows_the_rate(capsys):
    x, y, W, b = linear_fit.data(0)
    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(O.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, verbose=2, callbacks=[C.LearningRateScheduler(lambda e, lr: 0.05)])
    assert "learning_rate: 0.0500" in capsys.readouterr().out


# ------------------------------------------------------------------ ReduceLROnPlateau
def scripted(base, key, values):
    """A callback (of ``base``) that puts ``values[epoch]`` into the logs as ``key``."""
    class Script(base):
        def on_epoch_end(self, epoch, logs=None):
            logs[key] = values[epoch]
    return Script()


PLATEAUS = {
    "patience_2": (dict(monitor="val_fake", mode="min", factor=0.5, patience=2),
                   [5.0, 4.0, 4.0, 4.0, 3.0, 3.5, 3.5, 3.5, 3.5, 2.0]),
    "cooldown": (dict(monitor="val_fake", mode="min", factor=0.5, patience=1, cooldown=2),
                 [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.0, 4.5, 4.5]),
    "min_delta": (dict(monitor="val_fake", mode="min", factor=0.2, patience=1, min_delta=0.5),
                  [5.0, 4.6, 4.2, 3.0, 2.9, 2.0, 1.8, 1.7]),
    "min_lr": (dict(monitor="val_fake", mode="min", factor=0.1, patience=0, min_lr=0.002),
               [1.0, 2.0, 3.0, 4.0, 5.0]),
    "max_mode": (dict(monitor="fake_acc", mode="max", factor=0.5, patience=1),
                 [0.5, 0.6, 0.6, 0.7, 0.65, 0.7, 0.9, 0.8]),
}


@pytest.mark.parametrize("case", list(PLATEAUS))
def test_plateau_rule_equals_keras_on_scripted_values(tf, keras, case):
    kwargs, values = PLATEAUS[case]
    key = kwargs["monitor"]
    (_, h_ours), (_, h_theirs), _ = fit_both(
        keras, lambda: [scripted(C.Callback, key, values), C.ReduceLROnPlateau(**kwargs)],
        lambda: [scripted(keras.callbacks.Callback, key, values), keras.callbacks.ReduceLROnPlateau(**kwargs)],
        epochs=len(values), batch_size=20)
    assert list(h_ours.history) == list(h_theirs.history)
    assert_rates(h_ours.history["learning_rate"], h_theirs.history["learning_rate"], case)
    assert h_ours.history["learning_rate"][-1] < 0.1      # it did reduce


def test_plateau_logs_the_rate_before_reducing_and_says_so(capsys):
    x, y, W, b = linear_fit.data(0)
    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(O.SGD(0.1), loss="mse")
    values = [3.0, 3.0, 3.0]
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        scripted(C.Callback, "val_x", values), C.ReduceLROnPlateau("val_x", factor=0.5, patience=1, verbose=1,
                                                                   mode="min")])
    assert h.history["learning_rate"] == [0.1, 0.1, 0.05]   # reduced at the end of epoch 2, logged at epoch 3
    assert model.optimizer.learning_rate == 0.025
    assert "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out


@pytest.mark.usefixtures("tier")
def test_plateau_on_a_real_fit_equals_keras(tf, keras):
    """Monitoring the training loss with min_delta=0.5: no epoch improves enough after the first,
    so the rate halves every second epoch in both; the decisions are far from any tie."""
    kwargs = dict(monitor="loss", factor=0.5, patience=2, min_delta=0.5)
    (ours, h_ours), (theirs, h_theirs), data = fit_both(
        keras, lambda: [C.ReduceLROnPlateau(**kwargs)], lambda: [keras.callbacks.ReduceLROnPlateau(**kwargs)],
        epochs=6, validation=True)
    assert list(h_ours.history) == list(h_theirs.history) == ["loss", "val_loss", "learning_rate"]
    assert_rates(h_ours.history["learning_rate"], h_theirs.history["learning_rate"])
    assert h_ours.history["learning_rate"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    ref = check_fit(ours, h_ours, theirs, h_theirs, data, h_ours.history["learning_rate"])
    # no tie: every epoch after the first misses the best loss minus min_delta by far more than its bound
    assert all(loss > ref["loss"][0] - 0.5 + 1e3 * bound for loss, bound in zip(ref["loss"][1:], ref["loss_bound"]))


def test_auto_mode_needs_a_known_direction():
    x, y, W, b = linear_fit.data(0)
    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(O.SGD(0.1), loss="mse", metrics=["accuracy"])
    with pytest.raises(ValueError, match="cannot tell whether 'val_fake' should fall or rise; pass mode='min'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.ReduceLROnPlateau("val_fake")])
    for monitor, op in [("val_loss", np.less), ("loss", np.less), ("val_accuracy", np.greater), ("mae", np.less)]:
        cb = C.ReduceLROnPlateau(monitor)
        cb._set_monitor_op()
        assert cb.monitor_op is op, monitor


def test_missing_monitor_warns_and_leaves_the_rate():
    x, y, W, b = linear_fit.data(0)
    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(O.SGD(0.1), loss="mse")
    with pytest.warns(RuntimeWarning, match="'val_loss' is not in the logs"):
        h = model.fit(x, y, epochs=2, verbose=0, callbacks=[C.ReduceLROnPlateau(patience=0)])
    assert h.history["learning_rate"] == [0.1, 0.1]


# ------------------------------------------------------------------ CSVLogger
def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("validation,sep", [(True, ","), (False, ";")])
def test_csv_file_equals_keras(tf, keras, tmp_path, validation, sep):
    ours_path, theirs_path = tmp_path / "ours.csv", tmp_path / "theirs.csv"

    def schedule(epoch, lr):
        return lr * 0.5
    (ours, h_ours), (theirs, h_theirs), data = fit_both(
        keras, lambda: [C.LearningRateScheduler(schedule), C.CSVLogger(ours_path, separator=sep)],
        lambda: [keras.callbacks.LearningRateScheduler(schedule), keras.callbacks.CSVLogger(str(theirs_path),
                                                                                            separator=sep)],
        epochs=3, validation=validation)
    assert ours_path.read_bytes().count(b"\r\n") == theirs_path.read_bytes().count(b"\r\n") == 4   # csv's line ends
    rows_o, rows_t = read_csv(ours_path, sep), read_csv(theirs_path, sep)
    assert rows_o[0] == rows_t[0]
    want_header = ["epoch", "learning_rate", "loss", "val_loss"] if validation else \
        ["epoch", "learning_rate", "loss", "val_learning_rate", "val_loss"]
    assert rows_o[0] == want_header
    ref = check_fit(ours, h_ours, theirs, h_theirs, data, h_ours.history["learning_rate"])
    assert len(rows_o) == len(rows_t) == 4
    for e, (ro, rt) in enumerate(zip(rows_o[1:], rows_t[1:])):
        row_o, row_t = dict(zip(rows_o[0], ro)), dict(zip(rows_t[0], rt))
        assert row_o["epoch"] == row_t["epoch"] == str(e)
        assert abs(float(row_o["learning_rate"]) - float(row_t["learning_rate"])) <= rate_bound(e, 0.1)
        assert float(row_o["learning_rate"]) == h_ours.history["learning_rate"][e]
        assert abs(float(row_o["loss"]) - ref["loss"][e]) <= ref["loss_bound"][e]
        assert abs(float(row_t["loss"]) - ref["loss"][e]) <= ref["loss_bound"][e]
        for k in rows_o[0]:
            if row_t[k] == "NA":
                assert row_o[k] == "NA", k
        if validation:
            assert abs(float(row_o["val_loss"]) - ref["val_loss"][e]) <= ref["val_loss_bound"][e]
        else:
            assert row_o["val_loss"] == row_o["val_learning_rate"] == "NA"


def test_csv_append_continues_without_a_second_header(tf, keras, tmp_path):
    paths = {"ours": tmp_path / "ours.csv", "theirs": tmp_path / "theirs.csv"}
    for _ in range(2):
        fit_both(keras, lambda: [C.CSVLogger(paths["ours"], append=True)],
                 lambda: [keras.callbacks.CSVLogger(str(paths["theirs"]), append=True)], epochs=2)
    rows_o, rows_t = read_csv(paths["ours"]), read_csv(paths["theirs"])
    assert [r[0] for r in rows_o] == [r[0] for r in rows_t] == ["epoch", "0", "1", "0", "1"]
    assert rows_o[0] == rows_t[0] == ["epoch", "loss", "val_loss"]
    fit_both(keras, lambda: [C.CSVLogger(paths["ours"])], lambda: [keras.callbacks.CSVLogger(str(paths["theirs"]))],
             epochs=1)
    assert len(read_csv(paths["ours"])) == len(read_csv(paths["theirs"])) == 2       # append=False overwrites


def test_csv_writes_array_values_as_keras_does(tmp_path):
    path = tmp_path / "log.csv"
    logger = C.CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5, "per_class": np.array([1, 2]), "note": "ok"})
    logger.on_train_end()
    text = path.read_text()
    assert text.splitlines()[0] == "epoch,loss,note,per_class,val_loss,val_note,val_per_class"
    assert next(csv.reader(io.StringIO(text.splitlines()[1]))) == ["0", "0.5", "ok", '"[1, 2]"', "NA", "NA", "NA"]


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("make,error,text", [
    (lambda: C.ReduceLROnPlateau(factor=1.0), ValueError, r"ReduceLROnPlateau: factor must be in \(0, 1\).*got "
                                                          r"factor=1.0; to raise the rate use a LearningRateScheduler"),
    (lambda: C.ReduceLROnPlateau(factor=2), ValueError, "factor must be in"),
    (lambda: C.ReduceLROnPlateau(factor=0.0), ValueError, "factor must be in"),
    (lambda: C.ReduceLROnPlateau(factor=-0.5), ValueError, "factor must be in"),
    (lambda: C.ReduceLROnPlateau(patience=-1), ValueError, "ReduceLROnPlateau: patience must be an integer >= 0"),
    (lambda: C.ReduceLROnPlateau(patience=1.5), TypeError, "patience must be an integer"),
    (lambda: C.ReduceLROnPlateau(cooldown=-2), ValueError, "cooldown must be an integer >= 0"),
    (lambda: C.ReduceLROnPlateau(min_lr=-1e-3), ValueError, "min_lr must be a number >= 0"),
    (lambda: C.ReduceLROnPlateau(mode="down"), ValueError, "mode must be 'auto', 'min' or 'max', got 'down'"),
    (lambda: C.ReduceLROnPlateau(monitor=3), TypeError, "monitor must be a name"),
    (lambda: C.LearningRateScheduler(0.1), TypeError, "schedule must be a function schedule"),
    (lambda: C.CSVLogger(3), TypeError, "CSVLogger: filename must be a path"),
    (lambda: C.CSVLogger("log.csv", separator=""), ValueError, "separator must be one character"),
    (lambda: C.CSVLogger("log.csv", append="yes"), TypeError, "append must be True or False"),
])
def test_bad_arguments_are_clear_errors(make, error, text):
    with pytest.raises(error, match=text):
        make()


@pytest.mark.parametrize("schedule,optimizer,error,text", [
    (lambda e, lr: 1, O.SGD(0.1), ValueError, "the schedule must return a float, got the int 1 for epoch 0"),
    (lambda e, lr: -0.1, O.SGD(0.1), ValueError, "returned the learning rate -0.1 for epoch 0; a learning rate must"),
    (lambda e, lr: 0.1, O.SGD(nb.schedules.ExponentialDecay(0.1, 5, 0.5)), TypeError,
     "SGD: this optimizer was built with the schedule ExponentialDecay"),
])
def test_bad_schedules_stop_fit_with_a_clear_error(schedule, optimizer, error, text):
    x, y, W, b = linear_fit.data(0)
    model = nb.Sequential([nb.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer, loss="mse")
    with pytest.raises(error, match=text):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(schedule)])
