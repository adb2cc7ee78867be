"""The losses' per-kind shortcut and their mean over the last axis.

* ``_mean_last`` equals ``ndarray.mean(axis=-1)`` bit for bit (its rounding argument is in its
  docstring) over many shapes, dtypes and magnitudes, with signed zeros, infinities and NaNs.
* A loss object called again with y_true / y_pred of the same kind skips the checks: its value
  and gradient are compared with a float64 NumPy computation within rounding bounds, and with a
  fresh object's (which runs every check) bit for bit; a call of another kind is checked again.
"""
import warnings

import numpy as np
import pytest

import numbanet as nb
from bounds import assert_within, elementwise_bound, sum_bound
from numbanet import losses
from numbanet.losses import _mean_last


def _bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    return a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (20, 1), (5, 2), (3, 3), (4, 10), (2, 3, 7), (64, 33),
                                   (2, 1000), (1, 4097), (3, 0, 5)])
def test_mean_last_equals_ndarray_mean_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(sum(shape) * 7 + len(dtype))
    for scale in (1.0, 1e-30, 3e4):
        for _ in range(20):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                v = (rng.standard_normal(shape) * rng.choice([scale, 1.0], size=shape)).astype(dtype)
                if v.size:                       # signed zeros, infinities and NaNs at a few places
                    flat = v.reshape(-1)
                    k = min(3, v.size)
                    flat[rng.integers(0, v.size, k)] = rng.choice([-0.0, -0.0, 0.0, np.inf, -np.inf, np.nan], k)
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = v.mean(axis=-1)
                got = _mean_last(v)
            assert _bits_equal(np.asarray(got), np.asarray(expected)), (v, got, expected)


def test_mean_last_on_sums_that_round():
    # sums whose quotient by D lies near a float32 rounding boundary: the double-rounding case
    rng = np.random.default_rng(3)
    for D in (3, 5, 6, 7, 9, 10, 11, 13, 100, 1023):
        v = rng.integers(1, 1 << 24, size=(4000, D)).astype(np.float32) * np.float32(2.0 ** -20)
        assert _bits_equal(_mean_last(v), v.mean(axis=-1))


CASES = [  # (loss factory, prediction maker from raw normals, truth maker, the float64 per-sample values)
    ("mse", lambda: losses.MeanSquaredError(), lambda z: z, lambda r: r,
     lambda t, p: ((p - t) ** 2).mean(axis=-1)),
    ("mae", lambda: losses.MeanAbsoluteError(), lambda z: z, lambda r: r,
     lambda t, p: np.abs(p - t).mean(axis=-1)),
    ("bce", lambda: losses.BinaryCrossentropy(), lambda z: 1 / (1 + np.exp(-z)), lambda r: (r > 0) * 1.0,
     lambda t, p: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1)),
    ("bce_logits", lambda: losses.BinaryCrossentropy(from_logits=True), lambda z: z, lambda r: (r > 0) * 1.0,
     lambda t, p: (np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))).mean(axis=-1)),
    ("cce_logits", lambda: losses.CategoricalCrossentropy(from_logits=True), lambda z: z,
     lambda r: np.eye(r.shape[-1])[np.argmax(r, axis=-1)],
     lambda t, p: -(t * (p - p.max(-1, keepdims=True)
                         - np.log(np.exp(p - p.max(-1, keepdims=True)).sum(-1, keepdims=True)))).sum(-1)),
]




@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(20, 1), (8, 3), (2, 5, 4)])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_repeated_calls_of_one_kind_match_float64_and_a_fresh_loss(case, shape, dtype):
    _, make, pred_of, true_of, values_of = case
    rng = np.random.default_rng(len(shape) * 31 + shape[-1])
    loss = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for step in range(4):                    # step 0 checks; steps 1-3 take the shortcut
            p_raw = pred_of(rng.standard_normal(shape)).astype(dtype)
            t = true_of(rng.standard_normal(shape)).astype(dtype)
            p = nb.Tensor(p_raw, requires_grad=True)
            L = loss(t, p)
            L.backward()
            p2 = nb.Tensor(p_raw, requires_grad=True)
            L2 = make()(t, p2)
            L2.backward()
            assert _bits_equal(np.asarray(L.data), np.asarray(L2.data)) and _bits_equal(p.grad, p2.grad)
            v64 = values_of(t.astype(np.float64), p_raw.astype(np.float64))
            eps = float(np.finfo(dtype).eps)
            # the values: a few elementwise operations and a mean over D; then the mean over S
            per = elementwise_bound(np.abs(v64) + 1.0, 8 + shape[-1], eps)
            assert_within(L.data, v64.mean(), sum_bound(v64, eps=eps) / v64.size + per.max(),
                          err_msg=f"step {step}")


def test_mse_gradient_against_float64_formula():
    loss = losses.MeanSquaredError()
    rng = np.random.default_rng(5)
    for step in range(3):
        p_raw = rng.standard_normal((20, 3)).astype(np.float32)
        t = rng.standard_normal((20, 3)).astype(np.float32)
        p = nb.Tensor(p_raw, requires_grad=True)
        loss(t, p).backward()
        d = p_raw.astype(np.float64) - t
        g64 = 2 * d / d.size
        assert_within(p.grad, g64, elementwise_bound(np.abs(g64), 4, float(np.finfo(np.float32).eps)))


def test_another_kind_is_checked_again():
    loss = losses.MeanSquaredError()
    p = nb.Tensor(np.zeros((4, 2), np.float32), requires_grad=True)
    t = np.ones((4, 2), np.float32)
    assert float(loss(t, p).data) == 1.0
    assert float(loss(t, p).data) == 1.0
    with pytest.raises(ValueError, match="y_true has shape"):
        loss(np.ones((4, 3), np.float32), p)
    # float64 truth for a float32 prediction: cast, as on the first call of its kind
    out = loss(np.full((4, 2), 3.0), p)
    assert out.dtype == np.float32 and float(out.data) == 9.0
    out = loss(np.full((4, 2), 2.0), p)
    assert out.dtype == np.float32 and float(out.data) == 4.0
    # a wider batch: the divisor follows the new size
    p6 = nb.Tensor(np.zeros((6, 2), np.float32))
    assert float(loss(np.ones((6, 2), np.float32), p6).data) == 1.0
    # with sample weights: the weighted path, not the remembered divisor
    sw = np.array([1, 0, 0, 0], np.float32)
    assert float(loss(t, p, sample_weight=sw).data) == 0.25
    # another reduction set on the object: the sum over the 4 samples of their mean of 2 values
    loss.reduction = "sum"
    assert float(loss(t, p).data) == 4.0


def test_sparse_labels_are_checked_on_every_call():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    z = nb.Tensor(np.zeros((3, 4), np.float32), requires_grad=True)
    ok = np.array([0, 1, 3])
    for _ in range(2):
        assert_within(loss(ok, z).data, np.log(4.0), 1e-6)
    with pytest.raises(ValueError, match="must lie in"):
        loss(np.array([0, 1, 4]), z)


def test_from_logits_warning_still_comes_on_a_later_call():
    loss = losses.BinaryCrossentropy(from_logits=True)
    x = nb.Tensor(np.zeros((4, 1), np.float32), requires_grad=True)
    t = np.ones((4, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(t, x * 1.0)                         # logits: no warning; this kind is now remembered
    with pytest.warns(UserWarning, match="from_logits=True"):
        loss(t, nb.functional.sigmoid(x))        # same kind, from a sigmoid: warned
