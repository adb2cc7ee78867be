"""Small timing helpers shared by the side sections."""
from __future__ import annotations

import time


def time_call(fn, repeats=7, min_time=0.05, max_inner=100000):
    """Seconds per call of ``fn()``: ``repeats`` measurements, each of enough calls to last
    ``min_time``; returns {"median", "min", "max", "n", "inner"}. The first call is a warm-up."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = int(max(1, min(max_inner, min_time / one)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return {"median": med, "min": times[0], "max": times[-1], "n": n, "inner": inner}
