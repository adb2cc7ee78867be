"""Small data sets that ship with packages, and helpers to split and batch arrays.

Nothing is downloaded: ``sine()`` is computed, ``load_iris()`` reads the copy
scikit-learn ships. Image sets (``load_digits``, ``load_mnist``) live in
``numbanet.data.images``.
"""
from __future__ import annotations

import numpy as np

from .. import utils


def sine(start=0.0, stop=10.0, step=0.1, dtype="float32"):
    """x = start, start+step, ..., < stop as a column (N, 1), and y = sin(x) (N, 1)."""
    x = np.arange(start, stop, step, dtype=np.float64).reshape(-1, 1)
    return x.astype(dtype), np.sin(x).astype(dtype)


def _require_sklearn(what):
    try:
        import sklearn.datasets as skd
    except ImportError:  # pragma: no cover - depends on the machine
        raise ImportError(f"{what} reads the data set that scikit-learn ships; install it with "
                          f"`pip install scikit-learn` (or `pip install numbanet[demos]`)") from None
    return skd


def load_iris(one_hot=False):
    """Fisher's iris data from scikit-learn: x (150, 4) float32, y (150,) int64 (or one-hot (150, 3))."""
    skd = _require_sklearn("load_iris")
    data = skd.load_iris()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    if one_hot:
        y = np.eye(3, dtype=np.float32)[y]
    return x, y


def train_test_split(x, y, test_size=0.2, seed=None, shuffle=True):
    """Split arrays into (x_train, x_test, y_train, y_test), shuffled reproducibly from ``seed``."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"train_test_split: x has {len(x)} samples but y has {len(y)}")
    n_test = int(round(len(x) * test_size)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < len(x):
        raise ValueError(f"train_test_split: test_size={test_size} gives {n_test} of {len(x)} samples")
    rng = np.random.default_rng(seed) if seed is not None else utils.rng()
    order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]


def batches(x, y=None, batch_size=32, shuffle=False, seed=None):
    """Yield (x_batch, y_batch) (or x_batch alone) of ``batch_size`` samples; the last may be smaller."""
    n = len(x)
    order = (np.random.default_rng(seed) if seed is not None else utils.rng()).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size] if shuffle else slice(start, start + batch_size)
        yield (x[idx], y[idx]) if y is not None else x[idx]
