"""Analytic FLOP counts of the engine's Functions, forward and backward, for ``numbanet.tracing``.

Counting FLOPs
--------------
A multiply-add counts 2 (products and convolutions: 2 * MACs); every other
elementwise operation counts 1 per element, a transcendental one (exp, log, tanh,
sqrt) included; a sum of n terms counts n adds, a maximum over n terms n
comparisons; data movement (reshape, transpose, indexing, concatenation, a cast,
nearest upsampling) counts 0. Padded cells take part in the products as the
matrix product computes them. With these rules:

* Dense (``Linear``), x (B, D) @ W (D, U): forward 2*B*D*U, + B*U for the bias,
  + B*U * (1 for relu/tanh, 4 for sigmoid: negate, exp, add, reciprocal);
  backward gz = gy * f'(y) (relu 2, tanh 3, sigmoid 3 per element), gW 2*B*D*U,
  gx 2*B*D*U when x wants a gradient, gb B*U.
* Conv2D, x (N, H, W, C), W (KH, KW, C, F), y (N, OH, OW, F):
  MACs = N*OH*OW*KH*KW*C*F; forward 2*MACs + N*OH*OW*F for the bias + as many for a
  fused relu; backward 2 per output element for the relu mask, 2*MACs for gx (when
  wanted) and for gW, N*OH*OW*F for gb.
* Conv2DTranspose, x (N, H, W, C): MACs = N*H*W*KH*KW*C*F, otherwise as Conv2D.
* MaxPool2D: forward KH*KW comparisons per output element, backward 1 add each.
* Conv2DReluMaxPool (the fused pair): the Conv2D's rules plus the MaxPool2D's, the
  relu mask counted at the pooled size (2 per pooled element, backward).
  Upsample2D "nearest": 0 forward, 1 add per output element backward; "bilinear":
  4 multiply-adds per output element both ways.
* SimpleRNN, x (N, T, D), U units: forward 2*N*T*D*U + 2*N*T*U*U + N*T*U each for
  the bias, the recurrent add and the activation; backward the derivative, the
  carried dh, da R^T, gR, gW, gb and gx (when wanted), by the same rules.
* Embedding: 0 forward (a gather), one add per output element backward.
* Elementwise engine ops: ``ELEMENTWISE`` lists (forward per output element,
  backward per output element for each input that needs a gradient); where an
  input was broadcast, summing its gradient back adds one add per output element
  beyond its own size.
* Losses: ``LOSS_FLOPS`` per element of y_pred, counted from the formulas in
  ``numbanet/losses.py``.

``flops(node)`` takes what the trace recorded of one node: ``fn`` (the Function,
for its attributes such as strides or activation), ``in_shapes`` (the shape of each
input, None for a constant), ``needs`` (whether each input wanted a gradient) and
``out_shape``; it returns (forward, backward), or (None, None) for a Function
without a rule.
"""
from __future__ import annotations

from math import prod

from . import losses as losses_mod
from .engine import ops
from .engine.conv import Conv2D, Conv2DTranspose
from .engine.conv_pool import Conv2DReluMaxPool
from .engine.functional import Dropout, Linear, LogSoftmax, Softmax
from .engine.pooling import MaxPool2D, Upsample2D
from .engine.recurrent import SimpleRNN
from .engine.sequence import Embedding

#: (forward FLOPs per output element, (backward FLOPs per output element for input 0's gradient, input 1's))
ELEMENTWISE = {
    ops.Add: (1, (0, 0)), ops.Sub: (1, (0, 1)), ops.Mul: (1, (1, 1)), ops.Div: (1, (1, 2)),
    ops.Pow: (1, (3, 3)), ops.Neg: (1, (1,)), ops.Exp: (1, (1,)), ops.Log: (1, (1,)), ops.Sqrt: (1, (2,)),
    ops.Abs: (1, (2,)), ops.Clip: (2, (1,)), ops.Cast: (0, (0,)), ops.Tanh: (1, (3,)),
    ops.Sigmoid: (4, (3,)), ops.ReLU: (1, (2,)), ops.LeakyReLU: (2, (2,)), ops.ELU: (3, (3,)),
    Dropout: (1, (1,)), Softmax: (5, (4,)), LogSoftmax: (5, (4,)),
}

#: (loss class name, from_logits) -> (forward, backward) FLOPs per element of y_pred
LOSS_FLOPS = {
    ("MeanSquaredError", False): (3, 3), ("MeanAbsoluteError", False): (3, 4),
    ("BinaryCrossentropy", False): (10, 9), ("BinaryCrossentropy", True): (9, 7),
    ("CategoricalCrossentropy", False): (6, 7), ("CategoricalCrossentropy", True): (5, 5),
    ("SparseCategoricalCrossentropy", False): (5, 4), ("SparseCategoricalCrossentropy", True): (5, 4),
}

ACTIVATION_FORWARD = {None: 0, "linear": 0, "relu": 1, "tanh": 1, "sigmoid": 4}
ACTIVATION_BACKWARD = {None: 0, "linear": 0, "relu": 2, "tanh": 3, "sigmoid": 3}   # f'(y), then * gy


# ------------------------------------------------------------------ the rules
def _n(shape):
    return int(prod(shape)) if shape is not None else 0


def _unbroadcast_adds(shape, out):
    return _n(out) - _n(shape) if shape is not None and tuple(shape) != tuple(out) else 0


def _elementwise_flops(rule, node):
    per_out, per_input = rule
    n = _n(node.out_shape)
    back = 0
    for i, (shape, need) in enumerate(zip(node.in_shapes, node.needs)):
        if need:
            back += per_input[min(i, len(per_input) - 1)] * n + _unbroadcast_adds(shape, node.out_shape)
    return per_out * n, back


def _linear_flops(node):
    fn, (xs, Ws), needs = node.fn, node.in_shapes[:2], node.needs
    D, U = Ws
    B = _n(xs) // max(D, 1)
    bias = len(node.in_shapes) == 3
    act = fn.activation
    fwd = 2 * B * D * U + (B * U if bias else 0) + ACTIVATION_FORWARD.get(act, 1) * B * U
    bwd = ACTIVATION_BACKWARD.get(act, 2) * B * U + 2 * B * D * U + (2 * B * D * U if needs[0] else 0)
    return fwd, bwd + (B * U if bias and needs[2] else 0)


def _conv_flops(node):
    fn, xs, Ws, out = node.fn, node.in_shapes[0], node.in_shapes[1], node.out_shape
    KH, KW = Ws[:2]
    if isinstance(fn, Conv2DTranspose):      # each input pixel's C values meet the kernel's taps for F outputs
        macs = _n(xs) * KH * KW * Ws[2]
    else:                                    # each output value is one dot product of KH*KW*C terms
        macs = _n(out) * KH * KW * Ws[2]
    P, relu, bias, needs = _n(out), fn.activation == "relu", len(node.in_shapes) == 3, node.needs
    fwd = 2 * macs + (P if bias else 0) + (P if relu else 0)
    bwd = (2 * P if relu else 0) + (2 * macs if needs[0] else 0) + (2 * macs if needs[1] else 0)
    return fwd, bwd + (P if bias and needs[2] else 0)


def _conv_pool_flops(node):
    fn, Ws, out = node.fn, node.in_shapes[1], node.out_shape
    KH, KW, C, F = Ws
    P = out[0] * fn.conv_out_hw[0] * fn.conv_out_hw[1] * F        # the convolution's outputs, never stored
    macs, pooled, relu, needs = P * KH * KW * C, _n(out), fn.activation == "relu", node.needs
    fwd = 2 * macs + (P if len(node.in_shapes) == 3 else 0) + (P if relu else 0) + pooled * fn.pool[0] * fn.pool[1]
    bwd = pooled + (2 * pooled if relu else 0) + (2 * macs if needs[0] else 0) + (2 * macs if needs[1] else 0)
    return fwd, bwd + (P if len(node.in_shapes) == 3 and needs[2] else 0)


def _pool_flops(node):
    KH, KW = node.fn.pool
    return _n(node.out_shape) * KH * KW, _n(node.out_shape)


def _upsample_flops(node):
    n = _n(node.out_shape)
    return (0, n) if node.fn.interpolation == "nearest" else (8 * n, 8 * n)


def _rnn_flops(node):
    fn, (N, T, D), U = node.fn, node.in_shapes[0], node.in_shapes[1][1]
    NTU = N * T * U
    fwd = 2 * N * T * D * U + 2 * NTU * U + (NTU if fn.use_bias else 0) + NTU \
        + ACTIVATION_FORWARD.get(fn.activation, 1) * NTU
    bwd = (ACTIVATION_BACKWARD.get(fn.activation, 2) + 1) * NTU + 4 * NTU * U + 2 * N * T * D * U \
        + (NTU if fn.use_bias else 0) + (2 * N * T * D * U if node.needs[0] else 0)
    return fwd, bwd


def _matmul_flops(node):
    a, b = node.in_shapes
    out = node.out_shape
    K = a[-1] if len(a) else 1
    macs = _n(out) * K
    bwd = 0
    for s, need in zip((a, b), node.needs):
        if need:   # a gradient in the batch shape of y is summed back to a stacked input's own shape
            full = tuple(out[:-2]) + tuple(s[-2:]) if len(s) >= 2 and len(out) > 2 else s
            bwd += 2 * macs + max(_n(full) - _n(s), 0)
    return 2 * macs, bwd


def _reduce_flops(node):
    n = _n(node.in_shapes[0])
    return n, (0 if isinstance(node.fn, ops.Sum) else 4 * n)     # Max: mask, multiply, divide, tie count


def _loss_flops(node):
    loss = node.fn.loss
    per = LOSS_FLOPS.get((type(loss).__name__, bool(getattr(loss, "from_logits", False))))
    if per is None:
        return None, None
    n = _n(node.in_shapes[0])
    return per[0] * n, per[1] * n


def flops(node):
    """(forward, backward) FLOPs of one node by the rules of the module docstring; (None, None) if none."""
    fn = node.fn
    for cls in type(fn).__mro__:
        if cls in ELEMENTWISE:
            return _elementwise_flops(ELEMENTWISE[cls], node)
    if isinstance(fn, Linear):
        return _linear_flops(node)
    if isinstance(fn, (Conv2D, Conv2DTranspose)):
        return _conv_flops(node)
    if isinstance(fn, MaxPool2D):
        return _pool_flops(node)
    if isinstance(fn, Conv2DReluMaxPool):
        return _conv_pool_flops(node)
    if isinstance(fn, Upsample2D):
        return _upsample_flops(node)
    if isinstance(fn, SimpleRNN):
        return _rnn_flops(node)
    if isinstance(fn, ops.MatMul):
        return _matmul_flops(node)
    if isinstance(fn, (ops.Sum, ops.Max)):
        return _reduce_flops(node)
    if isinstance(fn, (ops.Reshape, ops.Transpose, ops.Concatenate)):
        return 0, 0
    if isinstance(fn, (ops.GetItem, Embedding)):
        return 0, _n(node.out_shape)
    if isinstance(fn, losses_mod._ReducedLoss):
        return _loss_flops(node)
    return None, None
