"""``Sequential``: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from ..layers.base import Layer, SymbolicTensor
from ..layers.core import InputLayer
from ..utils import unique_name
from .model import Model, check_build_shape


class Sequential(Model):
    """``Sequential([layers])`` or ``Sequential().add(layer)``.

    The first element may be an ``Input(shape)``, or the first layer may carry
    ``input_shape=``: the model is then built at once, so ``summary()`` shows
    every shape before any data is seen. Otherwise it is built on first call.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name or unique_name("sequential"), **kwargs)
        self._stack = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            if self._stack:
                raise ValueError(f"{self.name}: an Input can only be the first element")
            self.batch_input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() takes a Layer, got {type(layer).__name__}")
        self._stack.append(layer)
        self._tracked.append(layer)
        if len(self._stack) == 1 and self.batch_input_shape is None and layer.batch_input_shape is not None:
            self.batch_input_shape = layer.batch_input_shape
        if self.batch_input_shape is not None:
            self._build_stack(self.batch_input_shape)

    def _build_stack(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._stack:
            shape = layer.build_from_shape(shape)
        self.built = True
        self.input_shape, self.output_shape = tuple(input_shape), shape

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
        for layer in self._stack:
            x = layer(x, training=training)
        return x

    def pop(self):
        layer = self._stack.pop()
        self._tracked.remove(layer)
        return layer
