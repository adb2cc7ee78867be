"""Padding, checked against direct loops written here (not numbanet's conv_shapes helpers).

For each spatial axis with input n, kernel (window) k and stride s, the rules of
API.md, as TensorFlow applies them:

* "valid": no padding, out = floor((n - k) / s) + 1;
* "same":  out = ceil(n / s), total = max((out - 1) s + k - n, 0),
  top/left = total // 2, the extra cell of an odd total at the bottom/right;
* max pooling pads with -inf (a padded cell never wins) and sends each window's
  gradient to its first maximum in row-major order;
* a transposed convolution from n to out is the input-gradient of the
  convolution from out to n with the same padding rule, so its pad-before is
  that convolution's top/left pad.

The oracles below loop over output positions and kernel taps with explicitly
padded arrays, in longdouble (so their own rounding is negligible next to the
bounds); the convolutions' tolerances are K eps sum|terms| for K terms.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import functional as F

LD = np.longdouble
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ the rules
def out_and_pads(n, k, s, padding):
    """(out, before, after) of a convolution / pooling along one axis (module docstring)."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def transpose_out(n, k, s, padding, op):
    """Output length of a transposed convolution (API.md)."""
    if op is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + op


def padded(x, pads, value):
    """x (N, H, W, C) inside a (N, H+PT+PB, W+PL+PR, C) array filled with ``value``."""
    PT, PB, PL, PR = pads
    N, H, W, C = x.shape
    xp = np.full((N, H + PT + PB, W + PL + PR, C), value, dtype=x.dtype)
    xp[:, PT:PT + H, PL:PL + W] = x
    return xp


# -------------------------------------------------------------------- oracles
def conv_ref(x, W, strides, pads, out_hw):
    """y[n, i, j, f] = sum_{a, b, c} xp[n, i SH + a, j SW + b, c] W[a, b, c, f], xp zero-padded."""
    (SH, SW), (OH, OW) = strides, out_hw
    KH, KW, _, Fn = W.shape
    xp = padded(x, pads, 0)
    y = np.zeros((x.shape[0], OH, OW, Fn), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            for a in range(KH):
                for b in range(KW):
                    y[:, i, j] += xp[:, i * SH + a, j * SW + b] @ W[a, b]       # (N, C) @ (C, F)
    return y


def conv_grads_ref(x, W, gy, strides, pads):
    """(gx, gW) of conv_ref: each tap's product sent back to the input cell and the weight it used."""
    SH, SW = strides
    KH, KW = W.shape[:2]
    PT, _, PL, _ = pads
    N, H, Wd, _ = x.shape
    xp = padded(x, pads, 0)
    gxp, gW = np.zeros_like(xp), np.zeros_like(W)
    for i in range(gy.shape[1]):
        for j in range(gy.shape[2]):
            for a in range(KH):
                for b in range(KW):
                    gxp[:, i * SH + a, j * SW + b] += gy[:, i, j] @ W[a, b].T   # (N, F) @ (F, C)
                    gW[a, b] += xp[:, i * SH + a, j * SW + b].T @ gy[:, i, j]   # (C, N) @ (N, F)
    return gxp[:, PT:PT + H, PL:PL + Wd], gW


def max_pool_ref(x, pool, strides, pads, out_hw, gy):
    """(y, gx): -inf padding; gy of each window goes to its first maximum in row-major order."""
    (KH, KW), (SH, SW), (OH, OW) = pool, strides, out_hw
    PT, _, PL, _ = pads
    N, H, Wd, C = x.shape
    xp = padded(x, pads, -np.inf)
    y = np.empty((N, OH, OW, C), dtype=x.dtype)
    gxp = np.zeros_like(xp)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best, where = -np.inf, None
                    for a in range(KH):                   # row-major: a strict > keeps the first maximum
                        for b in range(KW):
                            v = xp[n, i * SH + a, j * SW + b, c]
                            if where is None or v > best:
                                best, where = v, (i * SH + a, j * SW + b)
                    y[n, i, j, c] = best
                    gxp[n, where[0], where[1], c] += gy[n, i, j, c]
    return y, gxp[:, PT:PT + H, PL:PL + Wd]


def conv_transpose_scatter_ref(x, W, strides, pad_before, out_hw):
    """y (N, OH, OW, F): every input pixel (h, w) scatters x[h, w] W[a, b]^T to (h SH - PT + a, w SW - PL + b).

    W has the Keras transposed layout (KH, KW, F, C); cells that fall outside the output are dropped.
    """
    (SH, SW), (PT, PL), (OH, OW) = strides, pad_before, out_hw
    KH, KW, Fn, _ = W.shape
    N, H, Wd, _ = x.shape
    y = np.zeros((N, OH, OW, Fn), dtype=x.dtype)
    for h in range(H):
        for w in range(Wd):
            for a in range(KH):
                for b in range(KW):
                    i, j = h * SH - PT + a, w * SW - PL + b
                    if 0 <= i < OH and 0 <= j < OW:
                        y[:, i, j] += x[:, h, w] @ W[a, b].T                     # (N, C) @ (C, F)
    return y


def eps(dtype):
    return float(np.finfo(dtype).eps)


def assert_within(actual, expected, bound, label):
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape}, expected {expected.shape}"
    err = np.abs(actual.astype(LD) - expected)
    bad = ~(err <= bound)
    assert not bad.any(), (f"{label}: {int(bad.sum())} of {err.size} elements off; worst error "
                           f"{float(np.max(np.where(bad, err, 0))):.3e} at {np.argwhere(bad)[0].tolist()}")


def _draw(data, low, high, shape, dtype, label):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=f"seed {label}"))
    return rng.uniform(low, high, shape).astype(dtype)


DTYPES = st.sampled_from([np.float32, np.float64])


# ---------------------------------------------------------------- convolution
def draw_channels_and_strides(data, route):
    """(C, F, SH, SW) that send numbanet's convolution down one route (engine/conv.py):
    "direct" loops (stride 1, one channel or one filter), the "flipped" convolution (stride 1,
    fewer filters than channels), or im2col + GEMM ("general", any stride)."""
    if route == "direct":
        C, Fn = data.draw(st.sampled_from([(1, 1), (1, 3), (3, 1), (1, 2), (2, 1)]), label="C, F")
        return C, Fn, 1, 1
    if route == "flipped":
        C = data.draw(st.integers(3, 4), label="C")
        return C, data.draw(st.integers(2, C - 1), label="F"), 1, 1
    C, Fn = data.draw(st.integers(2, 3), label="C"), data.draw(st.integers(2, 3), label="F")
    SH, SW = data.draw(st.integers(1, 3), label="SH"), data.draw(st.integers(1, 3), label="SW")
    assume(SH > 1 or SW > 1 or Fn >= C)
    return C, Fn, SH, SW


ROUTES = ["general", "direct", "flipped"]


@pytest.mark.parametrize("route", ROUTES)
@SETTINGS
@given(data=st.data(), dtype=DTYPES, padding=st.sampled_from(["valid", "same"]))
def test_conv2d_padding_against_direct_loops(data, dtype, padding, route):
    N = data.draw(st.integers(1, 2), label="N")
    C, Fn, SH, SW = draw_channels_and_strides(data, route)
    H, Wd = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
    KH, KW = data.draw(st.integers(1, 4), label="KH"), data.draw(st.integers(1, 4), label="KW")
    assume(padding == "same" or (H >= KH and Wd >= KW))
    OH, PT, PB = out_and_pads(H, KH, SH, padding)
    OW, PL, PR = out_and_pads(Wd, KW, SW, padding)
    x = _draw(data, -1, 1, (N, H, Wd, C), dtype, "x")
    W = _draw(data, -1, 1, (KH, KW, C, Fn), dtype, "W")
    b = _draw(data, -1, 1, (Fn,), dtype, "b")
    gy = _draw(data, -1, 1, (N, OH, OW, Fn), dtype, "gy")
    pads, strides = (PT, PB, PL, PR), (SH, SW)

    xt, Wt, bt = (nb.Tensor(v, requires_grad=True) for v in (x, W, b))
    y = F.conv2d(xt, Wt, bt, strides, padding)
    y.backward(gy)

    X, Wl, G = x.astype(LD), W.astype(LD), gy.astype(LD)
    y_ref = conv_ref(X, Wl, strides, pads, (OH, OW)) + b.astype(LD)
    gx_ref, gW_ref = conv_grads_ref(X, Wl, G, strides, pads)
    # sums of |terms|, from the same loops on absolute values, and the number of terms in each sum
    y_mag = conv_ref(np.abs(X), np.abs(Wl), strides, pads, (OH, OW)) + np.abs(b.astype(LD))
    gx_mag, gW_mag = conv_grads_ref(np.abs(X), np.abs(Wl), np.abs(G), strides, pads)
    e = eps(dtype)
    label = f"conv2d x{x.shape} W{W.shape} s{strides} {padding} pads{pads}"
    assert_within(y.data, y_ref, (KH * KW * C + 1) * e * y_mag, label + " y")
    assert_within(xt.grad, gx_ref, KH * KW * Fn * e * gx_mag, label + " gx")
    assert_within(Wt.grad, gW_ref, N * OH * OW * e * gW_mag, label + " gW")
    assert_within(bt.grad, G.sum(axis=(0, 1, 2)), N * OH * OW * e * np.abs(G).sum(axis=(0, 1, 2)), label + " gb")


def test_same_padding_puts_the_odd_cell_at_the_bottom_right():
    """A 2x2 kernel of ones at stride 1 on a 3x3 image: total pad 1 per axis, all of it after the image.

    So y[i, j] sums x[i:i+2, j:j+2] (zero beyond the last row/column); with the pad on top
    it would sum x[i-1:i+1, j-1:j+1].
    """
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = F.conv2d(nb.Tensor(x), nb.Tensor(np.ones((2, 2, 1, 1))), None, 1, "same").data[0, :, :, 0]
    expected = np.array([[1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 3 + 6],
                         [4 + 5 + 7 + 8, 5 + 6 + 8 + 9, 6 + 9],
                         [7 + 8, 8 + 9, 9]], dtype=float)
    np.testing.assert_array_equal(y, expected)   # small integers: every sum is exact


# ---------------------------------------------------------------- max pooling
@SETTINGS
@given(st.data(), DTYPES, st.sampled_from(["valid", "same"]), st.sampled_from(["distinct", "ties", "negative"]))
def test_max_pool_padding_against_direct_loops(data, dtype, padding, values):
    N, C = data.draw(st.integers(1, 2), label="N"), data.draw(st.integers(1, 2), label="C")
    H, Wd = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
    KH, KW = data.draw(st.integers(1, 4), label="KH"), data.draw(st.integers(1, 4), label="KW")
    strides = data.draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)), label="strides")
    SH, SW = (KH, KW) if strides is None else strides
    assume(padding == "same" or (H >= KH and Wd >= KW))
    OH, PT, PB = out_and_pads(H, KH, SH, padding)
    OW, PL, PR = out_and_pads(Wd, KW, SW, padding)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shape = (N, H, Wd, C)
    if values == "distinct":
        x = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype) - 10
    elif values == "ties":            # few distinct values: the first maximum in row-major order must win
        x = rng.integers(0, 3, shape).astype(dtype)
    else:                             # all below zero: a zero-padded cell would win
        x = -rng.uniform(1, 2, shape).astype(dtype)
    gy = rng.uniform(-1, 1, (N, OH, OW, C)).astype(dtype)

    xt = nb.Tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, (KH, KW), strides, padding)
    y.backward(gy)
    y_ref, gx_ref = max_pool_ref(x.astype(LD), (KH, KW), (SH, SW), (PT, PB, PL, PR), (OH, OW), gy.astype(LD))
    label = f"max_pool x{shape} pool{(KH, KW)} s{(SH, SW)} {padding} {values}"
    np.testing.assert_array_equal(y.data, y_ref.astype(dtype), err_msg=label)   # a max is exact
    # a cell collects the gy of up to ceil(KH/SH) ceil(KW/SW) windows: that many roundings of their sum
    _, gx_mag = max_pool_ref(x.astype(LD), (KH, KW), (SH, SW), (PT, PB, PL, PR), (OH, OW), np.abs(gy).astype(LD))
    assert_within(xt.grad, gx_ref, KH * KW * eps(dtype) * gx_mag, label + " gx")


# ------------------------------------------------------ transposed convolution
@pytest.mark.parametrize("route", ROUTES)
@SETTINGS
@given(data=st.data(), dtype=DTYPES, padding=st.sampled_from(["valid", "same"]), explicit_op=st.booleans())
def test_conv2d_transpose_against_scatter_loops_and_the_adjoint(data, dtype, padding, explicit_op, route):
    # the routes of the convolution whose input-gradient this is: C and F swap roles
    N = data.draw(st.integers(1, 2), label="N")
    Fn, C, SH, SW = draw_channels_and_strides(data, route)
    H, Wd = data.draw(st.integers(1, 5), label="H"), data.draw(st.integers(1, 5), label="W")
    KH, KW = data.draw(st.integers(1, 4), label="KH"), data.draw(st.integers(1, 4), label="KW")
    op = None
    if explicit_op:
        op = (data.draw(st.integers(0, SH - 1), label="op h"), data.draw(st.integers(0, SW - 1), label="op w"))
    OH = transpose_out(H, KH, SH, padding, None if op is None else op[0])
    OW = transpose_out(Wd, KW, SW, padding, None if op is None else op[1])
    assume(OH >= 1 and OW >= 1)
    # the convolution (OH, OW) -> (H, W) that this transposes; numbanet rejects the others (test_conv_keras)
    OH2, PT, PB = out_and_pads(OH, KH, SH, padding)
    OW2, PL, PR = out_and_pads(OW, KW, SW, padding)
    assume((OH2, OW2) == (H, Wd))
    pads, strides = (PT, PB, PL, PR), (SH, SW)
    x = _draw(data, -1, 1, (N, H, Wd, C), dtype, "x")
    W = _draw(data, -1, 1, (KH, KW, Fn, C), dtype, "W")
    b = _draw(data, -1, 1, (Fn,), dtype, "b")
    gy = _draw(data, -1, 1, (N, OH, OW, Fn), dtype, "gy")

    xt, Wt, bt = (nb.Tensor(v, requires_grad=True) for v in (x, W, b))
    y = F.conv2d_transpose(xt, Wt, bt, strides, padding, op)
    y.backward(gy)

    X, Wl, G = x.astype(LD), W.astype(LD), gy.astype(LD)
    e = eps(dtype)
    label = f"conv2d_transpose x{x.shape} W{W.shape} s{strides} {padding} op={op} pads{pads}"
    y_ref = conv_transpose_scatter_ref(X, Wl, strides, (PT, PL), (OH, OW)) + b.astype(LD)
    y_mag = conv_transpose_scatter_ref(np.abs(X), np.abs(Wl), strides, (PT, PL), (OH, OW)) + np.abs(b.astype(LD))
    assert_within(y.data, y_ref, (KH * KW * C + 1) * e * y_mag, label + " y")

    # the adjoint: <conv(z), x> = <z, convT(x)> for any z (N, OH, OW, F), with the convolution's own pads
    z = _draw(data, -1, 1, (N, OH, OW, Fn), dtype, "z").astype(LD)
    conv_z = conv_ref(z, Wl, strides, pads, (H, Wd))
    lhs, rhs = np.sum(conv_z * X), np.sum(z * (y.data.astype(LD) - b.astype(LD)))
    scale = np.sum(conv_ref(np.abs(z), np.abs(Wl), strides, pads, (H, Wd)) * np.abs(X))
    assert abs(lhs - rhs) <= (KH * KW * C + 2) * e * scale + e * np.sum(np.abs(z) * np.abs(b.astype(LD))), label

    # gradients: gx is the convolution of gy; gW, gb the scatter's weight and bias sums
    gx_ref = conv_ref(G, Wl, strides, pads, (H, Wd))
    gx_mag = conv_ref(np.abs(G), np.abs(Wl), strides, pads, (H, Wd))
    assert_within(xt.grad, gx_ref, KH * KW * Fn * e * gx_mag, label + " gx")
    gW_ref, gW_mag = np.zeros_like(Wl), np.zeros_like(Wl)
    for h in range(H):
        for w in range(Wd):
            for a in range(KH):
                for c in range(KW):
                    i, j = h * SH - PT + a, w * SW - PL + c
                    if 0 <= i < OH and 0 <= j < OW:
                        gW_ref[a, c] += G[:, i, j].T @ X[:, h, w]                  # (F, N) @ (N, C)
                        gW_mag[a, c] += np.abs(G[:, i, j]).T @ np.abs(X[:, h, w])
    assert_within(Wt.grad, gW_ref, N * H * Wd * e * gW_mag, label + " gW")
    assert_within(bt.grad, G.sum(axis=(0, 1, 2)), N * OH * OW * e * np.abs(G).sum(axis=(0, 1, 2)), label + " gb")
