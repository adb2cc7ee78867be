"""What ``compile`` makes of ``loss``, ``loss_weights`` and ``metrics`` for each output, as Keras 3 does.

A model with outputs named ``names`` (the layers that make them) gets, per output i:

* ``losses[i]``: a Loss, or None (no loss, no targets needed). ``loss`` may be one loss
  (applied to every output), a list (one per output, in output order) or a dict by
  output name;
* ``weights[i]``: a float. The training loss is ``sum_i weights[i] * losses[i](y_i, y_pred_i)``;
  ``loss_weights`` may be None (all 1), one number (every output), a list or a dict
  (outputs it leaves out weigh 1);
* ``metrics[i]``: a list of (history name, function). ``metrics`` may be a list of one
  metric per output, a list of lists, or a dict by output name (a metric or a list).
  With several outputs each history name is ``<output>_<metric>``, as Keras logs it.

Keras's rules on which structures fit are kept; where Keras silently ignores a
mismatch (a loss list shorter than the outputs, a ``loss_weights`` key that names
no output), this module raises a ValueError naming the outputs instead.
"""
from __future__ import annotations

import math

from .. import losses as losses_mod
from .. import metrics as metrics_mod


def _per_output(owner, arg, value, names, example):
    """``value`` given as a list (one per output) or a dict by output name, as a list in output order."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"{owner}: {arg} has the key {unknown[0]!r}, which is not an output of the model; "
                             f"its outputs are {names} (e.g. {arg}={example})")
        return [value.get(n) for n in names], True
    if len(value) != len(names):
        raise ValueError(f"{owner}: {arg} is a list of {len(value)}, but the model has {len(names)} outputs "
                         f"{names}: give one entry per output, in that order, or a dict by output name "
                         f"(e.g. {arg}={example})")
    return list(value), False


def compile_losses(owner, loss, names):
    """One Loss (or None) per output from ``loss`` (see the module docstring)."""
    example = "{" + ", ".join(f"{n!r}: 'mse'" for n in names) + "}"
    if isinstance(loss, (list, tuple, dict)):
        given, by_name = _per_output(owner, "loss", loss, names, example)
        if by_name and len(loss) < len(names):  # Keras: a loss dict names every output
            missing = [n for n in names if n not in loss]
            raise ValueError(f"{owner}: the loss dict has no entry for the output(s) {missing}; give each output "
                             f"a loss, or None for an output that has no targets (e.g. loss={example})")
    else:
        given = [loss] * len(names)
    out = [None if item is None else losses_mod.get(item) for item in given]
    if all(item is None for item in out):
        raise ValueError(f"{owner}: compile() needs a loss for at least one output, got loss={loss!r}")
    return out


def compile_loss_weights(owner, loss_weights, names):
    """One float per output from ``loss_weights`` (see the module docstring)."""
    if loss_weights is None:
        return [1.0] * len(names)
    example = "{" + ", ".join(f"{n!r}: 1.0" for n in names) + "}"
    if isinstance(loss_weights, (list, tuple, dict)):
        given, _ = _per_output(owner, "loss_weights", loss_weights, names, example)
    else:
        given = [loss_weights] * len(names)
    out = []
    for name, w in zip(names, given):
        if w is None:
            w = 1.0
        if isinstance(w, bool) or not isinstance(w, (int, float)) and not hasattr(w, "__float__"):
            raise TypeError(f"{owner}: loss_weights for output {name!r} must be a number, got {w!r}")
        if not math.isfinite(float(w)):
            raise ValueError(f"{owner}: loss_weights for output {name!r} must be finite, got {w!r}")
        out.append(float(w))
    return out


def compile_metrics(owner, metrics, names, losses):
    """A list of (history name, function) per output from ``metrics`` (see the module docstring)."""
    if metrics is None:
        return [[] for _ in names]
    example = "{" + ", ".join(f"{n!r}: ['mae']" for n in names) + "}"
    if len(names) == 1 and not isinstance(metrics, dict):
        items = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        # a list holding one list is that output's list, as Keras reads [["mae"]] for one output
        given = items if len(items) == 1 and isinstance(items[0], (list, tuple)) else [items]
    elif isinstance(metrics, (list, tuple, dict)):
        given, _ = _per_output(owner, "metrics", metrics, names, example)
    else:
        raise ValueError(f"{owner}: the model has {len(names)} outputs {names}: give metrics as a list with one "
                         f"entry per output or a dict by output name (e.g. metrics={example}), got {metrics!r}")
    out = []
    for name, loss, items in zip(names, losses, given):
        items = [] if items is None else list(items) if isinstance(items, (list, tuple)) else [items]
        pairs = []
        for item in items:
            mname, fn = metrics_mod.get(item, loss)
            pairs.append((mname if len(names) == 1 else f"{name}_{mname}", fn))
        out.append(pairs)
    return out
