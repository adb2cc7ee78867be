"""im2col and col2im as public, differentiable Tensor operations with Keras-style arguments.

Notation: x (N, H, W, C), kernel (KH, KW), strides (SH, SW), padding "valid" or
"same" with the pads (PT, PB, PL, PR) of ``conv_shapes.conv_pads`` (TensorFlow's
split: an odd total puts the extra cell at the bottom/right), OH, OW the
convolution's output size, K = KH*KW*C.

    im2col(x)[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = x[n, oh*SH - PT + i, ow*SW - PL + j, c]
                                                        (0 where that pixel is padding)

so row r holds the window of output pixel r, its columns in the order (i, j, c)
(kernel row, kernel column, channel): the order of ``W.reshape(K, F)`` for a
Conv2D kernel W (KH, KW, C, F), hence ``conv2d(x, W) == (im2col(x) @ W.reshape(K, F))``
reshaped to (N, OH, OW, F). ``col2im`` is its adjoint (transpose): every entry
of a (N*OH*OW, K) matrix is added back onto the pixel it was read from, and
padding entries are dropped, so <im2col(x), c> == <x, col2im(c)>. Each is the
other's backward pass.

A 3-D x (H, W, C) is one image: N = 1 is implied, so im2col's result is the
same (OH*OW, K) matrix it gives for x[None], and col2im with input_shape
(H, W, C) returns an (H, W, C) array. The arrays are computed by the active
kernel tier (``tiers.current.im2col`` / ``col2im``).
"""
from __future__ import annotations

from . import tiers
from .conv_shapes import check_padding, conv_output_size, conv_pads, pair
from .tensor import Function, as_tensor


class Im2Col(Function):
    """cols = im2col(x):  x (N, H, W, C) or (H, W, C) -> cols (N*OH*OW, KH*KW*C);  gx = col2im(gy)."""

    def __init__(self, geometry):
        self.g = geometry

    def forward(self, x):
        g = self.g
        cols = tiers.current.im2col(x.reshape(g.batch_shape), g.kernel, g.strides, g.pads)  # (N, OH, OW, KH, KW, C)
        return cols.reshape(g.rows, g.cols)                  # -> (N*OH*OW, KH*KW*C)

    def backward(self, gy):
        g = self.g
        gcols = gy.reshape(g.cols_shape)                      # (N*OH*OW, K) -> (N, OH, OW, KH, KW, C)
        return tiers.current.col2im(gcols, g.in_hw, g.strides, g.pads).reshape(g.input_shape)


class Col2Im(Function):
    """x = col2im(cols):  cols (N*OH*OW, KH*KW*C) -> x input_shape;  gcols = im2col(gy)."""

    def __init__(self, geometry):
        self.g = geometry

    def forward(self, cols):
        g = self.g
        x = tiers.current.col2im(cols.reshape(g.cols_shape), g.in_hw, g.strides, g.pads)  # (N, H, W, C)
        return x.reshape(g.input_shape)

    def backward(self, gy):
        g = self.g
        gcols = tiers.current.im2col(gy.reshape(g.batch_shape), g.kernel, g.strides, g.pads)
        return gcols.reshape(g.rows, g.cols)                 # (N, OH, OW, KH, KW, C) -> (N*OH*OW, K)


class UnfoldGeometry:
    """The sizes of one im2col: checked arguments and everything derived from them.

    Attributes: input_shape (as given, 3-D or 4-D), batch_shape (N, H, W, C),
    in_hw (H, W), kernel (KH, KW), strides (SH, SW), padding, pads
    (PT, PB, PL, PR), out_hw (OH, OW), rows = N*OH*OW, cols = KH*KW*C,
    cols_shape (N, OH, OW, KH, KW, C).
    """

    def __init__(self, input_shape, kernel_size, strides, padding, owner):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (3, 4):
            raise ValueError(f"{owner}: expected an input of shape (N, H, W, C) or (H, W, C), got shape "
                             f"{input_shape} (rank {len(input_shape)}); a grey-scale (H, W) image needs a "
                             f"channel axis: x[..., None]")
        if any(int(d) < 1 for d in input_shape):
            raise ValueError(f"{owner}: every size of the input shape {input_shape} must be >= 1")
        self.input_shape = input_shape
        self.batch_shape = (1,) * (4 - len(input_shape)) + input_shape
        N, H, W, C = self.batch_shape
        self.in_hw = (H, W)
        self.kernel = pair(kernel_size, "kernel_size", owner)
        self.strides = pair(strides, "strides", owner)
        self.padding = check_padding(padding, owner)
        KH, KW = self.kernel
        if self.padding == "valid" and (KH > H or KW > W):
            raise ValueError(f"{owner}: kernel_size {self.kernel} is larger than the input (H, W) = {(H, W)} "
                             f"with padding 'valid' (input shape {input_shape}); use a smaller kernel, a "
                             f"larger input or padding='same'")
        self.pads = conv_pads(H, W, KH, KW, *self.strides, self.padding)
        self.out_hw = (conv_output_size(H, KH, self.strides[0], self.padding),
                       conv_output_size(W, KW, self.strides[1], self.padding))
        self.rows = N * self.out_hw[0] * self.out_hw[1]
        self.cols = KH * KW * C
        self.cols_shape = (N, *self.out_hw, KH, KW, C)


def im2col(x, kernel_size, strides=1, padding="valid"):
    """Unfold every window of an NHWC image into one row: the matrix a convolution multiplies.

    x: Tensor or ndarray (N, H, W, C), or (H, W, C) for one image (N = 1 implied).
    kernel_size, strides: an int or a pair (Keras style); padding "valid" or "same".
    Returns a Tensor cols (N*OH*OW, KH*KW*C):

        cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = x[n, oh*SH - PT + i, ow*SW - PL + j, c]

    (0 in the padding), so for a Conv2D kernel W (KH, KW, C, F)
    ``(im2col(x) @ W.reshape(-1, F)).reshape(N, OH, OW, F)`` is the convolution.
    Differentiable: its backward pass is ``col2im``.
    """
    x = as_tensor(x)
    return Im2Col(UnfoldGeometry(x.shape, kernel_size, strides, padding, "im2col"))(x)


def col2im(cols, input_shape, kernel_size, strides=1, padding="valid"):
    """The adjoint of ``im2col``: add every row entry back onto the pixel it was read from.

    cols: Tensor or ndarray (N*OH*OW, KH*KW*C) for the image shape ``input_shape``
    ((N, H, W, C), or (H, W, C) with N = 1 implied); kernel_size, strides, padding
    as in ``im2col``. Returns a Tensor of shape ``input_shape``:

        x[n, h, w, c] = sum of cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c]
                        over all (oh, ow, i, j) with oh*SH - PT + i = h, ow*SW - PL + j = w

    Entries that fall in the padding are dropped. col2im of a matrix of ones
    counts the windows that cover each pixel. Differentiable: its backward is ``im2col``.
    """
    cols = as_tensor(cols)
    g = UnfoldGeometry(input_shape, kernel_size, strides, padding, "col2im")
    if tuple(cols.shape) != (g.rows, g.cols):
        raise ValueError(f"col2im: cols must have shape (N*OH*OW, KH*KW*C) = {(g.rows, g.cols)} for input_shape "
                         f"{g.input_shape}, kernel_size {g.kernel}, strides {g.strides}, padding {g.padding!r} "
                         f"(OH, OW = {g.out_hw}), got {tuple(cols.shape)}")
    return Col2Im(g)(cols)
