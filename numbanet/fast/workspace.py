"""Reusable scratch arrays, so a training step does not allocate its large temporaries anew.

``scratch(tag, shape, dtype)`` returns the same array on every call with the same
(tag, shape, dtype) as long as nobody else still holds it; otherwise a fresh
one. "Nobody else holds it" is read from the reference count: the pool's own
reference, the local name and ``getrefcount``'s argument make 3; a view of the
array (``.base``) or a Tensor keeping it adds more. So a buffer is never
handed out twice while still in use, even by a graph kept alive by the user.

Why: allocating a fresh multi-megabyte array each step costs page faults on
every page (glibc serves big blocks with a new mmap); reusing one costs nothing.
"""
from __future__ import annotations

import sys

import numpy as np

_POOL: dict = {}


def scratch(tag: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``, reused across calls when free."""
    key = (tag, tuple(shape), np.dtype(dtype))
    buf = _POOL.get(key)
    if buf is None or sys.getrefcount(buf) > 3:
        buf = np.empty(key[1], dtype=key[2])
        _POOL[key] = buf
    return buf


from .tuning import BIG_BYTES  # outputs above it come from the pool (glibc mmaps them afresh)


def empty(tag: str, shape: tuple, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, from the scratch pool when it is big enough to be mmapped.

    For results that a graph keeps (a Dense layer's output, a loss's softmax):
    a caller that still holds last step's array gets a fresh one, as ``scratch``
    guarantees.
    """
    dtype = np.dtype(dtype)
    if int(np.prod(shape)) * dtype.itemsize < BIG_BYTES:
        return np.empty(shape, dtype=dtype)
    return scratch(tag, shape, dtype)


def clear():
    """Drop every pooled array (frees the memory)."""
    _POOL.clear()
