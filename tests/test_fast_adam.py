"""The fast tier's Adam: the one-pass kernel against NumPy's passes (same roundings, so the same
bits), its routes, and the rule against a float64 formula written here."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.fast import optimizers as fast_opt
from numbanet.fast import routes
from numbanet.fast.tuning import OPTIMIZER_SPLIT_MIN_ELEMENTS

from bounds import SAFETY, assert_within


def _numpy_adam(w, g, m, v, t, lr, b1, b2, eps, v_hat=None):
    """The same rule as NumPy ufuncs, one operation each, in the kernel's order of operations."""
    dt = w.dtype.type
    alpha = dt(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
    m += (g - m) * dt(1 - b1)
    v += (g * g - v) * dt(1 - b2)
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    w -= m / (np.sqrt(v) + dt(eps)) * alpha


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.sampled_from([np.float32, np.float64]), st.booleans(),
       st.integers(1, 4), st.integers(0, 2 ** 16))
def test_fused_kernel_gives_numpys_bits(n, dt, amsgrad, steps, seed):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(n).astype(dt)
    runs = []
    for update in (fast_opt.adam_update, _numpy_adam):
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        vh = np.zeros_like(w0) if amsgrad else None
        for t in range(1, steps + 1):
            g = (np.random.default_rng(seed + t).standard_normal(n) * 3).astype(dt)
            update(w, g, m, v, t, dt(0.01), 0.9, 0.999, 1e-7, vh)
        runs.append((w, m, v, vh))
    assert routes.last("adam_update") == "fused"
    for a, b in zip(runs[0], runs[1]):
        if a is not None:
            assert a.dtype == dt
            np.testing.assert_array_equal(a, b)


def test_fused_kernel_matches_the_float64_rule_over_many_steps():
    """Adam written here in float64 (Kingma & Ba with Keras's folded step size); float32 within
    SAFETY * 12 roundings per step, carried over the steps, of the terms' sizes."""
    rng = np.random.default_rng(5)
    n, steps, lr, b1, b2, eps = 1000, 6, 0.01, 0.9, 0.999, 1e-7
    w = rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w64, m64, v64 = w.astype(np.float64), np.zeros(n), np.zeros(n)
    scale = np.abs(w64).copy()
    for t in range(1, steps + 1):
        g = (rng.standard_normal(n) * 2).astype(np.float32)
        fast_opt.adam_update(w, g, m, v, t, np.float32(lr), b1, b2, eps)
        g64 = g.astype(np.float64)
        m64 = b1 * m64 + (1 - b1) * g64
        v64 = b2 * v64 + (1 - b2) * g64 ** 2
        step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m64 / (np.sqrt(v64) + eps)
        w64 -= step
        scale += np.abs(step)
    err = SAFETY * 12 * steps ** 2 * np.finfo(np.float32).eps * scale
    assert_within(w, w64, err, "adam w")


def test_split_and_fallback_routes_give_the_fused_bits():
    """Big weights: flat halves on two threads; a non-contiguous gradient: the NumPy lines."""
    rng = np.random.default_rng(0)
    n = OPTIMIZER_SPLIT_MIN_ELEMENTS + 17
    w0 = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(2 * n).astype(np.float32)
    out = {}
    for threads, grad in ((1, g[::2].copy()), (2, g[::2].copy()), (1, g[::2])):
        nb.utils.set_num_threads(threads)
        try:
            w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
            fast_opt.adam_update(w, grad, m, v, 1, np.float32(0.01))
            out[routes.last("adam_update")] = w
        finally:
            nb.utils.set_num_threads(1)
    assert set(out) == {"fused", "fused_split", "inplace"}
    np.testing.assert_array_equal(out["fused"], out["fused_split"])
    np.testing.assert_array_equal(out["fused"], out["inplace"])
    assert not np.array_equal(out["fused"], w0)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_nan_gradient_propagates_as_in_numpy(amsgrad):
    w, g = np.ones(4, np.float32), np.array([0, np.nan, 1, 2], np.float32)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    vh = np.zeros(4, np.float32) if amsgrad else None
    fast_opt.adam_update(w, g, m, v, 1, np.float32(0.01), v_hat=vh)
    assert np.isnan(w[1]) and np.isfinite(w[[0, 2, 3]]).all()
