"""Keras names numbanet lacks: the errors say so and name the nearest equivalent; typos get close matches.

Which names are missing is computed here at test time from the modules themselves,
so an entry of the tables that numbanet has since gained (LSTM, ...) is checked to
stop firing instead of being asserted missing.
"""
import functools

import pytest

import numbanet as nb
from numbanet import activations, initializers, keras_names, losses, optimizers
from numbanet.keras_names import KerasNameError

MODULES = {"numbanet.layers": nb.layers, "numbanet.optimizers": nb.optimizers}
GETTERS = {"activation": activations.get, "initializer": initializers.get, "loss": losses.get,
           "optimizer": optimizers.get}
TABLES_OF_GET = {"activation": activations._BY_NAME, "initializer": initializers._BY_NAME,
                 "loss": losses._BY_NAME, "optimizer": optimizers._BY_NAME}

ATTRIBUTE_ENTRIES = [(m, name) for m, table in keras_names.MODULE_TABLES.items() for name in table]
STRING_ENTRIES = [(kind, name) for kind, table in keras_names.STRINGS.items() for name in table]


def _resolve(path):
    """``nb.<path>``, e.g. "layers.SimpleRNN" -> the class (AttributeError if it does not exist)."""
    return functools.reduce(getattr, path.split("."), nb)


@pytest.mark.parametrize("module_name, name", ATTRIBUTE_ENTRIES)
def test_a_missing_keras_attribute_says_so_and_names_the_nearest(module_name, name):
    module = MODULES[module_name]
    nearest, note = keras_names.MODULE_TABLES[module_name][name]
    if name in vars(module):                      # numbanet has it now: the entry must not fire
        assert getattr(module, name) is vars(module)[name]
        assert keras_names.explain_attribute(module_name, name) is None
        return
    assert not hasattr(module, name)
    with pytest.raises(KerasNameError) as info:
        getattr(module, name)
    assert isinstance(info.value, AttributeError)
    text = str(info.value)
    assert text.startswith(f"{module_name} has no {name} (Keras has it); ")
    assert note in text
    if nearest is None:
        assert "numbanet has no equivalent yet" in text
    else:
        assert f"nearest in numbanet: nb.{nearest} (" in text


@pytest.mark.parametrize("module_name, name", ATTRIBUTE_ENTRIES)
def test_every_attribute_entry_is_a_keras_name_and_its_nearest_exists(keras, module_name, name):
    keras_module = {"numbanet.layers": keras.layers, "numbanet.optimizers": keras.optimizers}[module_name]
    assert hasattr(keras_module, name), f"{name} is not in keras.{module_name.split('.')[1]}"
    nearest, _ = keras_names.MODULE_TABLES[module_name][name]
    if nearest is not None:
        _resolve(nearest)                         # raises if the named equivalent does not exist


@pytest.mark.parametrize("kind, name", STRING_ENTRIES)
def test_a_missing_keras_string_name_says_so_and_names_the_nearest(keras, kind, name):
    keras_get = {"activation": keras.activations.get, "initializer": keras.initializers.get,
                 "loss": keras.losses.get, "optimizer": keras.optimizers.get}[kind]
    assert keras_get(name) is not None                        # Keras accepts the name
    nearest, note = keras_names.STRINGS[kind][name]
    GETTERS[kind](nearest)                                    # numbanet accepts the equivalent
    if name in TABLES_OF_GET[kind]:                           # numbanet has it now: no error at all
        GETTERS[kind](name)
        return
    with pytest.raises(ValueError) as info:
        GETTERS[kind](name)
    text = str(info.value)
    assert text.startswith(f"unknown {kind} {name!r}; valid names: ")
    assert f"Keras has {name!r} and numbanet does not yet; nearest in numbanet: {nearest!r} ({note})" in text


def test_the_names_the_issue_lists_are_covered():
    for name in ["LSTM", "GRU", "BatchNormalization", "Conv1D", "GlobalAveragePooling2D", "LayerNormalization",
                 "AveragePooling2D", "Conv3D", "TimeDistributed"]:
        assert name in keras_names.LAYERS or name in vars(nb.layers), name
    for name in ["Nadam", "AdamW", "Adamax", "Ftrl", "Lion"]:
        assert name in keras_names.OPTIMIZERS or name in vars(nb.optimizers), name
    for name in ["nadam", "adamw", "adamax", "ftrl", "lion"]:
        assert name in keras_names.STRINGS["optimizer"] or name in optimizers._BY_NAME, name


def test_no_entry_names_something_numbanet_has():
    """The tables list only what is missing: an entry for a name numbanet has gained is stale."""
    for module, table in [(nb.layers, keras_names.LAYERS), (nb.optimizers, keras_names.OPTIMIZERS)]:
        assert not [n for n in table if n in vars(module)], module.__name__
    getters = {"optimizer": optimizers.get, "activation": activations.get, "loss": nb.losses.get,
               "initializer": nb.initializers.get}
    for kind, table in keras_names.STRINGS.items():
        for name in table:
            with pytest.raises(ValueError):
                getters[kind](name)


def test_an_entry_stops_firing_once_numbanet_has_the_name(monkeypatch):
    """The real lookup comes first: a table name that exists is returned, never reported missing."""
    monkeypatch.setattr(nb.layers, "BatchNormalization", nb.layers.Dropout, raising=False)
    assert nb.layers.BatchNormalization is nb.layers.Dropout
    assert keras_names.explain_attribute("numbanet.layers", "BatchNormalization") is None
    monkeypatch.setitem(activations._BY_NAME, "gelu", activations.relu)
    assert activations.get("gelu") is activations.relu
    monkeypatch.setitem(optimizers._BY_NAME, "nadam", optimizers.Adam)
    assert isinstance(optimizers.get("Nadam"), optimizers.Adam)


@pytest.mark.parametrize("module, typo, suggestion", [
    (nb.layers, "Dence", "Dense"), (nb.layers, "dense", "Dense"), (nb.layers, "SimpleRnn", "SimpleRNN"),
    (nb.layers, "Conv2d", "Conv2D"), (nb.layers, "MaxPooling2d", "MaxPooling2D"),
    (nb.optimizers, "Adma", "Adam"), (nb.optimizers, "sgd", "SGD"), (nb.optimizers, "RMSProp", "RMSprop"),
])
def test_a_typo_gets_did_you_mean(module, typo, suggestion):
    with pytest.raises(KerasNameError, match=rf"{module.__name__} has no {typo}; did you mean .*\b{suggestion}\b"):
        getattr(module, typo)
    assert not hasattr(module, typo)


def test_a_name_nothing_like_any_gets_the_plain_error():
    for module in MODULES.values():
        with pytest.raises(AttributeError, match=f"module '{module.__name__}' has no attribute 'Qzxwv'") as info:
            module.Qzxwv
        assert type(info.value) is AttributeError
    with pytest.raises(AttributeError) as info:   # Python's own probes are never answered with a hint
        nb.layers.__wrapped__
    assert type(info.value) is AttributeError
    assert not hasattr(nb.layers, "__path_hooks__")


@pytest.mark.parametrize("kind, typo, suggestion", [
    ("activation", "rellu", "relu"), ("activation", "sigmoide", "sigmoid"), ("loss", "mse_", "mse"),
    ("initializer", "glorot_unifrom", "glorot_uniform"), ("optimizer", "adamm", "adam"),
])
def test_a_typo_in_a_string_name_gets_did_you_mean(kind, typo, suggestion):
    with pytest.raises(ValueError, match=rf"unknown {kind} {typo!r}; valid names: .*; did you mean .*'{suggestion}'"):
        GETTERS[kind](typo)


def test_string_names_still_work_in_any_case_and_compile_reports_the_hint():
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    model = nb.Sequential([nb.layers.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="Keras has 'lion'.*nearest in numbanet: 'adam'"):
        model.compile(optimizer="lion", loss="mse")
    with pytest.raises(ValueError, match="Keras has 'huber'.*nearest in numbanet: 'mse'"):
        model.compile(optimizer="adam", loss="huber")
    with pytest.raises(ValueError, match="Keras has 'mish'.*nearest in numbanet: 'swish'"):
        nb.layers.Dense(3, activation="mish")(nb.Tensor([[1.0, 2.0]]))
