"""More elementwise activations, each a differentiable op with its derivative (Keras 3 definitions).

  softplus      y = log(1 + exp(x))                      y' = sigmoid(x)
  softsign      y = x / (1 + |x|)                        y' = 1 / (1 + |x|)^2
  selu          y = s x (x > 0),  s a (exp(x) - 1)       y' = s (x > 0),  s a exp(x)
                s = 1.0507009873554805, a = 1.6732632423543772
  gelu          y = x Phi(x) = x/2 erfc(-x / sqrt 2)      y' = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
  gelu (approximate=True)
                y = x/2 (1 + tanh(c (x + k x^3)))        y' = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3 k x^2)
                c = sqrt(2/pi), k = 0.044715, t = tanh(c (x + k x^3))
  swish = silu  y = x sigmoid(x)                         y' = s + x s (1 - s),  s = sigmoid(x)
  hard_sigmoid  y = relu6(x + 3) / 6 = clip(x/6 + 1/2, 0, 1)
                                                         y' = 1/6 on -3 < x < 3, else 0 (0 at the kinks, as TF)
  exponential   y = exp(x)                               y' = y              (ops.exp)

Shapes: x and y any shape, the same; gx = gy * y'(x) elementwise. Each is a NumPy
expression of a few operations, computed here in the engine rather than in a kernel
tier: there is nothing for a fast route to gain on one pass over an array
(``math.erfc`` per element for gelu, since NumPy has no erf).
"""
from __future__ import annotations

import math

import numpy as np

from .ops import exp as exponential  # noqa: F401  (re-exported: y = exp(x), y' = y)
from .ops import stable_sigmoid
from .tensor import Function

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_HALF = 0.7071067811865476             # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327          # 1 / sqrt(2 pi)
_GELU_C, _GELU_K = 0.7978845608028654, 0.044715   # sqrt(2 / pi) and the cubic's coefficient

_erfc = np.frompyfunc(math.erfc, 1, 1)


def erfc(x):
    """The complementary error function elementwise, in x's dtype (libm's ``erfc``, correctly rounded to ~1 ulp)."""
    x = np.asarray(x)
    return np.asarray(_erfc(x.astype(np.float64)), dtype=np.float64).astype(x.dtype) if x.size else np.empty_like(x)


class Softplus(Function):
    """y = log(1 + exp(x)) = logaddexp(0, x) (no overflow).   gx = gy * sigmoid(x)."""

    def forward(self, x):
        self.x = x
        return np.logaddexp(x.dtype.type(0), x)

    def backward(self, gy):
        return gy * stable_sigmoid(self.x)


def softplus(x):
    return Softplus()(x)


class Softsign(Function):
    """y = x / (1 + |x|).   gx = gy / (1 + |x|)^2."""

    def forward(self, x):
        self.d = 1 + np.abs(x)
        return x / self.d

    def backward(self, gy):
        return gy / (self.d * self.d)


def softsign(x):
    return Softsign()(x)


class SELU(Function):
    """y = s x for x > 0, s a (exp(x) - 1) otherwise.   gx = gy * s for x > 0, gy * s a exp(x) otherwise.

    s = SELU_SCALE, a = SELU_ALPHA (Klambauer et al. 2017; TensorFlow's constants).
    """

    def forward(self, x):
        self.pos = x > 0
        self.e = np.exp(np.minimum(x, 0))                          # exp(x) where x <= 0, never overflows
        alpha, scale = x.dtype.type(SELU_ALPHA), x.dtype.type(SELU_SCALE)
        return scale * np.where(self.pos, x, alpha * np.expm1(np.minimum(x, 0)))

    def backward(self, gy):
        alpha, scale = gy.dtype.type(SELU_ALPHA), gy.dtype.type(SELU_SCALE)
        return gy * (scale * np.where(self.pos, 1, alpha * self.e)).astype(gy.dtype, copy=False)


def selu(x):
    return SELU()(x)


class GELU(Function):
    """Gaussian error linear unit, y = x Phi(x), Phi the standard normal CDF.

    Exact (default, Keras 3's activation): y = x/2 erfc(-x / sqrt 2); gx = gy (Phi(x) + x phi(x)).
    approximate=True: y = x/2 (1 + t), t = tanh(c (x + k x^3)), c = sqrt(2/pi), k = 0.044715;
    gx = gy ((1 + t)/2 + x/2 (1 - t^2) c (1 + 3 k x^2)).
    """

    def __init__(self, approximate=False):
        self.approximate = bool(approximate)

    def forward(self, x):
        self.x = x
        if self.approximate:
            c, k = x.dtype.type(_GELU_C), x.dtype.type(_GELU_K)
            self.t = np.tanh(c * (x + k * x * x * x))
            return x / 2 * (1 + self.t)
        self.cdf = erfc(-x * x.dtype.type(_SQRT_HALF)) / 2          # Phi(x)
        return x * self.cdf

    def backward(self, gy):
        x = self.x
        if self.approximate:
            c, k, t = x.dtype.type(_GELU_C), x.dtype.type(_GELU_K), self.t
            return gy * ((1 + t) / 2 + x / 2 * (1 - t * t) * c * (1 + 3 * k * x * x))
        pdf = x.dtype.type(_INV_SQRT_2PI) * np.exp(-x * x / 2)      # phi(x)
        return gy * (self.cdf + x * pdf)


def gelu(x, approximate=False):
    return GELU(approximate)(x)


class Swish(Function):
    """y = x sigmoid(x) (also called silu).   gx = gy * (s + x s (1 - s)), s = sigmoid(x)."""

    def forward(self, x):
        self.x = x
        self.s = stable_sigmoid(x)
        return x * self.s

    def backward(self, gy):
        s = self.s
        return gy * (s + self.x * s * (1 - s))


def swish(x):
    return Swish()(x)


silu = swish


class HardSigmoid(Function):
    """y = relu6(x + 3) / 6 = min(max(x + 3, 0), 6) / 6.   gx = gy / 6 where -3 < x < 3, else 0."""

    def forward(self, x):
        z = x + x.dtype.type(3)
        self.inside = (z > 0) & (z < 6)
        return np.minimum(np.maximum(z, 0), 6) / x.dtype.type(6)

    def backward(self, gy):
        return gy * self.inside / gy.dtype.type(6)


def hard_sigmoid(x):
    return HardSigmoid()(x)


class ReLUFamily(Function):
    """Keras's general relu (the ReLU layer, ``activations.relu`` with arguments), threshold th,
    slope a, cap m (None: no cap):

        y = min(x, m)          for x > th
        y = a (x - th)         for x <= th
        gx = gy * (1 if th < x < m, a if x <= th, 0 if x >= m)  (at a kink: the side listed)
    """

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0):
        self.negative_slope, self.max_value, self.threshold = negative_slope, max_value, threshold

    def forward(self, x):
        dt = x.dtype.type
        above = x > dt(self.threshold)
        top = x if self.max_value is None else np.minimum(x, dt(self.max_value))
        self.slope = np.where(above, 1 if self.max_value is None else (x < dt(self.max_value)),
                              dt(self.negative_slope)).astype(x.dtype, copy=False)
        y = np.where(above, top, dt(self.negative_slope) * (x - dt(self.threshold)))
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        return gy * self.slope


#: the activations by name, as ``functional.linear`` runs them after the affine map
NAMES = ("softplus", "softsign", "selu", "gelu", "swish", "silu", "hard_sigmoid", "exponential")


def relu_family(x, negative_slope=0.0, max_value=None, threshold=0.0):
    return ReLUFamily(negative_slope, max_value, threshold)(x)
