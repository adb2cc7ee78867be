"""Every optimizer's update rule as Keras 3 writes it, on plain arrays, updated in place.

Notation: w a weight, g its gradient (same shape), lr the learning rate, t the step
number counted from 1; the state arrays (m, v, ...) start as Keras starts them
(zeros; Adagrad's accumulator at 0.1) and are updated in place with w.

Before any update, gradients may be clipped (one of):

    clipvalue        g <- clip(g, -clipvalue, clipvalue)
    clipnorm         g <- g clipnorm / max(||g||, clipnorm)                     each gradient alone
    global_clipnorm  g <- g global_clipnorm / max(||(g_1, .., g_k)||, global_clipnorm)

fast tier: numbanet.fast.optimizers (the ``*_update`` functions; clipping in numbanet.optimizers).
"""
from __future__ import annotations

import math

import numpy as np


def clip_by_value(grads, clipvalue):
    return [np.clip(g, -clipvalue, clipvalue) for g in grads]


def clip_by_norm(grads, clipnorm):
    return [g * (clipnorm / max(math.sqrt((g * g).sum()), clipnorm)) for g in grads]


def clip_by_global_norm(grads, global_clipnorm):
    norm = math.sqrt(sum((g * g).sum() for g in grads))
    return [g * (global_clipnorm / max(norm, global_clipnorm)) for g in grads]


def sgd(w, g, lr, m=None, momentum=0.0, nesterov=False):
    """w <- w - lr g;  with momentum: m <- momentum m - lr g, then w <- w + m
    (nesterov: w <- w + momentum m - lr g).   fast tier: fast.optimizers.sgd_update."""
    if not momentum:
        w -= lr * g
        return
    m[...] = momentum * m - lr * g
    w += momentum * m - lr * g if nesterov else m


def adam(w, g, m, v, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, v_hat=None):
    """Adam in Keras's form: the bias corrections folded into one step size alpha.

    (amsgrad: pass v_hat; v_hat <- max(v_hat, v) is used in place of v.)
    fast tier: numbanet.fast.optimizers.adam_update.
    """
    m += (1 - beta_1) * (g - m)
    v += (1 - beta_2) * (g * g - v)
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    alpha = lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    w -= alpha * m / (np.sqrt(v) + epsilon)


def adagrad(w, g, a, lr, epsilon=1e-7):
    """a <- a + g^2;  w <- w - lr g / sqrt(a + epsilon).   fast tier: fast.optimizers.adagrad_update."""
    a += g * g
    w -= lr * g / np.sqrt(a + epsilon)


def rmsprop(w, g, v, lr, rho=0.9, epsilon=1e-7, mg=None, b=None, momentum=0.0):
    """v <- rho v + (1 - rho) g^2;  step = lr g / sqrt(v + epsilon)  (epsilon inside the root).

    centered (pass mg): mg <- rho mg + (1 - rho) g, and v - mg^2 + epsilon under the root.
    momentum (pass b): b <- momentum b + step, w <- w - b; else w <- w - step.
    fast tier: numbanet.fast.optimizers.rmsprop_update.
    """
    v[...] = rho * v + (1 - rho) * g * g
    d = v + epsilon
    if mg is not None:
        mg[...] = rho * mg + (1 - rho) * g
        d = d - mg * mg
    step = lr * g / np.sqrt(d)
    if b is not None and momentum:
        b[...] = momentum * b + step
        step = b
    w -= step


def adadelta(w, g, Eg2, Edw2, lr, rho=0.95, epsilon=1e-7):
    """Adadelta (Zeiler 2012) with Keras's learning rate in front.

        E[g^2]  <- rho E[g^2] + (1 - rho) g^2
        dw      =  -sqrt(E[dw^2] + epsilon) / sqrt(E[g^2] + epsilon) g
        E[dw^2] <- rho E[dw^2] + (1 - rho) dw^2
        w       <- w + lr dw
    fast tier: numbanet.fast.optimizers.adadelta_update.
    """
    Eg2[...] = rho * Eg2 + (1 - rho) * g * g
    dw = -np.sqrt(Edw2 + epsilon) / np.sqrt(Eg2 + epsilon) * g
    Edw2[...] = rho * Edw2 + (1 - rho) * dw * dw
    w += lr * dw


def nadam(w, g, m, v, t, lr, u_product, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Nadam (Dozat 2015) as Keras 3 writes it: Adam with a Nesterov look-ahead on m.

    ``u_product`` is u_1 u_2 ... u_t, the product of the momentum schedule up to this step
    (kept by the optimizer, shared by all its weights).

        u_t   = beta_1 (1 - 0.5 * 0.96^t),   u_t+1 = beta_1 (1 - 0.5 * 0.96^(t+1))
        m     <- m + (1 - beta_1) (g - m)
        v     <- v + (1 - beta_2) (g^2 - v)
        m_hat = u_t+1 m / (1 - u_product u_t+1) + (1 - u_t) g / (1 - u_product)
        v_hat = v / (1 - beta_2^t)
        w     <- w - lr m_hat / (sqrt(v_hat) + epsilon)
    fast tier: numbanet.fast.optimizers.nadam_update.
    """
    u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
    u_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
    m += (1 - beta_1) * (g - m)
    v += (1 - beta_2) * (g * g - v)
    m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2 ** t)
    w -= lr * m_hat / (np.sqrt(v_hat) + epsilon)


def adamax(w, g, m, u, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adamax (Kingma & Ba, section 7.1): Adam with the infinity norm in place of v.

        m <- m + (1 - beta_1) (g - m)
        u <- max(beta_2 u, |g|)
        w <- w - lr m / ((1 - beta_1^t) (u + epsilon))
    fast tier: numbanet.fast.optimizers.adamax_update.
    """
    m += (1 - beta_1) * (g - m)
    u[...] = np.maximum(beta_2 * u, np.abs(g))
    w -= lr * m / ((1 - beta_1 ** t) * (u + epsilon))


def weight_decay(w, lr, decay):
    """Decoupled weight decay (Loshchilov & Hutter), applied before the optimizer's step:

        w <- w - w * decay * lr
    fast tier: numbanet.fast.optimizers.weight_decay_update.
    """
    w -= w * decay * lr
