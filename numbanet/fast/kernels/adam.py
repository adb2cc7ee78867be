"""Adam's update as one pass over the weights, in place.

    adam_step(w, g, m, v, alpha, c1, c2, eps)               (flat, C-contiguous, one dtype)
    adam_step_amsgrad(w, g, m, v, v_hat, alpha, c1, c2, eps)

for every element k, with c1 = 1 - beta_1, c2 = 1 - beta_2 and alpha the step size
with both bias corrections folded in (``numbanet/reference/optimizers.py``: adam):

    m_k <- m_k + (g_k - m_k) c1
    v_k <- v_k + (g_k^2 - v_k) c2          (amsgrad: v_hat_k <- max(v_hat_k, v_k), used below)
    w_k <- w_k - m_k / (sqrt(v_k) + eps) alpha

NumPy runs this as ten passes over arrays of the weights' size; for the million-weight
layers of a text model each pass streams the arrays through memory again. One loop
reads g, m, v, w once and writes m, v, w once, and vectorises (sqrt and division
have vector instructions). Every operation rounds as NumPy's passes round them
(no fastmath: no fused multiply-add), so the result is bit for bit that of the
NumPy route in ``numbanet/fast/optimizers.py``. The scalars come in the arrays'
dtype, so float32 weights are updated in float32.
"""
from __future__ import annotations

import numpy as np
from numba import uintp

from .config import njit


@njit(error_model="numpy")   # no zero-division check per element, so the loop vectorises
def adam_step(w, g, m, v, alpha, c1, c2, eps):
    """One Adam update of the flat arrays w, g, m, v (n,), in place."""
    for k in range(uintp(w.size)):
        gk = g[k]
        mk = m[k] + (gk - m[k]) * c1
        vk = v[k] + (gk * gk - v[k]) * c2
        m[k] = mk
        v[k] = vk
        w[k] -= mk / (np.sqrt(vk) + eps) * alpha


@njit(error_model="numpy")
def adam_step_amsgrad(w, g, m, v, v_hat, alpha, c1, c2, eps):
    """As ``adam_step``, with v_hat (n,) <- max(v_hat, v) in the denominator."""
    for k in range(uintp(w.size)):
        gk = g[k]
        mk = m[k] + (gk - m[k]) * c1
        vk = v[k] + (gk * gk - v[k]) * c2
        m[k] = mk
        v[k] = vk
        vh = np.maximum(v_hat[k], vk)   # NaN-propagating, as NumPy's
        v_hat[k] = vh
        w[k] -= mk / (np.sqrt(vh) + eps) * alpha
