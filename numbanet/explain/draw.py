"""The atlas's panels, drawn on a ``matplotlib.figure.Figure`` (no pyplot: a notebook's backend is left alone).

Each panel function draws on one Axes and gives it a label (``ax.get_label()``:
"padded input", "windows", "output", "im2col", "overlap", "formula", ...), so a
test or a reader can find a panel and read back what it shows. Grid cell (r, c)
is centred on the point (c, r), row 0 at the top, as ``imshow`` places it.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .geometry import GRID_CODES

# cell colours of the padded grid, by code: input, top, bottom, left, right, stuffed zero
GRID_COLOURS = ["#ffffff", "#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#d9d9d9"]
PAD_GREY = "#bdbdbd"
MAX_TEXT_CELLS = 400          # write numbers into a grid or matrix only up to this many cells


def new_figure(rows, cols, width=4.2, height=4.0):
    """A Figure and its (rows x cols) GridSpec."""
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, fig.add_gridspec(rows, cols)


def palette(n, names=("tab10", "tab20"), spread="turbo"):
    """n distinct RGB colours (n, 3): the first qualitative map in ``names`` with n colours, else
    n evenly spaced colours of the map ``spread``."""
    for name in names:
        colours = colormaps[name].colors
        if n <= len(colours):
            return np.array(colours[:n])[:, :3]
    return colormaps[spread](np.linspace(0.05, 0.95, n))[:, :3]


def tap_palette(n):
    """Colours of the kernel taps, apart from the output cells' (``palette``)."""
    return palette(n, ("Dark2", "tab20b"), "viridis")


def lighten(rgb, amount=0.55):
    """Blend colours toward white by ``amount`` (0 unchanged, 1 white)."""
    return np.asarray(rgb) * (1 - amount) + amount


def _cells(ax, rows, cols):
    """Thin cell borders, no ticks, plain labels."""
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="#636363", linewidth=0.4)
    ax.tick_params(which="both", length=0)
    ax.set_xticks([])
    ax.set_yticks([])


def _write(ax, values, fmt="{}", size=7, mask=None):
    """Write values[r, c] into each cell (skipped where ``mask`` is False, or when the grid is large)."""
    rows, cols = values.shape
    if rows * cols > MAX_TEXT_CELLS:
        return
    for r in range(rows):
        for c in range(cols):
            if mask is None or mask[r, c]:
                ax.text(c, r, fmt.format(values[r, c]), ha="center", va="center", fontsize=size)


def grid_panel(ax, grid, numbers=None, title="", alpha=1.0):
    """The padded grid: cells coloured by code (GRID_COLOURS), a legend with the cells per side.

    grid (HP, WP) of codes; numbers (HP, WP) written into the input cells (0 elsewhere).
    """
    ax.imshow(grid, cmap=ListedColormap(GRID_COLOURS), vmin=-0.5, vmax=len(GRID_COLOURS) - 0.5,
              interpolation="nearest", alpha=alpha)
    _cells(ax, *grid.shape)
    if numbers is not None:
        _write(ax, numbers, mask=grid == 0)
    handles = [Patch(facecolor=GRID_COLOURS[code], edgecolor="#636363", label=f"{name} ({int(np.sum(grid == code))})")
               for code, name in GRID_CODES.items() if np.any(grid == code)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
              title="cells", title_fontsize=7)
    ax.set_title(title, fontsize=9)


def windows_panel(ax, grid, corners, kernel, colours, title=""):
    """Each output cell's window as an outline in that cell's colour, inset a little per window.

    corners (OH, OW, 2) top-left grid cells; kernel (KH, KW); colours (OH*OW, 3).
    Each outline is a Rectangle with gid "window oh,ow".
    """
    ax.imshow(grid, cmap=ListedColormap(GRID_COLOURS), vmin=-0.5, vmax=len(GRID_COLOURS) - 0.5,
              interpolation="nearest", alpha=0.6)
    _cells(ax, *grid.shape)
    OH, OW = corners.shape[:2]
    KH, KW = kernel
    for r in range(OH * OW):
        oh, ow = divmod(r, OW)
        top, left = corners[oh, ow]
        d = 0.05 + 0.07 * (r % 4)                      # inset: overlapping outlines stay apart
        ax.add_patch(Rectangle((left - 0.5 + d, top - 0.5 + d), KW - 2 * d, KH - 2 * d, fill=False,
                               edgecolor=colours[r], linewidth=1.6, gid=f"window {oh},{ow}"))
    ax.set_title(title, fontsize=9)


def output_panel(ax, colours, out_hw, numbers=None, title=""):
    """The output grid (OH, OW), each cell in its own colour (the colour of its window and im2col row)."""
    OH, OW = out_hw
    ax.imshow(lighten(colours.reshape(OH, OW, 3), 0.35), interpolation="nearest")
    _cells(ax, OH, OW)
    _write(ax, np.arange(OH * OW).reshape(OH, OW) if numbers is None else numbers,
           fmt="r{}" if numbers is None else "{}")
    ax.set_title(title, fontsize=9)


def im2col_panel(ax, matrix, row_colours, tap_colours, C, title=""):
    """The im2col matrix (R, KH*KW*C): entries tinted by kernel tap, padding grey, a row strip by output cell.

    matrix holds 1-based input indices, 0 for padding. Column k belongs to tap k // C.
    The row strip is one Rectangle per row (gid "row r", left of column 0); the tap
    strip one per column (gid "tap t", above row 0).
    """
    R, K = matrix.shape
    taps = np.arange(K) // C
    image = np.empty((R, K, 3))
    image[:] = lighten(tap_colours[taps], 0.55)[None, :, :]
    image[matrix == 0] = to_rgb(PAD_GREY)
    ax.imshow(image, interpolation="nearest", aspect="auto")
    for r in range(R):
        ax.add_patch(Rectangle((-1.6, r - 0.5), 1.0, 1.0, facecolor=row_colours[r], edgecolor="none", gid=f"row {r}"))
        if R <= 40:
            ax.text(-1.1, r, f"r{r}", ha="center", va="center", fontsize=6)
    for k in range(K):
        ax.add_patch(Rectangle((k - 0.5, -1.6), 1.0, 1.0, facecolor=tap_colours[taps[k]], edgecolor="none",
                               gid=f"tap {taps[k]}"))
    _write(ax, matrix, size=6, mask=matrix != 0)
    ax.set_xlim(-1.7, K - 0.5)
    ax.set_ylim(R - 0.5, -1.7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{K} columns: kernel taps (i, j){'' if C == 1 else f' x {C} channels'}, coloured by tap",
                  fontsize=8)
    ax.set_ylabel(f"{R} rows: output cells, coloured as in the output", fontsize=8)
    ax.set_title(title, fontsize=9)


def counts_panel(ax, counts, title=""):
    """A grid of integers (how many windows reach each cell), shaded by count, numbers written in."""
    ax.imshow(counts, cmap="Purples", vmin=0, vmax=max(int(counts.max()), 1) * 1.6, interpolation="nearest")
    _cells(ax, *counts.shape)
    _write(ax, counts)
    ax.set_title(title, fontsize=9)


def matrix_panel(ax, A, title="", xlabel="", ylabel=""):
    """A weight matrix as a heat map with its non-zero weights written in (upsampling)."""
    ax.imshow(A, cmap="Greens", vmin=0, vmax=1.4, interpolation="nearest", aspect="auto")
    _cells(ax, *A.shape)
    _write(ax, A, fmt="{:.2g}", size=6, mask=A != 0)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)


def rgb_panel(ax, image, numbers=None, title=""):
    """An (H, W, 3) image of cell colours with optional numbers."""
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    _cells(ax, *image.shape[:2])
    if numbers is not None:
        _write(ax, numbers)
    ax.set_title(title, fontsize=9)


def text_panel(ax, text, title=""):
    """The formula, numbers put in, in a fixed-width font."""
    ax.axis("off")
    ax.text(0.0, 1.0, text, ha="left", va="top", family="monospace", fontsize=7.5, transform=ax.transAxes,
            wrap=True)
    ax.set_title(title, fontsize=9, loc="left")


def labelled(fig, spec, label):
    ax = fig.add_subplot(spec)
    ax.set_label(label)
    return ax
