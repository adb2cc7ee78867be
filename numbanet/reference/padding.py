"""Output sizes and zero padding of convolutions and pooling, by the Keras / TensorFlow rule.

One axis at a time: input size n, kernel (or pool window) k, stride s.

    "valid":  no padding,          out = floor((n - k) / s) + 1
    "same":   out = ceil(n / s),   total = max((out - 1) s + k - n, 0)
              before = total // 2, after = total - before      (an odd cell goes after)

A transposed convolution maps n back to the size a convolution would have come
from (output_padding op given or None):

    op None:  "valid" n s + max(k - s, 0),   "same" n s
    op given: (n - 1) s + k - 2 pad + op,    pad = k // 2 ("same"), 0 ("valid")

and its underlying convolution (size out -> n) has before = 0 ("valid") or
max((n - 1) s + k - out, 0) // 2 ("same"); its after is whatever makes that
convolution's output exactly n, (n - 1) s + k - out - before, which may be negative.

fast tier: numbanet.engine.conv_shapes (the same rules, plus argument checking).
"""
from __future__ import annotations


def out_size(n, k, s, before, after):
    """Output length of a window of k cells stepping by s over n cells padded by (before, after)."""
    return (n + before + after - k) // s + 1


def same_pads(n, k, s):
    """(before, after) zero padding of one "same" axis.   fast tier: conv_shapes.same_pads."""
    out = -(-n // s)                        # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv_pads(H, W, KH, KW, SH, SW, padding):
    """(PT, PB, PL, PR) for "valid" or "same"; an explicit 4-tuple is passed through.

    fast tier: numbanet.engine.conv_shapes.conv_pads (same signature).
    """
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        return same_pads(H, KH, SH) + same_pads(W, KW, SW)
    return tuple(int(p) for p in padding)


def transpose_out_size(n, k, s, padding, output_padding=None):
    """Output length of a transposed convolution along one axis (module docstring).

    fast tier: numbanet.engine.conv_shapes.transpose_output_size (same signature).
    """
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def transpose_pads(H, W, OH, OW, KH, KW, SH, SW, padding):
    """(PT, PB, PL, PR) of the convolution (OH, OW) -> (H, W) that a transposed convolution inverts.

    PB and PR may be negative (then the convolution ignores the last rows/columns).
    fast tier: the pads computed in numbanet.engine.conv.conv2d_transpose.
    """
    PT = 0 if padding == "valid" else max((H - 1) * SH + KH - OH, 0) // 2
    PL = 0 if padding == "valid" else max((W - 1) * SW + KW - OW, 0) // 2
    return PT, (H - 1) * SH + KH - OH - PT, PL, (W - 1) * SW + KW - OW - PL
