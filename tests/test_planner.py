"""The route planner (numbanet/fast/planner.py): every candidate route computes the same numbers,
the plan file round-trips, a bad file is ignored with a warning, "off" leaves the file alone,
`numbanet tune` writes a plan that the next run loads, and the chosen route is recorded.

The candidates are checked against the reference tier (numbanet/reference/conv.py, plain NumPy)
in float64 arithmetic, within the rounding bound of a sum of that many products (tests/bounds.py).
"""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from bounds import assert_within, bilinear_bound, matmul_bound
from numbanet.engine.conv_shapes import conv_pads
from numbanet.fast import conv as fconv
from numbanet.fast import dense as fdense
from numbanet.fast import parallel, planner, routes, tuning
from numbanet.fast import winograd as FW
from numbanet.reference import conv as rconv
from test_planner_routes import route_bound

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(plan_cache):
    """The route planner's own cache folder (``plan_cache`` in conftest.py)."""
    return plan_cache


def _conv_case(draw_dims):
    N, H, Wd, C, F, K, S, padding, dtype = draw_dims
    rng = np.random.default_rng(N * 1000 + H * 100 + C * 10 + F)
    pads = conv_pads(H, Wd, K, K, S, S, padding)
    x = rng.standard_normal((N, H, Wd, C)).astype(dtype)
    W = rng.standard_normal((K, K, C, F)).astype(dtype)
    return x, W, pads


conv_dims = st.tuples(st.integers(1, 5), st.integers(3, 9), st.integers(3, 9), st.sampled_from([1, 2, 3, 6, 17]),
                      st.sampled_from([1, 2, 5, 8]), st.sampled_from([1, 2, 3]), st.sampled_from([1, 2]),
                      st.sampled_from(["valid", "same"]), st.sampled_from(["float64", "float32"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dims=conv_dims)
def test_every_convolution_route_matches_the_reference(dims, two_threads):
    x, W, pads = _conv_case(dims)
    (N, H, Wd, C), (K, _, _, F), S = x.shape, W.shape, dims[6]
    assume(H + pads[0] + pads[1] >= K and Wd + pads[2] + pads[3] >= K)
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    eps = np.finfo(x.dtype).eps
    y_ref = rconv.conv2d_forward(x64, W64, None, S, S, pads)
    gy = np.random.default_rng(1).standard_normal(y_ref.shape).astype(x.dtype)
    gy64 = gy.astype(np.float64)
    gx_ref = rconv.conv2d_input_grad(gy64, W64, H, Wd, S, S, pads[0], pads[2])
    gW_ref = rconv.conv2d_weight_grad(x64, gy64, W.shape, S, S, pads)
    # the same bilinear operations on |inputs| give sum|terms| of every output
    y_mag = rconv.conv2d_forward(abs(x64), abs(W64), None, S, S, pads)
    gx_mag = rconv.conv2d_input_grad(abs(gy64), abs(W64), H, Wd, S, S, pads[0], pads[2])
    gW_mag = rconv.conv2d_weight_grad(abs(x64), abs(gy64), W.shape, S, S, pads)
    OH, OW = y_ref.shape[1:3]
    for op in ("conv.forward", "conv.input_grad", "conv.weight_grad"):
        names = fconv.candidates(op, C, F, S, S, KH=K, KW=K)
        assert "im2col" in names and "im2col/serial" in names
        assert ("direct" in names) == (S == 1 and min(C, F) <= tuning.PLAN_DIRECT_MAX_CHANNELS)
        for how in names:
            where = f"{op} by {how}, x {x.shape} W {W.shape} stride {S} pads {pads} {x.dtype}"
            winograd = how in FW.ROUTE_TILES      # its own bound: tests/test_planner_routes.py
            if op == "conv.forward":
                got = fconv.forward(x, W, None, S, S, pads, False, how)
                bound = bilinear_bound(y_mag, K * K * C, eps)
                want = y_ref
            elif op == "conv.input_grad":
                got = fconv.input_grad(gy, W, H, Wd, S, S, pads[0], pads[2], how)
                bound = bilinear_bound(gx_mag, K * K * F, eps)
                want = gx_ref
            else:
                got = fconv.weight_grad(x, gy, W.shape, S, S, pads, how)
                bound = bilinear_bound(gW_mag, N * OH * OW, eps)
                want = gW_ref
            if winograd:
                bound = route_bound(op, how, x64, W64, gy64, S, pads, eps)
            assert_within(got, want, bound, where)
            assert got.dtype == x.dtype, where


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 70), D=st.integers(1, 40), U=st.integers(1, 40),
       activation=st.sampled_from([None, "tanh", "relu", "sigmoid"]))
def test_every_dense_route_matches_numpy(B, D, U, activation, two_threads):
    rng = np.random.default_rng(B * D * U)
    x, W, b = rng.standard_normal((B, D)), rng.standard_normal((D, U)), rng.standard_normal(U)
    z = x @ W + b
    f = {None: lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
         "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[activation]
    y_ref = f(z)
    # |f(z1) - f(z2)| <= |z1 - z2| for all four (slopes at most 1), plus a few roundings of f itself
    bound = matmul_bound(x, W, b) + 8 * np.finfo(float).eps * (np.abs(y_ref) + 1)
    gy = rng.standard_normal((B, U))
    for how in ("small", "blas", "split"):
        assert_within(fdense._forward_by(how, x, W, b, activation), y_ref, bound, f"dense forward by {how}")
        gx, gW = fdense._backward_by("serial" if how == "small" else how, gy, x, W, True)
        assert_within(gx, gy @ W.T, matmul_bound(gy, W.T), f"dense gx by {how}")
        assert_within(gW, x.T @ gy, matmul_bound(x.T, gy), f"dense gW by {how}")


def _conv_step(seed=0, C=3, F=5):
    """One conv2d forward and backward through the engine; returns (y, gx, gW) as arrays."""
    rng = np.random.default_rng(seed)
    x = nb.Tensor(rng.standard_normal((4, 9, 9, C)).astype("float32"), requires_grad=True)
    W = nb.Tensor(rng.standard_normal((3, 3, C, F)).astype("float32"), requires_grad=True)
    y = nb.functional.conv2d(x, W, padding="same")
    (y * y).sum().backward()
    return y.data, x.grad, W.grad


def test_measure_writes_a_plan_that_cached_mode_loads(cache):
    planner.set_planning("measure", repeats=1)
    y1, gx1, gW1 = _conv_step()
    files = list(cache.glob("plans-*.json"))
    assert len(files) == 1 and files[0].name == f"plans-{planner.machine_key()}.json"
    data = json.loads(files[0].read_text())
    assert data["machine"] == planner.machine() and data["format"] == planner.FORMAT
    ops = sorted(k.split("|")[0] for k in data["plans"])
    assert ops == ["conv.forward", "conv.input_grad", "conv.weight_grad"]
    for k, entry in data["plans"].items():
        assert entry["route"] in entry["ms"] and entry["ms"][entry["route"]] == min(entry["ms"].values())
        assert "x=4x9x9x3" in k and "W=3x3x3x5" in k and "threads=2" in k
    assert routes.last("conv2d_forward").endswith(" (planned)")

    planner.reset()                                     # a new process: cached mode reads the file
    assert planner.get_planning() == "cached"
    before = files[0].stat().st_mtime_ns
    y2, gx2, gW2 = _conv_step()
    assert files[0].stat().st_mtime_ns == before        # nothing measured, nothing written
    forward_route = data["plans"][next(k for k in data["plans"] if k.startswith("conv.forward"))]["route"]
    assert routes.last("conv2d_forward") == f"{forward_route} (planned)"
    assert "planned" in routes.last("conv2d_backward")
    # the plan changes the route, never the numbers beyond float32 rounding
    planner.set_planning("off")
    y3, gx3, gW3 = _conv_step()
    for a, b in ((y2, y3), (gx2, gx3), (gW2, gW3)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    for a, b in ((y1, y3), (gx1, gx3), (gW1, gW3)):     # the measuring step returned the winner's numbers
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    assert "mode 'off'" in str(planner.plan())


def test_plan_prints_each_pass_and_its_route(cache):
    planner.set_planning("measure", repeats=1)
    _conv_step()
    text = str(planner.plan())
    assert str(cache) in text and "3 planned passes" in text
    lines = text.splitlines()
    for entry_key, entry in planner.plan().entries.items():
        op, shapes = entry_key.split("|", 1)
        header = lines.index(f"  {op}: shapes -> route ms | heuristic ms | heuristic/route")
        at = lines.index(f"    {shapes.replace('|', ' ')}", header)  # under the op: shapes, then the route
        route, heuristic, ms = entry["route"], entry["heuristic"], entry["ms"]
        assert lines[at + 1].startswith(f"      -> {route} {ms[route]:.3f} ms")
        if route == heuristic:
            assert lines[at + 1].endswith("(the heuristic's)")
        else:
            assert f"| {heuristic} {ms[heuristic]:.3f} ms | {ms[heuristic] / ms[route]:.2f}x" in lines[at + 1]


@pytest.mark.parametrize("content, why", [
    ("{not json", "Expecting property name"),
    (json.dumps({"format": 99, "machine": {}, "plans": {}}), "format"),
    (json.dumps({"format": 1, "machine": {"cpu": "another CPU"}, "plans": {}}), "another machine"),
    ("checks", "its 'checks' are not"),
])
def test_a_corrupt_or_foreign_plan_file_is_ignored_with_a_warning(cache, content, why):
    cache.mkdir(parents=True)
    path = cache / f"plans-{planner.machine_key()}.json"
    if content == "checks":             # this machine's file, a whole-step check without its figures
        content = json.dumps({"format": 1, "machine": planner.machine(), "plans": {}, "checks": {"W2": {"kept": 1}}})
    path.write_text(content)
    planner.reset()
    with pytest.warns(UserWarning, match=why):
        _conv_step()
    assert routes.last("conv2d_forward") == fconv.route(3, 5, 1, 1)   # the heuristic's, unlabelled: no plans
    assert path.read_text() == content                                # cached mode writes nothing


def test_a_plan_naming_an_unknown_route_falls_back_to_the_heuristic(cache):
    planner.set_planning("measure", repeats=1)
    _conv_step()
    path = planner.plan_path()
    data = json.loads(path.read_text())
    for entry in data["plans"].values():
        entry["route"] = "no-such-route"
    path.write_text(json.dumps(data))
    planner.reset()
    _conv_step()
    assert routes.last("conv2d_forward") == f"{fconv.route(3, 5, 1, 1)} (heuristic)"


def test_off_never_reads_or_writes_the_plan_file(cache, monkeypatch):
    monkeypatch.setenv("NUMBANET_PLANNING", "off")
    cache.mkdir(parents=True)
    path = cache / f"plans-{planner.machine_key()}.json"
    path.write_text("{corrupt")             # read, it would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _conv_step()
        print(planner.plan())
    assert os.listdir(cache) == [path.name] and path.read_text() == "{corrupt"
    assert routes.last("conv2d_forward") == fconv.route(3, 5, 1, 1)


def test_an_unwritable_cache_keeps_plans_in_memory(cache, monkeypatch):
    blocked = cache.parent / "blocked"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(planner.Path, "home", staticmethod(lambda: blocked))
    planner.reset()
    planner.set_planning("measure", repeats=1)
    _conv_step()
    assert planner.plan_path() is None and len(planner.plan().entries) == 3
    assert "(memory only)" in str(planner.plan())


def test_a_route_added_by_name_is_planned_and_dispatched(cache):
    calls = []

    def by_reference(x, W, b, SH, SW, pads, relu):
        calls.append(x.shape)
        y = rconv.conv2d_forward(x, W, b, SH, SW, pads)
        return np.maximum(y, 0) if relu else y

    planner.add_route("conv.forward", "textbook", by_reference, applies=lambda C, F, **_: C == 3)
    try:
        assert "textbook" in fconv.candidates("conv.forward", 3, 5, 1, 1)
        assert "textbook" not in fconv.candidates("conv.forward", 4, 5, 1, 1)
        planner.set_planning("measure", repeats=1)
        _conv_step()
        key = next(k for k in planner.plan().entries if k.startswith("conv.forward"))
        assert "textbook" in planner.plan().entries[key]["ms"] and calls
        planner._plans()[key]["route"] = "textbook"     # as if it had won on this machine
        calls.clear()
        y, _, _ = _conv_step()
        assert routes.last("conv2d_forward") == "textbook (planned)" and calls == [(4, 9, 9, 3)]
    finally:
        planner.ROUTES["conv.forward"].pop("textbook", None)    # the other added routes (winograd) stay


def test_dense_routes_are_planned_and_recorded(cache):
    planner.set_planning("measure", repeats=1)
    x = nb.Tensor(np.random.default_rng(0).standard_normal((64, 300)).astype("float32"), requires_grad=True)
    layer = nb.layers.Dense(200, activation="relu")
    layer(x).sum().backward()
    entries = planner.plan().entries
    assert any(k.startswith("dense.forward|x=64x300|U=200") for k in entries)
    assert routes.last("dense_forward").endswith(" (planned)")


def test_bad_modes_are_refused():
    with pytest.raises(ValueError, match="off, cached, measure"):
        nb.set_planning("fast")
    with pytest.raises(ValueError, match="repeats"):
        nb.set_planning("measure", repeats=0)


def test_an_unknown_mode_in_the_environment_turns_planning_off(monkeypatch):
    monkeypatch.setenv("NUMBANET_PLANNING", "sometimes")
    planner.reset()
    try:
        with pytest.warns(UserWarning, match="NUMBANET_PLANNING"):
            assert planner.get_planning() == "off"
    finally:
        planner.reset()


def _tune(cache_home, *args):
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home), PYTHONPATH=str(ROOT), NUMBANET_KEEP_BLAS="1")
    env.pop("NUMBANET_PLANNING", None)
    return subprocess.run([sys.executable, "-m", "numbanet.cli", "tune", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_tune_writes_a_plan_and_a_second_run_loads_it(tmp_path):
    first = _tune(tmp_path, "--workloads", "W1", "--quick")
    assert first.returncode == 0, first.stderr
    files = list((tmp_path / "numbanet").glob("plans-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    planned, check = data["plans"], data["checks"]["W1"]
    assert planned and all(k.startswith("dense.") for k in planned)
    assert "0 plans loaded" in first.stdout and f"W1       {len(planned)} passes planned" in first.stdout
    # the whole-step check ran (or had nothing to decide) and the file keeps its verdict
    assert check["passes"] == len(planned) and check["kept"] in ("heuristics", "plan", "confident")
    kept_off = sum(e["route"] != e["heuristic"] for e in planned.values())
    assert check["changed"] == kept_off and (kept_off == 0 or check["kept"] != "heuristics")
    assert "W1       whole step" in first.stdout and f"kept {check['kept']}" in first.stdout
    second = _tune(tmp_path, "--workloads", "W1", "--quick")
    assert second.returncode == 0, second.stderr
    assert f"{len(planned)} plans loaded from {files[0]}" in second.stdout
    assert "W1       0 passes planned" in second.stdout
    fresh = _tune(tmp_path, "--workloads", "W1", "--quick", "--fresh", "--rounds", "0")
    assert fresh.returncode == 0, fresh.stderr
    assert "(--fresh: forgotten)" in fresh.stdout and f"W1       {len(planned)} passes planned" in fresh.stdout
    assert "whole step" not in fresh.stdout                      # --rounds 0: no check
    shown = _tune(tmp_path, "--show")
    assert shown.returncode == 0 and all(k.split("|", 1)[1].replace("|", " ") in shown.stdout for k in planned)
    bad = _tune(tmp_path, "--workloads", "W1", "--sped", "3")
    assert bad.returncode == 2 and "--sped" in bad.stderr
    unknown = _tune(tmp_path, "--workloads", "W9")
    assert unknown.returncode == 2 and "unknown workload 'W9'" in unknown.stderr and "W2-sgd" in unknown.stderr


def test_the_trace_shows_the_planned_route(cache):
    planner.set_planning("measure", repeats=1)
    _conv_step()                                       # plans the three passes
    planner.set_planning("cached")
    rng = np.random.default_rng(0)
    x = nb.Tensor(rng.standard_normal((4, 9, 9, 3)).astype("float32"), requires_grad=True)
    W = nb.Tensor(rng.standard_normal((3, 3, 3, 5)).astype("float32"), requires_grad=True)
    text = str(nb.trace(lambda x, W: nb.functional.conv2d(x, W, padding="same"), x, W))
    forward = planner.plan().entries[next(k for k in planner.plan().entries if k.startswith("conv.forward"))]
    assert f"{forward['route']} (planned)" in text


@pytest.mark.parametrize("C, F, padding", [(3, 5, "same"), (8, 2, "valid"), (1, 4, "valid")])
def test_planned_transposed_convolutions_match_the_reference_tier(cache, C, F, padding):
    rng = np.random.default_rng(C * F)
    x0 = rng.standard_normal((3, 5, 6, C))
    W0 = rng.standard_normal((3, 3, F, C))

    def step():
        x, W = nb.Tensor(x0.copy(), requires_grad=True), nb.Tensor(W0.copy(), requires_grad=True)
        y = nb.functional.conv2d_transpose(x, W, padding=padding)
        (y * y).sum().backward()
        return y.data, x.grad, W.grad

    planner.set_planning("measure", repeats=1)
    planned = step()
    assert routes.last("conv2d_transpose_forward").endswith(" (planned)")
    assert "planned" in routes.last("conv2d_transpose_backward")
    with nb.kernels("reference"):
        reference = step()
    # Every output is a float64 sum of n products; |y| <= y_max = 9C max|x| max|W|, so y differs
    # by at most 2*9C*eps*y_max, gy = 2y by twice that, and a gradient (9F terms for gx, at most
    # N*H*W for gW) by n times its factor's maximum times gy's error, plus its own rounding:
    # within 2 * n * eps * (2 y_max * max|factor|) * (1 + 9C) for all three.
    eps = np.finfo(np.float64).eps
    y_max = 9 * C * np.abs(x0).max() * np.abs(W0).max()
    sizes = {"y": 9 * C, "gx": 9 * F, "gW": x0.size}
    scales = {"y": y_max, "gx": 2 * y_max * np.abs(W0).max(), "gW": 2 * y_max * np.abs(x0).max()}
    for name, got, want in zip(("y", "gx", "gW"), planned, reference):
        bound = 2 * sizes[name] * eps * scales[name] * (1 + 9 * C)
        assert_within(got, want, bound, f"{name} of the planned transposed convolution")


def test_cached_mode_without_a_plan_file_creates_nothing_and_keeps_the_heuristics(cache):
    _conv_step()
    assert not cache.exists()
    assert routes.last("conv2d_forward") == fconv.route(3, 5, 1, 1)


def test_xdg_cache_home_wins_over_home_and_home_is_the_fallback(cache, monkeypatch, tmp_path):
    home = tmp_path / "home"
    (home / ".cache" / "numbanet").mkdir(parents=True)
    monkeypatch.setattr(planner.Path, "home", staticmethod(lambda: home))
    planner.reset()
    assert planner.plan_path() == cache / f"plans-{planner.machine_key()}.json"   # not made yet, still first
    monkeypatch.delenv("XDG_CACHE_HOME")
    planner.reset()
    assert planner.plan_path() == home / ".cache" / "numbanet" / f"plans-{planner.machine_key()}.json"
