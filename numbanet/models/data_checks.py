"""Checks of the array data given to fit / evaluate / predict, made once, before any batching.

``prepare_data(model, x, y, what, sample_weight)`` turns x, y and sample_weight
into ndarrays and checks, in this order, so that the first problem is reported
with the shapes of the whole data (never of one batch) and the fix:

* conversion: a ragged list, an object array, strings or complex numbers are a
  TypeError / ValueError naming the argument (Keras rejects object arrays too);
* x has a batch axis and at least one sample; x and y (and sample_weight) have
  the same number of samples;
* floats are cast to the model's dtype; NaN or infinity in x or y is a
  ValueError for fit and evaluate (a NaN loss would ruin every weight), while
  predict lets it through, as Keras does (each row's output depends on that row
  alone, so a NaN row gives a NaN output row);
* x against the model's declared input shape (N, *input_shape), with the
  reshape that fixes a missing or flattened axis (``x.reshape(-1, 1)`` for a
  1-D x into ``input_shape=(1,)``);
* y against the model's output shape under the compiled loss, using the loss's
  own target check on a zero-stride stand-in for the predictions (no forward
  pass, no memory), so a target that cannot fit fails before the first step.

A model of several inputs or outputs (``prepare_multi_io``) takes x and y as lists
(or dicts by input / output name); each array gets the checks above under its own
name (``x[1] ('b')``), and all of them must have the same number of samples.

``prepare_validation(model, validation_data, x, y)`` does the same for
``validation_data`` and also compares its per-sample shapes with the training
data's, so a wrong validation set fails before training, not after an epoch.
"""
from __future__ import annotations

import numpy as np

from ..engine import Tensor
from ..layers.base import fmt_shape


def as_array(value, arg, where):
    """``value`` (ndarray, Tensor, nested list) as a numeric ndarray, or a TypeError/ValueError naming ``arg``."""
    if isinstance(value, Tensor):
        value = value.data
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # NumPy: a ragged nested list ("inhomogeneous shape")
        raise ValueError(f"{where}: {arg} cannot be made into one array: every sample must have the same "
                         f"shape ({err})") from None
    if arr.dtype.kind == "O":
        raise TypeError(f"{where}: {arg} has dtype object (ragged or mixed values); give a numeric array, "
                        f"e.g. np.asarray({arg}, dtype='float32')")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{where}: {arg} must be numeric (float, int or bool), got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{where}: {arg} must have a batch axis, got a scalar")
    return arr


def _finite(arr, arg, where):
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{where}: {arg} contains NaN or infinity (first at index {bad}); "
                         f"remove or impute those samples")


def _cast(arr, dtype):
    if arr.dtype.kind != "f":
        return arr
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, reported by _finite
        return arr.astype(dtype, copy=False)


def _reshape_hint(x_shape, input_shape, x="x"):
    """A reshape of the array ``x`` that gives (N, *input_shape), as text, or '' when none is evident."""
    if any(d is None for d in input_shape):
        return ""
    size = int(np.prod(input_shape))
    if len(x_shape) == 1 and size == 1:
        return f"{x}.reshape(-1, 1)"
    if len(x_shape) == len(input_shape) and input_shape[-1] == 1 and tuple(x_shape[1:]) == tuple(input_shape[:-1]):
        return f"{x}[..., np.newaxis] (the missing last axis of size 1)"
    per_sample = int(np.prod(x_shape[1:])) if len(x_shape) > 1 else 1
    if per_sample == size:
        return f"{x}.reshape(-1, " + ", ".join(str(d) for d in input_shape) + ")"
    return ""


def check_x_against_model(model, x, where):
    """x must be (N, *input_shape) when the model declares its input shape."""
    expected = getattr(model, "batch_input_shape", None)
    if expected is None:
        check_x_against_first_layer(model, x, where)
        return
    check_x_shape(x, expected, "x", where)


def check_x_shape(x, expected, arg, where):
    """``x`` (the array ``arg``) must be (N, *expected[1:]); else the error with the reshape that fixes it."""
    input_shape = tuple(expected[1:])
    fits = x.ndim == len(expected) and all(e is None or e == s for e, s in zip(input_shape, x.shape[1:]))
    if fits:
        return
    hint = _reshape_hint(x.shape, input_shape, arg.split(" ")[0])
    raise ValueError(f"{where}: {arg} has shape {tuple(x.shape)}, but the model expects (N, *input_shape), "
                     f"i.e. {fmt_shape(expected)} for N samples" + (f"; {hint} gives that shape" if hint else ""))


def first_layer(model, input_symbol=None):
    """The one layer that receives x (or the input ``input_symbol``) in a Sequential or functional model, else None.

    A subclassed model's call may use its layers in any order, so it has none.
    """
    stack = getattr(model, "_stack", None)
    if stack is not None:
        return stack[0] if stack else None
    nodes = getattr(model, "_nodes", None)
    if nodes:
        sym = model._input_symbols[0] if input_symbol is None else input_symbol
        takers = {id(layer): layer for layer, parents, _ in nodes if parents[0] is sym}
        return next(iter(takers.values())) if len(takers) == 1 else None
    return None


def check_ids_against_model(model, x, arg, where, input_symbol=None):
    """Integer ids in [0, input_dim) for a model that starts with an Embedding, over the whole of x."""
    from ..engine.sequence import check_ids
    layer = first_layer(model, input_symbol)
    if layer is None or not getattr(layer, "accepts_integer_input", False) or not hasattr(layer, "input_dim"):
        return
    check_ids(x, layer.input_dim, where=f"{where}: {arg} for {layer.name} ({type(layer).__name__})")


def check_x_against_first_layer(model, x, where):
    """Without a declared input shape, the first layer's own shape check, on the whole data's shape."""
    layer = first_layer(model)
    if layer is None:
        return
    try:
        layer.validate_input_shape((None,) + tuple(x.shape[1:]))
    except ValueError as err:
        raise ValueError(f"{where}: x has shape {tuple(x.shape)}, which {layer.name} does not accept: {err}"
                         + _new_axis_hint(layer, x)) from None


def _new_axis_hint(layer, x):
    """The fix when x lacks a last axis of size 1 (a 1-D x for Dense, grey images for Conv2D), else ''."""
    try:
        layer.validate_input_shape((None,) + tuple(x.shape[1:]) + (1,))
    except ValueError:
        return ""
    if x.ndim == 1:
        return "; x.reshape(-1, 1) makes it one feature per sample, (N, 1)"
    return f"; x[..., np.newaxis] adds the missing last axis, {tuple(x.shape) + (1,)}"


def check_y_against_model(model, y, where):
    """y, checked to fit the model's output under the compiled loss (the loss's own target check).

    A y the loss takes by reshaping (same size, another rank, e.g. (N, 3, 1) for an output
    (N, 3), which Keras squeezes) comes back in the output's shape, so that the metrics,
    which compare shapes, see what the loss sees.
    """
    if not getattr(model, "built", False):
        return y
    return check_y_shape(getattr(model, "loss", None), getattr(model, "output_shape", None), model.dtype, y, "y",
                         "the model's output", where)


def check_y_shape(loss, out, dtype, y, arg, output, where):
    """``y`` (the array ``arg``) against ``output`` of shape ``out`` under ``loss`` (see check_y_against_model)."""
    from ..losses import FunctionLoss, Loss
    if (not isinstance(loss, Loss) or isinstance(loss, FunctionLoss)
            or not isinstance(out, tuple) or len(out) < 2 or not all(isinstance(d, (int, np.integer)) for d in out[1:])):
        return y  # unknown output shape or a user's loss: the first batch checks it
    stand_in = np.broadcast_to(np.zeros((), dtype=dtype), (len(y),) + tuple(out[1:]))
    try:
        t = loss.prepare_true(y, stand_in)
    except (ValueError, TypeError) as err:
        detail = str(err).removeprefix(f"{type(loss).__name__}: ")
        raise type(err)(f"{where}: {arg} of shape {tuple(y.shape)} does not fit {output} "
                        f"{fmt_shape((None,) + tuple(out[1:]))} under {type(loss).__name__}: {detail}") from None
    if not loss.sparse and t.shape == stand_in.shape and y.shape != t.shape:
        y = y.reshape(t.shape)
    return y


def prepare_data(model, x, y, what, sample_weight=None, needs_y=True):
    """(x, y, sample_weight) as checked ndarrays for ``model.<what>`` (see the module docstring)."""
    where = f"{model.name}.{what}"
    if getattr(model, "_multi_io", False):
        return prepare_multi_io(model, x, y, what, sample_weight, needs_y)
    if x is None or (needs_y and y is None):
        raise ValueError(f"{where}: needs {'x and y (the targets)' if needs_y else 'x'}, "
                         f"got x={type(x).__name__}, y={type(y).__name__}")
    x = _cast(as_array(x, "x", where), model.dtype)
    check_nan = what != "predict"
    if check_nan:
        _finite(x, "x", where)
    if y is not None:
        y = _cast(as_array(y, "y", where), model.dtype)
        _finite(y, "y", where)
        if len(y) != len(x):
            raise ValueError(f"{where}: x and y must have the same number of samples, "
                             f"got x with shape {x.shape} and y with shape {y.shape}")
    if sample_weight is not None:
        sample_weight = as_array(sample_weight, "sample_weight", where).astype(model.dtype)
        _finite(sample_weight, "sample_weight", where)
        if len(sample_weight) != len(x):
            raise ValueError(f"{where}: sample_weight has {len(sample_weight)} entries "
                             f"for {len(x)} samples")
    if len(x) == 0:
        raise ValueError(f"{where}: no samples (x has shape {x.shape})")
    check_x_against_model(model, x, where)
    check_ids_against_model(model, x, "x", where)
    if y is not None:
        y = check_y_against_model(model, y, where)
    return x, y, sample_weight


def prepare_validation(model, validation_data, x, y):
    """(vx, vy) from ``validation_data`` = (x_val, y_val) or (x_val, y_val, sample_weight_val)."""
    where = f"{model.name}.fit (validation_data)"
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        kind = (f"a {type(validation_data).__name__} of {len(validation_data)}"
                if isinstance(validation_data, (tuple, list)) else f"an object of type {type(validation_data).__name__}")
        raise ValueError(f"{where}: validation_data must be a tuple (x_val, y_val), got {kind}")
    vx, vy, _ = prepare_data(model, validation_data[0], validation_data[1], "fit (validation_data)")
    if isinstance(vx, list):  # several inputs or outputs: each array against its training twin
        _same_sample_shapes(where, "x", vx, x, model.input_names)
        _same_sample_shapes(where, "y", vy, y, model.output_names)
        return vx, vy
    if vx.shape[1:] != x.shape[1:]:
        raise ValueError(f"{where}: x_val has samples of shape {vx.shape[1:]} (x_val {vx.shape}), "
                         f"the training x has {x.shape[1:]} (x {x.shape})")

    def squeezed(s):  # (N,) and (N, 1) targets are both valid for the same loss
        return s[:-1] if s and s[-1] == 1 else s
    if squeezed(vy.shape[1:]) != squeezed(y.shape[1:]):
        raise ValueError(f"{where}: y_val has targets of shape {vy.shape[1:]} (y_val {vy.shape}), "
                         f"the training y has {y.shape[1:]} (y {y.shape})")
    return vx, vy


# ------------------------------------------------------------------ several inputs or outputs
def _label(arg, i, name):
    return f"{arg}[{i}] ({name!r})"


def _one_array(value):
    """Whether ``value`` is the data of one input or output: not a dict, nor a list/tuple holding arrays."""
    if isinstance(value, dict):
        return False
    return not (isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (np.ndarray, Tensor)))


def _input_arrays(model, x, where):
    """The arrays of a model of several inputs, in input order, from a list/tuple or a dict by input name."""
    names = model.input_names
    if len(names) == 1 and _one_array(x):
        return [x]
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing:
            raise ValueError(f"{where}: missing data for input {missing[0]!r}: x is a dict with keys {sorted(x)}, "
                             f"the model's inputs are {names}")
        return [x[n] for n in names]
    if isinstance(x, (list, tuple)) and len(x) == len(names):
        return list(x)
    got = f"a {type(x).__name__} of {len(x)}" if isinstance(x, (list, tuple)) else f"one {type(x).__name__}"
    raise ValueError(f"{where}: the model has {len(names)} inputs {names}: give x as a list of {len(names)} arrays "
                     f"in that order or a dict by input name, got {got}")


def _target_arrays(model, y, where):
    """One target array (or None for an output without a loss) per output, from a list/tuple or a dict.

    As in Keras, a list may also give only the targets of the outputs that have a loss, in order.
    """
    names = model.output_names
    losses = getattr(model, "_output_losses", None) or [None] * len(names)
    active = [i for i, loss in enumerate(losses) if loss is not None]
    form = (f"give y as a list of {len(names)} arrays in that order or a dict by output name")
    if len(names) == 1 and _one_array(y):
        ys = [y]
    elif isinstance(y, dict):
        unknown = [k for k in y if k not in names]
        if unknown:
            raise ValueError(f"{where}: y has the key {unknown[0]!r}, which is not an output of the model; "
                             f"its outputs are {names}")
        ys = [y.get(n) for n in names]
    elif isinstance(y, (list, tuple)) and len(y) == len(names):
        ys = list(y)
    elif isinstance(y, (list, tuple)) and len(y) == len(active) and active:
        ys = [None] * len(names)
        for i, v in zip(active, y):
            ys[i] = v
    else:
        got = f"a {type(y).__name__} of {len(y)}" if isinstance(y, (list, tuple)) else f"one {type(y).__name__}"
        raise ValueError(f"{where}: the model has {len(names)} outputs {names}: {form}, got {got}")
    for i in active:
        if ys[i] is None:
            raise ValueError(f"{where}: no targets for output {names[i]!r}, which has a loss; {form}")
    return ys


def _same_counts(where, arrays):
    """Every (label, array) in ``arrays`` must have the same number of samples."""
    counts = [(label, len(a)) for label, a in arrays if a is not None]
    if len({n for _, n in counts}) > 1:
        listing = ", ".join(f"{label} has {n}" for label, n in counts)
        raise ValueError(f"{where}: every input, target and sample_weight array must have the same number of "
                         f"samples (first axis), but {listing}")


def _same_sample_shapes(where, arg, val, train, names):
    for i, (v, t) in enumerate(zip(val, train)):
        if v is not None and t is not None and v.shape[1:] != t.shape[1:]:
            raise ValueError(f"{where}: {_label(arg, i, names[i])} of the validation data has samples of shape "
                             f"{v.shape[1:]}, the training data's has {t.shape[1:]}")


def prepare_multi_io(model, x, y, what, sample_weight=None, needs_y=True):
    """(xs, ys, sample_weight) for a model of several inputs or outputs: lists of checked ndarrays.

    ``xs`` has one array per input (in ``model.input_names`` order), ``ys`` one per output (None
    for an output without a loss); every array gets the checks ``prepare_data`` makes for one,
    and all of them (with ``sample_weight``, applied to every output) the same sample count.
    """
    where = f"{model.name}.{what}"
    if x is None or (needs_y and y is None):
        raise ValueError(f"{where}: needs {'x and y (the targets)' if needs_y else 'x'}, "
                         f"got x={type(x).__name__}, y={type(y).__name__}")
    in_names, out_names = model.input_names, model.output_names
    xs = [_cast(as_array(v, _label("x", i, in_names[i]), where), model.dtype)
          for i, v in enumerate(_input_arrays(model, x, where))]
    if what != "predict":
        for i, v in enumerate(xs):
            _finite(v, _label("x", i, in_names[i]), where)
    ys = None
    if y is not None:
        ys = [None if v is None else _cast(as_array(v, _label("y", i, out_names[i]), where), model.dtype)
              for i, v in enumerate(_target_arrays(model, y, where))]
        for i, v in enumerate(ys):
            if v is not None:
                _finite(v, _label("y", i, out_names[i]), where)
    if sample_weight is not None:
        sample_weight = as_array(sample_weight, "sample_weight", where).astype(model.dtype)
        _finite(sample_weight, "sample_weight", where)
    _same_counts(where, [(_label("x", i, n), v) for i, (n, v) in enumerate(zip(in_names, xs))]
                 + [(_label("y", i, n), v) for i, (n, v) in enumerate(zip(out_names, ys or []))]
                 + [("sample_weight", sample_weight)])
    if len(xs[0]) == 0:
        raise ValueError(f"{where}: no samples (x[0] has shape {xs[0].shape})")
    for i, (sym, v) in enumerate(zip(model._input_symbols, xs)):
        check_x_shape(v, sym.shape, _label("x", i, in_names[i]), where)
        check_ids_against_model(model, v, _label("x", i, in_names[i]), where, input_symbol=sym)
    if ys is not None:
        for i, (sym, loss) in enumerate(zip(model._output_symbols, model._output_losses or [None] * len(ys))):
            if ys[i] is not None:
                ys[i] = check_y_shape(loss, sym.shape, model.dtype, ys[i], _label("y", i, out_names[i]),
                                      f"output {out_names[i]!r}", where)
    return xs, ys, sample_weight
