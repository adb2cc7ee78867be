"""Output sizes and padding amounts of convolutions and pooling (Keras / TensorFlow rules).

One axis at a time, with input size ``n``, kernel (window) ``k``, stride ``s``:

* "valid": no padding,           out = floor((n - k) / s) + 1        (needs n >= k)
* "same":  out = ceil(n / s),    total = max((out - 1)*s + k - n, 0),
           before = total // 2,  after = total - before  (the extra cell at the end)

Transposed convolution maps size n back to the size a convolution would have
come from (Keras's ``compute_conv_transpose_output_shape``):

* output_padding None: "valid" -> n*s + max(k - s, 0),  "same" -> n*s
* output_padding op:   (n - 1)*s + k - 2*pad + op,  pad = k // 2 ("same"), 0 ("valid")

and the padding "before" of that underlying convolution is what TensorFlow
uses for an output of that size: 0 for "valid", for "same" it is
max((n - 1)*s + k - out, 0) // 2.
"""
from __future__ import annotations

import numpy as np

PADDINGS = ("valid", "same")


def pair(value, name, owner, minimum=1):
    """An int or a pair of ints -> a tuple of two ints >= ``minimum``; ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an int or a tuple of 2 ints, got {value!r}")
    if isinstance(value, (int, np.integer)):  # NumPy integers too, as Keras takes them
        value = (value, value)
    try:
        a, b = value
        a, b = _as_int(a), _as_int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be an int or a tuple of 2 ints, got {value!r}") from None
    if a < minimum or b < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {(a, b)}")
    return a, b


def _as_int(v):
    if isinstance(v, bool) or int(v) != v:
        raise ValueError
    return int(v)


def check_padding(padding, owner):
    """Normalise a padding string ("valid" / "same", any case) or raise ValueError."""
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def conv_output_size(n, k, s, padding):
    """Output length along one axis; ``None`` in, ``None`` out (unknown batch-free sizes)."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // s)
    return (n - k) // s + 1


def same_pads(n, k, s):
    """(before, after) zero padding of a "same" convolution along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv_pads(H, W, KH, KW, SH, SW, padding):
    """(PT, PB, PL, PR) for "valid" / "same", or an explicit 4-tuple passed through."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        return same_pads(H, KH, SH) + same_pads(W, KW, SW)
    return tuple(int(p) for p in padding)


def transpose_output_size(n, k, s, padding, output_padding=None):
    """Output length of a transposed convolution along one axis (module docstring)."""
    if n is None:
        return None
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def transpose_pad_before(n, out, k, s, padding):
    """Top/left padding of the convolution that a transposed convolution inverts."""
    if padding == "valid":
        return 0
    return max((n - 1) * s + k - out, 0) // 2
