"""Embedding: integer token ids -> dense vectors (a trainable lookup table)."""
from __future__ import annotations

import numpy as np

from ..engine import Tensor
from ..engine import functional as F
from .base import Layer, fmt_shape, positive_int


class Embedding(Layer):
    """Look up one row of a (V, D) table per integer id:  y[..., :] = embeddings[ids[...], :].

    Shape: ids (N, ...) of integers in [0, input_dim) -> (N, ..., output_dim).
    Attributes: embeddings (input_dim, output_dim) from ``embeddings_initializer``
    ("uniform": U(-0.05, 0.05), as Keras).

    ``mask_zero=True`` declares id 0 to be padding: the layer attaches
    ``compute_mask(ids) = ids != 0`` to its output (``layers.base.mask_of(y)``), which
    SimpleRNN, Dense and the loss in ``fit`` honour, and id 0 must then not be a real word.
    Ids are never cast: floats raise TypeError, ids outside [0, input_dim) raise
    ValueError (no negative wrap-around). The gradient of the table is a
    scatter-add over the ids (see ``engine.sequence``). ``embeddings_regularizer=``
    and ``activity_regularizer=``: penalties in ``losses`` (``numbanet.regularizers``).
    """

    accepts_integer_input = True  # the base leaves the ids uncast
    regularized_weights = {"embeddings": "embeddings_regularizer"}

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 input_length=None, **kwargs):
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (input_length,)  # Keras 2's argument, kept for old code
        super().__init__(**kwargs)
        self.input_dim = positive_int(self.name, "input_dim", input_dim)
        self.output_dim = positive_int(self.name, "output_dim", output_dim)
        self.embeddings_initializer = self.check_initializer("embeddings_initializer", embeddings_initializer)
        self.mask_zero = bool(mask_zero)

    def validate_input_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"{self.name}: Embedding expects ids with a batch axis, got shape {fmt_shape(input_shape)}")

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def call(self, x, training=False):
        return F.embedding(x, self.embeddings, where=f"{self.name} (Embedding)")

    def compute_mask(self, x, mask=None):
        """``ids != 0`` (bool, the ids' shape) when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return np.asarray(x.data if isinstance(x, Tensor) else x) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": self.embeddings_initializer, "mask_zero": self.mask_zero}
