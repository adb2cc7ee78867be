"""Pictures, written headless (matplotlib's Agg backend) as PNG files.

* ``plot_history``: loss and metric curves from a ``History`` (train and val_ on one axis each);
* ``image_grid``: a grid of images with optional titles (predictions);
* ``plot_filters``: the kernels of a first convolution, one small image per filter;
* ``plot_feature_maps``: the channels of one layer's output for one image.
"""
from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_history(history, path, title=None, keys=None):
    """Curves of every figure in ``history`` (a History or its dict), train and val_ together."""
    hist = getattr(history, "history", history)
    names = keys or [k for k in hist if not k.startswith("val_")]
    plt = _plt()
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(hist[name]) + 1)
        ax.plot(epochs, hist[name], label=name)
        if "val_" + name in hist:
            ax.plot(epochs, hist["val_" + name], label="val_" + name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if name == "loss" and min(hist[name]) > 0:
            ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def image_grid(images, path, titles=None, cols=10, cmap="gray", title=None):
    """Images (N, H, W) or (N, H, W, C) in a grid, each with an optional title."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n = len(images)
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_filters(kernel, path, title="first-layer filters"):
    """Convolution kernel (KH, KW, C, F): one image per filter (channels averaged)."""
    k = np.asarray(kernel).mean(axis=2)           # (KH, KW, C, F) -> (KH, KW, F)
    return image_grid(np.moveaxis(k, -1, 0), path, titles=[f"f{i}" for i in range(k.shape[-1])],
                      cols=8, cmap="viridis", title=title)


def plot_feature_maps(maps, path, title="feature maps"):
    """One image's activations (H, W, C) or (1, H, W, C): one panel per channel."""
    m = np.asarray(maps)
    if m.ndim == 4:
        m = m[0]
    return image_grid(np.moveaxis(m, -1, 0), path, titles=[f"c{i}" for i in range(m.shape[-1])],
                      cols=8, cmap="viridis", title=title)


def plot_fit(x, y, y_fit, path, title="fit"):
    """Data points and a fitted curve."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(x, y, "o", ms=3, label="data")
    ax.plot(x, y_fit, "-", lw=2, label="model")
    ax.legend()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_history_and_fit(history, x, y, y_fit, path, title=None):
    """Two panels: loss / val_loss per epoch, and the data with the fitted curve."""
    hist = getattr(history, "history", history)
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = np.arange(1, len(hist["loss"]) + 1)
    a.plot(epochs, hist["loss"], label="loss")
    if "val_loss" in hist:
        a.plot(epochs, hist["val_loss"], label="val_loss")
    a.set_yscale("log")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    a.grid(alpha=0.3)
    b.plot(x, y, "o", ms=3, label="data")
    b.plot(x, y_fit, "-", lw=2, label="model")
    b.set_xlabel("x")
    b.legend()
    b.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
