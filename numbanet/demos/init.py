"""Initializer lab: the activations of a deep Dense network under five initialisations and three activations.

The network is L Dense layers of U units (default 6 of 100) with zero biases, run forward
only, in float64, on N Gaussian inputs x ~ N(0, 1) of shape (N, U):

    h_0 = x,    h_l = act(h_{l-1} @ W_l + b_l),  W_l (U, U) drawn by the initializer,  l = 1..L

for act in sigmoid, tanh, relu and W_l from numbanet's initializers:

    normal std 1      RandomNormal(stddev=1):     Var(W) = 1       (far too large: saturation, explosion)
    normal std 0.01   RandomNormal(stddev=0.01):  Var(W) = 1e-4    (far too small: everything shrinks to 0)
    Glorot normal     Var(W) = 2 / (fan_in + fan_out)               (Glorot & Bengio 2010, for tanh)
    He normal         Var(W) = 2 / fan_in                           (He et al. 2015, for relu)
    LeCun normal      Var(W) = 1 / fan_in                           (LeCun et al. 1998)

Why: with inputs of variance v, each unit of h_{l-1} @ W_l has variance U * Var(W) * E[h^2].
Var(W) = 1e-4 and U = 100 multiply the spread by about 0.1 per tanh layer, so it collapses
toward 0; Var(W) = 1 multiplies it by 10 and tanh / sigmoid saturate at their limits;
He's 2 / fan_in makes up for relu zeroing half the inputs, so the spread stays put.

Pictures: ``init_<activation>.png``, one per activation, a grid of histograms with one row
per initializer and one column per layer (each panel gives the layer's std). A table of
each layer's activation std is printed.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np

from . import add_output_options

SUMMARY = ("initializer lab: histograms of each layer's activations of a deep Dense network, sigmoid/tanh/relu "
           "under normal std 1 and 0.01, Glorot, He and LeCun")

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITIALIZERS = ("normal std 1", "normal std 0.01", "Glorot normal", "He normal", "LeCun normal")
BINS = 40


def make_initializer(nb, label):
    """numbanet's initializer called ``label`` in ``INITIALIZERS``."""
    I = nb.initializers
    makers = {"normal std 1": lambda: I.RandomNormal(stddev=1.0), "normal std 0.01": lambda: I.RandomNormal(stddev=0.01),
              "Glorot normal": I.GlorotNormal, "He normal": I.HeNormal, "LeCun normal": I.LecunNormal}
    if label not in makers:
        raise ValueError(f"initializer lab: unknown initializer {label!r}; choose from {', '.join(INITIALIZERS)}")
    return makers[label]()


@dataclass
class Config:
    """One network: its activation, initializer label, layers and each layer's output.

    layers: the L Dense layers (their weights by ``get_weights()``: kernel (U, U), bias (U,));
    activations: L arrays (N, U), the output of each layer for the common input.
    """

    activation: str
    initializer: str
    layers: list
    activations: list

    @property
    def stds(self):
        return [float(h.std()) for h in self.activations]


def run_config(nb, x, activation, initializer, n_layers, units):
    """Build L Dense(units, activation) layers with ``initializer`` and run x (N, D) through them."""
    layers = [nb.layers.Dense(units, activation=activation, kernel_initializer=make_initializer(nb, initializer),
                              dtype="float64") for _ in range(n_layers)]
    h, outs = nb.Tensor(x), []
    with nb.no_grad():
        for layer in layers:
            h = layer(h)                                   # (N, units)
            outs.append(h.data.copy())
    return Config(activation, initializer, layers, outs)


def run_lab(nb, n_layers=6, units=100, samples=1000, seed=0):
    """Every activation under every initializer: (x (N, units), [Config, ...] in ACTIVATIONS x INITIALIZERS order)."""
    nb.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).standard_normal((samples, units))     # (N, U) float64
    configs = [run_config(nb, x, act, init, n_layers, units) for act in ACTIVATIONS for init in INITIALIZERS]
    return x, configs


def bin_edges(config):
    """The histogram edges of a config's panels: sigmoid [0, 1], tanh [-1, 1] (the ranges of the
    functions, so a collapse to 0 or a pile-up at the limits shows); relu [0, largest activation
    of any of its layers] (one range per row, so growth and shrinkage over the layers show)."""
    if config.activation == "sigmoid":
        return np.linspace(0.0, 1.0, BINS + 1)
    if config.activation == "tanh":
        return np.linspace(-1.0, 1.0, BINS + 1)
    top = max(float(h.max()) for h in config.activations)
    return np.linspace(0.0, top if top > 0 else 1.0, BINS + 1)


def panel_values(config, h):
    """The values a panel's histogram counts, and a note for its text.

    relu outputs exact zeros for about half its inputs; one bar of them would flatten
    every other bar, so a relu panel counts the positive values and says the share of zeros.
    """
    if config.activation == "relu":
        return h[h > 0], f"\n{np.mean(h == 0):.0%} zeros"
    return h.ravel(), ""


def histograms_figure(nb, configs, activation, path=None):
    """One row per initializer, one column per layer: the histogram of that layer's activations.

    Each panel (gid ``hist/<activation>/<initializer>/<layer>``, layers from 1) holds the
    ``BINS`` bars of ``ax.hist`` of ``panel_values`` over ``bin_edges(config)`` and the
    layer's std (of all its activations) as text.
    Returns the Figure; writes it to ``path`` when given.
    """
    rows = [c for c in configs if c.activation == activation]
    cols = len(rows[0].activations)
    fig = nb.plot.new_figure((2.1 * cols, 1.7 * len(rows) + 0.6))
    for r, config in enumerate(rows):
        edges = bin_edges(config)
        for layer, h in enumerate(config.activations, start=1):
            ax = fig.add_subplot(len(rows), cols, r * cols + layer)
            ax.set_gid(f"hist/{activation}/{config.initializer}/{layer}")
            values, note = panel_values(config, h)
            ax.hist(values, bins=edges, color="tab:blue")
            ax.text(0.97, 0.93, f"std {nb.plot.plain_number(h.std(), 3)}{note}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
            ax.set_yticks([])
            ax.tick_params(axis="x", labelsize=7)
            nb.plot.plain_tick_labels(ax)
            if r == 0:
                ax.set_title(f"layer {layer}", fontsize=9)
            if layer == 1:
                ax.set_ylabel(config.initializer, fontsize=8)
    fig.suptitle(f"{activation}: activations of each of {cols} Dense layers ({rows[0].activations[0].shape[1]} "
                 f"units) on Gaussian input, per initializer")
    fig.tight_layout()
    return nb.plot.save_figure(fig, path)


def std_table(configs):
    """The std of each layer's activations, one line per (activation, initializer)."""
    cols = len(configs[0].activations)
    lines = [f"{'activation':<10} {'initializer':<16}" + "".join(f"{'layer ' + str(i):>11}" for i in range(1, cols + 1))]
    for c in configs:
        lines.append(f"{c.activation:<10} {c.initializer:<16}" + "".join(f"{s:>11.4g}" for s in c.stds))
    return "\n".join(lines)


# ------------------------------------------------------------------------- command
def add_arguments(parser):
    """This demo's options (``numbanet demo init --help`` lists them)."""
    parser.add_argument("--layers", type=int, default=6, help="Dense layers in the network (default: %(default)s)")
    parser.add_argument("--units", type=int, default=100, help="units of each layer and input features "
                                                                "(default: %(default)s)")
    parser.add_argument("--samples", type=int, default=1000, help="Gaussian input rows (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input and the weights (default: %(default)s)")
    add_output_options(parser, verbose=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo init", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("layers", "units", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")

    import numbanet as nb
    x, configs = run_lab(nb, args.layers, args.units, args.samples, args.seed)
    print(f"std of each layer's activations ({args.samples} Gaussian inputs of std {x.std():.3g}, "
          f"{args.layers} Dense layers of {args.units} units, zero biases):")
    print(std_table(configs))
    paths = []
    for activation in ACTIVATIONS:
        paths.append(os.path.join(args.out, f"init_{activation}.png"))
        histograms_figure(nb, configs, activation, paths[-1])
    print("wrote " + ", ".join(paths))
    return {"x": x, "configs": configs, "paths": paths}


if __name__ == "__main__":
    main()
