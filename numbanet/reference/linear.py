"""The dense layer's array functions: the affine map y = x @ W + b, and inverted dropout.

Notation: x (..., D) with its leading axes folded into B rows, W (D, U), b (U,), y (..., U).
An activation is a separate step (``activations.py``): the fast tier may fuse it
into the same pass, the reference computes it after.
"""
from __future__ import annotations


def linear_forward(x, W, b=None):
    """y = x @ W + b:  x (..., D), W (D, U), b (U,) or None -> y (..., U).

    fast tier: numbanet.fast.dense.dense_forward (which may also fuse an activation).
    """
    y = x @ W                                  # (..., D) @ (D, U) -> (..., U)
    return y if b is None else y + b


def linear_backward(gy, x, W):
    """(gx, gW, gb) of y = x @ W + b, from gy (..., U).

        gx = gy @ W^T              (..., U) @ (U, D) -> (..., D)
        gW = x2^T @ gy2            (D, B) @ (B, U) -> (D, U), x2 = x.reshape(B, D)
        gb = sum of gy2 over B     (U,)
    fast tier: numbanet.fast.dense.dense_backward.
    """
    D, U = W.shape
    x2, gy2 = x.reshape(-1, D), gy.reshape(-1, U)   # (..., D) -> (B, D); (..., U) -> (B, U)
    return gy @ W.T, x2.T @ gy2, gy2.sum(axis=0)


def dropout_forward(x, keep, rate):
    """y = x * keep / (1 - rate):  x (...), keep (...) bool, True with probability 1 - rate.

    Scaling at training time keeps E[y] = x, so inference needs no rescaling.
    fast tier: numbanet.engine.functional.Dropout.forward (which draws ``keep`` itself).
    """
    return x * keep / (1 - rate)


def dropout_backward(gy, keep, rate):
    """gx = gy * keep / (1 - rate), the same mask and scale.   fast tier: functional.Dropout.backward."""
    return gy * keep / (1 - rate)
