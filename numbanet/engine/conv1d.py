"""1-D convolution as the 2-D one on images one row high.

Notation: x (N, T, C) a batch of sequences (T steps, C channels), W (K, C, F)
kernel (Keras's Conv1D layout), b (F,), stride S, dilation D, y (N, OT, F).

    y[n, t, f] = b[f] + sum_{k, c} x[n, t*S - PL + k*D, c] W[k, c, f]

A sequence is a 1 x T image and a (K, C, F) kernel a 1 x K one, so ``conv2d``
computes it with no new kernel (both tiers, all their routes)::

    x (N, T, C)  -> (N, 1, T, C)        one image row per sequence
    W (K, C, F)  -> (1, K, C, F)        one kernel row
    conv2d       -> (N, 1, OT, F)       strides (1, S), pads (0, 0, PL, PR)
                 -> (N, OT, F)

and the gradients come back through the same two reshapes. A dilated kernel
(D > 1) is the kernel with D - 1 zero rows between its taps, of length
KD = (K - 1)*D + 1; its gradient is the dilated kernel's gradient at the taps
(``dilate_kernel``, built from concatenate / reshape / getitem).

Output length OT and padding (PL, PR), with KD the dilated kernel's length:

* "valid":  OT = floor((T - KD) / S) + 1 (T >= KD), no padding;
* "same":   OT = ceil(T / S), total = max((OT - 1)*S + KD - T, 0), PL = total // 2, PR the rest;
* "causal": PL = KD - 1 zeros before the sequence, PR = 0, OT = floor((T - 1) / S) + 1, so
            y[t] depends on x[: t*S + 1] only (WaveNet's causal convolution, Keras's "causal").
"""
from __future__ import annotations

import numpy as np

from . import ops
from .conv import conv2d
from .conv_shapes import same_pads
from .tensor import as_tensor

PADDINGS_1D = ("valid", "same", "causal")


def single(value, name, owner, minimum=1):
    """An int or a tuple/list of one int -> an int >= ``minimum`` (Keras's 1-D arguments); else the error."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {name} must be an int or a tuple of 1 int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {int(value)}")
    return int(value)


def check_padding_1d(padding, owner, allowed=PADDINGS_1D):
    """Normalise a 1-D padding string (any case) or raise ValueError naming the choices."""
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ValueError(f"{owner}: padding must be one of {', '.join(repr(p) for p in allowed)}, got {padding!r}")
    return padding.lower()


def conv1d_output_size(T, K, S, padding, D=1):
    """OT for an input of length T (None in, None out); see the module docstring."""
    if T is None:
        return None
    KD = (K - 1) * D + 1
    if padding == "valid":
        return (T - KD) // S + 1
    if padding == "causal":
        return (T - 1) // S + 1
    return -(-T // S)


def conv1d_pads(T, K, S, padding, D=1):
    """(PL, PR), the zeros before and after the sequence."""
    KD = (K - 1) * D + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return KD - 1, 0
    return same_pads(T, KD, S)


def dilate_kernel(W, D):
    """W (K, C, F) -> WD ((K - 1)*D + 1, C, F) with D - 1 zero rows between taps; WD[k*D] = W[k].

    Built from differentiable ops, so gW = gWD[::D] with no backward of its own:
        (K, C, F) -> (K, 1, C, F) ++ zeros (K, D-1, C, F) -> (K, D, C, F) -> (K*D, C, F) -> [:KD]
    """
    if D == 1:
        return W
    K, C, F = W.shape
    zeros = np.zeros((K, D - 1, C, F), dtype=W.dtype)
    padded = ops.concatenate([ops.reshape(W, (K, 1, C, F)), zeros], axis=1)    # (K, D, C, F)
    return ops.getitem(ops.reshape(padded, (K * D, C, F)), slice(0, (K - 1) * D + 1))


def conv1d(x, W, b=None, strides=1, padding="valid", dilation_rate=1, activation=None):
    """y = act(conv1d(x, W) + b): ``x`` (N, T, C), kernel ``W`` (K, C, F), bias ``b`` (F,) -> (N, OT, F).

    ``padding`` "valid", "same" or "causal"; ``strides`` > 1 together with
    ``dilation_rate`` > 1 is rejected, as Keras rejects it. ``activation`` as in
    ``conv2d`` ("relu" inside the convolution's node, any other one after it).
    """
    S = single(strides, "strides", "conv1d")
    D = single(dilation_rate, "dilation_rate", "conv1d")
    padding = check_padding_1d(padding, "conv1d")
    x, W = as_tensor(x), as_tensor(W)
    if x.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D input (batch, steps, channels), got shape {tuple(x.shape)}")
    if W.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D kernel (kernel_size, in_channels, filters), "
                         f"got shape {tuple(W.shape)}")
    if x.shape[2] != W.shape[1]:
        raise ValueError(f"conv1d: input has {x.shape[2]} channels but the kernel of shape {tuple(W.shape)} "
                         f"expects {W.shape[1]}")
    if S > 1 and D > 1:
        raise ValueError(f"conv1d: strides > 1 is not supported together with dilation_rate > 1, "
                         f"got strides={S} and dilation_rate={D}")
    N, T, _ = x.shape
    K, _, F = W.shape
    if T < 1 or conv1d_output_size(T, K, S, padding, D) < 1:
        raise ValueError(f"conv1d: kernel_size {K} (dilated to {(K - 1) * D + 1}) is larger than the input "
                         f"length {T} with padding {padding!r} (input shape {tuple(x.shape)})")
    PL, PR = conv1d_pads(T, K, S, padding, D)
    WD = dilate_kernel(W, D)
    y = conv2d(ops.reshape(x, (N, 1, T, x.shape[2])),                      # (N, T, C) -> (N, 1, T, C)
               ops.reshape(WD, (1,) + tuple(WD.shape)),                      # (KD, C, F) -> (1, KD, C, F)
               b, (1, S), (0, 0, PL, PR), activation)                        # -> (N, 1, OT, F)
    return ops.reshape(y, (N, y.shape[2], F))                                # -> (N, OT, F)
