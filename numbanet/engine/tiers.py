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

A Function reads the active tier once per call, ``tiers.current.name(...)``:
one attribute read, nothing measurable beside the work itself.
"""
from __future__ import annotations

import contextlib
import importlib

TIERS = ("fast", "reference")

_active = {"name": "fast"}

#: The active tier's module. Functions read ``tiers.current.<name>(...)`` at call time (one
#: attribute read); ``set_kernels`` rebinds it. ``numbanet.engine`` loads the fast tier as the
#: last step of its import (the fast tier's modules import parts of the engine).
current = None


def _load(name):
    return importlib.import_module(f"numbanet.{name}.tier")


def active():
    """The module of the active tier (``numbanet.fast.tier`` or ``numbanet.reference.tier``)."""
    return current


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
    global current
    previous = _active["name"]
    current = _load(name)
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
