"""The fast LSTM's sigmoid/tanh forward route (fast/lstm.py: _recur_sigmoid_tanh and the two Numba
passes of fast/kernels/lstm.py) against NumPy twins and the general route, bit for bit where the
arithmetic is the same, and the per-pair cell_backward kernels against the general formula."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import numbanet.fast.lstm as fast_lstm
from numbanet.fast.kernels import lstm as kernels

from bounds import assert_within


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16))
def test_sigmoid_passes_match_numpy_twins(N, U, dt, seed):
    rng = np.random.default_rng(seed)
    G = (rng.standard_normal((N, 4 * U)) * 4).astype(dt)
    rec = rng.standard_normal((N, 4 * U)).astype(dt)
    c_prev = rng.standard_normal((N, U)).astype(dt)
    m = rng.random(N) < 0.7
    z = G + rec                                                 # one rounded addition: the same bits
    got = G.copy()
    kernels.sigmoid_gates_in(got, rec)
    sign = np.concatenate([-np.ones(2 * U), np.ones(U), -np.ones(U)]).astype(dt)
    np.testing.assert_array_equal(got, z * sign)
    with np.errstate(over="ignore"):
        np.exp(got[:, :2 * U], out=got[:, :2 * U])
        np.exp(got[:, 3 * U:], out=got[:, 3 * U:])
    np.tanh(got[:, 2 * U:3 * U], out=got[:, 2 * U:3 * U])
    e = got.copy()
    c = np.empty((N, U), dt)
    kernels.sigmoid_cell_state(got, c_prev, m, c, dt(1))
    # twin: NumPy's float32/float64 passes, add 1 then reciprocal, as fast/lstm.py's _sigmoid_
    want = e.copy()
    for block in (slice(0, 2 * U), slice(3 * U, 4 * U)):
        want[:, block] = np.reciprocal(e[:, block] + dt(1))
    np.testing.assert_array_equal(got, want)
    i, f, g = want[:, :U], want[:, U:2 * U], want[:, 2 * U:3 * U]
    np.testing.assert_array_equal(c, np.where(m[:, None], f * c_prev + i * g, c_prev))
    # against float64 sigmoid / tanh of z: within the libm and rounding allowance of the gates
    z64 = z.astype(np.float64)
    exact = np.concatenate([1 / (1 + np.exp(-z64[:, :2 * U])), np.tanh(z64[:, 2 * U:3 * U]),
                            1 / (1 + np.exp(-z64[:, 3 * U:]))], 1)
    eps = np.finfo(dt).eps
    assert_within(got, exact, 2 * 8 * eps * (np.abs(exact) + eps * np.abs(z64)), "gates vs float64")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 7), st.booleans(), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2 ** 16))
def test_sigmoid_tanh_recurrence_equals_the_general_route(N, T, U, masked, dt, seed):
    """The same products and the same float roundings: the two routes give the same bits."""
    rng = np.random.default_rng(seed)
    R = (rng.standard_normal((U, 4 * U)) * 0.5).astype(dt)
    G0 = (rng.standard_normal((T, N, 4 * U)) * 3).astype(dt)
    m = rng.random((T, N)) < 0.6 if masked else np.ones((T, N), bool)
    out = []
    for route in ("general", "fused"):
        G = G0.copy()
        Hs, Cs = np.zeros((T + 1, N, U), dt), np.zeros((T + 1, N, U), dt)
        Hs[0], Cs[0] = rng.standard_normal((N, U)) if route == "general" else out[0][1][0], 0
        TC = np.empty((T, N, U), dt)
        if route == "general":
            fast_lstm._recur(G, Hs, Cs, TC, R, m, fast_lstm.ACTIVATIONS_INTO["tanh"],
                             fast_lstm.ACTIVATIONS_INTO["sigmoid"])
        else:
            fast_lstm._recur_sigmoid_tanh(G, Hs, Cs, TC, R, m)
        out.append((G, Hs, Cs, TC))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_cell_backward_kernels_are_made_once_per_activation_pair():
    N, U = 3, 4
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.1, 0.9, (N, 4 * U))] + [rng.standard_normal((N, U)) for _ in range(2)]
    for phi, sigma in (("tanh", "sigmoid"), ("relu", "hard_sigmoid")):
        codes = kernels.ACTIVATION_CODES[phi], kernels.ACTIVATION_CODES[sigma]
        kernels.cell_backward(*args, np.ones(N, bool), np.ones((N, U)), np.ones((N, U)), np.empty((N, 4 * U)), *codes)
        first = kernels._CELL_BACKWARD[codes]
        kernels.cell_backward(*args, np.ones(N, bool), np.ones((N, U)), np.ones((N, U)), np.empty((N, 4 * U)), *codes)
        assert kernels._CELL_BACKWARD[codes] is first
    assert kernels._CELL_BACKWARD[2, 1] is not kernels._CELL_BACKWARD[3, 4]
