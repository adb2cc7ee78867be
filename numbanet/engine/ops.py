"""The elementary differentiable operations on Tensors.

Each op is one small ``Function`` subclass with its forward and backward side by
side, followed by a lowercase wrapper. Notation: ``x, y`` inputs/outputs,
``gy = dL/dy`` the upstream gradient, ``gx = dL/dx`` what backward returns.
Gradients may come back in the broadcast shape; the engine reduces them to each
input's shape (``tensor.unbroadcast``), so no op here does it itself.

Subtraction, mean and division by a constant are composites of the primitives
where that costs nothing; they need no backward of their own.
"""
from __future__ import annotations

import builtins

import numpy as np

from . import tiers
from .tensor import Function, Tensor, as_tensor


# ------------------------------------------------------------------ arithmetic
class Add(Function):
    """y = a + b (broadcasting).   ga = gy,  gb = gy."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


def add(a, b):
    return Add()(a, b)


class Sub(Function):
    """y = a - b.   ga = gy,  gb = -gy."""

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy


def sub(a, b):
    return Sub()(a, b)


class Mul(Function):
    """y = a * b (elementwise).   ga = gy * b,  gb = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, gy * self.a


def mul(a, b):
    return Mul()(a, b)


class Div(Function):
    """y = a / b.   ga = gy / b,  gb = -gy * a / b**2 = -gy * y / b."""

    def forward(self, a, b):
        self.b = b
        self.y = a / b
        return self.y

    def backward(self, gy):
        ga = gy / self.b
        return ga, -ga * self.y


def div(a, b):
    return Div()(a, b)


class Neg(Function):
    """y = -x.   gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


def neg(x):
    return Neg()(x)


class Pow(Function):
    """y = a ** b.   ga = gy * b * a**(b-1),  gb = gy * y * log(a)  (only where a > 0).

    With a constant exponent (the usual ``x ** 2``) gb is never computed.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        ga = gy * self.b * self.a ** (self.b - 1)
        inputs = getattr(self, "inputs", (None, None))
        gb = None
        if inputs[1] is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(self.a > 0, np.log(np.where(self.a > 0, self.a, 1)), 0)
            gb = gy * self.y * log_a
        return ga, gb


def pow(a, b):  # noqa: A001 - the name users expect
    return Pow()(a, b)


class MatMul(Function):
    """y = a @ b with NumPy's matmul rules (batched, broadcasting batch axes).

    Shapes: a (..., M, K), b (..., K, N) -> y (..., M, N).
    ga = gy @ b^T  (..., M, K),   gb = a^T @ gy  (..., K, N)   (^T swaps the last two axes).
    1-D operands are promoted as NumPy does (a vector is (1, K) on the left, (K, 1)
    on the right) and the gradient is reshaped back.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:  # inner product: y is a scalar
            return gy * b, gy * a
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        gy2 = gy
        if a.ndim == 1:
            gy2 = np.expand_dims(gy2, -2)
        if b.ndim == 1:
            gy2 = np.expand_dims(gy2, -1)
        ga = gy2 @ np.swapaxes(b2, -1, -2)
        gb = np.swapaxes(a2, -1, -2) @ gy2
        if a.ndim == 1:  # (..., 1, K) -> (..., K); the engine sums the batch axes away
            ga = ga[..., 0, :]
        if b.ndim == 1:  # (..., K, 1) -> (..., K)
            gb = gb[..., 0]
        return ga, gb


def matmul(a, b):
    return MatMul()(a, b)


# ------------------------------------------------------------- elementwise math
class Exp(Function):
    """y = exp(x).   gx = gy * y."""

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


def exp(x):
    return Exp()(x)


class Log(Function):
    """y = log(x).   gx = gy / x."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, gy):
        return gy / self.x


def log(x):
    return Log()(x)


class Sqrt(Function):
    """y = sqrt(x).   gx = gy / (2 y)."""

    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


def sqrt(x):
    return Sqrt()(x)


class Abs(Function):
    """y = |x|.   gx = gy * sign(x)  (0 at the kink x = 0)."""

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, gy):
        return gy * np.sign(self.x)


def abs(x):  # noqa: A001
    return Abs()(x)


class Clip(Function):
    """y = min(max(x, lo), hi).   gx = gy where lo <= x <= hi, else 0."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.mask = (x >= self.lo) & (x <= self.hi)
        return np.clip(x, self.lo, self.hi)

    def backward(self, gy):
        return gy * self.mask


def clip(x, lo, hi):
    return Clip(lo, hi)(x)


class Cast(Function):
    """y = x converted to another dtype.   gx = gy converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy):
        return gy.astype(self.src, copy=False)


def cast(x, dtype):
    x = as_tensor(x)
    if x.dtype == np.dtype(dtype):
        return x
    return Cast(dtype)(x)


# ----------------------------------------------------------------- activations
# The activations as in-place array functions, with the derivative read from
# the output y = f(z) (so z need not be kept). Fused nodes use them: Linear
# with an activation (functional.py) and SimpleRNN's recurrence (recurrent.py).
def tanh_(a):
    np.tanh(a, out=a)


def relu_(a):
    np.maximum(a, 0, out=a)


def sigmoid_(a, out=None):
    """1 / (1 + exp(-a)) in four passes, written into ``out`` (default: a itself).

    For a < -88 (float32) exp(-a) overflows to inf and 1 / (1 + inf) = 0, the
    correctly rounded result, so the overflow warning is silenced rather than
    avoided with a second branch (which cost 3x the time in temporaries)."""
    out = a if out is None else out
    with np.errstate(over="ignore"):
        np.negative(a, out=out)
        np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def linear_(a):
    pass


def dtanh(y):
    d = np.square(y)                                           # one new array, then in place
    np.subtract(1, d, out=d)
    return d


def drelu(y):
    d = np.empty_like(y)
    np.greater(y, 0, out=d)
    return d


def dsigmoid(y):
    d = np.subtract(1, y)
    d *= y
    return d


# name -> (f applied in place to z, f'(z) computed from y = f(z))
IN_PLACE_ACTIVATIONS = {
    "tanh": (tanh_, dtanh),
    "relu": (relu_, drelu),
    "sigmoid": (sigmoid_, dsigmoid),
    "linear": (linear_, np.ones_like),
}


class Tanh(Function):
    """y = tanh(x).   gx = gy * (1 - y^2)."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


def tanh(x):
    return Tanh()(x)


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) as a new array (``sigmoid_`` written into it)."""
    x = np.asarray(x)
    e = np.empty(x.shape, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    sigmoid_(x, out=e)
    return e


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x)) (computed without overflow).   gx = gy * y * (1 - y).

    Both by the active tier (``sigmoid_forward``, ``sigmoid_backward``); the fast
    tier writes them into pooled arrays (``fast/activations.py``).
    """

    def forward(self, x):
        self.y = tiers.current.sigmoid_forward(x)
        return self.y

    def backward(self, gy):
        return tiers.current.sigmoid_backward(gy, self.y)


def sigmoid(x):
    return Sigmoid()(x)


class ReLU(Function):
    """y = max(x, 0).   gx = gy * [x > 0]."""

    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, gy):
        return gy * (self.y > 0)


def relu(x):
    return ReLU()(x)


class LeakyReLU(Function):
    """y = x if x > 0 else alpha * x.   gx = gy * (1 if x > 0 else alpha)."""

    def __init__(self, alpha=0.2):
        self.alpha = alpha

    def forward(self, x):
        self.pos = x > 0
        return np.where(self.pos, x, self.alpha * x).astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * np.where(self.pos, 1, self.alpha).astype(gy.dtype, copy=False)


def leaky_relu(x, alpha=0.2):
    return LeakyReLU(alpha)(x)


class ELU(Function):
    """y = x if x > 0 else alpha * (exp(x) - 1).   gx = gy * (1 if x > 0 else y + alpha)."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        self.pos = x > 0
        self.y = np.where(self.pos, x, self.alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)
        return self.y

    def backward(self, gy):
        return gy * np.where(self.pos, 1, self.y + self.alpha).astype(gy.dtype, copy=False)


def elu(x, alpha=1.0):
    return ELU(alpha)(x)


# ------------------------------------------------------------------ reductions
def _norm_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


class Sum(Function):
    """y = sum of x over ``axis``.   gx = gy broadcast back over the summed axes."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        self.axes = _norm_axis(self.axis, x.ndim)
        return np.sum(x, axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        if not self.keepdims:
            gy = np.expand_dims(gy, self.axes)
        return np.broadcast_to(gy, self.shape)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """y = sum(x) / n over ``axis`` (composite: a Sum times a constant)."""
    x = as_tensor(x)
    n = 1
    for a in _norm_axis(axis, x.ndim):
        n *= x.shape[a]
    return sum(x, axis, keepdims) * (1.0 / builtins.max(n, 1))  # this module's max/sum are ops


class Max(Function):
    """y = max of x over ``axis``.

    gx = gy at the maximal elements, 0 elsewhere; ties share the gradient
    equally (so the gradient of a constant input stays a subgradient).
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x = x
        self.axes = _norm_axis(self.axis, x.ndim)
        self.ykeep = np.max(x, axis=self.axes, keepdims=True)
        return self.ykeep if self.keepdims else np.squeeze(self.ykeep, self.axes)

    def backward(self, gy):
        if not self.keepdims:
            gy = np.expand_dims(gy, self.axes)
        mask = (self.x == self.ykeep)
        return gy * mask / mask.sum(axis=self.axes, keepdims=True)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return Max(axis, keepdims)(x)


# ------------------------------------------------------------- shape and index
class Reshape(Function):
    """y = x viewed with a new shape.   gx = gy reshaped back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


def reshape(x, shape):
    return Reshape(tuple(shape))(x)


class Transpose(Function):
    """y = x with axes permuted by ``axes`` (reversed when None).   gx = gy permuted back."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = self.axes if self.axes is not None else tuple(range(x.ndim))[::-1]
        self.inverse = tuple(np.argsort([a % x.ndim for a in axes]))  # negative axes count from the end
        return np.transpose(x, axes)

    def backward(self, gy):
        return np.transpose(gy, self.inverse)


def transpose(x, axes=None):
    return Transpose(None if axes is None else tuple(axes))(x)


class GetItem(Function):
    """y = x[index] (basic or advanced NumPy indexing).

    gx = zeros like x with gy scattered to the indexed places; repeated indices
    accumulate (``np.add.at``), as the chain rule requires.
    """

    def __init__(self, index):
        self.index = index.data.astype(np.intp) if isinstance(index, Tensor) else index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = np.zeros(self.shape, dtype=self.dtype)
        np.add.at(gx, self.index, gy)
        return gx


def getitem(x, index):
    return GetItem(index)(x)


class Concatenate(Function):
    """y = concatenate(xs, axis).   gx_i = the slice of gy that came from x_i."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.splits = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(np.split(gy, self.splits, axis=self.axis))


def concatenate(xs, axis=0):
    return Concatenate(axis)(*xs)


def stack(xs, axis=0):
    """y = stack(xs, axis): each x gets a new size-1 axis, then they are concatenated."""
    xs = [as_tensor(x) for x in xs]
    expanded = [reshape(x, x.shape[:axis % (x.ndim + 1)] + (1,) + x.shape[axis % (x.ndim + 1):]) for x in xs]
    return concatenate(expanded, axis)


def square(x):
    return mul(x, x)


# ------------------------------------------------------- Tensor's operators
# tensor.py defines Tensor before any op exists; its operators and math methods
# are bound here, once the ops are defined. A binary op taken as a method gets
# (self, other), so ``a + b`` runs ``add(a, b)`` with no frame in between; a
# reflected one (``1 + a``) swaps its arguments first.
def _swapped(op):
    def reflected(self, other):
        return op(other, self)
    reflected.__name__ = f"reflected_{op.__name__}"
    return reflected


def _tensor_reshape(self, *shape):
    """t.reshape(2, 3) or t.reshape((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return reshape(self, shape)


def _tensor_transpose(self, *axes):
    """t.transpose() reverses the axes; t.transpose(1, 0, 2) or t.transpose((1, 0, 2)) permutes them."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return transpose(self, axes or None)


for _name, _method in {
        "__add__": add, "__radd__": _swapped(add), "__sub__": sub, "__rsub__": _swapped(sub),
        "__mul__": mul, "__rmul__": _swapped(mul), "__truediv__": div, "__rtruediv__": _swapped(div),
        "__pow__": pow, "__rpow__": _swapped(pow), "__matmul__": matmul, "__rmatmul__": _swapped(matmul),
        "__neg__": neg, "__getitem__": getitem, "sum": sum, "mean": mean, "max": max,
        "reshape": _tensor_reshape, "transpose": _tensor_transpose, "T": property(transpose),
        "astype": cast, "exp": exp, "log": log, "tanh": tanh, "sigmoid": sigmoid, "relu": relu}.items():
    setattr(Tensor, _name, _method)
del _name, _method
