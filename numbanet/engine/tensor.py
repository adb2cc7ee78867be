"""The autograd core: ``Tensor``, ``Function`` and the backward walk.

Define-by-run
-------------
Calling a ``Function`` on Tensors computes the result at once (``forward`` on
plain ndarrays) and, when gradients are wanted, records on the result the
function object, which keeps its inputs. The recorded functions form a directed
acyclic graph whose leaves are the Tensors created by the user (weights,
inputs).

``y.backward(gy)`` walks that graph from ``y`` in reverse topological order,
visiting each node once, and applies the chain rule::

    for each function f (output y_f, inputs x_1..x_k), latest first:
        g_{x_i} += f.backward(g_{y_f})_i          (reduced to x_i's shape)

The walk is iterative (an explicit stack, never recursion), so graphs thousands
of nodes deep, such as an unrolled recurrent network, are fine.

Gradients of leaf Tensors with ``requires_grad=True`` are *accumulated* into
their ``.grad``: calling ``backward()`` twice adds the two gradients, as in
PyTorch. Clear them with ``t.zero_grad()`` (models and optimizers do it every
training step). Intermediate results do not keep a ``.grad`` unless they asked
with ``t.retain_grad()``.

Every recorded Function is named: its op (the class name), the layer whose call
ran it and its output shape, so ``print(y.graph())`` lists the whole graph.

Broadcasting is undone once, here, in ``unbroadcast``: every ``Function.backward``
may return a gradient of the broadcast shape and the walk sums it back to the
input's shape.

dtype: a Tensor made from a Python number or list is float32; a floating
ndarray keeps its dtype (so float64 gradient checks stay float64); anything
else is cast to float32 unless ``dtype=`` says otherwise.
"""
from __future__ import annotations

import contextlib
import weakref

import numpy as np

_GRAD_ENABLED = [True]
# The name of the layer whose call is running, recorded by every Function that joins the graph
# (``Tensor.graph`` prints it). Layer.__call__ and Model.__call__ set it around their ``call``
# and restore the outer name afterwards, so nested calls record the innermost layer.
CURRENT_LAYER = [None]


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED[0]


@contextlib.contextmanager
def no_grad():
    """Context manager: operations inside it record nothing (no graph, no memory)."""
    previous = _GRAD_ENABLED[0]
    _GRAD_ENABLED[0] = False
    try:
        yield
    finally:
        _GRAD_ENABLED[0] = previous


def _to_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray) and data.dtype.kind == "f":
        return data
    if isinstance(data, np.generic) and data.dtype.kind == "f":
        return np.asarray(data)
    return np.asarray(data, dtype=np.float32)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving ``shape``.

    Forward broadcasting copies an input along new leading axes and along axes
    of size 1; the adjoint of a copy is a sum, so the gradient is summed over
    exactly those axes:  (2, 3, 4) -> (3, 1)  sums axis 0, then axis 2 (keepdims).
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g.reshape(shape)


class Tensor:
    """An ndarray (``.data``) plus what is needed to differentiate through it.

    Attributes
    ----------
    data : ndarray           the value
    grad : ndarray or None   accumulated gradient (leaves with requires_grad only)
    requires_grad : bool     whether gradients flow to / through this tensor
    creator : Function|None  the function that produced it (None for leaves)
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "name", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = name

    # ----------------------------------------------------------- properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The value as an ndarray: ``self.data`` itself (no copy; writing to it changes the tensor)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        """NumPy's array protocol, so ``np.asarray(t)`` and ``np.argmax(model(x))`` see the value.

        ``copy=None`` copies only when ``dtype`` differs, ``copy=True`` always,
        ``copy=False`` never (a ValueError when a dtype change would need one),
        as NumPy 2 specifies. The result is plain data: no gradient flows through it.
        """
        data = self.data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:
                raise ValueError(f"Tensor.__array__: converting {data.dtype} to {np.dtype(dtype)} needs a copy, "
                                 f"but copy=False was asked; pass copy=None to allow it")
            return data.astype(dtype)
        return data.copy() if copy else data

    def item(self):
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def retain_grad(self):
        """Keep this intermediate tensor's gradient in ``.grad`` after ``backward()``, as a leaf does.

        The gradient dL/dself (self's shape) is accumulated like a leaf's: two
        backward passes add. A leaf needs no call (its ``.grad`` is always kept).
        The tensor is held weakly by its creator, so retaining costs no memory
        once the tensor is gone.
        """
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: no gradient will reach it "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        if self.creator is not None:
            self.creator.retained = weakref.ref(self)
        return self

    @property
    def retains_grad(self) -> bool:
        """Whether ``backward()`` stores this non-leaf tensor's gradient (after ``retain_grad()``)."""
        return self.creator is not None and self.creator.retained is not None

    def graph(self) -> str:
        """The recorded graph that produced this tensor, one line per Function, as text.

        Reverse topological order (the order ``backward()`` visits them), numbered
        from ``#0``, the function that made this tensor::

            #0 Add       layer=dense_1  -> (20, 10)  <- #1, dense_1/bias (10,)

        Each line gives the op, the layer whose call ran it (``-`` outside any
        layer), the output shape and the inputs: ``#k`` for another node's output,
        a leaf by its name (weights are ``layer/name``) or ``leaf`` / ``data`` and
        its shape. ``print(t.graph())`` or ``engine.print_graph(t)`` shows it.
        """
        if self.creator is None:
            kind = "leaf" if self.requires_grad else "constant"
            return f"(no recorded graph: a {kind} tensor {self.name or ''} of shape {self.shape})"
        order = list(reversed(_topological_order(self)))
        number = {id(fn): k for k, fn in enumerate(order)}
        rows = []
        for k, fn in enumerate(order):
            inputs = []
            for x in fn.inputs:
                if x is None:
                    continue  # a constant argument (a Python number, an index)
                if x.creator is not None:
                    inputs.append(f"#{number[id(x.creator)]}")
                else:
                    label = x.name or ("leaf" if x.requires_grad else "data")
                    inputs.append(f"{label} {x.shape}")
            rows.append((f"#{k}", type(fn).__name__, f"layer={fn.layer or '-'}", f"-> {fn.out_shape}",
                         "<- " + ", ".join(inputs)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad})"

    # ------------------------------------------------------------- backward
    def backward(self, grad=None):
        """Reverse-mode differentiation from this tensor.

        ``grad`` is dL/dself; it may be omitted only when self is a scalar
        (one element), where it is 1. Leaf gradients accumulate into ``.grad``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() without a gradient needs a scalar; this tensor has shape {self.shape}")
            grad = np.array(1, dtype=self.data.dtype).reshape(self.data.shape)   # dL/dL = 1
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        _backward_walk(self, grad)

    # ------------------------------------------------------------ operators
    # The arithmetic operators (+ - * / ** @, unary -, indexing) and the methods
    # sum, mean, max, reshape, transpose, T, astype, exp, log, tanh, sigmoid and
    # relu are differentiable ops; ops.py binds them to Tensor once the ops are
    # defined (the end of ops.py), so ``a + b`` calls ``ops.add(a, b)`` directly.


def as_tensor(x, dtype=None) -> Tensor:
    """``x`` itself if it is a Tensor, else a new constant Tensor."""
    if isinstance(x, Tensor):
        return x
    return Tensor(x, dtype=dtype)


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` beside it.

    Subclasses implement

    * ``forward(self, *xs) -> y``: plain ndarrays in, one ndarray out; may keep
      on ``self`` what backward needs.
    * ``backward(self, gy) -> (gx_1, ..., gx_k)``: the gradient of the loss with
      respect to each input, given ``gy`` = dL/dy of y's shape. A gradient may
      have the broadcast shape; ``unbroadcast`` fixes it centrally. ``None``
      means "no gradient for this input" (e.g. an integer index).

    A call that joins the graph records on the function its ``inputs`` (the
    Tensors, None for constants), ``layer`` (the name of the layer whose call ran
    it, or None) and ``out_shape`` (its output's shape): what ``backward()``
    and ``Tensor.graph()`` read.
    """

    __slots__ = ("inputs", "layer", "out_shape", "__dict__")

    #: a weak reference to the output when it called ``retain_grad()``, else None
    retained = None

    #: True where ``backward`` returns arrays it has just made and keeps no reference to (products,
    #: sums): a leaf then takes such a gradient as its ``.grad`` as it is, without the copy that
    #: keeps a leaf's ``.grad`` from aliasing ``gy`` or an array saved in the graph
    fresh_gradients = False

    def __call__(self, *inputs):
        xs, arrays = inputs, []               # the common call: every input a Tensor, recorded as given
        for x in inputs:
            if type(x) is not Tensor:
                xs, arrays = _mixed_inputs(inputs)
                break
            arrays.append(x.data)
        out = self.forward(*arrays)
        if type(out) is np.ndarray and out.dtype.kind == "f":   # what Tensor(out) would keep as it is
            y = Tensor.__new__(Tensor)
            y.data, y.grad, y.requires_grad, y.creator, y.name = out, None, False, None, None
        else:
            y = Tensor(out)
        if _GRAD_ENABLED[0]:
            for x in xs:
                if x is not None and x.requires_grad:
                    y.requires_grad = True
                    y.creator = self
                    self.inputs = xs
                    self.layer = CURRENT_LAYER[0]
                    self.out_shape = y.data.shape
                    break
        return y

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: Function subclasses define forward")

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: Function subclasses define backward")


def _mixed_inputs(inputs):
    """(xs, arrays) of a call where some input is not a Tensor: xs (a tuple, as an all-Tensor call
    records) has None in its place, and its array (a Python number, an ndarray constant) takes the
    first tensor's dtype (``_constant``)."""
    xs = tuple(x if isinstance(x, Tensor) else None for x in inputs)
    ref_dtype = next((x.data.dtype for x in xs if x is not None), None)
    return xs, [_constant(raw, ref_dtype) if x is None else x.data for x, raw in zip(xs, inputs)]


def _constant(raw, dtype):
    if isinstance(raw, np.ndarray):
        if dtype is not None and raw.dtype.kind in "fiub" and raw.dtype != dtype and raw.ndim == 0:
            return raw.astype(dtype)
        return raw
    if isinstance(raw, (int, float, np.generic)):
        return np.asarray(raw, dtype=dtype if dtype is not None else np.float32)
    return _to_array(raw, dtype)


def _topological_order(root: Tensor):
    """Functions reachable from ``root``, each once, inputs before users (iterative DFS)."""
    order, seen = [], set()
    stack = [(root.creator, False)]
    pop, push = stack.pop, stack.append
    while stack:
        fn, expanded = pop()
        if expanded:
            order.append(fn)
            continue
        key = id(fn)
        if key in seen:
            continue
        seen.add(key)
        push((fn, True))
        for x in fn.inputs:
            if x is not None:
                creator = x.creator
                if creator is not None and id(creator) not in seen:
                    push((creator, False))
    return order


def _retain(fn, gy):
    """Accumulate ``gy`` into the ``.grad`` of fn's output, which called ``retain_grad()``."""
    y = fn.retained()
    if y is not None:
        y.grad = gy.copy() if y.grad is None else y.grad + gy


def print_graph(t: Tensor):
    """Print ``t.graph()``: the Functions that produced ``t``, one line each, ``backward()``'s order."""
    print(t.graph())


def _backward_walk(root: Tensor, grad: np.ndarray):
    if root.creator is None:  # a leaf: its gradient is the seed itself
        root.grad = grad.copy() if root.grad is None else root.grad + grad
        return
    # Each non-leaf tensor has exactly one creator and each creator one output,
    # so the pending gradient of a tensor is stored under its creator's id.
    grads = {id(root.creator): grad}
    for fn in reversed(_topological_order(root)):
        gy = grads.pop(id(fn), None)
        if gy is None:  # nothing flowed here (e.g. only through integer inputs)
            continue
        if fn.retained is not None:  # gy is complete here: every user of fn's output came earlier
            _retain(fn, gy)
        gxs = fn.backward(gy)
        inputs, fresh = fn.inputs, fn.fresh_gradients
        if type(gxs) is not tuple:
            gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
        if len(gxs) != len(inputs):
            _check_gradient_count(fn, gxs)
        for k, x in enumerate(inputs):
            if x is None or not x.requires_grad:
                continue
            gx = gxs[k]
            if gx is None:
                continue
            data = x.data
            if type(gx) is not np.ndarray or gx.shape != data.shape:
                gx = _reduce_to_input(fn, k, gx, data.shape)
            if gx.dtype != data.dtype:
                gx = gx.astype(data.dtype)
            creator = x.creator
            if creator is None:  # leaf: accumulate into .grad (never alias gy)
                if x.grad is not None:
                    x.grad = x.grad + gx
                else:
                    x.grad = gx if fresh and gx is gxs[k] else gx.copy()
            else:
                key = id(creator)
                prev = grads.get(key)
                grads[key] = gx if prev is None else prev + gx


def _check_gradient_count(fn, gxs):
    """Raise if ``fn.backward`` returned fewer gradients than ``fn`` has inputs, or more that are not None.

    Extra Nones are fine: a Function with an optional last input (a bias) called
    without it may still return a None gradient for it.
    """
    if len(gxs) > len(fn.inputs) and all(g is None for g in gxs[len(fn.inputs):]):
        return
    shapes = [None if x is None else x.shape for x in fn.inputs]
    raise ValueError(f"{type(fn).__name__}.backward returned {len(gxs)} gradient(s) for {len(fn.inputs)} "
                     f"input(s) (shapes {shapes}); return one gradient per input of forward, in order, "
                     f"None for an input that gets no gradient")


def _reduce_to_input(fn, k, gx, shape):
    """``gx``, the gradient that ``fn.backward`` returned for input ``k`` (of ``shape``), summed to ``shape``.

    Reached only when ``gx`` is not an ndarray of exactly ``shape``. Accepted: a
    NumPy scalar or 0-d result, and any ``gx`` that is the input broadcast
    forward (``unbroadcast`` sums it back) or ``shape`` without some leading
    size-1 axes. Anything else (a Tensor, a list, a shape that does not
    broadcast to ``shape``) is a bug in that backward: the error names the
    Function class, the input position and both shapes.
    """
    name = f"{type(fn).__name__}.backward"
    if isinstance(gx, Tensor):
        raise TypeError(f"{name} returned a Tensor for input {k} (shape {shape}); backward works on arrays: "
                        f"return an ndarray, e.g. gx.data, or compute it from gy and the saved arrays")
    if not isinstance(gx, (np.ndarray, np.generic)):
        raise TypeError(f"{name} returned a {type(gx).__name__} for input {k} (shape {shape}); "
                        f"return an ndarray of that shape (or None for no gradient)")
    gx = np.asarray(gx)
    if gx.shape == shape:
        return gx
    g, s = gx.shape, tuple(shape)
    if len(g) < len(s) and all(n == 1 for n in s[:len(s) - len(g)]) and s[len(s) - len(g):] == g:
        return gx.reshape(s)   # the input's shape less leading size-1 axes
    if len(g) < len(s) or not all(n == m or n == 1 for n, m in zip(s, g[len(g) - len(s):])):
        raise ValueError(f"{name} returned a gradient of shape {g} for input {k} of shape {s}: it must have the "
                         f"input's shape (or the shape the input was broadcast to in forward)")
    return unbroadcast(gx, s)  # the input broadcast forward: every aligned axis equal, or 1 in the input
