"""float32 exp and tanh as polynomials that vectorise in a Numba loop (8 lanes on AVX2).

    exp_le0(x)          exp(x) for a float32 x <= 0 (or -inf), a scalar function inlined into loops
    tanh_inplace(a)     a <- tanh(a) for a float32 array, in place

Why: Numba has no SVML here, so ``np.exp`` / ``np.tanh`` in a kernel are scalar libm
calls, and NumPy's own float32 exp and tanh ran at about 2 and 3 ns an element on an
AVX2 EPYC (a scalar speed: sqrt ran at 0.45 ns). These polynomials vectorise
(``benchmarks/results/tuning.md``, "float32 exp and tanh").

exp, by Cody and Waite's range reduction and the minimax polynomial of Cephes' expf:

    n = floor(x log2(e) + 1/2)          x = n ln2 + r,  |r| <= ln2 / 2
    r = (x - n C1) - n C2               C1 + C2 = ln2, C1 with 9 significant bits: n C1 is exact
    exp(r) ~= 1 + r + r^2 P(r)          P of degree 5
    exp(x) = exp(r) 2^n                 2^n from its bits, (n + 127) << 23; for n < -125 the
                                        result is subnormal: 2^(n+64), then 2^-64 (one rounding)

At most 0.99 ulp from the exact exp of the float32 x over a million random x <= 0 and
a fine grid of [-112, 0], subnormal results included (NumPy's float32 exp: 2.4 ulp).
x below -110 (and -inf, and NaN) is taken as -110, whose exp rounds to 0.

tanh, odd, from |x| (Cephes' tanhf splits at the same point):

    |x| <  0.625   tanh(x) = x + x^3 Q(x^2)            Q of degree 4
    |x| >= 0.625   t = exp(-2|x|) (exp_le0),  tanh(|x|) = (1 - t) / (1 + t),  sign of x

both branches computed and one kept (a blend, so the loop vectorises); t <= 0.29, so
1 - t loses nothing. Within 2 ulp of the exact tanh over [-12, 12] (the tests hold both
to LIBM_ULP, the allowance of any libm call, tests/bounds.py); tanh(+-inf) = +-1, NaN
stays NaN.

The kernels are compiled with the "contract" fastmath flag only: fused multiply-adds in
the polynomials (fewer roundings); no reassociation, which would undo Cody and Waite's
two-step reduction. With NUMBA_DISABLE_JIT the same lines run as Python on NumPy
float32 scalars (the bit cast by ``ndarray.view``), without fused multiply-adds.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types, uintp
from numba.extending import intrinsic

from .config import njit

CONTRACT = {"contract"}


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
_LN2_HI = np.float32(0.693359375)            # C1
_LN2_LO = np.float32(-2.12194440e-4)         # C2 = ln2 - C1
_P0, _P1, _P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_P3, _P4, _P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_X_MIN = np.float32(-110.0)                  # exp(x) < 2^-150 below x = -103.98: rounds to 0 in float32
_TWO_M64 = np.float32(2.0 ** -64)
_ZERO, _HALF, _ONE, _TWO = np.float32(0.0), np.float32(0.5), np.float32(1.0), np.float32(2.0)
_Q0, _Q1, _Q2 = np.float32(-5.70498872745e-3), np.float32(2.06390887954e-2), np.float32(-5.37397155531e-2)
_Q3, _Q4 = np.float32(1.33314422036e-1), np.float32(-3.33332819422e-1)
_TANH_SPLIT = np.float32(0.625)


@njit(inline="always", fastmath=CONTRACT)
def exp_le0(x):
    """exp(x) for a float32 x <= 0 (see the top); -inf and NaN give 0."""
    x = x if x > _X_MIN else _X_MIN                            # -inf and NaN too: exp(_X_MIN) is 0
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    p = p * (r * r) + r + _ONE                                 # exp(r)
    ni = np.int32(n)
    tiny = ni < -125                                           # 2^n subnormal: scale in two steps
    y = p * float32_from_bits((ni + np.int32(191 if tiny else 127)) << np.int32(23))
    return y * _TWO_M64 if tiny else y


@njit(fastmath=CONTRACT, error_model="numpy")   # no zero-division check per element: the loop vectorises
def tanh_flat(a):
    """a (n,) float32 <- tanh(a), in place (see the top)."""
    for k in range(uintp(a.shape[0])):
        x = a[k]
        ax = np.abs(x)
        xs = _ZERO if ax >= _TANH_SPLIT else x                 # the small branch's x (NaN stays)
        z = xs * xs
        small = (((_Q0 * z + _Q1) * z + _Q2) * z + _Q3) * z + _Q4
        small = small * z * xs + xs                            # x + x^3 Q(x^2)
        t = exp_le0(-_TWO * ax)
        big = (_ONE - t) / (_ONE + t)
        big = big if x >= 0 else -big
        a[k] = big if ax >= _TANH_SPLIT else small             # NaN: the small branch, which keeps it


def tanh_inplace(a):
    """a <- tanh(a) for a C-contiguous float32 array of any shape, in place."""
    tanh_flat(a.reshape(-1))
