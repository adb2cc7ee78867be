"""Convolution as a matrix product, and transposed convolution as its input-gradient.

Notation: x (N, H, W, C) input, W (KH, KW, C, F) kernel (Keras layout), b (F,),
strides (SH, SW), padding (PT, PB, PL, PR), y (N, OH, OW, F), K = KH*KW*C.

Convolution (really cross-correlation, as in every framework)::

    y[n, oh, ow, f] = b[f] + sum_{ki, kj, c} x[n, oh*SH - PT + ki, ow*SW - PL + kj, c] W[ki, kj, c, f]

is one matrix product once the patches are unfolded (``im2col``)::

    X = im2col(x)                 (N*OH*OW, K)      one patch per row
    Y = X @ W2 + b                (N*OH*OW, F)      W2 = W.reshape(K, F)  (BLAS)
    y = Y.reshape(N, OH, OW, F)                     already NHWC: no transpose

Backward, from gy (N, OH, OW, F) reshaped to G (N*OH*OW, F)::

    gW = X^T @ G                  (K, F) -> (KH, KW, C, F)
    gb = sum of G over its rows   (F,)
    gx = col2im(G @ W2^T)         (N*OH*OW, K) -> (N, H, W, C)     (the adjoint of im2col)

The last line, ``conv2d_input_grad``, is a linear map from an (N, OH, OW, F)
array to an (N, H, W, C) one. Used as a *forward* pass it is the transposed
convolution (``Conv2DTranspose``): its kernel (KH, KW, filters, in) is exactly
a convolution kernel read the other way round, and its own backward passes are
the convolution's forward (for gx) and weight gradient (for gW).

Three routes compute these passes; ``uses_direct`` and ``flips_roles`` pick one
per layer from its shape (measurements: ``benchmarks/bench_conv_paths.py``):

* im2col + GEMM (above), the general one;
* direct loops (``kernels/direct_conv.py``) for one input channel or one
  filter at stride 1, where the product would have K = 9 columns or a single
  output column and the unfolding would cost more than the arithmetic;
* the flipped convolution, for stride 1 and fewer filters than channels: every
  stride-1 pass is also a pass of the convolution with the kernel turned
  around, Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f], which unfolds the narrower
  side of the layer (see ``flips_roles``).
"""
from __future__ import annotations

import numpy as np

from .conv_shapes import check_padding, conv_output_size, conv_pads, pair, transpose_output_size, transpose_pad_before
from ..fast.kernels.direct_conv import (direct_forward_into, direct_forward_one_filter_into, direct_weight_grad_add,
                                  direct_weight_grad_one_channel_add, direct_weight_grad_one_filter_add)
from ..fast.kernels.elementwise import relu_mask_into
from ..fast.kernels.im2col import col2im_into, im2col_into
from ..fast import parallel
from .tensor import Function
from ..fast.tuning import CHUNK_BYTES
from ..fast.workspace import scratch


# --------------------------------------------------------------- array level
# The batch is processed in chunks of B images whose patch matrix (B*OH*OW, K) is
# about CHUNK_BYTES (fast/tuning.py): im2col writes it, the matrix product reads it
# while it is still in cache, and the full (N*OH*OW, K) matrix is never stored.
# The backward pass unfolds each chunk again rather than keeping it.


def _over_chunks(N, R, K, itemsize, body):
    """body(n0, n1, col_tag, B) over cache-sized chunks of images; returns each thread's list of results."""
    B = max(1, min(N, CHUNK_BYTES // max(R * K * itemsize, 1)))

    def work(first, last, worker):
        return [body(n0, min(last, n0 + B), f"conv.col{worker}", B) for n0 in range(first, last, B)]

    return parallel.run(work, parallel.split(N))


def uses_direct(C, F, SH, SW):
    """True where the direct loops (``kernels/direct_conv.py``) replace im2col + GEMM.

    Chosen from measurement (``python -m benchmarks.bench_conv_paths``, results in
    ``benchmarks/results/conv_paths.json``; 2 threads, batch 64-256): with one
    input channel or one filter at stride 1 the direct loops beat the unfold +
    product 2.3-3.0x forward, 1.8-2.9x for the weight gradient and 1.2-4.8x
    for the input gradient, and the backward pass also fuses the relu mask and
    the bias gradient into the weight-gradient walk. With several channels on
    both sides the GEMM wins, so everything else stays on im2col.
    """
    return SH == 1 and SW == 1 and min(C, F) == 1


def _rows_fit(W_shape, in_w, out_w, PL):
    """The row-at-a-time loops pad each image row by KW on both sides: left and right padding <= KW."""
    KW = W_shape[1]
    return PL <= KW and (out_w - 1) + KW - in_w - PL <= KW


def _direct_forward(x, W, b, PT, PL, relu, out_hw):
    """The direct forward pass over the threads' halves of the batch -> y (N, OH, OW, F)."""
    N, F = x.shape[0], W.shape[3]
    y = np.empty((N, *out_hw, F), dtype=x.dtype)
    b = np.zeros(F, dtype=x.dtype) if b is None else b
    one_filter = F == 1 and _rows_fit(W.shape, x.shape[2], out_hw[1], PL)

    def part(n0, n1, _):
        if one_filter:
            direct_forward_one_filter_into(x[n0:n1], W, b, PT, PL, relu, y[n0:n1])
        else:
            direct_forward_into(x[n0:n1], W, b, 1, 1, PT, PL, relu, y[n0:n1])

    parallel.run(part, parallel.split(N))
    return y


def _direct_input_grad(gz, W, H, Wd, PT, PL):
    """gx as the stride-1 'full' convolution of gz with the flipped, channel-swapped kernel."""
    KH, KW = W.shape[:2]
    return _direct_forward(gz, _flipped(W), None, KH - 1 - PT, KW - 1 - PL, False, (H, Wd))


def _direct_weight_grad(x, gy, y, relu, W_shape, PT, PL, keep_gz):
    """(gW, gb, gz) in one walk over the batch; gz (the relu-masked gy) only if ``keep_gz`` and relu."""
    gz = np.empty_like(gy) if keep_gz and relu else np.empty((0, 0, 0, 0), dtype=gy.dtype)
    y = y if relu else gy

    C, F = W_shape[2], W_shape[3]
    rows = _rows_fit(W_shape, x.shape[2], gy.shape[2], PL)   # a row-at-a-time loop applies

    def part(n0, n1, _):
        gW, gb = np.zeros(W_shape, dtype=gy.dtype), np.zeros(F, dtype=gy.dtype)
        xs, gys, ys, z = x[n0:n1], gy[n0:n1], y[n0:n1], gz[n0:n1] if gz.size else gz
        if rows and C == 1:
            direct_weight_grad_one_channel_add(xs, gys, ys, relu, PT, PL, gW, gb, z)
        elif rows and F == 1:
            direct_weight_grad_one_filter_add(xs, gys, ys, relu, PT, PL, gW, gb, z)
        else:
            direct_weight_grad_add(xs, gys, ys, relu, 1, 1, PT, PL, gW, gb, z)
        return gW, gb

    parts = parallel.run(part, parallel.split(len(x)))
    gW, gb = parts[0]
    for pW, pb in parts[1:]:
        gW += pW
        gb += pb
    return gW, gb, (gz if gz.size else gy)


def flips_roles(C, F, SH, SW):
    """True where a stride-1 forward pass or weight gradient is cheaper as the flipped convolution.

    im2col unfolds the image it reads, KH*KW*C numbers per output pixel, for
    the forward pass and the weight gradient. Both can also be run through the
    *flipped* convolution (kernel Wf = ``_flipped(W)``, padding
    ``_flipped_pads``), which unfolds the other side, KH*KW*F numbers per pixel:

        conv2d_forward(x, W)          = conv2d_input_grad(x, Wf)       (GEMM with K = C, then col2im)
        conv2d_weight_grad(x, gy, W)  = flip of conv2d_weight_grad(gy, x, Wf)

    With fewer filters than channels (an encoder's 16 -> 8 layers; a decoder's
    transposed 8 -> 16 ones, read as convolutions) that moves half the data.
    Measured (``python -m benchmarks.bench_conv_paths``, 2 threads, batch 256):
    16 -> 8 at 14x14 forward 1.51 -> 1.00 ms, weight gradient 1.45 -> 0.96; at
    26x26 forward 4.12 -> 3.12, weight gradient 4.17 -> 3.17. The input
    gradient gains nothing this way (1.01 vs 0.97, 2.63 vs 2.66), so it is
    never flipped. 8 -> 4 at 7x7: forward 0.30 -> 0.35, weight gradient 0.39 -> 0.33.
    """
    return SH == 1 and SW == 1 and F < C


def _flipped(W):
    """Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f]: (KH, KW, C, F) -> (KH, KW, F, C), contiguous."""
    return np.ascontiguousarray(W[::-1, ::-1].transpose(0, 1, 3, 2))


def _flipped_pads(in_hw, out_hw, KH, KW, PT, PL):
    """Pads of the flipped stride-1 convolution, which maps the (OH, OW) side back to (H, W).

    Top/left K-1-P (a = K-1-k turns input row h = o - P + k into o = h + (K-1-P) - a);
    bottom/right whatever makes the output exactly (H, W): H = OH + PT' + PB' - KH + 1.
    """
    (H, Wd), (OH, OW) = in_hw, out_hw
    PT2, PL2 = KH - 1 - PT, KW - 1 - PL
    return (PT2, H - OH - PT2 + KH - 1, PL2, Wd - OW - PL2 + KW - 1)


def _out_hw(H, Wd, KH, KW, SH, SW, pads):
    PT, PB, PL, PR = pads
    return (H + PT + PB - KH) // SH + 1, (Wd + PL + PR - KW) // SW + 1


def conv2d_forward(x, W, b, SH, SW, pads, relu=False):
    """y = act(im2col(x) @ W2 + b) on arrays, chunk by chunk;  act = relu or identity.

    x (N, H, W, C), W (KH, KW, C, F), b (F,) or None -> y (N, OH, OW, F).
    """
    KH, KW, C, F = W.shape
    x = np.ascontiguousarray(x)
    N, H, Wd, _ = x.shape
    OH, OW = _out_hw(H, Wd, KH, KW, SH, SW, pads)
    if uses_direct(C, F, SH, SW):
        return _direct_forward(x, np.ascontiguousarray(W), b, pads[0], pads[2], relu, (OH, OW))
    if flips_roles(C, F, SH, SW):                # GEMM with K = C, then col2im of KH*KW*F per pixel
        y = conv2d_input_grad(x, _flipped(W), OH, OW, 1, 1, KH - 1 - pads[0], KW - 1 - pads[2])
        if b is not None or relu:
            _bias_relu(y, b, relu)
        return y
    K, R = KH * KW * C, OH * OW                 # patch length, rows (output pixels) per image
    W2 = W.reshape(K, F)                        # (KH, KW, C, F) -> (K, F)
    y = np.empty((N, OH, OW, F), dtype=x.dtype)
    Y2 = y.reshape(N * R, F)                    # (N, OH, OW, F) -> (N*OH*OW, F), a view

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), x.dtype)[:n1 - n0]
        im2col_into(x[n0:n1], KH, KW, SH, SW, pads[0], pads[2], c)
        Yc = Y2[n0 * R:n1 * R]
        np.matmul(c.reshape(-1, K), W2, out=Yc)  # (B*OH*OW, K) @ (K, F) -> (B*OH*OW, F)
        if b is not None:
            Yc += b
        if relu:
            np.maximum(Yc, 0, out=Yc)

    _over_chunks(N, R, K, x.itemsize, chunk)
    return y


def conv2d_input_grad(gy, W, H, Wd, SH, SW, PT, PL):
    """gx = col2im(gy2 @ W2^T): the gradient of a convolution with respect to its input.

    gy (N, OH, OW, F), W (KH, KW, C, F) -> gx (N, H, Wd, C). Also the forward
    pass of the transposed convolution.
    """
    KH, KW, C, F = W.shape
    gy = np.ascontiguousarray(gy)
    if uses_direct(C, F, SH, SW):
        return _direct_input_grad(gy, W, H, Wd, PT, PL)
    N, OH, OW, _ = gy.shape
    K, R = KH * KW * C, OH * OW
    W2T = W.reshape(K, F).T                     # (F, K)
    G2 = gy.reshape(N * R, F)                   # (N, OH, OW, F) -> (N*OH*OW, F)
    gx = np.empty((N, H, Wd, C), dtype=gy.dtype)

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), gy.dtype)[:n1 - n0]
        if F == 1:  # an outer product: BLAS's GEMM is ~8x slower than a broadcast multiply here
            np.multiply(G2[n0 * R:n1 * R], W2T, out=c.reshape(-1, K))   # (B*OH*OW, 1) * (1, K)
        else:
            np.matmul(G2[n0 * R:n1 * R], W2T, out=c.reshape(-1, K))     # (B*OH*OW, F) @ (F, K) -> (B*OH*OW, K)
        col2im_into(c, SH, SW, PT, PL, gx[n0:n1])                       # -> (B, H, Wd, C)

    _over_chunks(N, R, K, gy.itemsize, chunk)
    return gx


def conv2d_weight_grad(x, gy, W_shape, SH, SW, pads):
    """gW = sum over chunks of im2col(x_c)^T @ G_c:  x (N, H, W, C), gy (N, OH, OW, F) -> (KH, KW, C, F)."""
    KH, KW, C, F = W_shape
    x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
    if uses_direct(C, F, SH, SW):
        return _direct_weight_grad(x, gy, None, False, W_shape, pads[0], pads[2], False)[0]
    N, OH, OW, _ = gy.shape
    if flips_roles(C, F, SH, SW):                # unfold gy (F channels) rather than x (C channels)
        gWf = conv2d_weight_grad(gy, x, (KH, KW, F, C), 1, 1,
                                 _flipped_pads(x.shape[1:3], (OH, OW), KH, KW, pads[0], pads[2]))
        return _flipped(gWf)                     # the flip is its own inverse
    K, R = KH * KW * C, OH * OW
    G2 = gy.reshape(N * R, F)                   # (N, OH, OW, F) -> (N*OH*OW, F)

    def chunk(n0, n1, tag, B):
        c = scratch(tag, (B, OH, OW, KH, KW, C), x.dtype)[:n1 - n0]
        im2col_into(x[n0:n1], KH, KW, SH, SW, pads[0], pads[2], c)
        return c.reshape(-1, K).T @ G2[n0 * R:n1 * R]   # (K, B*OH*OW) @ (B*OH*OW, F) -> (K, F)

    gW = np.zeros((K, F), dtype=gy.dtype)
    for partials in _over_chunks(N, R, K, x.itemsize, chunk):
        for p in partials:
            gW += p
    return gW.reshape(W_shape)


def _wants_grad(fn, i):
    inputs = getattr(fn, "inputs", None)
    return inputs is not None and len(inputs) > i and inputs[i] is not None and inputs[i].requires_grad


# ------------------------------------------------------------ differentiable
class Conv2D(Function):
    """y = act(conv(x, W) + b), act = relu (fused) or identity; formulas in the module docstring.

    Shapes: x (N, H, W, C), W (KH, KW, C, F), b (F,) -> y (N, OH, OW, F).
    With the relu fused, the backward first masks the upstream gradient,
    gz = gy * [y > 0], and continues with gz as for a plain convolution.
    """

    def __init__(self, strides, pads, relu=False):
        self.SH, self.SW = strides
        self.pads = pads                          # (PT, PB, PL, PR)
        self.relu = relu

    def forward(self, x, W, b=None):
        y = conv2d_forward(x, W, b, self.SH, self.SW, self.pads, self.relu)
        self.x, self.W = x, W
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        _, H, Wd, C = self.x.shape
        PT, _, PL, _ = self.pads
        if uses_direct(C, self.W.shape[3], self.SH, self.SW):   # one walk: gz, gW and gb together
            want_gx = _wants_grad(self, 0)
            gW, gb, gz = _direct_weight_grad(np.ascontiguousarray(self.x), np.ascontiguousarray(gy), self.y,
                                             self.relu, self.W.shape, PT, PL, want_gx)
            gx = _direct_input_grad(gz, self.W, H, Wd, PT, PL) if want_gx else None
            return gx, gW, gb
        gy = _masked_by_relu(gy, self.y) if self.relu else gy     # gz = gy * [y > 0]
        gx = gW = None
        if _wants_grad(self, 0):
            gx = conv2d_input_grad(gy, self.W, H, Wd, self.SH, self.SW, PT, PL)
        if _wants_grad(self, 1):
            gW = conv2d_weight_grad(self.x, gy, self.W.shape, self.SH, self.SW, self.pads)
        gb = parallel.column_sums(gy.reshape(-1, gy.shape[-1]))   # (N*OH*OW, F) -> (F,)
        return gx, gW, gb


def _bias_relu(y, b, relu):
    """y = act(y + b) in place, on the threads' halves of the batch (b may be None)."""
    def part(n0, n1, _):
        if b is not None:
            y[n0:n1] += b
        if relu:
            np.maximum(y[n0:n1], 0, out=y[n0:n1])
    parallel.run(part, parallel.split(len(y)))


def _masked_by_relu(gy, y):
    """gy * [y > 0], computed on the threads' halves of the batch (one fused pass each)."""
    gy = np.ascontiguousarray(gy)
    gz = np.empty_like(gy)
    parallel.run(lambda a, b, _: relu_mask_into(gy[a:b], y[a:b], gz[a:b]), parallel.split(len(gy)))
    return gz


class Conv2DTranspose(Function):
    """The transposed convolution: convolution's input-gradient used as a forward pass.

    Shapes: x (N, H, W, C), W (KH, KW, F, C) (Keras layout: filters before
    inputs), b (F,) -> y (N, OH, OW, F). Read as a convolution, W maps an
    (OH, OW, F) image to an (H, W, C) one; this layer runs that map backwards:

        forward:   y  = conv2d_input_grad(x, W)       (col2im of x2 @ W2^T)
        backward:  gx = conv2d(gy, W)                 (im2col(gy) @ W2)
                   gW = im2col(gy)^T @ x2             (the convolution's weight gradient,
                                                       with the roles of x and gy swapped)
                   gb = sum of gy over N, OH, OW

    With the relu fused (``relu=True``), y = max(that, 0) and the backward
    starts from gz = gy * [y > 0], as in Conv2D.
    """

    def __init__(self, strides, out_hw, pads, relu=False):
        self.SH, self.SW = strides
        self.OH, self.OW = out_hw
        self.pads = pads                          # (PT, PB, PL, PR) of the convolution it inverts
        self.relu = relu

    def forward(self, x, W, b=None):
        PT, _, PL, _ = self.pads
        y = conv2d_input_grad(np.ascontiguousarray(x), W, self.OH, self.OW, self.SH, self.SW, PT, PL)
        if b is not None or self.relu:
            _bias_relu(y, b, self.relu)
        self.x, self.W = x, W
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        gy = _masked_by_relu(gy, self.y) if self.relu else gy     # gz = gy * [y > 0]
        gx = gW = None
        if _wants_grad(self, 0):                  # the convolution itself
            gx = conv2d_forward(gy, self.W, None, self.SH, self.SW, self.pads)
        if _wants_grad(self, 1):                  # the convolution's weight gradient, gy as its input
            gW = conv2d_weight_grad(gy, self.x, self.W.shape, self.SH, self.SW, self.pads)
        gb = parallel.column_sums(gy.reshape(-1, gy.shape[-1]))   # (N*OH*OW, F) -> (F,)
        return gx, gW, gb


# --------------------------------------------------------------- public API
def _check_image(x, W, owner, channel_axis):
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D NHWC input (batch, height, width, channels), "
                         f"got shape {tuple(x.shape)}")
    if W.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D kernel, got shape {tuple(W.shape)}")
    if x.shape[-1] != W.shape[channel_axis]:
        raise ValueError(f"{owner}: input has {x.shape[-1]} channels but the kernel of shape "
                         f"{tuple(W.shape)} expects {W.shape[channel_axis]}")


def _check_bias(b, F, owner):
    if b is not None and tuple(b.shape) != (F,):
        raise ValueError(f"{owner}: bias must have shape ({F},), got {tuple(b.shape)}")


def conv2d(x, W, b=None, strides=(1, 1), padding="valid", relu=False):
    """2-D convolution of NHWC ``x`` with kernel ``W`` (KH, KW, C, F), plus bias ``b`` (F,).

    ``padding`` is "valid", "same" (TensorFlow's split: extra cell bottom/right)
    or explicit (PT, PB, PL, PR). ``relu=True`` applies max(., 0) inside the
    same pass (one array less, one pass less). Returns a Tensor (N, OH, OW, F).
    """
    SH, SW = pair(strides, "strides", "conv2d")
    if isinstance(padding, str):
        padding = check_padding(padding, "conv2d")
    _check_image(x, W, "conv2d", 2)
    _check_bias(b, W.shape[3], "conv2d")
    _, H, Wd, _ = x.shape
    KH, KW = W.shape[:2]
    pads = conv_pads(H, Wd, KH, KW, SH, SW, padding)
    if H + pads[0] + pads[1] < KH or Wd + pads[2] + pads[3] < KW:
        raise ValueError(f"conv2d: kernel {(KH, KW)} is larger than the padded input "
                         f"{(H + pads[0] + pads[1], Wd + pads[2] + pads[3])} (input shape {tuple(x.shape)})")
    fn = Conv2D((SH, SW), pads, relu)
    return fn(x, W) if b is None else fn(x, W, b)


def conv2d_transpose(x, W, b=None, strides=(1, 1), padding="valid", output_padding=None, relu=False):
    """Transposed 2-D convolution of NHWC ``x`` with kernel ``W`` (KH, KW, F, C), bias (F,).

    ``relu=True`` applies max(., 0) in the same pass, as in ``conv2d``.

    Output size per axis (Keras): output_padding None -> "valid" H*S + max(K - S, 0),
    "same" H*S; else (H - 1)*S + K - 2*pad + op with pad = K//2 ("same") or 0.
    Returns a Tensor (N, OH, OW, F).
    """
    SH, SW = pair(strides, "strides", "conv2d_transpose")
    padding = check_padding(padding, "conv2d_transpose")
    _check_image(x, W, "conv2d_transpose", 3)
    KH, KW, F, _ = W.shape
    _check_bias(b, F, "conv2d_transpose")
    ops = (None, None) if output_padding is None else pair(output_padding, "output_padding",
                                                            "conv2d_transpose", minimum=0)
    if ops[0] is not None and (ops[0] >= SH or ops[1] >= SW):
        raise ValueError(f"conv2d_transpose: output_padding {ops} must be smaller than strides {(SH, SW)}")
    _, H, Wd, _ = x.shape
    OH = transpose_output_size(H, KH, SH, padding, ops[0])
    OW = transpose_output_size(Wd, KW, SW, padding, ops[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d_transpose: output size {(OH, OW)} is not positive for input "
                         f"{tuple(x.shape)}, kernel {tuple(W.shape)}, strides {(SH, SW)}")
    if conv_output_size(OH, KH, SH, padding) != H or conv_output_size(OW, KW, SW, padding) != Wd:
        raise ValueError(f"conv2d_transpose: output_padding {output_padding} gives output size {(OH, OW)}, "
                         f"which a {padding!r} convolution with kernel {(KH, KW)} and strides {(SH, SW)} "
                         f"does not map back to the input size {(H, Wd)} (TensorFlow rejects it too)")
    PT = transpose_pad_before(H, OH, KH, SH, padding)
    PL = transpose_pad_before(Wd, OW, KW, SW, padding)
    # the convolution (OH, OW) -> (H, W) that this inverts; PB, PR may be negative
    pads = (PT, (H - 1) * SH + KH - OH - PT, PL, (Wd - 1) * SW + KW - OW - PL)
    fn = Conv2DTranspose((SH, SW), (OH, OW), pads, relu)
    return fn(x, W) if b is None else fn(x, W, b)
