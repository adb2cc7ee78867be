"""``numbanet.text``: tokenizing and padding text (see ``numbanet.data.text``)."""
from .data.text import DEFAULT_FILTERS, Tokenizer, clean_sentence, pad_sequences, text_to_word_sequence  # noqa: F401

__all__ = ["Tokenizer", "pad_sequences", "text_to_word_sequence", "clean_sentence", "DEFAULT_FILTERS"]
