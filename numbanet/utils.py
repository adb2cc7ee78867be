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
    valid = ", ".join(sorted(k for k in table if isinstance(k, str)))
    try:
        found = key in table
    except TypeError:  # an unhashable value (a list, a dict) cannot be a name
        raise TypeError(f"{kind} must be a name ({valid}), got {name!r}") from None
    if not found:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {valid}")
    return table[key]


def tune_malloc(mmap_threshold=32 * 1024 * 1024, trim_threshold=256 * 1024 * 1024) -> bool:
    """Ask glibc to keep freed large blocks for reuse instead of returning them to the OS.

    By default glibc serves every block over ~128 KiB-32 MiB with a fresh mmap and
    unmaps it on free, so a training step that allocates the same large arrays
    every time pays page faults for all of them again (measured: about 2x on the
    RNN step). Raising M_MMAP_THRESHOLD (at most 32 MiB on 64-bit glibc) and
    M_TRIM_THRESHOLD keeps them in the heap. Process-wide, so only the places
    that own the process call it (the ``numbanet`` command, the benchmarks).
    Returns False where there is no glibc (the call then does nothing).
    """
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = (libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1) and ok
        return ok
    except (OSError, AttributeError):
        return False


def set_num_threads(n=None) -> int:
    """Split the batch of convolutions, pooling and upsampling across ``n`` threads (default: all CPUs).

    See ``numbanet.engine.parallel``; ``set_num_threads(1)`` (the default) runs them serially.
    """
    from .engine import parallel
    return parallel.set_num_threads(n)
