"""Direct convolution loops for layers with few channels (no im2col, no GEMM).

im2col + GEMM pays off when the matrix product is big enough to hide the
unfolding: the patch matrix is KH*KW times the image, written once and read
once. For a first layer (C = 1 input channel) or an output layer (F = 1 filter)
the product has K = 9 columns or 1 output column; measured, such products ran
at 15-110 GFLOP/s against BLAS's 480, and the unfolding dominated. These loops
walk the image instead:

* ``direct_forward_into`` / ``direct_weight_grad_add``: the general loops, any
  C, F and stride;
* a 3x3 one-channel fast path inside ``direct_forward_into``;
* ``direct_weight_grad_one_channel_add``, ``direct_forward_one_filter_into``,
  ``direct_weight_grad_one_filter_add``: stride 1, a whole output row per
  inner loop. LLVM's vectorised loop body handles 64 float32s per trip here
  (16 lanes, unrolled 4 times) and leaves shorter loops to a scalar
  remainder; the general loops' innermost runs over F or C = 16-32 numbers,
  a row over OW*F (hundreds). Measured 1.7-2.1x faster.

The tests check every loop against a plain-NumPy im2col reference
(``tests/test_conv_direct.py``).

Notation as in ``im2col.py``: x (N, H, W, C), kernel W (KH, KW, C, F), bias b
(F,), strides SH, SW, top/left padding PT, PL (bottom/right follow from the
output size), y (N, OH, OW, F). For output pixel (oh, ow) the window's top-left
input cell is (h0, w0) = (oh*SH - PT, ow*SW - PL); taps that fall outside the
image read zero, so they are simply skipped.

Forward, with act = relu or identity::

    y[n, oh, ow, f] = act(b[f] + sum_{ki, kj, c} x[n, h0 + ki, w0 + kj, c] * W[ki, kj, c, f])

Backward from gy (N, OH, OW, F); with the relu fused, gz = gy * [y > 0], else gz = gy::

    gW[ki, kj, c, f] = sum_{n, oh, ow} x[n, h0 + ki, w0 + kj, c] * gz[n, oh, ow, f]
    gb[f]            = sum_{n, oh, ow} gz[n, oh, ow, f]
    gx[n, h, w, c]   = sum over (ki, kj) with h = oh*SH - PT + ki, w = ow*SW - PL + kj
                       (oh, ow inside the output) of  sum_f gz[n, oh, ow, f] * W[ki, kj, c, f]

For stride 1 the input gradient is itself a convolution: of gz, padded by
(KH - 1 - PT, KW - 1 - PL), with the kernel flipped in both spatial axes and
its channel axes swapped, Wf[a, b, f, c] = W[KH-1-a, KW-1-b, c, f]::

    gx[n, h, w, c] = sum_{a, b, f} gz[n, h - (KH-1-PT) + a, w - (KW-1-PL) + b, f] * Wf[a, b, f, c]

(put a = KH-1-ki: the row read is h + PT - ki, as above). So
``direct_forward_into`` serves both; the caller builds Wf.

Indexing. Numba, like NumPy, accepts negative indices and counts them from
the end, so every signed index costs a test and a select, which keeps LLVM
from vectorising the inner loops (measured 9x slower here). The kernels
therefore view the images as 2-D (rows, W*C) arrays and index them with
unsigned integers (``uintp``); the window bounds computed beforehand keep
every index inside the image.

All kernels are serial and ``nogil``; the caller splits the batch across
threads (``fast.parallel``). The weight-gradient kernel *adds* into the
given gW, gb (one pair per thread, summed afterwards).
"""
from __future__ import annotations

import numpy as np

from .config import FASTMATH, U, njit


@njit(fastmath=FASTMATH)
def direct_forward_into(x, W, b, SH, SW, PT, PL, relu, y):
    """y (N, OH, OW, F) = act(conv(x, W) + b), written in place; b has F entries (zeros for no bias).

    Each output pixel starts at b; per kernel row ki, the window's real cells
    (kj, c) are one contiguous run of x's row, added in against the kernel's
    matching (kj, c, f) run. With F == 1 that is a dot product kept in a
    register; otherwise each x value is broadcast over the pixel's F outputs.

    The commonest first layer, one channel and a 3x3 kernel at stride 1, has a
    path of its own for the run of pixels whose windows lie inside the image
    (columns ow_lo <= ow < ow_hi of a row whose three input rows exist): two
    pixels per trip, their 12 inputs held in scalars, each output written once,

        y[ow, f]     = b[f] + a0*W9[0, f] + a1*W9[1, f] + ... + a8*W9[8, f]
        y[ow + 1, f] = b[f] + a1*W9[0, f] + a9*W9[2, f] + ...   (the window one column on)

    with W9 = W as a (9, F) matrix, so each weight loaded serves two pixels. The
    inner loop over f then reads two arrays (W9, b) and writes one (y), so the
    vectorised loop checks y against two arrays for overlap at run time, not
    against ten as with nine separate weight rows. Measured on W2's first layer
    (28x28, 32 filters, 24 images, one thread): 0.421 -> 0.333 ms against the
    pixel-by-pixel form, which now handles the edge pixels only.
    """
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    OH, OW = y.shape[1], y.shape[2]
    x2 = x.reshape(N * H, Wd * C)
    y2 = y.reshape(N * OH, OW * F)
    Wr = W.reshape(KH, KW * C * F)       # one kernel row ki: (kj, c, f) contiguous
    one_3x3 = C == 1 and KH == 3 and KW == 3 and SH == 1 and SW == 1
    W9 = W.reshape(KH * KW * C, F)       # rows = taps when one_3x3
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            ki_lo, ki_hi = max(0, -h0), min(KH, H - h0)
            yr = y2[U(n * OH + oh)]
            ow_lo, ow_hi = 0, 0                            # the interior run, done here; none by default
            if one_3x3 and ki_lo == 0 and ki_hi == 3:
                ow_lo = min(PL, OW)                        # window's first column ow - PL >= 0
                ow_hi = max(ow_lo, min(OW, Wd - 2 + PL))   # and its last, ow - PL + 2 < Wd
                r = U(n * H + h0)
                r1, r2 = r + U(1), r + U(2)
                ow, end, pl = U(ow_lo), U(ow_hi), U(PL)
                while ow + U(1) < end:
                    c = ow - pl
                    a0, a1, a2, a9 = x2[r, c], x2[r, c + U(1)], x2[r, c + U(2)], x2[r, c + U(3)]
                    a3, a4, a5, a10 = x2[r1, c], x2[r1, c + U(1)], x2[r1, c + U(2)], x2[r1, c + U(3)]
                    a6, a7, a8, a11 = x2[r2, c], x2[r2, c + U(1)], x2[r2, c + U(2)], x2[r2, c + U(3)]
                    ys = ow * U(F)
                    ys1 = ys + U(F)
                    for f in range(U(F)):
                        q0, q1, q2 = W9[0, f], W9[1, f], W9[2, f]
                        q3, q4, q5 = W9[3, f], W9[4, f], W9[5, f]
                        q6, q7, q8 = W9[6, f], W9[7, f], W9[8, f]
                        v = (b[f] + a0 * q0 + a1 * q1 + a2 * q2 + a3 * q3 + a4 * q4 + a5 * q5
                             + a6 * q6 + a7 * q7 + a8 * q8)
                        u = (b[f] + a1 * q0 + a2 * q1 + a9 * q2 + a4 * q3 + a5 * q4 + a10 * q5
                             + a7 * q6 + a8 * q7 + a11 * q8)
                        yr[ys + f] = max(v, 0) if relu else v
                        yr[ys1 + f] = max(u, 0) if relu else u
                    ow += U(2)
                if ow < end:                                    # an odd pixel left at the run's end
                    c = ow - pl
                    a0, a1, a2 = x2[r, c], x2[r, c + U(1)], x2[r, c + U(2)]
                    a3, a4, a5 = x2[r1, c], x2[r1, c + U(1)], x2[r1, c + U(2)]
                    a6, a7, a8 = x2[r2, c], x2[r2, c + U(1)], x2[r2, c + U(2)]
                    ys = ow * U(F)
                    for f in range(U(F)):
                        v = (b[f] + a0 * W9[0, f] + a1 * W9[1, f] + a2 * W9[2, f] + a3 * W9[3, f] + a4 * W9[4, f]
                             + a5 * W9[5, f] + a6 * W9[6, f] + a7 * W9[7, f] + a8 * W9[8, f])
                        yr[ys + f] = max(v, 0) if relu else v
            for ow in range(OW):
                if ow_lo <= ow < ow_hi:
                    continue
                w0_ = ow * SW - PL
                kj_lo = max(0, -w0_)
                kj_hi = max(kj_lo, min(KW, Wd - w0_))       # empty, never negative, past the edge
                L = U((kj_hi - kj_lo) * C)             # the window row's real cells, (kj, c) contiguous
                xs = U((w0_ + kj_lo) * C)
                if F == 1:
                    s = b[0]
                    for ki in range(ki_lo, ki_hi):
                        xr = x2[U(n * H + h0 + ki)]
                        wr = Wr[U(ki)]
                        ws = U(kj_lo * C)
                        for t in range(L):
                            s += xr[xs + t] * wr[ws + t]
                    yr[U(ow)] = max(s, 0) if relu else s
                    continue
                ys = U(ow * F)
                for f in range(U(F)):
                    yr[ys + f] = b[f]
                for ki in range(ki_lo, ki_hi):
                    xr = x2[U(n * H + h0 + ki)]
                    wr = Wr[U(ki)]
                    ws = U(kj_lo * C * F)
                    for t in range(L):
                        v = xr[xs + t]
                        wt = ws + t * U(F)
                        for f in range(U(F)):
                            yr[ys + f] += v * wr[wt + f]
                if relu:
                    for f in range(U(F)):
                        yr[ys + f] = max(yr[ys + f], 0)


@njit(fastmath=FASTMATH)
def direct_weight_grad_add(x, gy, y, relu, SH, SW, PT, PL, gW, gb, gz):
    """gW (KH, KW, C, F) += sum x-window * gz;  gb (F,) += sum gz;  gz = gy * [y > 0] if relu else gy.

    With ``relu`` and a gz of gy's shape, the masked gradient is also written
    to gz (the input gradient needs it); pass a zero-size gz to skip that. y is
    only read when ``relu``; without it, pass gy as y. Pixels whose gz is 0 (relu off) add nothing when F == 1.
    (The forward's 3x3 one-channel fast path does not carry over: updating
    the 9 rows of gW in one loop measured 1.1-3.7x slower than this, as LLVM
    cannot prove the rows apart and gives up vectorising.)
    """
    N, H, Wd, C = x.shape
    KH, KW, _, F = gW.shape
    OH, OW = gy.shape[1], gy.shape[2]
    x2 = x.reshape(N * H, Wd * C)
    gy2 = gy.reshape(N * OH, OW * F)
    y2 = y.reshape(-1, OW * F)                 # the caller passes gy itself as y without relu
    keep = gz.size > 0
    gz2 = gz.reshape(gz.shape[0] * gz.shape[1], gz.shape[2] * gz.shape[3])
    gWr = gW.reshape(KH, KW * C * F)
    g = np.empty(F, dtype=gb.dtype)
    for n in range(N):
        for oh in range(OH):
            h0 = oh * SH - PT
            ki_lo, ki_hi = max(0, -h0), min(KH, H - h0)
            r = U(n * OH + oh)
            gr, yr = gy2[r], y2[r]
            for ow in range(OW):
                w0 = ow * SW - PL
                kj_lo = max(0, -w0)
                kj_hi = max(kj_lo, min(KW, Wd - w0))        # empty, never negative, past the edge
                L = U((kj_hi - kj_lo) * C)
                xs = U((w0 + kj_lo) * C)
                gs = U(ow * F)
                for f in range(U(F)):
                    v = gr[gs + f]
                    if relu and not yr[gs + f] > 0:
                        v = 0
                    g[f] = v
                    gb[f] += v
                if keep:
                    zr = gz2[r]
                    for f in range(U(F)):
                        zr[gs + f] = g[f]
                if F == 1:
                    g0 = g[0]
                    if g0 == 0:
                        continue
                    for ki in range(ki_lo, ki_hi):
                        xr = x2[U(n * H + h0 + ki)]
                        wr = gWr[U(ki)]
                        ws = U(kj_lo * C)
                        for t in range(L):
                            wr[ws + t] += xr[xs + t] * g0
                    continue
                for ki in range(ki_lo, ki_hi):
                    xr = x2[U(n * H + h0 + ki)]
                    wr = gWr[U(ki)]
                    ws = U(kj_lo * C * F)
                    for t in range(L):
                        v = xr[xs + t]
                        wt = ws + t * U(F)
                        for f in range(U(F)):
                            wr[wt + f] += v * g[f]


@njit(fastmath=FASTMATH)
def direct_weight_grad_one_channel_add(x, gy, y, relu, PT, PL, gW, gb, gz):
    """``direct_weight_grad_add`` for one input channel at stride 1 (left/right padding <= KW).

    The general loop updates a tap's F gradients per output pixel: loops of F
    iterations, too short for LLVM's vector body (it wants 64 float32s), so
    they ran scalar. Here a whole output row is one loop of OW*F:

        XE[h, (w + KW)*F + f] = x[n, h, w]          each image row repeated F times (zero side pads)
        G[ow*F + f]            = gz[n, oh, ow, f]    the row's masked gradient
        R[k, t]               += XE[h0 + ki, (KW + kj - PL)*F + t] * G[t]     t < OW*F, k = ki*KW + kj
        gW[ki, kj, 0, f]      += sum_ow R[k, ow*F + f]    (once, at the end; gb likewise)

    Measured 1.7-2.1x faster (256 images 28x28, F = 16: 2.1 -> 1.0 ms per half batch), and the
    row sums make the float32 accumulation shorter.
    """
    N, H, Wd, _ = x.shape
    KH, KW, _, F = gW.shape
    OH, OW = gy.shape[1], gy.shape[2]
    x2 = x.reshape(N * H, Wd)
    gy2 = gy.reshape(N * OH, OW * F)
    y2 = y.reshape(-1, OW * F)
    keep = gz.size > 0
    gz2 = gz.reshape(gz.shape[0] * gz.shape[1], gz.shape[2] * gz.shape[3])
    L = OW * F
    R = np.zeros((KH * KW, L), dtype=gb.dtype)
    Rb = np.zeros(L, dtype=gb.dtype)
    G = np.empty(L, dtype=gb.dtype)
    XE = np.empty((H, (Wd + 2 * KW) * F), dtype=gb.dtype)   # x rows expanded by F, padded by KW on both sides
    for n in range(N):
        _expand_rows(x2, n, KW, F, XE)
        for oh in range(OH):
            r = U(n * OH + oh)
            gr, yr = gy2[r], y2[r]
            for t in range(U(L)):
                v = gr[t]
                if relu and not yr[t] > 0:
                    v = 0
                G[t] = v
                Rb[t] += v
            if keep:
                zr = gz2[r]
                for t in range(U(L)):
                    zr[t] = G[t]
            _add_row_taps(XE, G, oh - PT, PL, KH, KW, F, R)
    _fold_rows(R, Rb, gW, gb)


@njit(fastmath=FASTMATH)
def direct_weight_grad_one_channel_pooled_add(x, gp, p, arg, PKH, PKW, relu, PT, PL, out_hw, gW, gb):
    """``direct_weight_grad_one_channel_add`` of a convolution followed by a max-pool, from the pool's arrays.

    Pool windows PKH x PKW that tile the convolution's output from its top-left corner (strides
    equal to the window, no padding). The gradient reaching the convolution,

        gz[n, oh, ow, f] = gp[n, ph, pw, f] * [p[n, ph, pw, f] > 0]   where (oh, ow) is window (ph, pw)'s
                                                                      arg-max cell (di, dj) for filter f
                         = 0 elsewhere                               (``kernels/conv_pool.py``)

    (no mask without ``relu``), is built one output row at a time, G[ow*F + f] for row
    oh = ph*PKH + di, and never stored: the row loops of ``direct_weight_grad_one_channel_add``
    read it from there. gb sums the masked pooled gradient itself (each value reaches one cell).
    Rows past the last window row carry no gradient and are skipped. x (N, H, W, 1); gp, p, arg
    (N, PH, PW, F); out_hw = (OH, OW), the convolution's output size; gW (KH, KW, 1, F), gb (F,) added into.
    Left / right padding <= KW, as there.
    """
    N, H, Wd, _ = x.shape
    _, PH, PW, F = gp.shape
    KH, KW = gW.shape[0], gW.shape[1]
    OW = out_hw[1]
    x2 = x.reshape(N * H, Wd)
    g2 = gp.reshape(N * PH, PW * F)
    p2 = p.reshape(N * PH, PW * F)
    a2 = arg.reshape(N * PH, PW * F)
    L, LP = OW * F, PW * F
    R = np.zeros((KH * KW, L), dtype=gb.dtype)
    Rb = np.zeros(LP, dtype=gb.dtype)
    G = np.zeros(L, dtype=gb.dtype)                      # columns past the last window stay 0
    GM = np.empty(LP, dtype=gb.dtype)
    XE = np.empty((H, (Wd + 2 * KW) * F), dtype=gb.dtype)
    zero = gb.dtype.type(0)
    for n in range(N):
        _expand_rows(x2, n, KW, F, XE)
        for ph in range(PH):
            r = U(n * PH + ph)
            gr, pr, ar = g2[r], p2[r], a2[r]
            for t in range(U(LP)):                      # the masked pooled gradient of this row
                v = gr[t]
                if relu and not pr[t] > 0:
                    v = zero
                GM[t] = v
                Rb[t] += v
            for di in range(PKH):
                for pw in range(PW):                   # G: each pooled value at its arg-max cell
                    s = U(pw * F)
                    for dj in range(PKW):
                        k = di * PKW + dj
                        base = U((pw * PKW + dj) * F)
                        for f in range(U(F)):
                            gv = GM[s + f]                     # loaded either way: a select, not a branch
                            G[base + f] = gv if ar[s + f] == k else zero
                _add_row_taps(XE, G, ph * PKH + di - PT, PL, KH, KW, F, R)
    _fold_rows(R, Rb, gW, gb)


@njit(fastmath=FASTMATH, inline="always")
def _expand_rows(x2, n, KW, F, XE):
    """XE[h, (w + KW)*F + f] = x[n, h, w] for image n's rows (x2 = x as (N*H, W)); zeros in the KW*F side pads."""
    H = XE.shape[0]
    Wd = x2.shape[1]
    for h in range(H):
        xe = XE[U(h)]
        xr = x2[U(n * H + h)]
        for t in range(U(KW * F)):
            xe[t] = 0
            xe[U((Wd + KW) * F) + t] = 0
        for w in range(U(Wd)):
            v = xr[w]
            base = (w + U(KW)) * U(F)
            for f in range(U(F)):
                xe[base + f] = v


@njit(fastmath=FASTMATH, inline="always")
def _add_row_taps(XE, G, h0, PL, KH, KW, F, R):
    """R[ki*KW + kj, t] += XE[h0 + ki, (KW + kj - PL)*F + t] * G[t], t < OW*F, for the taps whose input row exists.

    One output row's share of every tap: h0 = its top input row (oh - PT); R (KH*KW, OW*F), G (OW*F,).
    """
    H = XE.shape[0]
    L = G.shape[0]
    for ki in range(max(0, -h0), min(KH, H - h0)):
        xe = XE[U(h0 + ki)]
        for kj in range(KW):
            Rk = R[U(ki * KW + kj)]
            s = U((KW + kj - PL) * F)          # XE column of (ow = 0, f = 0) for this tap
            for t in range(U(L)):
                Rk[t] += xe[s + t] * G[t]


@njit(fastmath=FASTMATH, inline="always")
def _fold_rows(R, Rb, gW, gb):
    """gW[ki, kj, 0, f] += sum_c R[ki*KW + kj, c*F + f] and gb[f] += sum_c Rb[c*F + f], over each row's columns c."""
    KH, KW, _, F = gW.shape
    for k in range(KH * KW):
        for c in range(R.shape[1] // F):
            for f in range(F):
                gW[k // KW, k % KW, 0, f] += R[k, c * F + f]
    for c in range(Rb.shape[0] // F):
        for f in range(F):
            gb[f] += Rb[c * F + f]


@njit(fastmath=FASTMATH)
def _padded_rows_into(x2, n, H, XP, KW, C):
    """XP[h, (w + KW)*C + c] = x[n, h, w, c]; XP's side pads (KW*C zeros each) are left as they are."""
    for h in range(H):
        xr, xp = x2[U(n * H + h)], XP[U(h)]
        s = U(KW * C)
        for t in range(U(xr.size)):
            xp[s + t] = xr[t]


@njit(fastmath=FASTMATH)
def direct_forward_one_filter_into(x, W, b, PT, PL, relu, y):
    """``direct_forward_into`` for one filter (F == 1) at stride 1 (left/right padding <= KW).

    The general loop takes a dot product of KW*C numbers per kernel row and
    pixel: too short for LLVM's vector body, so it ran scalar. Here a whole
    output row is one loop of OW*C:

        XP[h, (w + KW)*C + c] = x[n, h, w, c]          (zero side pads of KW*C)
        WE[k, ow*C + c]       = W[ki, kj, c, 0]        (the kernel row repeated OW times)
        T[t]                 += XP[h0 + ki, (KW + kj - PL)*C + t] * WE[k, t]     t < OW*C
        y[n, oh, ow, 0]       = act(b + sum_c T[ow*C + c])
    """
    N, H, Wd, C = x.shape
    KH, KW = W.shape[0], W.shape[1]
    OH, OW = y.shape[1], y.shape[2]
    x2 = x.reshape(N * H, Wd * C)
    L = OW * C
    XP = np.zeros((H, (Wd + 2 * KW) * C), dtype=y.dtype)
    WE = np.empty((KH * KW, L), dtype=y.dtype)
    for ki in range(KH):
        for kj in range(KW):
            for ow in range(OW):
                for c in range(C):
                    WE[ki * KW + kj, ow * C + c] = W[ki, kj, c, 0]
    T = np.empty(L, dtype=y.dtype)
    for n in range(N):
        _padded_rows_into(x2, n, H, XP, KW, C)
        for oh in range(OH):
            h0 = oh - PT
            for t in range(U(L)):
                T[t] = 0
            for ki in range(max(0, -h0), min(KH, H - h0)):
                xp = XP[U(h0 + ki)]
                for kj in range(KW):
                    we = WE[U(ki * KW + kj)]
                    s = U((KW + kj - PL) * C)
                    for t in range(U(L)):
                        T[t] += xp[s + t] * we[t]
            for ow in range(OW):
                v = b[0]
                for c in range(U(C)):
                    v += T[U(ow * C) + c]
                y[n, oh, ow, 0] = max(v, 0) if relu else v


@njit(fastmath=FASTMATH)
def direct_weight_grad_one_filter_add(x, gy, y, relu, PT, PL, gW, gb, gz):
    """``direct_weight_grad_add`` for one filter (F == 1) at stride 1 (left/right padding <= KW).

    A whole output row per loop, as in ``direct_forward_one_filter_into``:

        GE[ow*C + c]  = gz[n, oh, ow, 0]           (each pixel's gradient repeated C times)
        R[k, t]      += XP[h0 + ki, (KW + kj - PL)*C + t] * GE[t]        t < OW*C
        gW[ki, kj, c, 0] += sum_ow R[k, ow*C + c]   (once, at the end)
    """
    N, H, Wd, C = x.shape
    KH, KW = gW.shape[0], gW.shape[1]
    OH, OW = gy.shape[1], gy.shape[2]
    x2 = x.reshape(N * H, Wd * C)
    keep = gz.size > 0
    L = OW * C
    XP = np.zeros((H, (Wd + 2 * KW) * C), dtype=gb.dtype)
    R = np.zeros((KH * KW, L), dtype=gb.dtype)
    GE = np.empty(L, dtype=gb.dtype)
    sb = gb[0] * 0
    for n in range(N):
        _padded_rows_into(x2, n, H, XP, KW, C)
        for oh in range(OH):
            for ow in range(OW):
                g = gy[n, oh, ow, 0]
                if relu and not y[n, oh, ow, 0] > 0:
                    g = 0
                if keep:
                    gz[n, oh, ow, 0] = g
                sb += g
                for c in range(U(C)):
                    GE[U(ow * C) + c] = g
            h0 = oh - PT
            for ki in range(max(0, -h0), min(KH, H - h0)):
                xp = XP[U(h0 + ki)]
                for kj in range(KW):
                    Rk = R[U(ki * KW + kj)]
                    s = U((KW + kj - PL) * C)
                    for t in range(U(L)):
                        Rk[t] += xp[s + t] * GE[t]
    gb[0] += sb
    for ki in range(KH):
        for kj in range(KW):
            for ow in range(OW):
                for c in range(C):
                    gW[ki, kj, c, 0] += R[ki * KW + kj, ow * C + c]
