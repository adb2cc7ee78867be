"""Keras 3 ``.keras`` model files, read and written: the mapping between Keras's configs and numbanet's.

A ``.keras`` file is a zip archive of three members (checked against files written
by Keras 3.15):

    metadata.json      {"keras_version", "date_saved"}
    config.json        {"module": "keras", "class_name": "Sequential" | "Functional", "config": {...},
                        "build_config", "compile_config"}
    model.weights.h5   HDF5: layers/<key>/vars/0, 1, ... each layer's own weights in Keras order;
                       a recurrent layer's under layers/<key>/cell/vars/ (its cell holds them), a
                       Bidirectional's under .../forward_layer/cell/vars/ and .../backward_layer/cell/vars/;
                       optimizer/vars/0 (iterations), 1 (learning_rate), then the optimizer's slots.

``<key>`` is not the layer's name: it is the snake-case class name, numbered in the
order of ``model.layers`` (``dense``, ``dense_1``, ...), as Keras's ``saving_lib``
addresses layers; a functional model's layers are ordered by depth from the inputs
(``keras_layer_order`` replicates Keras's ``map_graph``), and its InputLayers count
too (``input_layer``, ...), a Sequential's do not.

Layers map by class name (``KERAS_TO_NUMBANET`` lists the ones whose names differ:
none so far), so a layer numbanet gains (LSTM, BatchNormalization, Conv1D, ...) reads
and writes without a new entry here. A layer config's keys pass through where the
numbanet constructor takes them; a Keras-only key must hold the value that means
what numbanet does (``KERAS_ONLY``, e.g. ``data_format="channels_last"``), else the
file is refused naming the layer and the key. Keys that only shape training
(constraints; initializers numbanet lacks) are dropped with a warning; regularizers pass in
Keras's serialized form, which ``numbanet.regularizers.get`` reads.

Compile settings: the optimizer (class, hyperparameters, step count and slots, for
the optimizers in ``OPTIMIZER_SLOTS``), the loss(es), loss weights and metrics are
carried both ways where both sides have them; what is not carried (EMA, loss scaling,
gradient accumulation, weighted metrics, unknown losses or metrics) is named in a
warning. Nested models are refused.
"""
from __future__ import annotations

import datetime
import inspect
import io
import json
import re
import warnings

import numpy as np

from .. import initializers as initializers_mod
from .. import saving

KERAS_VERSION = "3.15.1"   # the Keras whose files this module was checked against (metadata.json)

KERAS_TO_NUMBANET = {}     # Keras class name -> numbanet layer class name, where they differ

# Keras config keys that numbanet's layers do not take, and the Keras values that mean numbanet's behaviour.
KERAS_ONLY = {
    "data_format": ("channels_last", None), "dilation_rate": ((1, 1), (1,), 1), "groups": (1,),
    "stateful": (False,), "unroll": (False,), "dropout": (0.0,), "recurrent_dropout": (0.0,),
    "noise_shape": (None,), "lora_rank": (None,), "lora_alpha": (None,), "quantization_config": (None,),
    "sparse": (False,), "ragged": (False,), "optional": (False,), "seed": (None,), "use_cudnn": ("auto",),
    "input_length": (None,), "synchronized": (False,), "time_major": (False,), "zero_output_for_mask": (False,),
}
# Keras config keys that only shape training: dropped with a warning when numbanet's layer lacks them.
TRAINING_ONLY = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "recurrent_regularizer",
                 "embeddings_regularizer", "beta_regularizer", "gamma_regularizer", "kernel_constraint",
                 "bias_constraint", "recurrent_constraint", "embeddings_constraint", "beta_constraint",
                 "gamma_constraint")
RECURRENT = ("SimpleRNN", "GRU", "LSTM")   # their weights live in a cell: layers/<key>/cell/vars

# Keras's optimizer variables after iterations and learning_rate: groups, each made by one
# add_optimizer_variables call, which stores the group's slots of variable 1, then of variable 2, ...
# (None: the group exists only when the named hyperparameter is set.)
OPTIMIZER_SLOTS = {
    "SGD": [(("momentum",), "momentum")],
    "Adam": [(("m", "v"), None), (("v_hat",), "amsgrad")],
    "AdamW": [(("m", "v"), None), (("v_hat",), "amsgrad")],
    "RMSprop": [(("velocity",), None), (("momentum",), "momentum"), (("average_gradient",), "centered")],
    "Adagrad": [(("accumulator",), None)],
    "Adadelta": [(("accumulated_grad", "accumulated_delta_var"), None)],
    "Adamax": [(("m", "u"), None)],
    "Nadam": [(("m", "v"), None)],
}
# Optimizer-wide numbers Keras stores after the slots (as 0-d variables).
OPTIMIZER_TAIL = {"Nadam": ("u_product",)}
OPTIMIZER_KERAS_ONLY = {"use_ema": (False,), "ema_momentum": None, "ema_overwrite_frequency": (None,),
                        "loss_scale_factor": (None,), "gradient_accumulation_steps": (None,), "weight_decay": (None,)}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading and writing Keras .keras files needs h5py, an optional dependency: "
                          "pip install 'numbanet[keras-files]'") from None
    return h5py


def snake_case(name):
    """Keras's ``naming.to_snake_case``: 'Conv2DTranspose' -> 'conv2d_transpose'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def h5_keys(class_names):
    """The weight-file key of each layer in order: its snake-case class name, numbered when repeated."""
    used, keys = {}, []
    for cls in class_names:
        base = snake_case(cls)
        if base in used:
            used[base] += 1
            keys.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            keys.append(base)
    return keys


def weight_paths(class_name, config):
    """The HDF5 groups (below layers/<key>) holding a layer's weights, in numbanet's weight order."""
    if class_name in RECURRENT:
        return ["cell/vars"]
    if class_name == "Bidirectional":
        inner = config["layer"]["class_name"]
        back = (config.get("backward_layer") or config["layer"])["class_name"]
        return [f"forward_layer/{p}" for p in weight_paths(inner, {})] + \
               [f"backward_layer/{p}" for p in weight_paths(back, {})]
    return ["vars"]


def _as_tuples(value):
    if isinstance(value, list) and all(isinstance(v, (int, type(None))) and not isinstance(v, bool) for v in value):
        return tuple(value)
    return value


def _warn(path, what):
    warnings.warn(f"load_model: {path!r}: {what}", UserWarning, stacklevel=4)


# =====================================================================================
# Reading: Keras -> numbanet
# =====================================================================================
def _dtype_name(value, where):
    name = value["config"]["name"] if isinstance(value, dict) else value
    if name not in (None, "float32", "float64"):
        raise ValueError(f"{where}dtype policy {name!r} is not available in numbanet (float32 or float64)")
    return name


def _initializer(value, where, path):
    """A Keras initializer (a name or a serialized dict) as numbanet's name or instance; None if numbanet lacks it."""
    if not isinstance(value, dict):
        return value
    cls = getattr(initializers_mod, value["class_name"], None)
    if not (inspect.isclass(cls) and issubclass(cls, initializers_mod.Initializer)):
        _warn(path, f"{where}initializer {value['class_name']} is not in numbanet; the layer keeps its default "
                    f"(it only matters for training a fresh copy: the saved weights are loaded)")
        return None
    params = inspect.signature(cls.__init__).parameters
    config = {k: _as_tuples(v) for k, v in (value.get("config") or {}).items() if k in params}
    if all(v is None for v in config.values()):
        name = snake_case(value["class_name"])
        if name in initializers_mod._BY_NAME:
            return name
    return cls(**config)


def _layer_class(class_name, name, path):
    from .. import layers
    numbanet_name = KERAS_TO_NUMBANET.get(class_name, class_name)
    cls = getattr(layers, numbanet_name, None) if not numbanet_name.startswith("_") else None
    try:
        ok = inspect.isclass(cls) and issubclass(cls, layers.Layer) and cls is not layers.Layer
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"load_model: {path!r}: layer {name!r} is a Keras {class_name}, which numbanet does not "
                         f"have; numbanet reads these Keras layers: {', '.join(sorted(supported_layers()))}")
    return cls


def supported_layers():
    from .. import layers
    return [k for k, v in vars(layers).items() if inspect.isclass(v) and issubclass(v, layers.Layer)
            and k not in ("Layer", "InputLayer", "SymbolicTensor")]


def _constructor_params(cls):
    """Every keyword the class's constructors take, with the regularizer arguments the base pops from kwargs."""
    params = set(getattr(cls, "regularized_weights", {}).values())
    for c in cls.__mro__:
        init = vars(c).get("__init__")
        if init is not None:
            params |= {p for p in inspect.signature(init).parameters if p not in ("self", "kwargs")}
    return params


def layer_from_keras(entry, path, inside_bidirectional=False):
    """A fresh numbanet layer from a Keras layer entry ``{"class_name", "config"}`` (see the module docstring)."""
    class_name, config = entry["class_name"], dict(entry["config"])
    name = config.get("name")
    where = f"layer {name!r} ({class_name}): "
    cls = _layer_class(class_name, name, path)
    params = _constructor_params(cls)
    args = {}
    for key, value in config.items():
        if key == "dtype":
            args["dtype"] = _dtype_name(value, where)
        elif key in ("layer", "backward_layer") and class_name == "Bidirectional":
            args[key] = None if value is None else layer_from_keras(value, path, inside_bidirectional=True)
        elif key in params and key.endswith("_initializer"):
            init = _initializer(value, where, path)
            if init is not None:
                args[key] = init
        elif key in params and key.endswith("_regularizer"):
            args[key] = value         # numbanet's regularizers.get reads Keras's serialized form
        elif key in params:
            args[key] = _as_tuples(value)
        elif key in TRAINING_ONLY:
            if value is not None:
                _warn(path, f"{where}{key} is not carried: numbanet's {cls.__name__} has no {key} (it only "
                            f"shapes training; the outputs are the same)")
        elif key == "zero_output_for_mask" and inside_bidirectional:
            continue      # Keras sets it inside Bidirectional; numbanet's Bidirectional zeroes masked steps itself
        elif key in KERAS_ONLY and _is_default(value, KERAS_ONLY[key]):
            continue
        else:
            raise ValueError(f"load_model: {path!r}: {where}numbanet's {cls.__name__} has no argument {key!r}, "
                             f"and the file sets it to {value!r} (numbanet computes as Keras does with "
                             f"{key}={KERAS_ONLY[key][0]!r})" if key in KERAS_ONLY else
                             f"load_model: {path!r}: {where}numbanet's {cls.__name__} has no argument {key!r} "
                             f"(the file sets it to {value!r})")
    if class_name == "Bidirectional":
        layer = args.pop("layer")
        return cls(layer, **args)
    return cls(**args)


def _is_default(value, defaults):
    if isinstance(value, list):
        value = tuple(value)
    return any(value == d or (isinstance(d, tuple) and value == list(d)) for d in defaults)


def _keras_history(arg):
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return arg["config"]["keras_history"]
    raise ValueError("numbanet layers take one input tensor per call")


def _flat_refs(refs):
    """Keras writes one input/output as [name, node, index] and several as a list of them."""
    return [refs] if refs and isinstance(refs[0], str) else list(refs)


def model_from_keras(entry, path):
    """A numbanet Sequential or functional Model, unbuilt weights aside, from Keras's config.json model entry."""
    from ..layers.core import Input
    from .model import Model
    from .sequential import Sequential
    class_name, config = entry["class_name"], entry["config"]
    if class_name not in ("Sequential", "Functional", "Model") or "layers" not in config:
        raise ValueError(f"load_model: {path!r} holds a subclassed Keras model ({class_name}): only Sequential and "
                         f"functional models are described by their configuration; rebuild the model in numbanet and "
                         f"read the weights")
    entries = config["layers"]
    for sub in entries:                          # every class first: refuse before building anything
        if sub["class_name"] in ("Sequential", "Functional", "Model"):
            raise ValueError(f"load_model: {path!r}: layer {sub['config'].get('name')!r} is a nested model, which "
                             f"numbanet does not read from .keras files")
        if sub["class_name"] != "InputLayer":
            _layer_class(sub["class_name"], sub["config"].get("name"), path)
            if sub["class_name"] == "Bidirectional":
                for part in (sub["config"]["layer"], sub["config"].get("backward_layer")):
                    if part is not None:
                        _layer_class(part["class_name"], part["config"].get("name"), path)

    def keras_input(sub):
        c = sub["config"]
        shape = c.get("batch_shape") or c.get("batch_input_shape")
        return Input(tuple(shape[1:]), dtype=c.get("dtype") if isinstance(c.get("dtype"), str) else None,
                     name=c.get("name"), batch_size=shape[0])

    if class_name == "Sequential":
        model = Sequential(name=config.get("name"))
        for sub in entries:
            model.add(keras_input(sub) if sub["class_name"] == "InputLayer" else layer_from_keras(sub, path))
        shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape")
        if not model.built and shape:
            model.build(tuple(shape))
        return model, [layer for layer in model.layers]

    layers, results, pending = {}, {}, []
    for sub in entries:
        name = sub["config"]["name"]
        if sub["class_name"] == "InputLayer":
            sym = keras_input(sub)
            layers[name], results[(name, 0)] = sym.layer, (sym,)
        else:
            layers[name] = layer_from_keras(sub, path)
            pending.extend((name, node) for node in sub.get("inbound_nodes", []))

    def resolve(ref):
        name, node, index = ref
        out = results[(name, node)]
        return out[index]

    while pending:                               # Keras's config lists layers by depth; retry until all are called
        progress, left = False, []
        for name, node in pending:
            args = node["args"]
            refs = [_keras_history(a) for a in (args[0] if args and isinstance(args[0], list) else args)]
            if len(refs) != 1:
                raise ValueError(f"load_model: {path!r}: layer {name!r} is called on {len(refs)} tensors; numbanet "
                                 f"layers take one")
            if (refs[0][0], refs[0][1]) not in results:
                left.append((name, node))
                continue
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k != "training" and v is not None}
            if kwargs:
                raise ValueError(f"load_model: {path!r}: layer {name!r} is called with {sorted(kwargs)}, which "
                                 f"numbanet does not read from .keras files")
            out = layers[name](resolve(refs[0]))
            count = sum(1 for key in results if key[0] == name)
            results[(name, count)] = out if isinstance(out, tuple) else (out,)
            progress = True
        if not progress:
            raise ValueError(f"load_model: {path!r}: the layer graph cannot be traced from its inputs "
                             f"(waiting: {[n for n, _ in left]})")
        pending = left
    ins = _flat_refs(config["input_layers"])
    outs = _flat_refs(config["output_layers"])
    inputs = [resolve(r) for r in ins]
    outputs = [resolve(r) for r in outs]
    several_in = not (config["input_layers"] and isinstance(config["input_layers"][0], str))
    several_out = not (config["output_layers"] and isinstance(config["output_layers"][0], str))
    model = Model(inputs if several_in else inputs[0], outputs if several_out else outputs[0],
                  name=config.get("name"))
    return model, [layers[sub["config"]["name"]] for sub in entries]


def _read_weights(h5, model_layers, entries, is_sequential, path):
    """Each layer's arrays from model.weights.h5, checked against its numbanet weights (nothing set yet)."""
    if is_sequential:   # a Sequential's layers do not include its InputLayer
        entries = [s for s in entries if s["class_name"] != "InputLayer"]
    keyed = list(zip(model_layers, entries))
    keys = h5_keys([sub["class_name"] for _, sub in keyed])
    plan = []
    for (layer, sub), key in zip(keyed, keys):
        arrays = []
        for group in weight_paths(sub["class_name"], sub["config"]):
            full = f"layers/{key}/{group}"
            if full in h5:
                g = h5[full]
                arrays.extend(np.asarray(g[str(i)]) for i in range(len(g)))
        own = layer.weights
        if len(arrays) != len(own):
            raise ValueError(f"load_model: {path!r}: layer {layer.name!r} ({type(layer).__name__}) has {len(own)} "
                             f"weights in numbanet, the file holds {len(arrays)} under layers/{key}")
        for w, a in zip(own, arrays):
            if a.shape != w.shape:
                raise ValueError(f"load_model: {path!r}: layer {layer.name!r}, weight {w.name!r} has shape "
                                 f"{w.shape}, the file holds shape {a.shape}")
        plan.append((own, arrays))
    return plan


def load_keras(archive, path, custom_objects=None, compile=True):
    """The numbanet model of an open ``.keras`` zip archive (see the module docstring)."""
    from .saving import _read, _read_json, private_random_stream
    h5py = _h5py()
    document = _read_json(archive, path, "config.json")
    raw = _read(archive, path, "model.weights.h5")
    with private_random_stream():
        try:
            model, model_layers = model_from_keras(document, path)
        except (KeyError, IndexError, TypeError) as err:
            raise ValueError(f"load_model: {path!r}: config.json is not a Keras 3 model configuration "
                             f"({type(err).__name__}: {err})") from None
        try:
            h5 = h5py.File(io.BytesIO(raw), "r")
        except OSError as err:
            raise ValueError(f"load_model: {path!r} is corrupt: model.weights.h5 is not HDF5 ({err})") from None
        with h5:
            plan = _read_weights(h5, model_layers, document["config"]["layers"],
                                 document["class_name"] == "Sequential", path)
            for own, arrays in plan:
                for w, a in zip(own, arrays):
                    w.data = np.array(a, dtype=w.dtype)
            if compile and document.get("compile_config"):
                _compile_from_keras(model, document["compile_config"], path)
                if model.optimizer is not None:
                    _optimizer_state_from_keras(model, model_layers, h5, path)
    return model


# ------------------------------------------------------------------ compile info
def _filtered(cls, config, where, path, keras_only):
    params = _constructor_params(cls)
    args = {}
    for k, v in config.items():
        if k in params:
            args[k] = v
        elif k in keras_only and (keras_only[k] is None or _is_default(v, keras_only[k])):
            continue
        else:
            _warn(path, f"{where}{k}={v!r} is not carried (numbanet's {cls.__name__} has no {k})")
    return args


def _float32_value(x):
    """A float32 value as the shortest decimal that rounds to it (0.0010000000474974513 -> 0.001)."""
    return float(str(np.float32(x))) if isinstance(x, float) else x


def _loss_from_keras(entry, path):
    from .. import losses as losses_mod
    if entry is None or isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and "class_name" in entry:
        cls = getattr(losses_mod, entry["class_name"], None)
        if inspect.isclass(cls) and issubclass(cls, losses_mod.Loss):
            return cls(**_filtered(cls, entry.get("config") or {}, f"loss {entry['class_name']}: ", path,
                                   {"label_smoothing": (0, 0.0), "axis": (-1,), "dtype": None}))
    raise ValueError(f"the loss {entry!r} is not in numbanet")


def _compile_from_keras(model, cc, path):
    from .. import losses as losses_mod
    from .. import metrics as metrics_mod
    from .. import optimizers as optimizers_mod
    opt_entry = cc.get("optimizer")
    if isinstance(opt_entry, str):
        opt_entry = {"class_name": opt_entry, "config": {}}
    cls = getattr(optimizers_mod, opt_entry["class_name"], None) if opt_entry else None
    if not (inspect.isclass(cls) and issubclass(cls, optimizers_mod.Optimizer)):
        _warn(path, f"the optimizer {opt_entry and opt_entry.get('class_name')!r} is not in numbanet: the model "
                    f"is not compiled")
        return
    config = _filtered(cls, opt_entry.get("config") or {}, f"optimizer {cls.__name__}: ", path, OPTIMIZER_KERAS_ONLY)
    config = {k: _float32_value(v) for k, v in config.items()}
    if isinstance(config.get("learning_rate"), dict) and saving.builtin_classes("schedule") == {}:
        _warn(path, f"the learning-rate schedule {config['learning_rate'].get('class_name')} is not carried; "
                    f"the optimizer uses its default learning rate")
        config.pop("learning_rate")
    optimizer = cls(**config)
    try:
        loss = cc.get("loss")
        if isinstance(loss, dict) and "class_name" not in loss:
            loss = {k: _loss_from_keras(v, path) for k, v in loss.items()}
        elif isinstance(loss, list):
            loss = [_loss_from_keras(v, path) for v in loss]
        else:
            loss = _loss_from_keras(loss, path)
        for name in ([loss] if not isinstance(loss, (list, dict)) else list(loss.values() if isinstance(loss, dict)
                                                                           else loss)):
            if isinstance(name, str):
                losses_mod.get(name)
    except ValueError as err:
        _warn(path, f"the model is not compiled: {err}")
        return
    metrics = _metrics_from_keras(cc.get("metrics"), metrics_mod, path)
    for key, quiet in (("weighted_metrics", (None,)), ("steps_per_execution", (1,)), ("jit_compile", (False, "auto")),
                       ("run_eagerly", (False,))):
        if key in cc and cc[key] not in quiet:
            _warn(path, f"compile's {key}={cc[key]!r} is not carried")
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=cc.get("loss_weights"))


def _metrics_from_keras(metrics, metrics_mod, path):
    def one(m):
        if isinstance(m, str):
            try:
                metrics_mod.get(m)
                return m
            except (ValueError, TypeError):
                pass
        _warn(path, f"the metric {m!r} is not carried (numbanet has no such metric)")
        return None

    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {k: ([x for x in map(one, v) if x] if isinstance(v, list) else one(v)) for k, v in metrics.items()}
    out = []
    for m in metrics:
        out.append([x for x in map(one, m) if x] if isinstance(m, list) else one(m))
    return [m for m in out if m is not None]


def _trainable_in_keras_order(model_layers):
    return [w for layer in model_layers for w in layer.trainable_weights]


def _slot_layout(opt):
    """[(slot names, ...)] of the optimizer's Keras variable groups, or None where numbanet has no table."""
    table = OPTIMIZER_SLOTS.get(type(opt).__name__)
    if table is None:
        return None
    return [names for names, flag in table if flag is None or getattr(opt, flag, False)]


def _optimizer_state_from_keras(model, model_layers, h5, path):
    opt = model.optimizer
    if "optimizer/vars" not in h5:
        return
    g = h5["optimizer/vars"]
    stored = [np.asarray(g[str(i)]) for i in range(len(g))]
    layout = _slot_layout(opt)
    weights = _trainable_in_keras_order(model_layers)
    has_lr = not callable(getattr(opt, "_learning_rate", opt.learning_rate))
    head = 2 if has_lr else 1
    tail = OPTIMIZER_TAIL.get(type(opt).__name__, ())
    expected = None if layout is None else head + sum(len(names) for names in layout) * len(weights) + len(tail)
    if len(stored) == head and int(stored[0]) == 0:    # Keras never stepped: no slots written
        expected = head
    if expected != len(stored):
        _warn(path, f"the optimizer state (step count and slots) is not carried: the file holds {len(stored)} "
                    f"optimizer variables, numbanet's {type(opt).__name__} would read {expected}")
        return
    opt.iterations = int(stored[0])
    if has_lr:
        opt.learning_rate = _float32_value(float(stored[1]))
    if opt.iterations == 0:
        return
    i = head
    for names in layout:
        for w in weights:
            slots = opt.slots.setdefault(id(w), opt.create_slots(w.data))
            for name in names:
                slots[name] = np.array(stored[i], dtype=w.dtype).reshape(w.shape)
                i += 1
    for name in tail:
        setattr(opt, name, float(stored[i]))
        i += 1


# =====================================================================================
# Writing: numbanet -> Keras
# =====================================================================================
def keras_layer_order(model):
    """A functional model's layers in Keras's ``model.layers`` order: by depth from the outputs,
    deepest (the inputs) first, ties in order of first visit by a depth-first walk from the
    outputs (Keras's ``map_graph``). Returns the layers and, per layer, its calls in order."""
    input_ids = {id(s) for s in model._input_symbols}
    node_of = {}                  # id(symbolic tensor) -> node key: (id(layer), id(its input)) or the input's id

    def key(sym):
        return ("input", id(sym)) if id(sym) in input_ids else (id(sym.layer), id(sym.parents[0]))

    finished, order, first_visit, layer_of, parent_of = set(), [], {}, {}, {}

    def visit(sym):
        k = key(sym)
        if k in finished:
            return
        if id(sym.layer) not in first_visit:
            first_visit[id(sym.layer)] = len(first_visit)
        layer_of[k] = sym.layer
        if id(sym) not in input_ids:
            parent_of[k] = key(sym.parents[0])
            visit(sym.parents[0])
        finished.add(k)
        order.append(k)

    for out in model._output_symbols:
        visit(out)
    node_depth, layer_depth = {}, {}
    for k in reversed(order):
        depth = node_depth.setdefault(k, 0)
        depth = max(depth, layer_depth.get(id(layer_of[k]), 0))
        layer_depth[id(layer_of[k])] = node_depth[k] = depth
        if k in parent_of:
            node_depth[parent_of[k]] = max(depth + 1, node_depth.get(parent_of[k], 0))
    for sym in model._input_symbols:           # an input no output uses still counts
        if id(sym.layer) not in layer_depth:
            layer_depth[id(sym.layer)], first_visit[id(sym.layer)] = 0, -1
            layer_of[("input", id(sym))] = sym.layer
    layers = {id(layer): layer for layer in layer_of.values()}
    return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)], first_visit[id(layer)]))


def _keras_value(value, where):
    """A numbanet config value as Keras writes it (initializer objects as Keras's serialized dicts)."""
    if isinstance(value, initializers_mod.Initializer):
        return {"module": "keras.initializers", "class_name": type(value).__name__,
                "config": saving.to_json(value.get_config(), where), "registered_name": None}
    if hasattr(value, "get_config") and not inspect.isclass(value):
        return {"module": "keras", "class_name": type(value).__name__,
                "config": saving.to_json(value.get_config(), where), "registered_name": None}
    return saving.to_json(value, where)


def layer_to_keras(layer):
    """A Keras layer entry ``{"module", "class_name", "config", ...}`` for a numbanet layer."""
    from .model import Model
    where = f"{layer.name} ({type(layer).__name__}): "
    if isinstance(layer, Model):
        raise ValueError(f"save: layer {layer.name!r} is a nested model, which numbanet does not write to .keras "
                         f"files; build the outer model from its layers")
    cls = type(layer).__name__
    from .. import layers
    if saving._NAMES.get(type(layer)) is not None or getattr(layers, cls, None) is not type(layer):
        raise ValueError(f"save: layer {layer.name!r} is a {cls}, which Keras does not have; save the model in "
                         f"numbanet's format ('.numbanet') instead")
    config = layer.get_config()
    if cls == "Bidirectional":
        config = dict(config)
        for part in ("layer", "backward_layer"):
            if config.get(part) is not None:
                sub = getattr(layer, "forward_layer" if part == "layer" else "backward_layer")
                config[part] = layer_to_keras(sub)
    else:
        config = {k: _keras_value(v, where) for k, v in config.items()}
    for k in ("activation", "recurrent_activation"):
        if k in config and config[k] is None:
            config[k] = "linear"
    entry = {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}
    if layer.input_shape is not None:
        entry["build_config"] = {"input_shape": list(layer.input_shape)}
    return entry


def _input_entry(sym):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(sym.shape), "dtype": sym.layer.input_dtype.name, "sparse": False,
                       "ragged": False, "name": sym.layer.name, "optional": False}, "registered_name": None}


def model_to_keras(model):
    """(config.json's model entry, the layers in Keras's order, their h5 class names)."""
    from ..layers.core import Input
    from .model_config import is_functional
    from .sequential import Sequential
    if isinstance(model, Sequential):
        if not model.built:
            raise ValueError(f"{model.name}.save: the model is not built; give it an Input(shape) or call it once "
                             f"before saving a .keras file")
        sym = model._declared_input
        if sym is None:
            sym = Input(tuple(model.input_shape[1:]), batch_size=model.input_shape[0], name=f"{model.name}_input")
        layers = model.layers
        config = {"name": model.name, "trainable": model.trainable, "dtype": model.dtype.name,
                  "layers": [_input_entry(sym)] + [layer_to_keras(layer) for layer in layers],
                  "build_input_shape": list(model.input_shape)}
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None,
                "build_config": {"input_shape": list(model.input_shape)}}, layers
    if not is_functional(model):
        raise ValueError(f"{model.name}.save: a subclassed model cannot be written to a .keras file that Keras can "
                         f"rebuild without its class; save it as '.numbanet' (with a registered class)")
    layers = keras_layer_order(model)
    inputs = {id(s.layer): s for s in model._input_symbols}
    calls, entries = {}, {}
    for layer in layers:
        entries[id(layer)] = (_input_entry(inputs[id(layer)]) if id(layer) in inputs
                              else {**layer_to_keras(layer), "name": layer.name, "inbound_nodes": []})

    def history(sym):
        if id(sym) in {id(s) for s in model._input_symbols}:
            return [sym.layer.name, 0, 0]
        return [sym.layer.name, calls[(id(sym.layer), id(sym.parents[0]))], sym.index or 0]

    def tensor(sym):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(sym.shape), "dtype": sym.dtype.name, "keras_history": history(sym)}}

    for layer, parents, sym in model._nodes:
        k = (id(layer), id(parents[0]))
        if k in calls:
            continue
        entry = entries[id(layer)]
        calls[k] = len(entry["inbound_nodes"])
        entry["inbound_nodes"].append({"args": [tensor(parents[0])],
                                       "kwargs": saving.to_json(sym.kwargs, f"{layer.name}: ")})
    for layer in layers:
        if id(layer) in inputs:
            entries[id(layer)]["name"] = layer.name
            entries[id(layer)]["inbound_nodes"] = []
    refs_in = [history(s) for s in model._input_symbols]
    refs_out = [history(s) for s in model._output_symbols]
    config = {"name": model.name, "trainable": model.trainable, "layers": [entries[id(layer)] for layer in layers],
              "input_layers": refs_in if isinstance(model._input_struct, (list, tuple)) else refs_in[0],
              "output_layers": refs_out if isinstance(model._output_struct, (list, tuple)) else refs_out[0]}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
            "registered_name": "Functional", "build_config": {"input_shape": None}}, layers


def _keras_compile(model):
    """compile_config for the compiled model, or None (with a warning naming what Keras cannot read)."""
    from .. import losses as losses_mod
    from .saving import _builtin_metric
    if model.optimizer is None or model._output_losses is None:
        return None
    try:
        opt = model.optimizer
        opt_config = {k: _keras_value(v, "optimizer: ") for k, v in opt.get_config().items()}
        if callable(opt_config.get("learning_rate")):
            raise TypeError("its learning rate is a function")
        if type(opt).__name__ not in OPTIMIZER_SLOTS:
            raise TypeError(f"Keras has no optimizer {type(opt).__name__}")

        def loss_entry(loss):
            if loss is None:
                return None
            if isinstance(loss, losses_mod.FunctionLoss):
                raise TypeError(f"the loss {loss.name!r} is a numbanet function")
            return {"module": "keras.losses", "class_name": type(loss).__name__,
                    "config": saving.to_json(loss.get_config()), "registered_name": None}
        names = model._compile_output_names()
        metrics = []
        for out, pairs in zip(names, model._output_metrics):
            own = []
            for hist, fn in pairs:
                if not _builtin_metric(fn):
                    raise TypeError(f"the metric {hist!r} is a numbanet function")
                own.append(hist[len(out) + 1:] if len(names) > 1 else hist)
            metrics.append(own)
    except TypeError as err:
        warnings.warn(f"{model.name}.save: the compile settings are not written to the .keras file ({err})",
                      UserWarning, stacklevel=4)
        return None
    losses = [loss_entry(loss) for loss in model._output_losses]
    single = len(names) == 1
    return {"optimizer": {"module": "keras.optimizers", "class_name": type(opt).__name__, "config": opt_config,
                          "registered_name": None},
            "loss": losses[0] if single else losses,
            "loss_weights": None if all(w == 1.0 for w in model._loss_weights) else
            (model._loss_weights[0] if single else list(model._loss_weights)),
            "metrics": (metrics[0] or None) if single else metrics,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _write_h5(f, model, layers, class_names, compiled):
    h5py = _h5py()
    with h5py.File(f, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        group = h5.create_group("layers")
        for layer, key, cls in zip(layers, h5_keys(class_names), class_names):
            arrays = [w.data for w in layer.weights]
            config = layer_to_keras(layer)["config"] if cls == "Bidirectional" else {}
            paths = weight_paths(cls, config)
            per_path = [arrays] if len(paths) == 1 else [[w.data for w in part.weights] for part in
                                                         (layer.forward_layer, layer.backward_layer)]
            group.create_group(f"{key}/vars").attrs["name"] = layer.name
            for p, values in zip(paths, per_path):
                g = group.require_group(f"{key}/{p}")
                for i, a in enumerate(values):
                    g.create_dataset(str(i), data=a)
        if compiled:
            opt = model.optimizer
            g = h5.create_group("optimizer/vars")
            g.attrs["name"] = opt.name
            values = [np.array(opt.iterations, dtype=np.int64)]
            if not callable(getattr(opt, "_learning_rate", opt.learning_rate)):
                values.append(np.array(opt.current_learning_rate(), dtype=np.float32))
            weights = _trainable_in_keras_order(layers)
            for names in _slot_layout(opt) or []:
                for w in weights:
                    slots = opt.slots.get(id(w)) or opt.create_slots(w.data)
                    values.extend(np.asarray(slots[name]) for name in names)
            values.extend(np.array(getattr(opt, name), dtype=np.float32)
                          for name in OPTIMIZER_TAIL.get(type(opt).__name__, ()))
            for i, a in enumerate(values):
                g.create_dataset(str(i), data=a)


def save_keras(model, path):
    """Write ``model`` as a Keras 3 ``.keras`` file that ``keras.models.load_model`` opens, atomically."""
    import zipfile
    from .. import __version__ as nb_version
    from .saving import atomic_write
    entry, layers = model_to_keras(model)
    class_names = [type(layer).__name__ for layer in layers]
    compile_config = _keras_compile(model)
    if compile_config is not None:
        entry["compile_config"] = compile_config
    compiled = compile_config is not None and _slot_layout(model.optimizer) is not None
    h5 = io.BytesIO()
    _write_h5(h5, model, layers, class_names, compiled)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "numbanet_version": nb_version}

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(entry))
            z.writestr("model.weights.h5", h5.getvalue())
    atomic_write(path, write, suffix=".keras")
