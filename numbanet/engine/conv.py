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

The reference tier computes these passes as written here
(``numbanet/reference/conv.py``); the fast tier picks one of three routes per
layer shape (im2col + GEMM, direct loops, the flipped convolution) and fuses the
relu (``numbanet/fast/conv.py``). Each Function below calls the active tier once
forward and once backward (``tiers.current``).
"""
from __future__ import annotations

from . import ops, tiers
from .conv_shapes import check_padding, conv_output_size, conv_pads, pair, transpose_output_size, transpose_pad_before
from .tensor import Function

FUSED_ACTIVATIONS = (None, "relu")   # what the tiers compute inside the convolution's node


def _wants_grad(fn, i):
    inputs = getattr(fn, "inputs", None)
    return inputs is not None and len(inputs) > i and inputs[i] is not None and inputs[i].requires_grad


# ------------------------------------------------------------ differentiable
class Conv2D(Function):
    """y = act(conv(x, W) + b), act None or relu; formulas in the module docstring.

    Shapes: x (N, H, W, C), W (KH, KW, C, F), b (F,) -> y (N, OH, OW, F).
    Backward, from gy (N, OH, OW, F), three named gradients of gz = gy * act'(y):

        gx = col2im(gz2 @ W2^T)          (N, H, W, C)      the input gradient
        gW = im2col(x)^T @ gz2           (KH, KW, C, F)    the weight gradient
        gb = sum of gz over N, OH, OW    (F,)              the bias gradient

    each computed only where its input asks for a gradient.
    """

    def __init__(self, strides, pads, activation=None):
        self.strides = strides                    # (SH, SW)
        self.pads = pads                          # (PT, PB, PL, PR)
        self.activation = activation              # None or "relu"

    def forward(self, x, W, b=None):
        y = tiers.current.conv2d_forward(x, W, b, self.strides, self.pads, self.activation)
        self.x, self.W = x, W
        self.y = y if self.activation else None   # act'(z) is read from y
        return y

    def backward(self, gy):
        return tiers.current.conv2d_backward(gy, self.x, self.W, self.y, self.strides, self.pads, self.activation,
                                              _wants_grad(self, 0), _wants_grad(self, 1), _wants_grad(self, 2))


class Conv2DTranspose(Function):
    """The transposed convolution: the convolution's input gradient used as a forward pass.

    Shapes: x (N, H, W, C), W (KH, KW, F, C) (Keras layout: filters before
    inputs), b (F,) -> y (N, OH, OW, F). Read as a convolution, W maps an
    (OH, OW, F) image to an (H, W, C) one; this layer runs that map backwards:

        forward:   y  = act(conv2d_input_grad(x, W) + b)     (col2im of x2 @ W2^T)
        backward:  gz = gy * act'(y)
                   gx = conv2d(gz, W)                        (im2col(gz) @ W2: the convolution itself)
                   gW = im2col(gz)^T @ x2                    (the convolution's weight gradient,
                                                              with the roles of x and gz swapped)
                   gb = sum of gz over N, OH, OW
    """

    def __init__(self, strides, out_hw, pads, activation=None):
        self.strides = strides                    # (SH, SW)
        self.out_hw = out_hw                      # (OH, OW)
        self.pads = pads                          # (PT, PB, PL, PR) of the convolution it inverts
        self.activation = activation              # None or "relu"

    def forward(self, x, W, b=None):
        y = tiers.current.conv2d_transpose_forward(x, W, b, self.strides, self.out_hw, self.pads, self.activation)
        self.x, self.W = x, W
        self.y = y if self.activation else None
        return y

    def backward(self, gy):
        return tiers.current.conv2d_transpose_backward(gy, self.x, self.W, self.y, self.strides, self.pads,
                                                        self.activation, _wants_grad(self, 0), _wants_grad(self, 1),
                                                        _wants_grad(self, 2))


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


def _split_activation(activation, owner):
    """(fused, after): the activation the convolution's node computes (None or "relu") and a
    Tensor -> Tensor function applied as its own node afterwards (None for none).

    ``activation`` is None, a name ("relu", "tanh", ...; see ``numbanet.activations``) or a
    Tensor -> Tensor callable; ``ops.relu`` itself is recognised and fused.
    """
    if activation in FUSED_ACTIVATIONS or activation is ops.relu:
        return ("relu" if activation is ops.relu else activation), None
    if isinstance(activation, str):
        from .. import activations   # the name table sits above the engine, which it builds on
        after = activations.get(activation)
        return ("relu", None) if after is ops.relu else (None, after)
    if callable(activation):
        return None, activation
    raise TypeError(f"{owner}: activation must be None, an activation name such as 'relu', or a callable "
                    f"Tensor -> Tensor, got {type(activation).__name__} {activation!r}")


def conv2d(x, W, b=None, strides=(1, 1), padding="valid", activation=None):
    """y = act(conv(x, W) + b): 2-D convolution of NHWC ``x`` with kernel ``W`` (KH, KW, C, F), bias ``b`` (F,).

    ``padding`` is "valid", "same" (TensorFlow's split: extra cell bottom/right)
    or explicit (PT, PB, PL, PR). ``activation`` is None, a name or a Tensor
    function: "relu" is computed inside the convolution's node (the fast tier
    fuses it into the same pass), any other one as its own node after it.
    Returns a Tensor (N, OH, OW, F).
    """
    fused, after = _split_activation(activation, "conv2d")
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
    fn = Conv2D((SH, SW), pads, fused)
    y = fn(x, W) if b is None else fn(x, W, b)
    return y if after is None else after(y)


def conv2d_transpose(x, W, b=None, strides=(1, 1), padding="valid", output_padding=None, activation=None):
    """y = act(conv2d_transpose(x, W) + b): NHWC ``x``, kernel ``W`` (KH, KW, F, C), bias (F,).

    ``activation`` as in ``conv2d``: "relu" inside the node, any other one after it.

    Output size per axis (Keras): output_padding None -> "valid" H*S + max(K - S, 0),
    "same" H*S; else (H - 1)*S + K - 2*pad + op with pad = K//2 ("same") or 0.
    Returns a Tensor (N, OH, OW, F).
    """
    fused, after = _split_activation(activation, "conv2d_transpose")
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
    fn = Conv2DTranspose((SH, SW), (OH, OW), pads, fused)
    y = fn(x, W) if b is None else fn(x, W, b)
    return y if after is None else after(y)
