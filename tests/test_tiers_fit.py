"""``fit`` gives the same losses under both kernel tiers: a small CNN, two conv autoencoders, an RNN.

Each model is built from the same seed (the initializers do not depend on the
tier), trained a few epochs without shuffling under ``nb.kernels("fast")`` and
under ``nb.kernels("reference")``, and the per-epoch losses are compared.

The tolerance, from the rounding bounds of ``tests/bounds.py``: in one step
the two tiers compute every sum in their own order, so each result differs
by at most about ``SAFETY * K * eps * sum|terms|`` with K the longest inner
sum here (a 3x3 convolution over 8 channels, K = 72; the flattened Dense,
K = 64; the RNN's recurrence, K = 5 per step over T = 6 steps). Relative to
the value, ``sum|terms| / |value|`` (the condition number) multiplies it.
These differences flow into the weights through a few small optimizer steps
(learning rates <= 0.05 over at most 3 epochs x 4 batches), which carry a
perturbation forward without amplifying it by more than a small factor. So
the per-epoch loss differs by about 2 * 72 * eps * (condition number) * (growth):

* float64 (eps 2.2e-16): 3e-14 times conditioning and growth; the bound
  ``REL64 = 1e-9`` leaves a factor 3e4 for them, and any real disagreement
  (a wrong index, a lost term, a mis-routed max-pool gradient) moves a loss
  by 1e-3 or more.
* float32 (eps 1.2e-7): 2e-5 before conditioning; ``REL32 = 1e-4`` leaves a
  factor 5, enough for these well-conditioned small models over a few steps.

A ReLU or max-pool decision could flip between tiers only where a value lies
within rounding of the kink or of a tie; the ties that do occur (windows of
ReLU zeros) carry a zero gradient either way, since relu'(0) = 0 upstream.
"""
import numpy as np
import pytest

import numbanet as nb

REL64 = 1e-9
REL32 = 1e-4


def cnn(dtype):
    return nb.models.Sequential([
        nb.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1), dtype=dtype),
        nb.layers.MaxPooling2D(2, dtype=dtype),
        nb.layers.Conv2D(8, 2, activation="relu", dtype=dtype),
        nb.layers.Flatten(dtype=dtype),
        nb.layers.Dense(3, dtype=dtype),
    ])


def autoencoder_upsampling(dtype):
    return nb.models.Sequential([
        nb.layers.Conv2D(8, 3, activation="relu", padding="same", input_shape=(8, 8, 1), dtype=dtype),
        nb.layers.MaxPooling2D(2, padding="same", dtype=dtype),
        nb.layers.Conv2D(4, 3, activation="relu", padding="same", dtype=dtype),
        nb.layers.UpSampling2D(2, dtype=dtype),
        nb.layers.Conv2D(1, 3, activation="sigmoid", padding="same", dtype=dtype),
    ])


def autoencoder_transpose(dtype):
    return nb.models.Sequential([
        nb.layers.Conv2D(8, 3, strides=2, activation="relu", padding="same", input_shape=(8, 8, 1), dtype=dtype),
        nb.layers.Conv2DTranspose(4, 3, strides=2, activation="relu", padding="same", dtype=dtype),
        nb.layers.Conv2D(1, 3, activation="sigmoid", padding="same", dtype=dtype),
    ])


def rnn(dtype):
    return nb.models.Sequential([
        nb.layers.Embedding(10, 4, input_shape=(6,), dtype=dtype),
        nb.layers.SimpleRNN(5, dtype=dtype),
        nb.layers.Dense(2, dtype=dtype),
    ])


def data(kind, dtype, rng):
    if kind == "rnn":
        x = rng.integers(0, 10, (32, 6))
        return x, (x.sum(axis=1) % 2).astype(np.int64)
    x = rng.uniform(0, 1, (32, 8, 8, 1)).astype(dtype)
    if kind == "cnn":
        return x, rng.integers(0, 3, 32).astype(np.int64)
    return x, x  # an autoencoder reproduces its input


CASES = {
    "cnn": (cnn, "cnn", lambda: nb.optimizers.SGD(0.05, momentum=0.9),
            lambda: nb.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "autoencoder_upsampling": (autoencoder_upsampling, "ae", lambda: nb.optimizers.Adam(0.01),
                               lambda: nb.losses.BinaryCrossentropy()),
    "autoencoder_transpose": (autoencoder_transpose, "ae", lambda: nb.optimizers.Adadelta(1.0),
                              lambda: nb.losses.BinaryCrossentropy()),
    "rnn": (rnn, "rnn", lambda: nb.optimizers.Adam(0.01),
            lambda: nb.losses.SparseCategoricalCrossentropy(from_logits=True)),
}


def losses_under(tier, case, dtype):
    build, kind, optimizer, loss = CASES[case]
    x, y = data(kind, dtype, np.random.default_rng(7))
    with nb.kernels(tier):
        nb.utils.set_random_seed(3)
        model = build(dtype)
        model.compile(optimizer=optimizer(), loss=loss())
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return np.array(history.history["loss"], dtype=np.float64)


@pytest.mark.parametrize("dtype, rel", [("float64", REL64), ("float32", REL32)])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_losses_agree_between_tiers(case, dtype, rel):
    fast = losses_under("fast", case, dtype)
    reference = losses_under("reference", case, dtype)
    assert fast.shape == (3,) and np.all(np.isfinite(fast))
    assert fast[-1] < fast[0], f"{case}: the loss should fall over 3 epochs, got {fast}"  # it trained
    np.testing.assert_allclose(reference, fast, rtol=rel, atol=0,
                               err_msg=f"{case} ({dtype}): per-epoch losses, reference vs fast tier")
