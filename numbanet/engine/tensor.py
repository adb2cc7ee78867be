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
training step). Intermediate results do not keep a ``.grad``.

Broadcasting is undone once, here, in ``unbroadcast``: every ``Function.backward``
may return a gradient of the broadcast shape and the walk sums it back to the
input's shape.

dtype: a Tensor made from a Python number or list is float32; a floating
ndarray keeps its dtype (so float64 gradient checks stay float64); anything
else is cast to float32 unless ``dtype=`` says otherwise.
"""
from __future__ import annotations

import contextlib

import numpy as np

_GRAD_ENABLED = [True]


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
        return self.data

    def item(self):
        return self.data.item()

    def astype(self, dtype) -> "Tensor":
        from . import ops
        return ops.cast(self, dtype)

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

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
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        _backward_walk(self, grad)

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        from . import ops
        return ops.add(self, other)

    def __radd__(self, other):
        from . import ops
        return ops.add(other, self)

    def __sub__(self, other):
        from . import ops
        return ops.sub(self, other)

    def __rsub__(self, other):
        from . import ops
        return ops.sub(other, self)

    def __mul__(self, other):
        from . import ops
        return ops.mul(self, other)

    def __rmul__(self, other):
        from . import ops
        return ops.mul(other, self)

    def __truediv__(self, other):
        from . import ops
        return ops.div(self, other)

    def __rtruediv__(self, other):
        from . import ops
        return ops.div(other, self)

    def __pow__(self, other):
        from . import ops
        return ops.pow(self, other)

    def __rpow__(self, other):
        from . import ops
        return ops.pow(other, self)

    def __matmul__(self, other):
        from . import ops
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        from . import ops
        return ops.matmul(other, self)

    def __neg__(self):
        from . import ops
        return ops.neg(self)

    def __getitem__(self, index):
        from . import ops
        return ops.getitem(self, index)

    def sum(self, axis=None, keepdims=False):
        from . import ops
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        from . import ops
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        from . import ops
        return ops.max(self, axis, keepdims)

    def reshape(self, *shape):
        from . import ops
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes):
        from . import ops
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.transpose(self, axes or None)

    @property
    def T(self):
        return self.transpose()

    def exp(self):
        from . import ops
        return ops.exp(self)

    def log(self):
        from . import ops
        return ops.log(self)

    def tanh(self):
        from . import ops
        return ops.tanh(self)

    def sigmoid(self):
        from . import ops
        return ops.sigmoid(self)

    def relu(self):
        from . import ops
        return ops.relu(self)


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
    """

    __slots__ = ("inputs", "__dict__")

    def __call__(self, *inputs):
        xs = [x if isinstance(x, Tensor) else None for x in inputs]
        arrays = []
        ref_dtype = None
        for x in xs:
            if x is not None:
                ref_dtype = x.data.dtype
                break
        for x, raw in zip(xs, inputs):
            if x is not None:
                arrays.append(x.data)
            else:  # a Python number or an ndarray constant takes the tensor's dtype
                arrays.append(_constant(raw, ref_dtype))
        y = Tensor(self.forward(*arrays))
        if _GRAD_ENABLED[0] and any(x is not None and x.requires_grad for x in xs):
            y.requires_grad = True
            y.creator = self
            self.inputs = xs
        return y

    def forward(self, *xs):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: Function subclasses define forward")

    def backward(self, gy):  # pragma: no cover - abstract
        raise NotImplementedError("abstract: Function subclasses define backward")


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
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.append((fn, True))
        for x in fn.inputs:
            if x is not None and x.creator is not None and id(x.creator) not in seen:
                stack.append((x.creator, False))
    return order


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
        gxs = fn.backward(gy)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        for x, gx in zip(fn.inputs, gxs):
            if x is None or gx is None or not x.requires_grad:
                continue
            if gx.shape != x.data.shape:
                gx = unbroadcast(gx, x.data.shape)
            if gx.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
            if x.creator is None:  # leaf: accumulate into .grad (never alias gy)
                x.grad = gx.copy() if x.grad is None else x.grad + gx
            else:
                key = id(x.creator)
                prev = grads.get(key)
                grads[key] = gx if prev is None else prev + gx
