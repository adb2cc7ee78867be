"""Cold start: a fresh Python process that imports the framework and runs W2's first training steps.

numbanet is measured twice per repetition with its own fresh NUMBA_CACHE_DIR: first
with the directory empty (every kernel is compiled), then again with the cache that
first run wrote (kernels are loaded from disk). TensorFlow (tf.function step: the
first call traces the graph) and PyTorch are measured for comparison. Figures:
interpreter + import, build, first step, second step (steady), and the whole
process's wall time as seen from outside.

    python -m benchmarks.coldstart [--quick] [--workload W2-sgd] [--json out.json]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(framework, workload, threads, malloc=False, split=True):
    """Runs in the fresh process: time import, build, first and second step; print JSON."""
    t_start = time.perf_counter()
    from benchmarks import specs
    spec = specs.WORKLOADS[workload]
    x, y = specs.make_data(spec, 1)
    mod = {"numbanet": "numbanet", "tensorflow": "tensorflow", "torch": "torch"}[framework]
    t0 = time.perf_counter()
    importlib.import_module(mod)
    from benchmarks.threads import limit_in_process
    limit_in_process(threads, framework, split)
    if malloc:
        from benchmarks.threads import tune_malloc
        tune_malloc(framework)
    import_s = time.perf_counter() - t0
    impl = importlib.import_module({"numbanet": "benchmarks.workloads.numbanet_impl",
                                    "tensorflow": "benchmarks.workloads.tf_impl",
                                    "torch": "benchmarks.workloads.torch_impl"}[framework])
    t0 = time.perf_counter()
    _, step = impl.first_step(spec, x, y)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    second = time.perf_counter() - t0
    print(json.dumps({"import_s": import_s, "build_s": build_s, "first_step_s": first, "second_step_s": second,
                      "import_to_first_step_done_s": time.perf_counter() - t_start - second}))


def run_child(framework, workload, threads, env, malloc=False, split=True):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "benchmarks.coldstart", "--child", framework, "--workload", workload,
                        "--threads", str(threads)] + (["--tune-malloc"] if malloc else [])
                       + ([] if split else ["--numbanet-serial"]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


def summarize(runs):
    if not runs:
        return {}
    keys = runs[0].keys()
    out = {}
    for k in keys:
        v = sorted(r[k] for r in runs)
        out[k] = {"median": v[len(v) // 2], "min": v[0], "max": v[-1], "n": len(v)}
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--child", default=None)
    p.add_argument("--workload", default="W2-sgd")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--tune-malloc", action="store_true", help="numbanet's processes call numbanet.utils.tune_malloc()")
    p.add_argument("--numbanet-serial", action="store_true", help="do not call numbanet.utils.set_num_threads")
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.workload, args.threads, args.tune_malloc, not args.numbanet_serial)
    repeats = args.repeats or (1 if args.quick else 3)
    from .threads import thread_env
    base = thread_env(args.threads)     # keeps OPENBLAS_CORETYPE as the runner set it
    cases = {"numbanet, empty Numba cache": [], "numbanet, warm Numba cache": [], "tensorflow (tf.function)": [],
             "torch": []}
    errors = {}
    import importlib.util
    for rep in range(repeats):
        cache = tempfile.mkdtemp(prefix="numbanet-coldstart-cache-")
        try:
            env = dict(base, NUMBA_CACHE_DIR=cache)
            for label in ("numbanet, empty Numba cache", "numbanet, warm Numba cache"):
                try:
                    cases[label].append(run_child("numbanet", args.workload, args.threads, env, args.tune_malloc,
                                                      not args.numbanet_serial))
                except Exception as err:
                    errors[label] = str(err)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        for label, fw in (() if args.quick else (("tensorflow (tf.function)", "tensorflow"), ("torch", "torch"))):
            if importlib.util.find_spec(fw) is None:
                errors[label] = f"{fw} is not installed"
                continue
            try:
                cases[label].append(run_child(fw, args.workload, args.threads, base))
            except Exception as err:
                errors[label] = str(err)
    out = {"workload": args.workload, "repeats": repeats,
           "cases": {k: summarize(v) for k, v in cases.items() if v}, "errors": errors}
    for label, s in out["cases"].items():
        print(f"  {label:<30} import {s['import_s']['median']:.2f} s, first step {s['first_step_s']['median']:.2f} s, "
              f"second step {s['second_step_s']['median'] * 1e3:.1f} ms, process wall {s['process_wall_s']['median']:.2f} s")
    for label, e in errors.items():
        print(f"  {label}: ERROR {e.strip().splitlines()[-1] if e.strip() else e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
