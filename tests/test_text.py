"""Tokenizer, pad_sequences and the sentence cleaner against Keras's documented behaviour.

Expected values are written out by hand from the documented semantics (tf_keras's
Tokenizer is not part of Keras 3, so it is not imported here).
"""
from collections import OrderedDict

import numpy as np
import pytest

from numbanet.text import Tokenizer, clean_sentence, pad_sequences, text_to_word_sequence

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "My cat ate the fish"]
# counts: the 4, cat 2, ate 2, my 2, then the ones in order of first appearance
RANKED = ["the", "cat", "ate", "my", "sat", "on", "mat", "dog", "homework", "fish"]


def fitted(**kw):
    t = Tokenizer(**kw)
    t.fit_on_texts(TEXTS)
    return t


def test_word_index_most_frequent_first_ties_by_first_appearance():
    t = fitted()
    assert t.word_index == {w: i for i, w in enumerate(RANKED, start=1)}
    assert t.index_word == {i: w for i, w in enumerate(RANKED, start=1)}
    assert t.word_counts == OrderedDict([("the", 4), ("cat", 2), ("sat", 1), ("on", 1), ("mat", 1),
                                         ("dog", 1), ("ate", 2), ("my", 2), ("homework", 1), ("fish", 1)])
    assert list(t.word_counts) == ["the", "cat", "sat", "on", "mat", "dog", "ate", "my", "homework", "fish"]
    assert t.document_count == 3
    assert t.word_docs["the"] == 3 and t.word_docs["cat"] == 2 and t.word_docs["fish"] == 1
    assert 0 not in t.index_word  # 0 is reserved for padding


def test_oov_token_takes_index_1():
    t = fitted(oov_token="<OOV>")
    assert t.word_index["<OOV>"] == 1
    assert t.word_index["the"] == 2 and t.word_index["fish"] == 11
    assert t.texts_to_sequences(["the cat ate a fish"]) == [[2, 3, 4, 1, 11]]


def test_texts_to_sequences_without_oov_drops_unknown_words():
    t = fitted()
    assert t.texts_to_sequences(["The cat ate a fish!", "zebra"]) == [[1, 2, 3, 10], []]


def test_num_words_keeps_indices_below_it():
    t = fitted(num_words=4)
    assert t.num_words == 4
    assert len(t.word_index) == 10  # the index itself keeps every word
    assert t.texts_to_sequences(["the cat ate a fish", "my dog"]) == [[1, 2, 3], []]
    t = fitted(num_words=4, oov_token="<OOV>")  # <OOV> 1, the 2, cat 3 survive
    assert t.texts_to_sequences(["the cat ate a fish"]) == [[2, 3, 1, 1, 1]]


def test_sequences_to_texts():
    t = fitted()
    assert t.sequences_to_texts([[1, 2, 99], [10]]) == ["the cat", "fish"]
    t = fitted(num_words=4, oov_token="<OOV>")
    # ranked beyond num_words, unknown, and (as in Keras) 0 all read back as the oov word
    assert t.sequences_to_texts([[2, 3, 11, 0]]) == ["the cat <OOV> <OOV>"]
    assert t.sequences_to_texts(np.array([[2, 3]])) == ["the cat"]


def test_round_trip_of_known_words():
    t = fitted(oov_token="<unk>")
    seqs = t.texts_to_sequences(TEXTS)
    assert t.sequences_to_texts(seqs) == ["the cat sat on the mat", "the dog ate my homework", "my cat ate the fish"]


def test_filters_lower_split_and_pre_split_input():
    assert text_to_word_sequence("Don't stop, self-substantial!") == ["don't", "stop", "self", "substantial"]
    assert text_to_word_sequence("A  B", lower=False) == ["A", "B"]
    assert text_to_word_sequence("a,b c", filters="", split=",") == ["a", "b c"]
    t = Tokenizer(filters="", lower=False)
    t.fit_on_texts(["<start> Hi there <end>", ["<start>", "there"]])
    assert t.word_index == {"<start>": 1, "there": 2, "Hi": 3, "<end>": 4}


def test_fitting_twice_accumulates_counts():
    t = Tokenizer()
    t.fit_on_texts(["b a"])
    t.fit_on_texts(["a"])
    assert t.word_index == {"a": 1, "b": 2} and t.word_counts["a"] == 2 and t.document_count == 2


def test_tokenizer_bad_input():
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=0)
    with pytest.raises(TypeError, match="list of texts"):
        Tokenizer().fit_on_texts("just one string")
    with pytest.raises(TypeError, match="str or a list"):
        Tokenizer().fit_on_texts([3])


SEQS = [[1], [2, 3], [4, 5, 6]]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, [[0, 0, 1], [0, 2, 3], [4, 5, 6]]),
    ({"value": -1}, [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]),
    ({"padding": "post"}, [[1, 0, 0], [2, 3, 0], [4, 5, 6]]),
    ({"maxlen": 2}, [[0, 1], [2, 3], [5, 6]]),
    ({"maxlen": 2, "truncating": "post"}, [[0, 1], [2, 3], [4, 5]]),
    ({"maxlen": 4, "padding": "post", "truncating": "post"}, [[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]]),
    ({"maxlen": 1, "padding": "post"}, [[1], [3], [6]]),
])
def test_pad_sequences_documented_examples(kwargs, expected):
    out = pad_sequences(SEQS, **kwargs)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_pad_sequences_edge_cases():
    np.testing.assert_array_equal(pad_sequences([[], [7]]), [[0], [7]])
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([[1, 2]], dtype="float32").dtype == np.float32
    np.testing.assert_array_equal(pad_sequences((np.array([1, 2]), (3,))), [[1, 2], [0, 3]])
    with pytest.raises(ValueError, match="padding"):
        pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences(SEQS, truncating="both")
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences(SEQS, maxlen=-1)
    with pytest.raises(ValueError, match="iterables"):
        pad_sequences([1, 2, 3])


def test_clean_sentence():
    assert clean_sentence("From fairest creatures we desire increase,") == \
        "<start> from fairest creatures we desire increase , <end>"
    assert clean_sentence("  Feed'st thy light's flame -- with 'self' #fuel?! ") == \
        "<start> feed'st thy light's flame with self fuel ? ! <end>"
    assert clean_sentence("Hello, World", start=None, end=None) == "hello , world"
    assert clean_sentence("") == "<start> <end>"
