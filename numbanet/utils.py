"""Small shared helpers: the random number generator numbanet draws from, names."""
from __future__ import annotations

import random
import re
from collections import defaultdict

import numpy as np

_RNG = [np.random.default_rng()]
_NAME_COUNTS: dict = defaultdict(int)


def set_random_seed(seed: int) -> None:
    """Seed everything numbanet draws from (initializers, dropout, shuffling),
    and Python's and NumPy's global generators, so a run can be repeated."""
    _RNG[0] = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def rng() -> np.random.Generator:
    """The generator behind every random draw that was not given its own seed."""
    return _RNG[0]


def snake_case(name: str) -> str:
    """'Conv2DTranspose' -> 'conv2d_transpose', 'SimpleRNN' -> 'simple_rnn' (Keras's naming)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    """Keras-style automatic names: dense, dense_1, dense_2, ..."""
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def one_of(kind: str, name, table: dict):
    """Look ``name`` up in ``table`` or raise a ValueError that lists the valid names."""
    key = name.lower() if isinstance(name, str) else name
    valid = ", ".join(sorted(k for k in table if isinstance(k, str)))
    try:
        found = key in table
    except TypeError:  # an unhashable value (a list, a dict) cannot be a name
        raise TypeError(f"{kind} must be a name ({valid}), got {name!r}") from None
    if not found:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {valid}")
    return table[key]


def check_number(owner: str, arg: str, value, *, integer=False, at_least=None, above=None,
                 below=None, at_most=None):
    """Return ``value`` if it is a number in range, else raise an error that says what to write.

    A number is an ``int``, a ``float`` or a NumPy number; ``integer=True`` takes
    integers only. A ``bool`` is not a number here (``epochs=True`` is a mistake,
    not one epoch), nor is a string (``"0.01"`` is text: the message says to
    drop the quotes). Wrong type: ``TypeError``; out of range (bounds
    ``at_least <= value``, ``above < value``, ``value < below``,
    ``value <= at_most``, each optional): ``ValueError``. Both messages start
    with ``owner`` and name ``arg`` and the value given.
    """
    kind = "an integer" if integer else "a number"
    ok_types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_types):
        got = f"the {type(value).__name__} {value!r}"
        fix = ""
        if isinstance(value, str):
            try:
                as_number = int(value) if integer else float(value)
                fix = f"; write {arg}={as_number!r}, without quotes"
            except ValueError:
                pass
        elif isinstance(value, (bool, np.bool_)):
            fix = f"; True and False are not numbers here: write {arg} as a number"
        elif integer and isinstance(value, (float, np.floating)) and float(value).is_integer():
            fix = f"; write {arg}={int(value)}"
        raise TypeError(f"{owner}: {arg} must be {kind}, got {got}{fix}")
    low = (at_least, "[", value >= at_least) if at_least is not None else \
        (above, "(", value > above) if above is not None else None
    high = (below, ")", value < below) if below is not None else \
        (at_most, "]", value <= at_most) if at_most is not None else None
    if value != value or not all(ok for _, _, ok in filter(None, (low, high))):  # value != value: NaN
        if integer and at_least == 1 and not high:
            kind, wanted = "a positive integer", ""
        elif low and high:                   # in [0, 1)
            wanted = f" in {low[1]}{low[0]}, {high[0]}{high[1]}"
        elif low:                            # >= 0, > 0
            wanted = f" {'>=' if low[1] == '[' else '>'} {low[0]}"
        elif high:
            wanted = f" {'<=' if high[1] == ']' else '<'} {high[0]}"
        else:
            wanted = " (not NaN)"
        raise ValueError(f"{owner}: {arg} must be {kind}{wanted}, got {value!r}")
    return value


def tune_malloc(mmap_threshold=32 * 1024 * 1024, trim_threshold=256 * 1024 * 1024) -> bool:
    """Ask glibc to keep freed large blocks for reuse instead of returning them to the OS.

    By default glibc serves every block over ~128 KiB-32 MiB with a fresh mmap and
    unmaps it on free, so a training step that allocates the same large arrays
    every time pays page faults for all of them again (measured: about 2x on the
    RNN step). Raising M_MMAP_THRESHOLD (at most 32 MiB on 64-bit glibc) and
    M_TRIM_THRESHOLD keeps them in the heap. Process-wide, so only the places
    that own the process call it (the ``numbanet`` command, the benchmarks). The
    fast tier keeps its own large per-step arrays in a pool
    (``numbanet.fast.workspace``), so a program that does not call this loses
    little.
    Returns False where there is no glibc (the call then does nothing).
    """
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = (libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1) and ok
        return ok
    except (OSError, AttributeError):
        return False


def set_num_threads(n=None) -> int:
    """Split the batch of convolutions, pooling, upsampling and big Dense products across ``n`` threads.

    On by default: without a call, the first such operation uses
    NUMBANET_NUM_THREADS threads if that environment variable is set, else one per
    CPU this process may run on (``os.sched_getaffinity``). ``set_num_threads(1)``
    runs every operation serially, with BLAS on its own threads;
    ``set_num_threads()`` (None) goes back to the default. Returns the count in
    force. While a split runs, NumPy's BLAS uses one thread per call, so the two
    levels of threading never compete for the cores. See ``numbanet.fast.parallel``.
    """
    from .fast import parallel
    return parallel.set_num_threads(n)


def to_categorical(y, num_classes=None):
    """One-hot rows for integer class labels, as Keras's ``to_categorical``.

    y: labels of shape S, integers in [0, num_classes) (floats holding whole numbers
    are taken too); a trailing axis of size 1 is dropped first, so (N, 1) gives the
    same as (N,). num_classes: None infers ``max(y) + 1``. Returns a float64 array of
    shape S + (num_classes,) (S without its trailing 1), ``out[..., y[...]] = 1``.
    Negative, fractional or too large labels are a ValueError (Keras would wrap a
    negative label to the last class and truncate 1.7 to 1).
    """
    if isinstance(y, (str, bytes)):
        raise TypeError(f"to_categorical: y must be integer class labels, got the {type(y).__name__} {y!r}")
    labels = np.asarray(getattr(y, "data", y))
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical: y must be integer class labels, got an array of dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise ValueError(f"to_categorical: labels must be whole numbers, got {labels[bad].ravel()[0].item()!r} at index "
                             f"{tuple(int(i) for i in np.argwhere(bad)[0])}; round or encode them as integers first")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {labels.min()}; class ids run from 0 to "
                         f"num_classes - 1")
    if num_classes is None:
        if not labels.size:
            raise ValueError("to_categorical: y is empty, so num_classes cannot be inferred; pass num_classes=")
        num_classes = int(labels.max()) + 1
    else:
        check_number("to_categorical", "num_classes", num_classes, integer=True, at_least=1)
        num_classes = int(num_classes)
        if labels.size and labels.max() >= num_classes:
            raise ValueError(f"to_categorical: label {labels.max()} is out of range for num_classes={num_classes} "
                             f"(labels must be in [0, {num_classes - 1}])")
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    out = np.zeros((labels.size, num_classes))
    out[np.arange(labels.size), labels.reshape(-1)] = 1
    return out.reshape(shape + (num_classes,))
def get_num_threads() -> int:
    """The thread count of batch-split operations (settles the default on the first call)."""
    from .fast import parallel
    return parallel.num_threads()
