"""Optimizer lab: numbanet's seven optimizers on two 2-D test functions, step by step.

Each optimizer (the real classes of ``numbanet.optimizers``) moves one parameter,
a float64 Tensor ``w = (x, y)`` of shape (2,), from the same start; every step is

    w.grad = None;  loss = f(w);  loss.backward();  optimizer.apply_gradients([(w.grad, w)])

and the lab records w, f(w) and every slot the optimizer keeps for w
(``optimizer.get_slot(w, name)``: SGD's momentum buffer, Adagrad's accumulator,
RMSprop's velocity, Adadelta's two running averages, Adam's m and v) after each step.

The functions:

* Rosenbrock's valley  f(x, y) = (1 - x)^2 + 100 (y - x^2)^2,  start (-1.2, 1), minimum 0 at (1, 1):
  a narrow curved valley; the gradient points across it, not along it.
* a saddle  f(x, y) = x^2 - y^2,  start (1, 0.001): the gradient leads to the saddle point (0, 0),
  and only the tiny y component leads away from it (a run stops once it leaves |x|, |y| <= 1.5).

Learning rates are chosen per optimizer and function (``LEARNING_RATES``) so that each
makes visible progress in a few hundred steps; every other hyperparameter is Keras's
default. Pictures: ``optimizers_trajectories.png`` (paths over the contour plots, and
the loss per step) and ``optimizers_slots_<function>.png`` (each optimizer's slots per step).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import numpy as np

from . import add_output_options

SUMMARY = ("optimizer lab: SGD, Momentum, Nesterov, Adagrad, RMSprop, Adadelta and Adam on Rosenbrock's valley "
           "and a saddle; trajectories, loss and slots per step")

OPTIMIZERS = ("SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adadelta", "Adam")

# learning rate per function and optimizer: the largest round value that stays stable and readable
LEARNING_RATES = {
    "rosenbrock": {"SGD": 0.002, "Momentum": 0.001, "Nesterov": 0.001, "Adagrad": 0.5, "RMSprop": 0.01,
                   "Adadelta": 5.0, "Adam": 0.1},
    "saddle": {"SGD": 0.05, "Momentum": 0.05, "Nesterov": 0.05, "Adagrad": 0.1, "RMSprop": 0.01,
               "Adadelta": 1.0, "Adam": 0.05},
}

COLORS = {"SGD": "tab:blue", "Momentum": "tab:orange", "Nesterov": "tab:green", "Adagrad": "tab:red",
          "RMSprop": "tab:purple", "Adadelta": "tab:brown", "Adam": "tab:pink"}


def rosenbrock(w):
    """(1 - x)^2 + 100 (y - x^2)^2 of a (2,) Tensor w = (x, y): a () Tensor."""
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def saddle(w):
    """x^2 - y^2 of a (2,) Tensor w = (x, y): a () Tensor."""
    x, y = w[0], w[1]
    return x ** 2 - y ** 2


@dataclass
class Problem:
    """A test function with its start, step count, plotted box and the bound that ends a run."""

    name: str
    f: object                       # (2,) Tensor -> () Tensor
    formula: str
    start: tuple
    steps: int
    xlim: tuple
    ylim: tuple
    bound: float = None             # a run stops after a step that leaves |x|, |y| <= bound
    minimum: tuple = None


PROBLEMS = {
    "rosenbrock": Problem("rosenbrock", rosenbrock, "(1-x)^2 + 100(y-x^2)^2", (-1.2, 1.0), 500,
                          (-1.7, 1.5), (-0.5, 2.0), minimum=(1.0, 1.0)),
    "saddle": Problem("saddle", saddle, "x^2 - y^2", (1.0, 0.001), 150, (-1.5, 1.5), (-1.5, 1.5), bound=1.5),
}


def make_optimizer(nb, label, learning_rate):
    """The numbanet optimizer called ``label`` in ``OPTIMIZERS``, Keras defaults but the learning rate."""
    O = nb.optimizers
    makers = {"SGD": lambda lr: O.SGD(lr), "Momentum": lambda lr: O.SGD(lr, momentum=0.9),
              "Nesterov": lambda lr: O.SGD(lr, momentum=0.9, nesterov=True), "Adagrad": O.Adagrad,
              "RMSprop": O.RMSprop, "Adadelta": O.Adadelta, "Adam": O.Adam}
    if label not in makers:
        raise ValueError(f"optimizer lab: unknown optimizer {label!r}; choose from {', '.join(OPTIMIZERS)}")
    return makers[label](learning_rate)


@dataclass
class Run:
    """One optimizer's path on one function.

    points (S+1, 2): w before the first step and after each of the S steps;
    losses (S+1,): f at each point; slots {name: (S, 2)}: each slot after each step;
    left_at: the step after which w left the bound (None when it stayed inside).
    """

    label: str
    learning_rate: float
    points: np.ndarray
    losses: np.ndarray
    slots: dict = field(default_factory=dict)
    left_at: int = None


def run(nb, optimizer, problem, steps=None, label=None):
    """Minimise ``problem.f`` from ``problem.start`` with ``optimizer``; return a ``Run``."""
    steps = problem.steps if steps is None else steps
    w = nb.Tensor(np.array(problem.start, dtype=np.float64), requires_grad=True)   # (2,)
    points, losses = [w.data.copy()], []
    slots = {name: [] for name in optimizer.slot_names()}
    left_at = None
    for k in range(steps):
        w.grad = None
        loss = problem.f(w)
        loss.backward()
        losses.append(float(loss.data))
        optimizer.apply_gradients([(w.grad, w)])
        points.append(w.data.copy())
        for name in slots:
            slots[name].append(optimizer.get_slot(w, name).copy())
        if problem.bound is not None and np.abs(w.data).max() > problem.bound:
            left_at = k + 1
            break
    with nb.no_grad():
        losses.append(float(problem.f(w).data))
    return Run(label or type(optimizer).__name__, optimizer.current_learning_rate(), np.array(points),
               np.array(losses), {name: np.array(v).reshape(-1, 2) for name, v in slots.items()}, left_at)


def run_lab(nb, problems=None, steps=None):
    """Every optimizer on every problem: {problem name: {optimizer label: Run}}."""
    problems = problems or list(PROBLEMS.values())
    results = {}
    for problem in problems:
        rates = LEARNING_RATES[problem.name]
        results[problem.name] = {label: run(nb, make_optimizer(nb, label, rates[label]), problem, steps, label)
                                 for label in OPTIMIZERS}
    return results


# ------------------------------------------------------------------------- pictures
def _contour(ax, problem, nb):
    """Filled contour of ``problem.f`` over its box (computed with the function itself on a grid)."""
    xs = np.linspace(*problem.xlim, 241)
    ys = np.linspace(*problem.ylim, 241)
    X, Y = np.meshgrid(xs, ys)                                   # (241, 241) each
    with nb.no_grad():
        Z = problem.f(nb.Tensor(np.stack([X, Y]))).data          # w of shape (2, 241, 241): w[0] = X, w[1] = Y
    if Z.min() >= 0:
        levels = np.geomspace(max(Z.min(), 1e-2), Z.max(), 20)   # a valley: levels spaced by ratio
        ax.contourf(X, Y, np.maximum(Z, 1e-2), levels=levels, cmap="Blues_r", norm=_log_norm(levels), alpha=0.35)
    else:
        levels = np.linspace(Z.min(), Z.max(), 21)
        ax.contourf(X, Y, Z, levels=levels, cmap="Blues_r", alpha=0.35)
    ax.contour(X, Y, Z, levels=levels, colors="gray", linewidths=0.4)


def _log_norm(levels):
    from matplotlib.colors import LogNorm
    return LogNorm(vmin=levels[0], vmax=levels[-1])


def trajectories_figure(nb, results, path=None):
    """Top row: each function's contour plot with one line per optimizer through its recorded points
    (a star at the start, a cross at the minimum); bottom row: f at each step.

    Each trajectory line has gid ``trajectory/<function>/<optimizer>`` and each loss line
    ``loss/<function>/<optimizer>``; legends give each optimizer's learning rate.
    Returns the Figure; writes it to ``path`` when given.
    """
    names = list(results)
    fig = nb.plot.new_figure((7 * len(names), 11))
    for col, name in enumerate(names):
        problem = PROBLEMS[name]
        ax = fig.add_subplot(2, len(names), col + 1)
        _contour(ax, problem, nb)
        for label, r in results[name].items():
            note = f", left the box at step {r.left_at}" if r.left_at else ""
            ax.plot(r.points[:, 0], r.points[:, 1], "-", lw=1.3, color=COLORS[label], gid=f"trajectory/{name}/{label}",
                    label=f"{label} lr={r.learning_rate:g}{note}")
        ax.plot(*problem.start, "*", color="black", ms=12, label=f"start {problem.start}")
        if problem.minimum is not None:
            ax.plot(*problem.minimum, "x", color="red", ms=10, mew=2, label=f"minimum {problem.minimum}")
        ax.set_xlim(problem.xlim)
        ax.set_ylim(problem.ylim)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"{name}: f = {problem.formula}")
        ax.legend(fontsize=7, loc="upper left" if name == "rosenbrock" else "lower left")
        nb.plot.plain_tick_labels(ax)

        ax = fig.add_subplot(2, len(names), len(names) + col + 1)
        for label, r in results[name].items():
            ax.plot(np.arange(len(r.losses)), r.losses, color=COLORS[label], gid=f"loss/{name}/{label}",
                    label=f"{label} lr={r.learning_rate:g}")
        if min(r.losses.min() for r in results[name].values()) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("f(x, y)")
        ax.set_title(f"{name}: loss per step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        nb.plot.plain_tick_labels(ax)
    return nb.plot.save_figure(fig, path)


SLOT_MEANING = {"momentum": "velocity m", "accumulator": "sum of g^2", "velocity": "average of g^2",
                "accumulated_grad": "average of g^2", "accumulated_delta_var": "average of dw^2",
                "m": "average of g", "v": "average of g^2"}


def slots_figure(nb, runs, name, path=None):
    """Each optimizer's slots on one function, one panel per (optimizer, slot), x and y components per step.

    ``runs``: {optimizer label: Run} of function ``name``. Optimizers without slots (plain
    SGD) are named in the title. The lines have gid ``slot/<optimizer>/<slot>/<x|y>``;
    a slot that never goes negative is drawn on a log axis.
    Returns the Figure; writes it to ``path`` when given.
    """
    with_slots = [r for r in runs.values() if r.slots]
    cols = max(len(r.slots) for r in with_slots)
    fig = nb.plot.new_figure((6 * cols, 2.3 * len(with_slots)))
    for row, r in enumerate(with_slots):
        for col, (slot, values) in enumerate(r.slots.items()):
            ax = fig.add_subplot(len(with_slots), cols, row * cols + col + 1)
            steps = np.arange(1, len(values) + 1)
            for i, axis in enumerate("xy"):
                ax.plot(steps, values[:, i], color=COLORS[r.label], ls="-" if axis == "x" else "--",
                        gid=f"slot/{r.label}/{slot}/{axis}", label=f"{slot}[{axis}]")
            if values.min() >= 0:
                ax.set_yscale("log")
            ax.set_title(f"{r.label} lr={r.learning_rate:g}: {slot} ({SLOT_MEANING.get(slot, '')})", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            nb.plot.plain_tick_labels(ax)
    without = [r.label for r in runs.values() if not r.slots]
    fig.suptitle(f"{name}: each optimizer's slots after each step"
                 + (f" ({', '.join(without)}: no slots)" if without else ""))
    fig.tight_layout()
    return nb.plot.save_figure(fig, path)


def summary_table(results):
    """One line per function and optimizer: learning rate, steps taken, final point and loss."""
    lines = [f"{'function':<11} {'optimizer':<9} {'lr':>6} {'steps':>5} {'final x':>9} {'final y':>9} {'final f':>11}"]
    for name, runs in results.items():
        for label, r in runs.items():
            steps = len(r.points) - 1
            note = "  (left the box)" if r.left_at else ""
            lines.append(f"{name:<11} {label:<9} {r.learning_rate:>6g} {steps:>5} {r.points[-1, 0]:>9.4f} "
                         f"{r.points[-1, 1]:>9.4f} {r.losses[-1]:>11.4g}{note}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- command
def add_arguments(parser):
    """This demo's options (``numbanet demo optimizers --help`` lists them)."""
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per optimizer (default: 500 on Rosenbrock's valley, 150 on the saddle)")
    add_output_options(parser, verbose=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo optimizers", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")

    import numbanet as nb
    results = run_lab(nb, steps=args.steps)
    print(summary_table(results))
    paths = [os.path.join(args.out, "optimizers_trajectories.png")]
    trajectories_figure(nb, results, paths[0])
    for name, runs in results.items():
        paths.append(os.path.join(args.out, f"optimizers_slots_{name}.png"))
        slots_figure(nb, runs, name, paths[-1])
    print("wrote " + ", ".join(paths))
    return {"results": results, "paths": paths}


if __name__ == "__main__":
    main()
