"""Where a W6 / W6L training step goes: min-of-N step time and the time of each fast-tier call.

The model is the harness's own (``workloads/numbanet_impl.build_model``), run as the
harness runs it (``set_num_threads(threads)``, ``tune_malloc()``, the thread variables
set before NumPy loads, OpenBLAS's SkylakeX kernels on an AVX-512 CPU). Every
function of ``numbanet.fast.tier`` is wrapped by a timer, so the table says how much
of the step each tier call takes (LSTM forward and backward, Dense, loss, Adam,
embedding) and what is left for the graph walk and the layers' Python.

Wall times on a shared machine are noisy: the step figure is the minimum over
``--repeats`` steps (and the median beside it), each part the minimum over the
steps of its per-step total; the load average is printed with them. Beside each
wall time stands the CPU time of the process (user + sys of all its threads,
``time.process_time``) over the same interval: on a machine shared with other
jobs it counts the work done, not the time spent waiting for a core.

    python -m benchmarks.bench_lstm_step [--workload W6] [--repeats 30] [--threads 2] [--no-split]

``--split-sizes`` measures instead one LSTM layer's forward + backward (fast tier, float32) at
a few sizes with the rows cut over the threads and without, interleaved, BLAS on one thread
for both (the setting RECURRENT_SPLIT_MIN_WORK in ``numbanet/fast/tuning.py`` comes from it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _env(threads):
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(key, str(threads))
    if "numpy" not in sys.modules and not os.environ.get("NUMBANET_KEEP_BLAS"):
        from benchmarks.threads import resolve_coretype
        coretype = resolve_coretype("auto")
        if coretype:
            os.environ.setdefault("OPENBLAS_CORETYPE", coretype)


def wrap_tier(totals):
    """Wrap every public function of the fast tier with a timer adding (wall s, CPU s) into ``totals[name]``."""
    import numbanet.fast.tier as tier

    def timed(name, fn):
        def inner(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                wall, cpu = totals.get(name, (0.0, 0.0))
                totals[name] = (wall + time.perf_counter() - t0, cpu + time.process_time() - c0)
        return inner

    for name in dir(tier):
        fn = getattr(tier, name)
        if callable(fn) and not name.startswith("_") and getattr(fn, "__module__", "").startswith("numbanet.fast"):
            setattr(tier, name, timed(name, fn))


SPLIT_SIZES = [(4, 10, 8, 8), (8, 10, 16, 16), (16, 10, 32, 32), (32, 20, 32, 32), (32, 20, 64, 64),
               (64, 20, 128, 128), (64, 20, 256, 256)]


def split_sizes(threads, repeats):
    """min-of-N ms of one LSTM forward + backward, rows split over ``threads`` threads vs one block."""
    import numpy as np

    import numbanet as nb
    import numbanet.fast.lstm as fast_lstm
    nb.utils.tune_malloc()
    nb.utils.set_num_threads(threads)
    nb.fast.parallel.run(lambda a, b, _: None, nb.fast.parallel.split(threads))   # BLAS -> 1 thread for both
    rng = np.random.default_rng(0)
    print(f"LSTM forward + backward, float32, {threads} threads, min of {repeats} (load {os.getloadavg()[0]:.2f})")
    print("| N, T, D, U | multiply-adds | one block ms | split ms | ratio |\n|---|---|---|---|---|")
    for N, T, D, U in SPLIT_SIZES:
        x = rng.standard_normal((N, T, D)).astype(np.float32)
        W = (rng.standard_normal((D, 4 * U)) * 0.1).astype(np.float32)
        R = (rng.standard_normal((U, 4 * U)) * 0.1).astype(np.float32)
        gy = rng.standard_normal((N, T, U)).astype(np.float32)
        best = {}
        for _ in range(repeats):
            for mode, minimum in (("serial", float("inf")), ("split", 0)):
                fast_lstm.RECURRENT_SPLIT_MIN_WORK = minimum
                t0 = time.perf_counter()
                _, saved = fast_lstm.lstm_forward(x, W, R)
                fast_lstm.lstm_backward(gy, saved)
                best[mode] = min(best.get(mode, np.inf), time.perf_counter() - t0)
        work = N * T * (D + U) * 4 * U
        print(f"| {N}, {T}, {D}, {U} | {work:,} | {best['serial'] * 1e3:.3f} | {best['split'] * 1e3:.3f} | "
              f"{best['serial'] / best['split']:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="W6")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (JIT compilation, scratch pool)")
    p.add_argument("--no-parts", action="store_true", help="time the step only (no wrappers)")
    p.add_argument("--no-split", action="store_true",
                   help="never cut the recurrent layers' rows over the threads (BLAS keeps its own threads)")
    p.add_argument("--split-sizes", action="store_true", help="one LSTM layer, split vs one block, by size")
    args = p.parse_args(argv)
    _env(args.threads)
    if args.split_sizes:
        return split_sizes(args.threads, args.repeats)
    import numpy as np

    import numbanet as nb
    from benchmarks import specs
    from benchmarks.workloads import numbanet_impl
    nb.utils.tune_malloc()
    nb.utils.set_num_threads(args.threads)
    if args.no_split:
        import numbanet.fast.lstm as fast_lstm
        fast_lstm.RECURRENT_SPLIT_MIN_WORK = float("inf")
    spec = specs.WORKLOADS[args.workload]
    x, y = specs.make_data(spec, 2)
    b = spec["batch"]
    model = numbanet_impl.build_model(spec)
    totals: dict = {}
    if not args.no_parts:
        wrap_tier(totals)
    for _ in range(args.warmup):                          # JIT compilation and the scratch pool
        model.train_step(x[:b], y[:b])
    steps, cpus, parts = [], [], []
    for _ in range(args.repeats):
        totals.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        model.train_step(x[:b], y[:b])
        steps.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        parts.append(dict(totals))
    steps, cpus = np.array(steps) * 1e3, np.array(cpus) * 1e3
    print(f"{args.workload} step: wall ms min {steps.min():.2f} median {np.median(steps):.2f}; "
          f"CPU ms min {cpus.min():.2f} median {np.median(cpus):.2f}  "
          f"({args.repeats} steps, {args.threads} threads, load {os.getloadavg()[0]:.2f})")
    if parts and parts[0]:
        print(f"  {'':<24} {'wall min':>9} {'median':>8} {'CPU min':>9} {'median':>8} ms")
        names = sorted(parts[0], key=lambda k: -np.median([q.get(k, (0, 0))[1] for q in parts]))
        for name in names:
            w = np.array([q.get(name, (0, 0))[0] for q in parts]) * 1e3
            c = np.array([q.get(name, (0, 0))[1] for q in parts]) * 1e3
            print(f"  {name:<24} {w.min():9.2f} {np.median(w):8.2f} {c.min():9.2f} {np.median(c):8.2f}")
        w = steps - np.array([sum(v[0] for v in q.values()) for q in parts]) * 1e3
        c = cpus - np.array([sum(v[1] for v in q.values()) for q in parts]) * 1e3
        print(f"  {'(outside tier calls)':<24} {w.min():9.2f} {np.median(w):8.2f} {c.min():9.2f} {np.median(c):8.2f}")

if __name__ == "__main__":
    main()
