"""Where numbanet's training-step time goes (cProfile), W2 first: matrix products vs the rest.

cProfile does not see NumPy's ``@`` operator or ufuncs: their time is charged to
the Python function that made them (Numba dispatchers do report their calls to the
profiler, so each kernel appears under its own name). Each function's own time
("tottime") is put in a bucket:

    matrix products   the chunked convolution passes (fast/conv.py: forward / input_grad / weight_grad
                      and their chunks), MatMul (engine/ops.py), SimpleRNN._recur/_bptt/
                      forward/backward (engine/recurrent.py): their own time is the BLAS call(s)
    im2col / col2im, pooling, upsampling, embedding kernels   the wrapped Numba kernels
    direct conv loops  the convolutions with one input channel or one filter (kernels/direct_conv.py):
                       the layer's arithmetic itself, done in Numba instead of BLAS
    elementwise & reductions   other engine ops (activations, bias add, sums, casts) and NumPy calls
    optimizer, loss            numbanet/optimizers.py, numbanet/losses.py
    framework overhead         the graph walk, layers, models, training loop (Python)

The buckets are summed and reported as shares of the profiled step time; the
profiler's own overhead is included in the Python buckets (so they are upper bounds).
numbanet's batch split (``numbanet.utils.set_num_threads``) is left off here, whatever
the runner uses, because cProfile only sees the main thread: operations run serially,
with BLAS on ``--threads`` threads.

    python -m benchmarks.profile_step [--workloads W2-sgd W3] [--steps 30] [--json out.json]
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
import traceback

MATMUL_FUNCS = {("ops.py", "forward:matmul"), ("recurrent.py", "_recur"),
                ("recurrent.py", "_bptt"), ("recurrent.py", "forward"), ("recurrent.py", "backward")}
KERNEL_BUCKET = {"im2col.py": "im2col / col2im", "pooling.py": "max-pool kernels",      # by kernel file, so
                 "upsample.py": "upsampling kernels", "embedding.py": "embedding kernels",  # renames keep their bucket
                 "direct_conv.py": "direct conv loops", "elementwise.py": "elementwise & reductions"}
# the "memory-bound kernels": the ones that only move data (no arithmetic of the model)
DATA_MOVING = ("im2col / col2im", "max-pool kernels", "upsampling kernels")


def bucket(filename, func):
    base = filename.replace("\\", "/").split("/")[-1]
    if "numbanet/fast/kernels/" in filename.replace("\\", "/"):
        return KERNEL_BUCKET.get(base, "other kernels")
    if "numbanet/engine" in filename.replace("\\", "/") or "numbanet/fast/" in filename.replace("\\", "/"):
        if base in ("ops.py", "functional.py") and func in ("forward", "backward"):
            return "matmul-or-elementwise"            # resolved below by line number
        if (base, func) in MATMUL_FUNCS:
            return "matrix products (BLAS)"
        if filename.replace("\\", "/").endswith("fast/conv.py") and func != "_masked_by_relu":   # products + bias/relu
            return "matrix products (BLAS)"
        if base == "parallel.py" and func == "column_sums":   # bias gradients as GEMV
            return "matrix products (BLAS)"
        if base in ("tensor.py", "functional.py", "conv_shapes.py") and func not in ("forward", "backward"):
            return "framework overhead (Python)"
        return "elementwise & reductions"
    if filename.endswith("optimizers.py"):
        return "optimizer updates"
    if filename.endswith("losses.py"):
        return "loss"
    if "numbanet" in filename:
        return "framework overhead (Python)"
    if filename == "~":                               # builtins: NumPy C functions and methods
        if "matmul" in func or "dot" in func:
            return "matrix products (BLAS)"
        if "acquire" in func or "wait" in func:
            return "waiting on other threads"
        return "elementwise & reductions"
    if "numpy" in filename:
        return "elementwise & reductions"
    return "framework overhead (Python)"


def profile(name, steps):
    import numpy as np
    from benchmarks import specs
    from benchmarks.workloads import numbanet_impl
    import numbanet.engine.ops as ops
    spec = specs.WORKLOADS[name]
    x, y = specs.make_data(spec, min(4, steps))
    model = numbanet_impl.build_model(spec)
    b = spec["batch"]
    batches = [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(len(x) // b)]
    for i in range(2):
        model.train_step(*batches[i % len(batches)])  # warm-up (JIT) before profiling
    t0 = time.perf_counter()
    for i in range(steps):
        model.train_step(*batches[i % len(batches)])
    plain = (time.perf_counter() - t0) / steps
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i in range(steps):
        model.train_step(*batches[i % len(batches)])
    prof.disable()
    profiled = (time.perf_counter() - t0) / steps
    st = pstats.Stats(prof)
    import numbanet.engine.functional as fnl
    mm_lines = {("ops.py", f.__code__.co_firstlineno) for f in (ops.MatMul.forward, ops.MatMul.backward)}
    mm_lines |= {("functional.py", f.__code__.co_firstlineno) for f in (fnl.Linear.forward, fnl.Linear.backward)}
    buckets, top = {}, []
    for (filename, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
        bk = bucket(filename, func)
        if bk == "matmul-or-elementwise":
            key = (filename.replace("\\", "/").split("/")[-1], line)
            bk = "matrix products (BLAS)" if key in mm_lines else "elementwise & reductions"
        buckets[bk] = buckets.get(bk, 0.0) + tt
        top.append((tt, f"{filename.split('numbanet/')[-1]}:{line}({func})", bk))
    total = sum(buckets.values())
    top.sort(reverse=True)
    shares = {k: v / total for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])}
    mem_bound = sum(v for k, v in shares.items()
                    if k not in ("matrix products (BLAS)", "framework overhead (Python)", "direct conv loops"))
    return {"workload": name, "steps": steps, "step_s_unprofiled": plain, "step_s_profiled": profiled,
            "shares": shares, "matmul_share": shares.get("matrix products (BLAS)", 0.0),
            "direct_conv_share": shares.get("direct conv loops", 0.0),
            "memory_bound_share": mem_bound, "data_moving_share": sum(shares.get(k, 0.0) for k in DATA_MOVING),
            "python_overhead_share": shares.get("framework overhead (Python)", 0.0),
            "top_functions": [{"tottime_share": t / total, "function": f, "bucket": bk} for t, f, bk in top[:15]]}


# ------------------------------------------------------------ native (py-spy)
NATIVE_BUCKETS = (("openblas", "matrix products (OpenBLAS, incl. its thread hand-off)"),
                  ("mkl", "matrix products (OpenBLAS, incl. its thread hand-off)"),
                  ("_multiarray_umath", "NumPy elementwise, reductions, copies"),
                  ("libc.so", "libc: memset/memcpy, malloc/free, page faults"),
                  ("libpython", "Python interpreter (framework overhead)"))


WAITS = ("wait (threading.py", "get (queue.py", "_worker (concurrent/futures/thread.py:8",
         "acquire", "result (concurrent/futures/_base.py")


def native_bucket(frames):
    """Bucket one sampled stack by its innermost frame (py-spy --native, raw format).

    A Python frame that waits (a pool thread on its queue, the main thread on a future)
    above native code puts the sample in "waiting for other threads"."""
    import re
    py = [fr for fr in frames if ".py:" in fr]
    if py and any(w in py[-1] for w in WAITS):
        return "waiting for other threads"
    leaf = frames[-1]
    m = re.search(r"\(([^)]*)\)$", leaf)
    where = m.group(1) if m else leaf
    for key, name in NATIVE_BUCKETS:
        if key in where:
            return name
    if where == "?":                       # JIT code without symbols: a Numba kernel
        return "Numba kernels (direct conv loops, im2col/col2im, pooling, upsampling, embedding)"
    if where.endswith(".py") or ".py:" in where:
        return "Python interpreter (framework overhead)"
    return "other native code"


def native_profile(name, seconds, threads, numbanet_split):
    """Sample a fresh process running train_step in a loop with ``py-spy record --native``;
    return bucket shares of the samples taken inside train_step (or numbanet's pool threads)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return {"error": "py-spy is not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "stacks.txt")
        cmd = [spy, "record", "--native", "-r", "200", "--format", "raw", "-o", raw, "--",
               sys.executable, "-m", "benchmarks.profile_step", "--loop", name, str(seconds),
               "--threads", str(threads)] + ([] if numbanet_split else ["--numbanet-serial"])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        if p.returncode != 0 or not os.path.exists(raw):
            return {"error": f"py-spy failed (rc {p.returncode}): {p.stderr[-500:]}"}
        counts, total = {}, 0
        with open(raw) as f:
            for line in f:
                stack, n = line.rstrip("\n").rsplit(" ", 1)
                frames = stack.split(";")
                if not any("train_step" in fr or "concurrent/futures/thread.py" in fr for fr in frames):
                    continue                # imports, JIT compilation, set-up
                b = native_bucket(frames)
                counts[b] = counts.get(b, 0) + int(n)
                total += int(n)
    if not total:
        return {"error": "no samples inside train_step"}
    waiting = counts.pop("waiting for other threads", 0)
    busy = total - waiting
    if not busy:
        return {"error": "no busy samples inside train_step"}
    return {"samples": total, "busy_samples": busy, "waiting_samples": waiting, "numbanet_split": numbanet_split,
            "shares": {k: v / busy for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}}


def loop(name, seconds):
    """The py-spy target: warm up, then train_step for ``seconds``."""
    import time as _t
    from benchmarks import specs
    from benchmarks.workloads import numbanet_impl
    spec = specs.WORKLOADS[name]
    x, y = specs.make_data(spec, 4)
    model = numbanet_impl.build_model(spec)
    b = spec["batch"]
    batches = [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(len(x) // b)]
    for i in range(3):
        model.train_step(*batches[i % len(batches)])
    t0, i = _t.perf_counter(), 0
    while _t.perf_counter() - t0 < seconds:
        model.train_step(*batches[i % len(batches)])
        i += 1


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--workloads", nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    p.add_argument("--tune-malloc", action="store_true")
    p.add_argument("--numbanet-serial", action="store_true")
    p.add_argument("--loop", nargs=2, default=None, metavar=("WORKLOAD", "SECONDS"), help=argparse.SUPPRESS)
    p.add_argument("--native", nargs="*", default=None,
                   help="workloads to sample with py-spy --native (default: W2-sgd, plus W3 W4 W5L in full mode)")
    args = p.parse_args(argv)
    if args.loop:
        from .threads import limit_in_process, tune_malloc
        limit_in_process(args.threads, "numbanet", not args.numbanet_serial)
        tune_malloc("numbanet")
        return loop(args.loop[0], float(args.loop[1]))
    from .threads import limit_in_process, tune_malloc
    # always serial: cProfile sees only the thread that enabled it, and numbanet's batch split
    # runs the work on pool threads (the main thread would only show lock waits)
    thread_mode = limit_in_process(args.threads, "numbanet", False).get("numbanet_mode")
    malloc = tune_malloc("numbanet") if args.tune_malloc else "glibc defaults"
    names = args.workloads or (["W2-sgd"] if args.quick else ["W2-sgd", "W2-adam", "W3", "W4", "W5", "W5L"])
    steps = args.steps or (5 if args.quick else 20)
    heavy = {"W5L": 2}                                # seconds per step: profile only a couple
    out = {"malloc": malloc, "threads": thread_mode}
    for name in names:
        try:
            res = out[name] = profile(name, min(steps, heavy.get(name, steps)))
            print(f"  {name}: step {res['step_s_unprofiled'] * 1e3:.2f} ms (profiled {res['step_s_profiled'] * 1e3:.2f} ms); "
                  + ", ".join(f"{k} {v:.0%}" for k, v in res["shares"].items()))
        except Exception:
            out[name] = {"error": traceback.format_exc(limit=3)}
            print(f"  {name}: ERROR {out[name]['error'].splitlines()[-1]}")
    native = args.native if args.native else (["W2-sgd"] if args.quick else ["W2-sgd", "W3", "W4", "W5L"])
    out["native"] = {}
    for name in native:
        for split in ((False,) if args.quick else (False, True)):
            key = f"{name} ({'batch split' if split else 'serial'})"
            res = out["native"][key] = native_profile(name, 4 if args.quick else 8, args.threads, split)
            if "shares" in res:
                print(f"  native {key}: " + ", ".join(f"{k} {v:.0%}" for k, v in res["shares"].items()))
            else:
                print(f"  native {key}: {res['error'][:200]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
