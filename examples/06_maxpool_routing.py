"""Lesson 6: where a max-pooling gradient goes: to the first maximum of each window.

Run:  python examples/06_maxpool_routing.py    (read alongside numbanet/reference/pooling.py)

Max pooling keeps the largest value of each window, so only that value moves
the output: its gradient is gy, every other cell's is 0. Where several cells
tie, the whole gradient goes to the FIRST maximum in row-major order (scan the
window's rows top to bottom, each left to right), as TensorFlow does. A pixel
that is the maximum of several overlapping windows receives the sum of their
gradients. With "same" padding the padded cells count as -inf: they never win.

    y[n, oh, ow, c]  = max_{i, j} x[n, oh*SH - PT + i, ow*SW - PL + j, c]
    gx[n, h, w, c]   = sum of gy[n, oh, ow, c] over the windows whose first maximum is (h, w)

Here the routing is written as loops and compared with ``max_pool2d``'s backward
under both kernel tiers. The gradients are sums of integers, so they compare exactly.
"""
import numpy as np

import numbanet as nb

F = nb.functional


def pool_geometry(n, k, s, padding):
    """(output size, padding before) along one axis, by Keras's rules."""
    if padding == "valid":
        return (n - k) // s + 1, 0
    out = -(-n // s)
    return out, max((out - 1) * s + k - n, 0) // 2


def max_pool_by_hand(x, gy, pool, strides, padding):
    """(y, gx): each window's first maximum (row-major) gets that window's gy. x (N, H, W, C)."""
    N, H, W, C = x.shape
    (KH, KW), (SH, SW) = pool, strides
    OH, PT = pool_geometry(H, KH, SH, padding)
    OW, PL = pool_geometry(W, KW, SW, padding)
    y, gx = np.zeros((N, OH, OW, C)), np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, where = -np.inf, None
                    for i in range(KH):                     # rows top to bottom
                        for j in range(KW):                 # then left to right
                            h, w = oh * SH - PT + i, ow * SW - PL + j
                            if 0 <= h < H and 0 <= w < W and x[n, h, w, c] > best:   # ">": a tie keeps the first
                                best, where = x[n, h, w, c], (h, w)
                    y[n, oh, ow, c] = best
                    gx[n, where[0], where[1], c] += gy[n, oh, ow, c]
    return y, gx


def pool_both_tiers(x, gy, pool, strides, padding):
    """max_pool2d's (y, gx) under each tier, each checked against the loops; returns the fast tier's gx."""
    y_hand, gx_hand = max_pool_by_hand(x, gy, pool, strides, padding)
    for tier in ("reference", "fast"):
        with nb.kernels(tier):
            xt = nb.Tensor(x, requires_grad=True)
            y = F.max_pool2d(xt, pool, strides, padding)
            y.backward(gy)
            assert np.array_equal(y.data, y_hand), tier
            assert np.array_equal(xt.grad, gx_hand), (tier, xt.grad[0, :, :, 0], gx_hand[0, :, :, 0])
    return xt.grad


def show(title, a):
    print(title)
    for row in a:
        print("   " + " ".join(f"{v:4g}" for v in row))


# ---------------------------------------------------------------- ties: the first maximum wins
x = np.array([[1, 3, 2, 2],
              [3, 0, 2, 1],
              [0, 5, 4, 4],
              [5, 1, 4, 4]], dtype=np.float64).reshape(1, 4, 4, 1)
gy = np.array([[10, 20], [30, 40]], dtype=np.float64).reshape(1, 2, 2, 1)
show("x (every 2x2 window has a tie):", x[0, :, :, 0])
show("gy, one value per window:", gy[0, :, :, 0])
gx = pool_both_tiers(x, gy, (2, 2), (2, 2), "valid")
show("gx = max_pool2d(x, 2).backward(gy), both tiers, = the loops:", gx[0, :, :, 0])
assert gx[0, 0, 1, 0] == 10 and gx[0, 1, 0, 0] == 0       # 3 and 3 tie: the first in row-major order
assert gx[0, 0, 2, 0] == 20                                 # three 2s tie: the top-left one
assert gx[0, 2, 1, 0] == 30 and gx[0, 3, 0, 0] == 0         # 5 and 5: the upper one
assert gx[0, 2, 2, 0] == 40 and gx.sum() == gy.sum()        # four 4s: the top-left; nothing lost

# ---------------------------------------------------------------- overlapping windows add up
x = np.zeros((1, 5, 5, 1))
x[0, 2, 2, 0] = 9.0                                         # the maximum of every 3x3 window
x[0, :, :, 0] += np.arange(25).reshape(5, 5) * 0.01         # all other values distinct and smaller
gy = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
gx = pool_both_tiers(x, gy, (3, 3), (1, 1), "valid")
show("\npool 3x3, strides 1: the centre is the maximum of all 9 windows, so it collects every gy:",
     gx[0, :, :, 0])
assert gx[0, 2, 2, 0] == gy.sum() == 45 and np.count_nonzero(gx) == 1

# ---------------------------------------------------------------- padding never wins
x = -np.arange(1.0, 26.0).reshape(1, 5, 5, 1)              # all negative: a zero pad would win
gy = np.ones((1, 3, 3, 1))
gx = pool_both_tiers(x, gy, (2, 2), (2, 2), "same")
show("\nx all negative, pool 2, strides 2, 'same' (one row and column of padding at the bottom/right):"
     "\ngx: every window's gradient lands on a real pixel", gx[0, :, :, 0])
assert gx.sum() == 9 and gx[0, 4, 4, 0] == 1                # the corner window is all padding but one pixel

# ---------------------------------------------------------------- random inputs, several channels
rng = np.random.default_rng(6)
for shape, pool, strides, padding in [((2, 7, 6, 3), (3, 2), (2, 2), "same"),
                                      ((1, 6, 6, 2), (3, 3), (1, 2), "valid"),
                                      ((2, 5, 5, 1), (2, 2), (1, 1), "same")]:
    x = rng.integers(0, 4, size=shape).astype(np.float64)   # few values: many ties
    gy_shape = F.max_pool2d(nb.Tensor(x), pool, strides, padding).shape
    pool_both_tiers(x, rng.integers(-5, 6, size=gy_shape).astype(np.float64), pool, strides, padding)
    print(f"\nrandom x {shape} with values 0..3, pool {pool}, strides {strides}, {padding!r}: "
          f"both tiers route as the loops do")

# ---------------------------------------------------------------- why ties break gradient checks
# At a tie the output is not differentiable: nudging one tied cell up makes it the maximum
# (slope 1), nudging it down leaves the other one in charge (slope 0), so the central
# difference reports 1/2 for each while backward() gives 1 and 0. Gradient checks must
# use inputs without ties.
tied = np.array([[1.0, 3.0], [3.0, 0.0]]).reshape(1, 2, 2, 1)
report = nb.check_grad(lambda t: F.max_pool2d(t, 2), tied)
print("\ncheck_grad at a tie (3 and 3 in one window):")
print(report)
# the difference quotient ((3 + h) - 3) / 2h, h = 1e-6, is 1/2 up to the rounding of 3 + h: 3 eps / 2h
assert not report.passed and abs(report.inputs[0].numeric - 0.5) <= 3 * np.finfo(float).eps / 2e-6
assert nb.check_grad(lambda t: F.max_pool2d(t, 2), tied + np.array([0, 0, 1e-3, 0]).reshape(1, 2, 2, 1))
print("and without the tie (3 vs 3.001) it passes")
print("\nOK 06_maxpool_routing: each window's gradient goes to its first maximum")
