"""Batch normalization lab: one deep Dense network trained without and with BatchNormalization.

Data: scikit-learn's 8x8 digits (1797 images, 10 classes), flattened to 64 features in [0, 1];
a fifth held out for val_loss. The two networks, L hidden layers of U units (default 8 of 64):

    without:  x -> [Dense(U, act)] x L                                        -> Dense(10, softmax)
    with:     x -> [Dense(U, use_bias=False) -> BatchNormalization -> act] x L -> Dense(10, softmax)

Both start from the same kernels (the second network's Dense kernels are copies of the first's;
BatchNormalization's beta takes the place of the bias), see the samples in the same order and take
the same SGD steps, so the only difference is the normalization. In training each
BatchNormalization layer rescales its Dense layer's output to mean 0 and variance 1 per unit over
the batch, then by its learned gamma and beta,

    y = gamma (z - mean_batch) / sqrt(var_batch + epsilon) + beta,

so a deep stack of sigmoids keeps its inputs in their steep middle range instead of saturating or
collapsing, and the gradient reaches the first layers. (The val_loss of the normalized network
lags its loss in the first epochs: validation runs in inference mode, on the moving averages,
which with Keras's momentum 0.99 take a few hundred steps to catch up with the batch statistics.)

Pictures: ``batchnorm_loss.png``, the loss and val_loss per epoch of each network side by side
(the same y axis), and ``batchnorm_activations.png``, one row per network and one column per
hidden layer: the histogram of that layer's activations (after ``act``) on the held-out images,
in inference mode, after training.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from . import add_output_options

SUMMARY = ("batch normalization lab: the same deep Dense network on the 8x8 digits trained without and with "
           "BatchNormalization; loss curves and per-layer activation histograms side by side")

RUNS = ("without BatchNormalization", "with BatchNormalization")
BINS = 30


@dataclass
class Run:
    """One trained network: its label, model, history dict and the activations of each hidden layer.

    activations: L arrays (N_val, U), the output of each hidden layer's activation on the
    held-out images, inference mode.
    """

    label: str
    model: object
    history: dict
    activations: list
    val_accuracy: float


def build_models(nb, n_layers, units, activation, n_in, n_out):
    """(plain, with_bn): the two networks, the second's Dense kernels copied from the first's."""
    L = nb.layers
    plain = nb.Sequential([nb.Input((n_in,))] + [L.Dense(units, activation=activation) for _ in range(n_layers)]
                          + [L.Dense(n_out, activation="softmax")])
    blocks = []
    for _ in range(n_layers):
        blocks += [L.Dense(units, use_bias=False), L.BatchNormalization(), L.Activation(activation)]
    with_bn = nb.Sequential([nb.Input((n_in,))] + blocks + [L.Dense(n_out, activation="softmax")])
    dense_plain = [layer for layer in plain.layers if isinstance(layer, L.Dense)]
    dense_bn = [layer for layer in with_bn.layers if isinstance(layer, L.Dense)]
    for a, b in zip(dense_plain, dense_bn):                # the same starting kernels (and the output bias)
        b.kernel.data = a.kernel.data.copy()
        if b.bias is not None:
            b.bias.data = a.bias.data.copy()
    return plain, with_bn


def hidden_activations(nb, model, x):
    """The output of each hidden layer's activation for x, inference mode: [(N, U), ...] in layer order."""
    outs, h = [], x
    with nb.no_grad():
        for layer in model.layers[:-1]:
            h = layer(h)
            is_output = (isinstance(layer, nb.layers.Activation)
                         or (isinstance(layer, nb.layers.Dense) and layer.activation is not None
                             and nb.activations.name_of(layer.activation) != "linear"))
            if is_output:
                outs.append(np.array(h.data))
    return outs


def run_lab(nb, n_layers=8, units=64, activation="sigmoid", epochs=20, learning_rate=0.05, batch_size=32,
            samples=None, seed=0, verbose=0):
    """Train both networks on the digits; returns [Run without, Run with]."""
    nb.utils.set_random_seed(seed)
    x, y = nb.data.load_digits()
    x = x.reshape(len(x), -1)                                       # (N, 8, 8, 1) -> (N, 64)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    x_train, x_val, y_train, y_val = nb.data.train_test_split(x, y, test_size=0.2, seed=seed)
    models = build_models(nb, n_layers, units, activation, x.shape[1], 10)
    runs = []
    for label, model in zip(RUNS, models):
        model.compile(optimizer=nb.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        nb.utils.set_random_seed(seed + 1)                          # the same sample order for both
        history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                            validation_data=(x_val, y_val), verbose=verbose)
        acts = hidden_activations(nb, model, x_val)
        runs.append(Run(label, model, history.history, acts, float(history.history["val_accuracy"][-1])))
    return runs


def loss_figure(nb, runs, path=None):
    """One panel per run (gid ``loss/<label>``): loss and val_loss per epoch, the same y axis.

    Each panel holds two lines, ``loss`` and ``val_loss``, whose y data are the run's history.
    Returns the Figure; writes it to ``path`` when given.
    """
    from matplotlib.ticker import MaxNLocator
    fig = nb.plot.new_figure((5.2 * len(runs), 3.8))
    top = max(max(r.history["loss"] + r.history["val_loss"]) for r in runs)
    axes = []
    for i, run in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), i + 1, sharey=axes[0] if axes else None)
        ax.set_gid(f"loss/{run.label}")
        epochs = np.arange(1, len(run.history["loss"]) + 1)
        for key in ("loss", "val_loss"):
            ax.plot(epochs, run.history[key], label=key, marker="o", ms=3)
        ax.set_title(f"{run.label}\nval accuracy {run.val_accuracy:.3f}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy")
        ax.set_ylim(0, top * 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))          # whole epochs only
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        nb.plot.plain_tick_labels(ax)
        axes.append(ax)
    fig.tight_layout()
    return nb.plot.save_figure(fig, path)


def bin_edges(activation, runs):
    """Histogram edges shared by every panel: the activation's range (sigmoid [0, 1], tanh [-1, 1]),
    for relu [0, the largest activation of either run]."""
    if activation == "sigmoid":
        return np.linspace(0.0, 1.0, BINS + 1)
    if activation == "tanh":
        return np.linspace(-1.0, 1.0, BINS + 1)
    top = max(float(h.max()) for r in runs for h in r.activations)
    return np.linspace(0.0, top if top > 0 else 1.0, BINS + 1)


def activations_figure(nb, runs, activation, path=None):
    """One row per run, one column per hidden layer (gid ``hist/<label>/<layer>``, layers from 1):
    ``BINS`` bars of ``ax.hist`` of that layer's activations over ``bin_edges``, and its std.
    Returns the Figure; writes it to ``path`` when given.
    """
    edges = bin_edges(activation, runs)
    cols = len(runs[0].activations)
    fig = nb.plot.new_figure((1.9 * cols + 0.8, 2.0 * len(runs) + 0.7))
    for r, run in enumerate(runs):
        for layer, h in enumerate(run.activations, start=1):
            ax = fig.add_subplot(len(runs), cols, r * cols + layer)
            ax.set_gid(f"hist/{run.label}/{layer}")
            ax.hist(h.ravel(), bins=edges, color="tab:orange" if r else "tab:blue")
            ax.text(0.97, 0.93, f"std {nb.plot.plain_number(h.std(), 3)}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
            ax.set_yticks([])
            ax.tick_params(axis="x", labelsize=7)
            nb.plot.plain_tick_labels(ax)
            if r == 0:
                ax.set_title(f"layer {layer}", fontsize=9)
            if layer == 1:
                ax.set_ylabel(run.label.replace(" Batch", "\nBatch"), fontsize=8)
    fig.suptitle(f"{activation} activations of each hidden layer on the held-out digits, after training")
    fig.tight_layout()
    return nb.plot.save_figure(fig, path)


# ------------------------------------------------------------------------- command
def add_arguments(parser):
    """This demo's options (``numbanet demo batchnorm --help`` lists them)."""
    parser.add_argument("--layers", type=int, default=8, help="hidden Dense layers (default: %(default)s)")
    parser.add_argument("--units", type=int, default=64, help="units per hidden layer (default: %(default)s)")
    parser.add_argument("--activation", default="sigmoid", choices=("sigmoid", "tanh", "relu"),
                        help="hidden activation (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training set (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="SGD's learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per step (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=None,
                        help="use the first N of the 1797 digits (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, weights and order (default: %(default)s)")
    add_output_options(parser, verbose=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo batchnorm", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("layers", "units", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.samples is not None and args.samples < 10:
        parser.error(f"--samples must be at least 10 (a train and a held-out part), got {args.samples}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")

    import numbanet as nb
    start = time.perf_counter()
    runs = run_lab(nb, args.layers, args.units, args.activation, args.epochs, args.learning_rate, args.batch_size,
                   args.samples, args.seed, verbose=0 if args.verbose == 0 else 2)
    seconds = time.perf_counter() - start
    for run in runs:
        print(f"{run.label:<28} final loss {run.history['loss'][-1]:.4f}, val_loss {run.history['val_loss'][-1]:.4f},"
              f" val accuracy {run.val_accuracy:.3f}; activation std per layer "
              + " ".join(f"{h.std():.3g}" for h in run.activations))
    paths = [os.path.join(args.out, "batchnorm_loss.png"), os.path.join(args.out, "batchnorm_activations.png")]
    figures = [loss_figure(nb, runs, paths[0]), activations_figure(nb, runs, args.activation, paths[1])]
    print(f"trained both networks in {seconds:.1f} s; wrote " + ", ".join(paths))
    return {"runs": runs, "paths": paths, "figures": figures, "seconds": seconds}


if __name__ == "__main__":
    main()
