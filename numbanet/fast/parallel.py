"""Two cores, used by splitting the batch, not by threading each kernel.

numbanet's big operations split naturally along the batch (rows of a matrix
product, images of a convolution). With ``set_num_threads(P)`` for P > 1, they
run their P parts on P Python threads, the caller's own and P - 1 pool
threads that stay alive: the Numba kernels release the GIL
(``nogil``) and so do NumPy's matrix products and large ufuncs, so the parts
really run at once. While they do, BLAS is limited to one thread per call, so
that the two levels of threading do not fight over the same cores.

Why not let BLAS thread each product, and ``parallel=True`` each kernel? Both
pay a start-up and a barrier per call, which for the small and medium products
of a training step (and right after one another, where Numba's OpenMP layer
costs milliseconds when it starts behind an OpenBLAS call) eats the gain. One
split per operation, on threads that stay alive, keeps each core busy on its
own half of the data from im2col through the product to col2im.

The first batch-split operation sets BLAS to one thread. OpenBLAS's thread
count is process-wide, so from then on every BLAS call of the process is
single-threaded; the big Dense products of such a model are then split across
the threads like the rest (``split_for_blas``). A model without batch-split
operations (Embedding, SimpleRNN, Dense) never does this and keeps BLAS's own
threads, which measured faster for its large products than splitting them
into halves. Its loss and other NumPy-only work can still use both cores
through ``run_numpy``, whose pool leaves BLAS alone.

The thread count is chosen at the first batch-split operation, not at import
(``num_threads``): ``set_num_threads(n)`` if the program called it, else the
environment variable NUMBANET_NUM_THREADS, else one thread per CPU this process
may run on (``os.sched_getaffinity``, which honours ``taskset`` and container CPU
sets), as TensorFlow and PyTorch use all cores by default. ``set_num_threads(1)``
runs every operation serially and leaves BLAS its own threads. The results of a
fixed thread count are the same from run to run (each part's work is the same
arithmetic in the same order); a different count may change the last bits of a
sum that the parts share.

Other libraries in the same process (TensorFlow, PyTorch) keep their own pools,
which sleep while numbanet computes; only NumPy's BLAS is limited to one thread
(``blas_controllers``), so the BLAS that another library loaded keeps its count.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .tuning import BLAS_SPLIT_MIN_WORK, NUMPY_SPLIT_MIN_ELEMENTS

_STATE = {"threads": None, "pool": None, "numpy_pool": None, "blas": None, "blas_counts": [], "blas_single": False}

ENV_VAR = "NUMBANET_NUM_THREADS"
_FIRST_USE = threading.Lock()


def available_cpus() -> int:
    """The CPUs this process may run on: ``os.sched_getaffinity`` (``taskset``, cgroup CPU sets),
    or ``os.cpu_count()`` where the platform has no affinity call."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The thread count used when the program never called ``set_num_threads``:
    NUMBANET_NUM_THREADS if set (a positive integer), else ``available_cpus()``."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return available_cpus()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"numbanet: the environment variable {ENV_VAR} must be a positive integer (the number "
                         f"of threads for batch-split operations), got {value!r}; unset it to use one thread "
                         f"per CPU ({available_cpus()} here), or set it to 1 to run serially")
    return n


def set_num_threads(n: int | None = None) -> int:
    """Run batch-split operations on ``n`` threads (None: ``default_threads()``); returns n.

    The pools start here; BLAS gets back the thread count it had before the first split.
    """
    if n is None:
        n = default_threads()
    elif isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be a positive integer or None, got the "
                        f"{type(n).__name__} {n!r}")
    elif n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}; "
                         f"set_num_threads(1) runs every operation serially")
    n = int(n)
    for key in ("pool", "numpy_pool"):
        if _STATE[key] is not None:
            _STATE[key].shutdown(wait=True)
    if _STATE["blas_counts"]:                 # a split ran: BLAS gets its own threads back
        for lc, count in zip(blas_controllers(), _STATE["blas_counts"]):
            lc.set_num_threads(count)
    _STATE["blas_counts"], _STATE["blas_single"] = [], False
    # the caller's thread runs one part of each split, so n - 1 workers per pool
    _STATE["pool"] = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="numbanet",
                                        initializer=_single_threaded_blas) if n > 1 else None
    _STATE["numpy_pool"] = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="numbanet-np") if n > 1 else None
    _STATE["threads"] = n
    return n


def num_threads() -> int:
    """The thread count of batch-split operations; the first call settles the default (no pool
    thread starts before an operation needs one: ThreadPoolExecutor starts its threads on demand)."""
    if _STATE["threads"] is None:
        with _FIRST_USE:                      # two user threads starting at once make one set of pools
            if _STATE["threads"] is None:
                set_num_threads(None)
    return _STATE["threads"]


def blas_controllers():
    """threadpoolctl's handles on the loaded BLAS libraries ([] without threadpoolctl)."""
    if _STATE["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
            _STATE["blas"] = numpy_blas(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # pragma: no cover - threadpoolctl missing or unable to load
            _STATE["blas"] = []
    return _STATE["blas"]


def numpy_blas(controllers):
    """The controllers of the BLAS that NumPy itself calls, out of all the BLAS libraries loaded.

    A wheel's NumPy carries its OpenBLAS in ``numpy.libs`` (or ``numpy/.dylibs``);
    SciPy, which TensorFlow imports, loads a second one of its own. Only NumPy's
    is limited during a split, so the other library keeps its thread count. Where
    no library lies under NumPy's folders (a NumPy linked to the system's BLAS, as
    conda builds are), NumPy's BLAS cannot be told apart and all are returned.
    """
    controllers = list(controllers)
    root = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))
    homes = [os.path.join(root, d) for d in ("numpy.libs", os.path.join("numpy", ".dylibs"), "numpy")]
    own = [lc for lc in controllers
           if any(os.path.realpath(lc.filepath).startswith(h + os.sep) for h in homes)]
    return own or controllers


def split(n: int, parts: int | None = None):
    """[(start, stop), ...]: ``n`` items in at most ``parts`` near-equal contiguous ranges.

    Boundary i is i*n/parts rounded half up, in integers (this runs a dozen times
    a step; ``np.linspace`` cost more than the rest of the bookkeeping together).
    """
    if n <= 0:
        return [(0, 0)]                       # an empty batch: one empty range, run on the caller
    parts = max(1, min(parts or num_threads(), n))
    bounds = [(2 * i * n + parts) // (2 * parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _single_threaded_blas():
    """BLAS calls use one thread from now on (process-wide for OpenBLAS). Run by the
    caller of the first batch-split operation and in each worker thread as it starts."""
    blas = blas_controllers()
    if not _STATE["blas_counts"]:
        _STATE["blas_counts"] = [lc.get_num_threads() for lc in blas]
    for lc in blas:
        lc.set_num_threads(1)
    _STATE["blas_single"] = bool(blas)


def _run_on(pool, fn, ranges):
    """Part 0 on the calling thread, the others on ``pool``; waits for all, even on an error."""
    futures = [pool.submit(fn, a, b, i) for i, (a, b) in enumerate(ranges) if i > 0]
    try:
        first = fn(ranges[0][0], ranges[0][1], 0)
    finally:
        wait(futures)                         # the parts write into shared arrays: let them finish
    return [first] + [f.result() for f in futures]


def run(fn, ranges):
    """fn(start, stop, worker) for each range; returns the results in order.

    With more than one range and a pool, range 0 runs on the calling thread
    and the others on the pool's threads (one hand-off fewer than sending all
    of them away); BLAS is single-threaded from the first such call on
    (``_single_threaded_blas``).
    """
    if _STATE["threads"] is None:
        num_threads()
    pool = _STATE["pool"]
    if pool is None or len(ranges) == 1:
        return [fn(a, b, i) for i, (a, b) in enumerate(ranges)]
    if not _STATE["blas_single"]:
        _single_threaded_blas()
    return _run_on(pool, fn, ranges)


def run_numpy(fn, ranges):
    """As ``run``, for parts that make no BLAS call (NumPy ufuncs and reductions only).

    These run on a second pool whose threads leave BLAS's thread count alone,
    so a model without convolutions (a text model's big Dense products) keeps
    BLAS's own threads while its loss and optimizer updates use both cores.
    """
    if _STATE["threads"] is None:
        num_threads()
    pool = _STATE["numpy_pool"]
    if pool is None or len(ranges) == 1:
        return [fn(a, b, i) for i, (a, b) in enumerate(ranges)]
    return _run_on(pool, fn, ranges)


def summed(parts):
    """The per-thread partial results of ``run`` added up: the first part with every other one added
    in place; each part one array, or a tuple of arrays (gW, gb) summed item by item."""
    total = parts[0]
    for part in parts[1:]:
        if isinstance(total, tuple):
            for t, p in zip(total, part):
                t += p
        else:
            total += part
    return total


def split_for_blas(n: int, work: int, minimum: int = BLAS_SPLIT_MIN_WORK):
    """Ranges for a matrix product over ``n`` rows (``work`` multiply-adds in all).

    Split across the threads only once the batch-split pool has made BLAS
    single-threaded (a model with convolutions started it): then one thread
    per half beats one thread for the whole. Otherwise one range, so that a
    model of big Dense products keeps BLAS's own threads (see the top).
    """
    if _STATE["threads"] is None:
        num_threads()
    if _STATE["pool"] is None or not _STATE["blas_single"] or work < minimum:
        return [(0, n)]
    return split(n)


def split_large(n: int, work: int, minimum: int = NUMPY_SPLIT_MIN_ELEMENTS):
    """``split(n)`` when the whole job touches at least ``minimum`` elements, else one range:
    below that, handing parts to threads costs more than it saves."""
    return split(n) if work >= minimum else [(0, n)]


def column_sums(a2):
    """sum over the rows of a2 (M, N) -> (N,), as ones(M) @ a2.

    NumPy's ``a2.sum(axis=0)`` walks the rows one by one; the BLAS matrix-vector
    product is 2-9x faster on the (pixels, channels) gradients of a bias.
    """
    key = (a2.shape[0], a2.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(a2.shape[0], dtype=a2.dtype)
    return ones @ a2


_ONES: dict = {}  # the ones vectors of column_sums, by (length, dtype)
