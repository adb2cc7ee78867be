"""Embedding backward: the Numba scatter-add kernel against ``np.add.at``.

The W5 shapes: a (2000, 256) table, a batch of 64 sequences of 20 ids
(M = 1280 gradient rows). Both build gW from zeros; the kernel's compilation is
done before timing. Prints medians (and min, max) in microseconds, and the speed-up.

    python -m benchmarks.bench_embedding [--repeats 50] [--vocab 2000] [--dim 256] [--batch 64] [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from numbanet.fast.kernels.embedding import embedding_backward_array


def add_at(ids, gy, V):
    gW = np.zeros((V, gy.shape[1]), gy.dtype)
    np.add.at(gW, ids, gy)
    return gW


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e6  # microseconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, args.batch * args.steps).astype(np.intp)
    gy = rng.standard_normal((ids.size, args.dim)).astype(np.float32)
    np.testing.assert_allclose(embedding_backward_array(ids, gy, args.vocab), add_at(ids, gy, args.vocab),
                               rtol=1e-5, atol=1e-5)  # also compiles the kernel
    results = {}
    for name, fn in [("numba scatter-add", lambda: embedding_backward_array(ids, gy, args.vocab)),
                     ("np.add.at", lambda: add_at(ids, gy, args.vocab)),
                     ("np.zeros alone", lambda: np.zeros((args.vocab, args.dim), np.float32))]:
        t = timed(fn, args.repeats)
        results[name] = {"median_us": float(np.median(t)), "min_us": float(t.min()), "max_us": float(t.max())}
        print(f"{name:<18} median {np.median(t):9.1f} us   min {t.min():9.1f}   max {t.max():9.1f}")
    ratio = results["np.add.at"]["median_us"] / results["numba scatter-add"]["median_us"]
    print(f"speed-up of the kernel over np.add.at (medians): {ratio:.1f}x   "
          f"[table ({args.vocab}, {args.dim}) float32, {ids.size} rows]")
    results["speedup"] = ratio
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
