"""numbanet's benchmark harness: the same workloads in numbanet, TensorFlow/Keras 3 and PyTorch.

    python -m benchmarks.run                    # everything (about 15 minutes on 2 cores)
    python -m benchmarks.run --quick            # smoke test, under 2 minutes
    python -m benchmarks.run --workloads W1 W2 --repeats 9 --threads 2
    python -m benchmarks.run --mode tuned default default+tf --frameworks numbanet
    numbanet bench [same options]

Modes (``--mode``, one or more; numbanet only, each a worker of its own, interleaved
with the rest):

* ``tuned`` (the default): as the ``numbanet`` command runs, every thread count set
  to ``--threads``, OpenBLAS's SkylakeX kernels on an AVX-512 CPU, glibc's malloc
  tuned (``--malloc``), numbanet's batch split on ``--threads`` threads;
* ``default``: a plain ``import numbanet as nb`` script, nothing tuned: the caller's
  environment (with the ``numbanet`` command's own restart undone), no
  ``tune_malloc``, no ``set_num_threads``: whatever the library chooses by itself;
* ``default+tf``: the same script with TensorFlow imported first and one TensorFlow
  operation run, so its thread pools share the process.

Peers always run as in ``tuned`` (the same thread count for every framework). The
report gives each mode's figures, its ratio to ``tuned`` (paired per repetition),
and the machine: CPU model, vector extensions, cores, the BLAS and its kernel type
in each mode's environment, the date.

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
from .threads import plain_env, thread_env

ROOT = Path(__file__).resolve().parent.parent       # the repository root (benchmarks/ lives there)
PAUSE_S = 0.15
MODES = ("tuned", "default", "default+tf")
# the vector extensions a report names, in this order, when /proc/cpuinfo lists them
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "avx_vnni", "neon", "asimd", "sve")


def variant_mode(variant):
    """'numbanet@default' -> ('numbanet', 'default'); a plain variant runs in the tuned mode."""
    base, _, mode = variant.partition("@")
    return base, mode or "tuned"


def mode_env(mode, args):
    """The environment of a worker in ``mode``: the thread settings for tuned, the plain one otherwise."""
    if mode == "tuned":
        return thread_env(args.threads, openblas_coretype=args.openblas_coretype)
    return plain_env()


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
        base, mode = variant_mode(variant)
        self.errfile = open(Path(args.tmp) / f"{workload}-{variant}.stderr", "w+")
        cmd = [sys.executable, "-m", "benchmarks.worker", "--variant", base, "--workload", workload,
               "--threads", str(args.threads), "--warmup-epochs", str(args.warmup_epochs), "--mode", mode]
        if args.steps is not None:
            cmd += ["--steps", str(args.steps)]
        if mode == "tuned" and (args.malloc == "all" or (args.malloc == "numbanet" and variant == "numbanet")):
            cmd.append("--tune-malloc")
        if args.numbanet_threads == "serial":
            cmd.append("--numbanet-serial")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=mode_env(mode, args), text=True,
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
        framework = specs.PEER_OF[variant_mode(v)[0]]
        missing = [f for f in (framework, "tensorflow" if v.endswith("+tf") else None) if f and not installed(f)]
        if missing:
            res["skipped"] = f"{missing[0]} is not installed"
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
                out["variants"][v].setdefault("faults_per_epoch", []).append(msg.get("minor_faults", 0) / w.epochs)
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
    mine = [v for v in out["variants"] if variant_mode(v)[0] == "numbanet" and out["variants"][v].get("times")]
    ref = "numbanet" if "numbanet" in mine else (mine[0] if mine else None)
    nbt = out["variants"][ref]["times"] if ref else None
    out["speedup_reference"] = ref
    if nbt:
        for v, res in out["variants"].items():
            if variant_mode(v)[0] != "numbanet" and res.get("times") and len(res["times"]) == len(nbt):
                # speed-up of numbanet over this peer, paired per repetition (>1: numbanet faster)
                res["numbanet_speedup"] = summarize([p / q for p, q in zip(res["times"], nbt)])
    tuned = out["variants"].get("numbanet", {}).get("times")
    for v in mine:
        res = out["variants"][v]
        if v != "numbanet" and tuned and len(res["times"]) == len(tuned):
            # this mode's time over the tuned mode's, paired per repetition (<= 1.05: the target)
            res["time_vs_tuned"] = summarize([p / q for p, q in zip(res["times"], tuned)])
    for v, res in out["variants"].items():
        if "epoch_s" in res:
            sp = res.get("numbanet_speedup", {}).get("median")
            vt = res.get("time_vs_tuned", {}).get("median")
            log(f"  {name:<8} {v:<12} {res['epoch_s']['median'] * 1e3:10.3f} ms/epoch "
                f"[{res['epoch_s']['min'] * 1e3:.3f}-{res['epoch_s']['max'] * 1e3:.3f}]"
                + (f"  numbanet speed-up x{sp:.2f}" if sp else "") + (f"  time / tuned {vt:.3f}" if vt else ""))
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


def describe_cpu(cpuinfo):
    """The CPU as /proc/cpuinfo's text names it: model, vendor, family/model/stepping, the vector
    extensions of ``VECTOR_FLAGS`` it lists, and the physical cores (distinct (physical id,
    core id) pairs; None where the file does not say)."""
    def field(name, block):
        return next((l.split(":", 1)[1].strip() for l in block.splitlines()
                     if l.split(":", 1)[0].strip() == name), None)
    blocks = [b for b in cpuinfo.split("\n\n") if b.strip()]
    first = blocks[0] if blocks else ""
    flags = set((field("flags", first) or field("Features", first) or "").split())
    cores = {(field("physical id", b), field("core id", b)) for b in blocks}
    known = all(c[1] is not None for c in cores) and cores
    return {"model": field("model name", first) or field("Processor", first),
            "vendor": field("vendor_id", first),
            "family_model_stepping": "/".join(str(field(k, first)) for k in ("cpu family", "model", "stepping")),
            "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "logical_cpus": len(blocks) or None,
            "physical_cores": len(cores) if known else None}


BLAS_PROBE = ("import json, numpy, threadpoolctl; print(json.dumps([{k: i.get(k) for k in ('internal_api', "
              "'version', 'architecture', 'threading_layer', 'num_threads', 'filepath')} "
              "for i in threadpoolctl.threadpool_info() if i.get('user_api') == 'blas']))")


def blas_info(env):
    """NumPy's BLAS in a fresh process with ``env`` (the kernel type is chosen when it loads):
    threadpoolctl's internal_api (library), version, architecture (kernel type), threading
    layer, thread count and file; or {"error": ...}."""
    try:
        proc = subprocess.run([sys.executable, "-c", BLAS_PROBE], env=env, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        return {"error": proc.stderr.strip()[-300:]}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        return {"error": repr(err)}


def machine_info(args):
    """Which machine: CPU (model, vector extensions, cores), the CPUs this process may use, the
    BLAS in each mode's environment, the mode(s) and the date, plus versions and the load."""
    info = {"code": code_state(), "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "threads": args.threads, "modes": list(args.mode),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "OPENBLAS_CORETYPE": (os.environ.get("OPENBLAS_CORETYPE") if args.openblas_coretype is None
                                  else args.openblas_coretype or None),
            "load_avg_start": os.getloadavg()}
    try:
        info["cpus_available"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["cpus_available"] = os.cpu_count()
    try:
        cpu = describe_cpu(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = {"model": platform.processor() or platform.machine(), "vector_extensions": []}
    info["cpu"] = cpu.get("model")
    info["cpu_info"] = cpu
    info["avx512f"] = "avx512f" in cpu.get("vector_extensions", [])
    info["avx2"] = "avx2" in cpu.get("vector_extensions", [])
    envs = {"tuned": mode_env("tuned", args), "default": plain_env()}
    info["blas"] = {m: blas_info(envs["tuned" if m == "tuned" else "default"]) for m in args.mode}
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
    p.add_argument("--mode", nargs="+", default=["tuned"], choices=MODES,
                   help="numbanet's set-up, one worker per mode: tuned (default; as the numbanet command runs), "
                        "default (a plain script, nothing tuned), default+tf (the same with TensorFlow imported)")
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
    args.mode = list(dict.fromkeys(args.mode))
    args.variants = []
    for v in args.frameworks:                  # numbanet once per mode, in the order given
        if v == "numbanet":
            args.variants += ["numbanet" if m == "tuned" else f"numbanet@{m}" for m in args.mode]
        else:
            args.variants.append(v)
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
                                                             "malloc", "numbanet_threads", "mode")},
                  "workloads": {}}
        for fw in ("numbanet", "tensorflow", "torch"):
            if not installed(fw):
                log(f"note: {fw} is not installed; its figures are skipped")
        for name in args.workloads:
            log(f"[{name}] {specs.WORKLOADS[name]['title']}")
            try:
                result["workloads"][name] = bench_workload(name, args, args.variants)
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
