"""Small shared helpers: the random number generator numbanet draws from, names."""
from __future__ import annotations

import random
import re
from collections import defaultdict

import numpy as np

_RNG = [np.random.default_rng()]
_NAME_COUNTS: dict = defaultdict(int)


def set_random_seed(seed: int) -> None:
    """Seed everything numbanet draws from (initializers, dropout, shuffling),
    and Python's and NumPy's global generators, so a run can be repeated."""
    _RNG[0] = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def rng() -> np.random.Generator:
    """The generator behind every random draw that was not given its own seed."""
    return _RNG[0]


def snake_case(name: str) -> str:
    """'Conv2DTranspose' -> 'conv2d_transpose', 'SimpleRNN' -> 'simple_rnn' (Keras's naming)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    """Keras-style automatic names: dense, dense_1, dense_2, ..."""
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def one_of(kind: str, name, table: dict):
    """Look ``name`` up in ``table`` or raise a ValueError that lists the valid names."""
    key = name.lower() if isinstance(name, str) else name
    if key not in table:
        valid = ", ".join(sorted(k for k in table if isinstance(k, str)))
        raise ValueError(f"unknown {kind} {name!r}; valid names: {valid}")
    return table[key]
