"""Iris classification: Dense(10) - Dense(10) - Dense(3, softmax), categorical cross-entropy, Adam.

Fisher's 150 flowers (scikit-learn's shipped copy), features standardised with
the training set's mean and std, 30 flowers held out for testing. A tenth of the
training flowers is held out for val_loss; EarlyStopping keeps the weights of the
epoch with the lowest val_loss. The picture (iris.png) shows loss and accuracy per
epoch, the test loss and accuracy (dashed) and the restored best epoch (dotted).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "Dense 4-10-10-3 softmax on Fisher's iris (scikit-learn's copy) with Adam; prints test accuracy"


def add_arguments(parser):
    """This demo's options (``numbanet demo iris --help`` lists them)."""
    parser.add_argument("--epochs", type=int, default=100, help="passes over the training set (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the weights (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.003,
                        help="Adam's learning rate (default: %(default)s)")
    parser.add_argument("--patience", type=int, default=10,
                        help="stop when val_loss has not improved for this many epochs, keeping the best weights "
                             "(0: train every epoch, keep the last weights; default: %(default)s)")
    add_output_options(parser)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo iris", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)

    import numbanet as nb
    nb.utils.set_random_seed(args.seed)
    x, y = nb.data.load_iris(one_hot=True)
    x_train, x_test, y_train, y_test = nb.data.train_test_split(x, y, test_size=0.2, seed=args.seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    model = nb.Sequential([
        nb.Input((4,)),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(3, activation="softmax"),
    ])
    model.summary()
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=args.learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    stop = nb.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    history = model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, validation_split=0.1,
                        verbose=args.verbose, callbacks=[stop] if args.patience > 0 else None)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test)
    best_epoch = nb.plot.restored_epoch(stop)
    path = os.path.join(args.out, "iris.png")
    nb.plot.plot_history(history, path, test={"loss": loss, "accuracy": acc}, best_epoch=best_epoch,
                         title=f"iris: test accuracy {acc:.3f}" + (f", weights of epoch {best_epoch}" if best_epoch else ""))
    print(f"test loss {loss:.4f}, test accuracy {acc:.3f} ({int(round(acc * len(x_test)))}/{len(x_test)}); "
          f"trained {len(history.history['loss'])} epochs in {seconds:.1f} s"
          + (f", restored the weights of epoch {best_epoch} (lowest val_loss)" if best_epoch else ""))
    print(f"wrote {path}")
    return {"accuracy": float(acc), "loss": float(loss), "seconds": seconds, "history": history.history,
            "best_epoch": best_epoch, "png": path}


if __name__ == "__main__":
    main()
