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
