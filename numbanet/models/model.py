"""``Model``: the functional form ``Model(inputs, outputs)`` and the subclassed form.

* Functional: ``Model(inputs, outputs)`` takes the ``SymbolicTensor`` graph built
  by calling layers on ``Input(shape)``, sorts its layer calls once into
  execution order, and replays them on real Tensors.
* Subclassed: a subclass calls ``super().__init__()``, assigns layers as
  attributes (tracked in assignment order; lists of layers too) and writes
  ``call(self, x)``.

Both (and ``Sequential``) share the training API of ``Trainer``.
"""
from __future__ import annotations

import numpy as np

from ..engine import Tensor, no_grad
from ..engine.tensor import CURRENT_LAYER
from ..layers.base import TRAINING, Layer, SymbolicTensor, is_symbolic, takes_training
from ..utils import unique_name
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
        object.__setattr__(self, key, value)

    @property
    def layers(self):
        if self._nodes is not None:
            seen, out = set(), [self._input_symbol.layer]
            for layer, _, _ in self._nodes:
                if id(layer) not in seen:
                    seen.add(id(layer))
                    out.append(layer)
            return out
        return list(self._tracked)

    @property
    def weights(self):
        seen, out = set(), []
        for layer in self.layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

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
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(f"{self.name}: this Model takes one input and one output, "
                             f"got {len(ins)} inputs and {len(outs)} outputs")
        if not all(isinstance(t, SymbolicTensor) for t in ins + outs):
            raise TypeError(f"{self.name}: Model(inputs, outputs) takes tensors made from Input(...) and layer calls")
        self._input_symbol, self._output_symbol = ins[0], outs[0]
        self._nodes = self._execution_order(self._output_symbol)
        self.batch_input_shape = self._input_symbol.shape
        self.built = True
        self.input_shape, self.output_shape = self._input_symbol.shape, self._output_symbol.shape

    def _execution_order(self, output):
        """Layer calls from the input to ``output``, each once, inputs first (iterative DFS)."""
        order, seen, stack = [], set(), [(output, False)]
        reached_input = False
        while stack:
            sym, expanded = stack.pop()
            if sym is self._input_symbol:
                reached_input = True
                continue
            if not sym.parents:
                raise ValueError(f"{self.name}: output depends on an input {sym.name!r} not given in inputs")
            if expanded:
                order.append((sym.layer, sym.parents, sym))
                continue
            if id(sym) in seen:
                continue
            seen.add(id(sym))
            stack.append((sym, True))
            stack.extend((p, False) for p in sym.parents)
        if not reached_input:
            raise ValueError(f"{self.name}: outputs are not connected to the given inputs")
        return order

    def _run_functional(self, x, training):
        values = {id(self._input_symbol): x}
        calls = {}  # a layer call with several outputs (return_state) runs once
        for layer, parents, sym in self._nodes:
            node = (id(layer), id(parents[0]))
            if node not in calls:
                calls[node] = layer(values[id(parents[0])], training=training, **sym.kwargs)
            out = calls[node]
            values[id(sym)] = out if sym.index is None else out[sym.index]
        return values[id(self._output_symbol)]

    # ------------------------------------------------------------------- call
    def call(self, x, training=False):  # overridden by subclasses
        if self._nodes is None:
            raise NotImplementedError(f"abstract: {type(self).__name__}, a subclassed Model, "
                                      f"must define call(self, x)")
        return self._run_functional(x, training)

    def _convert_input(self, x):
        return x  # each layer converts its own input (an Embedding wants integer ids)

    def __call__(self, x, training=None, **kwargs):
        if is_symbolic(x):
            return self._call_symbolic(x, kwargs)
        if not isinstance(x, Tensor):
            x = np.asarray(x)
            if x.dtype.kind == "f" and x.dtype != self.dtype:
                x = x.astype(self.dtype)
        if self.batch_input_shape is not None:  # declared: Input(shape) or input_shape= (also Sequential)
            self._check_model_input(x)
        if training is None:                   # not given: the enclosing call's mode (base.TRAINING)
            training = TRAINING[0]
        if takes_training(type(self)):
            kwargs["training"] = training
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

    def _check_model_input(self, x):
        expected = self.batch_input_shape
        shape = tuple(x.shape)
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            from ..layers.base import fmt_shape
            raise ValueError(f"{self.name}: expected input of shape {fmt_shape(expected)}, got {fmt_shape(shape)}")

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
