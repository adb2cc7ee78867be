"""Errors that teach: the mistakes a learner makes first get an exception of the right type whose
message names the argument (or layer), what was given, and what to write instead.

Covered: strings, bools and out-of-range numbers for optimizer hyperparameters and for the scalar
arguments of fit / evaluate / predict; summary() before the model is built, and model.build();
from_logits=True on a softmax or sigmoid output; get_slot for a missing slot; optimizer configs
that round-trip; the command line's help and its quiet stderr; the README's first example.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import numbanet as nb
from numbanet import optimizers as O
from numbanet.layers import Dense

OPTIMIZERS = [O.SGD, O.Adam, O.Adagrad, O.RMSprop, O.Adadelta]


def _raises(exc_type, call, *fragments):
    """Run ``call``; it must raise ``exc_type`` whose message contains every fragment (literal text)."""
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in message {message!r}"
    return message


# ------------------------------------------------------------------------------------------------
# optimizer hyperparameters: a string or a bool is a TypeError naming the optimizer and argument

NUMERIC_HYPER = {
    O.SGD: ["learning_rate", "momentum"],
    O.Adam: ["learning_rate", "beta_1", "beta_2", "epsilon"],
    O.Adagrad: ["learning_rate", "initial_accumulator_value", "epsilon"],
    O.RMSprop: ["learning_rate", "rho", "momentum", "epsilon"],
    O.Adadelta: ["learning_rate", "rho", "epsilon"],
}
FLAG_HYPER = {O.SGD: ["nesterov"], O.Adam: ["amsgrad"], O.RMSprop: ["centered"]}


@pytest.mark.parametrize("cls,arg", [(c, a) for c, args in NUMERIC_HYPER.items() for a in args]
                         + [(c, a) for c in OPTIMIZERS for a in ("clipnorm", "clipvalue", "global_clipnorm")])
def test_optimizer_string_hyperparameter_is_a_type_error_that_says_drop_the_quotes(cls, arg):
    name = cls.__name__
    _raises(TypeError, lambda: cls(**{arg: "0.5"}),
            f"{name}: {arg} must be a number, got the str '0.5'", f"write {arg}=0.5, without quotes")
    _raises(TypeError, lambda: cls(**{arg: True}), f"{name}: {arg} must be a number, got the bool True")
    _raises(TypeError, lambda: cls(**{arg: [0.5]}), f"{name}: {arg} must be a number, got the list [0.5]")


def test_the_issues_example_reads_as_asked():
    message = _raises(TypeError, lambda: O.Adam(learning_rate="0.01"))
    assert message.startswith("Adam: learning_rate must be a number, got the str '0.01'")


@pytest.mark.parametrize("cls,arg", [(c, a) for c, args in FLAG_HYPER.items() for a in args])
def test_optimizer_flag_must_be_a_bool(cls, arg):
    _raises(TypeError, lambda: cls(**{arg: "True"}), f"{cls.__name__}: {arg} must be True or False, got the str 'True'")
    _raises(TypeError, lambda: cls(**{arg: 1}), f"{arg} must be True or False, got the int 1")


@pytest.mark.parametrize("cls,kwargs,text", [
    (O.SGD, dict(learning_rate=-0.1), "SGD: learning_rate must be a number > 0, got -0.1"),
    (O.Adam, dict(learning_rate=0.0), "Adam: learning_rate must be a number > 0, got 0.0"),
    (O.Adam, dict(beta_1=1.0), "Adam: beta_1 must be a number in [0, 1), got 1.0"),
    (O.Adam, dict(beta_2=-0.5), "Adam: beta_2 must be a number in [0, 1), got -0.5"),
    (O.Adam, dict(epsilon=-1e-7), "Adam: epsilon must be a number >= 0, got -1e-07"),
    (O.Adam, dict(epsilon=float("nan")), "Adam: epsilon must be a number >= 0, got nan"),
    (O.SGD, dict(momentum=1.5), "SGD: momentum must be a number in [0, 1], got 1.5"),
    (O.RMSprop, dict(rho=1.0), "RMSprop: rho must be a number in [0, 1), got 1.0"),
    (O.Adagrad, dict(initial_accumulator_value=-1), "Adagrad: initial_accumulator_value must be a number >= 0"),
    (O.Adadelta, dict(clipnorm=0), "Adadelta: clipnorm must be a number > 0, got 0"),
])
def test_optimizer_out_of_range_is_a_value_error_with_the_range(cls, kwargs, text):
    _raises(ValueError, lambda: cls(**kwargs), text)


def test_optimizer_accepts_numpy_numbers_and_a_schedule():
    assert O.Adam(learning_rate=np.float32(0.01), beta_1=np.float64(0.8)).beta_1 == 0.8
    opt = O.SGD(learning_rate=lambda step: 0.1 / (1 + step))
    assert opt.current_learning_rate() == 0.1


# ------------------------------------------------------------------------------------------------
# get_config returns every constructor argument, and from_config round-trips

# every hyperparameter away from its default, so a from_config that dropped one would step differently
NON_DEFAULT = {
    O.SGD: dict(learning_rate=0.05, momentum=0.8, nesterov=True, clipnorm=0.7, name="my_sgd"),
    O.Adam: dict(learning_rate=0.002, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True, clipvalue=0.3,
                 name="my_adam"),
    O.Adagrad: dict(learning_rate=0.03, initial_accumulator_value=0.2, epsilon=1e-6, global_clipnorm=1.5,
                    name="my_adagrad"),
    O.RMSprop: dict(learning_rate=0.004, rho=0.8, momentum=0.5, epsilon=1e-6, centered=True, clipnorm=0.9,
                    name="my_rmsprop"),
    O.Adadelta: dict(learning_rate=0.5, rho=0.9, epsilon=1e-6, clipvalue=0.2, name="my_adadelta"),
}


def _constructor_arguments(cls):
    """The keyword arguments ``cls(...)`` takes: its own signature plus the base Optimizer's."""
    names = set()
    for c in (cls, O.Optimizer):
        names |= {p.name for p in inspect.signature(c.__init__).parameters.values()
                  if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_get_config_has_every_constructor_argument_with_its_value(cls):
    kwargs = NON_DEFAULT[cls]
    config = cls(**kwargs).get_config()
    assert set(config) == _constructor_arguments(cls)
    for k, v in kwargs.items():
        assert config[k] == v, k
    defaults = cls().get_config()
    # the test's own values differ from the defaults in every argument of the class and in the rate
    own = _constructor_arguments(cls) - _constructor_arguments(O.Optimizer)
    assert all(config[k] != defaults[k] for k in own | {"learning_rate", "name"})


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_from_config_round_trips_config_and_steps(cls):
    original = cls(**NON_DEFAULT[cls])
    clone = cls.from_config(original.get_config())
    assert type(clone) is cls and clone.get_config() == original.get_config()
    rng = np.random.default_rng(3)
    start = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    w_a = [nb.Tensor(a.copy(), requires_grad=True) for a in start]
    w_b = [nb.Tensor(a.copy(), requires_grad=True) for a in start]
    for _ in range(4):
        grads = [rng.standard_normal(a.shape) for a in start]
        original.apply_gradients(zip(grads, w_a))
        clone.apply_gradients(zip([g.copy() for g in grads], w_b))
    for a, b, s in zip(w_a, w_b, start):
        assert not np.array_equal(a.data, s)              # the steps moved the weights
        np.testing.assert_array_equal(a.data, b.data)     # same operations in the same order: equal bits
        for slot in original.slot_names():
            np.testing.assert_array_equal(original.get_slot(a, slot), clone.get_slot(b, slot))


def test_get_config_of_a_default_optimizer_is_keras_defaults():
    # Keras 3's defaults, written out here (API.md): a changed default would show
    assert O.Adam().get_config() == dict(name="adam", learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                                         epsilon=1e-7, amsgrad=False, weight_decay=None, clipnorm=None,
                                         clipvalue=None, global_clipnorm=None)
    assert O.SGD().get_config()["momentum"] == 0.0 and O.SGD().get_config()["nesterov"] is False
    assert O.Adadelta().get_config()["rho"] == 0.95


# ------------------------------------------------------------------------------------------------
# get_slot for a missing slot names the valid ones

def _stepped(opt, shape=(2, 3)):
    w = nb.Tensor(np.ones(shape), requires_grad=True, name="dense/kernel")
    opt.apply_gradients([(np.full(shape, 0.5), w)])
    return w


@pytest.mark.parametrize("opt,valid", [
    (O.SGD(momentum=0.9), ["'momentum'"]),
    (O.Adam(), ["'m'", "'v'"]),
    (O.Adam(amsgrad=True), ["'m'", "'v'", "'v_hat'"]),
    (O.Adagrad(), ["'accumulator'"]),
    (O.RMSprop(momentum=0.5, centered=True), ["'velocity'", "'momentum'", "'average_gradient'"]),
    (O.Adadelta(), ["'accumulated_grad'", "'accumulated_delta_var'"]),
])
def test_get_slot_missing_name_lists_the_valid_names(opt, valid):
    w = _stepped(opt)
    message = _raises(KeyError, lambda: opt.get_slot(w, "nope"),
                      f"{type(opt).__name__}: no slot 'nope'; this optimizer's slots are: ", *valid)
    assert not message.startswith(("'", '"'))          # read as a sentence, not a quoted key
    for name in opt.slot_names():                      # every listed name works
        assert opt.get_slot(w, name).shape == w.shape


def test_get_slot_says_when_a_setting_would_create_the_slot():
    opt = O.SGD()
    w = _stepped(opt)
    _raises(KeyError, lambda: opt.get_slot(w, "momentum"),
            "SGD: no slot 'momentum'", "slots are: none", "only with momentum > 0")
    opt = O.Adam()
    w = _stepped(opt)
    _raises(KeyError, lambda: opt.get_slot(w, "momentum"), "slots are: 'm', 'v'")
    _raises(KeyError, lambda: opt.get_slot(w, "v_hat"), "only with amsgrad=True")
    opt = O.RMSprop()
    _raises(KeyError, lambda: opt.get_slot(_stepped(opt), "average_gradient"), "only with centered=True")


def test_get_slot_before_the_first_step_says_when_slots_appear():
    opt = O.Adam()
    w = nb.Tensor(np.ones(3), requires_grad=True, name="dense/bias")
    _raises(KeyError, lambda: opt.get_slot(w, "m"), "no slots yet for weight 'dense/bias'", "first step")


def test_get_slot_values_are_the_update_state():
    # SGD momentum after one step from m = 0: m = -lr * g  (written out, not read from the optimizer)
    opt = O.SGD(learning_rate=0.1, momentum=0.9)
    w = _stepped(opt)
    np.testing.assert_array_equal(opt.get_slot(w, "momentum"), np.full((2, 3), -0.1 * 0.5))


# ------------------------------------------------------------------------------------------------
# the scalar arguments of fit / evaluate / predict

def _small_model():
    nb.utils.set_random_seed(0)
    model = nb.Sequential([Dense(4, activation="tanh", input_shape=(1,)), Dense(1)], name="net")
    model.compile(optimizer="sgd", loss="mse")
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(-1, 1)
    return model, x, x ** 2


STRING_ARGS = [("fit", "epochs", "5", "must be an integer, got the str '5'; write epochs=5, without quotes"),
               ("fit", "batch_size", "32", "must be an integer, got the str '32'; write batch_size=32, without quotes"),
               ("fit", "verbose", "1", "must be 0, 1, 2 or 'auto', got the str '1'; write verbose=1, without quotes"),
               ("fit", "validation_split", "0.2",
                "must be a number, got the str '0.2'; write validation_split=0.2, without quotes"),
               ("fit", "initial_epoch", "1", "must be an integer, got the str '1'"),
               ("fit", "shuffle", "True", "must be True or False, got the str 'True'"),
               ("evaluate", "batch_size", "8", "must be an integer, got the str '8'"),
               ("evaluate", "verbose", "0", "must be 0, 1, 2 or 'auto', got the str '0'"),
               ("predict", "batch_size", "8", "must be an integer, got the str '8'"),
               ("predict", "verbose", "two", "must be 0, 1, 2 or 'auto', got the str 'two'")]


@pytest.mark.parametrize("method,arg,value,text", STRING_ARGS)
def test_string_scalar_argument_is_a_type_error_naming_it(method, arg, value, text):
    model, x, y = _small_model()
    before = model.get_weights()
    args = (x,) if method == "predict" else (x, y)
    kwargs = {"verbose": 0, arg: value}
    _raises(TypeError, lambda: getattr(model, method)(*args, **kwargs), f"net.{method}: {arg} {text}")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,exc,text", [
    (dict(epochs=True), TypeError, "net.fit: epochs must be an integer, got the bool True"),
    (dict(batch_size=False), TypeError, "net.fit: batch_size must be an integer, got the bool False"),
    (dict(epochs=5.0), TypeError, "net.fit: epochs must be an integer, got the float 5.0; write epochs=5"),
    (dict(batch_size=4.5), TypeError, "net.fit: batch_size must be an integer, got the float 4.5"),
    (dict(validation_split=True), TypeError, "net.fit: validation_split must be a number, got the bool True"),
    (dict(batch_size=0), ValueError, "net.fit: batch_size must be a positive integer, got 0"),
    (dict(batch_size=-4), ValueError, "net.fit: batch_size must be a positive integer, got -4"),
    (dict(epochs=-1), ValueError, "net.fit: epochs must be an integer >= 0, got -1"),
    (dict(initial_epoch=-2), ValueError, "net.fit: initial_epoch must be an integer >= 0, got -2"),
    (dict(validation_split=1.0), ValueError, "net.fit: validation_split must be a number in [0, 1), got 1.0"),
    (dict(validation_split=-0.1), ValueError, "net.fit: validation_split must be a number in [0, 1), got -0.1"),
    (dict(verbose=3), ValueError, "net.fit: verbose must be 0, 1, 2 or 'auto', got 3"),
    (dict(verbose=1.0), TypeError, "net.fit: verbose must be an integer, got the float 1.0"),
    (dict(shuffle=1), TypeError, "net.fit: shuffle must be True or False, got the int 1"),
])
def test_fit_bad_scalar_arguments(kwargs, exc, text):
    model, x, y = _small_model()
    before = model.get_weights()
    _raises(exc, lambda: model.fit(x, y, **{"verbose": 0, **kwargs}), text)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_and_predict_bad_batch_size():
    model, x, y = _small_model()
    _raises(ValueError, lambda: model.evaluate(x, y, batch_size=0),
            "net.evaluate: batch_size must be a positive integer")
    _raises(ValueError, lambda: model.predict(x, batch_size=-1), "net.predict: batch_size must be a positive integer")
    _raises(ValueError, lambda: model.evaluate(x, y, verbose=-1), "net.evaluate: verbose must be 0, 1, 2 or 'auto'")


def test_zero_epochs_trains_nothing_as_keras_does():
    model, x, y = _small_model()
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_accepted_scalar_forms(capsys):
    model, x, y = _small_model()
    h = model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(4), validation_split=np.float32(0.25),
                  shuffle=np.bool_(False), verbose=False)
    assert len(h.history["loss"]) == 2 and len(h.history["val_loss"]) == 2
    assert capsys.readouterr().out == ""                  # verbose=False is 0
    model.fit(x, y, epochs=1, batch_size=None, verbose="auto")
    assert "Epoch 1/1" in capsys.readouterr().out          # "auto" is 1: the progress bar
    assert model.predict(x, batch_size=None, verbose="auto").shape == (12, 1)


# ------------------------------------------------------------------------------------------------
# summary() before the model is built; model.build(input_shape)

class _Subclassed(nb.Model):
    def __init__(self):
        super().__init__()
        self.hidden = Dense(4, activation="tanh")
        self.out = Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def _summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


@pytest.mark.parametrize("make", [lambda: nb.Sequential([Dense(4), Dense(2)], name="unbuilt"),
                                  lambda: _Subclassed()])
def test_summary_before_build_is_a_value_error_naming_the_fixes(make):
    model = make()
    message = _raises(ValueError, lambda: model.summary(print_fn=lambda line: None),
                      f"{model.name}: summary() needs the model built", "model.build((None, 1))",
                      "input_shape=(1,)", "Input(shape=(1,))", "model(x[:1])")
    assert "?" not in message


@pytest.mark.parametrize("make", [lambda: nb.Sequential([Dense(4, activation="tanh"), Dense(2)]),
                                  lambda: _Subclassed()])
def test_build_then_summary_shows_shapes_and_counts(make):
    model = make()
    model.build((None, 3))
    assert model.built and model.output_shape == (None, 2)
    assert [w.shape for w in model.weights] == [(3, 4), (4,), (4, 2), (2,)]
    text = _summary_text(model)
    assert "(None, 4)" in text and "(None, 2)" in text
    assert f"Total params: {3 * 4 + 4 + 4 * 2 + 2}" in text
    # the built model computes with the weights build made: tanh(x W1 + b1) W2 + b2, in NumPy
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    W1, b1, W2, b2 = model.get_weights()
    expected = np.tanh(x.astype(np.float64) @ W1 + b1) @ W2 + b2
    # float32: each output sums 4 products after 3 inside tanh; 1e-5 covers a few ulps of values near 1
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-5)


def test_build_errors_name_the_argument():
    model = nb.Sequential([Dense(2)], name="seq")
    _raises(ValueError, lambda: model.build(), "seq.build: needs the input shape", "model.build((None, 1))")
    _raises(TypeError, lambda: model.build(3), "seq.build: input_shape must be a tuple", "got 3")
    _raises(ValueError, lambda: model.build((None, "3")), "input_shape sizes must be positive integers or None",
            "got '3' at position 1")
    _raises(ValueError, lambda: model.build((None, 0)), "got 0 at position 1")
    assert not model.built
    _raises(ValueError, lambda: _Subclassed().build(), "build: needs the input shape")


def test_sequential_build_uses_the_declared_shape():
    model = nb.Sequential([nb.Input((3,)), Dense(2)])
    model.build()
    assert model.output_shape == (None, 2)


# ------------------------------------------------------------------------------------------------
# from_logits=True on a softmax or sigmoid output warns once

def _classifier(last, loss, n_classes=3):
    nb.utils.set_random_seed(1)
    layers = [Dense(5, activation="tanh", input_shape=(4,))] + last
    model = nb.Sequential(layers)
    model.compile(optimizer="sgd", loss=loss)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    labels = rng.integers(0, n_classes, 40)
    return model, x, labels


def _fit_warnings(model, x, y, epochs=2):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")          # count every warning raised, not Python's once-per-line
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)   # 5 batches an epoch
    return [w for w in caught if "from_logits" in str(w.message)]


L = nb.losses


@pytest.mark.parametrize("last,loss,target,made_by", [
    ([Dense(3, activation="softmax")], L.CategoricalCrossentropy(from_logits=True), "onehot", "softmax"),
    ([Dense(3), nb.layers.Activation("softmax")], L.CategoricalCrossentropy(from_logits=True), "onehot", "softmax"),
    ([Dense(3, activation="softmax")], L.SparseCategoricalCrossentropy(from_logits=True), "labels", "softmax"),
    ([Dense(1, activation="sigmoid")], L.BinaryCrossentropy(from_logits=True), "binary", "sigmoid"),
    ([Dense(1), nb.layers.Activation("sigmoid")], L.BinaryCrossentropy(from_logits=True), "binary", "sigmoid"),
])
def test_probabilities_with_from_logits_warn_once(last, loss, target, made_by):
    model, x, labels = _classifier(last, loss)
    y = {"onehot": np.eye(3, dtype=np.float32)[labels], "labels": labels,
         "binary": (labels % 2).astype(np.float32).reshape(-1, 1)}[target]
    caught = _fit_warnings(model, x, y)
    assert len(caught) == 1                                    # 10 batches, one warning
    assert caught[0].category is UserWarning
    message = str(caught[0].message)
    name = type(loss).__name__
    for fragment in (f"{name} received from_logits=True", f"output of a {made_by} activation",
                     f"{name}(from_logits=False)", f"remove the {made_by}"):
        assert fragment in message, (fragment, message)
    assert _fit_warnings(model, x, y) == []                    # the same loss: said once
    model.compile(optimizer="sgd", loss=type(loss)(from_logits=True))
    assert len(_fit_warnings(model, x, y, epochs=1)) == 1      # a new loss object says it again


@pytest.mark.parametrize("last,loss", [
    ([Dense(3)], L.CategoricalCrossentropy(from_logits=True)),              # logits: the right use
    ([Dense(3, activation="softmax")], L.CategoricalCrossentropy()),        # probabilities, from_logits=False
    ([Dense(3, activation="tanh")], L.CategoricalCrossentropy(from_logits=True)),
    ([Dense(3, activation="relu")], L.SparseCategoricalCrossentropy(from_logits=True)),
])
def test_no_warning_for_logits_or_from_logits_false(last, loss):
    model, x, labels = _classifier(last, loss)
    y = labels if isinstance(loss, L.SparseCategoricalCrossentropy) else np.eye(3, dtype=np.float32)[labels]
    assert _fit_warnings(model, x, y) == []


def test_from_logits_must_be_a_bool():
    _raises(TypeError, lambda: L.BinaryCrossentropy(from_logits="True"),
            "BinaryCrossentropy: from_logits must be True or False, got the str 'True'")


# ------------------------------------------------------------------------------------------------
# the command line: help for every demo, a quiet stderr unless -v

from numbanet import cli                                    # noqa: E402
from numbanet.demos import DEMOS                            # noqa: E402

# each demo's options, written out here (a demo that loses or renames one should fail this test)
DEMO_OPTIONS = {
    "sine": ["--epochs", "--learning-rate", "--momentum", "--seed", "--verbose", "--out"],
    "iris": ["--epochs", "--seed", "--learning-rate", "--patience", "--verbose", "--out"],
    "cnn": ["--epochs", "--batch-size", "--learning-rate", "--data", "--limit", "--seed", "--verbose", "--out"],
    "autoencoder": ["--decoder", "--epochs", "--limit", "--batch-size", "--learning-rate", "--data", "--seed",
                    "--verbose", "--out"],
    "lyrics": ["--corpus", "--epochs", "--patience", "--vocab", "--embed-dim", "--units", "--seq-len", "--dropout",
               "--batch-size", "--learning-rate", "--clipnorm", "--validation-split", "--seeds", "--temperature",
               "--seed", "--verbose", "--out"],
    "optimizers": ["--steps", "--out"],
    "init": ["--layers", "--units", "--samples", "--seed", "--out"],
    "textcnn": ["--epochs", "--vocab", "--embed-dim", "--filters", "--kernel-size", "--seq-len", "--batch-size",
                "--learning-rate", "--test-split", "--seed", "--verbose", "--out"],
    "batchnorm": ["--layers", "--units", "--activation", "--epochs", "--learning-rate", "--batch-size", "--samples",
                  "--seed", "--verbose", "--out"],
}


def test_every_demo_is_listed_with_its_options():
    assert set(DEMO_OPTIONS) == set(DEMOS)


@pytest.mark.parametrize("name", sorted(DEMO_OPTIONS))
def test_demo_name_help_lists_its_options_with_help_texts(name, capsys):
    assert cli.main(["demo", name, "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    assert out.startswith(f"usage: numbanet demo {name}")
    for option in DEMO_OPTIONS[name]:
        # the option's own line in the options list, followed by a help text (on that line or the next)
        match = re.search(rf"^  {re.escape(option)}( [A-Z_{{}},0-9]+)?(?P<help>.*)\n(?P<next>.*)", out, re.M)
        assert match, (option, out)
        help_text = match["help"].strip() or match["next"].strip()
        assert len(help_text) > 10, (option, help_text)
    # the demo's own parser (python -m numbanet.demos.NAME) takes the same options
    module = __import__(DEMOS[name], fromlist=["main"])
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    own = capsys.readouterr().out
    for option in DEMO_OPTIONS[name]:
        assert option in own


def test_demo_help_lists_the_demos(capsys):
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "numbanet demo NAME --help" in out
    for name in DEMOS:
        assert re.search(rf"^    {name}\b", out, re.M), name
    assert "Dense 1-10-10-1" in out                          # the sine demo's one-line summary


def test_top_level_help_names_the_commands_and_verbose(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "bench" in out and "-v, --verbose" in out and "BLAS" in out


@pytest.mark.parametrize("argv,text", [(["demo", "nope"], "invalid choice: 'nope'"),
                                       (["demo", "sine", "--bogus"], "unrecognized arguments: --bogus"),
                                       (["demo", "sine", "--epochs", "five"], "invalid int value: 'five'"),
                                       (["train"], "invalid choice: 'train'")])
def test_command_line_mistakes_are_usage_errors(argv, text, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert text in captured.err and "usage: numbanet" in captured.err


def _run_command(args, tmp_path):
    """``python -m numbanet.cli ARGS`` in a fresh process running this checkout's numbanet."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "NUMBANET_KEEP_BLAS"}   # let the command restart itself
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "numbanet.cli", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)


def test_a_run_is_quiet_on_stderr_unless_verbose(tmp_path):
    args = ["demo", "iris", "--epochs", "1", "--verbose", "0", "--out", str(tmp_path)]
    quiet = _run_command(args, tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "test accuracy" in quiet.stdout
    assert quiet.stderr == ""
    loud = _run_command(["-v"] + args, tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert re.search(r"^numbanet: \d+ threads for batch-split operations; BLAS: ", loud.stderr, re.M), loud.stderr
    assert "OPENBLAS_CORETYPE=" in loud.stderr


# ------------------------------------------------------------------------------------------------
# the README's first example shuffles before validation_split

def _readme_example():
    """The first ```python block of the README's "Using it" section, exactly as written."""
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _run_example(code, capsys):
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    match = re.search(r"loss (\S+), val_loss (\S+)", out)
    assert match, out
    return float(match[1]), float(match[2])


def test_readme_example_validates_on_shuffled_data(capsys):
    code = _readme_example()
    shuffle = "x, y = x[order], y[order]"
    assert shuffle in code and "validation_split=0.2" in code
    loss, val_loss = _run_example(code, capsys)
    # sin(x) has variance about 0.5 on [0, 10): a fit brings both well under a tenth of it, and a
    # validation set drawn from the same range scores like the training set, not 100x worse
    assert loss < 0.05 and val_loss < 0.05, (loss, val_loss)
    assert val_loss < 10 * loss, (loss, val_loss)
    # the same code without the shuffle validates on [8, 10) only: extrapolation, far worse than the fit
    loss_sorted, val_sorted = _run_example(code.replace(shuffle, "pass"), capsys)
    assert val_sorted > 10 * loss_sorted and val_sorted > 0.1, (loss_sorted, val_sorted)


def test_unavailable_demo_says_why_and_stops(monkeypatch, capsys):
    monkeypatch.setitem(cli.DEMOS, "broken", "numbanet.demos.no_such_demo")
    assert cli.main(["demo", "broken", "--epochs", "1"]) == 2         # stops before any restart or thread setup
    err = capsys.readouterr().err
    assert "numbanet demo broken: (unavailable: No module named 'numbanet.demos.no_such_demo')" in err


def test_thread_report_is_silent_unless_verbose_or_blas_missing(monkeypatch, capsys):
    from numbanet.fast import parallel

    class FakeBlas:
        internal_api, version, num_threads = "openblas", "0.3.0", 1

        def info(self):
            return {"architecture": "Haswell"}

    monkeypatch.setattr(parallel, "blas_controllers", lambda: [FakeBlas()])
    cli._report_threads(2, verbose=False)
    assert capsys.readouterr().err == ""
    cli._report_threads(2, verbose=True)
    assert "numbanet: 2 threads for batch-split operations; BLAS: openblas 0.3.0 (Haswell kernels), 1 threads" \
        in capsys.readouterr().err
    monkeypatch.setattr(parallel, "blas_controllers", lambda: [])
    cli._report_threads(1, verbose=False)
    assert capsys.readouterr().err == ""                  # one thread: nothing to limit
    cli._report_threads(2, verbose=False)
    assert "no BLAS library found through threadpoolctl" in capsys.readouterr().err


def test_options_alone_print_the_help(capsys):
    assert cli.main(["-v"]) == 0
    assert "usage: numbanet" in capsys.readouterr().out
