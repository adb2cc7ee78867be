"""Lyric generator: Embedding - LSTM - LSTM - (Dropout) - Dense(vocab) predicts the next word.

The recurrent cell is ``--cell lstm`` (the default, as the learners' model has it),
``gru`` or ``simple`` (SimpleRNN); two of them are stacked, each returning its whole
sequence.

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

Gradients over time: a ``GradientHealth`` callback watches training on a probe batch of
``--probe-steps`` consecutive words taken from the running text (no padding), with the
loss on the last word only, so ||dL/dh_t|| says how much of the last word's error
reaches the state of step t. ``lyrics_gradients.png`` draws that curve for SimpleRNN
against LSTM (and the chosen cell) built alike on the same probe, before training and
after ``--compare-epochs`` epochs of the same training (0: before training only), and
``lyrics_health.png`` the trained model's gradient norms per layer and epoch.

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

SUMMARY = ("Embedding-LSTM-LSTM-Dense word model (--cell lstm|gru|simple) of Shakespeare's sonnets (or --corpus GLOB); "
           "writes loss curves and gradient-per-time-step pictures, prints lines")
DEFAULT_SEEDS = "shall i compare,my love is,when i do count,thy beauty"
CELLS = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}      # --cell -> the layer in nb.layers


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


def clean_lines(lines, text):
    """The lines as "<start> words <end>", those with at least one word."""
    cleaned = [text.clean_sentence(line) for line in lines]
    return [c for c in cleaned if len(c.split()) > 2]


def make_pairs(lines, vocab, seq_len, text):
    """Tokenize cleaned lines; return (tokenizer, source (L, seq_len), target (L, seq_len))."""
    cleaned = clean_lines(lines, text)
    if not cleaned:
        raise ValueError("lyrics: the corpus is empty: no line has a word left after cleaning")
    tokenizer = text.Tokenizer(num_words=vocab, filters="", oov_token="<unk>")   # keep <start>, <end>
    tokenizer.fit_on_texts(cleaned)
    seqs = text.pad_sequences(tokenizer.texts_to_sequences(cleaned), maxlen=seq_len + 1,
                              padding="post", truncating="post")     # (L, seq_len + 1), 0 = padding
    return tokenizer, seqs[:, :-1], seqs[:, 1:]                      # shifted by one word


def probe_windows(lines, tokenizer, text, steps, count, rng):
    """(x, y) (B, S): B = ``count`` windows of S = ``steps`` consecutive word ids of the running text.

    Every cleaned line's ids, "<start> ... <end>", are joined into one stream; each window
    starts at a random place and y is x shifted by one word. No window holds padding, so
    every step is a real word. S and B shrink to what a short corpus holds (S >= 1).
    """
    stream = np.concatenate([np.asarray(s, dtype=np.int32)
                             for s in tokenizer.texts_to_sequences(clean_lines(lines, text)) if s])
    steps = max(1, min(steps, len(stream) - 1))
    starts = rng.choice(len(stream) - steps, size=min(count, len(stream) - steps), replace=False)
    x = np.stack([stream[s:s + steps] for s in starts])
    y = np.stack([stream[s + 1:s + steps + 1] for s in starts])
    return x, y


# -------------------------------------------------------------------- model
def build_model(nb, vocab, embed_dim, units, dropout=0.0, cell="lstm"):
    """The subclassed model, as a Keras learner writes it; ``cell``: "lstm", "gru" or "simple"."""
    if cell not in CELLS:
        raise ValueError(f"lyrics: cell must be one of {sorted(CELLS)}, got {cell!r}")
    rnn = getattr(nb.layers, CELLS[cell])

    class LyricsModel(nb.Model):
        def __init__(self):
            super().__init__()
            self.embedding = nb.layers.Embedding(vocab, embed_dim, mask_zero=True)
            self.rnn1 = rnn(units, return_sequences=True)
            self.rnn2 = rnn(units, return_sequences=True)
            self.dropout = nb.layers.Dropout(dropout)
            self.logits = nb.layers.Dense(vocab)

        def call(self, x, training=False):       # x (N, T) word ids
            h = self.embedding(x)                # (N, T, embed_dim)
            h = self.rnn1(h)                     # (N, T, units)
            h = self.rnn2(h)                     # (N, T, units)
            h = self.dropout(h, training=training)
            return self.logits(h)                # (N, T, vocab) logits of the next word
            # mask_zero=True: the embedding's output carries mask = (x != 0); the cells skip the
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


def compare_cells(nb, args, vocab, x, y, probe, main_before, main_health):
    """{cell: (before, after)}: ||dL/dh_t|| per step of each recurrent layer on the probe, for
    SimpleRNN, LSTM and the chosen cell, each built alike (same seed, sizes and data).

    ``before`` is measured on the untrained model, ``after`` after ``args.compare_epochs``
    epochs of the same training (None when that is 0, or when the main run stopped
    earlier). The chosen cell's figures come from the main run (``main_before`` and its
    ``GradientHealth`` records); each other cell is trained here for those epochs.
    Each value is {layer name: [T floats]}, the first recurrent layer first.
    """
    epochs = args.compare_epochs
    out = {}
    for cell in ["simple", "lstm"] + ([args.cell] if args.cell not in ("simple", "lstm") else []):
        if cell == args.cell:
            records = main_health.records
            after = records[epochs - 1]["dh_norm"] if 0 < epochs <= len(records) else None
            out[cell] = (main_before, after)
            continue
        nb.utils.set_random_seed(args.seed)
        model = compiled_model(nb, vocab, args, cell)
        model(x[:1])
        health = nb.callbacks.GradientHealth(probe=probe, probe_loss="last")
        before, after = health.measure_probe(model)["dh_norm"], None
        if epochs:
            print(f"training the {CELLS[cell]} model for {epochs} epoch(s) to compare its gradients ...")
            model.fit(x, y, batch_size=args.batch_size, epochs=epochs, validation_split=args.validation_split,
                      verbose=0, callbacks=[health])
            after = health.records[-1]["dh_norm"]
        out[cell] = (before, after)
    return out


def write_gradient_picture(nb, curves, args):
    """lyrics_gradients.png: log10(||dL/dh_t|| / ||dL/dh_T||) over the probe's steps for each cell.

    One panel per moment (before training; after ``args.compare_epochs`` epochs when
    measured); one colour per cell; the upper recurrent layer (the one under the output
    layer) solid, the lower one dashed. Each curve is divided by its own value at the
    last step, so every curve ends at 0 and a vanishing gradient is a line falling to
    the left; log10 on a plain axis, since the ratios span tens of decades. Returns the path.
    """
    moments = [("before training", 0)] + ([(f"after {args.compare_epochs} epoch(s) of training", 1)]
                                          if any(c[1] for c in curves.values()) else [])
    fig = nb.plot.new_figure((6.4 * len(moments), 4.6))
    for k, (title, which) in enumerate(moments):
        ax = fig.add_subplot(1, len(moments), k + 1)
        for j, (cell, pair) in enumerate(curves.items()):
            per_layer = pair[which]
            if per_layer is None:
                continue
            for (name, curve), style, where in zip(reversed(list(per_layer.items())[:2]), ("-", "--"),
                                                   ("upper", "lower")):
                steps = np.arange(1, len(curve) + 1)
                with np.errstate(divide="ignore"):
                    ratio = np.log10(np.asarray(curve) / curve[-1])
                ax.plot(steps, ratio, color=f"C{j}", linestyle=style, marker="o" if style == "-" else None,
                        markersize=3, label=f"{CELLS[cell]}, {where} layer ({name})")
        ax.set_xlabel("time step t of the probe window (the loss is on the last step)")
        ax.set_ylabel("log10( ||dL/dh_t|| / ||dL/dh_T|| )")
        ax.set_title(title, fontsize=10)
        nb.plot.plain_tick_labels(ax)
        ax.legend(fontsize=8)
    fig.suptitle("how much of the last word's error reaches step t (mean over the probe batch)")
    fig.tight_layout()
    path = os.path.join(args.out, "lyrics_gradients.png")
    nb.plot.save_figure(fig, path)
    return path


def compiled_model(nb, vocab, args, cell):
    """The model of ``cell`` with the demo's sizes, compiled with Adam (clipped) and sparse cross-entropy."""
    model = build_model(nb, vocab, args.embed_dim, args.units, args.dropout, cell)
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=args.learning_rate, clipnorm=args.clipnorm),
                  loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


# --------------------------------------------------------------------- main
def add_arguments(p):
    """This demo's options (``numbanet demo lyrics --help`` lists them)."""
    p.add_argument("--cell", default="lstm", choices=sorted(CELLS),
                   help="the recurrent layers: lstm (as the learners wrote it), gru or simple (SimpleRNN) "
                        "(default: %(default)s)")
    p.add_argument("--corpus", default=None, metavar="GLOB",
                   help="text files to learn from, line by line (default: Shakespeare's sonnets from olipy)")
    p.add_argument("--epochs", type=int, default=8, help="most passes over the sequences (default: %(default)s)")
    p.add_argument("--patience", type=int, default=3,
                   help="stop when val_loss has not improved for this many epochs, keeping the best weights (0: never)")
    p.add_argument("--vocab", type=int, default=1000, help="vocabulary cap, padding and <unk> included")
    p.add_argument("--embed-dim", type=int, default=128, help="size of each word's vector (default: %(default)s)")
    p.add_argument("--units", type=int, default=256, help="units of each recurrent layer (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=12, help="words per training sequence (longer lines are cut)")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout rate before the output layer (0: none)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per training step (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.005, help="Adam's learning rate (default: %(default)s)")
    p.add_argument("--clipnorm", type=float, default=1.0, help="clip each gradient to this norm (RNNs explode)")
    p.add_argument("--validation-split", type=float, default=0.1,
                   help="fraction of the sequences held out for val_loss (default: %(default)s)")
    p.add_argument("--probe-steps", type=int, default=30,
                   help="words per probe window for the gradient-per-time-step pictures (default: %(default)s)")
    p.add_argument("--compare-epochs", type=int, default=2,
                   help="epochs to train SimpleRNN (and LSTM) for lyrics_gradients.png; 0: compare them before "
                        "training only (default: %(default)s)")
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
    for name in ("epochs", "vocab", "embed_dim", "units", "seq_len", "batch_size", "probe_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.compare_epochs < 0:
        p.error(f"--compare-epochs must be 0 or more, got {args.compare_epochs}")
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
    probe = probe_windows(lines, tokenizer, text, args.probe_steps, 32, np.random.default_rng(args.seed))
    print(f"corpus: {len(lines)} lines from {where}; {len(tokenizer.word_index)} distinct words, "
          f"kept {vocab} ids (0 = padding, 1 = <unk>); pairs {x.shape} -> {y.shape}; "
          f"probe windows {probe[0].shape}")
    model = compiled_model(nb, vocab, args, args.cell)
    model(x[:1])
    model.summary()
    health = nb.callbacks.GradientHealth(probe=probe, probe_loss="last")
    before = health.measure_probe(model)["dh_norm"]
    start = time.perf_counter()
    stop = [nb.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)]
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, validation_split=args.validation_split,
                        verbose=args.verbose, callbacks=(stop if args.patience > 0 else []) + [health])
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
    health_path = os.path.join(args.out, "lyrics_health.png")
    health.plot(health_path)
    curves = compare_cells(nb, args, vocab, x, y, probe, before, health)
    gradients_path = write_gradient_picture(nb, curves, args)
    for cell, (first, last) in curves.items():
        for label, per_layer in (("before training", first), (f"after {args.compare_epochs} epoch(s)", last)):
            if per_layer:
                upper, curve = list(per_layer.items())[-1]
                print(f"  {CELLS[cell]:<9} {label:<20}: ||dL/dh_1|| / ||dL/dh_T|| = {curve[0] / curve[-1]:.3g} "
                      f"over {len(curve)} steps ({upper})")
    print(f"wrote {path}, {health_path}, {gradients_path}")
    return {"history": hist, "seconds": seconds, "png": path, "health_png": health_path,
            "gradients_png": gradients_path, "samples": samples, "vocab": vocab, "health": health,
            "gradient_curves": curves}


if __name__ == "__main__":
    main()
