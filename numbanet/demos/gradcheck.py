"""``numbanet gradcheck DEMO``: the gradient of every weight of a demo's model, checked.

Builds the model of the demo (sine, iris, cnn, autoencoder, lyrics) as the demo
builds it, compiles it with the demo's loss, takes a few real samples of its data
and runs ``nb.check_model_grads`` on them: every layer's every trainable weight,
through the loss, on a float64 copy of the model, by central differences (up to
``--max-elements`` elements) or along one random direction. Prints the table;
the exit status is 0 when every weight passed, 1 otherwise.

The biases are drawn from N(0, 0.1^2) rather than left at their initial zeros:
with zero biases every ReLU whose input patch is all zero (the background of an
MNIST digit, the "same" padding) sits exactly on its kink, where no finite
difference can agree with any gradient.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import DEMOS

SUMMARY = "check every weight's gradient of a demo's model against finite differences (float64)"


def _sine(nb, n):
    from .sine import build_model
    x, y = nb.data.sine()                                 # (100, 1), (100, 1)
    pick = np.linspace(0, len(x) - 1, n).astype(int)
    return build_model(nb), "mse", x[pick], y[pick]


def _iris(nb, n):
    x, y = nb.data.load_iris(one_hot=True)                # (150, 4), (150, 3)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    pick = np.linspace(0, len(x) - 1, n).astype(int)      # the three species are in order: take all of them
    model = nb.Sequential([                               # the iris demo's network
        nb.Input((4,)),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(10, activation="relu"),
        nb.layers.Dense(3, activation="softmax"),
    ])
    return model, "categorical_crossentropy", x[pick], y[pick]


def _mnist(nb, n):
    from ..data.images import load_mnist, to_nhwc
    (_, _), (x_test, y_test) = load_mnist(verbose=False)
    return to_nhwc(x_test[:n]), y_test[:n].astype(np.int64)    # (n, 28, 28, 1) in [0, 1], (n,)


def _cnn(nb, n):
    from .cnn import build_model
    x, y = _mnist(nb, n)
    return build_model(nb), "sparse_categorical_crossentropy", x, y


def _autoencoder(nb, n):
    from .autoencoder import build_autoencoder
    x, _ = _mnist(nb, n)
    return build_autoencoder(nb), "binary_crossentropy", x, x


def _lyrics(nb, n):
    from .. import text
    from .lyrics import build_model, load_lines, make_pairs
    lines, _ = load_lines()
    tokenizer, x, y = make_pairs(lines[:200], 40, 8, text)     # 40 ids, 8 words: small enough to check by hand
    vocab = min(40, len(tokenizer.word_index) + 1)
    model = build_model(nb, vocab, embed_dim=6, units=5, dropout=0.5)
    return model, nb.losses.SparseCategoricalCrossentropy(from_logits=True), x[:n], y[:n]


MODELS = {"sine": _sine, "iris": _iris, "cnn": _cnn, "autoencoder": _autoencoder, "lyrics": _lyrics}


def add_arguments(parser):
    parser.add_argument("demo", choices=list(MODELS), metavar="DEMO", help=f"one of {', '.join(MODELS)}")
    parser.add_argument("--samples", type=int, default=3, help="samples in the checked batch (default: %(default)s)")
    parser.add_argument("--max-elements", type=int, default=400,
                        help="weights with more elements are checked along one random direction "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and directions (default: %(default)s)")


def run(demo, samples=3, max_elements=400, seed=0, out=None):
    """Check ``demo``'s model; print the report to ``out`` (stdout); return the ``GradCheckReport``."""
    import numbanet as nb
    out = sys.stdout if out is None else out
    if samples < 1:
        raise ValueError(f"gradcheck: --samples must be a positive integer, got {samples}")
    nb.utils.set_random_seed(seed)
    model, loss, x, y = MODELS[demo](nb, samples)
    model.compile(optimizer="sgd", loss=loss)
    model(x[:1])                                           # builds a subclassed model (lyrics)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.name and w.name.endswith("/bias"):
            w.data = rng.normal(0.0, 0.1, w.shape).astype(w.dtype)
    n_weights = sum(w.size for w in model.trainable_weights)
    print(f"{demo} ({DEMOS[demo]}): {len(model.trainable_weights)} weight tensors, {n_weights} numbers; "
          f"batch of {len(x)} samples {tuple(x.shape)}; loss {getattr(model.loss, 'name', model.loss)}", file=out)
    report = nb.check_model_grads(model, x, y, max_elements=max_elements, seed=seed)
    print(report, file=out)
    return report


def main(args):
    """The ``numbanet gradcheck`` command on parsed ``args``: 0 when every weight passed, else 1."""
    try:
        report = run(args.demo, args.samples, args.max_elements, args.seed)
    except (ValueError, ImportError, OSError) as err:
        print(f"numbanet gradcheck {args.demo}: {err}", file=sys.stderr)
        return 2
    return 0 if report.passed else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="numbanet gradcheck", description=SUMMARY)
    add_arguments(p)
    sys.exit(main(p.parse_args()))
