"""Tolerances from rounding-error bounds, for comparing two floating-point results.

Two computations of the same sum of n terms, each in its own order (pairwise,
blocked by a BLAS kernel, split across threads, with or without FMA), each
differ from the exact sum by at most gamma_n * sum|terms|, where
gamma_n = n*u / (1 - n*u) and u = eps/2 is the unit roundoff (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., section 3.1, eq. 3.5; the
products of a dot product are inside the same gamma_n, eq. 3.4). So the two
results differ by at most

    2 * gamma_n * sum|terms|  ~=  n * eps * sum|terms|       (n*u well under 1)

and that is the bound used here, times ``SAFETY = 2``: it absorbs the
1 / (1 - n*u) factor and the one or two roundings around the sum that a
kernel adds (a bias added after the product, the store of a float32 result,
the scaling of a mean). Any real bug (a wrong index, a missing term, a swapped
pad) shifts a result by about the size of a term, some 1e13 times more than
this in float64.

For a matrix product ``a @ b`` with inner size K the sum|terms| of every
output is ``(|a| @ |b|)``; for any bilinear operation (convolution, its
transpose, their gradients) it is the same operation applied to ``|a|`` and
``|b|`` (``bilinear_bound``). ``eps`` is that of the lower-precision side: a
float32 kernel checked against a float64 reference carries all the error.

Transcendental functions (exp, log, tanh) are not correctly rounded; NumPy's
SIMD versions (SVML on AVX-512 machines) and glibc's stay within 4 ulp, which
is the ``LIBM_ULP`` allowance per call in ``elementwise_bound``.
"""
from __future__ import annotations

import numpy as np

SAFETY = 2        # see the module docstring: 1/(1 - n u) and the roundings around a sum
LIBM_ULP = 4      # max error of one exp/log/tanh call, in units of eps of the result


def eps_of(*arrays) -> float:
    """eps of the lowest-precision floating dtype among ``arrays`` (float64's for none)."""
    eps = np.finfo(np.float64).eps
    for a in arrays:
        dt = np.asarray(a).dtype
        if np.issubdtype(dt, np.floating):
            eps = max(eps, float(np.finfo(dt).eps))
    return eps


def sum_bound(terms, axis=None, keepdims=False, eps=None):
    """Bound on |s1 - s2| for two float sums of ``terms`` along ``axis``, each in any order:
    ``SAFETY * n * eps * sum(|terms|, axis)`` with n the number of terms summed."""
    terms = np.asarray(terms)
    n = terms.size if axis is None else int(np.prod([terms.shape[a] for a in np.atleast_1d(axis)]))
    eps = eps_of(terms) if eps is None else eps
    return SAFETY * max(n, 1) * eps * np.sum(np.abs(terms, dtype=np.float64), axis=axis, keepdims=keepdims)


def matmul_bound(a, b, add=None, eps=None):
    """Bound on the difference of two float computations of ``a @ b (+ add)`` (a (..., K),
    b (K, ...), ``add`` broadcast to the result, e.g. a bias (U,)):
    ``SAFETY * (K + 1) * eps * (|a| @ |b| + |add|)`` elementwise (K terms, +1 for ``add``)."""
    a, b = np.asarray(a), np.asarray(b)
    K = a.shape[-1]
    eps = eps_of(a, b) if eps is None else eps
    magnitude = np.abs(a, dtype=np.float64) @ np.abs(b, dtype=np.float64)
    if add is not None:
        magnitude = magnitude + np.abs(np.asarray(add), dtype=np.float64)
    return SAFETY * (K + 1) * eps * magnitude


def bilinear_bound(magnitude, n_terms, eps=np.finfo(np.float64).eps):
    """Bound for any sum of ``n_terms`` products per output whose sum of |products| is
    ``magnitude`` (the same bilinear operation run on |inputs|): ``SAFETY * n * eps * magnitude``."""
    return SAFETY * n_terms * eps * np.asarray(magnitude, dtype=np.float64)


def elementwise_bound(magnitude, n_ops, eps=np.finfo(np.float64).eps):
    """Bound for two computations of an elementwise formula of ``n_ops`` operations (a
    transcendental call counting ``LIBM_ULP``), each rounding relative to ``magnitude``,
    the largest |intermediate| of the formula: ``2 * n_ops * eps * magnitude`` (2: both sides)."""
    return 2 * n_ops * eps * np.asarray(magnitude, dtype=np.float64)


def assert_within(actual, desired, bound, err_msg=""):
    """Assert |actual - desired| <= bound elementwise (shapes must match; NaN fails).

    On failure the message gives the number of violations, the worst element
    (largest |difference| / bound) with its index, both values and its bound.
    """
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.shape != desired.shape:
        raise AssertionError(f"{err_msg}: shapes differ, actual {actual.shape} vs desired {desired.shape}")
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), actual.shape)
    diff = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    ok = diff <= bound
    if ok.all():
        return
    ratio = np.where(ok, 0.0, np.where(np.isnan(diff), np.inf, diff / np.maximum(bound, np.finfo(np.float64).tiny)))
    worst = np.unravel_index(int(np.argmax(ratio)), actual.shape) if actual.ndim else ()
    raise AssertionError(
        f"{err_msg}\n{int((~ok).sum())} of {actual.size} elements outside the error bound; worst at index "
        f"{tuple(int(i) for i in worst)}: actual {actual[worst]!r}, desired {desired[worst]!r}, "
        f"|diff| {diff[worst]:.3e} > bound {bound[worst]:.3e} ({ratio[worst]:.3g}x the bound)")
