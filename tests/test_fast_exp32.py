"""The float32 polynomial exp and tanh of the fast tier (fast/kernels/exp32.py) against float64 NumPy:
every result within LIBM_ULP ulp (the allowance of any libm call, tests/bounds.py) over a fine grid
of each domain and random points, the special values, and the bit cast they rest on."""
import os

import numba
import numpy as np

from numbanet.fast.kernels.exp32 import exp_le0, float32_from_bits, tanh_inplace
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
