"""numbanet demo batchnorm: at a tiny size, both runs train, and the pictures hold both runs' curves
and histograms of activations that a NumPy forward pass of the trained weights reproduces."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

import numbanet as nb  # noqa: E402
from numbanet import cli  # noqa: E402
from numbanet.demos import batchnorm as lab  # noqa: E402

from bounds import LIBM_ULP, elementwise_bound, matmul_bound  # noqa: E402

TINY = ["--layers", "3", "--units", "8", "--epochs", "2", "--samples", "200", "--verbose", "0"]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return lab.main(TINY + ["--out", str(tmp_path_factory.mktemp("bn"))])


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _numpy_activations(model, x):
    """Each hidden sigmoid's output, from the model's weights in NumPy (float64), and a bound on its
    distance from the float32 model's: the float32 rounding of each layer's sum, carried forward."""
    outs, bounds, h, e = [], [], x.astype(np.float64), np.zeros(x.shape)
    layers = model.layers
    i = 0
    while i < len(layers) - 1:
        dense = layers[i]
        W = dense.kernel.data.astype(np.float64)
        z = h @ W
        ez = matmul_bound(h, W, eps=np.finfo(np.float32).eps) + e @ np.abs(W)
        if dense.bias is not None:
            z = z + dense.bias.data
        if isinstance(layers[i + 1], nb.layers.BatchNormalization):     # inference: the moving statistics
            bn = layers[i + 1]
            mm, mv, gamma, beta = (bn.moving_mean.data.astype(np.float64), bn.moving_variance.data.astype(np.float64),
                                   bn.gamma.data.astype(np.float64), bn.beta.data.astype(np.float64))
            k = gamma / np.sqrt(mv + bn.epsilon)
            z = (z - mm) * k + beta
            ez = ez * np.abs(k) + 16 * np.finfo(np.float32).eps * (np.abs(z) + np.abs(k * mm) + np.abs(beta))
            i += 3
        else:
            i += 1
        h = _sigmoid(z)
        e = ez / 4 + elementwise_bound(np.abs(h) + 1, LIBM_ULP + 3, np.finfo(np.float32).eps)  # sigmoid' <= 1/4
        outs.append(h)
        bounds.append(e)
    return outs, bounds


def test_both_networks_start_from_the_same_kernels():
    nb.utils.set_random_seed(0)
    plain, with_bn = lab.build_models(nb, 3, 5, "sigmoid", 4, 2)
    dense_plain = [layer for layer in plain.layers if isinstance(layer, nb.layers.Dense)]
    dense_bn = [layer for layer in with_bn.layers if isinstance(layer, nb.layers.Dense)]
    assert len(dense_plain) == len(dense_bn) == 4
    for a, b in zip(dense_plain, dense_bn):
        np.testing.assert_array_equal(a.kernel.data, b.kernel.data)
    assert sum(isinstance(layer, nb.layers.BatchNormalization) for layer in with_bn.layers) == 3
    assert all(layer.bias is None for layer in dense_bn[:-1])


def test_demo_trains_both_runs_and_writes_its_pictures(result):
    runs = result["runs"]
    assert [r.label for r in runs] == list(lab.RUNS)
    for path in result["paths"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for run in runs:
        assert len(run.history["loss"]) == 2 and np.all(np.isfinite(run.history["loss"]))
    bn_layers = [layer for layer in runs[1].model.layers if isinstance(layer, nb.layers.BatchNormalization)]
    assert len(bn_layers) == 3 and all(np.any(b.moving_mean.data != 0) for b in bn_layers)   # fit trained them


def test_loss_picture_holds_both_runs_curves(result):
    fig, runs = result["figures"][0], result["runs"]
    panels = {ax.get_gid(): ax for ax in fig.axes}
    assert set(panels) == {f"loss/{r.label}" for r in runs}
    for run in runs:
        lines = {line.get_label(): line for line in panels[f"loss/{run.label}"].get_lines()}
        for key in ("loss", "val_loss"):
            np.testing.assert_array_equal(lines[key].get_xdata(), [1, 2])
            np.testing.assert_array_equal(lines[key].get_ydata(), run.history[key])
    a, b = fig.axes
    assert a.get_ylim() == b.get_ylim()                    # the same scale side by side


def test_activation_histograms_are_the_trained_networks_activations(result):
    fig, runs = result["figures"][1], result["runs"]
    x, y = nb.data.load_digits()
    x = x.reshape(len(x), -1)[:200]
    _, x_val, _, _ = nb.data.train_test_split(x, y[:200], test_size=0.2, seed=0)
    edges = np.linspace(0, 1, lab.BINS + 1)
    panels = {ax.get_gid(): ax for ax in fig.axes}
    assert len(panels) == 2 * 3
    for run in runs:
        expected, bounds = _numpy_activations(run.model, x_val)
        assert len(run.activations) == len(expected) == 3
        for layer, (h, ref, bound) in enumerate(zip(run.activations, expected, bounds), start=1):
            assert np.all(np.abs(h - ref) <= bound), (run.label, layer)
            heights = [p.get_height() for p in panels[f"hist/{run.label}/{layer}"].patches]
            counts = np.histogram(h.ravel(), bins=edges)[0]
            np.testing.assert_array_equal(heights, counts)
            assert sum(heights) == h.size


def test_cli_runs_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBANET_KEEP_BLAS", "1")              # no restart onto other BLAS kernels
    monkeypatch.setattr(nb.utils, "set_num_threads", lambda *a: 1)   # the process's thread count stays
    monkeypatch.setattr(nb.utils, "tune_malloc", lambda *a: None)
    assert "batchnorm" in cli.DEMOS
    assert cli.main(["demo", "batchnorm"] + TINY + ["--epochs", "1", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batchnorm_activations.png", "batchnorm_loss.png"]


@pytest.mark.parametrize("bad", [["--layers", "0"], ["--samples", "3"], ["--learning-rate", "0"]])
def test_bad_options_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as done:
        lab.main(bad)
    assert done.value.code == 2
    assert bad[0] in capsys.readouterr().err
