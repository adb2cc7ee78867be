"""The optimizers' update rules, fast: in place, without temporaries, big weights on both threads.

Each function mirrors the one of the same name in ``numbanet/reference/tier.py``
(the rule itself is in ``numbanet/reference/optimizers.py`` and in each
Optimizer's class docstring) and updates w and the state arrays in place. The
scalars arrive as the weight's dtype (``lr``) or as Python floats, cast here to
the weight's dtype so float32 weights stay float32.

Adam, the optimizer of the big text models, is memory-bound on million-weight
layers (every pass streams the arrays through memory again): when w, g, m, v are
C-contiguous of one dtype it is one Numba pass (``kernels/adam.py``), else NumPy
lines through one scratch array d. From OPTIMIZER_SPLIT_MIN_ELEMENTS weights on,
it is cut into flat halves updated on both threads (the kernel and NumPy release
the GIL). Both routes round alike, so every route gives the same bits.

Nadam and Adamax are NumPy lines through scratch arrays, serially; RMSprop and
Adadelta the same through arrays of ``workspace.empty`` (pooled from POOL_MIN_BYTES on).

Routes, recorded in ``routes.LAST``: "adam_update" "fused", "fused_split",
"inplace" (NumPy lines) or "split" (NumPy lines on both threads); the others
have one route each, "inplace".
"""
from __future__ import annotations

import numpy as np

from . import parallel, workspace
from .kernels import adam as _adam
from .routes import LAST
from .tuning import OPTIMIZER_SPLIT_MIN_ELEMENTS
from .workspace import scratch

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))   # the kernel's compiled types


def sgd_update(w, g, lr, m=None, momentum=0.0, nesterov=False):
    """reference: numbanet.reference.tier.sgd_update."""
    LAST["sgd_update"] = "inplace"
    if not momentum:
        # lr * g into a reused array (no fresh pages per step) where it is computed in g's dtype anyway
        if g.nbytes >= workspace.POOL_MIN_BYTES and np.result_type(g, lr) == g.dtype:
            w -= np.multiply(g, lr, out=scratch("sgd.step", g.shape, g.dtype))
        else:
            w -= lr * g
        return
    m *= momentum
    m -= lr * g
    if nesterov:
        w += momentum * m - lr * g
    else:
        w += m


def _adam_lines(w, g, m, v, d, v_hat, alpha, one_minus_b1, one_minus_b2, epsilon):
    np.subtract(g, m, out=d)                   # m <- m + (g - m) * (1 - beta_1)
    d *= one_minus_b1
    m += d
    np.multiply(g, g, out=d)                   # v <- v + (g^2 - v) * (1 - beta_2)
    d -= v
    d *= one_minus_b2
    v += d
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    np.sqrt(v, out=d)                          # w <- w - alpha * m / (sqrt(v) + epsilon)
    d += epsilon
    np.divide(m, d, out=d)
    d *= alpha
    w -= d


def adam_update(w, g, m, v, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, v_hat=None):
    """reference: numbanet.reference.tier.adam_update."""
    dt = w.dtype.type
    alpha = dt(lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t))
    scalars = (alpha, dt(1 - beta_1), dt(1 - beta_2), dt(epsilon))
    parts = parallel.split_large(w.size, w.size, OPTIMIZER_SPLIT_MIN_ELEMENTS)
    states = (w, g, m, v) + (() if v_hat is None else (v_hat,))
    if w.dtype in _FUSED_DTYPES and all(a.flags.c_contiguous and a.dtype == w.dtype for a in states):
        flat = [a.reshape(-1) for a in states]                 # views: the kernel updates in place
        step = _adam.adam_step if v_hat is None else _adam.adam_step_amsgrad
        parallel.run_numpy(lambda a, b, _: step(*(f[a:b] for f in flat), *scalars), parts)
        LAST["adam_update"] = "fused" if len(parts) == 1 else "fused_split"
        return
    d = scratch("adam.d", w.shape, w.dtype)
    if w.flags.c_contiguous and len(parts) > 1:
        g = np.ascontiguousarray(g, dtype=w.dtype)
        w1, g1, m1, v1, d1 = (a.reshape(-1) for a in (w, g, m, v, d))
        h1 = None if v_hat is None else v_hat.reshape(-1)
        parallel.run_numpy(lambda a, b, _: _adam_lines(w1[a:b], g1[a:b], m1[a:b], v1[a:b], d1[a:b],
                                                       None if h1 is None else h1[a:b], *scalars), parts)
        LAST["adam_update"] = "split"
    else:
        _adam_lines(w, g, m, v, d, v_hat, *scalars)
        LAST["adam_update"] = "inplace"


def adagrad_update(w, g, a, lr, epsilon=1e-7):
    """reference: numbanet.reference.tier.adagrad_update."""
    LAST["adagrad_update"] = "inplace"
    a += g * g
    w -= lr * g / np.sqrt(a + w.dtype.type(epsilon))


def rmsprop_update(w, g, v, lr, rho=0.9, epsilon=1e-7, mg=None, b=None, momentum=0.0):
    """reference: numbanet.reference.tier.rmsprop_update.

    The reference's expressions in its order, through two arrays of w's shape from
    the workspace pool instead of a fresh array per operation (1 - rho is rounded
    in w's dtype, the reference rounds it from float64: an ulp of difference):
    v <- rho v + ((1 - rho) g) g,  d = v + epsilon (- mg^2 centered),  step = (lr g) / sqrt(d).
    """
    LAST["rmsprop_update"] = "inplace"
    dt = w.dtype.type
    rho, one_minus_rho = dt(rho), dt(1 - dt(rho))
    d = workspace.empty("rmsprop.d", w.shape, w.dtype)
    e = workspace.empty("rmsprop.e", w.shape, w.dtype)
    v *= rho
    np.multiply(g, one_minus_rho, out=e)
    e *= g
    v += e
    np.add(v, dt(epsilon), out=d)
    if mg is not None:
        mg *= rho
        np.multiply(g, one_minus_rho, out=e)
        mg += e
        np.multiply(mg, mg, out=e)
        d -= e
    np.sqrt(d, out=d)
    np.multiply(g, lr, out=e)
    e /= d                                         # step = lr g / sqrt(d)
    if b is not None and momentum:
        b *= momentum
        b += e
        w -= b
    else:
        w -= e


def adadelta_update(w, g, Eg2, Edw2, lr, rho=0.95, epsilon=1e-7):
    """reference: numbanet.reference.tier.adadelta_update.

    The reference's expressions in its order, through two arrays of w's shape from
    the workspace pool instead of a fresh array per operation (1 - rho is rounded
    in w's dtype, the reference rounds it from float64: an ulp of difference):
    E[g^2] <- rho E[g^2] + ((1 - rho) g) g,  dw = (-sqrt(E[dw^2] + eps) / sqrt(E[g^2] + eps)) g,
    E[dw^2] <- rho E[dw^2] + ((1 - rho) dw) dw,  w <- w + lr dw.
    """
    LAST["adadelta_update"] = "inplace"
    dt = w.dtype.type
    rho, eps = dt(rho), dt(epsilon)
    one_minus_rho = dt(1 - rho)
    d = workspace.empty("adadelta.d", w.shape, w.dtype)
    e = workspace.empty("adadelta.e", w.shape, w.dtype)
    Eg2 *= rho
    np.multiply(g, one_minus_rho, out=e)
    e *= g
    Eg2 += e
    np.add(Edw2, eps, out=d)
    np.sqrt(d, out=d)
    np.negative(d, out=d)
    np.add(Eg2, eps, out=e)
    np.sqrt(e, out=e)
    d /= e
    d *= g                                         # dw
    Edw2 *= rho
    np.multiply(d, one_minus_rho, out=e)
    e *= d
    Edw2 += e
    d *= lr
    w += d


def nadam_update(w, g, m, v, t, lr, u_product, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """reference: numbanet.reference.tier.nadam_update (through one scratch array, like Adam)."""
    LAST["nadam_update"] = "inplace"
    dt = w.dtype.type
    u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
    u_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
    c_m = dt(u_next / (1 - u_product * u_next))     # m_hat = c_m * m + c_g * g
    c_g = dt((1 - u_t) / (1 - u_product))
    d = scratch("nadam.d", w.shape, w.dtype)
    e = scratch("nadam.e", w.shape, w.dtype)
    np.subtract(g, m, out=d)                       # m <- m + (g - m) * (1 - beta_1)
    d *= dt(1 - beta_1)
    m += d
    np.multiply(g, g, out=d)                       # v <- v + (g^2 - v) * (1 - beta_2)
    d -= v
    d *= dt(1 - beta_2)
    v += d
    np.multiply(g, c_g, out=e)                     # e = m_hat = c_m m + c_g g
    np.multiply(m, c_m, out=d)
    e += d
    np.multiply(v, dt(1 / (1 - beta_2 ** t)), out=d)   # d = sqrt(v_hat) + epsilon
    np.sqrt(d, out=d)
    d += dt(epsilon)
    e /= d                                         # w <- w - lr * m_hat / (sqrt(v_hat) + epsilon)
    e *= lr
    w -= e


def adamax_update(w, g, m, u, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """reference: numbanet.reference.tier.adamax_update."""
    LAST["adamax_update"] = "inplace"
    dt = w.dtype.type
    d = scratch("adamax.d", w.shape, w.dtype)
    np.subtract(g, m, out=d)                       # m <- m + (g - m) * (1 - beta_1)
    d *= dt(1 - beta_1)
    m += d
    u *= dt(beta_2)                                # u <- max(beta_2 u, |g|)
    np.abs(g, out=d)
    np.maximum(u, d, out=u)
    np.add(u, dt(epsilon), out=d)                  # w <- w - lr / (1 - beta_1^t) * m / (u + epsilon)
    np.divide(m, d, out=d)
    d *= dt(lr / (1 - beta_1 ** t))
    w -= d


def weight_decay_update(w, lr, decay):
    """reference: numbanet.reference.tier.weight_decay_update."""
    LAST["weight_decay_update"] = "inplace"
    d = scratch("weight_decay.d", w.shape, w.dtype)
    np.multiply(w, w.dtype.type(decay), out=d)     # w <- w - (w * decay) * lr
    d *= lr
    w -= d
