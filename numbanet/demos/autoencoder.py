"""Convolutional autoencoder on MNIST (the Keras-blog model), built with the functional API.

Two decoders (``--decoder``):

* ``upsampling`` (the blog's model), "same" convolutions throughout except one::

    encoder 28x28x1 -conv16-> 28 -pool-> 14 -conv8-> 14 -pool-> 7 -conv4-> 7 -pool(same)-> 4x4x4
    decoder 4 -conv4-> 4 -up-> 8 -conv8-> 8 -up-> 16 -conv16 valid-> 14 -up-> 28 -conv1 sigmoid-> 28x28x1

* ``transpose``: the encoder uses "valid" convolutions and the decoder
  Conv2DTranspose layers in place of its Conv2D ones (a "valid" transposed 3x3
  convolution grows a side by 2, a "same" one keeps it)::

    encoder 28 -conv16 valid-> 26 -pool-> 13 -conv8 valid-> 11 -pool(same)-> 6 -conv4 valid-> 4 -pool-> 2x2x4
    decoder 2 -tconv4 same-> 2 -up-> 4 -tconv8 valid-> 6 -up-> 12 -tconv16 valid-> 14 -up-> 28
            -tconv1 same, sigmoid-> 28x28x1

Trained with binary cross-entropy and Adadelta(learning_rate=1.0): the form of
the original paper (Zeiler 2012) that the Keras blog used; Keras 3's default
learning_rate=0.001 barely moves in a few epochs. Writes a PNG of test images
(top) above their reconstructions (bottom), and one of the loss curves.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "convolutional autoencoder on MNIST (--decoder upsampling|transpose), Adadelta(lr=1.0), BCE"


def build_autoencoder(nb, decoder="upsampling"):
    """The functional-API model for ``decoder`` "upsampling" or "transpose" (module docstring)."""
    L = nb.layers
    if decoder not in ("upsampling", "transpose"):
        raise ValueError(f"autoencoder: decoder must be 'upsampling' or 'transpose', got {decoder!r}")
    enc_pad = "same" if decoder == "upsampling" else "valid"
    x = inputs = nb.Input((28, 28, 1))
    for filters in (16, 8, 4):
        x = L.Conv2D(filters, 3, activation="relu", padding=enc_pad)(x)
        x = L.MaxPooling2D(2, padding="same")(x)
    if decoder == "upsampling":
        paddings, Conv = ("same", "same", "valid"), L.Conv2D
    else:
        paddings, Conv = ("same", "valid", "valid"), L.Conv2DTranspose
    for filters, padding in zip((4, 8, 16), paddings):
        x = Conv(filters, 3, activation="relu", padding=padding)(x)
        x = L.UpSampling2D(2)(x)
    outputs = Conv(1, 3, activation="sigmoid", padding="same")(x)
    return nb.Model(inputs, outputs)


def write_pictures(nb, model, x_test, history, out, decoder):
    n = 10
    recon = model.predict(x_test[:n])
    both = np.concatenate([x_test[:n], recon])                # originals above reconstructions
    paths = [os.path.join(out, f"autoencoder_{decoder}.png"), os.path.join(out, f"autoencoder_{decoder}_loss.png")]
    nb.plot.image_grid(both, paths[0], cols=n,
                       title=f"test digits (top) and their reconstructions (bottom), {decoder} decoder")
    nb.plot.plot_history(history, paths[1], title=f"autoencoder ({decoder}) binary cross-entropy")
    return paths


def add_arguments(parser):
    """This demo's options (``numbanet demo autoencoder --help`` lists them)."""
    parser.add_argument("--decoder", choices=("upsampling", "transpose"), default="upsampling",
                        help="decoder: UpSampling2D + Conv2D, or Conv2DTranspose (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training images (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=4000,
                        help="train on the first N images, 0 for all (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per training step (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=1.0,
                        help="Adadelta's learning rate (default: %(default)s, the paper's form)")
    parser.add_argument("--data", default=None, help="mnist.npz file or IDX directory (default: Keras's location)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and the shuffling (default: %(default)s)")
    add_output_options(parser)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numbanet demo autoencoder", description=SUMMARY)
    add_arguments(parser)
    args = parser.parse_args(argv)

    import numbanet as nb
    from numbanet.data.images import load_mnist, to_nhwc
    nb.utils.set_random_seed(args.seed)
    (x_train, _), (x_test, _), source = load_mnist(args.data, return_info=True)
    limit = args.limit or None
    x_train, x_test = to_nhwc(x_train[:limit]), to_nhwc(x_test[:1000])   # (N, 28, 28) -> (N, 28, 28, 1)

    model = build_autoencoder(nb, args.decoder)
    model.summary()
    print(f"optimizer: Adadelta(learning_rate={args.learning_rate}) - the paper's lr=1.0 form, as the Keras "
          "blog used; Keras's default 0.001 barely moves in a few epochs")
    model.compile(optimizer=nb.optimizers.Adadelta(learning_rate=args.learning_rate), loss="binary_crossentropy")
    start_loss = model.evaluate(x_test, x_test, batch_size=256)
    start = time.perf_counter()
    history = model.fit(x_train, x_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                        validation_data=(x_test, x_test), verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss = model.evaluate(x_test, x_test, batch_size=256)
    print(f"test binary cross-entropy {start_loss:.4f} before training -> {loss:.4f} after {args.epochs} epochs "
          f"on {len(x_train)} images ({seconds:.1f} s, {args.decoder} decoder); data: {source}")
    os.makedirs(args.out, exist_ok=True)
    paths = write_pictures(nb, model, x_test, history, args.out, args.decoder)
    print("wrote " + ", ".join(paths))
    return {"loss": float(loss), "start_loss": float(start_loss), "seconds": seconds,
            "history": history.history, "decoder": args.decoder}


if __name__ == "__main__":
    main()
