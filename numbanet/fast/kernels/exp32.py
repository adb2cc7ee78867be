"""float32 exp, tanh and log as polynomials that vectorise in a Numba loop (8 lanes on AVX2).

    exp_le0(x)          exp(x) for a float32 x <= 0 (or -inf), a scalar function inlined into loops
    tanh_inplace(a)     a <- tanh(a) for a float32 array, in place
    log_pos(x)          log(x) for a positive normal float32 x (or NaN), inlined into loops
    sigmoid_flat(x, y)  y <- sigmoid(x) for float32 arrays (n,)
    bce_terms_flat(t, p, lo, hi, out)   out <- -(t log q + (1 - t) log(1 - q)), q = clip(p, lo, hi)

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

log, by Cephes' logf: x = m 2^e from the bits, m in [sqrt(1/2), sqrt(2)), f = m - 1,

    log(x) = e ln2 + f - f^2 / 2 + f^3 R(f)     R of degree 8, e ln2 as e C1 + e C2 (the C1, C2 above)

within 1 ulp of the exact log over the normal float32 range in Cephes' tests; the tests
hold it to LIBM_ULP. Zero, negative, subnormal and infinite x are outside its domain (the
binary cross-entropy clips its probabilities to [1e-7, 1 - 1e-7] first); NaN stays NaN.

sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, e = exp(-|x|) (exp_le0):
no overflow on either side. Below x = -88.72 (where exp(-x) overflows float32) the result
is 0, as ``1 / (1 + exp(-x))`` gives in float32 (the reference tier's formula); NaN stays NaN.

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


def _bits_of_float32_py(x):
    """The int32 bits of the float32 ``x`` (NUMBA_DISABLE_JIT: plain NumPy)."""
    return np.array(x, dtype=np.float32).view(np.int32)[()]


@intrinsic
def _bits_of_float32_jit(typingctx, x):
    """The int32 bits of the float32 ``x``: one LLVM bitcast (it vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


# an intrinsic cannot run as Python, so the plain-Python kernels (NUMBA_DISABLE_JIT) get the NumPy twin
float32_from_bits = _float32_from_bits_py if numba.config.DISABLE_JIT else _float32_from_bits_jit
bits_of_float32 = _bits_of_float32_py if numba.config.DISABLE_JIT else _bits_of_float32_jit

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
_SQRTH = np.float32(0.707106781186547524)
_L0, _L1, _L2 = np.float32(7.0376836292e-2), np.float32(-1.1514610310e-1), np.float32(1.1676998740e-1)
_L3, _L4, _L5 = np.float32(-1.2420140846e-1), np.float32(1.4249322787e-1), np.float32(-1.6668057665e-1)
_L6, _L7, _L8 = np.float32(2.0000714765e-1), np.float32(-2.4999993993e-1), np.float32(3.3333331174e-1)
_SIGMOID_ZERO = np.float32(-88.72284)        # below it exp(-x) overflows float32: 1 / (1 + inf) = 0


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


@njit(inline="always", fastmath=CONTRACT)
def log_pos(x):
    """log(x) for a positive normal float32 x; NaN gives NaN (see the top)."""
    b = bits_of_float32(x)
    e = ((b >> np.int32(23)) & np.int32(0xFF)) - np.int32(126)          # x = m 2^e, m in [1/2, 1)
    m = float32_from_bits((b & np.int32(0x007FFFFF)) | np.int32(0x3F000000))
    low = m < _SQRTH
    e = e - np.int32(1) if low else e                                  # m in [sqrt(1/2), sqrt(2))
    f = (m + m - _ONE) if low else (m - _ONE)                          # exact (Sterbenz)
    fe = np.float32(e)
    z = f * f
    r = ((((((((_L0 * f + _L1) * f + _L2) * f + _L3) * f + _L4) * f + _L5) * f + _L6) * f + _L7) * f + _L8)
    y = r * f * z
    y = y + fe * _LN2_LO
    y = y - _HALF * z
    y = f + y
    y = y + fe * _LN2_HI
    return y if x == x else x


@njit(fastmath=CONTRACT, error_model="numpy")   # no zero-division check per element: the loop vectorises
def sigmoid_flat(x, y):
    """y (n,) <- sigmoid(x (n,)), float32 (see the top)."""
    for k in range(uintp(x.shape[0])):
        v = x[k]
        e = exp_le0(-np.abs(v))                                        # exp(-|v|) in (0, 1]
        r = _ONE / (_ONE + e)
        s = r if v >= _ZERO else e * r
        s = _ZERO if v < _SIGMOID_ZERO else s
        y[k] = s if v == v else v


@njit(fastmath=CONTRACT, error_model="numpy")
def bce_terms_flat(t, p, lo, hi, out):
    """out (n,) <- -(t log q + (1 - t) log(1 - q)), q = clip(p, lo, hi), float32 (n,) arrays.

    The reference tier's order (``losses.binary_ce_forward``): log(1 - q), t log q,
    (1 - t) log(1 - q), their sum, negated. A NaN p gives NaN.
    """
    for k in range(uintp(p.shape[0])):
        v = p[k]
        q = lo if v < lo else (hi if v > hi else v)                    # NaN stays NaN
        b = log_pos(_ONE - q)
        a = t[k] * log_pos(q)
        out[k] = -(a + (_ONE - t[k]) * b)
