"""The tiny dense passes of the fast tier and Dense's direct Linear node.

* dense_backward's gz = gy f'(z) and bias gradient, by the kernels (kernels/dense_small.py) and
  by NumPy (both ways, ``kernels`` fixture), against the reference tier within bounds
  (tests/bounds.py), with NaN / infinity where NumPy has them, without the bias, and with a
  gradient of another dtype; the forward's bias add is NumPy's bits both ways.
* The kernels are used only once Numba is set up in the process (a fresh process checks).
* Dense makes the same graph as F.linear: one Linear node for None/"linear"/tanh/relu/sigmoid,
  Linear then the activation's own node otherwise; its output and gradients equal the reference
  tier's within bounds.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numbanet as nb
from bounds import assert_within, elementwise_bound, matmul_bound, sum_bound
from numbanet.engine import functional as F
from numbanet.fast import dense as fdense
from numbanet.fast import routes
from numbanet.fast import tier as fast_tier
from numbanet.reference import tier as ref_tier

ACTS = ["tanh", "relu", "sigmoid"]


@pytest.fixture(autouse=True, params=[True, False], ids=["kernels", "numpy"])
def kernels(request):
    before = fdense.USE_KERNELS[0]
    fdense.USE_KERNELS[0] = request.param
    yield request.param
    fdense.USE_KERNELS[0] = before


def _case(rng, B, D, U, dt, act):
    x = rng.standard_normal((B, D)).astype(dt)
    W = rng.standard_normal((D, U)).astype(dt)
    b = rng.standard_normal(U).astype(dt)
    y = ref_tier.dense_forward(x, W, b, act)
    gy = rng.standard_normal((B, U)).astype(dt)
    return x, W, b, y, gy


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("need_gb", [True, False])
def test_small_backward_matches_reference(dt, act, need_gb):
    rng = np.random.default_rng(ACTS.index(act) * 2 + need_gb)
    e = float(np.finfo(dt).eps)
    for B, D, U in ((20, 10, 10), (20, 1, 10), (3, 4, 1), (1, 1, 1)):
        x, W, b, y, gy = _case(rng, B, D, U, dt, act)
        got = fast_tier.dense_backward(gy, x, W, y, act, True, need_gb)
        assert routes.last("dense_backward") == "serial"
        want = ref_tier.dense_backward(gy, x, W, y, act, True, need_gb)
        bgz = elementwise_bound(np.abs(gy), 4, e)
        gz = gy.astype(np.float64) * {"tanh": 1 - y.astype(np.float64) ** 2, "relu": (y > 0) * 1.0,
                                      "sigmoid": y.astype(np.float64) * (1 - y)}[act]
        aW, ax = np.abs(W.astype(np.float64)), np.abs(x.astype(np.float64))
        bounds = (matmul_bound(gz, W.T, eps=e) + bgz @ aW.T, matmul_bound(x.T, gz, eps=e) + ax.T @ bgz,
                  sum_bound(gz, axis=0, eps=e) + bgz.sum(0))
        for name, g, w, bound in zip(("gx", "gW", "gb"), got, want, bounds):
            if name == "gb" and not need_gb:
                assert g is None and w is None
                continue
            assert g.dtype == np.dtype(dt) and g.shape == w.shape
            assert_within(g, w, bound, f"{name} {act} {(B, D, U)}")


@pytest.mark.parametrize("act", ACTS)
def test_small_backward_propagates_nan_and_inf_as_numpy(act):
    rng = np.random.default_rng(1)
    x, W, b, y, gy = _case(rng, 6, 3, 4, "float32", act)
    gy[0, 0], gy[1, 1], gy[2, 2] = np.nan, np.inf, -np.inf
    y = y.copy()
    y[3, 3] = np.nan
    got = fast_tier.dense_backward(gy, x, W, y, act, True, True)
    with np.errstate(all="ignore"):
        want = ref_tier.dense_backward(gy, x, W, y, act, True, True)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(w))


def test_small_backward_with_a_gradient_of_another_dtype():
    rng = np.random.default_rng(2)
    x, W, b, y, _ = _case(rng, 5, 3, 4, "float32", "tanh")
    gy = rng.standard_normal((5, 4))                            # float64
    got = fast_tier.dense_backward(gy, x, W, y, "tanh", True, True)
    want = ref_tier.dense_backward(gy, x, W, y, "tanh", True, True)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        assert_within(g, w, 1e-5 * (1 + np.abs(w)))


@pytest.mark.parametrize("act, nodes", [(None, ["Linear"]), ("linear", ["Linear"]), ("tanh", ["Linear"]),
                                        ("relu", ["Linear"]), ("sigmoid", ["Linear"]),
                                        ("softmax", ["Linear", "Softmax"])])
@pytest.mark.parametrize("tier", ["fast", "reference"])
def test_dense_builds_the_graph_of_f_linear(act, nodes, tier):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 10)).astype("float32")
    with nb.kernels(tier):
        layer = nb.layers.Dense(10, activation=act)
        for _ in range(2):                                      # the first call names the activation
            xt = nb.Tensor(x)
            y = layer(xt, training=True)
            chain, fn = [], y.creator
            while fn is not None:
                chain.append(type(fn).__name__)
                fn = next((t.creator for t in fn.inputs if t is not None and t.creator is not None), None)
            assert chain[::-1] == nodes
            inside = act if act in F.FUSED_ACTIVATIONS else None
            linear_fn = y.creator if len(nodes) == 1 else y.creator.inputs[0].creator
            assert linear_fn.activation == inside
            (y * y).sum().backward()
        want = F.linear(nb.Tensor(x), layer.kernel, layer.bias, activation=act)
        e = float(np.finfo(np.float32).eps)
        bz = matmul_bound(x, layer.kernel.data, add=layer.bias.data, eps=e)
        assert_within(y.data, want.data, 2 * bz + elementwise_bound(np.ones_like(bz), 8, e))


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("act", [None] + ACTS)
def test_small_forward_is_numpys_bits(dt, act):
    # the bias kernel rounds each y + b once, as NumPy's broadcast add: the same bits
    rng = np.random.default_rng(4)
    for B, D, U in ((20, 10, 10), (20, 1, 10), (7, 3, 1)):
        x, W, b, _, _ = _case(rng, B, D, U, dt, act)
        y = fast_tier.dense_forward(x, W, b, act)
        assert routes.last("dense_forward") == "small"
        want = x @ W
        want += b
        if act is not None:
            want = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
                    "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[act](want).astype(dt)
            if act == "sigmoid":                    # a different formula for sigmoid: within bounds
                e = float(np.finfo(dt).eps)
                assert_within(y, want, elementwise_bound(np.ones_like(want), 8, e))
                continue
        assert y.dtype == want.dtype and y.tobytes() == want.tobytes()


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_small_backward_without_activation_sums_the_bias_gradient(dt):
    rng = np.random.default_rng(5)
    for B, U in ((20, 1), (20, 10), (1, 3)):
        x, W, b, _, gy = _case(rng, B, 4, U, dt, None)
        gx, gW, gb = fast_tier.dense_backward(gy, x, W, None, None, False, True)
        assert gx is None and gb.dtype == np.dtype(dt)
        assert_within(gb, gy.astype(np.float64).sum(0), sum_bound(gy, axis=0))
        assert_within(gW, x.astype(np.float64).T @ gy, matmul_bound(x.T, gy))


CHILD = """
import sys
import numpy as np, numbanet as nb
from numbanet.fast import dense
m = nb.models.Sequential([nb.layers.Dense(10, activation="tanh"), nb.layers.Dense(1)])
m.compile(optimizer="sgd", loss="mse")
x = np.linspace(-1, 1, 40, dtype="float32").reshape(-1, 1)
m.fit(x, x, batch_size=20, epochs=2, verbose=0)
print(dense.USE_KERNELS[0], "numba.np.arraymath" in sys.modules)
from numbanet.fast.kernels.dense_small import bias_add
bias_add(np.zeros((2, 3), "float32"), np.ones(3, "float32"))
print(dense._kernels_ready())
"""


def test_kernels_wait_for_numba():
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    jit = "NUMBA_DISABLE_JIT=1" not in " ".join(f"{k}={v}" for k, v in __import__("os").environ.items())
    assert lines[:2] == ["None", "False"]           # a small MLP's fit sets nothing of Numba up
    assert lines[2] == ("True" if jit else "False")  # a kernel call does (not without the JIT)
