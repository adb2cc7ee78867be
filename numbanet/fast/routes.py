"""Which route each fast-tier function took on its last call, for tests and for learners.

    >>> nb.fast.routes.last("dense_forward")      # e.g. "small", "blas" or "split"
    >>> nb.fast.routes.last()                     # {op name: route} for every op called so far

Each fast-tier function stores its route with one dict store,
``LAST["dense_forward"] = "small"``: nothing measurable beside the work itself.
The route names and what each means are in the docstring of the function that
records them (``numbanet/fast/dense.py`` and its neighbours).
"""
from __future__ import annotations

LAST: dict = {}


def last(op: str | None = None):
    """The route ``op`` took on its last call (None if never called); all of them without ``op``."""
    return dict(LAST) if op is None else LAST.get(op)


def clear():
    """Forget every recorded route."""
    LAST.clear()
