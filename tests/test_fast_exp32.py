"""The float32 polynomial exp, tanh and log of the fast tier (fast/kernels/exp32.py) against float64 NumPy:
every result within LIBM_ULP ulp (the allowance of any libm call, tests/bounds.py) over a fine grid
of each domain and random points, the special values, and the bit casts they rest on; then the
sigmoid and binary cross-entropy loops built on them, within the roundings of their formulas."""
import os

import numba
import numpy as np

from numbanet.fast.kernels.exp32 import (bce_terms_flat, bits_of_float32, exp_le0, float32_from_bits, log_pos,
                                         sigmoid_flat, tanh_inplace)
from numbanet.fast.kernels.softmax_ce import exp_shifted_row

from bounds import LIBM_ULP, assert_within

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"   # plain-Python kernels: fewer points


@numba.njit
def _from_bits(bits):
    return float32_from_bits(bits)        # an intrinsic runs only inside a kernel (or as its NumPy twin)


@numba.njit
def _exp_all(x, out):
    for k in range(x.shape[0]):
        out[k] = exp_le0(x[k])


@numba.njit
def _bits(x):
    return bits_of_float32(x)


@numba.njit
def _log_all(x, out):
    for k in range(x.shape[0]):
        out[k] = log_pos(x[k])


def _ulp32(want):
    """The float32 ulp at each exact value (the smallest subnormal for results at or below it)."""
    w = np.abs(want).astype(np.float32)
    return np.spacing(np.maximum(w, np.finfo(np.float32).smallest_subnormal), dtype=np.float32).astype(np.float64)


def test_float32_from_bits_matches_numpy_view():
    for bits in (0, 1, 0x00800000, 0x3F800000, 0x7F7FFFFF, -0x40800000, 0x7F800000):
        want = np.array(bits, dtype=np.int32).view(np.float32)[()]
        got = _from_bits(np.int32(bits))
        assert np.float32(got).tobytes() == want.tobytes(), hex(bits)


def test_exp_within_libm_ulp_of_float64_exp_over_its_domain():
    """A fine grid of [-112, 0] (results from 1 down through the subnormals to 0) and random x."""
    rng = np.random.default_rng(7)
    n_grid, n_random = (20_001, 20_000) if NO_JIT else (400_001, 1_000_000)
    x = np.concatenate([np.linspace(-112, 0, n_grid, dtype=np.float32),
                        -np.abs(rng.standard_normal(n_random).astype(np.float32)) * 30,
                        np.array([-0.0, 0.0, -1e-30, -87.3, -87.4, -103.9, -103.97, -104, -110, -1e4],
                                 np.float32)])
    e = np.empty_like(x)
    _exp_all(x, e)
    want = np.exp(x.astype(np.float64))
    assert_within(e, want, LIBM_ULP * _ulp32(want), "exp_le0 vs float64 exp")
    assert np.all(e[x < -104] == 0)


def test_exp_of_shifted_rows_is_exp_of_the_float32_difference():
    """exp_shifted_row(z, m) = exp(z - m), the difference rounded to float32 first."""
    rng = np.random.default_rng(8)
    z = (rng.standard_normal(5000) * 20).astype(np.float32)
    m = z.max()
    e = np.empty_like(z)
    exp_shifted_row(z, m, e)
    want = np.exp((z - m).astype(np.float64))
    assert_within(e, want, LIBM_ULP * _ulp32(want), "exp_shifted_row")


def test_exp_gives_zero_for_minus_inf_and_nan():
    x = np.array([0.0, -np.inf, np.nan, -1.0], np.float32)
    e = np.full_like(x, 7)
    _exp_all(x, e)
    assert e[0] == 1 and e[1] == 0 and e[2] == 0
    assert abs(e[3] - np.exp(-1.0)) <= LIBM_ULP * _ulp32(np.exp(-1.0))


def test_tanh_within_libm_ulp_of_float64_tanh():
    """A fine grid of [-12, 12] (both branches, the split at |x| = 0.625, saturation), random x,
    tiny and subnormal x (tanh(x) = x there)."""
    rng = np.random.default_rng(9)
    n_grid, n_random = (20_001, 20_000) if NO_JIT else (400_001, 1_000_000)
    x = np.concatenate([np.linspace(-12, 12, n_grid, dtype=np.float32),
                        (rng.standard_normal(n_random) * 2).astype(np.float32),
                        np.array([0.625, -0.625, np.nextafter(np.float32(0.625), np.float32(0)), 1e-30, -1e-30,
                                  1e-40, 9.1, -9.1, 50, -50, 1e30], np.float32)])
    a = x.copy()
    tanh_inplace(a)
    want = np.tanh(x.astype(np.float64))
    assert_within(a, want, LIBM_ULP * _ulp32(want), "tanh_inplace vs float64 tanh")


def test_tanh_special_values_and_shapes():
    a = np.array([[np.inf, -np.inf], [np.nan, 0.0]], np.float32)
    tanh_inplace(a)                                            # any C-contiguous shape, in place
    assert a[0, 0] == 1 and a[0, 1] == -1 and np.isnan(a[1, 0]) and a[1, 1] == 0


def test_bits_of_float32_matches_numpy_view():
    for x in (0.0, -0.0, 1.0, 0.5, 3.4e38, 1e-40, -2.5, np.inf, np.nan):
        want = np.array(x, dtype=np.float32).view(np.int32)[()]
        assert int(_bits(np.float32(x))) == int(want), x


def test_log_within_libm_ulp_of_float64_log_over_the_normal_range():
    """x from the smallest normal float32 to the largest (log-uniform), a fine grid of [0.5, 2] (where the
    mantissa's split at sqrt(1/2) falls), the binary cross-entropy's clip values, and the ends."""
    rng = np.random.default_rng(10)
    n_grid, n_random = (20_001, 20_000) if NO_JIT else (400_001, 1_000_000)
    tiny, big = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    x = np.concatenate([np.exp(rng.uniform(np.log(tiny), np.log(big), n_random)).astype(np.float32),
                        np.linspace(0.5, 2, n_grid, dtype=np.float32),
                        np.array([tiny, big, 1.0, 0.5, 2.0, 1e-7, 1 - 1e-7, np.float32(np.sqrt(0.5)),
                                  np.nextafter(np.float32(np.sqrt(0.5)), np.float32(0)), 1 + 2 ** -23],
                                 np.float32)])
    x = x[(x >= tiny) & (x <= big)]
    got = np.empty_like(x)
    _log_all(x, got)
    want = np.log(x.astype(np.float64))
    assert_within(got, want, LIBM_ULP * _ulp32(want), "log_pos vs float64 log")
    assert got[x == 1].tolist() == [0.0] * int((x == 1).sum())            # log(1) = 0 exactly


def test_log_keeps_nan():
    got = np.empty(2, np.float32)
    _log_all(np.array([np.nan, 1.0], np.float32), got)
    assert np.isnan(got[0]) and got[1] == 0


def test_sigmoid_loop_against_float64():
    """sigmoid_flat within its roundings (exp_le0's LIBM_ULP, then 1 + e, the reciprocal and e * r: 3 more) of
    the exact sigmoid, from the exp overflow point of float32 up to saturation; 0 below x = -88.72 where
    1 / (1 + exp(-x)) is 0 in float32; the special values."""
    rng = np.random.default_rng(11)
    n_grid, n_random = (20_001, 20_000) if NO_JIT else (400_001, 1_000_000)
    x = np.concatenate([np.linspace(-88.7, 30, n_grid, dtype=np.float32),
                        (rng.standard_normal(n_random) * 10).astype(np.float32),
                        np.array([0.0, -0.0, 1e-30, -1e-30, 17.0, -17.0, -87.3], np.float32)])
    y = np.empty_like(x)
    sigmoid_flat(x, y)
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert_within(y, want, (LIBM_ULP + 3) * _ulp32(want), "sigmoid_flat vs float64")
    special = np.array([-88.73, -89, -1000, -np.inf, np.inf, 1000, np.nan], np.float32)
    ys = np.empty_like(special)
    sigmoid_flat(special, ys)
    with np.errstate(over="ignore"):
        numpy32 = 1 / (1 + np.exp(-special))                       # the reference tier's float32 formula
    np.testing.assert_array_equal(ys, numpy32)                     # 0, 0, 0, 0, 1, 1, NaN


def test_bce_loop_against_float64():
    """bce_terms_flat = -(t log q + (1 - t) log(1 - q)), q = clip(p, 1e-7, 1 - 1e-7): two logs within LIBM_ULP
    and 5 roundings, relative to |t log q| + |(1 - t) log(1 - q)|; the clip's edges; NaN p gives NaN."""
    rng = np.random.default_rng(12)
    n = 20_000 if NO_JIT else 500_000
    p = rng.random(n).astype(np.float32)
    p[:8] = [0.0, 1.0, 1e-7, 1 - 1e-7, 5e-8, 1 - 5e-8, 0.5, 2.0]
    t = rng.random(n).astype(np.float32)
    t[:4] = [0.0, 1.0, 1.0, 0.0]
    lo, hi = np.float32(1e-7), np.float32(1 - 1e-7)
    out = np.empty_like(p)
    bce_terms_flat(t, p, lo, hi, out)
    q = np.clip(p, lo, hi).astype(np.float64)                      # the clip in float32, as NumPy's
    t64 = t.astype(np.float64)
    one_minus_q = (np.float32(1) - np.clip(p, lo, hi)).astype(np.float64)   # 1 - q rounded to float32, as both tiers
    terms = np.abs(t64 * np.log(q)) + np.abs((1 - t64) * np.log(one_minus_q))
    want = -(t64 * np.log(q) + (1 - t64) * np.log(one_minus_q))
    eps = float(np.finfo(np.float32).eps)
    assert_within(out, want, (2 * LIBM_ULP + 5) * eps * terms + 1e-300, "bce_terms_flat vs float64")
    nan = np.empty(2, np.float32)
    bce_terms_flat(np.array([0.5, 0.5], np.float32), np.array([np.nan, 0.5], np.float32), lo, hi, nan)
    assert np.isnan(nan[0]) and abs(nan[1] - np.log(2)) <= 4 * eps
