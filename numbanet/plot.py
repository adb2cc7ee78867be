"""Pictures: every function builds a ``matplotlib.figure.Figure``, returns it, and writes a PNG when given a path.

* ``plot_history``: loss and metric curves from a ``History`` (train and val_ on one axis each),
  optionally with the test figures and the best epoch that EarlyStopping restored;
* ``image_grid``: a grid of images with optional titles (predictions);
* ``plot_filters``: the kernels of a first convolution, one small image per filter;
* ``plot_feature_maps``: the channels of one layer's output for one image;
* ``plot_fit`` / ``plot_history_and_fit``: data with a fitted curve (and the loss curves).

The figures are made with matplotlib's object-oriented API (``Figure``, ``fig.add_subplot``,
``fig.savefig``), never through ``pyplot``: nothing here chooses or changes matplotlib's backend,
so a notebook that imports numbanet keeps its own, and ``Figure.savefig`` writes a PNG without
one. In a notebook, a returned Figure as the last expression of a cell is displayed inline.
Tick labels are plain numbers (``0.3``, ``20``), never ``3x10^-1`` nor an offset.
"""
from __future__ import annotations

import os

import numpy as np


# ---------------------------------------------------------------------- helpers
def new_figure(figsize):
    """A ``matplotlib.figure.Figure`` of ``figsize`` inches, not registered with pyplot (no backend involved)."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize)


def save_figure(fig, path=None):
    """Write ``fig`` to ``path`` (PNG, folders created) when a path is given; return ``fig``."""
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def plain_number(x, digits=6):
    """``x`` written out in positional notation with up to ``digits`` significant digits: 0.0003, 20, 1.5."""
    return np.format_float_positional(float(x), precision=digits, unique=False, fractional=False, trim="-")


def _plain_log_formatter(**kwargs):
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        """Labels the ticks that matplotlib's LogFormatter labels, as plain numbers (0.3, not 3x10^-1)."""

        def __call__(self, x, pos=None):
            return plain_number(x) if super().__call__(x, pos) else ""

    return PlainLogFormatter(**kwargs)


def plain_tick_labels(ax):
    """Plain-number tick labels on both axes of ``ax``: no offset, no scientific notation.

    A linear axis gets a ``ScalarFormatter`` without offset or exponent; a log axis
    gets a formatter that labels the same ticks matplotlib would (the decades, and
    the 2, 3, 5 ... in between when the axis spans about a decade or less) but
    writes each value positionally: ``0.3``, ``20``.
    """
    from matplotlib.ticker import ScalarFormatter
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(_plain_log_formatter(labelOnlyBase=False))
            axis.set_minor_formatter(_plain_log_formatter(labelOnlyBase=False))
        elif axis.get_scale() == "linear":
            formatter = ScalarFormatter(useOffset=False)
            formatter.set_scientific(False)
            axis.set_major_formatter(formatter)
    return ax


def restored_epoch(callbacks):
    """The 1-based epoch whose weights an ``EarlyStopping(restore_best_weights=True)`` put back, else None.

    ``callbacks`` is one callback or a list of them (as given to ``fit``); the first
    EarlyStopping that restored weights at the end of training is read.
    """
    from .models.callbacks import EarlyStopping
    for cb in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        if isinstance(cb, EarlyStopping) and cb.restore_best_weights and getattr(cb, "best_weights", None) is not None:
            return cb.best_epoch + 1
    return None


# --------------------------------------------------------------------- pictures
def plot_history(history, path=None, title=None, keys=None, test=None, best_epoch=None, notes=None):
    """Curves of every figure in ``history`` (a History or its dict), train and val_ together.

    One panel per name in ``keys`` (default: every key without the ``val_`` prefix);
    epochs run 1..E on the x axis. A positive loss is drawn on a log axis.

    ``test``: a dict {name: value} measured after training (e.g. ``{"accuracy": 0.967}``);
    each is drawn as a dashed horizontal line labelled "test NAME VALUE" in the panel of
    that name. ``best_epoch``: the 1-based epoch whose weights were restored (see
    ``restored_epoch``); every panel marks it with a vertical dotted line labelled
    "restored best epoch N" in the legend and a black dot on each curve at that epoch.
    ``notes``: lines of text added to the first panel's legend (e.g. a figure that has no
    curve of its own).
    Returns the Figure; writes it to ``path`` when given.
    """
    from matplotlib.ticker import MaxNLocator
    hist = getattr(history, "history", history)
    names = list(keys or [k for k in hist if not k.startswith("val_")])
    test = dict(test or {})
    fig = new_figure((5 * len(names), 3.6))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        epochs = np.arange(1, len(hist[name]) + 1)
        curves = [name] + (["val_" + name] if "val_" + name in hist else [])
        for curve in curves:
            ax.plot(epochs, hist[curve], label=curve)
        if name in test:
            value = float(test[name])
            ax.axhline(value, color="black", ls="--", lw=1, label=f"test {name} {value:.4g}")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls=":", lw=1, label=f"restored best epoch {best_epoch}")
            for curve in curves:
                ax.plot([best_epoch], [hist[curve][best_epoch - 1]], "o", color="black", ms=5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))      # whole epochs only
        values = [v for curve in curves for v in hist[curve]] + ([test[name]] if name in test else [])
        if name == "loss" and min(values) > 0:
            ax.set_yscale("log")
        plain_tick_labels(ax)
        for note in (notes or []) if i == 0 else []:
            ax.plot([], [], " ", label=note)        # a legend line without a mark
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def image_grid(images, path=None, titles=None, cols=10, cmap="gray", title=None):
    """Images (N, H, W) or (N, H, W, C) in a grid, each with an optional title. Returns the Figure."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n = len(images)
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig = new_figure((1.3 * cols, 1.45 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_filters(kernel, path=None, title="first-layer filters"):
    """Convolution kernel (KH, KW, C, F): one image per filter (channels averaged). Returns the Figure."""
    k = np.asarray(kernel).mean(axis=2)           # (KH, KW, C, F) -> (KH, KW, F)
    return image_grid(np.moveaxis(k, -1, 0), path, titles=[f"f{i}" for i in range(k.shape[-1])],
                      cols=8, cmap="viridis", title=title)


def plot_feature_maps(maps, path=None, title="feature maps"):
    """One image's activations (H, W, C) or (1, H, W, C): one panel per channel. Returns the Figure."""
    m = np.asarray(maps)
    if m.ndim == 4:
        m = m[0]
    return image_grid(np.moveaxis(m, -1, 0), path, titles=[f"c{i}" for i in range(m.shape[-1])],
                      cols=8, cmap="viridis", title=title)


def _draw_fit(ax, x, y, y_fit):
    ax.plot(x, y, "o", ms=3, label="data")
    ax.plot(x, y_fit, "-", lw=2, label="model")
    ax.legend()
    ax.grid(alpha=0.3)
    plain_tick_labels(ax)


def plot_fit(x, y, y_fit, path=None, title="fit"):
    """Data points (x, y) and a fitted curve (x, y_fit), each (N,) or (N, 1). Returns the Figure."""
    fig = new_figure((6, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    _draw_fit(ax, x, y, y_fit)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_history_and_fit(history, x, y, y_fit, path=None, title=None):
    """Two panels: loss / val_loss per epoch (log axis), and the data with the fitted curve. Returns the Figure."""
    hist = getattr(history, "history", history)
    fig = new_figure((11, 3.8))
    a, b = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs = np.arange(1, len(hist["loss"]) + 1)
    a.plot(epochs, hist["loss"], label="loss")
    if "val_loss" in hist:
        a.plot(epochs, hist["val_loss"], label="val_loss")
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    a.grid(alpha=0.3)
    plain_tick_labels(a)
    _draw_fit(b, x, y, y_fit)
    b.set_xlabel("x")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
