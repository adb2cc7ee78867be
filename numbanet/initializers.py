"""Weight initializers, by name or as classes with a seed (Keras 3 definitions).

Fans of a weight of shape S (Keras's rule): a matrix (D, U) has fan_in = D,
fan_out = U; a convolution kernel (KH, KW, A, B) has receptive field KH*KW and
fan_in = A*KH*KW, fan_out = B*KH*KW.

Variance scaling with scale s and fan n (fan_in, fan_out or their mean):
  uniform:  U(-limit, limit),  limit = sqrt(3 s / n)
  normal:   truncated normal (redrawn beyond 2 std) with std = sqrt(s / n) / 0.8796...
            (dividing by the std of a unit normal truncated at +-2 restores variance s/n)

  glorot (Xavier): s = 1, n = (fan_in + fan_out) / 2
  he:              s = 2, n = fan_in
  lecun:           s = 1, n = fan_in
"""
from __future__ import annotations

import numpy as np

from . import keras_names, utils

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def compute_fans(shape):
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base: ``init(shape, dtype) -> ndarray``. A ``seed`` gives its own generator."""

    def __init__(self, seed=None):
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def rng(self):
        return self._rng if self._rng is not None else utils.rng()

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.sample(tuple(shape)), dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    def sample(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__(None)
        self.value = value

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """N(mean, stddev^2); Keras defaults mean 0, stddev 0.05."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}

    def sample(self, shape):
        return self.rng().normal(self.mean, self.stddev, shape)


class RandomUniform(Initializer):
    """U(minval, maxval); Keras defaults -0.05, 0.05."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}

    def sample(self, shape):
        return self.rng().uniform(self.minval, self.maxval, shape)


def truncated_normal(rng, shape, std):
    """Normal(0, std^2) with every draw beyond 2 std redrawn."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def get_config(self):
        """The constructor's arguments: the subclasses (GlorotUniform, ...) fix all but the seed."""
        if type(self).__init__ is not VarianceScaling.__init__:
            return {"seed": self.seed}
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return self.rng().uniform(-limit, limit, shape)
        return truncated_normal(self.rng(), shape, np.sqrt(variance) / _TRUNC_STD)


class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class LecunUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


class Orthogonal(Initializer):
    """A (rows, cols) matrix with orthonormal rows or columns, rows = prod(shape[:-1]).

    Draw A ~ N(0, 1) of shape (max, min), factor A = QR, fix signs so that the
    result is uniform over orthogonal matrices (Q *= sign(diag(R))), transpose
    when rows < cols, scale by ``gain``.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a shape of rank >= 2, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = self.rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        # C order, as every other initializer gives: a weight (and the optimizer slots made like
        # it) stays on the contiguous fast paths; q.T alone would be a column-major view
        return np.ascontiguousarray(self.gain * q.reshape(shape))


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform, "uniform": RandomUniform,
    "normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
}


def get(identifier) -> Initializer:
    """An initializer from a name (``"glorot_uniform"``), a class, or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        return keras_names.lookup("initializer", identifier, _BY_NAME)()
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer must be a name, an Initializer or a callable, got {identifier!r}")
