"""Every candidate route of every convolution pass, Winograd F(2x2, 3x3) and F(4x4, 3x3) included, computes the
same numbers.

On a grid of shapes (widths that take Winograd by default and ones that only the planner
may time, 1x1/3x3/5x5 kernels, strides 1 and 2, "same" and "valid", float32 and float64)
each route of ``fast/conv.py: candidates`` runs its pass and is compared with the
reference tier (``numbanet/reference/conv.py``, plain NumPy) in float64. Tolerances are
rounding-error bounds (tests/bounds.py): for im2col, direct and flipped the bilinear bound of
a sum of KH*KW*C (forward), KH*KW*F (input gradient) or N*OH*OW (weight gradient) products;
for Winograd the bound derived in tests/test_winograd.py (the algorithm run on absolute
values, n = C + 14 roundings for F(2x2), C + 28 for F(4x4)), plus the float64 reference's own bound.
"""
import numpy as np
import pytest

import numbanet as nb
from bounds import assert_within, bilinear_bound, sum_bound
from numbanet.engine.conv_shapes import conv_pads
from numbanet.fast import conv as fconv
from numbanet.fast import parallel, planner, routes
from numbanet.fast import winograd as FW
from numbanet.reference import conv as rconv
from test_winograd import OVERLAP, ROUNDINGS, input_magnitude, magnitude, weight_magnitude

EPS64 = np.finfo(np.float64).eps


@pytest.fixture
def cache(tmp_path, monkeypatch, two_threads):
    """A fresh cache folder for the plan file, planning state forgotten before and after."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NUMBANET_PLANNING", raising=False)
    planner.reset()
    yield tmp_path / "numbanet"
    planner.reset()


def route_bound(op, how, x, W, gy, S, pads, eps):
    """Bound on |pass by ``how`` - the float64 reference| of one pass ("conv.forward", ...) (see the top)."""
    N, H, Wd, C = x.shape
    KH, KW, _, F = W.shape
    OH, OW = gy.shape[1:3]
    ax, aW, agy = np.abs(x), np.abs(W), np.abs(gy)
    if op == "conv.forward":
        direct, n = rconv.conv2d_forward(ax, aW, None, S, S, pads), KH * KW * C
    elif op == "conv.input_grad":
        direct, n = rconv.conv2d_input_grad(agy, aW, H, Wd, S, S, pads[0], pads[2]), KH * KW * F
    else:
        direct, n = rconv.conv2d_weight_grad(ax, agy, W.shape, S, S, pads), N * OH * OW
    reference = bilinear_bound(direct, n, EPS64)                 # the float64 reference's own rounding
    if how not in FW.ROUTE_TILES:
        return bilinear_bound(direct, n, eps) + reference
    m = FW.ROUTE_TILES[how]
    if op == "conv.forward":
        return bilinear_bound(magnitude(x, W, pads, m), C + ROUNDINGS[m], eps) + reference
    if op == "conv.input_grad":                                  # by the transposed forward pass
        return bilinear_bound(input_magnitude(gy, W, (H, Wd), pads, m), F + ROUNDINGS[m] + OVERLAP, eps) + reference
    T = N * (-(-OH // m)) * (-(-OW // m))                        # the tiles summed over
    return bilinear_bound(weight_magnitude(x, gy, pads, m), T + ROUNDINGS[m], eps) + reference


GRID = [  # N, H, W, C, F, K, S, padding, dtype
    (2, 9, 7, 8, 8, 3, 1, "same", "float32"),       # Winograd only as a planner candidate (8 channels)
    (3, 8, 8, 9, 16, 3, 1, "valid", "float64"),
    (2, 6, 5, 33, 32, 3, 1, "same", "float32"),     # Winograd the forward heuristic (32 channels)
    (1, 5, 6, 40, 36, 3, 1, "valid", "float64"),
    (2, 10, 10, 16, 4, 3, 1, "same", "float32"),    # flipped (F < C), no Winograd (4 filters)
    (2, 7, 7, 1, 8, 3, 1, "valid", "float32"),      # direct (one channel)
    (2, 9, 9, 8, 8, 3, 2, "same", "float32"),       # stride 2: no Winograd, no direct, no flipped
    (2, 8, 8, 8, 8, 5, 1, "same", "float64"),       # 5x5: no Winograd
    (2, 6, 6, 12, 10, 1, 1, "valid", "float32"),    # 1x1: no Winograd
]


@pytest.mark.parametrize("N, H, Wd, C, F, K, S, padding, dtype", GRID)
def test_every_route_of_every_pass_matches_the_reference(N, H, Wd, C, F, K, S, padding, dtype, two_threads):
    rng = np.random.default_rng(N * 1000 + C * 10 + F)
    pads = conv_pads(H, Wd, K, K, S, S, padding)
    x, W, b = (rng.standard_normal(s).astype(dtype) for s in ((N, H, Wd, C), (K, K, C, F), (F,)))
    x64, W64, b64 = x.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    y_ref = np.maximum(rconv.conv2d_forward(x64, W64, b64, S, S, pads), 0)       # the forward with bias and relu
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    gy64 = gy.astype(np.float64)
    gx_ref = rconv.conv2d_input_grad(gy64, W64, H, Wd, S, S, pads[0], pads[2])
    gW_ref = rconv.conv2d_weight_grad(x64, gy64, W.shape, S, S, pads)
    eps = np.finfo(dtype).eps
    seen = set()
    for op in ("conv.forward", "conv.input_grad", "conv.weight_grad"):
        names = fconv.candidates(op, C, F, S, S, KH=K, KW=K)
        for name in FW.ROUTE_TILES:
            assert (name in names) == (K == 3 and S == 1 and min(C, F) >= FW.PLAN_MIN_CHANNELS), names
            assert name not in fconv.candidates(op, C, F, S, S)        # the kernel size unknown: never
        for how in names:
            where = f"{op} by {how}, x {x.shape} W {W.shape} stride {S} pads {pads} {dtype}"
            bound = route_bound(op, how, x64, W64, gy64, S, pads, eps)
            if op == "conv.forward":
                got = fconv.forward(x, W, b, S, S, pads, True, how)
                bound = bound + 2 * eps * np.abs(b64)            # the bias: one more rounding of |b|
                assert_within(got, y_ref, bound, where)
            elif op == "conv.input_grad":
                got = fconv.input_grad(gy, W, H, Wd, S, S, pads[0], pads[2], how)
                assert_within(got, gx_ref, bound, where)
                # with a bias (C,) and relu, as a transposed convolution's forward pass runs it
                bc = b64[:1].repeat(C) * np.linspace(-1, 1, C)
                fused = fconv.input_grad(gy, W, H, Wd, S, S, pads[0], pads[2], how, b=bc.astype(dtype), relu=True)
                assert fused.dtype == np.dtype(dtype), where
                assert_within(fused, np.maximum(gx_ref + bc.astype(dtype), 0), bound + 2 * eps * np.abs(bc),
                              where + " with bias and relu")
            else:
                got = fconv.weight_grad(x, gy, W.shape, S, S, pads, how)
                assert_within(got, gW_ref, bound, where)
            assert got.dtype == np.dtype(dtype), where
            seen.add(how)
    assert "im2col" in seen and "im2col/serial" in seen


@pytest.mark.parametrize("route", sorted(FW.ROUTE_TILES))
def test_small_layers_take_winograd_when_the_planner_may_time_it(monkeypatch, two_threads, route):
    """With the candidate threshold at one channel, Winograd's passes on odd, partial-tile sizes."""
    monkeypatch.setattr(FW, "PLAN_MIN_CHANNELS", 1)
    rng = np.random.default_rng(5)
    for (N, H, Wd, C, F, padding) in [(2, 5, 4, 1, 3, "same"), (1, 7, 6, 2, 1, "valid"), (3, 4, 9, 3, 2, "same"),
                                      (2, 11, 6, 2, 2, "valid")]:
        pads = conv_pads(H, Wd, 3, 3, 1, 1, padding)
        x, W = rng.standard_normal((N, H, Wd, C)), rng.standard_normal((3, 3, C, F))
        y_ref = rconv.conv2d_forward(x, W, None, 1, 1, pads)
        gy = rng.standard_normal(y_ref.shape)
        for op, got, want in (
                ("conv.forward", fconv.forward(x, W, None, 1, 1, pads, False, route), y_ref),
                ("conv.input_grad", fconv.input_grad(gy, W, H, Wd, 1, 1, pads[0], pads[2], route),
                 rconv.conv2d_input_grad(gy, W, H, Wd, 1, 1, pads[0], pads[2])),
                ("conv.weight_grad", fconv.weight_grad(x, gy, W.shape, 1, 1, pads, route),
                 rconv.conv2d_weight_grad(x, gy, W.shape, 1, 1, pads))):
            assert route in fconv.candidates(op, C, F, 1, 1, KH=3, KW=3)
            assert_within(got, want, route_bound(op, route, x, W, gy, 1, pads, EPS64),
                          f"{op} by {route}, x {x.shape} W {W.shape} pads {pads}")


@pytest.mark.parametrize("route", sorted(FW.ROUTE_TILES))
def test_pads_beyond_two_fall_back_to_im2col_with_the_same_numbers(two_threads, route):
    """The Winograd kernels take pads 0-2; an explicit larger pad is computed by im2col under the same name."""
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((2, 5, 6, 8)), rng.standard_normal((3, 3, 8, 8))
    pads = (3, 0, 1, 3)
    y = fconv.forward(x, W, None, 1, 1, pads, False, route)
    np.testing.assert_array_equal(y, fconv.forward(x, W, None, 1, 1, pads, False, "im2col"))
    gy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(fconv.input_grad(gy, W, 5, 6, 1, 1, 3, 1, route),
                                  fconv.input_grad(gy, W, 5, 6, 1, 1, 3, 1, "im2col"))
    np.testing.assert_array_equal(fconv.weight_grad(x, gy, W.shape, 1, 1, pads, route),
                                  fconv.weight_grad(x, gy, W.shape, 1, 1, pads, "im2col"))


def _layer_step(x0, W0, b0):
    """Conv2D(relu) forward and backward through the engine: (y, gx, gW, gb)."""
    x, W, b = (nb.Tensor(a.copy(), requires_grad=True) for a in (x0, W0, b0))
    y = nb.functional.conv2d(x, W, b, padding="same", activation="relu")
    (y * y).sum().backward()
    return y.data, x.grad, W.grad, b.grad


def test_winograd_is_planned_and_dispatched_for_all_three_passes(cache):
    """A 32 -> 32 layer: Winograd F(4x4) is the heuristic of all three passes (the gradients by ``winograd.backward``,
    gy's tiles shared); the plan can name either tile for the gradients, or im2col for the forward pass;
    every combination gives the reference tier's numbers."""
    rng = np.random.default_rng(11)
    x0, W0, b0 = rng.standard_normal((2, 6, 6, 32)), 0.2 * rng.standard_normal((3, 3, 32, 32)), rng.standard_normal(32)
    with nb.kernels("reference"):
        want = _layer_step(x0, W0, b0)
    got = _layer_step(x0, W0, b0)                             # no plan file: the heuristics
    assert routes.last("conv2d_forward") == "winograd4"
    assert routes.last("conv2d_backward") == "winograd4"
    for name, g, w, bound in zip(("y", "gx", "gW", "gb"), got, want,
                                 _step_bounds(x0, W0, b0, want[0], "winograd4", "winograd4")):
        assert_within(g, w, bound, f"{name} with the heuristics")
    planner.set_planning("measure", repeats=1)
    _layer_step(x0, W0, b0)
    plans = planner._plans()
    assert sorted(k.split("|")[0] for k in plans) == ["conv.forward", "conv.input_grad", "conv.weight_grad"]
    for k, entry in plans.items():
        assert "winograd" in entry["ms"] and "winograd4" in entry["ms"], k     # timed as candidates of every pass
        assert entry["heuristic"] == "winograd4"
    planner.set_planning("cached")
    for forward_route, grad_route in (("im2col", "winograd"), ("winograd", "winograd4"), ("winograd4", "winograd"),
                                      ("flipped", "im2col/serial")):
        for k in plans:
            plans[k]["route"] = forward_route if k.startswith("conv.forward") else grad_route
        got = _layer_step(x0, W0, b0)
        assert routes.last("conv2d_forward") == f"{forward_route} (planned)"
        # a plan naming the heuristics' own route runs the heuristics' code (both gradients at once)
        kept = grad_route == "winograd4"
        assert routes.last("conv2d_backward") == f"{grad_route} ({'heuristic' if kept else 'planned'})"
        for name, g, w, bound in zip(("y", "gx", "gW", "gb"), got, want,
                                     _step_bounds(x0, W0, b0, want[0], forward_route, grad_route)):
            assert_within(g, w, bound, f"{name} with {forward_route}, {grad_route}")


def _step_bounds(x, W, b, y, forward_route, grad_route):
    """Bounds on (y, gx, gW, gb) of ``_layer_step`` in float64 against the reference tier's.

    y: the forward route's bound (with the bias). The loss sum(y^2) gives gz = 2y [y > 0]
    on both sides, so |dgz| <= 2 |dy| (where the relu mask differs, |y| <= |dy|). Each
    gradient then differs by its route's own bound on gz plus the same linear map of
    |dgz|: gx by input_grad(|dgz|, |W|), gW by weight_grad(|x|, |dgz|), gb by sum |dgz|
    plus a sum of N*OH*OW terms.
    """
    pads = conv_pads(x.shape[1], x.shape[2], 3, 3, 1, 1, "same")
    gz = 2 * np.maximum(y, 0)
    dy = route_bound("conv.forward", forward_route, x, W, gz, 1, pads, EPS64) + 2 * EPS64 * np.abs(b)
    dgz = 2 * dy
    H, Wd = x.shape[1:3]
    gx = (route_bound("conv.input_grad", grad_route, x, W, gz, 1, pads, EPS64)
          + rconv.conv2d_input_grad(dgz, np.abs(W), H, Wd, 1, 1, pads[0], pads[2]))
    gW = (route_bound("conv.weight_grad", grad_route, x, W, gz, 1, pads, EPS64)
          + rconv.conv2d_weight_grad(np.abs(x), dgz, W.shape, 1, 1, pads))
    gb = sum_bound(gz.reshape(-1, gz.shape[-1]), axis=0) + dgz.reshape(-1, gz.shape[-1]).sum(0)
    return dy, gx, gW, gb


@pytest.mark.parametrize("pads, grow", [((1, 1, 1, 1), 0), ((0, 0, 0, 0), 2)])
def test_the_transposed_convolution_takes_the_winograd_routes_of_the_plan(cache, pads, grow):
    """Conv2DTranspose 3x3 stride 1 (8 -> 12 channels): its forward pass is the convolution's input
    gradient, its gradients the convolution's forward pass and weight gradient; each by Winograd."""
    from numbanet.fast import tier as ftier
    rng = np.random.default_rng(7)
    N, H, Wd, F, C = 2, 5, 6, 8, 12                  # x (N, H, W, F) -> y (N, H + grow, W + grow, C)
    x, W = rng.standard_normal((N, H, Wd, F)), rng.standard_normal((3, 3, C, F))
    out_hw = (H + grow, Wd + grow)
    planner.set_planning("measure", repeats=1)
    y = ftier.conv2d_transpose_forward(x, W, None, (1, 1), out_hw, pads)
    gy = rng.standard_normal(y.shape)
    ftier.conv2d_transpose_backward(gy, x, W, y, (1, 1), pads, None)
    plans = planner._plans()
    assert sorted(k.split("|")[0] for k in plans) == ["conv.forward", "conv.input_grad", "conv.weight_grad"]
    for entry in plans.values():
        assert "winograd" in entry["ms"]
        entry["route"] = "winograd"
    planner.set_planning("cached")
    y = ftier.conv2d_transpose_forward(x, W, None, (1, 1), out_hw, pads)
    assert routes.last("conv2d_transpose_forward") == "winograd (planned)"
    assert_within(y, rconv.conv2d_input_grad(x, W, *out_hw, 1, 1, pads[0], pads[2]),
                  route_bound("conv.input_grad", "winograd", np.zeros((N, *out_hw, C)), W, x, 1, pads, EPS64),
                  "transposed forward by winograd")
    gx, gW, _ = ftier.conv2d_transpose_backward(gy, x, W, y, (1, 1), pads, None)
    assert routes.last("conv2d_transpose_backward") == "winograd (planned)"
    # gx = conv(gy, W) (gy the image, F outputs), gW = weight_grad(gy as the image, x as the output gradient)
    assert_within(gx, rconv.conv2d_forward(gy, W, None, 1, 1, pads),
                  route_bound("conv.forward", "winograd", gy, W, x, 1, pads, EPS64), "transposed gx by winograd")
    assert_within(gW, rconv.conv2d_weight_grad(gy, x, W.shape, 1, 1, pads),
                  route_bound("conv.weight_grad", "winograd", gy, W, x, 1, pads, EPS64), "transposed gW by winograd")
