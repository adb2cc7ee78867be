"""The numbers behind each atlas picture: sizes, pads per side, windows, im2col, window counts.

Notation: input (H, W, C), kernel or pool window (KH, KW), strides (SH, SW),
pads (PT, PB, PL, PR), output (OH, OW). Every size and pad comes from the
engine's own rules (``numbanet.engine.conv_shapes``), the im2col matrix and the
window counts from the engine's own ``im2col`` / ``col2im``
(``numbanet.engine.unfold``), so the picture shows what the engine computes.

Cell codes of a padded grid (``GRID_CODES``): 0 an input cell, 1-4 the zero
padding at the top, bottom, left, right, 5 a zero stuffed between input cells
(transposed convolution). Top and bottom pad rows span the whole padded width;
left and right pad cells are the rest of the padded columns, so a corner belongs
to the top or bottom.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine import conv_shapes as cs
from ..engine.unfold import col2im, im2col

INPUT, TOP, BOTTOM, LEFT, RIGHT, STUFFED = range(6)
GRID_CODES = {INPUT: "input", TOP: "top pad", BOTTOM: "bottom pad", LEFT: "left pad", RIGHT: "right pad",
              STUFFED: "stuffed zero"}


@dataclass
class Explanation:
    """What an atlas picture shows, as numbers.

    op: "conv2d", "conv2d_transpose", "max_pool2d" or "upsampling2d".
    input_shape (H, W, C); kernel (KH, KW) (the window, or the upsampling size);
    strides (SH, SW); padding; output_shape (OH, OW).
    pads: {"top", "bottom", "left", "right"} -> cells of padding on that side of the
    grid the windows slide over (for a transposed convolution: of the zero-stuffed input).
    formula: the Keras output-size formula with the numbers put in (what is printed).
    grid (HP, WP): the padded grid's cell codes (``GRID_CODES``).
    windows (OH, OW, 2): each output cell's window top-left corner in grid coordinates;
    its extent is kernel.
    im2col (OH*OW, KH*KW*C): the 1-based flat index h*W + w + 1 of the input cell each
    entry reads, 0 for padding (and stuffed zeros).
    overlap: how many windows cover each input cell (H, W) (for a transposed
    convolution: how many (input cell, tap) products land on each output cell (OH, OW)).
    stuffed_shape: the zero-stuffed input (H - 1)*SH + 1, (W - 1)*SW + 1 (transposed only).
    max_difference: max |engine result - the picture's equivalent computation| on a random
    input (transposed convolution: conv2d_transpose vs stride-1 conv2d of the stuffed,
    padded input with the flipped kernel; upsampling: upsample2d vs the weight matrices).
    weights: upsampling's (A_H (OH, H), A_W (OW, W)) interpolation matrices.
    path: the PNG written, or None.
    """

    op: str
    input_shape: tuple
    kernel: tuple
    strides: tuple
    padding: str
    output_shape: tuple
    pads: dict
    formula: str
    grid: np.ndarray
    windows: np.ndarray
    im2col: np.ndarray
    overlap: np.ndarray
    output_padding: tuple | None = None
    interpolation: str | None = None
    stuffed_shape: tuple | None = None
    max_difference: float | None = None
    weights: tuple | None = None
    path: str | None = field(default=None)

    def __str__(self):
        return self.formula


def _pads_dict(PT, PB, PL, PR):
    return {"top": PT, "bottom": PB, "left": PL, "right": PR}


def padded_grid(H, W, PT, PB, PL, PR, SH=1, SW=1):
    """Cell codes (HP, WP) of H x W input cells spread by (SH, SW) (stuffed zeros between) and padded."""
    HS, WS = (H - 1) * SH + 1, (W - 1) * SW + 1
    grid = np.full((PT + HS + PB, PL + WS + PR), STUFFED, dtype=np.int8)
    grid[PT:PT + HS:SH, PL:PL + WS:SW] = INPUT
    grid[PT:PT + HS, :PL] = LEFT
    grid[PT:PT + HS, PL + WS:] = RIGHT
    grid[:PT, :] = TOP
    grid[PT + HS:, :] = BOTTOM
    return grid


def window_corners(OH, OW, SH, SW):
    """(OH, OW, 2): output cell (oh, ow) reads the window whose top-left grid cell is (oh*SH, ow*SW)."""
    oh, ow = np.meshgrid(np.arange(OH), np.arange(OW), indexing="ij")
    return np.stack([oh * SH, ow * SW], axis=-1)


def index_image(H, W, C):
    """(1, H, W, C) float64: every channel of cell (h, w) holds h*W + w + 1 (0 is left for padding)."""
    return np.repeat((np.arange(H * W, dtype=np.float64) + 1).reshape(1, H, W, 1), C, axis=3)


def conv_like(op, H, W, C, kernel_size, strides, padding, owner):
    """The numbers of a Conv2D or MaxPooling2D picture (the same sliding windows and pads)."""
    KH, KW = cs.pair(kernel_size, "kernel_size" if op == "conv2d" else "pool_size", owner)
    SH, SW = cs.pair(strides, "strides", owner)
    padding = cs.check_padding(padding, owner)
    if padding == "valid" and (KH > H or KW > W):
        raise ValueError(f"{owner}: window {(KH, KW)} is larger than the input {(H, W)} with padding 'valid' "
                         f"(Keras rejects it); use a smaller window, a larger input or padding='same'")
    x = index_image(H, W, C)
    cols = im2col(x, (KH, KW), (SH, SW), padding).data             # the engine's checks and tap order
    PT, PB, PL, PR = cs.conv_pads(H, W, KH, KW, SH, SW, padding)
    OH, OW = cs.conv_output_size(H, KH, SH, padding), cs.conv_output_size(W, KW, SW, padding)
    counts = col2im(np.ones(cols.shape), x.shape, (KH, KW), (SH, SW), padding).data[0, :, :, 0]
    layer = "Conv2D" if op == "conv2d" else "MaxPooling2D"
    formula = conv_formula(layer, (H, W), (KH, KW), (SH, SW), padding, (OH, OW), (PT, PB, PL, PR))
    if op == "max_pool2d":
        formula += "\n  pad cells count as -inf in max pooling: they never win a window"
    return Explanation(op, (H, W, C), (KH, KW), (SH, SW), padding, (OH, OW), _pads_dict(PT, PB, PL, PR), formula,
                       padded_grid(H, W, PT, PB, PL, PR), window_corners(OH, OW, SH, SW),
                       cols.astype(np.int64), counts.astype(np.int64))


def conv_formula(layer, in_hw, kernel, strides, padding, out_hw, pads):
    """Keras's output-size rule (``compute_conv_output_shape``) and TF's pad split, numbers put in."""
    axes = [("OH", "H", in_hw[0], kernel[0], strides[0], out_hw[0], ("top", "bottom"), pads[:2]),
            ("OW", "W", in_hw[1], kernel[1], strides[1], out_hw[1], ("left", "right"), pads[2:])]
    if padding == "valid":
        lines = [f"Keras {layer}, padding=\"valid\":  out = floor((in - k) / s) + 1"]
        lines += [f"  {o} = floor(({n} - {k}) / {s}) + 1 = {out}" for o, _, n, k, s, out, _, _ in axes]
        lines.append("  no padding: top 0, bottom 0, left 0, right 0")
        return "\n".join(lines)
    lines = [f"Keras {layer}, padding=\"same\":  out = floor((in - 1) / s) + 1  (= ceil(in / s))"]
    lines += [f"  {o} = floor(({n} - 1) / {s}) + 1 = {out}" for o, _, n, k, s, out, _, _ in axes]
    lines.append("  pad total = max((out - 1)*s + k - in, 0); before = total // 2, after = total - before")
    for o, _, n, k, s, out, (before, after), (pb, pa) in axes:
        lines.append(f"  {o}: max(({out} - 1)*{s} + {k} - {n}, 0) = {pb + pa}  ->  {before} {pb}, {after} {pa}")
    return "\n".join(lines)


def transpose_numbers(H, W, C, kernel_size, strides, padding, output_padding, owner):
    """The numbers of a Conv2DTranspose picture: output size, the zero-stuffed input and its pads.

    The transposed convolution inverts a convolution (OH, OW) -> (H, W) with pads
    (PT, PB, PL, PR) (the engine's ``conv2d_transpose``). Written as a convolution
    over its own input it is: spread the input cells SH, SW apart (SH - 1 zeros
    between rows, SW - 1 between columns), pad KH - 1 - PT on top, KH - 1 - PB at
    the bottom (KW - 1 - PL, KW - 1 - PR at the sides), and slide the kernel,
    flipped in both spatial axes, with stride 1:

        y[o] = sum_i z[o + PT - i] W[i] = sum_j z[o - (K - 1 - PT) + j] W[K - 1 - j]

    (one axis; z the stuffed input, z[h*S] = x[h]).
    """
    KH, KW = cs.pair(kernel_size, "kernel_size", owner)
    SH, SW = cs.pair(strides, "strides", owner)
    padding = cs.check_padding(padding, owner)
    if output_padding is None:
        ops = (None, None)
    else:
        ops = cs.pair(output_padding, "output_padding", owner, minimum=0)
        if ops[0] >= SH or ops[1] >= SW:
            raise ValueError(f"{owner}: output_padding {ops} must be smaller than strides {(SH, SW)}")
    OH = cs.transpose_output_size(H, KH, SH, padding, ops[0])
    OW = cs.transpose_output_size(W, KW, SW, padding, ops[1])
    if OH < 1 or OW < 1 or cs.conv_output_size(OH, KH, SH, padding) != H or \
            cs.conv_output_size(OW, KW, SW, padding) != W:
        raise ValueError(f"{owner}: output_padding {output_padding} gives output size {(OH, OW)}, which a "
                         f"{padding!r} convolution with kernel {(KH, KW)} and strides {(SH, SW)} does not map back "
                         f"to the input size {(H, W)} (Keras rejects it too)")
    PT = cs.transpose_pad_before(H, OH, KH, SH, padding)
    PL = cs.transpose_pad_before(W, OW, KW, SW, padding)
    PB, PR = (H - 1) * SH + KH - OH - PT, (W - 1) * SW + KW - OW - PL
    stuffed_pads = (KH - 1 - PT, KH - 1 - PB, KW - 1 - PL, KW - 1 - PR)
    return (KH, KW), (SH, SW), padding, ops, (OH, OW), (PT, PB, PL, PR), stuffed_pads


def transpose_formula(in_hw, kernel, strides, padding, ops, out_hw, conv_pads, stuffed_pads):
    """Keras's ``compute_conv_transpose_output_shape`` and the equivalent stride-1 convolution, numbers in."""
    lines = []
    for o, n, k, s, op, out in [("OH", in_hw[0], kernel[0], strides[0], ops[0], out_hw[0]),
                                ("OW", in_hw[1], kernel[1], strides[1], ops[1], out_hw[1])]:
        if padding == "valid":
            if op is None:
                rule = "out = (in - 1)*s + k + max(k, s) - k   (output_padding None -> max(k, s) - k)"
                lines.append((rule, f"  {o} = ({n} - 1)*{s} + {k} + max({k}, {s}) - {k} = {out}"))
            else:
                rule = "out = (in - 1)*s + k + output_padding"
                lines.append((rule, f"  {o} = ({n} - 1)*{s} + {k} + {op} = {out}"))
        elif op is None:
            lines.append(("out = in * s", f"  {o} = {n} * {s} = {out}"))
        else:
            rule = "out = (in - 1)*s + k % 2 + output_padding"
            lines.append((rule, f"  {o} = ({n} - 1)*{s} + {k} % 2 + {op} = {out}"))
    out = [f"Keras Conv2DTranspose, padding=\"{padding}\", output_padding={_op_text(ops)}:"]
    out.append(f"  {lines[0][0]}")
    out += [line for _, line in lines]
    PT, PB, PL, PR = conv_pads
    st, sb, sl, sr = stuffed_pads
    hs, ws = (in_hw[0] - 1) * strides[0] + 1, (in_hw[1] - 1) * strides[1] + 1
    out += ["as a stride-1 convolution with the kernel flipped (rows and columns):",
            f"  stuff s - 1 zeros between input cells: ({in_hw[0]} - 1)*{strides[0]} + 1 = {hs} rows, "
            f"({in_hw[1]} - 1)*{strides[1]} + 1 = {ws} columns",
            f"  pad k - 1 - p: top {kernel[0]} - 1 - {_n(PT)} = {st}, bottom {kernel[0]} - 1 - {_n(PB)} = {sb}, "
            f"left {kernel[1]} - 1 - {_n(PL)} = {sl}, right {kernel[1]} - 1 - {_n(PR)} = {sr}",
            f"  (p: the pads of the convolution {out_hw} -> {tuple(in_hw)} it transposes, TF's rule)",
            f"  check: {hs} + {st} + {sb} - {kernel[0]} + 1 = {hs + st + sb - kernel[0] + 1} = OH, "
            f"{ws} + {sl} + {sr} - {kernel[1]} + 1 = {ws + sl + sr - kernel[1] + 1} = OW"]
    return "\n".join(out)


def _n(v):
    """A number as it reads after a minus sign: negative ones in parentheses."""
    return f"({v})" if v < 0 else str(v)


def _op_text(ops):
    return "None" if ops[0] is None else str(tuple(ops))


def stuff_and_pad(x, strides, stuffed_pads):
    """x (N, H, W, C) -> the zero-stuffed, zero-padded (N, HP, WP, C) the equivalent convolution reads."""
    N, H, W, C = x.shape
    SH, SW = strides
    z = np.zeros((N, (H - 1) * SH + 1, (W - 1) * SW + 1, C), dtype=x.dtype)
    z[:, ::SH, ::SW, :] = x                                        # (N, H, W, C) spread SH, SW apart
    PT, PB, PL, PR = stuffed_pads
    return np.pad(z, ((0, 0), (PT, PB), (PL, PR), (0, 0)))


def bilinear_weights(n, s):
    """A (n*s, n): Keras's half-pixel bilinear weights; output cell i samples src = (i + 0.5)/s - 0.5,
    clamped to [0, n - 1], as (1 - a) x[floor(src)] + a x[floor(src) + 1], a = src - floor(src)."""
    A = np.zeros((n * s, n))
    for i in range(n * s):
        src = min(max((i + 0.5) / s - 0.5, 0.0), n - 1.0)
        lo = int(np.floor(src))
        a = src - lo
        A[i, lo] += 1 - a
        A[i, min(lo + 1, n - 1)] += a
    return A


def nearest_weights(n, s):
    """A (n*s, n): output cell i copies input cell i // s."""
    A = np.zeros((n * s, n))
    A[np.arange(n * s), np.arange(n * s) // s] = 1.0
    return A
