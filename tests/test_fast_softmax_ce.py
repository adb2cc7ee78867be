"""The fast tier's sparse softmax cross-entropy (fast/losses.py, fast/kernels/softmax_ce.py):
its row kernels against NumPy twins, and the whole forward + backward against float64 NumPy
and the reference tier, over blocks of rows smaller than the batch and rows split over threads."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbanet as nb
import numbanet.fast.losses as fast_losses
import numbanet.reference.tier as ref_tier
from numbanet.fast.kernels.softmax_ce import exp_shifted_row, gradient_rows, lse_rows, shift_rows, softmax_ce_rows

from bounds import LIBM_ULP, SAFETY, assert_within



def exact_ce(z, labels):
    """float64 -log softmax(z)[label] per row and softmax(z), written out in NumPy."""
    z = z.astype(np.float64)
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    s = e.sum(axis=1, keepdims=True)
    return (np.log(s) + zmax)[:, 0] - z[np.arange(len(z)), labels], e / s


def value_bound(z, labels, eps):
    """|l - exact| for l = log(s) + max - z[label]: s is a V-term sum of exps (each LIBM_ULP
    ulp), so log(s) is off by (V + LIBM_ULP + 1) eps absolutely (s >= 1); then the log's own
    rounding and two additions, each relative to the largest of |log s|, |max|, |z[label]|."""
    z64 = z.astype(np.float64)
    V = z.shape[1]
    zmax = z64.max(axis=1)
    log_s = np.log(np.exp(z64 - zmax[:, None]).sum(axis=1))
    mag = np.abs(log_s) + np.abs(zmax) + np.abs(z64[np.arange(len(z)), labels])
    return SAFETY * ((V + LIBM_ULP + 1) * eps + (LIBM_ULP + 3) * eps * mag)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16))
def test_row_kernels_match_numpy_twins(B, V, dt, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((B, V)) * 5).astype(dt)
    labels = rng.integers(0, V, B)
    zmax = z.max(axis=1)
    e = np.empty_like(z)
    shift_rows(z, zmax, e)
    np.testing.assert_array_equal(e, z - zmax[:, None])        # one rounded subtraction: the same bits
    np.exp(e, out=e)
    s, values = np.empty(B, dt), np.empty(B, dt)
    lse_rows(e, z, labels, zmax, s, values)
    eps = np.finfo(dt).eps
    e64 = e.astype(np.float64)
    assert_within(s, e64.sum(axis=1), SAFETY * (V + 1) * eps * e64.sum(axis=1), "lse_rows s")
    twin = np.log(e64.sum(axis=1)) + zmax - z[np.arange(B), labels]
    assert_within(values, twin, value_bound(z, labels, eps), "lse_rows values")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_blocked_forward_and_backward_match_float64_and_the_reference_tier(threads, dt, monkeypatch):
    """Blocks of 7 rows (the last one short), over 1 or 2 threads: every row's value and gradient."""
    rng = np.random.default_rng(3)
    B, V = 173, 300
    z = (rng.standard_normal((B, V)) * 4).astype(dt)
    z[5] += 80                                                  # exp(z) would overflow float32 unshifted
    labels = rng.integers(0, V, B)
    c = rng.uniform(0.5, 2, B).astype(dt)
    monkeypatch.setattr(fast_losses, "ROW_BLOCK_BYTES", 7 * V * np.dtype(dt).itemsize)
    monkeypatch.setattr(fast_losses.parallel, "split_large", lambda n, work: fast_losses.parallel.split(n))
    nb.utils.set_num_threads(threads)
    try:
        values, saved = fast_losses.sparse_ce_forward(labels, z)
        g = fast_losses.sparse_ce_backward(labels, saved, c)
    finally:
        nb.utils.set_num_threads(1)
    eps = np.finfo(dt).eps
    want, p = exact_ce(z, labels)
    bound = value_bound(z, labels, eps)
    assert values.dtype == dt and g.dtype == dt
    assert_within(values, want, bound, "values vs float64")
    ref_values, ref_saved = ref_tier.sparse_ce_forward(labels, z)
    assert_within(values, ref_values, 2 * bound, "values vs reference tier")
    # gradient c (softmax - one_hot): each softmax entry e / s is off by (V + LIBM_ULP + 3) eps relative
    want_g = c[:, None].astype(np.float64) * (p - np.eye(V)[labels])
    g_bound = SAFETY * (V + LIBM_ULP + 4) * eps * np.abs(c)[:, None] * (p + np.eye(V)[labels])
    assert_within(g, want_g, g_bound, "gradient vs float64")
    assert_within(g, ref_tier.sparse_ce_backward(labels, ref_saved, c), 2 * g_bound, "gradient vs reference tier")


def test_a_label_outside_the_vocabulary_raises():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(IndexError, match="outside"):
        fast_losses.sparse_ce_forward(np.array([0, 4, 1]), z)
    with pytest.raises(IndexError, match="outside"):
        fast_losses.sparse_ce_forward(np.array([0, -1, 1]), z)


def test_a_nan_logit_gives_nan_in_its_row_only():
    z = np.zeros((3, 4), np.float32)
    z[1, 2] = np.nan
    values, _ = fast_losses.sparse_ce_forward(np.array([0, 1, 2]), z)
    assert np.isnan(values[1]) and np.allclose(values[[0, 2]], np.log(4), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.integers(0, 2 ** 16))
def test_float32_softmax_rows_match_a_numpy_twin(B, V, seed):
    """softmax_ce_rows (float32) against float64 NumPy on the same float32 shifted logits."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((B, V)) * 5).astype(np.float32)
    labels = rng.integers(0, V, B)
    zmax = z.max(axis=1)
    e, s, values = np.empty_like(z), np.empty(B, np.float32), np.empty(B, np.float32)
    softmax_ce_rows(z, zmax, labels, e, s, values)
    eps = np.finfo(np.float32).eps
    x = (z - zmax[:, None]).astype(np.float64)                  # exact: one rounding, as in the kernel
    e64 = np.exp(x)
    assert_within(e, e64, LIBM_ULP * eps * e64, "softmax_ce_rows e")
    assert_within(s, e64.sum(axis=1), SAFETY * (V + LIBM_ULP + 1) * eps * e64.sum(axis=1), "softmax_ce_rows s")
    twin = np.log(e64.sum(axis=1)) + zmax - z[np.arange(B), labels]
    assert_within(values, twin, value_bound(z, labels, eps), "softmax_ce_rows values")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_masked_logits_and_a_nan_row(dt):
    """-inf logits (a masked vocabulary) give probability 0; a NaN logit makes its row's value and
    gradient NaN and leaves the other rows as float64 NumPy has them."""
    rng = np.random.default_rng(5)
    B, V = 6, 40
    z = (rng.standard_normal((B, V)) * 3).astype(dt)
    z[1, ::3] = -np.inf
    labels = rng.integers(0, V, B)
    labels[1] = 1                                               # a finite logit
    z[4, 7] = np.nan
    values, saved = fast_losses.sparse_ce_forward(labels, z)
    g = fast_losses.sparse_ce_backward(labels, saved, np.ones(B, dt))
    assert np.isnan(values[4]) and np.all(np.isnan(g[4]))
    keep = np.arange(B) != 4
    want, p = exact_ce(z[keep], labels[keep])
    eps = np.finfo(dt).eps
    assert_within(values[keep], want, value_bound(z[keep], labels[keep], eps), "values")
    assert np.all(g[1, ::3] == 0)
    want_g = p - np.eye(V)[labels[keep]]
    assert_within(g[keep], want_g, SAFETY * (V + LIBM_ULP + 4) * eps * (p + np.eye(V)[labels[keep]]), "gradient")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16))
def test_gradient_rows_matches_its_numpy_twin_bit_for_bit(B, V, dt, seed):
    """e f - c one_hot: one product and one subtraction per element, rounded as NumPy rounds them."""
    rng = np.random.default_rng(seed)
    e = rng.random((B, V)).astype(dt)
    f, c = rng.uniform(0.1, 2, B).astype(dt), rng.uniform(0.1, 2, B).astype(dt)
    labels = rng.integers(0, V, B)
    want = e * f[:, None]
    want[np.arange(B), labels] -= c
    gradient_rows(e, f, labels, c)
    np.testing.assert_array_equal(e, want)
