"""Lesson 4: a convolution is one matrix product, and so are its gradients.

Run:  python examples/04_conv_as_gemm.py       (read alongside numbanet/engine/conv.py)

With x (N, H, W, C), a Conv2D kernel W (KH, KW, C, F), bias b (F,), K = KH*KW*C:

    X  = im2col(x)                  (N*OH*OW, K)     lesson 3
    W2 = W.reshape(K, F)            (K, F)           the same (i, j, c) order as X's columns
    y  = (X @ W2 + b).reshape(N, OH, OW, F)          already NHWC, no transpose

and, from the upstream gradient gy (N, OH, OW, F) reshaped to G (N*OH*OW, F):

    gW = X^T @ G                    (K, F) -> (KH, KW, C, F)   the weight gradient
    gb = G summed over its rows     (F,)
    gx = col2im(G @ W2^T)           (N, H, W, C)               the input gradient

Here a ``nb.layers.Conv2D`` is compared with these products written in NumPy,
under both kernel tiers, for four shapes. The reference tier computes exactly
these products; the fast tier picks a route per shape (``numbanet/fast/conv.py``):
im2col + GEMM, direct loops (one input channel), the "flipped" convolution that
unfolds the output side (fewer filters than channels), or the "planes" loops for
narrow layers (at most 16 channels and filters, stride 1: zero-padded channel planes,
one vectorised loop per filter and channel), and must agree all the same. Tolerances are rounding-error bounds:
two computations of a sum of n products differ by at most about
2 n eps sum|products| (Higham, Accuracy and Stability, eq. 3.5).
"""
import numpy as np

import numbanet as nb

F = nb.functional
EPS = np.finfo(np.float64).eps


def check(name, got, want, bound):
    """Assert |got - want| <= bound elementwise; print the largest error and its share of the bound."""
    err = np.abs(np.asarray(got) - np.asarray(want))
    assert err.shape == np.shape(bound), (name, err.shape, np.shape(bound))
    assert np.all(err <= bound), f"{name}: |error| {err.max():.3e} exceeds its bound at {np.argmax(err - bound)}"
    share = np.divide(err, bound, out=np.zeros(err.shape), where=bound > 0)
    print(f"    {name:<3} agrees: max |error| {err.max():.1e}, {share.max():.2g} x its bound")


def gemm_passes(x, kernel, bias, G, strides, padding):
    """y, gW, gb, gx by the matrix products of the module docstring, each with its error bound."""
    N, H, W, C = x.shape
    KH, KW, _, Fo = kernel.shape
    K = KH * KW * C
    X = F.im2col(x, (KH, KW), strides=strides, padding=padding).data   # (N*OH*OW, K)
    OH, OW = G.shape[1:3]
    W2 = kernel.reshape(K, Fo)                                         # (KH, KW, C, F) -> (K, F)
    G2 = G.reshape(-1, Fo)                                             # (N, OH, OW, F) -> (N*OH*OW, F)
    rows = N * OH * OW
    out = {
        "y": ((X @ W2 + bias).reshape(N, OH, OW, Fo),                 # (N*OH*OW, F) -> (N, OH, OW, F)
              2 * (K + 1) * EPS * (np.abs(X) @ np.abs(W2) + np.abs(bias)).reshape(N, OH, OW, Fo)),
        "gW": ((X.T @ G2).reshape(KH, KW, C, Fo),                     # (K, rows) @ (rows, F) -> (KH, KW, C, F)
               2 * (rows + 1) * EPS * (np.abs(X).T @ np.abs(G2)).reshape(KH, KW, C, Fo)),
        "gb": (G2.sum(axis=0),                                         # (F,)
               2 * (rows + 1) * EPS * np.abs(G2).sum(axis=0)),
    }
    # gx: each pixel sums, over the windows that read it (col2im), one row of G @ W2^T (F products)
    overlap = F.col2im(np.ones(X.shape), x.shape, (KH, KW), strides, padding).data.max()
    out["gx"] = (F.col2im(G2 @ W2.T, x.shape, (KH, KW), strides, padding).data,
                 2 * (Fo * overlap + 1) * EPS * F.col2im(np.abs(G2) @ np.abs(W2).T, x.shape, (KH, KW),
                                                         strides, padding).data)
    return out, X, W2, G2


rng = np.random.default_rng(4)
# (N, H, W, C), filters, kernel, strides, padding: shapes the fast tier runs by its four routes
configs = [((2, 7, 6, 3), 4, (3, 3), (2, 2), "same", "im2col"),     # im2col + GEMM (stride 2)
           ((2, 6, 6, 1), 17, (3, 3), (1, 1), "same", "direct"),    # one input channel, 17 filters: direct loops
           ((2, 6, 5, 18), 2, (3, 2), (1, 1), "valid", "flipped"),  # fewer filters than channels
           ((2, 6, 6, 3), 4, (3, 3), (1, 1), "same", "planes")]     # narrow, stride 1: the planes loops
for k, (shape, Fo, (KH, KW), strides, padding, fast_route) in enumerate(configs):
    x = rng.normal(size=shape)
    N, H, W, C = shape
    conv = nb.layers.Conv2D(Fo, (KH, KW), strides=strides, padding=padding, dtype="float64", name=f"conv{k}")
    y0 = conv(x)                               # the first call builds the weights (KH, KW, C, F) and (F,)
    conv.set_weights([rng.normal(size=(KH, KW, C, Fo)), rng.normal(size=(Fo,))])
    kernel, bias = conv.get_weights()
    G = rng.normal(size=y0.shape)              # an upstream gradient dL/dy (N, OH, OW, F)
    want, X, W2, G2 = gemm_passes(x, kernel, bias, G, strides, padding)
    print(f"\nConv2D({Fo}, {(KH, KW)}, strides={strides}, padding={padding!r}) on x {shape}: "
          f"X {X.shape} @ W2 {W2.shape}; X^T @ G {(X.shape[1], Fo)}; col2im(G @ W2^T) {shape}")

    if k == 0:
        # One output element from the definition, to tie the matrix to the sum it stands for:
        # y[n, oh, ow, f] = b[f] + sum_{i, j, c} x[n, oh*SH - PT + i, ow*SW - PL + j, c] W[i, j, c, f]
        OH, OW = G.shape[1:3]
        PT = max((OH - 1) * strides[0] + KH - H, 0) // 2           # "same": Keras's split
        PL = max((OW - 1) * strides[1] + KW - W, 0) // 2
        n, oh, ow, f = 1, 2, 1, 3
        s = bias[f]
        for i in range(KH):
            for j in range(KW):
                h, w = oh * strides[0] - PT + i, ow * strides[1] - PL + j
                if 0 <= h < H and 0 <= w < W:
                    s += x[n, h, w, :] @ kernel[i, j, :, f]
        y_gemm, y_bound = want["y"]
        assert abs(s - y_gemm[n, oh, ow, f]) <= y_bound[n, oh, ow, f]
        print(f"  y[{n},{oh},{ow},{f}] by the definition's sum = {s:.12f} = (X @ W2 + b) at that row and column")

    for tier in ("reference", "fast"):
        with nb.kernels(tier):
            xt = nb.Tensor(x, requires_grad=True)
            y = conv(xt)
            route = nb.fast.routes.last("conv2d_forward") if tier == "fast" else "im2col + matrix product"
            y.backward(G)                          # dL/dy = G
            print(f"  {tier} tier, route {route}:")
            check("y", y.data, *want["y"])
            check("gW", conv.kernel.grad, *want["gW"])
            check("gb", conv.bias.grad, *want["gb"])
            check("gx", xt.grad, *want["gx"])
            conv.kernel.zero_grad()
            conv.bias.zero_grad()
    assert route == fast_route, (route, fast_route)

print("\nOK 04_conv_as_gemm: Conv2D, its weight and input gradients are matrix products")
