"""Micro-benchmark: numbanet's im2col / col2im against vectorised NumPy and two Numba variants.

    python benchmarks/bench_kernels_conv.py [--repeat 20] [--json results/kernels_conv.json]

Compared, on float32 NHWC batches of typical CNN shapes:

* ``numbanet``   the serial nogil kernels in ``numbanet/fast/kernels/im2col.py``
                 (col2im reads col once in memory order, adding into the input rows);
* ``numpy``      stride tricks: ``sliding_window_view`` of a padded copy for im2col,
                 KH*KW strided slice-adds for col2im (the tests' NumPy twin);
* ``gather``     col2im gather-style: each input pixel visits the windows that reach it;
* ``rows``       col2im row-at-a-time: for each (oh, ki) one input row is swept;
* ``parallel``   numbanet's loops with ``parallel=True`` and ``prange`` over the batch.

Reports median / min / max milliseconds per call; compilation is excluded (warm-up call).
Then times whole training steps of the demo autoencoder with the serial and the
parallel col2im, since inside a step the kernel runs right after a BLAS call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numbanet.engine.conv_shapes import same_pads
from numbanet.fast.kernels.im2col import col2im, im2col

CASES = [  # (name, N, H, W, C, K, S, padding)
    ("mnist conv1 32x28x28x1 k5 same", 32, 28, 28, 1, 5, 1, "same"),
    ("mnist conv2 32x14x14x16 k5 valid", 32, 14, 14, 16, 5, 1, "valid"),
    ("autoenc 64x28x28x16 k3 same", 64, 28, 28, 16, 3, 1, "same"),
    ("strided 32x32x32x32 k3 s2 same", 32, 32, 32, 32, 3, 2, "same"),
]


# ------------------------------------------------------------ NumPy versions
def im2col_numpy(x, KH, KW, SH, SW, PT, PB, PL, PR):
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))
    v = sliding_window_view(xp, (KH, KW), axis=(1, 2))[:, ::SH, ::SW]   # (N, OH, OW, C, KH, KW)
    return np.ascontiguousarray(v.transpose(0, 1, 2, 4, 5, 3))          # -> (N, OH, OW, KH, KW, C)


def col2im_numpy(col, H, W, SH, SW, PT, PL, PB, PR):
    N, OH, OW, KH, KW, C = col.shape
    xp = np.zeros((N, H + PT + PB, W + PL + PR, C), col.dtype)
    for ki in range(KH):
        for kj in range(KW):
            xp[:, ki:ki + SH * OH:SH, kj:kj + SW * OW:SW] += col[:, :, :, ki, kj]
    return xp[:, PT:PT + H, PL:PL + W]


# ------------------------------------------------------- other Numba variants
@numba.njit(cache=True, nogil=True)
def col2im_gather(col, H, W, SH, SW, PT, PL):
    """Gather-style: each gx pixel visits the (oh, ki) x (ow, kj) pairs that reach it; written once."""
    N, OH, OW, KH, KW, C = col.shape
    gx = np.zeros((N, H, W, C), col.dtype)
    for n in range(N):
        for h in range(H):
            hp = h + PT
            for w in range(W):
                wp = w + PL
                for oh in range(max(0, (hp - KH + SH) // SH), min(OH - 1, hp // SH) + 1):
                    for ow in range(max(0, (wp - KW + SW) // SW), min(OW - 1, wp // SW) + 1):
                        for c in range(C):
                            gx[n, h, w, c] += col[n, oh, ow, hp - oh * SH, wp - ow * SW, c]
    return gx


@numba.njit(cache=True, nogil=True)
def col2im_rows(col, H, W, SH, SW, PT, PL):
    """Row-at-a-time: for each (oh, ki) all of input row h = oh*SH - PT + ki is updated in one sweep."""
    N, OH, OW, KH, KW, C = col.shape
    gx = np.zeros((N, H, W, C), col.dtype)
    for n in range(N):
        for oh in range(OH):
            for ki in range(KH):
                h = oh * SH - PT + ki
                if h < 0 or h >= H:
                    continue
                for ow in range(OW):
                    w0 = ow * SW - PL
                    for kj in range(max(0, -w0), min(KW, W - w0)):
                        for c in range(C):
                            gx[n, h, w0 + kj, c] += col[n, oh, ow, ki, kj, c]
    return gx


@numba.njit(cache=True, nogil=True, parallel=True)
def im2col_parallel(x, KH, KW, SH, SW, PT, PB, PL, PR):
    N, H, W, C = x.shape
    OH = (H + PT + PB - KH) // SH + 1
    OW = (W + PL + PR - KW) // SW + 1
    col = np.zeros((N, OH, OW, KH, KW, C), x.dtype)
    for n in numba.prange(N):
        for oh in range(OH):
            for ow in range(OW):
                for ki in range(KH):
                    h = oh * SH - PT + ki
                    if h < 0 or h >= H:
                        continue
                    for kj in range(KW):
                        w = ow * SW - PL + kj
                        if w < 0 or w >= W:
                            continue
                        for c in range(C):
                            col[n, oh, ow, ki, kj, c] = x[n, h, w, c]
    return col


@numba.njit(cache=True, nogil=True, parallel=True)
def col2im_parallel(col, H, W, SH, SW, PT, PL):
    N, OH, OW, KH, KW, C = col.shape
    gx = np.zeros((N, H, W, C), col.dtype)
    for n in numba.prange(N):                # images are independent: no write conflicts
        for oh in range(OH):
            for ow in range(OW):
                w0 = ow * SW - PL
                for ki in range(KH):
                    h = oh * SH - PT + ki
                    if h < 0 or h >= H:
                        continue
                    for kj in range(max(0, -w0), min(KW, W - w0)):
                        for c in range(C):
                            gx[n, h, w0 + kj, c] += col[n, oh, ow, ki, kj, c]
    return gx


# -------------------------------------------------------------------- timing
def timed(fn, repeat):
    fn()                                     # warm-up: compilation and caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def run_case(name, N, H, W, C, K, S, padding, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    pads = same_pads(H, K, S) + same_pads(W, K, S) if padding == "same" else (0, 0, 0, 0)
    PT, PB, PL, PR = pads
    col = im2col(x, K, K, S, S, *pads)
    np.testing.assert_array_equal(col, im2col_numpy(x, K, K, S, S, *pads))
    g = rng.standard_normal(col.shape).astype(np.float32)
    np.testing.assert_allclose(col2im(g, H, W, S, S, PT, PL), col2im_numpy(g, H, W, S, S, PT, PL, PB, PR),
                               rtol=1e-4, atol=1e-4)
    result = {
        "im2col numbanet": timed(lambda: im2col(x, K, K, S, S, *pads), repeat),
        "im2col numpy": timed(lambda: im2col_numpy(x, K, K, S, S, *pads), repeat),
        "im2col parallel": timed(lambda: im2col_parallel(x, K, K, S, S, *pads), repeat),
        "col2im numbanet": timed(lambda: col2im(g, H, W, S, S, PT, PL), repeat),
        "col2im numpy": timed(lambda: col2im_numpy(g, H, W, S, S, PT, PL, PB, PR), repeat),
        "col2im gather": timed(lambda: col2im_gather(g, H, W, S, S, PT, PL), repeat),
        "col2im rows": timed(lambda: col2im_rows(g, H, W, S, S, PT, PL), repeat),
        "col2im parallel": timed(lambda: col2im_parallel(g, H, W, S, S, PT, PL), repeat),
    }
    return {"case": name, "col_mb": col.nbytes / 2**20, "timings": result}


def training_step_comparison(steps=8, batch=64):
    """ms per training step of the demo autoencoder with the serial vs the parallel col2im.

    Inside a step col2im runs right after a BLAS product, where the micro-benchmark
    above (kernels called back to back) flatters ``parallel=True``.
    """
    import numbanet as nb
    import numbanet.fast.conv as conv
    from numbanet.demos.autoencoder import build_autoencoder
    serial = conv.col2im_into

    def parallel_into(col, SH, SW, PT, PL, gx):          # col2im_into's signature: writes into gx
        gx[...] = col2im_parallel(col, gx.shape[1], gx.shape[2], SH, SW, PT, PL)

    x = np.random.default_rng(0).random((steps * batch, 28, 28, 1)).astype(np.float32)
    model = build_autoencoder(nb, "upsampling")
    model.compile(optimizer=nb.optimizers.Adadelta(learning_rate=1.0), loss="binary_crossentropy")
    out = {}
    try:
        for name, kernel in [("serial", serial), ("parallel", parallel_into)] * 2:
            conv.col2im_into = kernel
            model.fit(x[:batch], x[:batch], batch_size=batch, epochs=1, verbose=0)    # warm-up
            start = time.perf_counter()
            model.fit(x, x, batch_size=batch, epochs=1, verbose=0)
            out.setdefault(name, []).append((time.perf_counter() - start) / steps * 1e3)
    finally:
        conv.col2im_into = serial
    return {name: min(v) for name, v in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rows = [run_case(*case, repeat=args.repeat) for case in CASES]
    for row in rows:
        print(f"\n{row['case']}  (col {row['col_mb']:.1f} MiB)")
        for name, t in row["timings"].items():
            print(f"  {name:<18} median {t['median_ms']:8.3f} ms   min {t['min_ms']:8.3f}   max {t['max_ms']:8.3f}")
    step = training_step_comparison()
    print("\nautoencoder training step (batch 64), col2im serial vs parallel: "
          + ", ".join(f"{k} {v:.1f} ms/step" for k, v in step.items()))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows, "training_step_ms": step}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
