"""The fused Conv2D(relu) -> MaxPooling2D backward: the convolution's gz written from the pooled gradient.

Forward, p = max_pool(y) with y = act(conv(x, W) + b) and arg the window-local arg-max
(``kernels/pooling.py``). Backward, the gradient reaching the convolution's
pre-activation z is

    gz[n, h, w, f] = gp[n, oh, ow, f] * [p[n, oh, ow, f] > 0]   where (h, w) is the arg-max cell of
                                                                  window (oh, ow) for channel f
                   = 0                                           every other cell

since the pool passes gp to its arg-max cell only, whose value is y = p there, and
relu'(z) = [y > 0] (``relu`` False: no mask, the convolution had no activation).
One pass writes gz (N, H, W, F) from gp, p, arg (N, OH, OW, F): neither the pool's
gradient gy nor y is ever read in full.

Notation: pool window KH x KW, strides SH, SW, top/left padding PT, PL as in
``kernels/pooling.py``; H, W here are the convolution's output size.
"""
from __future__ import annotations

import numpy as np

from .config import U, njit


@njit
def pooled_relu_backward_into(gp, p, arg, KH, KW, SH, SW, PT, PL, relu, gz):
    """gz (N, H, W, F), every cell written, from gp, p, arg (N, OH, OW, F) (see the module docstring)."""
    N, OH, OW, F = gp.shape
    H, W = gz.shape[1], gz.shape[2]
    g2 = gp.reshape(N * OH, OW * F)
    p2 = p.reshape(N * OH, OW * F)
    a2 = arg.reshape(N * OH, OW * F)
    z2 = gz.reshape(N * H, W * F)
    zero = gp.dtype.type(0)
    if SH != KH or SW != KW or PT > 0 or PL > 0:
        # overlapping (or gapped) windows: zero, then add each masked gp at its arg-max
        gz[:] = 0
        for n in range(N):
            for oh in range(OH):
                gr, pr, ar = g2[U(n * OH + oh)], p2[U(n * OH + oh)], a2[U(n * OH + oh)]
                for ow in range(OW):
                    for f in range(F):
                        t = U(ow * F + f)
                        if relu and not pr[t] > 0:
                            continue
                        k = int(ar[t])                                   # signed: h, w below are signed
                        h, w = oh * SH - PT + k // KW, ow * SW - PL + k % KW
                        z2[U(n * H + h), U(w * F + f)] += gr[t]
        return
    # windows that tile the map from its top-left corner: each cell written once. The relu mask
    # is applied once per pooled row (gm), so the inner loop is the pool's own select
    gm = np.empty(OW * F, dtype=gp.dtype)
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH
            gr, pr, ar = g2[U(n * OH + oh)], p2[U(n * OH + oh)], a2[U(n * OH + oh)]
            for t in range(U(OW * F)):
                gm[t] = gr[t] if not relu or pr[t] > 0 else zero
            for ki in range(min(KH, H - h0)):
                zr = z2[U(n * H + h0 + ki)]
                for ow in range(OW):
                    w0 = ow * SW
                    s = U(ow * F)
                    for kj in range(min(KW, W - w0)):
                        zs = U((w0 + kj) * F)
                        k = ki * KW + kj
                        for f in range(U(F)):
                            zr[zs + f] = gm[s + f] if ar[s + f] == k else zero
                for t in range(U(OW * SW * F), U(W * F)):   # columns past the last window ("valid")
                    zr[t] = zero
        for h in range(OH * SH, H):                            # rows past the last window
            zr = z2[U(n * H + h)]
            for t in range(U(W * F)):
                zr[t] = zero
