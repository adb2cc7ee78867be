"""The planner's whole-step check (``planner.check_whole_steps``), the backward pass that a plan of
heuristic routes leaves as it is (``planner.departs_conv_backward``), and the routes in ``model.trace``.

The check's decisions are tested on synthetic steps whose time depends on the routes
the planner hands out (sleeps of a few milliseconds, far above timer resolution and
scheduling noise), so that the right verdict is known in advance. The convolutions'
numbers are compared with the heuristics' (planning "off") and within the rounding
bound of the weight gradient's sum (tests/bounds.py).
"""
import json
import time

import numpy as np
import pytest

import numbanet as nb
from bounds import assert_within, bilinear_bound, sum_bound
from numbanet.fast import parallel, planner, routes
from numbanet.reference import conv as rconv

K1, K2 = "fake.pass|n=1|threads=2", "fake.pass|n=2|threads=2"


@pytest.fixture
def cache(plan_cache):
    """The route planner's own cache folder (``plan_cache`` in conftest.py)."""
    return plan_cache


def _entries(**gains):
    """Plans for K1, K2 as ``choose`` writes them: route "serial" won its pass by ``gain`` over "split"."""
    plans = planner._plans()
    for k, gain in zip((K1, K2), gains.values()):
        plans[k] = {"route": "serial", "heuristic": "split", "fastest": "serial",
                    "ms": {"serial": 1.0, "split": float(gain)}}
    return plans


def _step(costs):
    """A training step of two passes, each sleeping ``costs[key][route]`` ms for the route the planner gives it."""
    def step():
        for k in (K1, K2):
            route, planned = planner.choose(k, "split", ["split", "serial"], None)
            assert planned                                   # every key has a plan: nothing is measured
            time.sleep(costs[k][route] / 1e3)
    return step


def test_a_plan_that_loses_the_whole_step_is_replaced_by_the_heuristics(cache):
    planner.set_planning("measure")
    plans = _entries(a=1.5, b=1.5)                           # both passes won alone...
    step = _step({K1: {"serial": 6, "split": 1}, K2: {"serial": 6, "split": 1}})   # ...and lose in the step
    check = planner.check_whole_steps("Wx", step, [K1, K2], rounds=2, steps=2)
    assert check["kept"] == "heuristics" and check["changed"] == 0 and check["passes"] == 2
    assert set(check["ms"]) == {"heuristics", "plan"}       # the confident variant is the plan here
    assert check["ms"]["plan"] >= 10 and check["ms"]["heuristics"] < check["ms"]["plan"]
    assert check["steps"] == 4
    assert all(plans[k]["route"] == "split" and plans[k]["fastest"] == "serial" for k in (K1, K2))
    assert planner.get_planning() == "measure"               # the mode is given back
    data = json.loads(planner.plan_path().read_text())
    assert data["checks"]["Wx"]["kept"] == "heuristics" and data["plans"][K1]["route"] == "split"
    planner.reset()                                          # a new process reads the verdict
    assert planner.choose(K1, "split", ["split", "serial"], None) == ("split", True)
    text = str(planner.plan())
    assert "not kept by the whole-step check of Wx" in text
    assert "Wx: heuristics" in text and "-> kept heuristics (0 of 2 passes off the heuristic's route)" in text


def test_a_plan_that_wins_the_whole_step_is_kept(cache):
    planner.set_planning("measure")
    plans = _entries(a=1.5, b=1.5)
    step = _step({K1: {"serial": 1, "split": 6}, K2: {"serial": 1, "split": 6}})
    check = planner.check_whole_steps("Wy", step, [K1, K2], rounds=2, steps=2)
    assert check["kept"] == "plan" and check["changed"] == 2
    assert check["ms"]["heuristics"] >= 10 and check["ms"]["plan"] < check["ms"]["heuristics"]
    assert all(plans[k]["route"] == "serial" for k in (K1, K2))
    assert "Wy: heuristics" in str(planner.plan())


def test_the_confident_variant_keeps_only_the_passes_won_by_a_clear_margin(cache):
    planner.set_planning("measure")
    plans = _entries(a=2.0, b=1.02)                          # K1 won its pass clearly, K2 by 2%
    step = _step({K1: {"serial": 1, "split": 6}, K2: {"serial": 6, "split": 1}})
    check = planner.check_whole_steps("Wz", step, [K1, K2], rounds=2, steps=2)
    assert set(check["ms"]) == {"heuristics", "plan", "confident"}
    assert check["kept"] == "confident" and check["changed"] == 1
    assert plans[K1]["route"] == "serial" and plans[K2]["route"] == "split"


def test_a_tie_keeps_the_heuristics(cache):
    planner.set_planning("measure")
    plans = _entries(a=1.5, b=1.5)
    step = _step({K1: {"serial": 3, "split": 3}, K2: {"serial": 3, "split": 3}})
    check = planner.check_whole_steps("Wt", step, [K1, K2], rounds=2, steps=2, margin=0.2)
    assert check["kept"] == "heuristics" and all(plans[k]["route"] == "split" for k in (K1, K2))


def test_a_plan_must_win_both_the_median_and_the_fastest_step(cache, monkeypatch):
    """Step times given by hand (a fake clock): the plan's median is 10% lower, its fastest step slower."""
    planner.set_planning("measure")
    plans = _entries(a=1.5, b=1.5)
    clock = {"now": 0.0}
    monkeypatch.setattr(planner.time, "perf_counter", lambda: clock["now"])
    spans = {"split": iter([10.0, 10.0, 5.0, 10.0] * 3), "serial": iter([9.0, 9.0, 9.0, 9.0] * 3)}

    def step():                        # each step advances the clock by the next span of its variant
        clock["now"] += next(spans[planner.choose(K1, "split", ["split", "serial"], None)[0]]) / 1e3
    check = planner.check_whole_steps("Wm", step, [K1, K2], rounds=2, steps=2)
    assert check["ms"] == {"heuristics": 10.0, "plan": 9.0} and check["min_ms"] == {"heuristics": 5.0, "plan": 9.0}
    # rounds: heuristics [10, 5] and [10, 10], plan [9, 9] twice: ratios 9/7.5 and 9/10, median 1.05
    assert check["ratio"] == {"heuristics": 1.0, "plan": 1.05}
    assert check["kept"] == "heuristics"
    spans = {"split": iter([10.0] * 6), "serial": iter([9.0] * 6)}
    planner._plans()[K1]["route"] = planner._plans()[K2]["route"] = "serial"
    assert planner.check_whole_steps("Wm", step, [K1, K2], rounds=2, steps=2)["kept"] == "plan"


def test_the_ratio_is_paired_by_round_so_a_slow_spell_cancels(cache, monkeypatch):
    """The second round runs 3x slower for every variant (another job starts): within each round the
    plan takes 0.9 of the heuristics' time, and the paired ratio is exactly that."""
    planner.set_planning("measure")
    _entries(a=1.5, b=1.5)
    clock = {"now": 0.0, "steps": 0}
    monkeypatch.setattr(planner.time, "perf_counter", lambda: clock["now"])

    def step():
        route = planner.choose(K1, "split", ["split", "serial"], None)[0]
        clock["steps"] += 1
        slow = 3.0 if 7 <= clock["steps"] <= 10 else 1.0     # steps 1-2 warm up, 3-6 round 0, 7-10 round 1
        clock["now"] += slow * (10.0 if route == "split" else 9.0) / 1e3
    check = planner.check_whole_steps("Wp", step, [K1, K2], rounds=3, steps=2)
    assert check["ratio"]["plan"] == pytest.approx(0.9) and check["kept"] == "plan"
    assert check["ms"] == {"heuristics": 10.0, "plan": 9.0} and check["min_ms"] == {"heuristics": 10.0, "plan": 9.0}


def test_nothing_is_timed_where_every_plan_is_the_heuristic(cache):
    planner.set_planning("measure")
    plans = _entries(a=1.5, b=1.5)
    for k in (K1, K2):
        plans[k].update(route="split", fastest="split")

    def step():
        raise AssertionError("timed a step with nothing to decide")
    check = planner.check_whole_steps("Wn", step, [K1, K2, "no|such|key"])
    assert check == {"ms": {}, "min_ms": {}, "ratio": {}, "kept": "heuristics", "passes": 2, "changed": 0,
                     "steps": planner.CHECK_ROUNDS * planner.CHECK_STEPS}
    assert "Wn: no pass off the heuristics to check -> kept heuristics" in str(planner.plan())


# ------------------------------------------------ the backward pass of a plan that keeps the heuristics
def _layer_step(op, x_shape, W_shape, seed, **kwargs):
    """(step function, x, W) of y = op(x, W, b, **kwargs) with random float32 x, W, b (b: W's
    output-side axis) and the loss sum(y^2); the step returns (y, x.grad, W.grad, b.grad)."""
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(x_shape).astype("float32")
    W0 = rng.standard_normal(W_shape).astype("float32")
    b0 = rng.standard_normal(W_shape[2] if op is nb.functional.conv2d_transpose else W_shape[3]).astype("float32")

    def step():
        x, W, b = (nb.Tensor(a.copy(), requires_grad=True) for a in (x0, W0, b0))
        y = op(x, W, b, **kwargs)
        (y * y).sum().backward()
        return y.data, x.grad, W.grad, b.grad
    return step, x0, W0


def _direct_layer():
    """Conv2D(1 -> 5, relu, bias), a layer on the direct route: (step function, x, W)."""
    return _layer_step(nb.functional.conv2d, (6, 9, 8, 1), (3, 3, 1, 5), 2, padding="same", activation="relu")


def _plans_of_the_heuristics(step):
    """Plan every pass of ``step`` ("measure", one repetition), set each plan to its heuristic's route, and
    switch to "cached"; returns the plans (a dict the test may edit further)."""
    planner.set_planning("measure", repeats=1)
    step()
    plans = planner._plans()
    assert sorted(k.split("|")[0] for k in plans) == ["conv.forward", "conv.input_grad", "conv.weight_grad"]
    for entry in plans.values():
        entry["route"] = entry["heuristic"]
    planner.set_planning("cached")
    return plans


def test_a_plan_of_heuristic_routes_runs_the_fused_direct_backward(cache):
    from numbanet.fast import conv as fast_conv
    gx_way = fast_conv._backward_input_route((6, 9, 8, 1), (3, 3, 1, 5), (1, 1), (1, 1, 1, 1))   # "direct": inside the walk
    assert gx_way == "direct"
    step, x0, W0 = _direct_layer()
    planner.set_planning("off")
    off = step()
    assert routes.last("conv2d_backward") == "direct"
    plans = _plans_of_the_heuristics(step)
    kept = step()
    assert routes.last("conv2d_backward") == "direct (heuristic)"       # the one fused walk, as with "off"
    assert not planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct",
                                             True, True, gx_way)
    for a, b in zip(kept, off):
        np.testing.assert_array_equal(a, b)                             # the same code: the same bits

    gW_key = next(k for k in plans if k.startswith("conv.weight_grad"))
    plans[gW_key]["route"] = "im2col"                                   # one gradient off the heuristic
    assert planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct",
                                         True, True, gx_way)
    assert not planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct",
                                             True, False, gx_way)      # gW not needed: still fused
    y, gx, gW, gb = step()
    assert routes.last("conv2d_backward") == f"gx {gx_way}, gW im2col (planned)"
    np.testing.assert_array_equal(y, off[0])
    np.testing.assert_array_equal(gx, off[1])            # the same direct loops on the same gz
    gz = 2 * off[0].astype(np.float64)                  # the same on both sides: y >= 0 after the relu
    # gb: the sum of gz over N*H*W pixels, by the direct walk or by a matrix-vector product
    assert_within(gb, off[3], sum_bound(gz.reshape(-1, 5), axis=0, eps=np.finfo(np.float32).eps), "gb")
    # gW: one sum of N*H*W products per weight, in another order
    mag = rconv.conv2d_weight_grad(np.abs(x0.astype(np.float64)), gz, W0.shape, 1, 1, (1, 1, 1, 1))
    assert_within(gW, off[2], bilinear_bound(mag, x0.shape[0] * 9 * 8, np.finfo(np.float32).eps), "gW by im2col")


def test_a_plan_of_heuristic_routes_runs_the_transposed_planes_walk(cache):
    """Conv2DTranspose(4 -> 8, relu) on the planes route: with plans that name the heuristics' routes its
    backward is the one planes walk (gx, gW, gb, the relu mask on the way), the same bits as planning "off";
    a gW plan on another route makes it run pass by pass."""
    from numbanet.fast import conv as fast_conv
    assert fast_conv.route(8, 4, 1, 1) == "planes"          # W (3, 3, 8, 4) read as a convolution 8 -> 4
    step, x0, W0 = _layer_step(nb.functional.conv2d_transpose, (5, 6, 7, 4), (3, 3, 8, 4), 3, activation="relu")
    planner.set_planning("off")
    off = step()
    assert routes.last("conv2d_transpose_backward") == "planes"
    plans = _plans_of_the_heuristics(step)
    kept = step()
    assert routes.last("conv2d_transpose_backward") == "planes (heuristic)"
    for a, b in zip(kept, off):
        np.testing.assert_array_equal(a, b)                             # the same code: the same bits
    gW_key = next(k for k in plans if k.startswith("conv.weight_grad"))
    plans[gW_key]["route"] = "im2col"
    y, gx, gW, gb = step()
    assert routes.last("conv2d_transpose_backward") == "gx planes, gW im2col (planned)"
    np.testing.assert_array_equal(y, off[0])
    gz = 2 * off[0].astype(np.float64)                                  # >= 0 after the relu: its own mask
    eps = np.finfo(np.float32).eps
    assert_within(gb, off[3], 2 * sum_bound(gz.reshape(-1, 8), axis=0, eps=eps), "gb")
    # gW: the convolution (7, 9) -> (5, 7) that W is read as, with gz as its input: one sum of
    # N*5*7 products per weight, in another order by each route
    mag = rconv.conv2d_weight_grad(gz, np.abs(x0.astype(np.float64)), W0.shape, 1, 1, (0, 0, 0, 0))
    assert_within(gW, off[2], 2 * bilinear_bound(mag, x0.shape[0] * x0.shape[1] * x0.shape[2], eps), "gW by im2col")


def test_measure_mode_plans_the_backward_of_an_unplanned_layer(cache):
    step, x0, W0 = _direct_layer()
    planner.set_planning("measure", repeats=1)
    assert planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct", True, True)
    planner.set_planning("cached")                       # no plan: the heuristics, fused
    assert not planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct",
                                             True, True)
    planner.set_planning("off")
    assert not planner.departs_conv_backward(x0.shape, W0.shape, (1, 1), (1, 1, 1, 1), np.float32, "direct",
                                             True, True)


# ------------------------------------------------ the routes in model.trace
def test_model_trace_shows_planned_and_heuristic_routes(cache):
    L = nb.layers
    model = nb.models.Sequential([L.Input((9, 9, 1)), L.Conv2D(4, 3, activation="relu", padding="same"),
                                  L.Conv2D(4, 3, padding="same"), L.Flatten(), L.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 9, 9, 1)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    planner.set_planning("measure", repeats=1)
    model.train_step(x, y)
    plans = planner._plans()
    for k, entry in plans.items():        # the second convolution: a planned route; everything else: dropped
        if "W=3x3x4x4" in k and k.startswith("conv."):
            entry["route"] = "im2col/serial"
    for k in [k for k in plans if "W=3x3x4x4" not in k]:
        del plans[k]
    planner.set_planning("cached")
    rows = {(line.split()[1], line.split()[3]): line for line in str(model.trace(x, y)).splitlines()
            if line[:1].isdigit() and " Conv2D " in line}
    first, second = (layer.name for layer in model.layers if isinstance(layer, L.Conv2D))
    assert "im2col/serial (planned)" in rows[("fwd", second)]
    assert "im2col/serial (planned)" in rows[("bwd", second)]
    from numbanet.fast import conv as fast_conv             # the first layer's forward: planes (one channel)
    assert f"{fast_conv.forward_route(1, 4, 1, 1)} (heuristic)" in rows[("fwd", first)]
    assert "direct (heuristic)" in rows[("bwd", first)]
