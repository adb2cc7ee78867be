"""Losses, Keras-style: ``loss(y_true, y_pred, sample_weight=None, mask=None)`` -> scalar Tensor.

Every loss first computes one value per sample (and per time step), l of shape S
(y_pred's shape without its last axis), then reduces as Keras does
("sum_over_batch_size"):

    L = sum(w * l) / size(l)        w = sample_weight (1 when absent)
    L = sum(m * l) / sum(m)         with a mask m (padding positions excluded)

Each loss is one fused ``Function`` on y_pred with the closed-form gradient, so
it is stable where a chain of primitive ops would not be (log-sum-exp; no log(0)).
With c = dL/dl = gy * w / size(l) (per value), D the size of the last axis:

  mse      l = mean((p - t)^2)                  dl/dp = 2 (p - t) / D
  mae      l = mean(|p - t|)                    dl/dp = sign(p - t) / D
  binary   l = -mean(t log p + (1-t) log(1-p)),  p clipped to [1e-7, 1-1e-7]
           dl/dp = (-(t/p) + (1-t)/(1-p)) / D   (0 where p was clipped)
           from logits z:  l = mean(max(z,0) - z t + log(1 + exp(-|z|)))
           dl/dz = (sigmoid(z) - t) / D
  categorical  q = p / sum(p), clipped;  l = -sum(t log q)
           dl/dp_k = (g_k - sum_j g_j q_j) / sum(p),  g_j = -t_j / q_j (0 where clipped)
           from logits:  l = logsumexp(z) sum(t) - sum(t z);  dl/dz = softmax(z) sum(t) - t
  sparse   t = one_hot(label), labels of shape S (or S + (1,)); from logits as categorical;
           from probabilities as Keras's TensorFlow backend: q = clip(p), l = -log_softmax(log q)[label]
           (= -log(q_label / sum(q)): normalised after clipping);
           dl/dp = (q / sum(q) - t) / q  (0 where p was clipped)
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .engine import Tensor, tiers
from .engine.functional import Linear, Softmax
from .engine.ops import Sigmoid, stable_sigmoid
from .engine.tensor import Function, as_tensor
from . import keras_names

EPSILON = 1e-7


class _ReducedLoss(Function):
    """L = sum(w * l(t, p)) / denom, with the loss's own closed-form gradient.

    Shapes: p (y_pred) and t as the loss takes them, l and w (or None) of shape S,
    L and gy 0-d. dL/dp = gradient_from(t, p, c) with c = gy * w / denom (0-d
    without weights, shape S with them).
    """

    def __init__(self, loss, y_true, weights, denom):
        self.loss, self.t, self.w, self.denom = loss, y_true, weights, denom

    def forward(self, p):
        self.p = p
        values, self.ctx = self.loss.evaluate(self.t, p)
        total = _add_reduce(values if self.w is None else values * self.w, axis=None)
        return np.asarray(total / self.denom, dtype=p.dtype)

    def backward(self, gy):
        dtype = self.p.dtype
        c = gy / self.denom
        if self.w is not None:
            c = c * self.w
        if c.dtype != dtype or type(c) is not np.ndarray and type(c) is not dtype.type:
            c = np.asarray(c, dtype=dtype)      # a NumPy scalar of p's dtype acts as the 0-d array would
        g = self.loss.gradient_from(self.t, self.p, c, self.ctx)
        return g if g.dtype == dtype else g.astype(dtype)


_add_reduce = np.add.reduce
_MEAN_EXACT = (np.dtype(np.float32), np.dtype(np.float64))
_MEAN_EXACT_MAX = 1 << 24        # D below it is exact in float32 (and in float64)


def _mean_last(v):
    """The mean over the last axis, bit for bit ``v.mean(axis=-1)``:  v (..., D) -> (...).

    ``ndarray.mean`` sums with ``np.add.reduce`` in v's dtype, then divides that
    sum s by the count D as an intp, which NumPy does in float64 and rounds back
    to v's dtype. For float64, ``s / D`` with D < 2^53 is that same division.
    For float32, s and D are exact in float64, so mean = round32(round64(s / D));
    rounding twice to 53 and then 24 bits gives the correctly rounded float32
    quotient because 53 >= 2 * 24 + 2 (double rounding is innocuous for a
    division when the wider precision has at least 2p + 2 bits), and that is
    what the float32 division ``s /= D`` returns, D being exact in float32 for
    D < 2^24. For D = 1 the sum is 0 + x (the reduction starts at add's identity,
    so -0 becomes +0) and x / 1 = x, so the mean is the column plus 0.0 (one
    pass instead of two). Other dtypes or sizes: ``v.mean``. The shortcut skips
    ``ndarray.mean``'s Python wrapper (about 6 us per call on a Zen 2 core).
    """
    if v.dtype not in _MEAN_EXACT or v.ndim < 2:
        return v.mean(axis=-1)
    D = v.shape[-1]
    if D == 1:
        return v[..., 0] + 0.0
    if D >= _MEAN_EXACT_MAX:
        return v.mean(axis=-1)
    s = _add_reduce(v, axis=-1)
    s /= D
    return s


def _activation_that_made(y_pred):
    """"softmax" or "sigmoid" when ``y_pred`` is the direct output of that activation, else None.

    Read from the node that produced it (a Softmax, a Sigmoid, or a Dense's fused
    Linear node with sigmoid inside); outside the graph (``no_grad``) nothing is known.
    """
    fn = getattr(y_pred, "creator", None)
    if isinstance(fn, Softmax):
        return "softmax"
    if isinstance(fn, Sigmoid) or (isinstance(fn, Linear) and fn.activation == "sigmoid"):
        return "sigmoid"
    return None


class _FromLogits:
    """Cross-entropies' ``from_logits`` flag, and Keras's warning when it contradicts the model.

    ``from_logits=True`` says y_pred holds logits (any real numbers); a softmax or
    sigmoid output holds probabilities, so the loss would apply a second softmax /
    sigmoid and train the wrong thing silently. As Keras does, the first such call
    warns (a UserWarning); one warning per loss object, not one per batch.
    """

    def _init_logits(self, from_logits):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: from_logits must be True or False, "
                            f"got the {type(from_logits).__name__} {from_logits!r}")
        self.from_logits = bool(from_logits)
        self._warned_logits = False

    def _check_logits(self, y_pred):
        if not self.from_logits or self._warned_logits:
            return
        made_by = _activation_that_made(y_pred)
        if made_by is None:
            return
        self._warned_logits = True
        warnings.warn(f"{type(self).__name__} received from_logits=True, but y_pred is the output of a "
                      f"{made_by} activation, so it holds probabilities, not logits: the loss would apply "
                      f"{made_by} a second time. Either use {type(self).__name__}(from_logits=False), or "
                      f"remove the {made_by} from the last layer (e.g. Dense(units) with no activation) to "
                      f"keep from_logits=True", UserWarning, stacklevel=3)


class Loss:
    """Base class: subclasses give ``values(t, p)`` (shape S) and ``gradient(t, p, c)``."""

    name = "loss"
    sparse = False

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in ("sum_over_batch_size", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'sum_over_batch_size' or 'sum', got {reduction!r}")
        self.name = name or self.name
        self.reduction = reduction

    def evaluate(self, t, p):
        """(values, ctx): a loss may keep in ``ctx`` what its gradient can reuse."""
        return self.values(t, p), None

    def gradient_from(self, t, p, c, ctx):
        return self.gradient(t, p, c)

    def prepare_true(self, y_true, p):
        t = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
        if t.shape != p.shape:
            if t.size == p.size and t.ndim != p.ndim:
                t = t.reshape(p.shape)
            else:
                raise ValueError(f"{type(self).__name__}: y_true has shape {t.shape} but y_pred has shape {p.shape}")
        return t.astype(p.dtype, copy=False)

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        if (sample_weight is None and mask is None and type(y_pred) is Tensor
                and type(y_true) is np.ndarray):
            # unweighted and unmasked: the checks and the divisor follow from the shapes
            # and dtypes alone, so they are done once per kind of (y_true, y_pred)
            p = y_pred.data
            kind = self._kind
            if (kind is not None and kind[0] == p.shape and kind[1] is p.dtype
                    and kind[2] == y_true.shape and kind[3] is y_true.dtype and kind[6] is self.reduction):
                self._check_logits(y_pred)
                t = y_true if kind[5] else self.prepare_true(y_true, p)
                return _ReducedLoss(self, t, None, kind[4])(y_pred)
            t, weights, denom = self._prepare(y_true, y_pred, None, None)
            self._kind = (p.shape, p.dtype, y_true.shape, y_true.dtype, denom, self._reusable_true(t, y_true),
                          self.reduction)
            return _ReducedLoss(self, t, weights, denom)(y_pred)
        y_pred = as_tensor(y_pred)
        t, weights, denom = self._prepare(y_true, y_pred, sample_weight, mask)
        return _ReducedLoss(self, t, weights, denom)(y_pred)

    #: (p.shape, p.dtype, y_true.shape, y_true.dtype, denom, y_true used as t, reduction) of the last
    #: checked unweighted call with an ndarray y_true; a call of the same kind skips the checks
    _kind = None

    def _reusable_true(self, t, y_true):
        """True where ``prepare_true`` returned y_true itself, so a call of the same kind may skip it."""
        return t is y_true

    def _prepare(self, y_true, y_pred, sample_weight, mask):
        """(t, w or None, denom): the checks of y_pred, y_true, sample_weight and mask (see _weights)."""
        self._check_pred(y_pred)
        self._check_logits(y_pred)
        t = self.prepare_true(y_true, y_pred.data)
        weights, denom = _weights(type(self).__name__, self._value_shape(y_pred.shape, t),
                                  sample_weight, mask, y_pred.dtype)
        return t, weights, (1.0 if self.reduction == "sum" else denom)

    def _check_pred(self, y_pred):
        if y_pred.ndim == 0:
            raise ValueError(f"{type(self).__name__}: y_pred must have a batch axis, got a scalar")

    def _check_logits(self, y_pred):
        """Nothing for losses without ``from_logits`` (``_FromLogits`` warns on a contradiction)."""

    def _value_shape(self, p_shape, t):
        """S, the shape of the per-sample values l: y_pred's without its last axis (1-D: one per sample)."""
        value_shape = p_shape if self.sparse else p_shape[:-1]
        return value_shape if value_shape else p_shape

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def _weights(loss_name, shape, sample_weight, mask, dtype):
    shape = tuple(shape)
    n_values = math.prod(shape)             # Python ints: np.prod on a tuple costs a tenth of a tiny step
    if sample_weight is None and mask is None:
        return None, float(max(n_values, 1))
    w = np.ones(shape, dtype=dtype)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=dtype)
        while sw.ndim < len(shape):
            sw = sw[..., None]
        if sw.ndim > len(shape) and sw.shape[-1] == 1:
            sw = sw[..., 0]
        try:
            w = w * sw
        except ValueError:
            raise ValueError(f"{loss_name}: sample_weight of shape {np.shape(sample_weight)} does not fit "
                             f"per-sample losses of shape {shape}") from None
    if mask is not None:
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask).astype(dtype)
        if m.shape != shape:
            raise ValueError(f"{loss_name}: mask of shape {m.shape} does not match per-sample losses of shape {shape}")
        w = w * m
        return w, float(max(m.sum(), 1.0))
    return w, float(max(n_values, 1))


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def values(self, t, p):
        return self.evaluate(t, p)[0]

    def evaluate(self, t, p):
        """(l, d): l = mean(d^2) over the last axis, d = p - t kept for the gradient."""
        d = p - t
        dd = d * d
        return (_mean_last(dd) if p.ndim > 1 else dd), d

    def gradient(self, t, p, c):
        return self.gradient_from(t, p, np.asarray(c), p - t)

    def gradient_from(self, t, p, c, d):
        """dl/dp scaled by c: (2 / D) c d, c 0-d or of shape S (then broadcast over the last axis)."""
        D = p.shape[-1] if p.ndim > 1 else 1
        if c.ndim and p.ndim > 1:
            c = c[..., None]
        return (2.0 / D) * c * d


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def values(self, t, p):
        d = np.abs(p - t)
        return _mean_last(d) if p.ndim > 1 else d

    def gradient(self, t, p, c):
        D = p.shape[-1] if p.ndim > 1 else 1
        c = c[..., None] if p.ndim > 1 and np.ndim(c) else c
        return c * np.sign(p - t) / D


class BinaryCrossentropy(_FromLogits, Loss):
    name = "binary_crossentropy"

    def __init__(self, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        self._init_logits(from_logits)

    def evaluate(self, t, p):
        """(values, None) by the active tier's ``binary_ce_forward`` (the fast tier's arrays are pooled)."""
        return tiers.current.binary_ce_forward(t, p, self.from_logits), None

    def gradient_from(self, t, p, c, ctx):
        """dL/dp by the active tier's ``binary_ce_backward``; ``values`` and ``gradient`` below are the formulas."""
        return tiers.current.binary_ce_backward(t, p, c, self.from_logits)

    def values(self, t, p):
        if self.from_logits:  # max(z,0) - z t + log(1 + exp(-|z|)): never overflows
            v = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        else:
            q = np.clip(p, EPSILON, 1 - EPSILON)
            v = -(t * np.log(q) + (1 - t) * np.log(1 - q))
        return _mean_last(v) if p.ndim > 1 else v

    def gradient(self, t, p, c):
        D = p.shape[-1] if p.ndim > 1 else 1
        c = c[..., None] if p.ndim > 1 and np.ndim(c) else c
        if self.from_logits:
            return c * (stable_sigmoid(p) - t) / D
        inside = (p >= EPSILON) & (p <= 1 - EPSILON)
        q = np.clip(p, EPSILON, 1 - EPSILON)
        return c * np.where(inside, (-(t / q) + (1 - t) / (1 - q)), 0) / D

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class CategoricalCrossentropy(_FromLogits, Loss):
    name = "categorical_crossentropy"

    def __init__(self, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        self._init_logits(from_logits)

    def values(self, t, p):
        if self.from_logits:
            return -(t * _log_softmax(p)).sum(axis=-1)
        q = np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
        return -(t * np.log(q)).sum(axis=-1)

    def gradient(self, t, p, c):
        c = c[..., None] if np.ndim(c) else c
        if self.from_logits:
            soft = np.exp(_log_softmax(p))
            return c * (soft * t.sum(axis=-1, keepdims=True) - t)
        s = p.sum(axis=-1, keepdims=True)
        q_raw = p / s
        q = np.clip(q_raw, EPSILON, 1 - EPSILON)
        g = np.where(q_raw == q, -t / q, 0)
        return c * (g - (g * q_raw).sum(axis=-1, keepdims=True)) / s

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_FromLogits, Loss):
    """Categorical cross-entropy with integer labels. y_pred (..., V), y_true (...) or (..., 1)."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, **kwargs):
        super().__init__(**kwargs)
        self._init_logits(from_logits)

    def prepare_true(self, y_true, p):
        t = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
        if t.shape == p.shape[:-1] + (1,) and t.ndim == p.ndim:
            t = t[..., 0]
        if t.shape != p.shape[:-1]:
            raise ValueError(f"SparseCategoricalCrossentropy: labels of shape {t.shape} do not fit predictions "
                             f"of shape {p.shape} (expected {p.shape[:-1]} or {p.shape[:-1] + (1,)})")
        if t.dtype.kind == "f":
            if not np.all(np.isfinite(t)) or np.any(t != np.round(t)):
                raise ValueError("SparseCategoricalCrossentropy: labels must be integer class ids, "
                                 "got non-integer values")
        elif t.dtype.kind not in "iu":
            raise TypeError(f"SparseCategoricalCrossentropy: labels must be integers, got dtype {t.dtype}")
        t = t.astype(np.intp)
        V = p.shape[-1]
        if t.size and (t.min() < 0 or t.max() >= V):
            raise ValueError(f"SparseCategoricalCrossentropy: labels must lie in [0, {V}), "
                             f"got values in [{t.min()}, {t.max()}]")
        return t

    def _check_pred(self, y_pred):
        if y_pred.ndim < 2:
            raise ValueError(f"SparseCategoricalCrossentropy: y_pred must have shape (..., classes), got {y_pred.shape}")

    def _value_shape(self, p_shape, t):
        return t.shape

    def _reusable_true(self, t, y_true):
        return False            # the labels' values are checked on every call (ids in [0, V))

    @staticmethod
    def _pick(a, t):
        return np.take_along_axis(a, t[..., None], axis=-1)[..., 0]

    def evaluate(self, t, p):
        """From logits, the active tier's ``sparse_ce_forward`` on the rows (..., V) -> (B, V):
        l = logsumexp(z) - z[t]; it keeps what its ``sparse_ce_backward`` reuses (the fast
        tier: the softmax, so the gradient needs no second exp)."""
        if not self.from_logits:
            return self.values(t, p), None
        tier = tiers.current          # what it saves is its own: the gradient runs on the same tier
        values, saved = tier.sparse_ce_forward(t.reshape(-1), p.reshape(-1, p.shape[-1]))
        return values.reshape(t.shape), (tier, saved)

    def gradient_from(self, t, p, c, ctx):
        """From logits: c * (softmax(z) - one_hot(t)), by the active tier's ``sparse_ce_backward``."""
        if ctx is None:
            return self.gradient(t, p, c)
        tier, saved = ctx
        c1 = np.broadcast_to(np.asarray(c, dtype=p.dtype), t.shape).reshape(-1)  # per-row weights (B,)
        return tier.sparse_ce_backward(t.reshape(-1), saved, c1).reshape(p.shape)

    def values(self, t, p):
        """Probabilities only: from logits, ``evaluate`` computes the values with the gradient."""
        # Keras (TensorFlow backend): clip the probabilities, take their log and use
        # it as logits, so the rows are normalised by the log-softmax after clipping
        lq = np.log(np.clip(p, EPSILON, 1 - EPSILON))
        return -self._pick(_log_softmax(lq), t)

    def gradient(self, t, p, c):
        """Probabilities only: from logits, ``gradient_from`` scales the kept softmax - one_hot."""
        c = c[..., None] if np.ndim(c) else c
        q = np.clip(p, EPSILON, 1 - EPSILON)
        g_lq = q / q.sum(axis=-1, keepdims=True)  # d/d(lq) of -log_softmax(lq)[t] = softmax(lq) - one_hot(t)
        np.put_along_axis(g_lq, t[..., None], self._pick(g_lq, t)[..., None] - 1, axis=-1)
        return c * np.where(p == q, g_lq / q, 0)  # d lq / d p = 1/q inside the clip range, 0 outside

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError, "meansquarederror": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError, "meanabsoluteerror": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "binarycrossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy, "categoricalcrossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "sparsecategoricalcrossentropy": SparseCategoricalCrossentropy,
}


def get(identifier) -> Loss:
    """A loss from a Keras name (``"mse"``, ``"categorical_crossentropy"``, ...), a class or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        return keras_names.lookup("loss", identifier, _BY_NAME)()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise TypeError(f"loss must be a name, a Loss or a callable, got {identifier!r}")


class FunctionLoss(Loss):
    """Wraps a user function ``fn(y_true, y_pred_tensor) -> Tensor`` (any shape; its mean is taken)."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        out = as_tensor(self.fn(y_true, y_pred))
        return out.mean() if out.ndim else out


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
