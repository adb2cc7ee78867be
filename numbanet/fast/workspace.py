"""Reusable arrays, so a training step does not allocate its large arrays anew.

``scratch(tag, shape, dtype)`` returns an array that is free: one made by an
earlier call with the same (tag, shape, dtype) that nobody else holds any more,
else a fresh one, which the pool keeps for later calls (up to ``PER_KEY`` arrays
per key, so two layers of the same shape each find theirs again). "Nobody else
holds it" is read from the reference count: the pool's list, the loop name and
``getrefcount``'s argument make 3; a view of the array (``.base``), a Tensor
keeping it or a name in the user's code adds more. So an array is never handed
out twice while still in use, even by a graph kept alive by the user.

``empty(tag, shape, dtype)`` is ``np.empty`` for the results of the fast tier
(a layer's output, a gradient, a softmax): from the pool from ``POOL_MIN_BYTES``
up, fresh below.

``set_enabled(False)`` (or ``with disabled():``) turns the pool off: every call
then returns a fresh ``np.empty``, which is what the tests compare the pooled
results against (same numbers, as no result may depend on what a reused array
held before).

Why: glibc serves a block over its mmap threshold (128 KiB at the start, raised
as blocks are freed, at most 32 MiB) with fresh pages and gives freed memory at
the top of the heap back to the system; every fresh page then faults on first
touch. Measured on W2 (benchmarks/results/defaults.md): about 23 000 page faults
per epoch of 8 steps with the fresh arrays, none once the step's arrays come from
here, whatever ``numbanet.utils.tune_malloc`` did to glibc's settings.
"""
from __future__ import annotations

import contextlib
import sys

import numpy as np

from .tuning import POOL_MIN_BYTES

PER_KEY = 4     # arrays kept per (tag, shape, dtype); beyond it a busy key gets unpooled fresh ones

# The tag of short-lived elementwise results (the binary cross-entropy's and the sigmoid's
# gradients and scratch): any free array of the shape serves, so ops that never hold more
# than a few at once share them instead of keeping one per name.
ELEMENTWISE = "elementwise"

_POOL: dict = {}   # (tag, shape, dtype) -> [arrays]
_ENABLED = [True]


def scratch(tag: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``, reused across calls when free.

    Callers on different threads at the same time use different tags (the
    convolutions' "conv.col{worker}"), so no two threads look at one key at once.
    """
    if not _ENABLED[0]:
        return np.empty(shape, dtype=dtype)
    key = (tag, tuple(shape), np.dtype(dtype))
    bufs = _POOL.get(key)
    if bufs is None:
        bufs = _POOL[key] = []
    for buf in bufs:
        if sys.getrefcount(buf) <= 3:         # the list, ``buf`` and getrefcount's argument
            return buf
    buf = np.empty(key[1], dtype=key[2])
    if len(bufs) >= PER_KEY:                  # all busy (a user keeps old graphs): forget the oldest
        bufs.pop(0)
    bufs.append(buf)
    return buf


def empty(tag: str, shape: tuple, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, from the pool when it is ``POOL_MIN_BYTES`` or more.

    For results that a graph keeps (a layer's output, a gradient): a caller that
    still holds last step's array gets another one, as ``scratch`` guarantees.
    """
    dtype = np.dtype(dtype)
    if int(np.prod(shape)) * dtype.itemsize < POOL_MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    return scratch(tag, shape, dtype)


def set_enabled(flag: bool) -> bool:
    """Turn the pool on (True, the default) or off (every call a fresh array); returns the previous setting.

    Off, the pool keeps what it holds but hands nothing out; ``clear()`` frees it.
    """
    previous = _ENABLED[0]
    _ENABLED[0] = bool(flag)
    return previous


@contextlib.contextmanager
def disabled():
    """Context manager: the pool is off inside the block, as it was before after it."""
    previous = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(previous)


def pooled_bytes() -> int:
    """Bytes held by the pool (free and busy arrays together)."""
    return sum(buf.nbytes for bufs in _POOL.values() for buf in bufs)


def clear():
    """Drop every pooled array (frees the memory of those nobody else holds)."""
    _POOL.clear()
