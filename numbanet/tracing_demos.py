"""``numbanet trace DEMO``: the demos' models, compiled as the demos compile them, on one batch of their data.

No training: the weights are the freshly initialised ones (seeded), and the trace
runs one forward and backward pass without the optimizer's update. Each entry of
``BATCHES`` returns (model, x, y) with the demo's own batch size unless one is given.
"""
from __future__ import annotations

import numpy as np

DEMOS = ("sine", "iris", "cnn", "autoencoder", "lyrics")


def _sine(nb, batch_size):
    from .demos.sine import build_model
    x, y = nb.data.sine()                                     # (100, 1), (100, 1)
    order = np.random.default_rng(1).permutation(len(x))      # the demo shuffles once before fit
    model = build_model(nb)
    model.compile(optimizer=nb.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss="mse")
    n = batch_size or 20
    return model, x[order][:n], y[order][:n]


def _iris(nb, batch_size):
    x, y = nb.data.load_iris(one_hot=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    model = nb.Sequential([                                   # the model of numbanet/demos/iris.py
        nb.Input((4,)),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=0.003), loss="categorical_crossentropy")
    n = batch_size or 16
    order = np.random.default_rng(0).permutation(len(x))[:n]  # the rows are sorted by class: mix them
    return model, x[order], y[order]


def _mnist(n):
    from .data.images import load_mnist, to_nhwc
    (x_train, y_train), _ = load_mnist(verbose=False)
    return to_nhwc(x_train[:n]), y_train[:n].astype(np.int64)  # uint8 (n, 28, 28) -> float32 (n, 28, 28, 1)


def _cnn(nb, batch_size):
    from .demos.cnn import build_model
    model = build_model(nb)
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=0.001), loss="sparse_categorical_crossentropy")
    x, y = _mnist(batch_size or 32)
    return model, x, y


def _autoencoder(nb, batch_size, decoder="upsampling"):
    from .demos.autoencoder import build_autoencoder
    model = build_autoencoder(nb, decoder)
    model.compile(optimizer=nb.optimizers.Adadelta(learning_rate=1.0), loss="binary_crossentropy")
    x, _ = _mnist(batch_size or 64)
    return model, x, x


def _lyrics(nb, batch_size):
    from . import text
    from .demos.lyrics import build_model, load_lines, make_pairs
    lines, _ = load_lines()
    tokenizer, x, y = make_pairs(lines, 2000, 14, text)
    vocab = min(2000, len(tokenizer.word_index) + 1)
    model = build_model(nb, vocab, 128, 256, 0.5)
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=0.001, clipnorm=1.0),
                  loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    n = batch_size or 32
    return model, x[:n], y[:n]


BATCHES = {"sine": _sine, "iris": _iris, "cnn": _cnn, "autoencoder": _autoencoder, "lyrics": _lyrics}


def demo_batch(name, batch_size=None, decoder="upsampling"):
    """(model, x, y): demo ``name``'s compiled model and its first batch (``batch_size`` rows)."""
    import numbanet as nb
    if name not in BATCHES:
        raise ValueError(f"trace: unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"trace: --batch-size must be a positive integer, got {batch_size}")
    nb.utils.set_random_seed(0)
    if name == "autoencoder":
        return _autoencoder(nb, batch_size, decoder)
    return BATCHES[name](nb, batch_size)


def add_parser(commands):
    """The ``trace`` sub-command of ``numbanet`` (``numbanet trace --help``)."""
    from .engine.tiers import TIERS
    p = commands.add_parser("trace", help="print the trace of one training step of a demo's model",
                            description="Run one forward and backward pass of a demo's model on one batch of its "
                                        "data (no training, no weight update) and print one row per graph node: "
                                        "shapes, padding, strides, kernel route, FLOPs, bytes, time.")
    p.add_argument("demo", choices=DEMOS, metavar="DEMO", help=f"one of {', '.join(DEMOS)}")
    p.add_argument("--kernels", choices=TIERS, default="fast",
                   help="the kernel tier that computes the arrays (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=None, help="rows of the batch (default: the demo's own)")
    p.add_argument("--decoder", choices=("upsampling", "transpose"), default="upsampling",
                   help="the autoencoder's decoder (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed passes first, so Numba's compilation is not in the times (default: %(default)s)")
    p.add_argument("--graph", default=None, metavar="PNG",
                   help="also draw the step's graph (nb.plot_graph) into this PNG file")
    return p


def run(args):
    """``numbanet trace DEMO``: print the trace; returns the exit status."""
    from .engine.tiers import kernels
    try:
        model, x, y = demo_batch(args.demo, args.batch_size, args.decoder)
    except ValueError as err:
        print(f"numbanet trace: {err}")
        return 2
    with kernels(args.kernels):
        for _ in range(max(args.warmup, 0)):
            model.trace(x, y)
        result = model.trace(x, y)
    print(result)
    if args.graph:
        from .graphplot import plot_graph
        plot_graph(result.output, args.graph, title=f"graph of one training step: {args.demo}")
        print(f"wrote {args.graph}")
    return 0
