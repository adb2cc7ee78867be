"""float32 exp, tanh and log: NumPy's ufuncs against the polynomials of ``fast/kernels/exp32.py``.

Four comparisons, each interleaved call by call, min and median of ``--repeats``:

1. exp of (B, V) shifted logits (W5's (1280, 2000) by default), as the sparse CE forward runs
   it one thread, per block of rows: NumPy's max, then either the three-step route (Numba
   shift, ``np.exp`` in place, Numba row sums: the float64 route) or ``softmax_ce_rows``
   (polynomial exp and row sum in one pass, the float32 route);
2. tanh in place on an (N, U) block (W5's SimpleRNN step, 64 x 256, by default): ``np.tanh``
   against ``exp32.tanh_inplace``;
3. the ns per element of ``np.exp``, ``np.tanh``, ``np.log``, ``np.sqrt`` (a vector-speed
   reference) and the polynomials on 64,000 float32 values;
4. the sigmoid and the binary cross-entropy forward on W3/W4's (256, 28, 28, 1) output as the
   fast tier runs them (``fast/activations.sigmoid_forward``, ``fast/losses.binary_ce_forward``)
   by NumPy's passes and by the one-pass kernels (``sigmoid_flat``, ``bce_terms_flat``).

Run it with BLAS and the pool on one thread (nothing here is threaded):

    python -m benchmarks.bench_exp32 [--repeats 50] [--B 1280] [--V 2000]
"""
from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np


def interleaved(fns, repeats):
    """{name: (min ms, median ms)} of each callable, the calls interleaved round by round."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v) * 1e3, float(np.median(v)) * 1e3) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--B", type=int, default=1280)
    p.add_argument("--V", type=int, default=2000)
    args = p.parse_args(argv)
    from numbanet.fast import losses
    from numbanet.fast.kernels import exp32
    from numbanet.fast.kernels import softmax_ce as K

    rng = np.random.default_rng(0)
    B, V = args.B, args.V
    z = (rng.standard_normal((B, V)) * 3).astype(np.float32)
    labels = rng.integers(0, V, B)
    e, s, values, zmax = np.empty_like(z), np.empty(B, np.float32), np.empty(B, np.float32), np.empty(B, np.float32)
    step = max(1, losses.ROW_BLOCK_BYTES // (V * 4))

    def numpy_exp_route():
        for r0 in range(0, B, step):
            r1 = min(r0 + step, B)
            np.max(z[r0:r1], axis=1, out=zmax[r0:r1])
            K.shift_rows(z[r0:r1], zmax[r0:r1], e[r0:r1])
            np.exp(e[r0:r1], out=e[r0:r1])
            K.lse_rows(e[r0:r1], z[r0:r1], labels[r0:r1], zmax[r0:r1], s[r0:r1], values[r0:r1])

    def polynomial_route():
        for r0 in range(0, B, step):
            r1 = min(r0 + step, B)
            np.max(z[r0:r1], axis=1, out=zmax[r0:r1])
            K.softmax_ce_rows(z[r0:r1], zmax[r0:r1], labels[r0:r1], e[r0:r1], s[r0:r1], values[r0:r1])

    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; {args.repeats} interleaved rounds; min / median ms")
    for k, (mn, md) in interleaved({"CE forward, np.exp route": numpy_exp_route,
                                    "CE forward, polynomial route": polynomial_route}, args.repeats).items():
        print(f"  ({B}, {V}) {k:32s} {mn:8.3f} {md:8.3f}")

    h = (rng.standard_normal((64, 256)) * 1.5).astype(np.float32)
    a = np.empty_like(h)
    res = interleaved({"np.tanh": lambda: (np.copyto(a, h), np.tanh(a, out=a)),
                       "exp32.tanh_inplace": lambda: (np.copyto(a, h), exp32.tanh_inplace(a))}, args.repeats * 20)
    for k, (mn, md) in res.items():
        print(f"  (64, 256) {k:32s} {mn * 1e3:8.1f} {md * 1e3:8.1f} us")

    x = -np.abs(rng.standard_normal(64000) * 3).astype(np.float32)
    out = np.empty_like(x)
    row_out = np.empty_like(x)
    res = interleaved({"np.exp": lambda: np.exp(x, out=out), "np.tanh": lambda: (np.copyto(out, x), np.tanh(out, out=out)),
                       "np.sqrt": lambda: np.sqrt(-x, out=out),
                       "exp32 exp (exp_shifted_row)": lambda: K.exp_shifted_row(x, np.float32(0), row_out),
                       "exp32 tanh": lambda: (np.copyto(out, x), exp32.tanh_inplace(out))}, args.repeats * 20)
    for k, (mn, md) in res.items():
        print(f"  ns per element, {k:28s} {mn * 1e6 / x.size:6.3f} {md * 1e6 / x.size:6.3f}")
    px = np.abs(x) * np.float32(0.3) + np.float32(1e-3)

    @numba.njit
    def log_all(v, o):
        for k in range(v.shape[0]):
            o[k] = exp32.log_pos(v[k])

    res = interleaved({"np.log": lambda: np.log(px, out=out), "exp32 log (log_pos)": lambda: log_all(px, out)},
                      args.repeats * 20)
    for k, (mn, md) in res.items():
        print(f"  ns per element, {k:28s} {mn * 1e6 / x.size:6.3f} {md * 1e6 / x.size:6.3f}")

    from numbanet.fast import activations
    y = (rng.standard_normal((256, 28, 28, 1)) * 3).astype(np.float32)
    p, t = rng.random(y.shape).astype(np.float32), rng.random(y.shape).astype(np.float32)
    ready = activations.numba_ready
    fns = {}
    for name, on in (("NumPy passes", False), ("one-pass kernel", True)):
        def use(on=on):
            activations.numba_ready = losses.numba_ready = (lambda: on)
        fns[f"sigmoid, {name}"] = lambda use=use: (use(), activations.sigmoid_forward(y))
        fns[f"BCE forward, {name}"] = lambda use=use: (use(), losses.binary_ce_forward(t, p))
    try:
        res = interleaved(fns, args.repeats)
    finally:
        activations.numba_ready = losses.numba_ready = ready
    for k, (mn, md) in res.items():
        print(f"  (256, 28, 28, 1) {k:30s} {mn:8.3f} {md:8.3f}")


if __name__ == "__main__":
    main()
