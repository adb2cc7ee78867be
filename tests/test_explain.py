"""The convolution atlas: the pictures contain what they claim, checked against independent facts.

Read back from the drawn axes (the arrays and patches on them) and compared with
Keras's formulas written out here, plain loops, and TensorFlow's own results
(SAME convolution = VALID convolution of the input padded by the drawn pads;
Conv2DTranspose = stride-1 convolution of the drawn stuffed, padded input).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

import numbanet as nb
from numbanet.cli import main as cli_main
from numbanet.explain import draw
from numbanet.explain.geometry import BOTTOM, INPUT, LEFT, RIGHT, STUFFED, TOP

from bounds import bilinear_bound, matmul_bound


def keras_pads(n, k, s, padding):
    """(before, after) on one axis: Keras's "same" out = floor((n - 1)/s) + 1, TF's split (odd cell after)."""
    if padding == "valid":
        return 0, 0
    out = (n - 1) // s + 1
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def keras_out(n, k, s, padding):
    return (n - k) // s + 1 if padding == "valid" else (n - 1) // s + 1


def panel(fig, label):
    (ax,) = [ax for ax in fig.axes if ax.get_label() == label]
    return ax


def drawn_grid(fig):
    return np.asarray(panel(fig, "padded input").images[0].get_array())


def drawn_pads(grid):
    """Pads per side read off the drawn codes: full rows of top/bottom, columns of left/right."""
    top = int(np.sum(np.all(grid == TOP, axis=1)))
    bottom = int(np.sum(np.all(grid == BOTTOM, axis=1)))
    body = grid[top:grid.shape[0] - bottom]
    left = int(np.sum(np.all(body == LEFT, axis=0)))
    right = int(np.sum(np.all(body == RIGHT, axis=0)))
    # every shaded cell is accounted for: nothing else carries a side's code
    assert np.sum(grid == TOP) == top * grid.shape[1] and np.sum(grid == BOTTOM) == bottom * grid.shape[1]
    assert np.sum(grid == LEFT) == left * body.shape[0] and np.sum(grid == RIGHT) == right * body.shape[0]
    return top, bottom, left, right


def loop_window_counts(H, W, KH, KW, SH, SW, padding):
    PT, PB = keras_pads(H, KH, SH, padding)
    PL, PR = keras_pads(W, KW, SW, padding)
    counts = np.zeros((H, W), dtype=int)
    for top in range(-PT, H + PB - KH + 1, SH):
        for left in range(-PL, W + PR - KW + 1, SW):
            counts[max(top, 0):min(top + KH, H), max(left, 0):min(left + KW, W)] += 1
    return counts


config = st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 4), st.integers(1, 4),
                   st.integers(1, 3), st.integers(1, 3), st.sampled_from(["valid", "same"]),
                   st.sampled_from(["conv2d", "max_pool2d"]))


@settings(max_examples=30, deadline=None)
@given(config)
def test_conv_atlas_pads_windows_im2col_and_counts_are_what_keras_computes(c):
    H, W, KH, KW, SH, SW, padding, op = c
    if padding == "valid" and (KH > H or KW > W):
        with pytest.raises(ValueError, match=f"explain.{op}.*larger than the input"):
            getattr(nb.explain, op)((H, W), (KH, KW), (SH, SW), padding, verbose=False)
        return
    fig, ex = getattr(nb.explain, op)((H, W), (KH, KW), (SH, SW), padding, verbose=False)
    PT, PB = keras_pads(H, KH, SH, padding)
    PL, PR = keras_pads(W, KW, SW, padding)
    OH, OW = keras_out(H, KH, SH, padding), keras_out(W, KW, SW, padding)
    # the shaded pad cells of each side, read off the picture
    assert drawn_pads(drawn_grid(fig)) == (PT, PB, PL, PR)
    assert ex.pads == {"top": PT, "bottom": PB, "left": PL, "right": PR} and ex.output_shape == (OH, OW)
    assert np.sum(drawn_grid(fig) == INPUT) == H * W
    # one outline per output cell, at (oh*SH, ow*SW) of the padded grid, KH x KW (inset < 0.5 on each side)
    windows = {p.get_gid(): p for p in panel(fig, "windows").patches if (p.get_gid() or "").startswith("window")}
    assert len(windows) == OH * OW
    for oh in range(OH):
        for ow in range(OW):
            p = windows[f"window {oh},{ow}"]
            x0, y0 = p.get_x(), p.get_y()
            assert round(y0) == oh * SH and round(x0) == ow * SW
            assert KH - 1 < p.get_height() <= KH and KW - 1 < p.get_width() <= KW
    # the im2col matrix drawn: entries 1 + h*W + w of the cell each window reads, grey where padding
    expected = np.zeros((OH * OW, KH * KW), dtype=int)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(KH):
                for j in range(KW):
                    h, w = oh * SH - PT + i, ow * SW - PL + j
                    if 0 <= h < H and 0 <= w < W:
                        expected[oh * OW + ow, i * KW + j] = h * W + w + 1
    np.testing.assert_array_equal(ex.im2col, expected)
    image = panel(fig, "im2col").images[0].get_array()
    grey = np.all(np.isclose(image, to_rgb(draw.PAD_GREY)), axis=-1)
    np.testing.assert_array_equal(grey, expected == 0)
    # rows coloured as their output cell, columns by tap (one colour per tap)
    rows = sorted((p for p in panel(fig, "im2col").patches if (p.get_gid() or "").startswith("row ")),
                  key=lambda p: int(p.get_gid().split()[1]))
    assert len(rows) == OH * OW
    out_image = panel(fig, "output").images[0].get_array().reshape(OH * OW, 3)
    for r, p in enumerate(rows):
        np.testing.assert_allclose(draw.lighten(p.get_facecolor()[:3], 0.35), out_image[r])
    taps = [p for p in panel(fig, "im2col").patches if (p.get_gid() or "").startswith("tap ")]
    assert [p.get_gid() for p in taps] == [f"tap {t}" for t in range(KH * KW)]
    for k, p in enumerate(taps):      # a column's entries are tinted with its tap's colour, all alike
        tint = image[~grey[:, k], k]
        np.testing.assert_allclose(tint, np.broadcast_to(draw.lighten(p.get_facecolor()[:3], 0.55), tint.shape))
    tap_rgb = {tuple(np.round(p.get_facecolor()[:3], 6)) for p in taps}
    assert len(tap_rgb) == KH * KW   # one colour per tap
    # col2im's overlap counts
    counts = np.asarray(panel(fig, "overlap").images[0].get_array())
    np.testing.assert_array_equal(counts, loop_window_counts(H, W, KH, KW, SH, SW, padding))
    np.testing.assert_array_equal(ex.overlap, counts)


@pytest.mark.parametrize("H, W, K, S", [(5, 5, 3, 2), (6, 6, 3, 2), (6, 7, (2, 4), (2, 3)), (4, 4, 2, 2),
                                        (7, 5, (4, 1), (3, 2)), (8, 8, 5, 3)])
def test_same_pads_drawn_are_tensorflows_split(tf, H, W, K, S):
    """TF's SAME convolution equals its VALID convolution of the input padded by the drawn pads
    (odd totals included: the extra cell must be where the picture shades it)."""
    fig, ex = nb.explain.conv2d((H, W, 2), K, S, "same", verbose=False)
    PT, PB, PL, PR = drawn_pads(drawn_grid(fig))
    SH, SW = (S, S) if isinstance(S, int) else S
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, H, W, 2))
    k = rng.standard_normal(ex.kernel + (2, 3))
    same = tf.nn.conv2d(x, k, strides=[1, SH, SW, 1], padding="SAME").numpy()
    padded = tf.pad(x, [[0, 0], [PT, PB], [PL, PR], [0, 0]])
    valid = tf.nn.conv2d(padded, k, strides=[1, SH, SW, 1], padding="VALID").numpy()
    assert same.shape[1:3] == ex.output_shape
    K2 = k.reshape(-1, 3)
    cols = nb.functional.im2col(x, ex.kernel, (SH, SW), "same").data
    assert np.all(np.abs(same - valid).reshape(-1, 3) <= 2 * matmul_bound(cols, K2))
    # and swapping one pad cell between the sides is caught: TF's split is not symmetric here
    if PB != PT:
        wrong = tf.nn.conv2d(tf.pad(x, [[0, 0], [PB, PT], [PL, PR], [0, 0]]), k, strides=[1, SH, SW, 1],
                             padding="VALID").numpy()
        assert np.max(np.abs(wrong - same)) > 1e-6


def test_max_pool_output_shape_equals_keras(keras):
    for H, W, P, S, padding in [(5, 5, 2, None, "same"), (7, 6, 3, 2, "same"), (7, 6, (3, 2), (2, 1), "valid")]:
        fig, ex = nb.explain.max_pool2d((H, W), P, S, padding, verbose=False)
        layer = keras.layers.MaxPooling2D(P, S, padding)
        assert tuple(layer.compute_output_shape((1, H, W, 1))[1:3]) == ex.output_shape


transpose_config = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4),
                             st.integers(1, 3), st.integers(1, 3), st.sampled_from(["valid", "same"]),
                             st.booleans(), st.integers(0, 2), st.integers(0, 2))


@settings(max_examples=25, deadline=None)
@given(transpose_config)
def test_conv2d_transpose_atlas_equals_tensorflow(tf, keras, c):
    """TF's conv2d_transpose = TF's stride-1 VALID convolution of the drawn stuffed and padded grid
    with the kernel flipped; the output shape is Keras's; the counts are conv2d_transpose of ones."""
    H, W, KH, KW, SH, SW, padding, with_op, oph, opw = c
    op = (oph % SH, opw % SW) if with_op else None
    try:
        fig, ex = nb.explain.conv2d_transpose((H, W), (KH, KW), (SH, SW), padding, op, verbose=False)
    except ValueError as err:          # configurations Keras rejects too: the layer refuses them alike
        with pytest.raises(ValueError):
            nb.functional.conv2d_transpose(np.zeros((1, H, W, 1)), np.zeros((KH, KW, 1, 1)), strides=(SH, SW),
                                           padding=padding, output_padding=op)
        assert "explain.conv2d_transpose" in str(err)
        return
    layer = keras.layers.Conv2DTranspose(1, (KH, KW), (SH, SW), padding, output_padding=op)
    assert tuple(layer.compute_output_shape((1, H, W, 1))[1:3]) == ex.output_shape
    OH, OW = ex.output_shape
    grid = drawn_grid(fig)
    PT, PB, PL, PR = drawn_pads(grid)
    stuffed = grid[PT:grid.shape[0] - PB, PL:grid.shape[1] - PR]
    assert stuffed.shape == ((H - 1) * SH + 1, (W - 1) * SW + 1)
    assert np.all(stuffed[::SH, ::SW] == INPUT) and np.sum(stuffed == STUFFED) == stuffed.size - H * W
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, H, W, 2))
    k = rng.standard_normal((KH, KW, 3, 2))                          # (KH, KW, filters, in)
    y = tf.nn.conv2d_transpose(x, k, output_shape=[1, OH, OW, 3], strides=[1, SH, SW, 1],
                               padding=padding.upper()).numpy()
    z = np.zeros((1,) + grid.shape + (2,))
    z[0, PT:PT + stuffed.shape[0]:SH, PL:PL + stuffed.shape[1]:SW] = x[0]
    k_conv = k[::-1, ::-1].transpose(0, 1, 3, 2)                     # flipped, (KH, KW, in, filters)
    y_conv = tf.nn.conv2d(z, k_conv, strides=1, padding="VALID").numpy()
    magnitude = tf.nn.conv2d(np.abs(z), np.abs(k_conv), strides=1, padding="VALID").numpy()
    assert np.all(np.abs(y - y_conv) <= 2 * bilinear_bound(magnitude, KH * KW * 2 + 1))
    assert ex.max_difference <= 2 * np.max(bilinear_bound(magnitude, KH * KW * 2 + 1)) + 1e-300
    ones = tf.nn.conv2d_transpose(np.ones((1, H, W, 1)), np.ones((KH, KW, 1, 1)), output_shape=[1, OH, OW, 1],
                                  strides=[1, SH, SW, 1], padding=padding.upper()).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(np.asarray(panel(fig, "overlap").images[0].get_array()), ones)


@pytest.mark.parametrize("H, W, S, interpolation", [(3, 3, 2, "nearest"), (3, 4, (2, 3), "nearest"),
                                                    (3, 3, 2, "bilinear"), (4, 2, (3, 2), "bilinear")])
def test_upsampling_atlas_matrices_are_keras_upsampling(keras, H, W, S, interpolation):
    fig, ex = nb.explain.upsampling2d((H, W), S, interpolation, verbose=False)
    A_H, A_W = ex.weights
    x = np.random.default_rng(2).standard_normal((1, H, W, 2))
    y = np.asarray(keras.layers.UpSampling2D(S, interpolation=interpolation)(x))
    assert y.shape[1:3] == ex.output_shape
    mine = np.einsum("ih,nhwc,jw->nijc", A_H, x, A_W)
    magnitude = np.einsum("ih,nhwc,jw->nijc", np.abs(A_H), np.abs(x), np.abs(A_W))
    assert np.all(np.abs(mine - y) <= bilinear_bound(magnitude, 4, eps=np.finfo(np.float32).eps))
    np.testing.assert_array_equal(np.asarray(panel(fig, "A_H").images[0].get_array()), A_H)
    counts = np.asarray(panel(fig, "overlap").images[0].get_array())
    reads = np.zeros((H, W), dtype=int)            # output cells whose value changes when input cell moves
    for h in range(H):
        for w in range(W):
            e = np.zeros((1, H, W, 1))
            e[0, h, w, 0] = 1.0
            reads[h, w] = np.count_nonzero(np.asarray(keras.layers.UpSampling2D(S, interpolation=interpolation)(e)))
    np.testing.assert_array_equal(counts, reads)


def test_functions_return_a_figure_and_print_the_formula_with_numbers(capsys, tmp_path):
    fig, ex = nb.explain.conv2d((5, 5), 3, 2, "same", path=tmp_path / "c.png")
    assert isinstance(fig, Figure) and (tmp_path / "c.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "OH = floor((5 - 1) / 2) + 1 = 3" in out and "top 1, bottom 1" in out and str(tmp_path / "c.png") in out
    assert str(ex) == ex.formula and ex.path == str(tmp_path / "c.png")
    nb.explain.conv2d((7, 6), (4, 3), 2, "valid")
    assert "OH = floor((7 - 4) / 2) + 1 = 2" in capsys.readouterr().out
    nb.explain.conv2d_transpose((3, 3), 3, 2, "same", output_padding=1)
    out = capsys.readouterr().out
    assert "OH = (3 - 1)*2 + 3 % 2 + 1 = 6" in out and "max |conv2d_transpose" in out
    nb.explain.upsampling2d((3, 2), (2, 3))
    assert "OW = 2 * 3 = 6" in capsys.readouterr().out


def test_cli_writes_the_png_and_prints_the_formula(tmp_path, capsys):
    assert cli_main(["explain", "conv2d", "--input", "5x5", "--kernel", "3", "--strides", "2", "--padding",
                     "same", "--out", str(tmp_path)]) == 0
    png = tmp_path / "explain_conv2d_5x5_k3_s2_same.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "OH = floor((5 - 1) / 2) + 1 = 3" in capsys.readouterr().out
    assert cli_main(["explain", "conv2d_transpose", "--input", "3x4", "--kernel", "3", "--strides", "2",
                     "--output-padding", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain_conv2d_transpose_3x4_k3_s2_valid_op1.png").is_file()
    assert cli_main(["explain", "max_pool2d", "--input", "5x5", "--padding", "same", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain_max_pool2d_5x5_k2_s2_same.png").is_file()
    assert cli_main(["explain", "upsampling2d", "--input", "3x3", "--interpolation", "bilinear",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "explain_upsampling2d_3x3_size2_bilinear.png").is_file()
    capsys.readouterr()
    assert cli_main(["explain", "conv2d", "--input", "3x3", "--kernel", "5", "--out", str(tmp_path)]) == 2
    assert "larger than the input (3, 3)" in capsys.readouterr().err


@pytest.mark.parametrize("call, words", [
    (lambda: nb.explain.conv2d((3, 3), 5), ["explain.conv2d", "(5, 5)", "(3, 3)"]),
    (lambda: nb.explain.conv2d((3, 3, 1, 1), 2), ["explain.conv2d", "input_shape"]),
    (lambda: nb.explain.conv2d((0, 3), 2, padding="same"), ["input_shape", ">= 1"]),
    (lambda: nb.explain.conv2d((5, 5), 3, padding="full"), ["padding"]),
    (lambda: nb.explain.max_pool2d((5, 5), 0), ["pool_size", ">= 1"]),
    (lambda: nb.explain.conv2d_transpose((3, 3), 3, 2, output_padding=2), ["output_padding", "strides"]),
    (lambda: nb.explain.upsampling2d((3, 3), 2, "bicubic"), ["interpolation"]),
])
def test_bad_configurations_are_value_errors(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
