"""A model as a JSON-able configuration, and the model rebuilt from it (no weights here).

Three forms, as Keras 3 has them:

* Sequential: ``{"class_name": "Sequential", "config": {"name", "layers": [layer entries],
  "input": {"shape", "batch_size", "dtype", "name"} or None, "build_input_shape"}}``;
* functional: ``{"class_name": "Functional", "config": {"name", "layers": [layer entries],
  "nodes": [{"layer", "input": [layer, node, index], "kwargs"}], "input_layers": [[name, 0, None]],
  "output_layers": [[name, node, index]], "inputs_as_list", "outputs_as_list"}}``. ``nodes``
  lists the layer calls in execution order; ``[layer, node, index]`` names the ``node``-th call
  of ``layer`` in this model and, for a layer that returns a tuple (``return_state``), which
  element (None: the whole output);
* subclassed: the class's registered name and its own ``get_config()``, plus the input shape
  it was built on (its layers are made by its ``__init__``).

A layer entry is ``nb.saving.serialize(layer)``; a model used as a layer nests its own entry.
"""
from __future__ import annotations

from .. import saving
from ..layers.base import Layer
from ..layers.core import Input, InputLayer


def _model_classes():
    from .model import Model
    from .sequential import Sequential
    return Model, Sequential


def is_functional(model):
    Model, Sequential = _model_classes()
    return isinstance(model, Model) and not isinstance(model, Sequential) and model._nodes is not None


def is_subclassed(model):
    Model, Sequential = _model_classes()
    return isinstance(model, Model) and not isinstance(model, Sequential) and model._nodes is None


# ------------------------------------------------------------------ to config
def layer_entry(layer):
    """A layer's entry: ``serialize(layer)``, or the nested model's own configuration."""
    Model, _ = _model_classes()
    if isinstance(layer, Model):
        return model_to_config(layer)
    return saving.serialize(layer, where=f"layer {layer.name!r} ({type(layer).__name__}): ")


def input_spec(sym):
    layer = sym.layer
    return {"shape": list(sym.shape[1:]), "batch_size": sym.shape[0], "dtype": layer.input_dtype.name,
            "name": layer.name}


def model_to_config(model):
    """The model's configuration (see the module docstring); a TypeError names what cannot be saved."""
    Model, Sequential = _model_classes()
    if isinstance(model, Sequential):
        declared = model._declared_input
        built = model.input_shape if model.built else None
        return {"class_name": "Sequential", "registered_name": None,
                "config": {"name": model.name, "trainable": model.trainable,
                           "layers": [layer_entry(layer) for layer in model.layers],
                           "input": None if declared is None else input_spec(declared),
                           "build_input_shape": None if built is None else list(built)}}
    if is_functional(model):
        return {"class_name": "Functional", "registered_name": None, "config": _functional_config(model)}
    return _subclassed_config(model)


def _functional_config(model):
    calls, nodes = {}, []   # (id(layer), id(its input)) -> node index of that layer in this model
    count = {}
    input_ids = {id(s) for s in model._input_symbols}

    def ref(sym):
        if id(sym) in input_ids:
            return [sym.layer.name, 0, None]
        return [sym.layer.name, calls[(id(sym.layer), id(sym.parents[0]))], sym.index]

    for layer, parents, sym in model._nodes:
        key = (id(layer), id(parents[0]))
        if key in calls:
            continue
        calls[key] = count.get(id(layer), 0)
        count[id(layer)] = calls[key] + 1
        nodes.append({"layer": layer.name, "input": ref(parents[0]),
                      "kwargs": saving.to_json(sym.kwargs, f"layer {layer.name!r} call arguments: ")})
    layers = []
    for layer in model.layers:
        if isinstance(layer, InputLayer):
            sym = next(s for s in model._input_symbols if s.layer is layer)
            layers.append({"class_name": "InputLayer", "registered_name": None, "config": input_spec(sym)})
        else:
            layers.append(layer_entry(layer))
    return {"name": model.name, "trainable": model.trainable, "layers": layers, "nodes": nodes,
            "input_layers": [ref(s) for s in model._input_symbols],
            "output_layers": [ref(s) for s in model._output_symbols],
            "inputs_as_list": isinstance(model._input_struct, (list, tuple)),
            "outputs_as_list": isinstance(model._output_struct, (list, tuple))}


def _subclassed_config(model):
    Model, _ = _model_classes()
    cls = type(model)
    own_config = any("get_config" in vars(c) for c in cls.__mro__[:cls.__mro__.index(Model)])
    if not own_config:
        raise TypeError(f"{model.name}: cannot save the subclassed model {cls.__name__}: define get_config() "
                        f"returning its constructor arguments (and from_config if they are not plain values), "
                        f"and register the class with @nb.saving.register_serializable(), as Keras 3 requires; "
                        f"or save its weights alone with save_weights()")
    if not model.built or model.input_shape is None:
        raise ValueError(f"{model.name}: call the subclassed model once (or model.build(shape)) before saving it, "
                         f"so that its weights exist")
    entry = saving.serialize(model, where=f"model {model.name!r} ({cls.__name__}): ")
    entry["build_input_shape"] = list(model.input_shape)
    return entry


# ---------------------------------------------------------------- from config
def check_classes(entry, custom_objects, where=""):
    """Find every class the configuration names before anything is built (the error names the layer)."""
    Model, Sequential = _model_classes()
    name = entry.get("config", {}).get("name") if isinstance(entry.get("config"), dict) else None
    if entry["class_name"] in ("Sequential", "Functional") and entry.get("registered_name") is None:
        for sub in entry["config"]["layers"]:
            if sub["class_name"] != "InputLayer":
                check_classes(sub, custom_objects, f"{where}model {name!r}: ")
        return
    kind = "model" if "build_input_shape" in entry else "layer"
    saving.find_class(kind, entry["class_name"], entry.get("registered_name"), custom_objects,
                      f"{where}{'layer' if kind == 'layer' else 'model'} {name!r}: ")


def model_from_config(entry, custom_objects=None):
    """The model (or layer) ``entry`` describes, built, with fresh weights."""
    Model, Sequential = _model_classes()
    cls_name, config = entry["class_name"], entry.get("config", {})
    if cls_name == "Sequential" and entry.get("registered_name") is None:
        model = Sequential(name=config["name"])
        if config.get("input"):
            model.add(_input(config["input"]))
        for sub in config["layers"]:
            model.add(model_from_config(sub, custom_objects))
        if config.get("input") is None and config.get("build_input_shape") is not None:
            model.build(tuple(config["build_input_shape"]))
        if config.get("trainable") is False:      # True would unfreeze the frozen layers (Keras's setter recurses)
            model.trainable = False
        return model
    if cls_name == "Functional" and entry.get("registered_name") is None:
        return _functional_from_config(config, custom_objects)
    if "build_input_shape" in entry:
        return _subclassed_from_config(entry, custom_objects)
    where = f"layer {config.get('name')!r}: "
    return saving.deserialize(entry, "layer", custom_objects, where)


def _input(spec):
    return Input(tuple(spec["shape"]), dtype=spec["dtype"], name=spec["name"], batch_size=spec["batch_size"])


def _functional_from_config(config, custom_objects):
    Model, _ = _model_classes()
    layers, results = {}, {}
    for sub in config["layers"]:
        if sub["class_name"] == "InputLayer" and sub.get("registered_name") is None:
            sym = _input(sub["config"])
            layers[sub["config"]["name"]] = sym.layer
            results[(sub["config"]["name"], 0)] = sym
        else:
            layer = model_from_config(sub, custom_objects)
            layers[layer.name] = layer

    def resolve(ref):
        name, node, index = ref
        out = results[(name, node)]
        return out if index is None else out[index]

    for node in config["nodes"]:
        layer = layers[node["layer"]]
        kwargs = saving.from_json(node.get("kwargs") or {}, custom_objects)
        index = sum(1 for key in results if key[0] == layer.name)
        results[(layer.name, index)] = layer(resolve(node["input"]), **kwargs)
    inputs = [resolve(r) for r in config["input_layers"]]
    outputs = [resolve(r) for r in config["output_layers"]]
    model = Model(inputs if config.get("inputs_as_list", len(inputs) > 1) else inputs[0],
                  outputs if config.get("outputs_as_list", len(outputs) > 1) else outputs[0], name=config["name"])
    if config.get("trainable") is False:
        model.trainable = False
    return model


def _subclassed_from_config(entry, custom_objects):
    config = dict(entry.get("config") or {})
    where = f"model {config.get('name')!r}: "
    cls = saving.find_class("model", entry["class_name"], entry.get("registered_name"), custom_objects, where)
    config = saving.from_json(config, custom_objects, where)
    if "from_config" in {k for c in cls.__mro__ if c not in (Layer,) and c.__module__.split(".")[0] != "numbanet"
                         for k in vars(c)}:
        model = cls.from_config(config)
    else:
        try:
            model = cls(**config)
        except TypeError:       # a constructor without name / dtype / trainable (Keras retries the same way)
            base = {k: config.pop(k) for k in ("name", "dtype", "trainable") if k in config}
            model = cls(**config)
            if "name" in base:
                model.name = base["name"]
    shape = tuple(entry["build_input_shape"])
    try:
        model.build(shape)
    except TypeError:           # a float probe refused (an Embedding first): build on integer ids
        import numpy as np
        from ..engine import no_grad
        with no_grad():
            model(np.zeros((1,) + tuple(1 if d is None else d for d in shape[1:]), dtype=np.int32))
        model.input_shape = shape
    return model
