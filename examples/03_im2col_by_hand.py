"""Lesson 3: im2col, the unfolding that turns a convolution into one matrix product.

Run:  python examples/03_im2col_by_hand.py     (read alongside numbanet/reference/conv.py)

A convolution slides a KH x KW window over the image. im2col copies every
window into one row of a matrix, so the sliding becomes a matrix product
(lesson 4). With x (N, H, W, C), strides (SH, SW) and top/left padding (PT, PL):

    cols[(n*OH + oh)*OW + ow, (i*KW + j)*C + c] = x[n, oh*SH - PT + i, ow*SW - PL + j, c]
                                                   (0 where that pixel is padding)

cols has shape (N*OH*OW, KH*KW*C): one row per output pixel, one column per
kernel tap and channel. Keras's rules give the output size and the padding:

    "valid": OH = floor((H - KH) / SH) + 1, no padding
    "same":  OH = ceil(H / SH), total = max((OH - 1)*SH + KH - H, 0),
             PT = total // 2 (the odd cell goes to the bottom)

Here im2col is written with plain loops and compared with ``nb.functional.im2col``
(exact: it only copies numbers), then col2im, its adjoint, counts the windows
covering each pixel.
"""
import numpy as np

import numbanet as nb

F = nb.functional


def out_size_and_pad(n, k, s, padding):
    """(output size, padding before) along one axis, by Keras's rules."""
    if padding == "valid":
        return (n - k) // s + 1, 0
    out = -(-n // s)                                  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2


def im2col_loops(x, kernel, strides, padding):
    """The unfolding as four nested loops: x (N, H, W, C) -> cols (N*OH*OW, KH*KW*C)."""
    N, H, W, C = x.shape
    (KH, KW), (SH, SW) = kernel, strides
    OH, PT = out_size_and_pad(H, KH, SH, padding)
    OW, PL = out_size_and_pad(W, KW, SW, padding)
    cols = np.zeros((N * OH * OW, KH * KW * C), dtype=x.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for i in range(KH):
                    for j in range(KW):
                        h, w = oh * SH - PT + i, ow * SW - PL + j
                        if 0 <= h < H and 0 <= w < W:        # outside: padding, stays 0
                            cols[row, (i * KW + j) * C:(i * KW + j + 1) * C] = x[n, h, w, :]
    return cols


# ---------------------------------------------------------------- one small picture
x = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5, 1)     # pixel values 1..25, row by row
print("x (one 5x5 image, one channel):")
print(x[0, :, :, 0].astype(int))

cols = im2col_loops(x, (3, 3), (2, 2), "same")
print("\nim2col, kernel 3x3, strides 2, padding 'same' (OH = OW = ceil(5/2) = 3, PT = PL = 1):")
print("  rows = output pixels (oh, ow), columns = kernel taps (i, j); 0 = padding")
for r, row in enumerate(cols.astype(int)):
    print(f"  ({r // 3},{r % 3})  " + " ".join(f"{v:2d}" for v in row))
assert cols.shape == (9, 9)
assert cols[0].tolist() == [0, 0, 0, 0, 1, 2, 0, 6, 7]          # the top-left window hangs over the padding
assert cols[4].tolist() == [7, 8, 9, 12, 13, 14, 17, 18, 19]    # the centre window is all image

lib = F.im2col(x, 3, strides=2, padding="same")
assert np.array_equal(lib.data, cols)
print("nb.functional.im2col(x, 3, strides=2, padding='same') is the same matrix")

# ---------------------------------------------------------------- many shapes, several channels
rng = np.random.default_rng(3)
configs = [((2, 5, 6, 3), (3, 3), (1, 1), "valid"),
           ((2, 5, 6, 3), (3, 3), (1, 1), "same"),
           ((1, 7, 6, 2), (2, 3), (2, 1), "same"),      # odd total padding: the extra row at the bottom
           ((3, 6, 6, 1), (4, 4), (3, 2), "same"),
           ((1, 8, 5, 2), (3, 2), (2, 3), "valid")]
print("\nloops == nb.functional.im2col for every configuration (exact: im2col only copies):")
for shape, kernel, strides, padding in configs:
    x = rng.normal(size=shape)
    want = im2col_loops(x, kernel, strides, padding)
    got = F.im2col(x, kernel, strides=strides, padding=padding).data
    assert got.shape == want.shape and np.array_equal(got, want), (shape, kernel, strides, padding)
    print(f"  x {shape}, kernel {kernel}, strides {strides}, {padding!r:8} -> cols {got.shape}")

# ---------------------------------------------------------------- col2im: the adjoint
# col2im adds each entry of a (N*OH*OW, KH*KW*C) matrix back onto the pixel it was read
# from. On a matrix of ones it counts how many windows cover each pixel.
shape, kernel, strides = (1, 5, 5, 1), (3, 3), (2, 2)
counts = F.col2im(np.ones((9, 9)), shape, kernel, strides=strides, padding="same").data[0, :, :, 0]
by_hand = np.zeros((5, 5))
for oh in range(3):
    for ow in range(3):
        for i in range(3):
            for j in range(3):
                h, w = oh * 2 - 1 + i, ow * 2 - 1 + j
                if 0 <= h < 5 and 0 <= w < 5:
                    by_hand[h, w] += 1
print("\ncol2im(ones): how many 3x3 windows (strides 2, 'same') read each pixel")
print(counts.astype(int))
assert np.array_equal(counts, by_hand)

# Adjoint: <im2col(x), c> = <x, col2im(c)> for every x and c. Both sides sum the same n
# products x[p] c[r, q], in another order; each sum is within (n eps / 2) sum|terms| of the
# exact value (Higham, eq. 3.5), so they differ by at most n eps sum|terms|, here doubled
# for the roundings of the products themselves.
x, c = rng.normal(size=shape), rng.normal(size=(9, 9))
left = float(np.sum(F.im2col(x, kernel, strides, "same").data * c))
right = float(np.sum(x * F.col2im(c, shape, kernel, strides, "same").data))
terms = np.abs(F.im2col(x, kernel, strides, "same").data * c)
bound = 2 * terms.size * np.finfo(np.float64).eps * terms.sum()
assert abs(left - right) <= bound, (left, right, bound)
print(f"<im2col(x), c> = {left:.12f} = <x, col2im(c)> = {right:.12f}: col2im is im2col's transpose")

# ---------------------------------------------------------------- the shapes it accepts
one_image = rng.normal(size=(5, 5, 2))          # (H, W, C): one image, N = 1 implied
assert F.im2col(one_image, 3).shape == (9, 18)
try:
    F.im2col(np.zeros((5, 5)), 3)                # (H, W): no channel axis
except ValueError as err:
    print(f"\na 2-D image is refused: {err}")
    assert "(H, W, C)" in str(err) and "x[..., None]" in str(err)
else:
    raise AssertionError("im2col accepted a 2-D input")
print("\nOK 03_im2col_by_hand: the loops and nb.functional.im2col agree exactly")
