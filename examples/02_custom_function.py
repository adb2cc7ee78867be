"""Lesson 2: write your own differentiable operation, and let check_grad judge its backward.

Run:  python examples/02_custom_function.py    (read alongside numbanet/engine/ops.py)

A ``Function`` is one class with ``forward`` (ndarrays in, one ndarray out; keep
what backward needs on ``self``) and ``backward(gy)`` (one gradient per input of
forward, each of that input's shape, or of the shape it was broadcast to).
Calling an instance on Tensors runs forward and records it on the tape, as every
built-in op does (``ops.Mul``, ``ops.Tanh`` are written the same way).

    Hypot:     y = sqrt(a^2 + b^2)             ga = gy * a / y,   gb = gy * b / y
    Softplus:  y = log(1 + exp(x))             gx = gy * sigmoid(x)

``nb.check_grad(fn, *inputs)`` compares backward with central finite differences
in float64 and returns a table (truthy when every input passed). A backward that
returns a gradient of the wrong shape is stopped by ``backward()`` with an error
naming the Function, the input and both shapes.
"""
import numpy as np

import numbanet as nb


class Hypot(nb.Function):
    """y = sqrt(a^2 + b^2), elementwise with NumPy broadcasting.

    a, b: broadcastable arrays -> y of the broadcast shape. Backward returns
    ga = gy * a / y and gb = gy * b / y in the broadcast shape; backward() sums
    each back to its input's shape (``unbroadcast``).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = np.hypot(a, b)          # no overflow in a^2 for large a
        return self.y

    def backward(self, gy):
        return gy * self.a / self.y, gy * self.b / self.y


class Softplus(nb.Function):
    """y = log(1 + exp(x)) = logaddexp(0, x);  gx = gy * sigmoid(x).  x, y, gy, gx: one shape."""

    def forward(self, x):
        self.x = x
        return np.logaddexp(0, x)        # never exp of a large positive number

    def backward(self, gy):
        return gy * 0.5 * (1 + np.tanh(0.5 * self.x))    # sigmoid(x), stable for any x


def hypot(a, b):
    return Hypot()(a, b)


def softplus(x):
    return Softplus()(x)


rng = np.random.default_rng(2)
nb.utils.set_random_seed(2)                 # the layer's initial weight, at the end
a = rng.uniform(0.5, 2.0, size=(2, 3))
b = rng.uniform(-2.0, 2.0, size=(1, 3))     # broadcast over a's rows

# ---------------------------------------------------------------- forward, against NumPy
y = hypot(nb.Tensor(a, requires_grad=True), nb.Tensor(b, requires_grad=True))
# forward is the same np.hypot call on the same arrays: equal to the last bit
assert np.array_equal(y.data, np.hypot(a, b))
print(f"Hypot forward: {y.shape} from a {a.shape} and b {b.shape}; "
      f"recorded as {type(y.creator).__name__} on the tape")

# ---------------------------------------------------------------- the gradient check
print("\nnb.check_grad(hypot, a, b): backward against central differences, float64")
report = nb.check_grad(hypot, a, b)
print(report)
assert report.passed and [r.shape for r in report.inputs] == [(2, 3), (1, 3)]

print("\nnb.check_grad(softplus, x), x from -30 to 30:")
report = nb.check_grad(softplus, np.linspace(-30, 30, 7))
print(report)
assert report.passed


# ---------------------------------------------------------------- a wrong backward is caught
class SoftplusForgotChain(Softplus):
    """The classic slip: the local derivative without the upstream gradient gy."""

    def backward(self, gy):
        return 0.5 * (1 + np.tanh(0.5 * self.x))


print("\nA backward that forgets to multiply by gy, checked with a non-uniform output gradient:")
x = np.linspace(-2, 2, 5)
report = nb.check_grad(lambda t: SoftplusForgotChain()(t), x, grad_output=np.arange(1.0, 6.0))
print(report)
assert not report.passed, "check_grad must fail a backward that ignores gy"
# (with the default output gradient of ones, gy = 1 and this slip would go unnoticed)


class HypotWrongShape(Hypot):
    """Returns b's gradient summed over every axis: shape () instead of b's (1, 3)."""

    def backward(self, gy):
        ga, gb = super().backward(gy)
        return ga, gb.sum()


print("\nA backward that returns a gradient of the wrong shape:")
try:
    HypotWrongShape()(nb.Tensor(a, requires_grad=True), nb.Tensor(b, requires_grad=True)).sum().backward()
except ValueError as err:
    message = str(err)
    print(f"  ValueError: {message}")
else:
    raise AssertionError("backward() accepted a gradient of shape () for an input of shape (1, 3)")
assert "HypotWrongShape.backward" in message and "input 1" in message and "(1, 3)" in message


# ---------------------------------------------------------------- inside a layer, with a weight
class SoftplusScale(nb.layers.Layer):
    """y = softplus(x * w), one weight per feature: x (N, D), w (D,) -> y (N, D)."""

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "random_normal")

    def call(self, x):
        return softplus(x * self.w)


print("\nnb.check_grad(layer, x) checks the input and every weight (on a float64 copy of the layer):")
layer = SoftplusScale(name="softplus_scale")
report = nb.check_grad(layer, rng.normal(size=(4, 3)).astype("float32"))
print(report)
assert report.passed and [r.param for r in report.inputs] == ["input", "w"]
assert layer.w.dtype == np.float32, "the layer is float32 again after the check"
print("\nOK 02_custom_function: custom backward passes check_grad; wrong ones are caught")
