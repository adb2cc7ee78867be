"""The max-pool forward kernel's straight-line 2x2 and 3x3 paths against a window scan in NumPy.

``kernels/pooling.py: max_pool_forward_into`` sends the windows that lie wholly
inside the image through ``_row_2x2`` / ``_row_3x3`` (taps compared in registers)
and every other window through the general scan. Both must keep the fast tier's
rule: taps in row-major order, a strict ``>``, so the first maximum wins and a
NaN counts only where it is the window's first real cell. The twin below
applies that rule with whole-array ``np.where`` steps, one tap at a time, padded
cells skipped; channel counts span the vector lanes and their remainder, and the
"same" cases put windows over the padding next to the inside ones in one row.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from numbanet.fast.kernels.pooling import arg_dtype, max_pool_forward_into
from numbanet.reference import padding as rpad


def scan_twin(x, KH, KW, SH, SW, PT, PL, OH, OW):
    """y, arg by the row-major strict-> rule, vectorised over (n, c) only."""
    N, H, W, C = x.shape
    y = np.empty((N, OH, OW, C), x.dtype)
    arg = np.empty((N, OH, OW, C), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            m = a = None
            for ki in range(KH):
                for kj in range(KW):
                    h, w = oh * SH - PT + ki, ow * SW - PL + kj
                    if not (0 <= h < H and 0 <= w < W):
                        continue
                    v = x[:, h, w, :]
                    if m is None:
                        m, a = v.copy(), np.full(v.shape, ki * KW + kj)
                        continue
                    gt = v > m
                    m, a = np.where(gt, v, m), np.where(gt, ki * KW + kj, a)
            y[:, oh, ow], arg[:, oh, ow] = m, a
    return y, arg


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["valid", "same"]),
       st.integers(1, 2), st.integers(3, 9), st.integers(3, 9), st.sampled_from([1, 3, 8, 16, 17, 40]),
       st.sampled_from([np.float32, np.float64]), st.sampled_from(["normal", "ties", "nan"]),
       st.integers(0, 2 ** 16))
def test_max_pool_forward_matches_the_scan(K, SH, SW, padding, N, H, W, C, dtype, values, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C))
    if values == "ties":                     # many equal maxima: the first in row-major order wins
        x = np.round(x)
    elif values == "nan":                    # NaN kept only as a window's first real cell
        x[rng.random(x.shape) < 0.15] = np.nan
    x = x.astype(dtype)
    PT, PB, PL, PR = rpad.conv_pads(H, W, K, K, SH, SW, padding)
    OH, OW = rpad.out_size(H, K, SH, PT, PB), rpad.out_size(W, K, SW, PL, PR)
    y = np.full((N, OH, OW, C), -7.0, dtype)          # stale values: every cell must be written
    arg = np.full((N, OH, OW, C), 99, arg_dtype(K, K))
    max_pool_forward_into(x, K, K, SH, SW, PT, PL, y, arg)
    y_ref, arg_ref = scan_twin(x, K, K, SH, SW, PT, PL, OH, OW)
    np.testing.assert_array_equal(y, y_ref)           # a maximum is one of the inputs: exact, NaN where NaN
    np.testing.assert_array_equal(arg, arg_ref)


def test_max_pool_forward_nan_in_a_later_tap_loses_and_in_the_first_stays():
    x = np.zeros((1, 2, 2, 16), np.float32)
    x[0, 0, 0, :8] = np.nan                  # first tap: the window's answer is NaN
    x[0, 1, 1, 8:] = np.nan                  # last tap: ignored, the maximum is 0 at tap 0
    y = np.empty((1, 1, 1, 16), np.float32)
    arg = np.empty((1, 1, 1, 16), np.uint8)
    max_pool_forward_into(x, 2, 2, 2, 2, 0, 0, y, arg)
    assert np.isnan(y[0, 0, 0, :8]).all() and (y[0, 0, 0, 8:] == 0).all()
    assert (arg == 0).all()
