"""Which route each fast-tier function took on its last call, for tests and for learners.

Every protocol function of the fast tier that has more than one way to compute its
result (direct loops or im2col, serial or split, ...) records the one it chose::

    nb.fast.routes.last("conv2d_forward")       # -> "planes", "direct", "flipped", "im2col", "winograd4" or "winograd"
    nb.fast.routes.last("dense_forward")        # -> "small", "blas" or "split"
    nb.fast.routes.last()                       # {op name: route} for every op called so far

Recording is one dict store per call, ``LAST[op] = route`` (or ``record(op, route)``):
nothing measurable beside the work itself. The record is the last call's only (a
training step overwrites it layer by layer) and process-wide, like the tier switch.
The route names and what each means are in the docstring of the function that
records them (``numbanet/fast/conv.py``, ``dense.py`` and their neighbours).
"""
from __future__ import annotations

LAST: dict = {}


def record(op: str, route: str) -> None:
    """Note that the last call of ``op`` ran by ``route``."""
    LAST[op] = route


def last(op: str | None = None):
    """The route of the last call of ``op`` (None if it never ran), or a copy of every op's last route."""
    return dict(LAST) if op is None else LAST.get(op)


def clear() -> None:
    """Forget every recorded route."""
    LAST.clear()
