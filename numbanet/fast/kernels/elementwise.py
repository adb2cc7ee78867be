"""Elementwise kernels that NumPy would run as several passes with temporaries.

    relu_mask_into(gy, y, gz):   gz = gy * [y > 0]   (the relu's backward, from its output y)

NumPy's ``gy * (y > 0)`` writes a boolean temporary and then multiplies; this
is one pass over three arrays. Arrays are walked flat (any shape, C order)
with unsigned indices, so the loop vectorises to a compare and a blend.
A NaN in y counts as "not > 0" and gives 0, as in NumPy's version; a NaN in gy
where y > 0 passes through.
"""
from __future__ import annotations


from .config import U, njit


@njit
def relu_mask_into(gy, y, gz):
    """gz = gy where y > 0, else 0; all three C-contiguous with the same size."""
    g1, y1, z1 = gy.reshape(-1), y.reshape(-1), gz.reshape(-1)
    for i in range(U(g1.size)):
        z1[i] = g1[i] if y1[i] > 0 else 0
