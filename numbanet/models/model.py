"""``Model``: the functional form ``Model(inputs, outputs)`` and the subclassed form.

* Functional: ``Model(inputs, outputs)`` takes the ``SymbolicTensor`` graph built
  by calling layers on ``Input(shape)``, sorts its layer calls once into
  execution order, and replays them on real Tensors. ``inputs`` and ``outputs``
  may be lists: the model then takes a list (or a dict by input name) and
  returns a list. ``model.inputs`` / ``model.outputs`` (and each layer's
  ``input`` / ``output``) are those symbolic tensors, so a feature extractor is
  ``Model(model.inputs, [layer.output for layer in model.layers])``.
* Subclassed: a subclass calls ``super().__init__()``, assigns layers as
  attributes (tracked in assignment order; lists of layers too) and writes
  ``call(self, x)``.

Both (and ``Sequential``) share the training API of ``Trainer``.
"""
from __future__ import annotations

import numpy as np

from ..engine import Tensor, no_grad
from ..engine.tensor import CURRENT_LAYER
from ..layers.base import (STRUCTURE, TRAINING, Layer, SymbolicTensor, begin_call, cached, is_symbolic,
                           structure_changed, takes_training)
from ..utils import unique_name
from .fusion import functional_nodes
from .saving import WeightsIO
from .summary import print_summary
from .training import Trainer


def check_build_shape(owner, input_shape):
    """``input_shape`` for ``build``: a tuple of sizes, batch axis first (None or an int), each other size
    a positive int or None; e.g. ``(None, 1)``. Anything else raises a TypeError / ValueError naming ``owner``."""
    example = "model.build((None, 1)) for inputs of 1 feature"
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(f"{owner}: input_shape must be a tuple with the batch axis first, e.g. {example}; "
                        f"got {input_shape!r}")
    for i, d in enumerate(input_shape):
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (i > 0 and d < 1)):
            raise ValueError(f"{owner}: input_shape sizes must be positive integers or None, got {d!r} at "
                             f"position {i} of {tuple(input_shape)} (e.g. {example})")
    return tuple(None if d is None else int(d) for d in input_shape)


def _model_weights(model):
    """The weights of ``model.layers`` in order, each once: ``Model.weights``, computed."""
    seen, out = set(), []
    for layer in model.layers:
        for w in layer.weights:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return tuple(out)


class Model(Trainer, WeightsIO, Layer):
    """A network of layers that can be compiled and trained (see module docstring)."""

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        object.__setattr__(self, "_tracked", [])
        Layer.__init__(self, name=name or unique_name("functional" if inputs is not None else "model"), **kwargs)
        Trainer.__init__(self)
        self._nodes = None
        if inputs is not None or outputs is not None:
            self._init_functional(inputs, outputs)

    # -------------------------------------------------------- layer tracking
    def __setattr__(self, key, value):
        tracked = self.__dict__.get("_tracked")
        if tracked is not None and not key.startswith("_"):
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, Layer) and item is not self and all(item is not t for t in tracked):
                    tracked.append(item)
        Layer.__setattr__(self, key, value)

    @property
    def layers(self):
        """The layers in execution order; a functional model's Input layers come first, as in Keras."""
        if self._nodes is not None:
            out = [sym.layer for sym in self._input_symbols]
            seen = {id(layer) for layer in out}
            for layer, _, _ in self._nodes:
                if id(layer) not in seen:
                    seen.add(id(layer))
                    out.append(layer)
            return out
        return list(self._tracked)

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or the one at position ``index`` of ``model.layers`` (Keras's errors)."""
        if index is not None and name is not None:
            raise ValueError(f"{self.name}.get_layer: provide only a layer name or a layer index, "
                             f"got index={index}, name={name!r}")
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"{self.name}.get_layer: index must be an integer, got {index!r}")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"{self.name}.get_layer: was asked to retrieve the layer at index {index}, "
                                 f"but the model only has {len(layers)} layers")
            return layers[index]
        if name is None:
            raise ValueError(f"{self.name}.get_layer: provide either a layer name or a layer index, "
                             f"e.g. get_layer('dense') or get_layer(index=0)")
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}.get_layer: no such layer: {name!r}. Existing layers are: "
                         f"{[layer.name for layer in layers]}")

    @property
    def weights(self):
        """Every layer's weights, in layer order, each once (cached until the structure changes)."""
        return list(cached(self, "weights", _model_weights))

    @property
    def trainable_weights(self):
        """The weights that take gradients (``requires_grad``), in ``weights``' order."""
        return [w for w in cached(self, "weights", _model_weights) if w.requires_grad]

    @property
    def _weight_list(self):
        return [(w.name, w) for w in self.weights]

    @_weight_list.setter
    def _weight_list(self, value):  # Layer.__init__ assigns it; a model's weights come from its layers
        pass

    def set_weights(self, weights):
        """Replace every weight (Keras order); every shape is checked before any changes."""
        own, weights = self.weights, [np.asarray(v) for v in weights]  # array-likes too, as Keras
        if len(weights) != len(own):
            raise ValueError(f"{self.name}: set_weights expected {len(own)} arrays, got {len(weights)}")
        for w, v in zip(own, weights):
            if v.shape != w.shape:
                raise ValueError(f"{self.name}: weight {w.name} has shape {w.shape}, got an array of shape {v.shape}")
        for w, v in zip(own, weights):
            w.data = v.astype(w.dtype, copy=True)

    # ------------------------------------------------------------- functional
    def _init_functional(self, inputs, outputs):
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        if isinstance(inputs, dict) or isinstance(outputs, dict):
            raise TypeError(f"{self.name}: Model(inputs, outputs) takes a tensor or a list of tensors for each; "
                            f"give the dict's values as a list, e.g. Model(inputs=[a, b], outputs=[y1, y2])")
        if not ins or not outs:
            raise ValueError(f"{self.name}: Model(inputs, outputs) needs at least one input and one output, "
                             f"got {len(ins)} inputs and {len(outs)} outputs")
        for arg, items in (("inputs", ins), ("outputs", outs)):
            for i, t in enumerate(items):
                if not isinstance(t, SymbolicTensor):
                    raise TypeError(f"{self.name}: Model(inputs, outputs) takes tensors made from Input(...) and "
                                    f"layer calls, got a {type(t).__name__} at {arg}[{i}]")
        for i, t in enumerate(ins):
            if t.parents or t.layer is None:
                raise ValueError(f"{self.name}: inputs[{i}] must be a tensor made by Input(shape), got the output "
                                 f"of layer {t.layer.name if t.layer else '?'}")
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError(f"{self.name}: the same Input appears twice in inputs")
        self._input_symbols, self._output_symbols = ins, outs
        self._input_struct = inputs if isinstance(inputs, (list, tuple)) else ins[0]
        self._output_struct = outputs if isinstance(outputs, (list, tuple)) else outs[0]
        self._nodes = self._execution_order(outs)
        structure_changed()
        self.input_names = [t.layer.name for t in ins]
        self.output_names = [t.layer.name for t in outs]
        self.built = True
        if len(ins) == 1:
            self.batch_input_shape = ins[0].shape
        self.input_shape = ins[0].shape if len(ins) == 1 else [t.shape for t in ins]
        self.output_shape = outs[0].shape if len(outs) == 1 else [t.shape for t in outs]

    @property
    def _input_symbol(self):  # the one input of a one-input functional model
        return self._input_symbols[0]

    @property
    def _multi_io(self):
        """Whether this is a functional model with several inputs or several outputs (lists in, lists out)."""
        return self._nodes is not None and (len(self._input_symbols) > 1 or len(self._output_symbols) > 1)

    def _execution_order(self, outputs):
        """Layer calls from the inputs to every output, each once, inputs first (iterative DFS)."""
        input_ids = {id(t) for t in self._input_symbols}
        order, seen = [], set()
        for output in outputs:
            stack = [(output, False)]
            while stack:
                sym, expanded = stack.pop()
                if id(sym) in input_ids:
                    continue
                if not sym.parents:
                    raise ValueError(f"{self.name}: an output depends on the input {sym.name!r}, which is not "
                                     f"in inputs; add it to Model(inputs=[...])")
                if expanded:
                    order.append((sym.layer, sym.parents, sym))
                    continue
                if id(sym) in seen:
                    continue
                seen.add(id(sym))
                stack.append((sym, True))
                stack.extend((p, False) for p in sym.parents)
        return order

    def _run_functional(self, xs, training):
        values = {id(sym): x for sym, x in zip(self._input_symbols, xs)}
        calls = {}  # a layer call with several outputs (return_state) runs once
        for layer, parents, sym in functional_nodes(self):   # fused pairs as one call (fusion.py)
            node = (id(layer), id(parents[0]))
            if node not in calls:
                calls[node] = layer(values[id(parents[0])], training=training, **sym.kwargs)
            out = calls[node]
            values[id(sym)] = out if sym.index is None else out[sym.index]
        ys = [values[id(sym)] for sym in self._output_symbols]
        return ys if len(ys) > 1 else ys[0]

    # ---------------------------------------------- symbolic inputs and outputs
    def _symbols(self, what):
        if self._nodes is None:
            raise AttributeError(f"{self.name}: a subclassed model has no defined {what}: its call() may use "
                                 f"its layers in any way; build the network with Input(shape) and "
                                 f"Model(inputs, outputs) to have them")
        return self._input_symbols if what == "inputs" else self._output_symbols

    @property
    def inputs(self):
        """The Input tensors of a functional model, as a list."""
        return list(self._symbols("inputs"))

    @property
    def outputs(self):
        """The output tensors of a functional model, as a list."""
        return list(self._symbols("outputs"))

    @property
    def input(self):
        """The model's input tensor(s) as given to Model(inputs=...): one tensor or a list."""
        self._symbols("inputs")
        s = self._input_struct
        return list(s) if isinstance(s, (list, tuple)) else s

    @property
    def output(self):
        """The model's output tensor(s) as given to Model(outputs=...): one tensor or a list."""
        self._symbols("outputs")
        s = self._output_struct
        return list(s) if isinstance(s, (list, tuple)) else s

    # ------------------------------------------------------------------- call
    def call(self, x, training=False):  # overridden by subclasses
        if self._nodes is None:
            raise NotImplementedError(f"abstract: {type(self).__name__}, a subclassed Model, "
                                      f"must define call(self, x)")
        return self._run_functional(x if len(self._input_symbols) > 1 else [x], training)

    def _convert_input(self, x):
        return x  # each layer converts its own input (an Embedding wants integer ids)

    def __call__(self, x, training=None, **kwargs):
        if type(x) is np.ndarray and self.__dict__.get("_accepted") == (STRUCTURE[0], x.dtype, x.ndim, x.shape[1:]):
            pass                               # an array of a kind checked before, nothing changed since
        elif is_symbolic(x):
            return self._call_symbolic(x, kwargs)
        elif self._nodes is not None:
            xs = [self._as_input(v, sym) for v, sym in zip(self._input_list(x), self._input_symbols)]
            x = xs if len(xs) > 1 else xs[0]
        else:
            x = self._as_input(x, None)
            if self.batch_input_shape is not None:  # declared: Input(shape) or input_shape= (also Sequential)
                self._check_model_input(x)
            if type(x) is np.ndarray and self.built:
                self.__dict__["_accepted"] = (STRUCTURE[0], x.dtype, x.ndim, x.shape[1:])
        if training is None:                   # not given: the enclosing call's mode (base.TRAINING)
            training = TRAINING[0]
        if takes_training(type(self)):
            kwargs["training"] = training
        begin_call(self)                                          # an outermost call forgets the last losses
        outer, CURRENT_LAYER[0] = CURRENT_LAYER[0], self.name   # the graph's nodes name this layer
        outer_training, TRAINING[0] = TRAINING[0], bool(training)
        try:
            y = self.call(x, **kwargs)
        finally:
            CURRENT_LAYER[0] = outer
            TRAINING[0] = outer_training
        if not self.built:
            self.built = True
            shape = tuple(getattr(x, "shape", ()))
            self.input_shape = (None,) + shape[1:]
            self.output_shape = (None,) + tuple(y.shape[1:]) if isinstance(y, Tensor) else None
        return y

    def _as_input(self, x, sym):
        """``x`` as a Tensor or ndarray (floats in the model's dtype), checked against ``sym``'s shape if given."""
        if not isinstance(x, Tensor):
            x = np.asarray(x)
            if x.dtype.kind == "f" and x.dtype != self.dtype:
                x = x.astype(self.dtype)
        if sym is not None:
            self._check_model_input(x, sym.shape, "input" if len(self._input_symbols) == 1 else
                                    f"input {sym.layer.name!r}")
        return x

    def _input_list(self, x):
        """The arrays of a functional model's inputs, in input order, from a list, tuple or dict by input name
        (a model of one input also takes the array itself)."""
        names = self.input_names
        if len(names) == 1 and not isinstance(x, dict) and not (
                isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, Tensor))):
            return [x]
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"{self.name}: missing data for input {missing[0]!r}: the dict has keys "
                                 f"{sorted(x)}, the model's inputs are {names}")
            return [x[n] for n in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            got = f"{len(x)} arrays" if isinstance(x, (list, tuple)) else f"one {type(x).__name__}"
            raise ValueError(f"{self.name}: expects {len(names)} inputs {names}, given as a list in that order "
                             f"or a dict by name, got {got}")
        return list(x)

    def _check_model_input(self, x, expected=None, what="input"):
        expected = self.batch_input_shape if expected is None else expected
        shape = tuple(x.shape)
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            from ..layers.base import fmt_shape
            raise ValueError(f"{self.name}: expected {what} of shape {fmt_shape(expected)}, got {fmt_shape(shape)}")

    def build(self, input_shape=None):
        """Create the weights for inputs of ``input_shape`` (batch axis first, e.g. ``(None, 1)``).

        A functional model is built from its ``Input`` already; a subclassed model is built
        by running ``call`` once on zeros of that shape (batch 1), as Keras's ``build`` does.
        """
        if self._nodes is not None:
            return
        owner = f"{self.name}.build"
        if input_shape is None:
            raise ValueError(f"{owner}: needs the input shape, e.g. model.build((None, 1)) for inputs of 1 "
                             f"feature (None stands for the batch size)")
        input_shape = check_build_shape(owner, input_shape)
        zeros = np.zeros((1,) + tuple(1 if d is None else d for d in input_shape[1:]), dtype=self.dtype)
        with no_grad():
            y = self(zeros)                        # the first call builds each layer on its input's shape
        self.input_shape = input_shape
        self.output_shape = (input_shape[0],) + tuple(y.shape[1:]) if isinstance(y, Tensor) else None
        self.built = True

    def build_from_shape(self, input_shape):
        if self._nodes is not None:
            return self.output_shape
        return Layer.build_from_shape(self, input_shape)

    def compute_output_shape(self, input_shape):
        if self._nodes is not None:
            return self.output_shape
        return Layer.compute_output_shape(self, input_shape)

    def summary(self, print_fn=print):
        print_summary(self, print_fn)

    def trace(self, x, y=None):
        """Trace one training step on (x, y) without updating the weights: a ``numbanet.tracing.Trace``.

        Forward in training mode, the compiled loss, ``backward()``; one row per graph
        node with its shapes, padding, strides, kernel route, FLOPs, bytes and time.
        ``print(model.trace(x, y))`` shows the table (``numbanet/tracing.py``).
        """
        from ..tracing import trace_model   # tracing sits above the models it traces
        return trace_model(self, x, y)
