"""Lesson 5: the transposed convolution is the convolution's input gradient, run forwards.

Run:  python examples/05_transposed_conv.py    (read alongside numbanet/engine/conv.py)

A convolution with kernel W (KH, KW, F, C), read as (KH, KW, in=F, out=C), maps
an (OH, OW, F) image to an (H, W, C) one. Its input gradient goes the other way,
(H, W, C) -> (OH, OW, F), and that is exactly what ``Conv2DTranspose`` computes,
with the same kernel array (Keras's layout for it is (KH, KW, filters, in)):

    Conv2DTranspose(x) = d/dz <conv2d(z, W), x>   = col2im(x2 @ W2^T)          (1)

The same map is also a plain stride-1 convolution (2): put SH - 1 zeros between
the rows of x and SW - 1 between its columns ("zero-stuffing"), pad the result
with KH - 1 - PT rows on top and KH - 1 - PB below (likewise left and right;
PT, PB are the paddings of the convolution that (1) inverts, PB < 0 means crop)
and slide the kernel flipped in both spatial axes, with F and C swapped:

    y[o, p] = b + sum_{i, j} xs[o + i, p + j] @ W[KH-1-i, KW-1-j].T     (xs: stuffed and padded x)

Output size (Keras): output_padding None: "valid" H*SH + max(KH - SH, 0),
"same" H*SH; output_padding op: (H - 1)*SH + KH - 2*pad + op, pad = KH // 2 for
"same", 0 for "valid". And its own input gradient is the convolution itself (3).
"""
import numpy as np

import numbanet as nb

F = nb.functional
EPS = np.finfo(np.float64).eps


def check(name, got, want, bound):
    """Assert |got - want| <= bound elementwise; print the largest error and its share of the bound."""
    err = np.abs(np.asarray(got) - np.asarray(want))
    assert err.shape == np.shape(bound) and np.all(err <= bound), f"{name}: |error| {err.max():.3e} too large"
    share = np.divide(err, bound, out=np.zeros(err.shape), where=bound > 0)
    print(f"    {name:<38} max |error| {err.max():.1e}, {share.max():.2g} x its bound")


def keras_output_size(n, k, s, padding, op):
    if op is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    return (n - 1) * s + k - 2 * (k // 2 if padding == "same" else 0) + op


def inverted_pads(n, out, k, s, padding):
    """(PT, PB) of the convolution out -> n that the transposed convolution inverts (PB may be < 0)."""
    before = 0 if padding == "valid" else max((n - 1) * s + k - out, 0) // 2
    return before, (n - 1) * s + k - out - before


def stuff_and_pad(x, strides, pads_hw, kernel_hw):
    """Zero-stuffed x padded by K - 1 - P on each side (cropped where that is negative).

    x (N, H, W, C) -> (N, (H-1)*SH + 1 + 2*(KH-1) - PT - PB, ..., C).
    """
    N, H, W, C = x.shape
    (SH, SW), ((PT, PB), (PL, PR)), (KH, KW) = strides, pads_hw, kernel_hw
    xs = np.zeros((N, (H - 1) * SH + 1, (W - 1) * SW + 1, C))
    xs[:, ::SH, ::SW] = x                                            # SH - 1 zeros between rows
    before_h, after_h, before_w, after_w = KH - 1 - PT, KH - 1 - PB, KW - 1 - PL, KW - 1 - PR
    xs = np.pad(xs, ((0, 0), (max(before_h, 0), max(after_h, 0)), (max(before_w, 0), max(after_w, 0)), (0, 0)))
    return xs[:, max(-before_h, 0):xs.shape[1] - max(-after_h, 0),
              max(-before_w, 0):xs.shape[2] - max(-after_w, 0)]


def stride1_conv(xp, Wf):
    """Plain 'valid' stride-1 convolution: xp (N, HP, WP, C), Wf (KH, KW, C, F) -> (N, HP-KH+1, WP-KW+1, F)."""
    KH, KW = Wf.shape[:2]
    OH, OW = xp.shape[1] - KH + 1, xp.shape[2] - KW + 1
    y = np.zeros((xp.shape[0], OH, OW, Wf.shape[3]))
    for i in range(KH):
        for j in range(KW):
            y += xp[:, i:i + OH, j:j + OW, :] @ Wf[i, j]             # (N, OH, OW, C) @ (C, F)
    return y


# ---------------------------------------------------------------- the picture: zero-stuffing
x_small = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
grid = stuff_and_pad(x_small, (2, 2), ((0, 0), (0, 0)), (3, 3))[0, :, :, 0]
print("x = [[1, 2], [3, 4]], kernel 3x3, strides 2, 'valid': the stride-1 convolution's input")
print("(one zero between pixels, K - 1 = 2 rows and columns of zeros around):")
for row in grid.astype(int):
    print("   " + " ".join(f"{v}" if v else "." for v in row))
assert grid.shape == (7, 7) and grid[2, 2] == 1 and grid[2, 4] == 2 and grid[4, 2] == 3 and grid.sum() == 10
print(f"a 3x3 window slides over it at stride 1: {grid.shape[0] - 2} x {grid.shape[1] - 2} outputs "
      f"= 2*2 + max(3 - 2, 0) = 5, Keras's 'valid' size")

# ---------------------------------------------------------------- four configurations, both tiers
rng = np.random.default_rng(5)
configs = [((2, 3, 4, 2), 3, (3, 3), (2, 2), "valid", None),
           ((2, 3, 4, 2), 3, (3, 3), (2, 2), "same", None),
           ((1, 3, 3, 2), 2, (4, 3), (3, 2), "valid", (2, 1)),    # explicit output_padding
           ((1, 2, 3, 1), 2, (2, 2), (3, 3), "valid", None)]      # kernel smaller than the stride: PB < 0
for shape, Fo, (KH, KW), strides, padding, op in configs:
    N, H, W, C = shape
    x = rng.normal(size=shape)
    layer = nb.layers.Conv2DTranspose(Fo, (KH, KW), strides=strides, padding=padding, output_padding=op,
                                      dtype="float64")
    layer(x)                                       # builds kernel (KH, KW, F, C) and bias (F,)
    layer.set_weights([rng.normal(size=(KH, KW, Fo, C)), rng.normal(size=(Fo,))])
    kernel, bias = layer.get_weights()
    ops = op or (None, None)
    OH = keras_output_size(H, KH, strides[0], padding, ops[0])
    OW = keras_output_size(W, KW, strides[1], padding, ops[1])
    pads_hw = (inverted_pads(H, OH, KH, strides[0], padding), inverted_pads(W, OW, KW, strides[1], padding))
    print(f"\nConv2DTranspose({Fo}, {(KH, KW)}, strides={strides}, padding={padding!r}, output_padding={op}) "
          f"on x {shape}: output {(N, OH, OW, Fo)}, inverted convolution's pads (PT, PB, PL, PR) = "
          f"{pads_hw[0] + pads_hw[1]}")

    # (2) in plain NumPy: zero-stuff, pad, stride-1 convolution with the flipped, swapped kernel
    Wf = kernel[::-1, ::-1].transpose(0, 1, 3, 2)                 # (KH, KW, F, C) -> (KH, KW, C, F)
    xp = stuff_and_pad(x, strides, pads_hw, (KH, KW))
    y_stuffed = stride1_conv(xp, Wf) + bias
    n_terms = KH * KW * C + 1                                      # products per output, and the bias
    bound = 2 * n_terms * EPS * (stride1_conv(np.abs(xp), np.abs(Wf)) + np.abs(bias))
    assert y_stuffed.shape == (N, OH, OW, Fo), y_stuffed.shape

    G = rng.normal(size=(N, OH, OW, Fo))                           # an upstream gradient for (3)
    # (3) the convolution of G with the same kernel, as im2col(G) @ W2 (lesson 4): (N, H, W, C)
    G_cols = F.im2col(G, (KH, KW), strides, padding).data           # (N*H*W, KH*KW*F)
    gx_conv = (G_cols @ kernel.reshape(-1, C)).reshape(N, H, W, C)
    gx_bound = 2 * (KH * KW * Fo) * EPS * (np.abs(G_cols) @ np.abs(kernel).reshape(-1, C)).reshape(N, H, W, C)

    for tier in ("reference", "fast"):
        with nb.kernels(tier):
            print(f"  {tier} tier:")
            xt = nb.Tensor(x, requires_grad=True)
            y = layer(xt)
            check("(2) = stride-1 conv of stuffed input", y.data, y_stuffed, bound)

            # (1) the convolution (OH, OW, F) -> (H, W, C) with this kernel; its input gradient at x
            z = nb.Tensor(np.zeros((N, OH, OW, Fo)), requires_grad=True)
            out = F.conv2d(z, nb.Tensor(kernel), strides=strides,
                           padding=padding if op is None else pads_hw[0] + pads_hw[1])
            assert out.shape == x.shape, (out.shape, x.shape)
            out.backward(x)                                        # z.grad = d<conv2d(z, W), x>/dz
            check("(1) = Conv2D's input gradient, + bias", z.grad + bias, y.data, bound)

            y.backward(G)
            check("(3) its input gradient = Conv2D(G)", xt.grad, gx_conv, gx_bound)
            layer.kernel.zero_grad()
            layer.bias.zero_grad()

print("\nOK 05_transposed_conv: Conv2DTranspose = Conv2D's input gradient = a stride-1 conv of a stuffed input")
