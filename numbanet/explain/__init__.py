"""The convolution atlas: pictures of where every number of a convolution, pooling or upsampling goes.

    import numbanet as nb
    fig, ex = nb.explain.conv2d((5, 5), kernel_size=3, strides=2, padding="same", path="conv.png")
    ex.pads        # {'top': 1, 'bottom': 1, 'left': 1, 'right': 1}
    ex.output_shape, ex.im2col.shape, ex.overlap

Each function prints the Keras output-size formula with the numbers put in,
draws a ``matplotlib.figure.Figure`` (written as a PNG when ``path`` is given)
and returns ``(figure, Explanation)``; the Explanation holds the numbers drawn
(``geometry.Explanation``). ``input_shape`` is (H, W) or (H, W, C) (C = 1 by
default; C > 1 widens the im2col matrix to KH*KW*C columns). Sizes and pads
come from the engine's own rules, the im2col matrix and the window counts from
``nb.functional.im2col`` / ``col2im``. Command line:
``numbanet explain conv2d --input 5x5 --kernel 3 --strides 2 --padding same``.
"""
from __future__ import annotations

import os

import numpy as np

from ..engine import functional as F
from ..engine import no_grad
from ..engine.conv_shapes import pair
from . import draw
from .geometry import Explanation, conv_like, index_image, padded_grid, stuff_and_pad, window_corners
from .geometry import bilinear_weights, nearest_weights, transpose_formula, transpose_numbers

__all__ = ["conv2d", "conv2d_transpose", "max_pool2d", "upsampling2d", "Explanation"]


def _input_hwc(input_shape, owner):
    """(H, W, C) from an int, (H, W) or (H, W, C); ValueError otherwise."""
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape, input_shape)
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (2, 3) or not all(isinstance(d, (int, np.integer)) and not
                                                             isinstance(d, bool) for d in shape):
        raise ValueError(f"{owner}: input_shape must be an int, (H, W) or (H, W, C) of ints (no batch axis), "
                         f"got {input_shape!r}")
    if min(shape) < 1:
        raise ValueError(f"{owner}: every size of input_shape must be >= 1, got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]) if len(shape) == 3 else 1)


def _finish(fig, ex, path, verbose):
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=110)
        ex.path = str(path)
    if verbose:
        print(ex.formula)
        if ex.path:
            print(f"wrote {ex.path}")
    return fig, ex


def _conv_figure(ex, title, pad_note):
    """Padded input | windows | output;  im2col | window counts;  formula."""
    H, W, C = ex.input_shape
    OH, OW = ex.output_shape
    fig, gs = draw.new_figure(3, 3)
    gs.set_height_ratios([1.0, 1.0, 0.4])
    out_colours = draw.palette(OH * OW)
    tap_colours = draw.tap_palette(ex.kernel[0] * ex.kernel[1])
    numbers = np.zeros(ex.grid.shape, dtype=np.int64)
    PT, PL = ex.pads["top"], ex.pads["left"]
    numbers[PT:PT + H, PL:PL + W] = np.arange(1, H * W + 1).reshape(H, W)
    draw.grid_panel(draw.labelled(fig, gs[0, 0], "padded input"), ex.grid, numbers,
                    f"input {H}x{W}, padded: top {PT}, bottom {ex.pads['bottom']}, left {PL}, "
                    f"right {ex.pads['right']}{pad_note}")
    draw.windows_panel(draw.labelled(fig, gs[0, 1], "windows"), ex.grid, ex.windows, ex.kernel, out_colours,
                       f"the {OH * OW} windows: {ex.kernel[0]}x{ex.kernel[1]}, strides {ex.strides}")
    draw.output_panel(draw.labelled(fig, gs[0, 2], "output"), out_colours, (OH, OW),
                      title=f"output {OH}x{OW}: cell r reads window r = im2col row r")
    draw.im2col_panel(draw.labelled(fig, gs[1, :2], "im2col"), ex.im2col, out_colours, tap_colours, C,
                      f"im2col: ({OH * OW}, {ex.kernel[0] * ex.kernel[1] * C}); entries = input cell number, "
                      f"grey = padding")
    draw.counts_panel(draw.labelled(fig, gs[1, 2], "overlap"), ex.overlap,
                      "col2im of ones: windows covering each input cell")
    draw.text_panel(draw.labelled(fig, gs[2, :], "formula"), ex.formula)
    fig.suptitle(title)
    return fig


def conv2d(input_shape, kernel_size, strides=1, padding="valid", path=None, *, verbose=True):
    """Atlas of a Conv2D: pads per side, every window, the im2col matrix, col2im's window counts.

    input_shape (H, W) or (H, W, C); kernel_size, strides: int or pair; padding
    "valid" or "same". Returns (Figure, Explanation); writes a PNG to ``path`` if given.
    """
    H, W, C = _input_hwc(input_shape, "explain.conv2d")
    ex = conv_like("conv2d", H, W, C, kernel_size, strides, padding, "explain.conv2d")
    fig = _conv_figure(ex, f"Conv2D: input {H}x{W}x{C}, kernel_size {ex.kernel}, strides {ex.strides}, "
                           f"padding \"{ex.padding}\" -> {ex.output_shape[0]}x{ex.output_shape[1]}", "")
    return _finish(fig, ex, path, verbose)


def max_pool2d(input_shape, pool_size=2, strides=None, padding="valid", path=None, *, verbose=True):
    """Atlas of a MaxPooling2D: the same windows as a convolution; pad cells are -inf (never the max).

    strides None means pool_size, as in Keras. Returns (Figure, Explanation).
    """
    H, W, C = _input_hwc(input_shape, "explain.max_pool2d")
    strides = pair(pool_size, "pool_size", "explain.max_pool2d") if strides is None else strides
    ex = conv_like("max_pool2d", H, W, C, pool_size, strides, padding, "explain.max_pool2d")
    fig = _conv_figure(ex, f"MaxPooling2D: input {H}x{W}x{C}, pool_size {ex.kernel}, strides {ex.strides}, "
                           f"padding \"{ex.padding}\" -> {ex.output_shape[0]}x{ex.output_shape[1]}",
                       " (-inf)")
    return _finish(fig, ex, path, verbose)


def transpose_equivalence(x, W, strides, padding, output_padding, stuffed_pads):
    """(engine, equivalent): conv2d_transpose(x, W) and the stride-1 convolution of the zero-stuffed,
    padded x with W flipped in both spatial axes and its two channel axes swapped.

    x (N, H, W, C), W (KH, KW, F, C) (Conv2DTranspose layout) -> two arrays (N, OH, OW, F).
    """
    with no_grad():
        y = F.conv2d_transpose(x, W, strides=strides, padding=padding, output_padding=output_padding).data
        z = stuff_and_pad(x, strides, stuffed_pads)                       # (N, HP, WP, C)
        W_conv = np.ascontiguousarray(W[::-1, ::-1].transpose(0, 1, 3, 2))  # (KH, KW, F, C) -> (KH, KW, C, F)
        y_conv = F.conv2d(z, W_conv, strides=1, padding="valid").data
    return y, y_conv


def conv2d_transpose(input_shape, kernel_size, strides=1, padding="valid", output_padding=None, path=None, *,
                     verbose=True, seed=0):
    """Atlas of a Conv2DTranspose as a stride-1 convolution over a zero-stuffed, padded input.

    Draws the input, the stuffed and padded grid with its pads per side, the
    windows of the equivalent convolution (kernel flipped), its im2col matrix and,
    on the output grid, how many (input cell, tap) products col2im adds into each
    output cell. Checks on a random float64 input (and kernel, 2 filters) that
    ``nb.functional.conv2d_transpose`` and that convolution agree and prints the
    max difference (``Explanation.max_difference``). Returns (Figure, Explanation).
    """
    owner = "explain.conv2d_transpose"
    H, W, C = _input_hwc(input_shape, owner)
    kernel, st, padding, ops, out_hw, conv_pads, stuffed_pads = transpose_numbers(
        H, W, C, kernel_size, strides, padding, output_padding, owner)
    KH, KW = kernel
    OH, OW = out_hw
    formula = transpose_formula((H, W), kernel, st, padding, ops, out_hw, conv_pads, stuffed_pads)
    rng = np.random.default_rng(seed)
    x, Wt = rng.standard_normal((1, H, W, C)), rng.standard_normal((KH, KW, 2, C))
    y, y_conv = transpose_equivalence(x, Wt, st, padding, None if ops[0] is None else ops, stuffed_pads)
    difference = float(np.max(np.abs(y - y_conv)))
    formula += f"\n  max |conv2d_transpose - stride-1 conv2d of the stuffed input| on a random input: {difference:.3g}"
    z = stuff_and_pad(index_image(H, W, C), st, stuffed_pads)            # cell numbers, 0 = stuffed or padding
    cols = F.im2col(z, kernel, 1, "valid").data.astype(np.int64)          # (OH*OW, KH*KW*C)
    counts = F.col2im(np.ones((H * W, KH * KW * C)), (OH, OW, C), kernel, st, padding).data[:, :, 0]
    HS, WS = (H - 1) * st[0] + 1, (W - 1) * st[1] + 1
    ex = Explanation("conv2d_transpose", (H, W, C), kernel, st, padding, out_hw,
                     dict(zip(("top", "bottom", "left", "right"), stuffed_pads)), formula,
                     padded_grid(H, W, *stuffed_pads, *st), window_corners(OH, OW, 1, 1), cols,
                     counts.astype(np.int64), output_padding=None if ops[0] is None else ops,
                     stuffed_shape=(HS, WS), max_difference=difference)
    fig = _transpose_figure(ex, conv_pads)
    return _finish(fig, ex, path, verbose)


def _transpose_figure(ex, conv_pads):
    """Input | stuffed and padded | windows | output;  im2col | col2im counts;  formula."""
    H, W, C = ex.input_shape
    OH, OW = ex.output_shape
    fig, gs = draw.new_figure(3, 4, width=3.8)
    gs.set_height_ratios([1.0, 1.0, 0.5])
    out_colours = draw.palette(OH * OW)
    tap_colours = draw.tap_palette(ex.kernel[0] * ex.kernel[1])
    draw.rgb_panel(draw.labelled(fig, gs[0, 0], "input"), np.ones((H, W, 3)),
                   np.arange(1, H * W + 1).reshape(H, W), f"input {H}x{W}")
    numbers = np.zeros(ex.grid.shape, dtype=np.int64)
    SH, SW = ex.strides
    PT, PL = ex.pads["top"], ex.pads["left"]
    numbers[PT:PT + ex.stuffed_shape[0]:SH, PL:PL + ex.stuffed_shape[1]:SW] = np.arange(1, H * W + 1).reshape(H, W)
    draw.grid_panel(draw.labelled(fig, gs[0, 1], "padded input"), ex.grid, numbers,
                    f"stuffed {SH - 1}/{SW - 1} zeros apart, padded: top {PT}, bottom {ex.pads['bottom']}, "
                    f"left {PL}, right {ex.pads['right']}")
    draw.windows_panel(draw.labelled(fig, gs[0, 2], "windows"), ex.grid, ex.windows, ex.kernel, out_colours,
                       f"stride-1 windows {ex.kernel[0]}x{ex.kernel[1]} (kernel flipped)")
    draw.output_panel(draw.labelled(fig, gs[0, 3], "output"), out_colours, (OH, OW), title=f"output {OH}x{OW}")
    draw.im2col_panel(draw.labelled(fig, gs[1, :3], "im2col"), ex.im2col, out_colours, tap_colours, C,
                      f"im2col of the stuffed input: ({OH * OW}, {ex.kernel[0] * ex.kernel[1] * C}); "
                      f"grey = padding or stuffed zero")
    draw.counts_panel(draw.labelled(fig, gs[1, 3], "overlap"), ex.overlap,
                      "col2im of ones: products added\ninto each output cell")
    draw.text_panel(draw.labelled(fig, gs[2, :], "formula"), ex.formula)
    fig.suptitle(f"Conv2DTranspose: input {H}x{W}x{C}, kernel_size {ex.kernel}, strides {ex.strides}, "
                 f"padding \"{ex.padding}\", output_padding {ex.output_padding} -> {OH}x{OW}  "
                 f"(transposes the convolution {OH}x{OW} -> {H}x{W} with pads {conv_pads})")
    return fig


def upsampling2d(input_shape, size=2, interpolation="nearest", path=None, *, verbose=True, seed=0):
    """Atlas of an UpSampling2D: which input cells (and weights) make each output cell.

    Output size (Keras): OH = H * SH, OW = W * SW. Each axis is a weight matrix
    A (n*s, n) (``geometry.nearest_weights`` / ``bilinear_weights``, Keras's
    half-pixel rule), y = A_H x A_W^T per channel; the picture colours each output
    cell by the weighted mix of its sources' colours, draws A_H and A_W, and counts
    how many output cells read each input cell (what the backward sums). Checks
    the matrices against ``nb.functional.upsample2d`` on a random input
    (``Explanation.max_difference``). Returns (Figure, Explanation).
    """
    owner = "explain.upsampling2d"
    H, W, C = _input_hwc(input_shape, owner)
    SH, SW = pair(size, "size", owner)
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"{owner}: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    weights = nearest_weights if interpolation == "nearest" else bilinear_weights
    A_H, A_W = weights(H, SH), weights(W, SW)                        # (OH, H), (OW, W)
    OH, OW = H * SH, W * SW
    x = np.random.default_rng(seed).standard_normal((1, H, W, C))
    with no_grad():
        y = F.upsample2d(x, (SH, SW), interpolation).data
    difference = float(np.max(np.abs(y - np.einsum("ih,nhwc,jw->nijc", A_H, x, A_W))))
    reads = np.outer(np.sum(A_H != 0, axis=0), np.sum(A_W != 0, axis=0))   # (H, W): output cells reading each cell
    formula = "\n".join([f"Keras UpSampling2D, interpolation=\"{interpolation}\":  out = in * size",
                         f"  OH = {H} * {SH} = {OH}", f"  OW = {W} * {SW} = {OW}",
                         "  y = A_H x A_W^T per channel" + (", A[i, i // s] = 1" if interpolation == "nearest" else
                                                          ", src = (i + 0.5)/s - 0.5 clamped, two taps"),
                         f"  max |upsample2d - A_H x A_W^T| on a random input: {difference:.3g}"])
    ex = Explanation("upsampling2d", (H, W, C), (SH, SW), (SH, SW), "valid", (OH, OW),
                     {"top": 0, "bottom": 0, "left": 0, "right": 0}, formula, np.zeros((H, W), dtype=np.int8),
                     np.zeros((0, 0, 2), dtype=np.int64), np.zeros((0, 0), dtype=np.int64), reads,
                     interpolation=interpolation, max_difference=difference, weights=(A_H, A_W))
    fig, gs = draw.new_figure(3, 3)
    gs.set_height_ratios([1.0, 1.0, 0.4])
    in_colours = draw.palette(H * W).reshape(H, W, 3)
    numbers = np.arange(1, H * W + 1).reshape(H, W)
    draw.rgb_panel(draw.labelled(fig, gs[0, 0], "input"), draw.lighten(in_colours, 0.3), numbers,
                   f"input {H}x{W}")
    mixed = np.einsum("ih,hwk,jw->ijk", A_H, in_colours, A_W)      # each output cell: its sources' colours mixed
    nearest = numbers[np.argmax(A_H, axis=1)][:, np.argmax(A_W, axis=1)]
    draw.rgb_panel(draw.labelled(fig, gs[0, 1:], "output"), draw.lighten(mixed, 0.3), nearest,
                   f"output {OH}x{OW}: colour = weighted mix of its input cells (number: the largest weight)")
    draw.matrix_panel(draw.labelled(fig, gs[1, 0], "A_H"), A_H, f"A_H ({OH}, {H})", "input row", "output row")
    draw.matrix_panel(draw.labelled(fig, gs[1, 1], "A_W"), A_W, f"A_W ({OW}, {W})", "input column",
                      "output column")
    draw.counts_panel(draw.labelled(fig, gs[1, 2], "overlap"), reads,
                      "output cells reading each input cell\n(the backward sums their gradients)")
    draw.text_panel(draw.labelled(fig, gs[2, :], "formula"), formula)
    fig.suptitle(f"UpSampling2D: input {H}x{W}x{C}, size {(SH, SW)}, interpolation \"{interpolation}\" -> {OH}x{OW}")
    return _finish(fig, ex, path, verbose)
