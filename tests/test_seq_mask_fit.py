"""The padding mask of Embedding(mask_zero=True) travels through SimpleRNN and Dense to the loss."""

import numpy as np
import pytest

import numbanet as nb
from numbanet.layers.base import mask_of

V, T, N = 12, 6, 5


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, size=(N, T))
    lengths = np.array([6, 4, 2, 5, 1])
    for i, L in enumerate(lengths):
        x[i, L:] = 0                                   # post-padding
    y = rng.integers(1, V, size=(N, T))
    return x, y, x != 0


def _model(seed=0):
    nb.utils.set_random_seed(seed)
    m = nb.Sequential([nb.layers.Embedding(V, 4, mask_zero=True),
                       nb.layers.SimpleRNN(7, return_sequences=True),
                       nb.layers.Dense(V)])
    m.compile(optimizer="adam", loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def test_mask_reaches_the_output_tensor():
    x, _, mask = _data()
    out = _model()(x)
    assert mask_of(out) is not None and np.array_equal(mask_of(out), mask)


def test_evaluate_ignores_targets_at_padded_positions():
    x, y, mask = _data()
    m = _model()
    base = m.evaluate(x, y)
    y2 = y.copy()
    y2[~mask] = (y2[~mask] + 3) % V                    # change only the padded targets
    assert m.evaluate(x, y2) == pytest.approx(base, rel=1e-6)
    y3 = y.copy()
    y3[0, 0] = (y3[0, 0] + 3) % V                      # change a real target: the loss moves
    assert m.evaluate(x, y3) != pytest.approx(base, rel=1e-6)


def test_masked_loss_is_the_mean_over_real_positions():
    x, y, mask = _data()
    m = _model()
    logits = m.predict(x).astype(np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    per = -np.take_along_axis(logp, y[..., None], -1)[..., 0]
    expected = per[mask].mean()
    assert m.evaluate(x, y, batch_size=N) == pytest.approx(expected, rel=1e-5)


def test_masked_sequence_loss_matches_keras(keras):
    x, y, _ = _data()
    m = _model()
    m(x)
    k = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, 4, mask_zero=True),
                          keras.layers.SimpleRNN(7, return_sequences=True), keras.layers.Dense(V)])
    k.set_weights(m.get_weights())
    k.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = k.evaluate(x, y, batch_size=N, verbose=0)
    assert m.evaluate(x, y, batch_size=N) == pytest.approx(expected, rel=1e-5)


def test_mask_travels_through_a_subclassed_model_and_a_standalone_chain():
    """The mask is kept by the layers, not by the Tensor: a subclassed model that calls its
    layers one by one, and layers called by hand, pass it on as Sequential does."""
    x, _, mask = _data()
    nb.utils.set_random_seed(1)
    emb, rnn = nb.layers.Embedding(V, 4, mask_zero=True), nb.layers.SimpleRNN(3, return_sequences=True)
    implicit = rnn(emb(x)).data
    explicit = rnn(emb(x), mask=emb.compute_mask(x)).data
    unmasked = rnn(emb(x), mask=np.ones_like(mask)).data
    assert np.array_equal(implicit, explicit)
    assert not np.allclose(implicit, unmasked)          # the mask changed the outputs at padded steps

    class Sub(nb.Model):
        def __init__(self):
            super().__init__()
            self.emb, self.dense = emb, nb.layers.Dense(V)

        def call(self, ids, training=False):
            return self.dense(self.emb(ids))

    out = Sub()(x)
    assert np.array_equal(mask_of(out), mask)
    assert mask_of(nb.layers.SimpleRNN(3)(emb(x))) is None    # (N, U): no time axis left to mask
