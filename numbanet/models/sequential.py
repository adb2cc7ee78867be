"""``Sequential``: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from ..layers.base import Layer, SymbolicTensor, is_symbolic, structure_changed
from ..layers.core import Input, InputLayer
from ..utils import unique_name
from .fusion import sequential_steps
from .model import Model, check_build_shape


class Sequential(Model):
    """``Sequential([layers])`` or ``Sequential().add(layer)``.

    The first element may be an ``Input(shape)``, or the first layer may carry
    ``input_shape=``: the model is then built at once, so ``summary()`` shows
    every shape before any data is seen. Otherwise it is built on first call.

    Once built, the stack is also traced as a symbolic graph (an Input, then each
    layer called on the previous layer's output), so ``model.input``,
    ``model.output``, ``model.inputs``, ``model.outputs`` and every layer's
    ``layer.input`` / ``layer.output`` exist, and a feature extractor is
    ``Model(inputs=model.inputs, outputs=[l.output for l in model.layers])``.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name or unique_name("sequential"), **kwargs)
        self._stack = []
        self._declared_input = None   # the Input(shape) given as the first element, if any
        self._graph = None            # (input SymbolicTensor, [output SymbolicTensor of each layer])
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            if self._stack:
                raise ValueError(f"{self.name}: an Input can only be the first element")
            self.batch_input_shape = layer.shape
            self._declared_input = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() takes a Layer, got {type(layer).__name__}")
        self._stack.append(layer)
        self._tracked.append(layer)
        structure_changed()
        if len(self._stack) == 1 and self.batch_input_shape is None and layer.batch_input_shape is not None:
            self.batch_input_shape = layer.batch_input_shape
        if self.batch_input_shape is not None:
            self._build_stack(self.batch_input_shape)

    def _build_stack(self, input_shape):
        """Build every layer on ``input_shape`` by calling it on the previous layer's symbolic output."""
        self._forget_graph()
        x = self._declared_input
        if x is None or x.shape != tuple(input_shape):
            x = Input(tuple(input_shape[1:]), batch_size=input_shape[0], name=unique_name(f"{self.name}_input"))
        outputs = []
        for layer in self._stack:
            outputs.append(layer(x))
            x = outputs[-1]
        self._graph = (outputs[0].parents[0] if outputs else x, outputs)
        self.built = True
        out_shape = tuple(t.shape for t in x) if isinstance(x, tuple) else x.shape  # several outputs: each shape
        self.input_shape, self.output_shape = tuple(input_shape), out_shape

    def _forget_graph(self):
        """Drop the call sites a previous trace left on the layers, so each layer's output is this stack's."""
        if self._graph is None:
            return
        for layer, y in zip(self._stack, self._graph[1]):
            layer._call_sites[:] = [site for site in layer._call_sites if site[1] is not y]
        self._graph = None

    def __call__(self, x, training=False, **kwargs):
        was_built = self.built
        y = super().__call__(x, training=training, **kwargs)
        if not was_built and self._stack and not is_symbolic(x):  # built by its first batch: trace it too
            self._build_stack(self.input_shape)
        return y

    def _symbols(self, what):
        if self._graph is None or not self._graph[1]:
            raise AttributeError(f"Sequential model {self.name!r} has no defined {what} yet: start it with "
                                 f"Input(shape), give its first layer input_shape=, call model.build(shape) "
                                 f"or call it on a batch of data")
        return [self._graph[0]] if what == "inputs" else [self._graph[1][-1]]

    @property
    def input(self):
        """The Input tensor of the built stack (Keras 2's ``model.input``, which tutorials use)."""
        return self._symbols("inputs")[0]

    @property
    def output(self):
        """The last layer's output tensor in the built stack."""
        return self._symbols("outputs")[0]

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape``, the shape of a batch with None
        for its size, e.g. ``(None, 1)`` (Keras's form); without it, the shape the model declares."""
        if input_shape is None:
            input_shape = self.batch_input_shape
        if input_shape is None:
            raise ValueError(f"{self.name}.build: needs the input shape, e.g. model.build((None, 1)) for inputs "
                             f"of 1 feature (None stands for the batch size), since no Input(shape) or "
                             f"input_shape= on the first layer declares it")
        self._build_stack(check_build_shape(f"{self.name}.build", input_shape))

    @property
    def layers(self):
        return list(self._stack)

    def call(self, x, training=False):
        for layer in sequential_steps(self):     # the stack, fused pairs as one step (fusion.py)
            x = layer(x, training=training)
        return x

    def pop(self):
        """Remove the last layer (and its place in the traced graph); the rest stays built."""
        if not self._stack:
            raise ValueError(f"{self.name}: pop() on a model with no layers")
        had_graph = self._graph is not None
        self._forget_graph()
        layer = self._stack.pop()
        self._tracked.remove(layer)
        structure_changed()
        if had_graph and self._stack:
            self._build_stack(self.input_shape)
        return layer
