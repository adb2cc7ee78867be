"""Weight and activity penalties added to the training loss (Keras 3's ``keras.regularizers``).

A regularizer maps a Tensor W of any shape to a scalar Tensor, its penalty:

  L1(l1=0.01)              R(W) = l1 * sum |W_i|
  L2(l2=0.01)              R(W) = l2 * sum W_i^2
  L1L2(l1=0.0, l2=0.0)     R(W) = l1 * sum |W_i| + l2 * sum W_i^2

and its gradient, which backward() adds to the weight's own, is

  dR/dW_i = l1 * sign(W_i) + 2 * l2 * W_i          (sign(0) = 0, as TensorFlow's abs)

Layers take them as ``kernel_regularizer=``, ``bias_regularizer=``,
``activity_regularizer=`` (and ``recurrent_regularizer=``,
``embeddings_regularizer=``): by object, by name (``"l1"``, ``"l2"``: factor 0.01;
``"l1_l2"``: both 0.01), or any callable Tensor -> scalar Tensor. The layer's
``losses`` lists the penalties (``layers.base``) and ``fit`` adds them to the loss.

Names as Keras 3.15's ``regularizers.get`` reads them: ``"l1"``, ``"l2"``, the class
names ``"L1"``, ``"L2"``, ``"L1L2"``, and ``"l1l2"`` (the last two: ``L1L2()``, whose
factors are 0, so no penalty at all). ``"l1_l2"`` is the name Keras's documentation
gives (``Dense(3, kernel_regularizer='l1_l2')``, both factors 0.01, as Keras 2's
``l1_l2()``); Keras 3.15's own ``get`` rejects it, numbanet takes it as documented.
"""
from __future__ import annotations

import math

import numpy as np

from . import keras_names, utils
from .engine import Tensor
from .engine import ops


def _factor(owner, arg, value, default):
    """``value`` (None: ``default``) as a float if it is a finite number >= 0, else the error naming ``arg``."""
    if value is None:
        return float(default)
    utils.check_number(owner, arg, value, at_least=0)
    if math.isinf(value):
        raise ValueError(f"{owner}: {arg} must be a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """Base class: ``reg(W)`` is the penalty, a scalar Tensor in W's dtype; ``get_config`` its factors."""

    def __call__(self, x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        return Tensor(np.zeros((), dtype=x.dtype))

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


def _l1(x, factor):
    """factor * sum |x|: a scalar Tensor; |x|' = sign(x)."""
    return ops.sum(ops.abs(x)) * factor


def _l2(x, factor):
    """factor * sum x^2: a scalar Tensor; (x^2)' = 2x."""
    return ops.sum(ops.square(x)) * factor


class L1L2(Regularizer):
    """R(W) = l1 * sum |W_i| + l2 * sum W_i^2; a zero factor's term is left out (no graph node).

    Defaults 0.0 for both (Keras keeps them so that ``L1L2(l2=0.1)`` has no L1 term);
    the name ``"l1_l2"`` gives 0.01 for both.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor("L1L2", "l1", l1, 0.0)
        self.l2 = _factor("L1L2", "l2", l2, 0.0)

    def __call__(self, x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        terms = ([_l1(x, self.l1)] if self.l1 else []) + ([_l2(x, self.l2)] if self.l2 else [])
        if not terms:
            return Tensor(np.zeros((), dtype=x.dtype))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """R(W) = l1 * sum |W_i|.   dR/dW_i = l1 * sign(W_i)."""

    def __init__(self, l1=0.01):
        self.l1 = _factor("L1", "l1", l1, 0.01)

    def __call__(self, x):
        return _l1(x if isinstance(x, Tensor) else Tensor(np.asarray(x)), self.l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """R(W) = l2 * sum W_i^2.   dR/dW_i = 2 * l2 * W_i."""

    def __init__(self, l2=0.01):
        self.l2 = _factor("L2", "l2", l2, 0.01)

    def __call__(self, x):
        return _l2(x if isinstance(x, Tensor) else Tensor(np.asarray(x)), self.l2)

    def get_config(self):
        return {"l2": self.l2}


# aliases as Keras exports them (keras.regularizers.l1 is the class L1)
l1, l2, l1_l2 = L1, L2, L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2, "Regularizer": Regularizer}

# lower-case keys: utils.one_of matches names in any case
_BY_NAME = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": lambda: L1L2(l1=0.01, l2=0.01),
            "regularizer": Regularizer}


def serialize(regularizer):
    """A built-in regularizer as Keras 3 writes it in a layer's config
    (``{"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, "registered_name": None}``);
    None stays None, any other callable is returned as it is."""
    if regularizer is None:
        return None
    if type(regularizer) in _CLASSES.values():
        return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
                "config": regularizer.get_config(), "registered_name": None}
    return regularizer


def deserialize(config):
    """The regularizer a ``serialize`` dict describes (``class_name`` and ``config``)."""
    name = config.get("class_name")
    if name not in _CLASSES:
        raise ValueError(f"unknown regularizer class_name {name!r} in {config!r}; numbanet has "
                         f"{', '.join(sorted(_CLASSES))}")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise TypeError(f"regularizer config must be a dict of its arguments, got {inner!r}")
    try:
        return _CLASSES[name].from_config(inner)
    except TypeError as err:
        raise TypeError(f"regularizer {name}: {err}") from None


def get(identifier):
    """A regularizer from None (none), a name, a ``serialize`` dict, a class, or a callable (itself)."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return keras_names.lookup("regularizer", identifier, _BY_NAME)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"regularizer must be a name ('l1', 'l2', 'l1_l2'), a Regularizer such as L2(0.01), or a "
                    f"callable weight -> scalar Tensor, got {identifier!r}")
