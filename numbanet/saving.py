"""Whole-model saving: the registry of serializable classes, and ``load_model``.

``model.save("m.numbanet")`` writes a model's configuration, weights, compile
settings and optimizer state; ``nb.saving.load_model(path)`` (also
``nb.models.load_model``) rebuilds it from the configuration alone, so every
object in it must be rebuilt from its class name and ``get_config()`` dict:

    serialize(obj)    -> {"class_name": "Dense", "registered_name": None, "config": obj.get_config()}
    deserialize(d)    -> the class found for d, then ``cls.from_config(d["config"])``
                         (``cls(**config)`` where the class has no ``from_config``)

A class is found, in this order, in ``custom_objects=`` (by registered name or
class name), among the classes registered with ``@register_serializable()``
(by ``"package>name"``), and among numbanet's own layers, models, optimizers,
losses, initializers, schedules and regularizers (by class name). A user's
layer, loss, function or subclassed Model is saved by its registered name, as
Keras 3 does with ``keras.saving.register_keras_serializable``::

    @nb.saving.register_serializable(package="my_models")
    class Residual(nb.layers.Layer):
        def __init__(self, units, **kwargs): ...
        def get_config(self): return {**super().get_config(), "units": self.units}

Inside a config, an object that has ``get_config`` (an Initializer instance, a
schedule) is written as ``{"__object__": kind, "class_name", "config"}`` and a
function (a custom activation or loss) as ``{"__function__": registered name}``.
"""
from __future__ import annotations

import inspect

import numpy as np

_REGISTERED: dict = {}      # "package>name" -> class or function
_NAMES: dict = {}           # the class or function -> "package>name"


def register_serializable(package="Custom", name=None):
    """Decorator: register a class or function under ``"package>name"`` (``name``: its ``__name__``).

    A registered class must have ``get_config()``; saving writes its registered name, and
    loading finds the class by it without ``custom_objects``.
    """
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_serializable: package must be a str without '>', got {package!r}")

    def decorator(obj):
        key = f"{package}>{name or obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(f"register_serializable: cannot register the class {obj.__name__}, which has no "
                             f"get_config() method returning its constructor arguments")
        _REGISTERED[key] = obj
        _NAMES[obj] = key
        return obj
    return decorator


register_keras_serializable = register_serializable   # Keras 3's name for it


def get_registered_name(obj):
    """``"package>name"`` for a registered class or function, else its ``__name__``."""
    return _NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def get_registered_object(name, custom_objects=None):
    """The class or function saved as ``name``: from ``custom_objects``, then the registry; else None."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _REGISTERED.get(name)


# ------------------------------------------------------------ numbanet's classes
def _classes(module, base):
    return {k: v for k, v in vars(module).items() if inspect.isclass(v) and issubclass(v, base)}


def builtin_classes(kind):
    """numbanet's own classes of ``kind`` by class name: "layer", "model", "optimizer", "loss",
    "initializer", "schedule", "regularizer" (the last two where those modules exist)."""
    import importlib
    from . import initializers, layers, losses, models, optimizers
    if kind == "layer":
        return _classes(layers, layers.Layer)
    if kind == "model":
        return {"Sequential": models.Sequential, "Model": models.Model, "Functional": models.Model}
    if kind == "optimizer":
        return _classes(optimizers, optimizers.Optimizer)
    if kind == "loss":
        return _classes(losses, losses.Loss)
    if kind == "initializer":
        return _classes(initializers, initializers.Initializer)
    if kind in ("schedule", "regularizer"):
        try:
            module = importlib.import_module(f"numbanet.{kind}s")
        except ImportError:
            return {}
        return {k: v for k, v in vars(module).items() if inspect.isclass(v) and hasattr(v, "get_config")}
    return {}


def find_class(kind, class_name, registered_name=None, custom_objects=None, where=""):
    """The class saved as ``registered_name`` / ``class_name``, or a ValueError that says how to provide it."""
    for key in (registered_name, class_name):
        if key is not None:
            found = get_registered_object(key, custom_objects)
            if found is not None:
                return found
    found = builtin_classes(kind).get(class_name)
    if found is not None:
        return found
    shown = registered_name or class_name
    raise ValueError(f"{where}unknown {kind} class {shown!r}: numbanet has no {kind} of that name and none is "
                     f"registered; decorate the class with @nb.saving.register_serializable() before loading, "
                     f"or pass custom_objects={{{shown!r}: {class_name}}}")


# ------------------------------------------------------------- configs as JSON
_KINDS = (("layer", "numbanet.layers.base", "Layer"), ("initializer", "numbanet.initializers", "Initializer"),
          ("schedule", "numbanet.schedules", "LearningRateSchedule"),
          ("regularizer", "numbanet.regularizers", "Regularizer"))


def _kind_of(obj):
    import sys
    for kind, module, base in _KINDS:
        cls = getattr(sys.modules.get(module), base, None)
        if cls is not None and isinstance(obj, cls):
            return kind
    return "object"


def serialize(obj, where=""):
    """``{"class_name", "registered_name", "config"}`` for an object with ``get_config()``."""
    if not hasattr(obj, "get_config"):
        raise TypeError(f"{where}cannot save {obj!r}: it has no get_config() returning its constructor arguments")
    registered = _NAMES.get(type(obj))
    return {"class_name": type(obj).__name__, "registered_name": registered,
            "config": to_json(obj.get_config(), where or f"{type(obj).__name__}: ")}


def to_json(value, where=""):
    """``value`` with tuples as lists, NumPy scalars as Python numbers, objects and functions tagged."""
    if isinstance(value, dict):
        return {str(k): to_json(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype):
        return value.name
    if hasattr(value, "get_config") and not inspect.isclass(value):
        return {"__object__": _kind_of(value), **serialize(value, where)}
    if callable(value):
        name = _NAMES.get(value)
        if name is None:
            raise TypeError(f"{where}cannot save the function {getattr(value, '__name__', value)!r}: register it "
                            f"with @nb.saving.register_serializable() so that loading can find it")
        return {"__function__": name}
    raise TypeError(f"{where}cannot save a value of type {type(value).__name__} ({value!r}) in a config")


def from_json(value, custom_objects=None, where=""):
    """The inverse of ``to_json``: tagged objects rebuilt, tagged functions looked up (lists stay lists)."""
    if isinstance(value, list):
        return [from_json(v, custom_objects, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__function__" in value:
        fn = get_registered_object(value["__function__"], custom_objects)
        if fn is None:
            raise ValueError(f"{where}unknown function {value['__function__']!r}: register it with "
                             f"@nb.saving.register_serializable() or pass it in custom_objects")
        return fn
    if "__object__" in value:
        return deserialize(value, value["__object__"], custom_objects, where)
    return {k: from_json(v, custom_objects, where) for k, v in value.items()}


def deserialize(entry, kind, custom_objects=None, where=""):
    """The object ``serialize`` described: its class (see ``find_class``) built from its config."""
    cls = find_class(kind, entry["class_name"], entry.get("registered_name"), custom_objects, where)
    config = from_json(entry.get("config") or {}, custom_objects, where)
    from_config = getattr(cls, "from_config", None)
    return from_config(config) if from_config is not None else cls(**config)


def load_model(filepath, custom_objects=None, compile=True):
    """The model saved at ``filepath``: a numbanet file (``model.save("m.numbanet")``) or a Keras 3
    ``.keras`` file. ``custom_objects`` maps saved names to user classes and functions;
    ``compile=False`` skips the compile settings (and the optimizer state)."""
    from .models.saving import load_model as load
    return load(filepath, custom_objects=custom_objects, compile=compile)
