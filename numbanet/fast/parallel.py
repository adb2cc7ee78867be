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

With the default of 1 thread nothing changes: operations run serially and BLAS
keeps its own threads.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .tuning import BLAS_SPLIT_MIN_WORK, NUMPY_SPLIT_MIN_ELEMENTS

_STATE = {"threads": 1, "pool": None, "numpy_pool": None, "blas": None, "blas_counts": [], "blas_single": False}


def set_num_threads(n: int | None = None) -> int:
    """Run batch-split operations on ``n`` threads (default: the number of CPUs); returns n."""
    n = int(n or os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
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
    return _STATE["threads"]


def blas_controllers():
    """threadpoolctl's handles on the loaded BLAS libraries ([] without threadpoolctl)."""
    if _STATE["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
            _STATE["blas"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # pragma: no cover - threadpoolctl missing or unable to load
            _STATE["blas"] = []
    return _STATE["blas"]


def split(n: int, parts: int | None = None):
    """[(start, stop), ...]: ``n`` items in at most ``parts`` near-equal contiguous ranges.

    Boundary i is i*n/parts rounded half up, in integers (this runs a dozen times
    a step; ``np.linspace`` cost more than the rest of the bookkeeping together).
    """
    parts = max(1, min(parts or _STATE["threads"], n))
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
    pool = _STATE["numpy_pool"]
    if pool is None or len(ranges) == 1:
        return [fn(a, b, i) for i, (a, b) in enumerate(ranges)]
    return _run_on(pool, fn, ranges)


def split_for_blas(n: int, work: int, minimum: int = BLAS_SPLIT_MIN_WORK):
    """Ranges for a matrix product over ``n`` rows (``work`` multiply-adds in all).

    Split across the threads only once the batch-split pool has made BLAS
    single-threaded (a model with convolutions started it): then one thread
    per half beats one thread for the whole. Otherwise one range, so that a
    model of big Dense products keeps BLAS's own threads (see the top).
    """
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
