"""The learners' lyric generator, as a tf.keras learner writes it, running on numbanet.

    Embedding(vocab, embedding_dim) -> LSTM(rnn_units, return_sequences=True)
        -> LSTM(rnn_units, return_sequences=True) -> Dense(vocab)          (logits of the next word)

in a subclassed Model, trained with Adam and SparseCategoricalCrossentropy(from_logits=True):
every line of the corpus is a sequence of word ids, and at each position the model learns
the id of the word that follows. ``generate_text`` then continues a seed text word by word.

Only the import lines below are numbanet's; with TensorFlow's in their place (the comment
above them) the rest of the file runs unchanged on tf.keras (tests/test_text_generator.py
runs it both ways). Tiny sizes by default, so it trains in seconds; the learners' sizes:

    python examples/text_generator.py --embedding-dim 256 --rnn-units 1024 --epochs 30

Shapes: x, y (lines, seq_length) int32 word ids (0 = padding, in front); the model's
output (batch, seq_length, vocab_size) float32 logits.
"""
import argparse

import numpy as np

# With TensorFlow, these three lines read
#     from tensorflow import keras
#     from tensorflow.keras.preprocessing.text import Tokenizer
#     from tensorflow.keras.preprocessing.sequence import pad_sequences
import numbanet as keras
from numbanet.text import Tokenizer
from numbanet.text import pad_sequences

SEQ_LENGTH = 10   # words the model reads: training sequences and the generation window


class TextGenerator(keras.Model):
    def __init__(self, vocab_size, embedding_dim, rnn_units):
        super().__init__()
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
        self.lstm1 = keras.layers.LSTM(rnn_units, return_sequences=True)
        self.lstm2 = keras.layers.LSTM(rnn_units, return_sequences=True)
        self.dense = keras.layers.Dense(vocab_size)

    def call(self, inputs, training=False):
        x = self.embedding(inputs, training=training)    # (batch, time, embedding_dim)
        x = self.lstm1(x, training=training)             # (batch, time, rnn_units)
        x = self.lstm2(x, training=training)             # (batch, time, rnn_units)
        return self.dense(x, training=training)          # (batch, time, vocab_size) logits


def load_corpus(path=None, max_lines=400):
    """The corpus as a list of lines: a text file, or Shakespeare's sonnets (olipy) by default."""
    if path is None:
        from olipy import corpora
        sonnets = corpora.words.literature.shakespeare_sonnets["sonnets"]
        lines = [line for sonnet in sonnets for line in sonnet["lines"]]
    else:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    return [line.lower().strip() for line in lines if line.strip()][:max_lines]


def make_dataset(corpus, tokenizer, seq_length=SEQ_LENGTH):
    """x, y (lines, seq_length): each line's ids padded in front, and the same shifted by one word."""
    sequences = tokenizer.texts_to_sequences(corpus)
    padded = pad_sequences(sequences, maxlen=seq_length + 1, padding="pre", truncating="pre")
    return padded[:, :-1], padded[:, 1:]


def generate_text(model, tokenizer, seed_text, next_words, temperature=1.0, seq_length=SEQ_LENGTH):
    """seed_text and ``next_words`` more words, each drawn from softmax(logits / temperature) (0: argmax)."""
    for _ in range(next_words):
        token_list = tokenizer.texts_to_sequences([seed_text])[0]
        token_list = pad_sequences([token_list], maxlen=seq_length, padding="pre")
        predictions = model.predict(token_list, verbose=0)          # (1, seq_length, vocab_size)
        logits = np.asarray(predictions[0, -1, :], dtype="float64")  # the last step: the next word
        if temperature == 0:
            predicted_id = int(np.argmax(logits))
        else:
            logits = logits / temperature
            probabilities = np.exp(logits - np.max(logits))
            probabilities = probabilities / np.sum(probabilities)
            predicted_id = int(np.random.choice(len(probabilities), p=probabilities))
        output_word = tokenizer.index_word.get(predicted_id, "")
        seed_text += " " + output_word
    return seed_text


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the learners' TextGenerator and generate lines.")
    parser.add_argument("--corpus", default=None, help="a text file, one line per sequence (default: the sonnets)")
    parser.add_argument("--max-lines", type=int, default=400, help="lines of the corpus to train on")
    parser.add_argument("--embedding-dim", type=int, default=16, help="learners' size: 256")
    parser.add_argument("--rnn-units", type=int, default=32, help="learners' size: 1024")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed-text", default="shall i compare thee")
    parser.add_argument("--next-words", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    np.random.seed(args.seed)
    corpus = load_corpus(args.corpus, args.max_lines)
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(corpus)
    vocab_size = len(tokenizer.word_index) + 1
    x, y = make_dataset(corpus, tokenizer)
    print(f"{len(corpus)} lines, {vocab_size} words; x {x.shape}, y {y.shape}")

    model = TextGenerator(vocab_size, args.embedding_dim, args.rnn_units)
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=2)

    greedy = generate_text(model, tokenizer, args.seed_text, args.next_words, temperature=0)
    sampled = generate_text(model, tokenizer, args.seed_text, args.next_words, temperature=0.8)
    print(f"greedy: {greedy}\nT=0.8 : {sampled}")
    return {"loss": history.history["loss"], "greedy": greedy, "sampled": sampled, "vocab_size": vocab_size,
            "x": x, "y": y}


if __name__ == "__main__":
    main()
