"""Row kernels of the sparse softmax cross-entropy from logits.

Shapes: z (B, V) logits, e (B, V) the exponentials of the shifted logits, zmax (B,),
s (B,), values (B,), labels (B,) integers in [0, V).

float32 (``softmax_ce_rows``, the training models' case), after the caller's NumPy SIMD
row max zmax[r] = max_k z[r, k]:

    e[r, k] = exp(z[r, k] - zmax[r])             (``exp_shifted_row``: a polynomial exp that vectorises)
    s[r] = sum_k e[r, k]
    values[r] = log(s[r]) + zmax[r] - z[r, labels[r]]

in one call per block of rows: each row is exponentiated into e and then summed while it
is in the L1 cache. Other dtypes, in three steps around NumPy's exp:

    shift_rows(z, zmax, e)                       e[r] = z[r] - zmax[r]
    (the caller runs np.exp(e, out=e))
    lse_rows(e, z, labels, zmax, s, values)      s[r], values[r] as above

and for the backward, in place,

    gradient_rows(e, f, labels, c)               e[r] <- e[r] f[r];  e[r, labels[r]] -= c[r]
                                                 (f = c / s: e becomes c (softmax - one_hot))

so values[r] = log(sum_k exp(z[r, k])) - z[r, labels[r]], the cross-entropy of row r,
without overflow (every exponent is <= 0, and the largest term is exp(0) = 1, so
s >= 1 and the log is finite). The caller runs them over blocks of rows small enough to
stay in the core's cache (``numbanet/fast/losses.py``), so z is read from memory once and
e written once. The row max stays NumPy's: a Numba max that keeps np.max's NaN rule does
not vectorise.

Why a polynomial exp for float32: there is no SVML for Numba here, so ``np.exp`` in a
kernel is a scalar libm call, and NumPy's own float32 exp ran at about 2 ns an element on
an AVX2 EPYC (5 ms for W5's (1280, 2000) logits); this one vectorises (8 lanes) and took
about a quarter of that (``benchmarks/results/tuning.md``, "float32 exp in the sparse CE").
The method (Cody and Waite's range reduction, the minimax polynomial of Cephes' expf):

    n = floor(x log2(e) + 1/2)          x = n ln2 + r,  |r| <= ln2 / 2
    r = (x - n C1) - n C2               C1 + C2 = ln2, C1 with few bits, so n C1 is exact
    exp(r) ~= 1 + r + r^2 P(r)          P of degree 5: under 1 ulp on [-ln2/2, ln2/2]
    exp(x) = exp(r) 2^n                 2^n from its bits, (n + 127) << 23; for n < -125
                                        the result is subnormal: 2^(n+64) then 2^-64

at most 0.99 ulp from the exact exp of the float32 x over a million random x and a fine
grid of the domain, subnormal results included (NumPy's float32 exp: 2.4 ulp); the tests
hold it to LIBM_ULP, as any exp (tests/test_fast_softmax_ce.py, against float64 NumPy).
Domain: x <= 0 (the shifted logits) and -inf (gives 0); a NaN gives 0 too, and its row's
value comes out NaN all the same (its max is NaN, so log(s) + max is).

The sum is accumulated in float64 (fastmath reassociation lets it vectorise); it differs
from NumPy's pairwise float32 sum within the rounding bound of a V-term sum.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types, uintp
from numba.extending import intrinsic

from .config import FASTMATH, njit


def _float32_from_bits_py(bits):
    """The float32 whose bits are the int32 ``bits`` (NUMBA_DISABLE_JIT: plain NumPy)."""
    return np.array(bits, dtype=np.int32).view(np.float32)[()]


@intrinsic
def _float32_from_bits_jit(typingctx, bits):
    """The float32 whose bits are the int32 ``bits``: one LLVM bitcast (it vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


# an intrinsic cannot run as Python, so the plain-Python kernels (NUMBA_DISABLE_JIT) get the NumPy twin
float32_from_bits = _float32_from_bits_py if numba.config.DISABLE_JIT else _float32_from_bits_jit

_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)            # C1: 9 significant bits, so n * C1 is exact for |n| < 2^15
_LN2_LO = np.float32(-2.12194440e-4)         # C2 = ln2 - C1
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_X_MIN = np.float32(-110.0)                  # exp(x) < 2^-150 below x = -103.98: rounds to 0 in float32
_TWO_M64 = np.float32(2.0 ** -64)
_HALF, _ONE = np.float32(0.5), np.float32(1.0)


@njit(fastmath={"contract"})   # fused multiply-adds in the polynomial: fewer roundings, fewer instructions
def exp_shifted_row(zr, m, er):
    """er[k] = exp(zr[k] - m) for float32 rows zr, er (V,) and m >= every zr[k] (the module's exp).

    zr[k] - m is <= 0 or -inf (gives 0). A NaN (in the caller's row, m is then NaN too)
    also gives 0: the row's sum is then 0, and its value and gradient NaN.
    """
    for k in range(uintp(zr.shape[0])):
        x = zr[k] - m
        x = x if x > _X_MIN else _X_MIN                        # -inf and NaN too: exp(_X_MIN) is 0
        n = np.floor(x * _LOG2E + _HALF)
        r = x - n * _LN2_HI
        r = r - n * _LN2_LO
        p = _P0 * r + _P1
        p = p * r + _P2
        p = p * r + _P3
        p = p * r + _P4
        p = p * r + _P5
        p = p * (r * r) + r + _ONE                             # exp(r)
        ni = np.int32(n)
        tiny = ni < -125                                       # 2^n subnormal: scale in two steps
        y = p * float32_from_bits((ni + np.int32(191 if tiny else 127)) << np.int32(23))
        er[k] = y * _TWO_M64 if tiny else y


@njit
def softmax_ce_rows(z, zmax, labels, e, s, values):
    """float32: e[r] = exp(z[r] - zmax[r]); s[r] = sum(e[r]); values[r] = log(s[r]) + zmax[r] - z[r, labels[r]].

    A row whose max is not finite (a NaN or +inf logit, or all -inf) gets s[r] = NaN, as
    NumPy's exp of its shifted row would give, so its value and gradient are NaN (without
    the 0 / 0 warning of the zeros the polynomial exp writes there). Labels outside [0, V) raise.
    """
    B, V = z.shape
    for r in range(uintp(B)):
        label = labels[r]
        if label < 0 or label >= V:
            raise IndexError("sparse_ce_forward: a label lies outside [0, V), the logits' last axis")
        exp_shifted_row(z[r], zmax[r], e[r])
        s[r] = _row_sum(e[r]) + (zmax[r] - zmax[r])            # + 0, or NaN for a max of NaN or +-inf
        values[r] = np.log(s[r]) + zmax[r] - z[r, label]


@njit
def shift_rows(z, zmax, e):
    """e[r] = z[r] - zmax[r] (zmax (B,) the row maxima, from NumPy's SIMD max)."""
    B, V = z.shape
    for r in range(uintp(B)):
        zr, er, m = z[r], e[r], zmax[r]
        for k in range(uintp(V)):
            er[k] = zr[k] - m


@njit(fastmath=FASTMATH)
def _row_sum(er):
    """sum of one row, accumulated in float64 (reassociated: vectorised)."""
    acc = 0.0
    for k in range(uintp(er.shape[0])):
        acc += er[k]
    return acc


@njit
def lse_rows(e, z, labels, zmax, s, values):
    """s[r] = sum(e[r]); values[r] = log(s[r]) + zmax[r] - z[r, labels[r]]. Labels outside [0, V) raise."""
    B, V = e.shape
    for r in range(uintp(B)):
        label = labels[r]
        if label < 0 or label >= V:
            raise IndexError("sparse_ce_forward: a label lies outside [0, V), the logits' last axis")
        total = _row_sum(e[r])
        s[r] = total
        values[r] = np.log(s[r]) + zmax[r] - z[r, label]


@njit(error_model="numpy")   # no zero-division check per element: the loop vectorises
def gradient_rows(e, f, labels, c):
    """In place: e[r] <- e[r] f[r], then e[r, labels[r]] -= c[r] (f = c / s: the gradient c (softmax - one_hot)).

    e (B, V), f (B,), labels (B,) in [0, V) (checked by the forward), c (B,). One pass over
    e; NumPy's multiply by the broadcast (B, 1) column f ran at half this loop's speed.
    """
    for r in range(uintp(e.shape[0])):
        er, fr = e[r], f[r]
        for k in range(uintp(e.shape[1])):
            er[k] *= fr
        er[labels[r]] -= c[r]
