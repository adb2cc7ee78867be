"""numbanet.plot: Figures returned, the backend never touched, plain tick labels, curves with what they claim."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import numbanet as nb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HISTORY = {"loss": [2.0, 1.5, 1.2, 1.1, 1.15], "val_loss": [2.2, 1.7, 1.3, 1.35, 1.4],
           "accuracy": [0.5, 0.6, 0.7, 0.75, 0.74], "val_accuracy": [0.4, 0.55, 0.72, 0.7, 0.69]}


def _tick_texts(fig):
    """Every visible tick label of every axis of ``fig``, major and minor, after a draw."""
    FigureCanvasAgg(fig).draw()            # a canvas for this figure alone: no backend is chosen
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if tick.label1.get_visible() and tick.label1.get_text():
                    texts.append((axis, tick.get_loc(), tick.label1.get_text()))
    return texts


def _all_functions(tmp_path=None):
    """Each plotting function called once; {name: (Figure, path or None)}."""
    p = (lambda name: None) if tmp_path is None else (lambda name: str(tmp_path / "sub" / f"{name}.png"))
    x = np.linspace(0, 1, 20)
    rng = np.random.default_rng(0)
    return {
        "plot_history": nb.plot.plot_history(HISTORY, p("history")),
        "image_grid": nb.plot.image_grid(rng.random((3, 4, 4)), p("grid"), titles=["a", "b", "c"]),
        "plot_filters": nb.plot.plot_filters(rng.random((3, 3, 2, 4)), p("filters")),
        "plot_feature_maps": nb.plot.plot_feature_maps(rng.random((1, 5, 5, 3)), p("maps")),
        "plot_fit": nb.plot.plot_fit(x, np.sin(x), np.sin(x) + 0.1, p("fit")),
        "plot_history_and_fit": nb.plot.plot_history_and_fit(HISTORY, x, np.sin(x), np.sin(x), p("both")),
    }


def test_every_function_returns_a_figure_and_writes_a_png_only_when_given_a_path(tmp_path):
    figs = _all_functions()
    assert all(isinstance(f, Figure) for f in figs.values()), figs
    assert not any(tmp_path.iterdir())
    figs = _all_functions(tmp_path)
    assert all(isinstance(f, Figure) for f in figs.values())
    written = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert written == sorted(["history.png", "grid.png", "filters.png", "maps.png", "fit.png", "both.png"])
    for p in (tmp_path / "sub").iterdir():
        assert p.read_bytes()[:8] == PNG_MAGIC


SCRIPT = r"""
import sys, matplotlib
matplotlib.use("svg")
import numpy as np
import numbanet as nb
hist = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.2, 2.5, 2.0]}
out = sys.argv[1]
nb.plot.plot_history(hist, out + "/a.png", test={"loss": 1.8}, best_epoch=2)
nb.plot.image_grid(np.zeros((2, 3, 3)), out + "/b.png")
nb.plot.plot_history_and_fit(hist, [0, 1], [0, 1], [0, 1], out + "/c.png")
print("backend", matplotlib.get_backend(), "pyplot" if "matplotlib.pyplot" in sys.modules else "no-pyplot")
import matplotlib.pyplot as plt          # a notebook that uses pyplot as well
plt.plot([1, 2])
nb.plot.plot_fit([0, 1], [0, 1], [0, 1], out + "/d.png")
print("backend", matplotlib.get_backend(), "figures", len(plt.get_fignums()))
"""


def test_plotting_keeps_the_backend_of_the_running_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "backend svg no-pyplot"           # importing numbanet and plotting: svg kept, no pyplot
    assert lines[-1] == "backend svg figures 1"           # with pyplot in use: still svg, our figures not in pyplot
    for name in "abcd":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC


def test_numbanet_source_never_selects_a_backend_nor_imports_pyplot():
    for path in (ROOT / "numbanet").rglob("*.py"):
        text = path.read_text()
        for call in ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot", "plt."):
            assert call not in text, (path, call)


@pytest.mark.parametrize("losses", [[4.0, 3.0, 2.5, 2.2, 2.0],           # within one decade: minor ticks labelled
                                    [0.5, 0.3, 0.2, 0.15, 0.12],
                                    [100.0, 3.0, 0.5, 0.02, 0.001]])     # five decades: only the decades
def test_log_loss_axis_tick_labels_are_plain_numbers(losses):
    fig = nb.plot.plot_history({"loss": losses})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    texts = [(loc, text) for axis, loc, text in _tick_texts(fig) if axis is ax.yaxis]
    assert len(texts) >= 2, texts
    for loc, text in texts:
        assert "times" not in text and "^" not in text and "$" not in text and "e" not in text.lower(), text
        assert float(text.replace("\N{MINUS SIGN}", "-")) == pytest.approx(loc, rel=1e-5), (loc, text)
    # the control: matplotlib's own log formatter writes these ticks in scientific notation
    from matplotlib.ticker import LogFormatterSciNotation
    ax.yaxis.set_major_formatter(LogFormatterSciNotation())
    ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    default = [text for axis, _, text in _tick_texts(fig) if axis is ax.yaxis]
    assert any("10^" in t for t in default), default


def test_linear_axes_have_no_offset_nor_exponent():
    x = np.linspace(4.0001, 4.0009, 9)                      # would get a "+4" offset by default
    fig = nb.plot.plot_fit(x, x * 1e6, x * 1e6)              # and a "1e6" exponent
    texts = _tick_texts(fig)
    assert texts
    for axis, loc, text in texts:
        assert float(text.replace("\N{MINUS SIGN}", "-")) == pytest.approx(loc, rel=1e-9, abs=1e-12), (loc, text)
    ax = fig.axes[0]
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""


def test_plain_number():
    assert [nb.plot.plain_number(v) for v in (0.3, 20.0, 1e-5, 123456.0, 0.30000000000000004)] == \
        ["0.3", "20", "0.00001", "123456", "0.3"]
    assert nb.plot.plain_number(0.000123456, 3) == "0.000123"


def _lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_history_curves_test_figures_and_the_restored_epoch():
    fig = nb.plot.plot_history(HISTORY, test={"accuracy": 0.7333, "loss": 1.25}, best_epoch=4,
                               notes=["held-out accuracy 0.5"])
    loss_ax, acc_ax = fig.axes
    epochs = [1, 2, 3, 4, 5]
    for ax, name, test in ((loss_ax, "loss", 1.25), (acc_ax, "accuracy", 0.7333)):
        lines = _lines_by_label(ax)
        for curve in (name, "val_" + name):
            np.testing.assert_array_equal(lines[curve].get_xdata(), epochs)
            np.testing.assert_array_equal(lines[curve].get_ydata(), HISTORY[curve])
        test_line = lines[f"test {name} {test:.4g}"]
        np.testing.assert_array_equal(test_line.get_ydata(), [test, test])       # a horizontal line at the value
        best = lines["restored best epoch 4"]
        np.testing.assert_array_equal(best.get_xdata(), [4, 4])                  # a vertical line at epoch 4
        dots = sorted(float(l.get_ydata()[0]) for l in ax.get_lines() if l.get_marker() == "o")
        assert dots == sorted([HISTORY[name][3], HISTORY["val_" + name][3]])     # a dot on each curve at epoch 4
        assert all(l.get_xdata()[0] == 4 for l in ax.get_lines() if l.get_marker() == "o")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"test {name} {test:.4g}" in legend and "restored best epoch 4" in legend
    assert "held-out accuracy 0.5" in [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert "held-out accuracy 0.5" not in [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert loss_ax.get_yscale() == "log" and acc_ax.get_yscale() == "linear"


def test_image_grid_and_filters_show_the_arrays():
    rng = np.random.default_rng(1)
    images = rng.random((5, 6, 6, 1))
    fig = nb.plot.image_grid(images, titles=list("abcde"), cols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5
    for i, ax in enumerate(shown):
        np.testing.assert_array_equal(ax.images[0].get_array(), images[i, :, :, 0])
        assert ax.get_title() == "abcde"[i]
    kernel = rng.random((3, 3, 2, 4))                            # (KH, KW, C, F)
    fig = nb.plot.plot_filters(kernel)
    for f, ax in enumerate(a for a in fig.axes if a.images):
        expected = (kernel[:, :, 0, f] + kernel[:, :, 1, f]) / 2  # the filter's channels averaged
        np.testing.assert_allclose(ax.images[0].get_array(), expected, rtol=0, atol=4 * np.finfo(float).eps)


def test_restored_epoch_reads_early_stopping():
    nb.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((40, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    model = nb.Sequential([nb.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=nb.optimizers.SGD(0.05), loss="mse")
    keep = nb.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    plain = nb.callbacks.EarlyStopping(patience=2)
    assert nb.plot.restored_epoch([keep, plain]) is None                  # not trained yet
    history = model.fit(x, y, epochs=6, validation_split=0.25, verbose=0, callbacks=[plain, keep])
    val = history.history["val_loss"]
    assert nb.plot.restored_epoch([plain, keep]) == int(np.argmin(val)) + 1
    assert nb.plot.restored_epoch(keep) == int(np.argmin(val)) + 1
    assert nb.plot.restored_epoch(plain) is None                           # it restores nothing
