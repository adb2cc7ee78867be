"""LSTM: both tiers against an independent float64 LSTM (tests/lstm_oracle.py) within rounding
bounds, finite differences, the fast tier's kernels against NumPy twins, the layer's contract,
learning, bad input. Keras parity is in test_lstm_keras.py."""
import io
import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import Tensor, check_grad
from numbanet.engine.functional import lstm
from numbanet.fast import routes
from numbanet.fast import tier as fast_tier
from numbanet.fast.kernels import lstm as kernels
from numbanet.layers import LSTM, Dense, Embedding
from numbanet.reference import tier as ref_tier

import lstm_oracle as oracle
from bounds import assert_within

ACTS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

configs = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 4), "D": st.integers(1, 3), "U": st.integers(1, 3),
    "act": st.sampled_from(ACTS), "ract": st.sampled_from(["sigmoid", "hard_sigmoid", "tanh", "relu", "linear"]),
    "seq": st.booleans(), "state": st.booleans(), "back": st.booleans(), "bias": st.booleans(),
    "h0": st.booleans(), "c0": st.booleans(),
    "mask": st.sampled_from([None, "random", "gaps", "all_masked_row"]),
    "dtype": st.sampled_from([np.float32, np.float64]), "seed": st.integers(0, 2 ** 16)})


def _mask(kind, N, T, rng):
    if kind is None:
        return None
    if kind == "random":
        return rng.random((N, T)) < 0.6
    m = np.ones((N, T), bool)
    if kind == "gaps":                      # real steps with padding between them and at both ends
        m[:, ::2] = False
        m[:, -1] = T == 1 or m[:, -1]
    else:                                   # the first row has no real step at all
        m[0] = False
    return m


def _inputs(c):
    rng = np.random.default_rng(c["seed"])
    N, T, D, U, dt = c["N"], c["T"], c["D"], c["U"], c["dtype"]
    x = rng.standard_normal((N, T, D)).astype(dt)
    W = (rng.standard_normal((D, 4 * U)) * 0.6).astype(dt)
    R = (rng.standard_normal((U, 4 * U)) * 0.5).astype(dt)
    b = (rng.standard_normal(4 * U) * 0.5).astype(dt) if c["bias"] else None
    h0 = (rng.standard_normal((N, U)) * 0.5).astype(dt) if c["h0"] else None
    c0 = (rng.standard_normal((N, U)) * 0.5).astype(dt) if c["c0"] else None
    return x, W, R, b, h0, c0, _mask(c["mask"], N, T, rng), rng


def _out_shape(c):
    N, T, U = c["N"], c["T"], c["U"]
    steps = (T if c["seq"] else 1) + (2 if c["state"] else 0)
    return (N, steps, U) if (c["seq"] or c["state"]) else (N, U)


def _expected(c, y, hT, cT, ey, ehT, ecT):
    """The oracle's outputs and bounds in the engine node's layout (engine/lstm.py)."""
    if not c["seq"]:
        y, ey = y[:, -1:], ey[:, -1:]
    if c["state"]:
        y = np.concatenate([y, hT[:, None], cT[:, None]], 1)
        ey = np.concatenate([ey, ehT[:, None], ecT[:, None]], 1)
    elif not c["seq"]:
        y, ey = y[:, 0], ey[:, 0]
    return y, ey


def _split_gy(c, gy):
    """gy in the node's layout -> (gy over all T outputs (N, T, U), g of h_T, g of c_T)."""
    N, T, U = c["N"], c["T"], c["U"]
    gh, gc = np.zeros((N, U)), np.zeros((N, U))
    g = gy.reshape(N, -1, U)
    if c["state"]:
        g, gh, gc = g[:, :-2], g[:, -2], g[:, -1]
    full = np.zeros((N, T, U))
    if c["seq"]:
        full[:] = g
    else:
        full[:, -1] = g[:, 0]
    return full, gh, gc


def _run(c, x, W, R, b, h0, c0, mask, gy):
    ts = [None if a is None else Tensor(a, requires_grad=True) for a in (x, W, R, b, h0, c0)]
    y = lstm(*ts, activation=c["act"], recurrent_activation=c["ract"], return_sequences=c["seq"],
             return_state=c["state"], go_backwards=c["back"], mask=mask)
    y.backward(gy)
    return y.data, [None if t is None else t.grad for t in ts]


def _check_against_oracle(c, y, grads, x, W, R, b, h0, c0, mask, gy, label, need_gx=True):
    eps = float(np.finfo(c["dtype"]).eps)
    yo, hT, cT, ey, ehT, ecT, steps = oracle.forward(x, W, R, b, h0, c0, c["act"], c["ract"], c["back"], mask, eps)
    want, bound = _expected(c, yo, hT, cT, ey, ehT, ecT)
    assert y.dtype == c["dtype"], f"{label}: output dtype {y.dtype}"
    assert_within(y, want, bound, f"{label} y {c}")
    gfull, gh, gc = _split_gy(c, gy)
    ref = oracle.bptt(steps, gfull, gh, gc, x.shape, W, R)
    bounds = oracle.gradient_bounds(steps, gfull, gh, gc, x.shape, W, R, eps)
    for name, g, g_ref, e, given_ in zip(["gx", "gW", "gR", "gb", "gh0", "gc0"], grads, ref, bounds,
                                         [x if need_gx else None, W, R, b, h0, c0]):
        if given_ is None:
            assert g is None, f"{label} {name}: a gradient for an input not given"
            continue
        assert g.dtype == c["dtype"], f"{label} {name}: dtype {g.dtype}"
        assert_within(g, g_ref, e, f"{label} {name} {c}")
    return steps, want, bound


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@SETTINGS
@given(configs)
def test_lstm_matches_the_oracle_and_finite_differences(c):
    """Every configuration: output, states and all six gradients within the rounding bound of the
    independent float64 LSTM; in float64 also against central finite differences."""
    x, W, R, b, h0, c0, mask, rng = _inputs(c)
    gy = rng.standard_normal(_out_shape(c)).astype(c["dtype"])
    y, grads = _run(c, x, W, R, b, h0, c0, mask, gy)
    steps, want, bound = _check_against_oracle(c, y, grads, x, W, R, b, h0, c0, mask, gy, nb.get_kernels())
    if c["dtype"] == np.float64:
        # a central difference moves an input by 1e-6, a pre-activation by 1e-6 times a few units:
        # a margin of 1e-4 keeps every probe of relu / hard_sigmoid on one side of its kink
        assume(oracle.kink_distance(steps, c["act"], c["ract"]) > 1e-4)
        given_ = [a for a in (x, W, R, b, h0, c0) if a is not None]
        flags = [a is not None for a in (b, h0, c0)]

        def fn(x, W, R, *rest):
            rest = list(rest)
            bb, hh, cc = (rest.pop(0) if f else None for f in flags)
            return lstm(x, W, R, bb, hh, cc, c["act"], c["ract"], c["seq"], c["state"], c["back"], mask)
        # rounding: L = sum(gy * y) is computed within E_L = sum |gy| bound + (n + 1) u sum |gy y| (the
        # oracle's bound on each y, then the n-term sum), so (L(+h) - L(-h)) / 2h within E_L / h; linear
        # gates let y grow (to 1,900 in one drawn case), and E_L / h with it
        h, u = 1e-6, float(np.finfo(np.float64).eps)
        rounding = float(np.sum(np.abs(gy) * bound) + (gy.size + 1) * u * np.sum(np.abs(gy * want))) / h
        report = check_grad(fn, *given_, grad_output=gy, eps=h, rtol=1e-5, atol=1e-7 + rounding)
        assert report.passed, f"{c}\n{report}"


@SETTINGS
@given(configs, st.booleans())
def test_protocol_functions_of_both_tiers(c, need_gx):
    """The tier functions called directly: the node's layout, None for what is not asked or not
    given, the route taken, and both tiers within the oracle's bound (so within twice of each other)."""
    x, W, R, b, h0, c0, mask, rng = _inputs(c)
    args = (x, W, R, b, h0, c0, c["act"], c["ract"], c["seq"], c["state"], c["back"], mask)
    gy = rng.standard_normal(_out_shape(c)).astype(c["dtype"])
    for tier in (fast_tier, ref_tier):
        y, saved = tier.lstm_forward(*args)
        assert y.shape == _out_shape(c)
        grads = tier.lstm_backward(gy, saved, need_gx)
        _check_against_oracle(c, y, grads, x, W, R, b, h0, c0, mask, gy, tier.__name__, need_gx)
    assert routes.last("lstm_forward") == ("time_major" if mask is None else "time_major_masked")
    assert routes.last("lstm_backward") == routes.last("lstm_forward")


def test_reference_tier_keeps_nothing_and_fast_keeps_float32():
    """The fast tier's saved gate values and states stay in the input's dtype (no silent upcast)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    W, R = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((2, 8)).astype(np.float32)
    y, saved = fast_tier.lstm_forward(x, W, R, None, None, None, "tanh", "sigmoid", True, True, False, None)
    assert y.dtype == np.float32 and y.shape == (2, 5, 2)
    assert all(a.dtype == np.float32 for a in saved if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    _, saved_ref = ref_tier.lstm_forward(x, W, R, None, None, None, "tanh", "sigmoid", True, True, False, None)
    assert saved_ref[0] is x   # the reference keeps its arguments and recomputes the states


@pytest.mark.parametrize("forward_tier, backward_tier", [("fast", "reference"), ("reference", "fast")])
def test_a_graph_recorded_under_one_tier_differentiates_under_the_other(forward_tier, backward_tier):
    rng = np.random.default_rng(7)
    arrays = rng.standard_normal((3, 4, 2)), rng.standard_normal((2, 12)) * 0.5, rng.standard_normal((3, 12)) * 0.5

    def grads(fwd, bwd):
        ts = [Tensor(a, requires_grad=True) for a in arrays]
        with nb.kernels(fwd):
            y = (lstm(*ts, return_state=True) ** 2).sum()
        with nb.kernels(bwd):
            y.backward()
        return [t.grad for t in ts]
    for g, g_ref in zip(grads(forward_tier, backward_tier), grads(forward_tier, forward_tier)):
        np.testing.assert_array_equal(g, g_ref)   # the forward's tier ran both backwards: the same bits


# ------------------------------------------------------ the fast tier's kernels vs NumPy twins
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.sampled_from(ACTS), st.sampled_from(ACTS),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2 ** 16))
def test_cell_kernels_match_numpy_twins(N, U, act, ract, dt, seed):
    rng = np.random.default_rng(seed)
    G = rng.uniform(-1, 1, (N, 4 * U)).astype(dt)
    c_prev, tc, h_prev = (rng.standard_normal((N, U)).astype(dt) for _ in range(3))
    dh0, dc0 = rng.standard_normal((N, U)).astype(dt), rng.standard_normal((N, U)).astype(dt)
    m = rng.random(N) < 0.7
    i, f, g, o = (G[:, k * U:(k + 1) * U].astype(np.float64) for k in range(4))
    keep = m[:, None]
    eps = np.finfo(dt).eps

    c = np.empty((N, U), dt)
    kernels.cell_state(G, c_prev, m, c)
    want_c = np.where(keep, f * c_prev + i * g, c_prev)
    assert_within(c, want_c, 3 * eps * (np.abs(f * c_prev) + np.abs(i * g)), "cell_state")
    h = np.empty((N, U), dt)
    kernels.cell_output(G, tc, h_prev, m, h)
    assert_within(h, np.where(keep, o * tc, h_prev), eps * np.abs(o * tc), "cell_output")

    # twin of cell_backward, derivatives from the outputs as numbanet/reference/activations.py writes them
    d = {"linear": lambda y: np.ones_like(y), "sigmoid": lambda y: y * (1 - y), "tanh": lambda y: 1 - y * y,
         "relu": lambda y: (y > 0) * 1.0, "hard_sigmoid": lambda y: ((y > 0) & (y < 1)) / 6.0}
    dsig, dphi = d[ract], d[act]
    dct = dc0 + dh0 * o * dphi(tc)
    dz = np.concatenate([dct * g * dsig(i), dct * c_prev * dsig(f), dct * i * dphi(g), dh0 * tc * dsig(o)], 1)
    dz = np.where(keep, dz, 0)
    dh, dc, got = dh0.copy(), dc0.copy(), np.empty((N, 4 * U), dt)
    kernels.cell_backward(G, c_prev, tc, m, dh, dc, got, kernels.ACTIVATION_CODES[act],
                          kernels.ACTIVATION_CODES[ract])
    mag = np.abs(dc0) + np.abs(dh0)                   # every factor but the carried gradients is <= 2 here
    assert_within(got, dz, 16 * eps * np.tile(mag * 4, 4), "cell_backward dz")
    assert_within(dc, np.where(keep, dct * f, dc0), 16 * eps * mag * 4, "cell_backward dc")
    assert_within(dh, np.where(keep, 0, dh0), 0, "cell_backward dh")


# ------------------------------------------------------------------ the layer
def test_weights_layout_unit_forget_bias_and_shapes():
    nb.utils.set_random_seed(0)
    layer = LSTM(5, return_sequences=True)
    y = layer(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 5) and y.dtype == np.float32
    assert [w.shape for w in layer.get_weights()] == [(3, 20), (5, 20), (20,)]
    assert [w.name.split("/")[-1] for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    np.testing.assert_array_equal(layer.bias.data, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    R = layer.recurrent_kernel.data.astype(np.float64)
    np.testing.assert_allclose(R @ R.T, np.eye(5), atol=1e-6)     # orthogonal rows, as Keras's (U, 4U)
    no_forget = LSTM(2, unit_forget_bias=False, bias_initializer="ones")
    no_forget(np.zeros((1, 1, 1)))
    np.testing.assert_array_equal(no_forget.bias.data, np.ones(8))
    forget_ones = LSTM(2, bias_initializer="ones")                   # the f block is ones either way
    forget_ones(np.zeros((1, 1, 1)))
    np.testing.assert_array_equal(forget_ones.bias.data, np.ones(8))
    assert LSTM(2, use_bias=False)(np.zeros((1, 3, 2))).shape == (1, 2)
    assert layer.compute_output_shape((None, None, 3)) == (None, None, 5)
    assert LSTM(2).compute_output_shape((None, 5, 3)) == (None, 2)
    assert LSTM(2, return_state=True).compute_output_shape((None, 5, 3)) == ((None, 2), (None, 2), (None, 2))
    cfg = LSTM(3, activation="relu", recurrent_activation="hard_sigmoid", go_backwards=True,
               unit_forget_bias=False, name="l").get_config()
    assert LSTM(**{**cfg, "name": "l2"}).get_config() == {**cfg, "name": "l2"}
    assert LSTM(2, activation=None).activation == "linear"


def test_summary_counts_the_four_gates():
    model = nb.Sequential([nb.layers.Input((6, 3)), LSTM(4, return_sequences=True), LSTM(2)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.summary()
    text = out.getvalue()
    first, second = 4 * (4 * (3 + 4) + 4), 4 * (2 * (4 + 2) + 2)      # 4 gates: U (D + U) + U each
    assert f"{first:,}" in text and f"{second:,}" in text and f"{first + second:,}" in text, text
    assert model.count_params() == first + second


@pytest.mark.usefixtures("tier")
@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.booleans(), st.booleans(), st.integers(0, 999))
def test_layer_return_state_and_initial_state_gradients(N, T, seq, back, seed):
    """The layer's three outputs and its [h0, c0] as a whole, against finite differences."""
    rng = np.random.default_rng(seed)
    layer = LSTM(2, return_sequences=seq, return_state=True, go_backwards=back, dtype="float64")
    x = rng.standard_normal((N, T, 3))
    layer(x)
    h0, c0 = rng.standard_normal((2, N, 2))
    w_out = rng.standard_normal((N, T, 2) if seq else (N, 2))
    w_h, w_c = rng.standard_normal((2, N, 2))
    weights = [w.data + rng.standard_normal(w.shape) * 0.3 for w in layer.weights]

    def fn(x, h0, c0, W, R, b):
        saved = layer.kernel, layer.recurrent_kernel, layer.bias
        layer.kernel, layer.recurrent_kernel, layer.bias = W, R, b
        try:
            out, h, c = layer(x, initial_state=[h0, c0])
        finally:
            layer.kernel, layer.recurrent_kernel, layer.bias = saved
        assert out.shape == w_out.shape and h.shape == c.shape == (N, 2)
        return (out * Tensor(w_out)).sum() + (h * Tensor(w_h)).sum() + (c * Tensor(w_c)).sum()
    report = check_grad(fn, x, h0, c0, *weights)
    assert report.passed, str(report)


def test_go_backwards_reads_time_reversed_and_returns_processing_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3))
    fwd, back = LSTM(4, return_sequences=True, dtype="float64"), LSTM(4, return_sequences=True, go_backwards=True,
                                                                      dtype="float64")
    fwd(x)
    back(x)
    back.set_weights(fwd.get_weights())
    W, R, b = fwd.get_weights()
    eps = np.finfo(np.float64).eps
    want, _, _, bound, _, _, _ = oracle.forward(x[:, ::-1], W, R, b, None, None, "tanh", "sigmoid", False, None, eps)
    assert_within(back(x).data, want, 2 * bound)
    assert_within(fwd(x[:, ::-1].copy()).data, want, 2 * bound)


def test_mask_from_embedding_and_a_row_with_no_real_step():
    """Pre-padded ids: the last output equals the run over the real ids alone; an all-padding row
    gives outputs 0 and returns its initial states as h_T, c_T (Keras 3 does the same)."""
    emb = Embedding(10, 3, mask_zero=True, dtype="float64")
    layer = LSTM(4, return_state=True, dtype="float64")
    ids = np.array([[0, 0, 5, 2, 7], [3, 1, 4, 1, 5], [0, 0, 0, 0, 0]])
    rng = np.random.default_rng(2)
    h0, c0 = rng.standard_normal((2, 3, 4))
    out, h, c = layer(emb(ids), initial_state=[h0, c0])              # the mask comes with the embedding
    E = emb.get_weights()[0]
    W, R, b = layer.get_weights()
    eps = np.finfo(np.float64).eps
    for row, real in ((0, ids[:1, 2:]), (1, ids[1:2])):
        y1, h1, c1, ey, eh, ec, _ = oracle.forward(E[real], W, R, b, h0[row:row + 1], c0[row:row + 1], "tanh",
                                                   "sigmoid", False, None, eps)
        assert_within(out.data[row], y1[0, -1], 2 * ey[0, -1], f"row {row} output")
        assert_within(h.data[row], h1[0], 2 * eh[0], f"row {row} h")
        assert_within(c.data[row], c1[0], 2 * ec[0], f"row {row} c")
    np.testing.assert_array_equal(out.data[2], 0)
    np.testing.assert_array_equal(h.data[2], h0[2])
    np.testing.assert_array_equal(c.data[2], c0[2])
    seq = LSTM(4, return_sequences=True)
    y = seq(Embedding(10, 3, mask_zero=True)(ids))
    assert np.array_equal(nb.layers.base.mask_of(y), ids != 0)      # passed on with the time axis


def test_fit_gives_the_same_losses_under_both_tiers():
    """Embedding(mask_zero) - LSTM - LSTM - Dense, Adam, sparse CE from logits, float64, 3 epochs."""
    V, T, N, D, U = 12, 6, 16, 4, 5
    rng = np.random.default_rng(0)
    x = rng.integers(1, V, size=(N, T))
    x[::3, 4:] = 0
    y = rng.integers(0, V, size=(N, T))

    def losses_under(tier):
        nb.utils.set_random_seed(3)
        m = nb.Sequential([Embedding(V, D, mask_zero=True, dtype="float64"),
                           LSTM(U, return_sequences=True, dtype="float64"),
                           LSTM(U, return_sequences=True, go_backwards=True, dtype="float64"),
                           Dense(V, dtype="float64")])
        m.compile(optimizer=nb.optimizers.Adam(0.01), loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
        with nb.kernels(tier):
            return np.array(m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"])
    fast, ref = losses_under("fast"), losses_under("reference")
    # each quantity of a step is a sum of at most n = 2 T (D + 4U + 12) + V terms computed in another
    # order by each tier; six Adam steps of 0.01 amplify a weight's error at most sixfold
    n = 2 * T * (D + 4 * U + 12) + V
    assert np.all(np.abs(fast - ref) <= 2 * 6 * n * np.finfo(np.float64).eps * np.abs(ref)), (fast, ref)
    assert fast[-1] < fast[0]


# ------------------------------------------------------------------ learning
def _adding_task(n, T, rng):
    """Hochreiter and Schmidhuber's adding problem: x_t = (v_t, marker_t), v_t uniform in [0, 1),
    one marker in each half of the sequence; the target is the sum of the two marked values."""
    v = rng.random((n, T))
    x = np.zeros((n, T, 2), np.float32)
    x[..., 0] = v
    first, second = rng.integers(0, T // 2, n), rng.integers(T // 2, T, n)
    rows = np.arange(n)
    x[rows, first, 1] = x[rows, second, 1] = 1
    return x, (v[rows, first] + v[rows, second]).astype(np.float32)[:, None]


def test_lstm_learns_the_adding_problem():
    """T = 20. Predicting the mean scores an MSE of 0.16; this LSTM(16) gets below 0.03 within 12
    epochs (0.016 after 9 when measured). Measured on the same data and seeds: SimpleRNN(16) stays
    at 0.157, and an LSTM whose cell does not carry c_{t-1} (c_t = i g) does not get below 0.06."""
    nb.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _adding_task(2048, 20, rng)
    xv, yv = _adding_task(512, 20, rng)
    model = nb.Sequential([LSTM(16), Dense(1)])
    model.compile(optimizer=nb.optimizers.Adam(0.01), loss="mse")
    for epoch in range(12):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        mse = float(((model.predict(xv) - yv) ** 2).mean())
        if mse < 0.03:
            break
    assert mse < 0.03, f"validation MSE {mse:.4f} after {epoch + 1} epochs"


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 3)), ["rank 3", "(None, 3)"]),
    (np.zeros((2, 3, 4, 5)), ["rank 3"]),
    (np.zeros((2, 0, 4)), ["time step"]),
])
def test_bad_input_shapes(bad, words):
    with pytest.raises(ValueError) as info:
        LSTM(3, name="lstm_under_test")(bad)
    for w in ["lstm_under_test"] + words:
        assert w in str(info.value)


def test_bad_features_initial_state_and_mask():
    layer = LSTM(3, name="l")
    x = np.zeros((2, 4, 5))
    layer(x)
    with pytest.raises(ValueError, match="l: expected 5 features"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match=r"two states.*\[h0, c0\].*\(2, 3\).*a list of 1"):
        layer(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"two states.*one ndarray"):
        layer(x, initial_state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"initial_state c0 must have shape \(batch, units\) = \(2, 3\), got \(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(TypeError, match="initial_state h0 must be a numeric array"):
        layer(x, initial_state=[np.array([["a"] * 3] * 2), np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 4\)"):
        layer(x, mask=np.ones((2, 5), bool))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"activation must be one of \['hard_sigmoid', 'linear', 'relu', "
                                         r"'sigmoid', 'tanh'\].*'softmax'"):
        LSTM(3, activation="softmax")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        LSTM(3, recurrent_activation="swish")
    with pytest.raises(ValueError, match="units"):
        LSTM(0)
    with pytest.raises(TypeError, match="units"):
        LSTM(2.5)
    with pytest.raises(ValueError, match="kernel_initializer"):
        LSTM(2, kernel_initializer="nope")
    with pytest.raises(TypeError, match="unexpected keyword"):
        LSTM(3, unit_forget_bais=True)


def test_engine_function_checks_shapes_names_and_dtypes():
    x, W, R = np.zeros((2, 3, 4)), np.zeros((4, 8)), np.zeros((2, 8))
    with pytest.raises(ValueError, match=r"kernel must have shape \(features, 4 \* units\) = \(4, 8\), got \(5, 8\)"):
        lstm(x, np.zeros((5, 8)), R)
    with pytest.raises(ValueError, match=r"recurrent kernel must have shape \(units, 4 \* units\), got \(2, 6\)"):
        lstm(x, W, np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"bias must have shape"):
        lstm(x, W, R, np.zeros(6))
    with pytest.raises(ValueError, match=r"initial state c0 must have shape \(batch, units\) = \(2, 2\)"):
        lstm(x, W, R, c0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="time >= 1"):
        lstm(np.zeros((2, 0, 4)), W, R)
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        lstm(x, W, R, recurrent_activation="elu")
    with pytest.raises(TypeError, match=r"one floating dtype, got \['float32', 'float64'\]"):
        lstm(x.astype(np.float32), W, R)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 3\)"):
        lstm(x, W, R, mask=np.ones((3, 2), bool))
