"""The Layer base class and the symbolic tensors of the functional API.

The Keras lifecycle, kept small:

* ``__init__`` stores and validates the constructor arguments ("expected ...,
  got ...");
* ``build(input_shape)`` creates the named weights with ``add_weight``, once,
  on the first call (or at once when ``input_shape=`` is given);
* ``call(x, training=False)`` computes the output from a Tensor with engine
  functions, in a handful of lines;
* ``compute_output_shape(input_shape)`` gives the output shape from the shape
  formula (batch axis ``None``); the default runs the layer once on zeros;
* ``get_config()`` returns the constructor arguments.

Regularization (Keras's ``layer.losses``): a layer class declares which of its
weights takes which regularizer argument in ``regularized_weights`` (Dense:
``{"kernel": "kernel_regularizer", "bias": "bias_regularizer"}``); the base then
accepts those arguments, keeps them as attributes, puts them in ``get_config``,
and ``losses`` holds one penalty per trainable weight that has one. Every layer
takes ``activity_regularizer=``, a penalty on its output divided by the batch size.

Weights are Tensors with ``requires_grad=True``; ``get_weights()`` and
``set_weights()`` use Keras's order and shapes.

Shapes everywhere include the batch axis first, ``None`` when unknown.
"""
from __future__ import annotations

import functools
import inspect
import weakref

import numpy as np

from .. import initializers, regularizers
from ..engine import Tensor, no_grad
from ..engine.tensor import CURRENT_LAYER
from ..engine.ops import cast
from ..utils import snake_case, unique_name


def fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(shape, arg, owner):
    """A per-sample shape (an int or a sequence of positive ints or None) as a tuple, or the error."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0) for d in shape):
        raise ValueError(f"{owner}: {arg} must be a tuple of positive integers (or None), e.g. (28, 28, 1), "
                         f"got {shape!r}")
    return tuple(None if d is None else int(d) for d in shape)


class SymbolicTensor:
    """A placeholder flowing through the functional API: a shape and where it came from.

    ``Input(shape)`` makes one; calling a layer on one returns another that
    remembers the layer and its inputs. ``Model(inputs, outputs)`` replays them.
    """

    def __init__(self, shape, dtype="float32", layer=None, parents=(), kwargs=None, index=None, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.layer = layer
        self.parents = tuple(parents)
        self.kwargs = kwargs or {}
        self.index = index  # position in a tuple-valued layer output, else None
        self.name = name
        self.node_index = 0  # which call of ``layer`` made this tensor (Keras's "shared[1][0]")
        if layer is not None and not parents:  # an Input: its layer's input and output are this tensor
            layer._call_sites.append((self, self))

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={fmt_shape(self.shape)} from {self.layer.name if self.layer else 'input'}>"


def positive_int(owner, arg, value) -> int:
    """``value`` as an int if it is a positive integer, else a TypeError/ValueError naming ``owner`` and ``arg``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {arg} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {arg} must be a positive integer, got {value}")
    return int(value)


def is_symbolic(x):
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, SymbolicTensor) for v in x)


def _marking_built(build):
    """``build`` followed by ``self.built = True`` (only when it returns without an error)."""
    @functools.wraps(build)
    def build_and_mark(self, *args, **kwargs):
        out = build(self, *args, **kwargs)
        self.built = True
        return out
    build_and_mark.marks_built = True
    return build_and_mark


# The mode of the layer call in progress (True: training). A layer called without ``training=``
# takes it from here, so the layers inside a model, or inside a subclassed model's ``call``
# that does not pass it on, run in the mode the model was called in, as Keras's call context does.
TRAINING = [False]

# The version of the layer structure: bumped whenever a layer gains or loses a sublayer or a
# weight, a public attribute is set (a regularizer, ``axis``...), or ``trainable`` is toggled
# (``structure_changed``). What follows from the structure alone (the flattened layer tree, a
# model's weights in Keras's order, the regularized weights, an input shape already checked)
# is cached per layer under this number, so a training step does not walk the tree or check
# the same shapes again; any change anywhere makes every cache stale.
STRUCTURE = [0]


def structure_changed():
    """Make every cached layer tree and weight list stale (see ``STRUCTURE``)."""
    STRUCTURE[0] += 1


def _holds_layers(value) -> bool:
    """Whether an attribute value is a Layer or a list / tuple holding one (what ``_sublayers`` finds)."""
    if isinstance(value, Layer):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, Layer) for v in value)


# The weights created with ``add_weight(trainable=False)``: states that their layer updates
# itself and no optimizer touches. Weak, so a weight goes from it with its layer.
_STATE_WEIGHTS = weakref.WeakSet()


class Layer:
    """Base class of every layer. See the module docstring for the lifecycle."""

    #: Embedding takes integer ids: the base then leaves its input uncast.
    accepts_integer_input = False

    #: weight name -> the constructor argument that holds its regularizer (see ``losses``)
    regularized_weights = {}

    def __init__(self, name=None, dtype=None, input_shape=None, trainable=True, input_dim=None,
                 activity_regularizer=None, **kwargs):
        chosen = {arg: kwargs.pop(arg, None) for arg in dict.fromkeys(self.regularized_weights.values())}
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        for arg, value in {**chosen, "activity_regularizer": activity_regularizer}.items():
            setattr(self, arg, self.check_regularizer(arg, value))
        self._losses = []       # activity penalties (and add_loss) of the latest outermost call
        try:
            self.dtype = np.dtype(dtype or "float32")
        except TypeError:  # NumPy's "data type 'x' not understood" names neither the layer nor the argument
            raise TypeError(f"{self.name}: dtype must be 'float32' or 'float64', got {dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):  # the kernels are compiled for these two
            raise TypeError(f"{self.name}: dtype must be a floating type, 'float32' or 'float64', got {self.dtype}")
        self.built = False
        self._weight_list = []  # [(name, Tensor)] in creation order; ``weights`` gives Keras's order
        self._call_sites = []   # [(input, output)] of each symbolic call, in call order
        self._trainable = bool(trainable)
        if input_shape is None and input_dim is not None:
            input_shape = (input_dim,)
        if input_shape is not None:
            input_shape = (None,) + check_shape(input_shape, "input_shape", self.name)
        self.batch_input_shape = input_shape
        self.input_shape = None
        self.output_shape = None

    def __getstate__(self):
        """The instance dict for pickle and deepcopy, less the structure caches (``cached``,
        ``_accepted``): their version number means nothing in another process or copy."""
        state = dict(self.__dict__)
        state.pop("_structure_cache", None)
        state.pop("_accepted", None)
        return state

    def __setattr__(self, key, value):
        """Set the attribute; a public one (a weight, a regularizer, ``axis``...) or a sublayer (a list
        of them) changes the structure (``STRUCTURE``). Private ones (caches) do not."""
        if key[0] != "_" or _holds_layers(value):
            STRUCTURE[0] += 1
        object.__setattr__(self, key, value)

    # ----------------------------------------------------------------- weights
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freezing a layer (``layer.trainable = False``) stops gradients to its weights; unfreezing
        gives them back to the weights created trainable (a non-trainable one never gets any).
        A model passes the flag on to each of its layers, as Keras does."""
        self._trainable = bool(value)
        structure_changed()
        for layer in getattr(self, "layers", ()):
            layer.trainable = value
        for _, w in self._weight_list:
            w.requires_grad = self._trainable and w not in _STATE_WEIGHTS

    def check_initializer(self, arg, value):
        """``value`` if ``initializers.get`` accepts it, else the error naming this layer and ``arg``."""
        try:
            initializers.get(value)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{self.name}: {arg}: {err}") from None
        return value

    def check_regularizer(self, arg, value):
        """``regularizers.get(value)``, or its error naming this layer and ``arg``."""
        try:
            return regularizers.get(value)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{self.name}: {arg}: {err}") from None

    def add_weight(self, name, shape, initializer="zeros", trainable=True) -> Tensor:
        """Create a weight Tensor of ``shape`` drawn from ``initializer`` in the layer's dtype.

        ``trainable=False`` makes a state that the layer updates itself (BatchNormalization's
        moving statistics): it never gets a gradient and no optimizer changes it, but it is in
        ``weights`` (after the trainable ones, as in Keras), ``get_weights`` and weight files.
        """
        try:
            init = initializers.get(initializer)
            value = np.asarray(init(tuple(shape), dtype=self.dtype), dtype=self.dtype)
        except (ValueError, TypeError) as err:  # e.g. an orthogonal initializer for a 1-D bias
            raise type(err)(f"{self.name}: cannot initialize weight {name!r} of shape {tuple(shape)} "
                            f"with {initializer!r}: {err}") from None
        w = Tensor(value, requires_grad=trainable and self.trainable, name=f"{self.name}/{name}")
        self._weight_list.append((name, w))
        if not trainable:
            _STATE_WEIGHTS.add(w)
        structure_changed()
        return w

    def _keras_order(self):
        """[(name, Tensor)]: the weights created trainable, then the non-trainable ones (Keras's order)."""
        return ([e for e in self._weight_list if e[1] not in _STATE_WEIGHTS]
                + [e for e in self._weight_list if e[1] in _STATE_WEIGHTS])

    @property
    def weights(self):
        """Every weight in Keras's order: those created trainable, then the non-trainable ones."""
        return [w for _, w in self._keras_order()]

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not w.requires_grad]

    def get_weights(self):
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights):
        """Replace the weights (Keras order). Checks every shape before changing any."""
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"{self.name}: set_weights expected {len(own)} arrays "
                             f"({[w.shape for w in own]}), got {len(weights)}")
        arrays = [np.asarray(v) for v in weights]
        for (name, w), v in zip(self._keras_order(), arrays):
            if v.shape != w.shape:
                raise ValueError(f"{self.name}: weight {name!r} has shape {w.shape}, got an array of shape {v.shape}")
        for w, v in zip(own, arrays):
            w.data = v.astype(self.dtype, copy=True)

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    # --------------------------------------------------------------- lifecycle
    def build(self, input_shape):
        self.built = True

    def call(self, x, training=False):  # pragma: no cover - abstract
        raise NotImplementedError(f"abstract: {type(self).__name__} must define call()")

    def validate_input_shape(self, input_shape):
        """Raise ValueError if ``input_shape`` is not acceptable (rank, fixed sizes)."""

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape`` (batch axis first, may be None).

        The default runs the layer once on zeros with batch 1; layers override
        it with their formula.
        """
        shape = tuple(1 if d is None else d for d in input_shape)
        dtype = np.int64 if self.accepts_integer_input else self.dtype
        kwargs = {"training": False} if takes_training(type(self)) else {}   # a user's call(self, x) too
        with no_grad():
            y = self.call(Tensor(np.zeros(shape, dtype=dtype)) if not self.accepts_integer_input
                          else np.zeros(shape, dtype=dtype), **kwargs)
        if isinstance(y, (tuple, list)):
            return tuple((input_shape[0],) + t.shape[1:] for t in y)
        return (input_shape[0],) + y.shape[1:]

    def build_from_shape(self, input_shape):
        """Validate ``input_shape`` and build the layer on it (first call)."""
        input_shape = tuple(input_shape)
        self.validate_input_shape(input_shape)
        if not self.built:
            n_weights = len(self._weight_list)
            try:
                self.build(input_shape)
            except BaseException:  # a build that fails half-way leaves no weights behind
                del self._weight_list[n_weights:]
                structure_changed()
                raise
            self.built = True
            self.input_shape = input_shape
        out = self.compute_output_shape(input_shape)
        self.output_shape = out
        return out

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        for arg in dict.fromkeys(self.regularized_weights.values()):
            config[arg] = regularizers.serialize(getattr(self, arg, None))
        if getattr(self, "activity_regularizer", None) is not None:    # Keras writes it only when set
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        """A new, unbuilt layer from ``get_config()``'s dict: ``cls(**config)``."""
        return cls(**config)

    # ------------------------------------------------------------------ losses
    def add_loss(self, loss):
        """Add a scalar Tensor to ``losses`` (from inside ``call``); kept until the next outermost call."""
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            raise ValueError(f"{self.name}: add_loss takes a scalar Tensor computed in call(), got "
                             f"{type(loss).__name__} of shape {getattr(loss, 'shape', None)}")
        self._losses.append(loss)

    @property
    def losses(self):
        """The penalties to add to the loss: a list of scalar Tensors, differentiable, in Keras's order.

        First the activity penalties of the latest outermost call, this layer's then its
        sublayers' (each ``activity_regularizer(y) / N`` for an output y of batch size N);
        then, recomputed from the current weights on every access, ``R(W)`` for each
        trainable weight W whose layer gives it a regularizer, in weight order.
        """
        out = [loss for layer in flat_layers(self) for loss in layer.__dict__.get("_losses", ())]
        for w, reg in cached(self, "regularized", _regularized_weights):
            if w.requires_grad:
                out.append(reg(w))
        return out

    def _record_activity(self, y):
        """Append ``activity_regularizer(t) / N`` for each output Tensor t of batch size N (0 when N = 0)."""
        for t in (y if isinstance(y, (tuple, list)) else (y,)):
            if isinstance(t, Tensor):
                penalty = self.activity_regularizer(t)
                if t.ndim > 0:
                    penalty = penalty / t.shape[0] if t.shape[0] else penalty * 0
                self._losses.append(penalty)

    # -------------------------------------------------------------------- call
    def _convert_input(self, x):
        if self.accepts_integer_input:
            return x
        if isinstance(x, Tensor):
            return x if x.dtype == self.dtype else cast(x, self.dtype)
        if isinstance(x, (list, tuple)):
            raise TypeError(f"{self.name}: expected one array or Tensor as input, got a {type(x).__name__}")
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: input must be numeric, got dtype {arr.dtype}")
        return Tensor(arr, dtype=self.dtype)

    def _checked_input(self, x):
        """(x as a Tensor, or as given to a layer taking integer ids; whether the layer was built before).

        Converts x, builds the layer on its first call and validates the input shape. An input
        that passes unconverted (a Tensor, or an ndarray of the layer's dtype) is remembered by
        (dtype, rank, per-sample shape) under the current ``STRUCTURE`` (``_accepted``): a later
        call on the same kind of input skips this, as nothing it checks can change without the
        structure changing (weights, sublayers and public attributes such as ``axis`` all bump it).
        """
        raw, x = x, self._convert_input(x)
        try:
            shape = tuple(np.shape(x.data if isinstance(x, Tensor) else x))
        except ValueError:  # a ragged nested list
            raise ValueError(f"{self.name}: the input is ragged: its rows must all have the same shape") from None
        if not shape:
            raise ValueError(f"{self.name}: expected an input with a batch axis (N, ...), got a scalar")
        was_built = self.built
        if not was_built:
            self.build_from_shape((None,) + shape[1:])
        else:
            self.validate_input_shape((None,) + shape[1:])
        data = x.data if type(x) is Tensor else x
        if type(data) is np.ndarray and (raw is x or raw is data):   # taken as it is, or wrapped as it is
            self.__dict__["_accepted"] = (STRUCTURE[0], data.dtype, data.ndim, data.shape[1:])
        return x, was_built

    def __call__(self, x, training=None, **kwargs):
        kind = type(x)
        data = x.data if kind is Tensor else x if kind is np.ndarray else None
        if data is not None and self.__dict__.get("_accepted") == (STRUCTURE[0], data.dtype, data.ndim,
                                                                   data.shape[1:]):
            was_built = True                   # checked before, on an input of this kind (_checked_input)
            if kind is np.ndarray and not self.accepts_integer_input:
                x = Tensor(x)                  # an array of the layer's dtype, wrapped as it is
        elif is_symbolic(x):
            return self._call_symbolic(x, kwargs)
        else:
            x, was_built = self._checked_input(x)
        if training is None:                   # not given: the enclosing call's mode (Keras's call context)
            training = TRAINING[0]
        if takes_training(type(self)):
            kwargs["training"] = training
        mask = mask_of(x) if _MASKS else None
        if mask is not None and "mask" not in kwargs and _takes_mask(type(self)):
            kwargs["mask"] = mask              # a layer whose call takes mask= gets its input's
        outer = CURRENT_LAYER[0]
        if outer is None:
            begin_call(self)
        CURRENT_LAYER[0] = self.name           # the graph's nodes name this layer
        outer_training, TRAINING[0] = TRAINING[0], bool(training)
        try:
            y = self.call(x, **kwargs)
            if self.activity_regularizer is not None:
                self._record_activity(y)
        except BaseException:  # e.g. ids out of range: a failed first call leaves the layer unbuilt, as it was
            if not was_built:
                del self._weight_list[:]
                structure_changed()
                self.built = False
                self.input_shape = self.output_shape = None
            raise
        finally:
            CURRENT_LAYER[0] = outer
            TRAINING[0] = outer_training
        if mask is not None or self._makes_mask:
            y_mask = self.compute_mask(x, mask)
            # passed on only while the output keeps the (batch, time) axes, as in Keras
            if (y_mask is not None and isinstance(y, Tensor) and y.ndim == y_mask.ndim + 1
                    and y.shape[:y_mask.ndim] == y_mask.shape):
                _set_mask(y, y_mask)
        return y

    _makes_mask = False   # whether the class defines its own compute_mask (set by __init_subclass__)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a class with its own compute_mask (Embedding) may make a mask from none: __call__ asks it
        cls._makes_mask = cls.compute_mask is not Layer.compute_mask
        # a class's own build() marks the layer built when it returns, as Keras's does, so that
        # layer.build(shape) then layer.set_weights(...) keeps those weights at the first call
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "marks_built", False):
            cls.build = _marking_built(build)

    def compute_mask(self, inputs, mask=None):
        """The padding mask of this layer's output, given its input's ``mask`` (None: no padding).

        The default passes ``mask`` on (``__call__`` keeps it while the output has
        the (batch, time) axes); Embedding(mask_zero=True) makes one.
        """
        return mask

    def _call_symbolic(self, x, kwargs):
        if isinstance(x, (list, tuple)):
            if len(x) != 1:
                raise ValueError(f"{self.name}: layers here take one input, got {len(x)}")
            x = x[0]
        out = self.build_from_shape(x.shape)
        if out and isinstance(out[0], tuple):  # several outputs (e.g. return_state)
            y = tuple(SymbolicTensor(s, self.dtype, self, (x,), kwargs, index=i) for i, s in enumerate(out))
        else:
            y = SymbolicTensor(out, self.dtype, self, (x,), kwargs)
        sites = self.__dict__.setdefault("_call_sites", [])
        for t in (y if isinstance(y, tuple) else (y,)):
            t.node_index = len(sites)
        sites.append((x, y))
        return y

    # ------------------------------------------------ symbolic input and output
    def _call_site_value(self, position, what):
        """The input (position 0) or output (1) of the layer's first symbolic call, as Keras 3 gives."""
        sites = self.__dict__.get("_call_sites")
        if not sites:
            raise AttributeError(f"The layer {self.name} has never been called and thus has no defined {what}: "
                                 f"call it on a tensor from Input(shape), or build the Sequential model that "
                                 f"holds it with an Input(shape) or input_shape= first")
        value = sites[0][position]
        return list(value) if isinstance(value, tuple) else value

    @property
    def input(self):
        """The SymbolicTensor this layer was first called on in a functional or built Sequential graph."""
        return self._call_site_value(0, "input")

    @property
    def output(self):
        """The SymbolicTensor(s) of the layer's first call (a list for several outputs, e.g. return_state)."""
        return self._call_site_value(1, "output")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _sublayers(layer):
    """The layers inside ``layer``: a model's ``layers``, else the Layer attributes (and lists of them)."""
    if isinstance(getattr(type(layer), "layers", None), property):
        return layer.layers
    found = []
    for value in vars(layer).values():
        for item in (value if isinstance(value, (list, tuple)) else (value,)):
            if isinstance(item, Layer):
                found.append(item)
    return found


def _flatten_layers(layer):
    """``layer`` and every layer inside it, depth first, each once."""
    out, seen, stack = [], set(), [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend(reversed(_sublayers(current)))
    return out


def flat_layers(layer):
    """``_flatten_layers(layer)`` as a tuple, kept until the structure changes (``STRUCTURE``)."""
    return cached(layer, "flat", lambda root: tuple(_flatten_layers(root)))


def cached(layer, key, compute):
    """``compute(layer)``, kept on ``layer`` until the layer structure changes anywhere (``STRUCTURE``).

    For values that follow from the structure alone (which layers, which weights, which
    regularizers), never from the weights' values or ``requires_grad`` flags, which callers
    read afresh. The cache sits in the instance dict, past ``__setattr__``, and holds no
    Layer directly, so ``_sublayers`` never finds it.
    """
    entry = layer.__dict__.get("_structure_cache")
    if entry is None or entry[0] != STRUCTURE[0]:
        entry = layer.__dict__["_structure_cache"] = (STRUCTURE[0], {})
    values = entry[1]
    if key not in values:
        values[key] = compute(layer)
    return values[key]


def _regularized_weights(root):
    """[(W, R)]: each weight in ``root``'s layer tree whose layer gives it a regularizer R, once, in order."""
    out, seen = [], set()
    for layer in flat_layers(root):
        for name, w in layer.__dict__.get("_weight_list", ()):
            arg = layer.regularized_weights.get(name)
            reg = getattr(layer, arg, None) if arg else None
            if reg is not None and id(w) not in seen:
                seen.add(id(w))
                out.append((w, reg))
    return tuple(out)


def begin_call(layer):
    """At the start of an outermost call (no layer or model call around it), forget the losses
    the previous call left on ``layer`` and the layers inside it, as Keras clears them; the calls
    nested inside add theirs, so a layer called twice in one forward pass keeps both."""
    if CURRENT_LAYER[0] is None:
        for inner in flat_layers(layer):
            if inner.__dict__.get("_losses"):
                inner.__dict__["_losses"] = []


# The padding masks of layer outputs, as Keras keeps ``_keras_mask`` on a layer's output:
# id(output Tensor) -> (weak reference to it, mask (N, T) bool). Masks are a layer concern,
# so the engine's Tensor carries none; an entry goes when its Tensor does.
_MASKS: dict = {}


def mask_of(y):
    """The padding mask (N, T) bool that layers attached to their output ``y``, or None.

    Set by ``Embedding(mask_zero=True)`` and passed on by every layer whose output
    keeps the (batch, time) axes; SimpleRNN and the loss in ``fit`` read it.
    """
    entry = _MASKS.get(id(y))
    return entry[1] if entry is not None and entry[0]() is y else None


def _set_mask(y, mask):
    key = id(y)

    def forget(ref):
        entry = _MASKS.get(key)
        if entry is not None and entry[0] is ref:
            del _MASKS[key]

    _MASKS[key] = (weakref.ref(y, forget), mask)


_TAKES_MASK = {}


def _takes_mask(cls) -> bool:
    """Whether ``cls.call`` accepts ``mask=``."""
    if cls not in _TAKES_MASK:
        _TAKES_MASK[cls] = "mask" in inspect.signature(cls.call).parameters
    return _TAKES_MASK[cls]


_TAKES_TRAINING = {}


def takes_training(cls) -> bool:
    """Whether ``cls.call`` accepts ``training=`` (user-written calls often do not)."""
    if cls not in _TAKES_TRAINING:
        params = inspect.signature(cls.call).parameters
        _TAKES_TRAINING[cls] = "training" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _TAKES_TRAINING[cls]
