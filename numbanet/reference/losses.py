"""The losses Keras defines, one value per sample, and their gradients.

Notation: p = y_pred (..., D) (probabilities or logits z), t = y_true of the same
shape (integer labels (...) for the sparse loss), l (...) the per-sample values,
S the sample shape (p's shape without its last axis; a 1-D p has one value per
element and D = 1). Probabilities are clipped as Keras does, to [EPSILON, 1 - EPSILON],
and the clipped entries pass no gradient.

  mse          l = mean_D (p - t)^2                    dl/dp = 2 (p - t) / D
  mae          l = mean_D |p - t|                      dl/dp = sign(p - t) / D
  binary       l = -mean_D (t log q + (1-t) log(1-q)),  q = clip(p)
                                                       dl/dp = (-t/q + (1-t)/(1-q)) / D
               logits: l = mean_D (max(z, 0) - z t + log(1 + e^-|z|))
                                                       dl/dz = (sigmoid(z) - t) / D
  categorical  r = p / sum_D p (rows normalised first), q = clip(r), l = -sum_D t log q
                                                       dl/dp = (g - sum_D g r) / sum_D p,  g = -t/q
               logits: l = -sum_D t log_softmax(z)     dl/dz = softmax(z) sum_D t - t
  sparse       t = one_hot(label);  logits as categorical: dl/dz = softmax(z) - t
               probabilities (Keras's TensorFlow backend): q = clip(p), l = -log_softmax(log q)[label]
                                                       dl/dp = (q / sum_D q - t) / q

The batch reduction ("sum_over_batch_size") and its gradient, with weights w
(sample weights times mask) and denominator n (the number of values, or the mask's sum):

    L = sum(w l) / n                                   c = dL/dl = gL w / n

Each ``*_backward(t, p, c)`` returns dL/dp = c dl/dp, with c (S,) or a scalar.
fast tier: numbanet.losses (each Loss's ``values`` and ``gradient``; ``_ReducedLoss``), and
numbanet.fast.losses for the sparse cross-entropy from logits.
"""
from __future__ import annotations

import numpy as np

from .activations import log_softmax, sigmoid, softmax

EPSILON = 1e-7


def _mean_D(v):
    """Mean over the last axis (S,) -- a 1-D input keeps one value per element."""
    return v.mean(axis=-1) if v.ndim > 1 else v


def _per_entry(c, p):
    """c (S,) or scalar -> broadcastable against p (..., D), divided by D for the mean."""
    return np.expand_dims(c, -1) / p.shape[-1] if p.ndim > 1 else c


def reduce_loss(l, w=None, n=None):
    """L = sum(w l) / n: l (S,), w (S,) or None (= 1), n defaults to l.size.  fast tier: _ReducedLoss.forward."""
    n = l.size if n is None else n
    return (l if w is None else w * l).sum() / n


def reduce_loss_backward(gL, w=None, n=None, shape=()):
    """c = dL/dl = gL w / n, shape S.   fast tier: numbanet.losses._ReducedLoss.backward."""
    n = int(np.prod(shape)) if n is None else n
    return np.broadcast_to(gL / n if w is None else gL * w / n, shape)


def mean_squared_error(t, p):
    return _mean_D((p - t) ** 2)


def mean_squared_error_backward(t, p, c):
    return _per_entry(c, p) * 2 * (p - t)


def mean_absolute_error(t, p):
    return _mean_D(np.abs(p - t))


def mean_absolute_error_backward(t, p, c):
    return _per_entry(c, p) * np.sign(p - t)


def binary_crossentropy(t, p, from_logits=False):
    if from_logits:      # log(1 + e^z) - z t, written so that e^... never overflows
        return _mean_D(np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p))))
    q = np.clip(p, EPSILON, 1 - EPSILON)
    return _mean_D(-(t * np.log(q) + (1 - t) * np.log(1 - q)))


def binary_crossentropy_backward(t, p, c, from_logits=False):
    if from_logits:
        return _per_entry(c, p) * (sigmoid(p) - t)
    q = np.clip(p, EPSILON, 1 - EPSILON)
    inside = (p >= EPSILON) & (p <= 1 - EPSILON)         # the clip passes a gradient only here
    return _per_entry(c, p) * np.where(inside, -t / q + (1 - t) / (1 - q), 0)


def categorical_crossentropy(t, p, from_logits=False):
    if from_logits:
        return -(t * log_softmax(p)).sum(axis=-1)
    q = np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -(t * np.log(q)).sum(axis=-1)


def categorical_crossentropy_backward(t, p, c, from_logits=False):
    c = np.expand_dims(c, -1)
    if from_logits:
        return c * (softmax(p) * t.sum(axis=-1, keepdims=True) - t)
    s = p.sum(axis=-1, keepdims=True)
    r = p / s                                            # the normalised row
    q = np.clip(r, EPSILON, 1 - EPSILON)
    g = np.where(r == q, -t / q, 0)                      # dl/dr, 0 where clipped
    return c * (g - (g * r).sum(axis=-1, keepdims=True)) / s   # through r = p / sum(p)


def sparse_categorical_crossentropy(labels, p, from_logits=False):
    """labels (S,) integers in [0, D), p (S..., D) -> l (S,)."""
    z = p if from_logits else np.log(np.clip(p, EPSILON, 1 - EPSILON))
    return -np.take_along_axis(log_softmax(z), labels[..., None], axis=-1)[..., 0]


def sparse_categorical_crossentropy_backward(labels, p, c, from_logits=False):
    t = np.eye(p.shape[-1], dtype=p.dtype)[labels]       # one_hot(labels) (S..., D)
    c = np.expand_dims(c, -1)
    if from_logits:
        return c * (softmax(p) - t)
    q = np.clip(p, EPSILON, 1 - EPSILON)
    g = q / q.sum(axis=-1, keepdims=True) - t            # dl/d(log q) = softmax(log q) - t
    return c * np.where(p == q, g / q, 0)                # d(log q)/dp = 1/q, 0 where clipped
