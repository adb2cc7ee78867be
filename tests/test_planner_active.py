"""planner.active(), the hot path's one check, follows every change of mode and of plans.

active() is remembered between calls; each case here compares it, after each change, with
what the planner must answer by its rules (off: never; measure: always; cached: only with
plans), and with the route the tiny dense pass then records (bare when nothing is planned).
"""
import numpy as np
import pytest

from numbanet.fast import dense as fdense
from numbanet.fast import parallel, planner, routes


@pytest.fixture
def cache(plan_cache):
    """The route planner's own cache folder (``plan_cache`` in conftest.py)."""
    return plan_cache


def _tiny_dense_route():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    y = fdense.dense_forward(x, W, b, "tanh")
    np.testing.assert_allclose(y, np.tanh(x @ W + b), rtol=1e-12, atol=1e-12)
    return routes.last("dense_forward")


def _expect(active):
    assert planner.active() is active
    assert planner.active() is active            # the remembered answer
    route = _tiny_dense_route()
    assert (route == "small") is (not active), route


def test_active_follows_modes_and_plans(cache):
    _expect(False)                               # cached, no plan file
    planner.set_planning("off")
    _expect(False)
    planner.set_planning("measure", repeats=1)
    _expect(True)                                # measures the tiny pass: a plan now exists
    assert routes.last("dense_forward").endswith("(planned)")
    planner.set_planning("cached")
    _expect(True)                                # the plans measured above, in memory
    planner.set_planning("off")
    _expect(False)
    planner.reset()                              # a new process: cached mode reads the written file
    assert list(cache.glob("plans-*.json"))
    _expect(True)
    for f in cache.glob("plans-*.json"):
        f.unlink()
    planner.reset()
    _expect(False)                               # cached with no file again


@pytest.mark.parametrize("env, active", [("off", False), ("measure", True), ("cached", False)])
def test_active_reads_the_environment_after_reset(cache, monkeypatch, env, active):
    assert planner.active() is False
    monkeypatch.setenv("NUMBANET_PLANNING", env)
    planner.reset()
    _expect(active)


def _tiny_dense_step(activation="tanh"):
    rng = np.random.default_rng(1)
    x, W, b = (rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32),
               rng.standard_normal(3).astype(np.float32))
    gy = rng.standard_normal((8, 3)).astype(np.float32)
    y = fdense.dense_forward(x, W, b, activation)
    gx, gW, gb = fdense.dense_backward(gy, x, W, y, activation)
    return (y.copy(), gx, gW, gb), routes.last("dense_forward"), routes.last("dense_backward")


def _tiny_keys(x_shape=(8, 5), U=3):
    split = fdense._splittable(x_shape[0])
    return [planner.key(op, x=x_shape, U=U, dtype="float32", split=split) for op in ("dense.forward", "dense.backward")]


def test_a_plan_that_keeps_the_heuristic_runs_the_tiny_code_of_planning_off(cache, monkeypatch):
    """A cached plan naming the tiny Dense's heuristic routes ("small", "serial") must run the same
    code as planning off (the inline tiny path, not the pooled route functions): the same bits,
    forward and backward; only the label says "(planned)"."""
    calls = []
    for name in ("_forward_by", "_backward_by", "_small_forward"):
        real = getattr(fdense, name)
        monkeypatch.setattr(fdense, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    planner.set_planning("off")
    off, fwd, bwd = _tiny_dense_step()
    assert calls == []
    assert (fwd, bwd) == ("small", "serial")
    planner.set_planning("cached")
    kf, kb = _tiny_keys()
    planner._plans()[kf] = {"route": "small", "heuristic": "small", "fastest": "small", "ms": {}}
    planner._plans()[kb] = {"route": "serial", "heuristic": "serial", "fastest": "serial", "ms": {}}
    planner._ACTIVE[0] = None
    assert planner.active()
    on, fwd, bwd = _tiny_dense_step()
    assert (fwd, bwd) == ("small (planned)", "serial (planned)")
    assert calls == []                           # the route functions ran for neither pass
    for a, b_ in zip(off, on):
        np.testing.assert_array_equal(a, b_)


def test_a_plan_that_departs_from_the_heuristic_is_followed_for_a_tiny_dense(cache):
    planner.set_planning("cached")
    kf, _ = _tiny_keys()
    planner._plans()[kf] = {"route": "blas", "heuristic": "small", "fastest": "blas", "ms": {}}
    planner._ACTIVE[0] = None
    (y, *_), fwd, _ = _tiny_dense_step(activation=None)
    assert fwd == "blas (planned)"
    rng = np.random.default_rng(1)
    x, W, b = (rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32),
               rng.standard_normal(3).astype(np.float32))
    ref = x.astype(np.float64) @ W.astype(np.float64) + b
    # float32 products of 5 terms plus the bias: 6 roundings of values bounded by |x||W| + |b|
    bound = 6 * np.finfo(np.float32).eps * (np.abs(x).astype(np.float64) @ np.abs(W) + np.abs(b))
    assert np.all(np.abs(y - ref) <= bound)
