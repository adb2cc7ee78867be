"""Learning-rate schedules, Keras 3's ``keras.optimizers.schedules`` (here also ``nb.optimizers.schedules``).

A schedule is a function of the optimizer's step count: an optimizer built with
``learning_rate=schedule`` uses ``schedule(t)`` for its update number t + 1,
where t = ``optimizer.iterations`` counts the updates already made (0 for the
first update), exactly as Keras evaluates it before incrementing its counter.

    ExponentialDecay        lr(t) = lr0 * rate^(t / T)                 (staircase: rate^floor(t / T))
    PiecewiseConstantDecay  lr(t) = values[i] for boundaries[i-1] < t <= boundaries[i]
    CosineDecay             lr(t) = lr_peak * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha),
                            after an optional linear warmup from lr0 to lr_peak = warmup_target

Every schedule has ``get_config()`` (Keras's keys) and ``from_config(config)``;
``serialize`` / ``deserialize`` write and read Keras's ``{"module", "class_name",
"config", "registered_name"}`` form. Values are Python floats computed in float64
(Keras computes them in float32; the two agree within float32 rounding).
"""
from __future__ import annotations

import math

import numpy as np

from .utils import check_number


def _check_flag(owner, arg, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {arg} must be True or False, got the {type(value).__name__} {value!r}")
    return bool(value)


def _check_name(owner, name):
    if not isinstance(name, str):
        raise TypeError(f"{owner}: name must be a str, got the {type(name).__name__} {name!r}")
    return name


def _check_step(owner, step):
    """The step as a float: an integer (Python or NumPy, or a 0-d integer array) >= 0."""
    s = step.item() if isinstance(step, np.ndarray) and step.ndim == 0 else step
    check_number(owner, "step", s, integer=True, at_least=0)
    return float(s)


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate`` (a float), with a config.

    A subclass defines ``__call__(self, step)`` and ``get_config()``; ``from_config``
    calls the constructor with the config's keys, as Keras does.
    """

    def __call__(self, step):  # pragma: no cover - abstract
        raise NotImplementedError(f"learning rate schedule {type(self).__name__} must define __call__(self, step)")

    def get_config(self):  # pragma: no cover - abstract
        raise NotImplementedError(f"learning rate schedule {type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate * decay_rate^(t / decay_steps).

    With ``staircase=True`` the exponent is ``floor(t / decay_steps)``: the rate drops
    by the factor ``decay_rate`` once every ``decay_steps`` steps.

    initial_learning_rate > 0, decay_steps > 0, decay_rate > 0 (a negative rate has no
    real fractional powers; Keras returns NaN for it).
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        owner = "ExponentialDecay"
        self.initial_learning_rate = check_number(owner, "initial_learning_rate", initial_learning_rate, above=0)
        self.decay_steps = check_number(owner, "decay_steps", decay_steps, above=0)
        self.decay_rate = check_number(owner, "decay_rate", decay_rate, above=0)
        self.staircase = _check_flag(owner, "staircase", staircase)
        self.name = _check_name(owner, name)

    def __call__(self, step):
        p = _check_step(self.name, step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate * self.decay_rate ** p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant learning rate on each interval of steps:

        lr(t) = values[0]    for t <= boundaries[0]
                values[i]    for boundaries[i-1] < t <= boundaries[i]
                values[-1]   for t > boundaries[-1]

    ``boundaries`` (B numbers, strictly increasing, B >= 1) and ``values`` (B + 1
    learning rates, each > 0).
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        owner = "PiecewiseConstantDecay"
        for arg, seq in (("boundaries", boundaries), ("values", values)):
            if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
                raise TypeError(f"{owner}: {arg} must be a list of numbers, got the {type(seq).__name__} {seq!r}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"{owner}: values must have one element more than boundaries (one value per interval), "
                             f"got {len(boundaries)} boundaries {list(boundaries)} and {len(values)} values "
                             f"{list(values)}")
        if len(boundaries) == 0:
            raise ValueError(f"{owner}: needs at least one boundary, got boundaries=[] and values={list(values)}; "
                             f"for a constant rate pass learning_rate={values[0]!r} to the optimizer")
        for i, b in enumerate(boundaries):
            check_number(owner, f"boundaries[{i}]", b)
        for i, v in enumerate(values):
            check_number(owner, f"values[{i}]", v, above=0)
        for i in range(1, len(boundaries)):
            if not boundaries[i] > boundaries[i - 1]:
                raise ValueError(f"{owner}: boundaries must be strictly increasing, got {list(boundaries)} "
                                 f"(boundaries[{i}] = {boundaries[i]!r} <= boundaries[{i - 1}] = {boundaries[i - 1]!r})")
        self.boundaries, self.values = list(boundaries), list(values)
        self.name = _check_name(owner, name)

    def __call__(self, step):
        t = _check_step(self.name, step)
        for boundary, value in zip(self.boundaries, self.values):
            if t <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov & Hutter, SGDR) with an optional linear warmup (Goyal et al.).

    Without ``warmup_target``: decay from lr0 = ``initial_learning_rate`` over
    T = ``decay_steps`` steps, then stay at ``alpha * lr0``:

        decayed(s, peak) = peak * ((1 - alpha) * 0.5 * (1 + cos(pi * s / T)) + alpha)
        lr(t) = decayed(min(t, T), lr0)

    With ``warmup_target`` (W = ``warmup_steps``): a straight line from lr0 to
    ``warmup_target`` over the first W steps, then the decay from ``warmup_target``:

        lr(t) = lr0 + (warmup_target - lr0) * t / W        for t < W
        lr(t) = decayed(min(t, W + T) - W, warmup_target)  for t >= W

    alpha in [0, 1] (the final rate as a fraction of the peak); lr0 >= 0 (a warmup may
    start from 0) and > 0 without a warmup; warmup_target > 0; warmup_steps >= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        owner = "CosineDecay"
        if warmup_target is None:
            check_number(owner, "initial_learning_rate", initial_learning_rate, above=0)
        else:
            check_number(owner, "initial_learning_rate", initial_learning_rate, at_least=0)
            check_number(owner, "warmup_target", warmup_target, above=0)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = check_number(owner, "decay_steps", decay_steps, above=0)
        self.alpha = check_number(owner, "alpha", alpha, at_least=0, at_most=1)
        self.name = _check_name(owner, name)
        self.warmup_target = warmup_target
        self.warmup_steps = check_number(owner, "warmup_steps", warmup_steps, at_least=0)

    def _decayed(self, s, peak):
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return peak * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        t = _check_step(self.name, step)
        lr0, T = self.initial_learning_rate, self.decay_steps
        if self.warmup_target is None:
            return float(self._decayed(min(t, T), lr0))
        W, peak = self.warmup_steps, self.warmup_target
        t = min(t, T + W)
        if t < W:
            return float(lr0 + (peak - lr0) * t / W)
        return float(self._decayed(t - W, peak))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_BY_NAME = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule):
    """Keras's serialized form: ``{"module": "keras.optimizers.schedules", "class_name": ..., "config": ...,
    "registered_name": None}``."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"serialize: expected a LearningRateSchedule, got the {type(schedule).__name__} {schedule!r}")
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config):
    """The schedule described by ``{"class_name": ..., "config": {...}}`` (Keras's form; other keys ignored)."""
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(f"deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    name = config["class_name"]
    if name not in _BY_NAME:
        raise ValueError(f"deserialize: unknown learning rate schedule {name!r}; "
                         f"known: {', '.join(sorted(_BY_NAME))}")
    return _BY_NAME[name].from_config(config["config"])
