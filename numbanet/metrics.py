"""Metrics on plain arrays, averaged over samples by the training loop.

Each metric function takes ``(y_true, y_pred)`` as ndarrays and returns one value
per sample (shape S, y_pred's shape without its last axis); ``fit`` and
``evaluate`` report their running mean, as Keras does.

"accuracy" picks its kind from the shapes, as Keras 3 does (the loss plays no
part): binary (threshold 0.5) for one output unit, sparse when the labels have
one axis fewer (or a last axis of 1 with several output units), categorical
otherwise -- so binary cross-entropy on several output units is scored with
categorical accuracy, exactly as in Keras 3.
"""
from __future__ import annotations

import numpy as np

from .utils import one_of


def binary_accuracy(y_true, y_pred, threshold=0.5):
    t = np.asarray(y_true).reshape(y_pred.shape)
    v = ((y_pred > threshold) == (t > threshold)).astype(np.float64)
    return v.mean(axis=-1) if v.ndim > 1 else v


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    t = np.asarray(y_true)
    if t.ndim == y_pred.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    return (t.astype(np.int64) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def mean_squared_error(y_true, y_pred):
    d = y_pred - np.asarray(y_true).reshape(y_pred.shape)
    return (d * d).mean(axis=-1) if d.ndim > 1 else d * d


def mean_absolute_error(y_true, y_pred):
    d = np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape))
    return d.mean(axis=-1) if d.ndim > 1 else d


_BY_NAME = {
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "accuracy": None, "acc": None,
}


def get(name, loss=None):
    """(history name, function) for a metric given by name or as a callable.

    ``loss`` is accepted for the training loop's sake but, as in Keras 3, does not
    choose the kind of "accuracy": the shapes of y_true and y_pred do, batch by batch.
    """
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    fn = one_of("metric", name, _BY_NAME)
    if fn is None:
        fn = _accuracy_by_shape
    return name, fn


def _accuracy_by_shape(y_true, y_pred):
    t = np.asarray(y_true)
    if y_pred.ndim >= 1 and (y_pred.ndim == 1 or y_pred.shape[-1] == 1):
        return binary_accuracy(t, y_pred)
    if t.ndim == y_pred.ndim - 1 or (t.ndim == y_pred.ndim and t.shape[-1] == 1):
        return sparse_categorical_accuracy(t, y_pred)
    return categorical_accuracy(t, y_pred)
