"""Lyric generator: Embedding - SimpleRNN - SimpleRNN - (Dropout) - Dense(vocab) predicts the next word.

Every line of the corpus becomes one training sequence:

    "From fairest creatures we desire increase,"
    -> "<start> from fairest creatures we desire increase , <end>"      (clean_sentence)
    -> [2, 43, 423, 877, 175, 223, 516, 4, 3, 0, 0, 0, 0, 0, 0]     (Tokenizer, pad_sequences)
    source = tokens[:-1], target = tokens[1:]                        (shifted by one word)

The model reads the source and, at every position t, outputs logits over the
vocabulary for the word at t+1. The loss is sparse categorical cross-entropy
from logits, averaged over the real words only (padding id 0 is masked out by
``Embedding(mask_zero=True)``, whose mask travels with the tensors to the loss), minimised by Adam with each gradient clipped to norm 1.
Training stops when the validation loss stops improving and keeps the best
weights (the sonnets are small, about 2,000 lines, so the model soon overfits).
Generation starts from "<start> seed words" and feeds each chosen word back,
greedily (argmax) or by sampling softmax(logits / T).

Default corpus: Shakespeare's 154 sonnets as shipped by olipy; ``--corpus GLOB``
reads every text file the glob matches, line by line, instead.
"""
from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np

from . import add_output_options

SUMMARY = "Embedding-SimpleRNN-SimpleRNN-Dense word model of Shakespeare's sonnets (or --corpus GLOB); writes loss curves, prints lines"
DEFAULT_SEEDS = "shall i compare,my love is,when i do count,thy beauty"


# ------------------------------------------------------------------- corpus
def load_lines(pattern=None):
    """Non-blank lines of every file matching ``pattern`` (default: olipy's sonnets).

    Raises ValueError when the glob matches no file or the files hold no text.
    """
    if pattern is None:
        from olipy import corpora
        sonnets = corpora.words.literature.shakespeare_sonnets["sonnets"]   # [{"lines": [...], "number": n}]
        lines, where = [line for s in sonnets for line in s["lines"]], "olipy's shakespeare_sonnets"
    else:
        files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(f))
        if not files:
            raise ValueError(f"lyrics: --corpus {pattern!r} matched no files")
        lines = []
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines.extend(f)
        where = f"{len(files)} file(s) matched by {pattern!r}"
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise ValueError(f"lyrics: the corpus is empty: {where} contain no non-blank lines")
    return lines, where


def make_pairs(lines, vocab, seq_len, text):
    """Tokenize cleaned lines; return (tokenizer, source (L, seq_len), target (L, seq_len))."""
    cleaned = [text.clean_sentence(line) for line in lines]
    cleaned = [c for c in cleaned if len(c.split()) > 2]            # lines with at least one word
    if not cleaned:
        raise ValueError("lyrics: the corpus is empty: no line has a word left after cleaning")
    tokenizer = text.Tokenizer(num_words=vocab, filters="", oov_token="<unk>")   # keep <start>, <end>
    tokenizer.fit_on_texts(cleaned)
    seqs = text.pad_sequences(tokenizer.texts_to_sequences(cleaned), maxlen=seq_len + 1,
                              padding="post", truncating="post")     # (L, seq_len + 1), 0 = padding
    return tokenizer, seqs[:, :-1], seqs[:, 1:]                      # shifted by one word


# -------------------------------------------------------------------- model
def build_model(nb, vocab, embed_dim, units, dropout=0.0):
    """The subclassed model, as a Keras learner writes it."""

    class LyricsModel(nb.Model):
        def __init__(self):
            super().__init__()
            self.embedding = nb.layers.Embedding(vocab, embed_dim, mask_zero=True)
            self.rnn1 = nb.layers.SimpleRNN(units, return_sequences=True)
            self.rnn2 = nb.layers.SimpleRNN(units, return_sequences=True)
            self.dropout = nb.layers.Dropout(dropout)
            self.logits = nb.layers.Dense(vocab)

        def call(self, x, training=False):       # x (N, T) word ids
            h = self.embedding(x)                # (N, T, embed_dim)
            h = self.rnn1(h)                     # (N, T, units)
            h = self.rnn2(h)                     # (N, T, units)
            h = self.dropout(h, training=training)
            return self.logits(h)                # (N, T, vocab) logits of the next word
            # mask_zero=True: the embedding's output carries mask = (x != 0); the RNNs skip the
            # padded steps and the loss in fit averages over the real words only (as Keras does)

    return LyricsModel()


# --------------------------------------------------------------- generation
def generate(model, tokenizer, seed, temperature=0.0, max_words=14, rng=None):
    """Continue ``seed`` word by word until "<end>"; temperature 0 is greedy argmax."""
    from numbanet.engine import no_grad
    words = seed.lower().split()
    ids = [tokenizer.word_index["<start>"]] + tokenizer.texts_to_sequences([words])[0]
    end, banned = tokenizer.word_index["<end>"], [0, tokenizer.word_index["<unk>"], tokenizer.word_index["<start>"]]
    for _ in range(max_words):
        with no_grad():
            z = model(np.array([ids], dtype=np.int32)).data[0, -1].astype(np.float64)   # (vocab,)
        z[banned] = -np.inf
        if temperature > 0:
            p = np.exp((z - z.max()) / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        else:
            nxt = int(np.argmax(z))
        if nxt == end:
            break
        ids.append(nxt)
    return " ".join(tokenizer.index_word[i] for i in ids[1:])


# ----------------------------------------------------------------- picture
def held_out_accuracy(model, x, y, validation_split):
    """Next-word accuracy on the held-out sequences (the last ``validation_split`` of them, as fit holds out).

    x, y (L, T) word ids; the share of real target words (y != 0) whose logit is the
    largest of the model's (L, T, vocab) output.
    """
    n_train = int(len(x) * (1 - validation_split))
    logits = model.predict(x[n_train:])                       # (L_val, T, vocab)
    real = y[n_train:] != 0                                   # (L_val, T): not padding
    return float((logits.argmax(axis=-1) == y[n_train:])[real].mean())


def write_picture(nb, model, history, x, y, args, vocab, callbacks):
    """lyrics_loss.png: loss and val_loss per epoch, the restored best epoch, the held-out accuracy."""
    best_epoch = nb.plot.restored_epoch(callbacks)
    accuracy = held_out_accuracy(model, x, y, args.validation_split)
    weights = f"the weights of epoch {best_epoch}" if best_epoch else "the last weights"
    path = os.path.join(args.out, "lyrics_loss.png")
    nb.plot.plot_history(history, path, best_epoch=best_epoch,
                         notes=[f"held-out next-word accuracy {accuracy:.3f} ({weights})"],
                         title=f"lyrics: next-word cross-entropy ({vocab} words)")
    print(f"next-word accuracy on the held-out lines, with {weights}: {accuracy:.3f}")
    return path


# --------------------------------------------------------------------- main
def add_arguments(p):
    """This demo's options (``numbanet demo lyrics --help`` lists them)."""
    p.add_argument("--corpus", default=None, metavar="GLOB",
                   help="text files to learn from, line by line (default: Shakespeare's sonnets from olipy)")
    p.add_argument("--epochs", type=int, default=30, help="most passes over the sequences (default: %(default)s)")
    p.add_argument("--patience", type=int, default=5,
                   help="stop when val_loss has not improved for this many epochs, keeping the best weights (0: never)")
    p.add_argument("--vocab", type=int, default=2000, help="vocabulary cap, padding and <unk> included")
    p.add_argument("--embed-dim", type=int, default=128, help="size of each word's vector (default: %(default)s)")
    p.add_argument("--units", type=int, default=256, help="units of each SimpleRNN (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=14, help="words per training sequence (longer lines are cut)")
    p.add_argument("--dropout", type=float, default=0.5, help="dropout rate before the output layer (0: none)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per training step (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.001, help="Adam's learning rate (default: %(default)s)")
    p.add_argument("--clipnorm", type=float, default=1.0, help="clip each gradient to this norm (RNNs explode)")
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of the sequences held out for val_loss (default: %(default)s)")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated first words of the generated lines")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature of the second generated line (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the weights, shuffling and sampling (default: %(default)s)")
    add_output_options(p)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="numbanet demo lyrics", description=SUMMARY)
    add_arguments(p)
    args = p.parse_args(argv)
    for name in ("epochs", "vocab", "embed_dim", "units", "seq_len", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if not 0 < args.validation_split < 1:
        p.error(f"--validation-split must be in (0, 1) (validation loss is reported), got {args.validation_split}")
    if args.vocab < 5:
        p.error(f"--vocab must be at least 5 (padding, <unk>, <start>, <end> and one word), got {args.vocab}")
    return p, args


def main(argv=None):
    parser, args = parse_args(argv)
    import numbanet as nb
    from numbanet import text
    try:
        lines, where = load_lines(args.corpus)
        tokenizer, x, y = make_pairs(lines, args.vocab, args.seq_len, text)
    except ValueError as err:
        parser.error(str(err))
    nb.utils.set_random_seed(args.seed)
    vocab = min(args.vocab, len(tokenizer.word_index) + 1)
    print(f"corpus: {len(lines)} lines from {where}; {len(tokenizer.word_index)} distinct words, "
          f"kept {vocab} ids (0 = padding, 1 = <unk>); pairs {x.shape} -> {y.shape}")
    model = build_model(nb, vocab, args.embed_dim, args.units, args.dropout)
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=args.learning_rate, clipnorm=args.clipnorm),
                  loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    model(x[:1])
    model.summary()
    start = time.perf_counter()
    stop = [nb.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)]
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=args.validation_split,
                        verbose=args.verbose, callbacks=stop if args.patience > 0 else None)
    seconds = time.perf_counter() - start
    hist = history.history
    path = write_picture(nb, model, history, x, y, args, vocab, stop)
    print(f"trained {len(hist['loss'])} epochs in {seconds:.1f} s: loss {hist['loss'][-1]:.3f}, "
          f"val_loss {hist['val_loss'][-1]:.3f} (best {min(hist['val_loss']):.3f})")
    rng = np.random.default_rng(args.seed)
    samples = []
    for seed in [s.strip() for s in args.seeds.split(",") if s.strip()]:
        greedy = generate(model, tokenizer, seed)
        sampled = generate(model, tokenizer, seed, args.temperature, rng=rng)
        samples.append((seed, greedy, sampled))
        print(f"  greedy      : {greedy}\n  T={args.temperature:<10g}: {sampled}")
    print(f"wrote {path}")
    return {"history": hist, "seconds": seconds, "png": path, "samples": samples, "vocab": vocab}


if __name__ == "__main__":
    main()
