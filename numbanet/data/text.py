"""Text to integer sequences: a word tokenizer, padding, and a sentence cleaner.

Follows the behaviour of Keras's classic ``Tokenizer`` and ``pad_sequences``
(documented in tf_keras; Keras 3 keeps only ``pad_sequences``):

* index 0 is never a word: it is reserved for padding;
* words are ranked by count, most frequent first, ties in order of first
  appearance; with an ``oov_token`` it takes index 1 and the words start at 2;
* ``num_words`` keeps only indices below ``num_words`` when converting (the
  index itself holds every word); other words become the oov index, or are
  dropped when there is no ``oov_token``.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Lower-case, turn every filter character into ``split``, split, drop empty words."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class Tokenizer:
    """Word-level vocabulary built from texts.

    Attributes after ``fit_on_texts``: ``word_counts`` (OrderedDict word -> count,
    in first-appearance order), ``word_docs`` (word -> number of texts containing
    it), ``word_index`` (word -> index from 1), ``index_word`` (its inverse),
    ``document_count``; ``num_words`` as given.
    """

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ", oov_token=None):
        if num_words is not None and (not isinstance(num_words, (int, np.integer)) or num_words < 1):
            raise ValueError(f"Tokenizer: num_words must be a positive integer or None, got {num_words!r}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"Tokenizer: split must be a non-empty string, got {split!r}")
        self.num_words, self.filters, self.lower = num_words, filters, lower
        self.split, self.oov_token = split, oov_token
        self.word_counts = OrderedDict()
        self.word_docs = {}
        self.word_index, self.index_word = {}, {}
        self.document_count = 0

    def _words(self, text):
        if isinstance(text, (list, tuple)):  # already split into words
            return [w.lower() for w in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer: each text must be a str or a list of words, got {type(text).__name__}")
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts):
        """Count words in ``texts`` (a list of strings) and rebuild the index."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.fit_on_texts: expected a list of texts, got one str "
                            "(wrap it in a list)")
        for text in texts:
            self.document_count += 1
            words = self._words(text)
            for w in words:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(words):
                self.word_docs[w] = self.word_docs.get(w, 0) + 1
        # sorted() is stable: equal counts keep first-appearance order
        ranked = [w for w, _ in sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)]
        vocab = ([self.oov_token] if self.oov_token is not None else [])
        vocab += [w for w in ranked if w != self.oov_token]
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}

    def _kept(self, i):
        return not self.num_words or i < self.num_words

    def texts_to_sequences(self, texts):
        """Each text -> list of word indices (unknown or rare words -> oov index or dropped)."""
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for text in texts:
            seq = []
            for w in self._words(text):
                i = self.word_index.get(w)
                if i is not None and self._kept(i):
                    seq.append(i)
                elif oov is not None:
                    seq.append(oov)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences):
        """Each list of indices -> words joined by a space (inverse of texts_to_sequences)."""
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for seq in sequences:
            words = []
            for i in np.asarray(seq).reshape(-1).tolist():
                w = self.index_word.get(i)
                if w is not None and self._kept(i):
                    words.append(w)
                elif oov is not None:  # as Keras: rare, unknown (and 0) -> the oov word
                    words.append(self.index_word[oov])
            out.append(" ".join(words))
        return out

    def get_config(self):
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower,
                "split": self.split, "oov_token": self.oov_token}


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """Stack variable-length sequences into an (N, maxlen) array.

    ``maxlen`` defaults to the longest sequence. Longer sequences lose items at
    the start (``truncating="pre"``) or end ("post"); shorter ones get ``value``
    before ("pre") or after ("post") their items.
    """
    for name, arg in (("padding", padding), ("truncating", truncating)):
        if arg not in ("pre", "post"):
            raise ValueError(f'pad_sequences: {name} must be "pre" or "post", got {arg!r}')
    if maxlen is not None and (not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"pad_sequences: maxlen must be a non-negative integer or None, got {maxlen!r}")
    try:
        sequences = list(sequences)
        lengths = [len(s) for s in sequences]
    except TypeError:
        raise ValueError("pad_sequences: sequences must be a list of iterables (lists of ints)") from None
    if maxlen is None:
        maxlen = max(lengths, default=0)
    x = np.full((len(sequences), maxlen), value, dtype=dtype)
    if maxlen == 0:
        return x
    for row, seq in zip(x, sequences):
        seq = np.asarray(seq, dtype=dtype).reshape(-1)
        if seq.size == 0:
            continue
        seq = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        if padding == "pre":
            row[maxlen - seq.size:] = seq
        else:
            row[:seq.size] = seq
    return x


_PUNCT = r"?.!,;:"


def clean_sentence(text, start="<start>", end="<end>"):
    """Lower-case, space out punctuation, drop other symbols, wrap in start/end marks.

    >>> clean_sentence("From fairest creatures we desire increase,")
    '<start> from fairest creatures we desire increase , <end>'

    Letters, digits, apostrophes inside words (``thy light's``) and ``?.!,;:``
    survive; every other character becomes a space. ``start``/``end`` may be
    None to leave them out.
    """
    text = text.lower().strip()
    text = re.sub(f"([{re.escape(_PUNCT)}])", r" \1 ", text)       # "eyes," -> "eyes ,"
    text = re.sub(rf"[^a-z0-9'{re.escape(_PUNCT)}]+", " ", text)   # other symbols -> space
    text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)      # quotes, not apostrophes
    words = text.split()
    return " ".join(([start] if start else []) + words + ([end] if end else []))


__all__ = ["Tokenizer", "pad_sequences", "text_to_word_sequence", "clean_sentence", "DEFAULT_FILTERS"]
