"""One framework x one workload, in its own process (so its peak RSS is its own).

Started by ``benchmarks.run`` with the thread environment already set. Speaks JSON
lines: it answers on the original stdout (everything the frameworks print goes to
stderr), reads commands on stdin:

    -> {"event": "ready", "import_s", "build_s", "warmup": [first epoch s, second epoch s], ...}
    <- {"cmd": "run", "epochs": k}      -> {"seconds": s, "loss": l, "minor_faults": n}
    <- {"cmd": "quit"}                  -> {"peak_rss_mb": ..., "rss_mb": ...}

Any exception is answered with {"event": "error", "error": traceback} and the
process exits, so a framework or layer that fails never stops the other workloads.

``--mode`` (numbanet only): "tuned" applies the harness's thread settings and, with
``--tune-malloc``, glibc's; "default" is a plain script that sets nothing;
"default+tf" is that script with TensorFlow imported first and one TensorFlow
operation run, so TensorFlow's thread pools exist in the process while numbanet trains.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import time
import traceback


def rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--variant", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--tune-malloc", action="store_true")
    p.add_argument("--numbanet-serial", action="store_true")
    p.add_argument("--mode", default="tuned", choices=("tuned", "default", "default+tf"))
    args = p.parse_args(argv)

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                           # framework chatter -> stderr
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        from benchmarks import specs, threads
        from benchmarks.workloads import MODULES
        spec = specs.WORKLOADS[args.workload]
        x, y = specs.make_data(spec, args.steps)
        rss0 = rss_mb()
        t0 = time.perf_counter()
        impl = importlib.import_module(MODULES[args.variant])
        framework = impl.FRAMEWORK
        if framework == "tensorflow" or args.mode == "default+tf":
            import tensorflow  # noqa: F401  (import time counted here)
        if args.mode == "default+tf":     # TensorFlow's pools started, as after any Keras call
            tensorflow.linalg.matmul(tensorflow.ones((256, 256)), tensorflow.ones((256, 256))).numpy()
        if framework == "torch":
            import torch  # noqa: F401
        elif framework == "numbanet":
            import numbanet  # noqa: F401
        if args.mode == "tuned":
            thread_report = threads.limit_in_process(args.threads, framework, not args.numbanet_serial)
            thread_report["malloc"] = threads.tune_malloc(framework) if args.tune_malloc else "glibc defaults"
        else:
            thread_report = {}
        import_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = impl.build(spec, x, y, args.variant)
        build_s = time.perf_counter() - t0
        warm = []
        loss = None
        for _ in range(max(1, args.warmup_epochs)):
            t0 = time.perf_counter()
            loss = run(1)
            warm.append(time.perf_counter() - t0)
        if args.mode != "tuned":              # what the library chose, now that it has chosen
            thread_report = threads.library_defaults_report(framework)
            thread_report["malloc"] = "glibc defaults"
        thread_report["mode"] = args.mode
        send({"event": "ready", "import_s": import_s, "build_s": build_s, "warmup_epochs_s": warm,
              "loss": loss, "version": impl.version(), "threads": thread_report,
              "rss_before_import_mb": rss0, "rss_after_warmup_mb": rss_mb(),
              "samples": int(len(x)), "steps_per_epoch": specs.steps_per_epoch(spec, args.steps)})
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["cmd"] == "run":
                faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                loss = run(int(cmd["epochs"]))
                seconds = time.perf_counter() - t0
                # page faults: fresh pages touched (a step that reuses its arrays touches none)
                send({"seconds": seconds, "loss": loss,
                      "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0})
            elif cmd["cmd"] == "quit":
                send({"peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb()})
                return 0
    except BaseException:
        send({"event": "error", "error": traceback.format_exc()[-4000:]})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
