"""Two cores, used by splitting the batch, not by threading each kernel.

numbanet's big operations split naturally along the batch (rows of a matrix
product, images of a convolution). With ``set_num_threads(P)`` for P > 1, they
run their P parts on P Python threads: the Numba kernels release the GIL
(``nogil``) and so do NumPy's matrix products and large ufuncs, so the parts
really run at once. The BLAS library is then limited to one thread per call,
so that the two levels of threading do not fight over the same cores.

Why not let BLAS thread each product, and ``parallel=True`` each kernel? Both
pay a start-up and a barrier per call, which for the small and medium products
of a training step (and right after one another, where Numba's OpenMP layer
costs milliseconds when it starts behind an OpenBLAS call) eats the gain. One
split per operation, on threads that stay alive, keeps each core busy on its
own half of the data from im2col through the product to col2im.

With the default of 1 thread nothing changes: operations run serially and BLAS
keeps its own threads.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_STATE = {"threads": 1, "pool": None, "blas_limit": None}


def set_num_threads(n: int | None = None) -> int:
    """Run batch-split operations on ``n`` threads (default: the number of CPUs); returns n.

    Also limits BLAS to one thread per call while n > 1 (through threadpoolctl,
    when it is installed) and restores BLAS's own threads for n = 1.
    """
    n = int(n or os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    pool = _STATE["pool"]
    if pool is not None:
        pool.shutdown(wait=True)
    _STATE["pool"] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="numbanet") if n > 1 else None
    _STATE["threads"] = n
    _limit_blas(1 if n > 1 else None)
    return n


def _limit_blas(limit):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return
    previous = _STATE["blas_limit"]
    if previous is not None:
        previous.restore_original_limits()
        _STATE["blas_limit"] = None
    if limit is not None:
        _STATE["blas_limit"] = threadpool_limits(limits=limit, user_api="blas")


def num_threads() -> int:
    return _STATE["threads"]


def split(n: int, parts: int | None = None):
    """[(start, stop), ...]: ``n`` items in at most ``parts`` near-equal contiguous ranges."""
    parts = max(1, min(parts or _STATE["threads"], n))
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run(fn, ranges):
    """fn(start, stop, worker) for each range, on the pool when there is more than one; returns the results."""
    pool = _STATE["pool"]
    if pool is None or len(ranges) == 1:
        return [fn(a, b, i) for i, (a, b) in enumerate(ranges)]
    futures = [pool.submit(fn, a, b, i) for i, (a, b) in enumerate(ranges)]
    return [f.result() for f in futures]


# Below this many multiply-adds a product is not worth splitting (thread hand-off ~20 us).
MIN_SPLIT_FLOPS = 2_000_000


def matmul(a, b, out=None):
    """out = a @ b for a (M, K), b (K, N), the rows of a split across the threads."""
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = np.empty((M, N), dtype=np.result_type(a, b))
    if _STATE["pool"] is None or M * K * N < MIN_SPLIT_FLOPS:
        return np.matmul(a, b, out=out)

    def part(r0, r1, _):
        np.matmul(a[r0:r1], b, out=out[r0:r1])

    run(part, split(M))
    return out


def matmul_tn(a, g):
    """a^T @ g for a (M, K), g (M, N): each thread sums its own rows, the partial sums are added."""
    M, K = a.shape
    N = g.shape[1]
    if _STATE["pool"] is None or M * K * N < MIN_SPLIT_FLOPS:
        return a.T @ g
    partials = run(lambda r0, r1, _: a[r0:r1].T @ g[r0:r1], split(M))
    total = partials[0]
    for p in partials[1:]:
        total += p
    return total


def column_sums(a2):
    """sum over the rows of a2 (M, N) -> (N,), as ones(M) @ a2.

    NumPy's ``a2.sum(axis=0)`` walks the rows one by one; the BLAS matrix-vector
    product is 2-9x faster on the (pixels, channels) gradients of a bias.
    """
    return np.ones(a2.shape[0], dtype=a2.dtype) @ a2
