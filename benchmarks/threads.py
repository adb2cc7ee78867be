"""Thread counts: one place that sets them for every framework, and reports what is in force.

The environment variables must be set before NumPy, Numba, TensorFlow or torch
are imported, so the runner passes ``thread_env(n)`` to every subprocess;
``limit_in_process`` then also applies threadpoolctl and the frameworks' own
settings inside the process, and returns what was actually set.
"""
from __future__ import annotations

import os

ENV_KEYS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def thread_env(threads, base=None, openblas_coretype=None):
    """The environment for a subprocess: every thread count set; OPENBLAS_CORETYPE
    overridden when ``openblas_coretype`` is given ("" removes it: OpenBLAS autodetects)."""
    env = dict(os.environ if base is None else base)
    if openblas_coretype is not None:
        env.pop("OPENBLAS_CORETYPE", None)
        if openblas_coretype:
            env["OPENBLAS_CORETYPE"] = openblas_coretype
    for key in ENV_KEYS:
        env[key] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def plain_env(base=None):
    """The environment of a plain user script, for the library-default modes: the caller's own,
    with only what the ``numbanet`` command added undone (its restart onto OpenBLAS's SkylakeX
    kernels records the OPENBLAS_CORETYPE it replaced) and two quiet-logging settings."""
    env = dict(os.environ if base is None else base)
    if "NUMBANET_ORIGINAL_OPENBLAS_CORETYPE" in env:
        original = env.pop("NUMBANET_ORIGINAL_OPENBLAS_CORETYPE")
        env.pop("NUMBANET_KEEP_BLAS", None)
        env.pop("OPENBLAS_CORETYPE", None)
        if original:
            env["OPENBLAS_CORETYPE"] = original
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def library_defaults_report(framework):
    """What a plain script runs with (nothing set by the harness): numbanet's thread count as the
    library chose it, NumPy's BLAS, TensorFlow's pools when it is loaded. Call after the warm-up."""
    report = {"requested": "library default",
              "env": {k: os.environ.get(k) for k in ENV_KEYS + ("OPENBLAS_CORETYPE", "NUMBANET_NUM_THREADS")}}
    if framework == "numbanet":
        import numbanet.utils as nbu
        n = nbu.get_num_threads() if hasattr(nbu, "get_num_threads") else 1
        report["numbanet_threads"] = n
        report["numbanet_mode"] = (f"batch split over {n} threads (library default), BLAS 1 thread per call"
                                   if n > 1 else "serial operations (library default), BLAS with its own threads")
    import sys
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        report["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        report["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    report["blas"] = blas_report()
    return report


def blas_report():
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries (after limits)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return [{k: info.get(k) for k in ("internal_api", "num_threads", "version", "architecture", "prefix")}
            for info in threadpool_info()]


def limit_in_process(threads, framework, numbanet_split=True):
    """Apply the thread count inside this process; return a report of what is in force.

    For numbanet with ``numbanet_split`` (the default, as the ``numbanet`` command runs):
    ``numbanet.utils.set_num_threads(threads)`` splits each operation's batch across
    ``threads`` threads and holds BLAS to one thread per call; without it (or on a numbanet
    that lacks it) operations run serially on BLAS's own ``threads`` threads.
    """
    report = {"requested": threads,
              "env": {k: os.environ.get(k) for k in ENV_KEYS + ("OPENBLAS_CORETYPE",)}}
    if framework == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        report["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        report["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    elif framework == "torch":
        import torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # only allowed once, before any parallel work
            pass
        report["torch_threads"] = torch.get_num_threads()
        report["torch_interop_threads"] = torch.get_num_interop_threads()
    numbanet_split = framework == "numbanet" and numbanet_split
    if not numbanet_split:
        # In split mode numbanet manages BLAS's threads itself (set_num_threads); an
        # explicit threadpool_limits(threads) on top measured 2.4x slower on W3
        # (108 vs 44 ms per step), as OpenBLAS's thread settings then disagree.
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(threads)
        except ImportError:
            pass
    if framework == "numbanet":
        import numbanet.utils as nbu
        if numbanet_split and hasattr(nbu, "set_num_threads"):
            report["numbanet_threads"] = nbu.set_num_threads(threads)
            report["numbanet_mode"] = f"batch split over {threads} threads, BLAS 1 thread per call"
        else:
            report["numbanet_mode"] = f"serial operations, BLAS with {threads} threads"
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        report["numba_threads"] = numba.get_num_threads()
        report["numba_threading_layer_config"] = numba.config.THREADING_LAYER
    report["blas"] = blas_report()
    return report


def tune_malloc(framework):
    """Keep large freed blocks in the heap (glibc), as the ``numbanet`` command does for its process.

    For numbanet this calls ``numbanet.utils.tune_malloc`` (so the harness follows whatever
    numbanet ships); for a peer (``--malloc all``) it applies the same two mallopt settings
    without importing numbanet. Returns a short description of what was done.
    """
    if framework == "numbanet":
        try:
            from numbanet.utils import tune_malloc as nb_tune
        except ImportError:
            nb_tune = None
        if nb_tune is not None:
            return f"numbanet.utils.tune_malloc() -> {nb_tune()}"
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if not name:
        return "no glibc: nothing done"
    libc = ctypes.CDLL(name)
    ok = libc.mallopt(-3, 32 * 1024 * 1024) == 1 and libc.mallopt(-1, 256 * 1024 * 1024) == 1
    return f"mallopt(M_MMAP_THRESHOLD=32 MiB, M_TRIM_THRESHOLD=256 MiB) -> {ok}"


def resolve_coretype(value):
    """"auto": what the ``numbanet`` command does (OpenBLAS's SkylakeX kernels on an AVX-512 CPU,
    unless NUMBANET_KEEP_BLAS is set); None: keep the environment; else that value ("" = unset)."""
    if value != "auto":
        return value
    if os.environ.get("NUMBANET_KEEP_BLAS"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            avx512 = " avx512f" in f.read()
    except OSError:
        avx512 = False
    return "SkylakeX" if avx512 else None
