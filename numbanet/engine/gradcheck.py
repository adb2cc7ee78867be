"""Gradient checking: autograd against finite differences, in float64.

What is checked
---------------
* ``check_grad(fn, *inputs)`` with a function of Tensors: every floating input.
  The checked scalar is ``L = fn(*inputs).sum()``, or ``sum(grad_output * fn(*inputs))``
  when an output gradient is given (a random linear functional of the output).
* ``check_grad(layer, x)`` with a Layer or a Model: the input x *and every
  trainable weight* (kernel, bias, ...), with ``L = sum(v * layer(x))`` and v a
  fixed random normal array of the output's shape (so an output whose plain
  sum is constant, a softmax's, is still checked).
* ``check_model_grads(model, x, y)``: every trainable weight of every layer,
  through the model's loss, ``L = loss(y, model(x))``.

Layers and models run on a float64 copy of themselves: their dtype and the
data of their weights are switched to float64 for the check and switched back
afterwards (the same Tensor objects, the same arrays, the same ``.grad``), so
the caller's float32 model is unchanged. float32 arithmetic would drown a
finite difference in rounding (about 1e-7 / eps relative error): a function
whose graph still computes in float32 (a float32 layer called inside a plain
function, a float32 weight it captured) is refused with a TypeError that says
how to fix it, never reported as a FAIL.

Two methods, chosen per tensor by its size
------------------------------------------
* ``"central"`` (tensors up to ``max_elements``): every element is nudged both
  ways,  dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),  and compared
  element by element with the autograd gradient.
* ``"direction"`` (larger tensors, e.g. convolution kernels): one random unit
  direction u. With the output weights v above, L(x + eps u) is <v, f(x + eps u)>,
  so the two evaluations give <v, J u> by central differences, and backward
  gives it as <J^T v, u> = <grad L, u>: the same number computed two ways.
  Cheap (two forward passes) and still catches a wrong gradient component with
  probability 1.

An element passes when ``|autograd - numeric| <= atol + rtol * |numeric|``.
The report has one row per checked tensor: layer, parameter, shape, method,
max abs and rel error, worst index, the autograd and numeric values there, and
the result; ``print(report)`` shows it as a table.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .gradcheck_report import GradCheckReport, GradientCheckError, InputReport
from .tensor import Tensor, _topological_order, no_grad

__all__ = ["check_grad", "check_model_grads", "numerical_grad", "float64_copy", "GradCheckReport",
           "GradientCheckError", "InputReport"]


# ------------------------------------------------------------------ helpers
def _as_float64_tensors(inputs):
    # A C-ordered float64 copy: the checks nudge elements through a flat view
    # (``reshape(-1)``), which would be a copy, not a view, of a transposed array.
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(Tensor(np.array(x.data, dtype=np.float64, order="C"), requires_grad=True))
        elif isinstance(x, np.ndarray) and x.dtype.kind == "f":
            out.append(Tensor(np.array(x, dtype=np.float64, order="C"), requires_grad=True))
        else:  # integers, index arrays, Python values: passed through, not checked
            out.append(x)
    return out


def _scalar_loss(fn, args, grad_output):
    y = fn(*args)
    if isinstance(y, (tuple, list)):
        raise TypeError("check_grad: fn must return one Tensor; wrap it to combine several outputs")
    if grad_output is None:
        return y.sum()
    return (y * Tensor(grad_output)).sum()


def _is_layer(obj) -> bool:
    """A Layer or Model (duck-typed: the engine does not import the layers built on it)."""
    return hasattr(obj, "trainable_weights") and hasattr(obj, "dtype") and callable(obj)


def _require_float64(loss, owner, fix):
    """Raise a TypeError when any tensor on the way to ``loss`` that carries a gradient is not float64.

    Finite differences in float32 have errors near 1e-7 / eps; they cannot judge a
    gradient, so a float32 computation is refused rather than reported as a FAIL.
    The message names the first few such tensors: leaves (weights) by name, then
    the first op whose output is not float64, with its layer.
    """
    leaves, made = [], []
    if loss.creator is not None:
        seen = set()
        for fn in _topological_order(loss):
            for x in fn.inputs:
                if x is None or not x.requires_grad or x.dtype == np.float64 or id(x) in seen:
                    continue
                seen.add(id(x))
                if x.creator is None:
                    leaves.append(f"{x.name or 'a leaf tensor'} {x.shape} is {x.dtype}")
                elif not made:
                    where = f" in layer {x.creator.layer}" if x.creator.layer else ""
                    made.append(f"the output {x.shape} of {type(x.creator).__name__}{where} is {x.dtype}")
    culprits = leaves[:3] + made
    if not culprits and loss.dtype != np.float64:
        culprits = [f"the checked scalar is {loss.dtype}"]
    if culprits:
        raise TypeError(f"{owner}: the computation does not run in float64 ({'; '.join(culprits)}); finite "
                        f"differences in float32 cannot check a gradient. {fix}")


def _check_tensor(loss_value, t, analytic, eps, rtol, atol, max_elements, rng, index, layer="-", param=""):
    """Compare ``analytic`` (t's autograd gradient) with finite differences of ``loss_value()``."""
    if t.data.size <= max_elements:
        r = _check_central(loss_value, t, analytic, eps, rtol, atol, index)
    else:
        r = _check_direction(loss_value, t, analytic, eps, rtol, atol, rng, index)
    r.layer, r.param = layer, param
    return r


def _check_central(loss_value, x, analytic, eps, rtol, atol, index):
    numeric = np.zeros_like(x.data)
    flat, nflat = x.data.reshape(-1), numeric.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = loss_value()
        flat[i] = orig - eps
        minus = loss_value()
        flat[i] = orig
        nflat[i] = (plus - minus) / (2 * eps)
    if not numeric.size:
        return InputReport(index, x.shape, "central", 0.0, 0.0, None, 0.0, 0.0, True)
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.abs(numeric), 1e-12)
    excess = abs_err - (atol + rtol * np.abs(numeric))
    order = np.argsort(-excess, axis=None, kind="stable")[:3]   # the worst first, ties by position
    worst_list = [(tuple(int(i) for i in np.unravel_index(j, x.shape)), float(analytic.flat[j]),
                   float(numeric.flat[j])) for j in order]
    worst, a, n = worst_list[0]
    # relative error reported only where it means something (not on ~0 entries)
    meaningful = np.abs(numeric) > atol
    max_rel = float(rel_err[meaningful].max()) if meaningful.any() else 0.0
    failing = int((excess > 0).sum())
    return InputReport(index, x.shape, "central", float(abs_err.max()), max_rel, worst, a, n, failing == 0,
                       worst=worst_list[:failing])


def _check_direction(loss_value, x, analytic, eps, rtol, atol, rng, index):
    u = rng.standard_normal(x.shape)
    u /= np.linalg.norm(u)
    orig = x.data
    x.data = orig + eps * u
    plus = loss_value()
    x.data = orig - eps * u
    minus = loss_value()
    x.data = orig
    numeric = (plus - minus) / (2 * eps)
    a = float(np.sum(analytic * u))
    abs_err = abs(a - numeric)
    rel_err = abs_err / max(abs(numeric), 1e-12)
    passed = abs_err <= atol + rtol * abs(numeric)
    return InputReport(index, x.shape, "direction", abs_err, rel_err, None, a, numeric, bool(passed))


# --------------------------------------------------------------- functions
def numerical_grad(fn, *inputs, eps=1e-6, grad_output=None):
    """Central finite-difference gradients of ``fn(*inputs).sum()`` in float64.

    Returns a list with one ndarray per floating input (None for the others).
    """
    args = _as_float64_tensors(inputs)
    grads = []
    with no_grad():
        for x in args:
            if not isinstance(x, Tensor):
                grads.append(None)
                continue
            g = np.zeros_like(x.data)
            flat, gflat = x.data.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                orig = flat[i]
                flat[i] = orig + eps
                plus = float(_scalar_loss(fn, args, grad_output).data)
                flat[i] = orig - eps
                minus = float(_scalar_loss(fn, args, grad_output).data)
                flat[i] = orig
                gflat[i] = (plus - minus) / (2 * eps)
            grads.append(g)
    return grads


def check_grad(fn, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, grad_output=None,
               max_elements=400, seed=0, raise_on_failure=False):
    """Compare autograd gradients with finite differences (float64); returns a ``GradCheckReport``.

    ``fn`` is a function of Tensors or a Layer / Model:

    * function: each floating input (ndarray or Tensor) is checked on a float64
      copy; other arguments (integer ids, Python values) are passed through.
      L = ``fn(*inputs).sum()``, or ``sum(grad_output * fn(*inputs))``.
    * Layer or Model, called as ``check_grad(layer, x)``: the input x (when
      floating) and every trainable weight, on the layer switched to float64
      for the check and restored afterwards (an unbuilt layer is built first,
      in its own dtype, as its first call would). L = ``sum(v * layer(x))``,
      v = ``grad_output`` or a random normal array of the output's shape drawn
      from ``seed`` (one per output when the layer returns several).

    Tensors of up to ``max_elements`` elements are checked element by element
    (central differences), larger ones along one random direction (module
    docstring). An element passes when ``|analytic - numeric| <= atol + rtol *
    |numeric|``. The report is truthy when everything passed; ``print(report)``
    shows the table. ``raise_on_failure=True`` raises ``GradientCheckError``
    with that table instead of returning a failed report. A computation that
    still runs in float32 is a TypeError saying how to make it float64.
    """
    rng = np.random.default_rng(seed)
    if _is_layer(fn):
        if len(inputs) != 1:
            raise TypeError(f"check_grad: a layer is checked on one input, check_grad(layer, x); got "
                            f"{len(inputs)} inputs (to check a function of several, pass a function of Tensors)")
        report = _check_layer(fn, inputs[0], grad_output, eps, rtol, atol, max_elements, rng)
    else:
        report = _check_function(fn, inputs, grad_output, eps, rtol, atol, max_elements, rng)
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report


def _check_function(fn, inputs, grad_output, eps, rtol, atol, max_elements, rng):
    args = _as_float64_tensors(inputs)
    if grad_output is not None:
        grad_output = np.asarray(grad_output, dtype=np.float64)
    loss = _scalar_loss(fn, args, grad_output)
    if not loss.requires_grad:
        raise ValueError("check_grad: the output does not depend on any floating input")
    _require_float64(loss, "check_grad", "If fn calls a layer, check the layer itself with "
                     "nb.check_grad(layer, x) (it runs on a float64 copy), or build the layer with "
                     "dtype='float64'; make any tensor fn creates with a float64 array.")
    loss.backward()

    def loss_value():
        return float(_scalar_loss(fn, args, grad_output).data)

    report = GradCheckReport(eps=eps, rtol=rtol, atol=atol)
    with no_grad():
        for k, x in enumerate(args):
            if isinstance(x, Tensor):
                analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
                report.inputs.append(_check_tensor(loss_value, x, analytic, eps, rtol, atol, max_elements,
                                                   rng, k, param=f"input {k}"))
    return report


# ------------------------------------------------------------ layers, models
def _sublayers(obj):
    """``obj`` and every layer inside it (a model's layers, a wrapper's inner layers), each once."""
    found, stack = {}, [obj]
    while stack:
        layer = stack.pop()
        if id(layer) in found:
            continue
        found[id(layer)] = layer
        values = list(vars(layer).values())
        values += list(getattr(layer, "layers", None) or [])
        for v in values:
            items = v if isinstance(v, (list, tuple)) else [v]
            for item in items:
                for inner in (item if isinstance(item, tuple) else (item,)):
                    if _is_layer(inner) and not isinstance(inner, Tensor):
                        stack.append(inner)
    return list(found.values())


@contextlib.contextmanager
def float64_copy(obj):
    """Run ``obj`` (a Layer or Model) in float64 inside the block; restore it exactly afterwards.

    Sets the dtype of ``obj`` and of every layer inside it to float64 and gives
    each weight Tensor a float64 copy of its data, with ``.grad`` cleared. On exit
    every layer gets its dtype back and every weight its original array and
    ``.grad`` (the same objects), so the caller's model is as it was.
    """
    layers = _sublayers(obj)
    weights, seen = [], set()
    for layer in layers:
        for w in layer.weights:
            if id(w) not in seen:
                seen.add(id(w))
                weights.append(w)
    dtypes = [(layer, layer.dtype) for layer in layers]
    saved = [(w, w.data, w.grad) for w in weights]
    try:
        for layer in layers:
            layer.dtype = np.dtype(np.float64)
        for w in weights:
            w.data, w.grad = np.array(w.data, dtype=np.float64, order="C"), None
        yield obj
    finally:
        for layer, dtype in dtypes:
            layer.dtype = dtype
        for w, data, grad in saved:
            w.data, w.grad = data, grad


def _ensure_built(obj, x):
    """Build an unbuilt layer or model by calling it once, in its own dtype, recording nothing."""
    if not getattr(obj, "built", True):
        with no_grad():
            obj(x)


def _named_weights(obj):
    """[(layer name, parameter name, Tensor)] of ``obj``'s trainable weights, Keras order."""
    out = []
    for w in obj.trainable_weights:
        layer, _, param = (w.name or "").rpartition("/")
        out.append((layer or obj.name, param or "weight", w))
    return out


def _float64_input(x):
    """x as a float64 Tensor to differentiate (floating input), or unchanged (integer ids)."""
    if isinstance(x, Tensor):
        x = x.data
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return Tensor(np.array(arr, dtype=np.float64, order="C"), requires_grad=True)
    return arr


def _run_checks(obj, owner, forward, x, check_input, eps, rtol, atol, max_elements, rng):
    """Backward once through ``forward()`` (the float64 scalar L), then check x and every weight."""
    loss = forward()
    if not loss.requires_grad:
        raise ValueError(f"{owner}: the output of {obj.name} does not depend on its input or any trainable weight")
    _require_float64(loss, owner, f"{obj.name} keeps float32 state that its float64 copy does not switch; "
                                  f"build it with dtype='float64' to check it.")
    loss.backward()

    def loss_value():
        with no_grad():
            return float(forward().data)

    targets = [(obj.name, "input", x)] if check_input and isinstance(x, Tensor) else []
    targets += _named_weights(obj)
    report = GradCheckReport(eps=eps, rtol=rtol, atol=atol)
    with no_grad():
        for k, (layer, param, t) in enumerate(targets):
            analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
            report.inputs.append(_check_tensor(loss_value, t, analytic, eps, rtol, atol, max_elements, rng, k,
                                               layer=layer, param=param))
    return report


def _check_layer(layer, x, grad_output, eps, rtol, atol, max_elements, rng):
    _ensure_built(layer, x)
    with float64_copy(layer):
        x64 = _float64_input(x)
        with no_grad():
            y = layer(x64)
        outputs = list(y) if isinstance(y, (tuple, list)) else [y]
        if grad_output is None:
            vs = [rng.standard_normal(t.shape) for t in outputs]
        else:
            vs = list(grad_output) if isinstance(grad_output, (tuple, list)) else [grad_output]
            vs = [np.asarray(v, dtype=np.float64) for v in vs]
            if [v.shape for v in vs] != [t.shape for t in outputs]:
                raise ValueError(f"check_grad: grad_output shapes {[v.shape for v in vs]} do not match "
                                 f"{layer.name}'s output shapes {[t.shape for t in outputs]}")

        def forward():
            y = layer(x64)
            ys = list(y) if isinstance(y, (tuple, list)) else [y]
            total = (ys[0] * Tensor(vs[0])).sum()
            for t, v in zip(ys[1:], vs[1:]):
                total = total + (t * Tensor(v)).sum()
            return total

        return _run_checks(layer, "check_grad", forward, x64, True, eps, rtol, atol, max_elements, rng)


def check_model_grads(model, x, y, loss=None, eps=1e-6, rtol=1e-5, atol=1e-7, max_elements=400, seed=0,
                      check_input=False, raise_on_failure=False):
    """Check every trainable weight of every layer of ``model`` through its loss; a ``GradCheckReport``.

    L = ``loss(y, model(x, training=False))``: the compiled loss (with the padding
    mask the output carries, as ``fit`` computes it) unless ``loss`` gives one (a
    name such as ``"mse"`` or a callable ``loss(y_true, y_pred)``). x is an input
    batch (N, ...) (integer ids for an Embedding), y its targets. The model runs
    on a float64 copy of itself (``float64_copy``) and is restored afterwards;
    ``training=False``, so Dropout is off and the loss is deterministic. One row
    per layer and weight (central differences up to ``max_elements`` elements,
    else one random direction); ``check_input=True`` adds the input's gradient.
    Choose x and the weights away from kinks (ReLU at 0, ties inside a max-pool
    window), where no finite difference can agree with any gradient.
    """
    if loss is None:
        if getattr(model, "loss", None) is None:
            raise ValueError(f"check_model_grads: {model.name} is not compiled; compile it with a loss, "
                             f"or pass loss=, e.g. check_model_grads(model, x, y, loss='mse')")

        def loss_fn(t, p):
            return model.compute_loss(t, p)
    elif isinstance(loss, str):
        from .. import losses   # names are resolved as compile resolves them; losses sit above the engine
        loss_fn = losses.get(loss)
    elif callable(loss):
        loss_fn = loss
    else:
        raise TypeError(f"check_model_grads: loss must be None (the compiled loss), a name or a callable "
                        f"loss(y_true, y_pred), got {type(loss).__name__}")
    rng = np.random.default_rng(seed)
    _ensure_built(model, x)
    y_arr = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y_arr.dtype.kind == "f":
        y_arr = y_arr.astype(np.float64)
    with float64_copy(model):
        x64 = _float64_input(x)

        def forward():
            return loss_fn(y_arr, model(x64, training=False))

        report = _run_checks(model, "check_model_grads", forward, x64, check_input, eps, rtol, atol,
                             max_elements, rng)
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report
