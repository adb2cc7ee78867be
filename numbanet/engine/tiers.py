"""Which tier computes the array-level operations: ``"fast"`` (the default) or ``"reference"``.

The engine's differentiable Functions say *what* is computed; the arrays are
computed by the functions of the active tier, both with the same names and
signatures:

* ``numbanet/reference/tier.py``: plain NumPy written as a textbook would, no
  threads, no buffers, no fusion, no Numba; made to be read and stepped through;
* ``numbanet/fast/tier.py``: routed, chunked, fused and threaded; the one the
  benchmarks measure.

Both give the same numbers within floating-point rounding (the test suite runs
each against the other). Switch with::

    nb.set_kernels("reference")          # for the rest of the program
    with nb.kernels("reference"):        # for one block
        model.fit(x, y)

A Function reads the active tier once per call, ``tiers.active().name(...)``:
one attribute lookup, nothing measurable beside the work itself.
"""
from __future__ import annotations

import contextlib
import importlib

TIERS = ("fast", "reference")

_active = {"name": "fast"}
_module = None   # the active tier's module, loaded on first use (the fast tier imports the engine)


def _load(name):
    return importlib.import_module(f"numbanet.{name}.tier")


def active():
    """The module of the active tier (``numbanet.fast.tier`` or ``numbanet.reference.tier``)."""
    return _module or _load_active()


def _load_active():
    global _module
    _module = _load(_active["name"])
    return _module


def get_kernels() -> str:
    """The name of the active tier: ``"fast"`` or ``"reference"``."""
    return _active["name"]


def set_kernels(name: str) -> str:
    """Make ``name`` ("fast" or "reference") the tier that computes every array operation.

    Returns the previous tier's name. Graphs recorded under one tier may be
    differentiated under the other: each Function's backward uses the tier
    active when backward runs.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_kernels: name must be a str, one of {TIERS}, got {type(name).__name__} {name!r}")
    if name not in TIERS:
        raise ValueError(f"set_kernels: unknown tier {name!r}; choose one of {TIERS}")
    global _module
    previous = _active["name"]
    _module = _load(name)
    _active["name"] = name
    return previous


@contextlib.contextmanager
def kernels(name: str):
    """Context manager: ``name`` is the active tier inside the block, the previous one after it."""
    previous = set_kernels(name)
    try:
        yield
    finally:
        set_kernels(previous)
