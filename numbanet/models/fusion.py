"""The fusion pass: a Conv2D whose only reader is a MaxPooling2D runs with it as one engine node.

In a Sequential or functional model, the pair

    y = act(conv(x, kernel) + bias)         Conv2D, act relu or none        (N, OH, OW, F)
    p = max_pool(y)                         MaxPooling2D, any pool/padding  (N, PH, PW, F)

runs as ``functional.conv2d_relu_maxpool`` (``engine/conv_pool.py``): the fast tier
writes p chunk by chunk without storing y, keeps the pool's arg-max, and its backward
writes the convolution's gradient straight from the pooled gradient
(``fast/conv_pool.py``). Same weights, same numbers within rounding: the layers keep
their weights, names, ``summary()``, ``get_layer``, saving and symbolic
``layer.output``; only the call at run time changes. ``model.trace(x, y)`` shows the
node as ``Conv2DReluMaxPool`` of layer "conv2d+max_pooling2d" with the route
"conv+relu+maxpool, fused: ...".

When it applies (each model's own layer calls; checked when the model runs):

* fusion is on (``set_fusion``) and the fast tier is active: the reference tier runs
  the two layers as written, so each tier tests the other;
* a ``Conv2D`` (the class itself, activation "relu" or none, no activity regularizer)
  whose output is read by exactly one layer call, a ``MaxPooling2D`` (the class
  itself, no activity regularizer), and by nothing else: not a model output, not a
  second layer (a feature extractor ``Model(inputs, [l.output for l in layers])``
  keeps every output, so it fuses nothing);
* both layers built, the same dtype, no padding mask on the input.

Anything else runs the layers one by one, as does any code that calls the layers
itself (a subclassed model's ``call``).

The switch, for learners who want to see the two nodes::

    nb.set_fusion(False)        # every model runs its layers as written, from the next call on
    with nb.fusion(False):      # for one block
        model.trace(x, y)

The environment variable NUMBANET_FUSION=0 (or 1) sets it for a whole process, read at
import (the benchmarks' workers take it this way).
"""
from __future__ import annotations

import contextlib
import os

from .. import activations
from ..engine import functional as F
from ..engine import tiers
from ..engine.tensor import CURRENT_LAYER
from ..layers.base import mask_of
from ..layers.conv import Conv2D
from ..layers.pooling import MaxPooling2D

ENV_VAR = "NUMBANET_FUSION"


def _default():
    """On, unless NUMBANET_FUSION says "0"; any value other than "0" or "1" raises."""
    value = os.environ.get(ENV_VAR, "1").strip() or "1"
    if value not in ("0", "1"):
        raise ValueError(f"numbanet: the environment variable {ENV_VAR} must be 0 (fusion off) or 1 (on), "
                         f"got {value!r}")
    return value == "1"


_STATE = {"on": _default()}

#: The Conv2D activations the fused node computes: the layer's activation -> its argument.
_FUSED_ACTIVATIONS = {id(activations.relu): "relu", id(activations.linear): None}


def set_fusion(on: bool) -> bool:
    """Turn the fusion pass on (the default) or off for every model; returns the previous setting."""
    if not isinstance(on, bool):
        raise TypeError(f"set_fusion: on must be True or False, got {type(on).__name__} {on!r}")
    previous, _STATE["on"] = _STATE["on"], on
    return previous


def get_fusion() -> bool:
    """Whether the fusion pass is on."""
    return _STATE["on"]


@contextlib.contextmanager
def fusion(on: bool):
    """Context manager: the fusion pass on or off inside the block, as before after it."""
    previous = set_fusion(on)
    try:
        yield
    finally:
        set_fusion(previous)


def _active():
    return _STATE["on"] and tiers.get_kernels() == "fast"


class FusedConvPool:
    """A Conv2D and the MaxPooling2D that alone reads its output, called as one step of a model.

    Not a layer: it owns no weights and is never in ``model.layers``; it reads the
    Conv2D's kernel and bias at each call. Where a condition of the module docstring
    fails at call time (a layer not built yet, an activity regularizer, a mask), it
    calls the two layers one after the other.
    """

    def __init__(self, conv, pool):
        self.conv, self.pool = conv, pool
        self.name = f"{conv.name}+{pool.name}"

    def _fusable(self, x):
        conv, pool = self.conv, self.pool
        return (conv.built and pool.built and id(conv.activation) in _FUSED_ACTIVATIONS
                and conv.activity_regularizer is None and pool.activity_regularizer is None
                and conv.dtype == pool.dtype and mask_of(x) is None)

    def __call__(self, x, training=False, **kwargs):
        conv, pool = self.conv, self.pool
        if not (_active() and self._fusable(x)):
            return pool(conv(x, training=training, **kwargs), training=training)
        x = conv._convert_input(x)
        shape = (None,) + tuple(x.shape[1:])
        conv.validate_input_shape(shape)                              # the layers' own errors
        pool.validate_input_shape(conv.compute_output_shape(shape))
        outer, CURRENT_LAYER[0] = CURRENT_LAYER[0], self.name         # the node's layer in traces
        try:
            return F.conv2d_relu_maxpool(x, conv.kernel, conv.bias, conv.strides, conv.padding, pool.pool_size,
                                         pool.strides, pool.padding, _FUSED_ACTIVATIONS[id(conv.activation)])
        finally:
            CURRENT_LAYER[0] = outer


def _pairable(conv, pool):
    return type(conv) is Conv2D and type(pool) is MaxPooling2D


def sequential_steps(model):
    """The layers a Sequential model calls in turn, each fusable Conv2D -> MaxPooling2D pair as one
    ``FusedConvPool`` (the plain stack when the pass is off or the reference tier is active)."""
    stack = model._stack
    if not _active():
        return stack
    key = tuple(map(id, stack))
    cached = model.__dict__.get("_fusion_steps")
    if cached is not None and cached[0] == key:
        return cached[1]
    steps, i = [], 0
    while i < len(stack):
        if i + 1 < len(stack) and _pairable(stack[i], stack[i + 1]):
            steps.append(FusedConvPool(stack[i], stack[i + 1]))
            i += 2
        else:
            steps.append(stack[i])
            i += 1
    model.__dict__["_fusion_steps"] = (key, steps)
    return steps


def _plain_call(sym):
    """Whether a symbolic layer call passed no arguments beyond ``training`` and gave one output."""
    return sym.index is None and not (set(sym.kwargs) - {"training"})


def functional_nodes(model):
    """A functional model's (layer, parents, output symbol) calls in execution order, each fusable
    Conv2D -> MaxPooling2D pair as one (``FusedConvPool``, the conv's parents, the pool's output)
    at the conv's place (the plain ``model._nodes`` when the pass is off or the reference tier is active)."""
    nodes = model._nodes
    if not _active():
        return nodes
    cached = model.__dict__.get("_fusion_nodes")
    if cached is not None and cached[0] is nodes:
        return cached[1]
    readers = {}                                  # id(symbol) -> the node calls that read it
    for node in nodes:
        for parent in node[1]:
            readers.setdefault(id(parent), []).append(node)
    outputs = {id(sym) for sym in model._output_symbols}
    fused, dropped = {}, set()
    for node in nodes:
        layer, parents, sym = node
        reads = readers.get(id(sym), [])
        if (len(reads) == 1 and id(sym) not in outputs and _plain_call(sym)
                and _pairable(layer, reads[0][0]) and len(reads[0][1]) == 1 and _plain_call(reads[0][2])):
            pool_node = reads[0]
            fused[id(sym)] = (FusedConvPool(layer, pool_node[0]), parents, pool_node[2])
            dropped.add(id(pool_node[2]))
    steps = [fused.get(id(sym), (layer, parents, sym)) for layer, parents, sym in nodes if id(sym) not in dropped]
    model.__dict__["_fusion_nodes"] = (nodes, steps)
    return steps
