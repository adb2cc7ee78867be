"""Sine regression: Dense(10, tanh) - Dense(10, tanh) - Dense(1) learns y = sin(x) on [0, 10).

The classic first exercise: x = 0, 0.1, ..., 9.9, y = sin(x), mini-batch SGD on
the mean squared error, batch 20, 20% of the points held out for validation.
The points are shuffled once (seeded) before ``fit`` takes the last 20% as the
validation set: without that shuffle the held-out points would all lie in
[8, 10), which tests extrapolation rather than fit.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "Dense 1-10-10-1 (tanh) fits y = sin(x) with SGD + MSE; writes loss curves and the fit"


def build_model(nb):
    return nb.Sequential([
        nb.layers.Dense(10, activation="tanh", input_shape=(1,)),
        nb.layers.Dense(10, activation="tanh"),
        nb.layers.Dense(1),
    ])


def add_arguments(parser):
    """This demo's options (``numbanet demo sine --help`` lists them)."""
    parser.add_argument("--epochs", type=int, default=3000,
                        help="passes over the 80 training points (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="SGD's learning rate (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the weights and the shuffling (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="1: one progress bar over the epochs; 2: Keras's line per epoch; 0: quiet "
                             "(default: %(default)s)")
    add_output_options(parser, verbose=False)     # its own --verbose above: 1 is one bar over all epochs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo sine", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)

    import numbanet as nb
    nb.utils.set_random_seed(args.seed)
    x, y = nb.data.sine()                       # (100, 1), (100, 1)
    order = np.random.default_rng(args.seed).permutation(len(x))
    model = build_model(nb)
    model.summary()
    model.compile(optimizer=nb.optimizers.SGD(learning_rate=args.learning_rate, momentum=args.momentum),
                  loss="mse", metrics=["mae"])
    print(f"SGD(learning_rate={args.learning_rate}, momentum={args.momentum}), batch 20, "
          f"{args.epochs} epochs, validation_split=0.2")
    start = time.perf_counter()
    progress = [nb.callbacks.EpochProgressBar(args.epochs, every=500)] if args.verbose == 1 else []
    history = model.fit(x[order], y[order], batch_size=20, epochs=args.epochs, validation_split=0.2,
                        verbose=0 if args.verbose == 1 else args.verbose, callbacks=progress)
    seconds = time.perf_counter() - start
    y_fit = model.predict(x)
    mse = float(np.mean((y_fit - y) ** 2))
    path = os.path.join(args.out, "sine.png")
    nb.plot.plot_history_and_fit(history, x, y, y_fit, path,
                                 title=f"sine: MSE {mse:.4f} after {len(history.history['loss'])} epochs")
    print(f"final loss {history.history['loss'][-1]:.5f}, val_loss {history.history['val_loss'][-1]:.5f}, "
          f"MSE on all 100 points {mse:.5f}; trained in {seconds:.1f} s")
    print(f"wrote {path}")
    return {"mse": mse, "seconds": seconds, "history": history.history, "png": path}


if __name__ == "__main__":
    main()
