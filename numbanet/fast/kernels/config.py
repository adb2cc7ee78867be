"""One place for the Numba flags every kernel uses.

* ``cache=True`` stores compiled machine code beside the source (or in
  ``NUMBA_CACHE_DIR`` / ``~/.cache``) so the second process starts fast. Where no
  cache location is writable Numba raises at decoration time; we then fall back
  to ``cache=False`` instead of failing the import.
* ``nogil=True``: kernels release the GIL, so two Python threads can run them
  on the two halves of a batch.
* No ``fastmath=True``: it lets LLVM assume there is no NaN and silently breaks
  NaN checks. Kernels that want reassociation ask for
  ``FASTMATH = {'reassoc', 'contract', 'arcp'}``.
* ``parallel`` is off by default: on two shared cores, and right after an
  OpenBLAS call, Numba's OpenMP start-up costs milliseconds. A kernel that turns
  it on says so and why, from a benchmark.

``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python, so a learner can
step through any of them in a debugger; the test suite passes both ways.
"""
from __future__ import annotations

import sys
import warnings

import numba

FASTMATH = {"reassoc", "contract", "arcp"}


def _plain_index(i):
    """An index as it is: what ``U`` is in plain Python (``NUMBA_DISABLE_JIT=1``)."""
    return i


# ``U(i)``: an index as an unsigned integer, so that LLVM needs no negative-index test in the
# kernels' inner loops and can vectorise them (``direct_conv.py`` explains). Compiled, it is
# ``numba.uintp``; in plain Python an index is an int already, and calling ``numba.uintp`` there
# costs about 2 us, which made the plain-Python kernels several times slower than their own loops.
U = _plain_index if numba.config.DISABLE_JIT else numba.uintp


def njit(*args, **flags):
    """``numba.njit`` with the project's defaults (cache, nogil), and a cache fallback.

    Use as ``@njit`` or ``@njit(parallel=True)``.
    """
    def decorate(func):
        options = {"cache": True, "nogil": True}
        options.update(flags)
        try:
            return numba.njit(**options)(func)
        except RuntimeError as err:  # no writable cache location
            if not options.get("cache"):
                raise
            warnings.warn(f"numbanet: Numba cannot cache {func.__name__} ({err}); compiling without a cache",
                          RuntimeWarning, stacklevel=2)
            options["cache"] = False
            return numba.njit(**options)(func)

    if len(args) == 1 and callable(args[0]) and not flags:
        return decorate(args[0])
    return decorate


def numba_ready() -> bool:
    """True where kernels are compiled (not ``NUMBA_DISABLE_JIT``) and Numba is already set up here.

    For element-wise passes that NumPy also computes well: their kernels save a fraction of a
    millisecond per call, while a process's first Numba call costs about 0.45 s of set-up
    (``fast/dense.py: _kernels_ready``), and as plain Python they would run thousands of times
    slower than NumPy. Numba's set-up imports its implementations, ``numba.np.arraymath`` among them.
    """
    return not numba.config.DISABLE_JIT and "numba.np.arraymath" in sys.modules
