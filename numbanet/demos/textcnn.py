"""Text CNN: Embedding - Conv1D - GlobalMaxPooling1D - Dense tells which text a line comes from.

Data: four line collections of the Corpora project (Darius Kazemi et al.,
github.com/dariusk/corpora, released under CC0 1.0, public domain), as the
olipy package ships them offline:

    sonnet   a line of Shakespeare's sonnets          words/literature/shakespeare_sonnets
    harvard  a Harvard sentence (speech testing)      words/harvard_sentences
    proverb  an English proverb                        words/proverbs
    tarot    a tarot card reading or meaning          divination/tarot_interpretations

Every class is cut to the size of the smallest, so chance is 1 in 4 (25 %).
Each line becomes word ids (Tokenizer, pad_sequences to ``--seq-len``), and the
model, Kim's (2014) sentence CNN in small, reads it:

    ids (N, T) -> Embedding (N, T, E) -> Conv1D(F, K, relu) (N, T-K+1, F)
               -> GlobalMaxPooling1D (N, F) -> Dense(4, softmax) (N, 4)

Each filter is a detector of one K-word phrase; the global max keeps how
strongly it fired anywhere in the line. Training minimises sparse categorical
cross-entropy with Adam; the test split (``--test-split``) is never trained on:
``fit`` only reports it each epoch (as val_loss / val_accuracy, no early stopping
or model selection on it). Writes ``textcnn_loss.png`` (loss and accuracy per epoch, with the
test accuracy) and prints the test accuracy beside chance.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "Embedding-Conv1D-GlobalMaxPooling1D-Dense: which of 4 CC0 texts (olipy's Corpora) is a line from"
CLASSES = ("sonnet", "harvard", "proverb", "tarot")


# ------------------------------------------------------------------- corpus
def load_corpus():
    """{class name: [lines]} from olipy's copy of the Corpora project (CC0)."""
    from olipy import corpora
    sonnets = [line for s in corpora.words.literature.shakespeare_sonnets["sonnets"] for line in s["lines"]]
    harvard = list(corpora.words.harvard_sentences["data"])
    proverbs = [p for group in corpora.words.proverbs["proverbs"] for lines in group.values() for p in lines]
    tarot = []
    for card in corpora.divination.tarot_interpretations["tarot_interpretations"]:
        tarot += card["fortune_telling"] + card["meanings"]["light"] + card["meanings"]["shadow"]
    return dict(zip(CLASSES, (sonnets, harvard, proverbs, tarot)))


def balanced(corpus, rng):
    """(lines, labels (L,) int): every class cut to the smallest class's size, in shuffled order."""
    size = min(len(lines) for lines in corpus.values())
    lines, labels = [], []
    for label, name in enumerate(CLASSES):
        chosen = rng.choice(len(corpus[name]), size, replace=False)
        lines += [corpus[name][i] for i in chosen]
        labels += [label] * size
    order = rng.permutation(len(lines))
    return [lines[i] for i in order], np.array(labels, dtype=np.int32)[order]


def encode(train_lines, test_lines, vocab, seq_len, text):
    """(tokenizer, x_train, x_test): word ids padded at the end to ``seq_len``; the vocabulary
    comes from the training lines only (test words it lacks become <unk>)."""
    tokenizer = text.Tokenizer(num_words=vocab, oov_token="<unk>")
    tokenizer.fit_on_texts(train_lines)

    def ids(lines):
        return text.pad_sequences(tokenizer.texts_to_sequences(lines), maxlen=seq_len, padding="post",
                                  truncating="post")
    return tokenizer, ids(train_lines), ids(test_lines)


# -------------------------------------------------------------------- model
def build_model(nb, vocab, embed_dim, filters, kernel_size, seq_len):
    """Embedding -> Conv1D(relu) -> GlobalMaxPooling1D -> Dense(softmax), as a Keras Sequential."""
    L = nb.layers
    return nb.Sequential([
        L.Input((seq_len,)),
        L.Embedding(vocab, embed_dim),                        # (N, T) -> (N, T, E)
        L.Conv1D(filters, kernel_size, activation="relu"),    # -> (N, T - K + 1, F): one phrase detector per filter
        L.GlobalMaxPooling1D(),                               # -> (N, F): its strongest response in the line
        L.Dense(len(CLASSES), activation="softmax"),          # -> (N, 4)
    ])


# --------------------------------------------------------------------- main
def add_arguments(p):
    """This demo's options (``numbanet demo textcnn --help`` lists them)."""
    p.add_argument("--epochs", type=int, default=8, help="passes over the training lines (default: %(default)s)")
    p.add_argument("--vocab", type=int, default=3000, help="vocabulary cap, padding and <unk> included")
    p.add_argument("--embed-dim", type=int, default=32, help="size of each word's vector (default: %(default)s)")
    p.add_argument("--filters", type=int, default=64, help="Conv1D filters (default: %(default)s)")
    p.add_argument("--kernel-size", type=int, default=3, help="words per Conv1D window (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=16, help="words per line (longer lines are cut)")
    p.add_argument("--batch-size", type=int, default=32, help="lines per training step (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.003, help="Adam's learning rate (default: %(default)s)")
    p.add_argument("--test-split", type=float, default=0.2, help="fraction of the lines held out for the test")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffling")
    add_output_options(p)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="numbanet demo textcnn", description=SUMMARY)
    add_arguments(p)
    args = p.parse_args(argv)
    for name in ("epochs", "vocab", "embed_dim", "filters", "kernel_size", "seq_len", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.kernel_size > args.seq_len:
        p.error(f"--kernel-size {args.kernel_size} must not exceed --seq-len {args.seq_len} (Conv1D is 'valid')")
    if not 0 < args.test_split < 1:
        p.error(f"--test-split must be in (0, 1), got {args.test_split}")
    if args.vocab < 3:
        p.error(f"--vocab must be at least 3 (padding, <unk> and one word), got {args.vocab}")
    return p, args


def main(argv=None):
    parser, args = parse_args(argv)
    import numbanet as nb
    from numbanet import text
    rng = np.random.default_rng(args.seed)
    lines, labels = balanced(load_corpus(), rng)
    n_test = max(len(CLASSES), int(round(len(lines) * args.test_split)))
    _, x_train, x_test = encode(lines[n_test:], lines[:n_test], args.vocab, args.seq_len, text)
    y_train, y_test = labels[n_test:], labels[:n_test]
    print(f"data: {len(lines)} lines, {len(lines) // len(CLASSES)} per class {CLASSES} (olipy's Corpora, CC0); "
          f"train {len(x_train)}, test {len(x_test)}; chance {1 / len(CLASSES):.2f}")
    nb.utils.set_random_seed(args.seed)
    model = build_model(nb, args.vocab, args.embed_dim, args.filters, args.kernel_size, args.seq_len)
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose,
                        validation_data=(x_test, y_test))
    seconds = time.perf_counter() - start
    predicted = model.predict(x_test).argmax(axis=1)
    accuracy = float((predicted == y_test).mean())
    print(f"trained {args.epochs} epochs in {seconds:.1f} s")
    print(f"test accuracy {accuracy:.3f} (chance {1 / len(CLASSES):.2f}) on {len(y_test)} held-out lines")
    for label, name in enumerate(CLASSES):
        mine = y_test == label
        print(f"  {name:<8} {float((predicted[mine] == label).mean()):.3f} of {int(mine.sum())}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "textcnn_loss.png")
    figure = nb.plot.plot_history(history, path, test={"accuracy": accuracy},
                         title="textcnn: which text is a line from (4 classes, chance 0.25)")
    print(f"wrote {path}")
    return {"history": history.history, "accuracy": accuracy, "seconds": seconds, "png": path, "figure": figure,
            "n_test": len(y_test)}


if __name__ == "__main__":
    main()
