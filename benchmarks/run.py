"""numbanet's benchmark harness: the same workloads in numbanet, TensorFlow/Keras 3 and PyTorch.

    python -m benchmarks.run                    # everything (about 15 minutes on 2 cores)
    python -m benchmarks.run --quick            # smoke test, under 2 minutes
    python -m benchmarks.run --workloads W1 W2 --repeats 9 --threads 2
    numbanet bench [same options]

How figures are taken
---------------------
* Each (workload, framework variant) runs in its own subprocess (``benchmarks.worker``),
  so its peak RSS (ru_maxrss) is its own. The thread environment (OMP, OpenBLAS, MKL,
  Numba, TensorFlow intra/inter-op, torch) is set before any import and applied again
  in-process (threadpoolctl); what is in force is recorded.
* Warm-up is excluded: every worker first trains ``--warmup-epochs`` epochs (JIT
  compilation, TF tracing) and reports them separately.
* Steady state: the runner then asks the workers, round-robin (the starting worker
  rotates), for one measurement each per repetition. A measurement is ``k`` whole epochs
  over the fixed synthetic data set, ``k`` chosen per worker so that it lasts at least
  ``--min-time`` seconds; the figure is seconds per epoch (and per step, samples/s).
  Idle workers are blocked on a pipe; a short pause between measurements lets BLAS
  threads that spin after work go back to sleep.
* Each figure is the median over ``--repeats`` repetitions, with min and max. Ratios are
  the median of the per-repetition ratios (paired measurements taken back to back, so they
  hold on a noisy machine).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import specs
from .threads import thread_env

ROOT = Path(__file__).resolve().parent.parent       # the repository root (benchmarks/ lives there)
PAUSE_S = 0.15


class CpuMeter:
    """How much CPU *other* processes used while we measured: /proc/stat busy time minus ours.

    Ours is this process plus its waited-for children (every worker is waited for before
    a reading). The result, in cores, is the honest "was the machine quiet" figure: the
    load average would count our own workers too.
    """

    def __init__(self):
        self.t, self.busy, self.ours = self._read()

    @staticmethod
    def _read():
        import resource
        tick = os.sysconf("SC_CLK_TCK")
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
            busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick   # all but idle and iowait
        except (OSError, ValueError, IndexError):
            busy = float("nan")
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.time(), busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def others_cores(self):
        t, busy, ours = self._read()
        return max(0.0, ((busy - self.busy) - (ours - self.ours)) / max(t - self.t, 1e-9))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def installed(framework):
    import importlib.util
    mod = {"tensorflow": "tensorflow", "torch": "torch", "numbanet": "numbanet"}[framework]
    return importlib.util.find_spec(mod) is not None


# ------------------------------------------------------------------ workers
class Worker:
    """A benchmark subprocess and its JSON-lines pipe."""

    def __init__(self, variant, workload, args):
        self.variant, self.workload = variant, workload
        self.errfile = open(Path(args.tmp) / f"{workload}-{variant}.stderr", "w+")
        cmd = [sys.executable, "-m", "benchmarks.worker", "--variant", variant, "--workload", workload,
               "--threads", str(args.threads), "--warmup-epochs", str(args.warmup_epochs)]
        if args.steps is not None:
            cmd += ["--steps", str(args.steps)]
        if args.malloc == "all" or (args.malloc == "numbanet" and variant == "numbanet"):
            cmd.append("--tune-malloc")
        if args.numbanet_threads == "serial":
            cmd.append("--numbanet-serial")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=thread_env(args.threads, openblas_coretype=args.openblas_coretype), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stderr_tail(self, n=1500):
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read()[-n:]

    def receive(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError(f"{self.workload}/{self.variant}: no answer within {timeout:.0f} s")
        if line is None:
            raise RuntimeError(f"{self.workload}/{self.variant}: worker exited (rc {self.proc.wait()}); "
                               f"stderr: {self.stderr_tail()}")
        msg = json.loads(line)
        if msg.get("event") == "error":
            raise RuntimeError(f"{self.workload}/{self.variant} failed:\n{msg['error']}")
        return msg

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def summarize(values):
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return {"median": med, "min": v[0], "max": v[-1], "n": n}


def bench_workload(name, args, variants):
    """Warm up one worker per variant (one at a time), then measure them round-robin."""
    spec = specs.WORKLOADS[name]
    steps = specs.steps_per_epoch(spec, args.steps)
    out = {"title": spec["title"], "batch": spec["batch"], "steps_per_epoch": steps,
           "samples_per_epoch": spec["batch"] * steps, "step_gflop": specs.step_flops(spec) / 1e9,
           "variants": {}}
    workers = {}
    meter = CpuMeter()
    for v in variants:
        res = out["variants"][v] = {}
        framework = specs.PEER_OF[v]
        if not installed(framework):
            res["skipped"] = f"{framework} is not installed"
            log(f"  {name:<8} {v:<12} skipped: {framework} is not installed")
            continue
        try:
            w = Worker(v, name, args)
            ready = w.receive(args.timeout)
            res.update({k: ready[k] for k in ("import_s", "build_s", "warmup_epochs_s", "version", "threads",
                                              "rss_after_warmup_mb")})
            epoch_s = max(ready["warmup_epochs_s"][-1], 1e-5)
            w.epochs = max(1, min(args.max_epochs, math.ceil(args.min_time / epoch_s)))
            res["epochs_per_measurement"] = w.epochs
            res["times"] = []
            workers[v] = w
            log(f"  {name:<8} {v:<12} ready: warm-up epochs {', '.join(f'{t:.3g}' for t in ready['warmup_epochs_s'])} s,"
                f" {w.epochs} epoch(s) per measurement")
        except Exception as err:  # a broken framework or layer: report it, go on
            res["error"] = str(err)
            log(f"  {name:<8} {v:<12} ERROR: {str(err).strip().splitlines()[-1]}")
            if v in workers:
                workers.pop(v).kill()
    order = list(workers)
    repeats = min(args.repeats, spec.get("max_repeats", args.repeats))
    out["repeats"] = repeats
    for rep in range(repeats):
        k = rep % max(1, len(order))
        for v in order[k:] + order[:k]:
            w = workers.get(v)
            if w is None:
                continue
            try:
                time.sleep(PAUSE_S)
                w.send({"cmd": "run", "epochs": w.epochs})
                msg = w.receive(args.timeout)
                out["variants"][v]["times"].append(msg["seconds"] / w.epochs)
                out["variants"][v]["loss"] = msg["loss"]
            except Exception as err:
                out["variants"][v]["error"] = str(err)
                log(f"  {name:<8} {v:<12} ERROR during measurement: {str(err).strip().splitlines()[-1]}")
                workers.pop(v).kill()
    for v, w in workers.items():
        try:
            w.send({"cmd": "quit"})
            out["variants"][v].update(w.receive(args.timeout))
        except Exception as err:
            out["variants"][v]["error"] = str(err)
        w.kill()
    out["other_processes_cpu_cores"] = meter.others_cores()
    out["load_avg_end"] = os.getloadavg()
    for v, res in out["variants"].items():
        if res.get("times"):
            res["epoch_s"] = summarize(res["times"])
            res["step_s"] = {k: (t / steps if k != "n" else t) for k, t in res["epoch_s"].items()}
            res["samples_per_s"] = out["samples_per_epoch"] / res["epoch_s"]["median"]
    nbt = out["variants"].get("numbanet", {}).get("times")
    if nbt:
        for v, res in out["variants"].items():
            if v != "numbanet" and res.get("times") and len(res["times"]) == len(nbt):
                # speed-up of numbanet over this peer, paired per repetition (>1: numbanet faster)
                res["numbanet_speedup"] = summarize([p / q for p, q in zip(res["times"], nbt)])
    for v, res in out["variants"].items():
        if "epoch_s" in res:
            sp = res.get("numbanet_speedup", {}).get("median")
            log(f"  {name:<8} {v:<12} {res['epoch_s']['median'] * 1e3:10.3f} ms/epoch "
                f"[{res['epoch_s']['min'] * 1e3:.3f}-{res['epoch_s']['max'] * 1e3:.3f}]"
                + (f"  numbanet speed-up x{sp:.2f}" if sp else ""))
    log(f"  {name:<8} other processes used {out['other_processes_cpu_cores']:.2f} cores on average meanwhile")
    return out


# --------------------------------------------------------- side sections
def run_module(module, extra, args, timeout):
    """Run ``python -m module --json FILE`` in a subprocess with the thread env; return its JSON."""
    path = Path(args.tmp) / f"{module.split('.')[-1]}.json"
    env = thread_env(args.threads, openblas_coretype=args.openblas_coretype)
    env["BENCH_ORIGINAL_OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "")
    cmd = [sys.executable, "-m", module, "--json", str(path), "--threads", str(args.threads)] + extra
    if args.quick:
        cmd.append("--quick")
    if args.malloc != "none":
        cmd.append("--tune-malloc")
    if args.numbanet_threads == "serial":
        cmd.append("--numbanet-serial")
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{module} timed out after {timeout} s"}
    sys.stderr.write(proc.stdout[-3000:])
    if proc.returncode != 0 or not path.exists():
        return {"error": f"{module} failed (rc {proc.returncode}): {proc.stderr[-2000:]}"}
    return json.loads(path.read_text())


def wait_quiet(max_wait, threshold=0.5):
    """Wait (at most ``max_wait`` seconds) until the 1-minute load average is below ``threshold``."""
    t0 = time.time()
    while os.getloadavg()[0] >= threshold and time.time() - t0 < max_wait:
        log(f"waiting for a quiet machine: load average {os.getloadavg()[0]:.2f} >= {threshold}")
        time.sleep(15)
    log(f"load average {os.getloadavg()[0]:.2f} after {time.time() - t0:.0f} s of waiting")


def code_state():
    """The commit and the files that differ from it, so a figure can be tied to the code it measured."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    status = git("status", "--porcelain", "--", "numbanet")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "numbanet_files_changed_since_commit": [l[3:] for l in (status or "").splitlines()]}


def machine_info(args):
    info = {"code": code_state(),"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": args.threads,
            "OPENBLAS_CORETYPE": (os.environ.get("OPENBLAS_CORETYPE") if args.openblas_coretype is None
                                  else args.openblas_coretype or None),
            "load_avg_start": os.getloadavg()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")), None)
        flags = next((l for l in cpuinfo.splitlines() if l.startswith("flags")), "").split()
        info["avx512f"] = "avx512f" in flags
        info["avx2"] = "avx2" in flags
    except OSError:
        pass
    try:
        import numpy
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import numba
        info["numba"] = numba.__version__
    except ImportError:
        pass
    return info


def parse_args(argv):
    p = argparse.ArgumentParser(prog="numbanet bench", description="numbanet vs TensorFlow/Keras 3 vs PyTorch (CPU)")
    p.add_argument("--workloads", nargs="+", default=None,
                   help=f"any of {', '.join(specs.WORKLOADS)} (W2 = both W2s), or all (default: all; --quick: W1 W2-sgd W3 W5)")
    p.add_argument("--frameworks", nargs="+", default=list(specs.VARIANTS), choices=specs.VARIANTS)
    p.add_argument("--repeats", type=int, default=None, help="measurements per figure (default 7; --quick 3)")
    p.add_argument("--steps", type=int, default=None, help="batches per epoch of the synthetic data sets (not W1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=None, help="seconds per measurement, at least (default 0.5; --quick 0.05)")
    p.add_argument("--max-epochs", type=int, default=2000)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600, help="seconds a worker may take to answer")
    p.add_argument("--quick", action="store_true", help="smoke test: few workloads, steps and repeats (< 2 minutes)")
    p.add_argument("--skip", nargs="*", default=[], choices=("kernels", "coldstart", "profile", "chart"),
                   help="side sections to leave out")
    p.add_argument("--openblas-coretype", default="auto", metavar="NAME",
                   help="OPENBLAS_CORETYPE for every subprocess: auto (default) does what the numbanet command "
                        "does, SkylakeX on an AVX-512 CPU unless NUMBANET_KEEP_BLAS is set; keep = leave the "
                        "environment as it is; '' = unset (OpenBLAS autodetects); or a core name")
    p.add_argument("--malloc", default="numbanet", choices=("numbanet", "all", "none"),
                   help="whose processes get numbanet.utils.tune_malloc() (glibc keeps freed large blocks), as "
                        "the numbanet command does for its own process: numbanet's (default), all, none")
    p.add_argument("--numbanet-threads", default="split", choices=("split", "serial"),
                   help="split (default, as the numbanet command runs): numbanet.utils.set_num_threads(--threads), "
                        "each operation's batch split across threads, BLAS 1 thread per call; serial: the library's "
                        "default, serial operations on BLAS's own --threads threads")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for the 1-minute load average to drop below 0.5")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for JSON, Markdown, PNG")
    p.add_argument("--tag", default=None, help="file name stem (default: latest, or quick for --quick)")
    args = p.parse_args(argv)
    if args.quick:
        args.workloads = args.workloads or ["W1", "W2-sgd", "W3", "W5"]
        args.repeats = args.repeats or 3
        args.min_time = args.min_time if args.min_time is not None else 0.05
        args.steps = args.steps or 2
        args.warmup_epochs = min(args.warmup_epochs, 2)
    args.workloads = specs.expand(args.workloads or ["all"])
    args.repeats = args.repeats or 7
    args.min_time = args.min_time if args.min_time is not None else 0.5
    args.tag = args.tag or ("quick" if args.quick else "latest")
    from .threads import resolve_coretype
    args.openblas_coretype = None if args.openblas_coretype == "keep" else resolve_coretype(args.openblas_coretype)
    return args


def main(argv=None):
    import tempfile
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    started = time.time()
    if args.wait_quiet:
        wait_quiet(args.wait_quiet)
    meter = CpuMeter()
    with tempfile.TemporaryDirectory(prefix="numbanet-bench-") as tmp:
        args.tmp = tmp
        result = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
                  "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "machine": machine_info(args),
                  "settings": {k: getattr(args, k) for k in ("workloads", "frameworks", "repeats", "steps", "threads",
                                                             "min_time", "warmup_epochs", "quick", "openblas_coretype",
                                                             "malloc", "numbanet_threads")},
                  "workloads": {}}
        for fw in ("numbanet", "tensorflow", "torch"):
            if not installed(fw):
                log(f"note: {fw} is not installed; its figures are skipped")
        for name in args.workloads:
            log(f"[{name}] {specs.WORKLOADS[name]['title']}")
            try:
                result["workloads"][name] = bench_workload(name, args, args.frameworks)
            except Exception as err:
                result["workloads"][name] = {"error": repr(err)}
        if "kernels" not in args.skip:
            log("[kernels] micro-benchmarks, conv GFLOP/s and the matmul ceiling")
            result["kernels"] = run_module("benchmarks.kernels", [], args, 900)
        if "profile" not in args.skip:
            log("[profile] W2 step time: matrix products vs memory-bound kernels")
            result["profile"] = run_module("benchmarks.profile_step", [], args, 600)
        if "coldstart" not in args.skip:
            log("[coldstart] fresh process: empty and warm Numba cache")
            result["coldstart"] = run_module("benchmarks.coldstart", [], args, 900)
        result["machine"]["load_avg_end"] = os.getloadavg()
        result["machine"]["other_processes_cpu_cores"] = meter.others_cores()
        result["seconds"] = time.time() - started
    from . import report
    paths = report.write_all(result, Path(args.out), args.tag, chart="chart" not in args.skip)
    log("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
