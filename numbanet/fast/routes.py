"""Which route each fast-tier function took on its last call, for tests and for learners.

Every protocol function of the fast tier that has more than one way to compute its
result (direct loops or im2col, serial or split, ...) records the one it chose::

    record("conv2d_forward", "direct")          # one dict store per call
    nb.fast.routes.last("conv2d_forward")        # -> "direct"
    nb.fast.routes.last()                        # -> {"conv2d_forward": "direct", ...}

The record is the last call's only (a training step overwrites it layer by layer);
it is process-wide, like the tier switch.
"""
from __future__ import annotations

_LAST: dict = {}


def record(op: str, route: str) -> None:
    """Note that the last call of ``op`` ran by ``route``."""
    _LAST[op] = route


def last(op: str | None = None):
    """The route of the last call of ``op`` (None if it never ran), or a copy of every op's last route."""
    return dict(_LAST) if op is None else _LAST.get(op)


def clear() -> None:
    """Forget every recorded route."""
    _LAST.clear()
