"""GRU: the two tiers against each other, finite differences, the layer, learning, bad input.

Keras parity is in ``test_gru_keras.py``, which uses the error bounds defined here.

The bounds (``gru_error_bounds``) are first-order rounding-error analyses of the GRU
step, computed in float64 from the reference run's values, and apply to the
difference of any two float computations of the same GRU (two tiers, or numbanet and
TensorFlow): each local rounding is counted two-sided (``n eps |terms|``, as
``bounds.matmul_bound``; ``2 LIBM_ULP eps |y|`` for an activation call) and the
errors already in h_{t-1}, z, r, q are carried through the step's partial
derivatives, every activation slope being at most 1.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet import utils
from numbanet.engine import Tensor, check_grad, no_grad
from numbanet.engine.functional import gru
from numbanet.fast import routes as fast_routes
from numbanet.layers import GRU, Dense, Embedding
from numbanet.reference import gru as rgru

from bounds import LIBM_ULP, SAFETY, assert_within

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ACTS = ["tanh", "sigmoid", "hard_sigmoid", "relu", "linear"]
KINKS = {"relu": (0.0,), "hard_sigmoid": (-3.0, 3.0)}     # where an activation's slope jumps


# ------------------------------------------------------------------ helpers
def _split(b, U, reset_after):
    if b is None:
        return np.zeros(3 * U), np.zeros(3 * U)
    return (b[0], b[1]) if reset_after else (b, np.zeros(3 * U))


def _mask(kind, N, T, rng):
    """None, a random mask, or one with a gap, a trailing pad and (N > 1) a row with no real step."""
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((N, T)) < 0.6
    mask = np.ones((N, T), bool)
    mask[0, T // 2] = False                            # a gap (or the only step, T = 1)
    mask[0, -1] = T == 1 or mask[0, -1]
    if N > 1:
        mask[-1] = False                               # no real step at all
    return mask


def _reference_run(x, W, R, b, h0, act, rec, reset_after, back, mask):
    """float64 reference values: (steps [(z, r, q, c)], h (N, T+1, U), xs (N, T, D), m (N, T, 1), s (N, T, 1))."""
    f64 = [None if v is None else np.asarray(v, np.float64) for v in (x, W, R, b, h0)]
    steps, h = rgru.gru_steps(*f64, act, rec, reset_after, back, mask)
    xs = f64[0][:, ::-1] if back else f64[0]
    m = np.ones(x.shape[:2]) if mask is None else np.asarray(mask[:, ::-1] if back else mask, np.float64)
    return steps, h, xs, m[:, :, None], (np.cumsum(m, axis=1) > 0)[:, :, None]


def pre_activations(x, W, R, b, h0, act, rec, reset_after, back, mask):
    """{activation name: the pre-activations that pass through it at real steps} (float64)."""
    steps, h, xs, m, _ = _reference_run(x, W, R, b, h0, act, rec, reset_after, back, mask)
    W, R = np.asarray(W, np.float64), np.asarray(R, np.float64)
    U = R.shape[0]
    b_x, b_h = _split(None if b is None else np.asarray(b, np.float64), U, reset_after)
    out = {act: [], rec: []}
    for t, (z, r, q, c) in enumerate(steps):
        real = m[:, t, 0] > 0
        a = xs[:, t] @ W + b_x + h[:, t] @ R + b_h
        a_c = (xs[:, t] @ W[:, 2 * U:] + b_x[2 * U:] + (r * q if reset_after else q @ R[:, 2 * U:]))
        out[rec].append(a[real, :2 * U].ravel())
        out[act].append(a_c[real].ravel())
    return {k: np.concatenate(v) for k, v in out.items()}


def kink_distance(x, W, R, b, h0, act, rec, reset_after, back, mask):
    """The smallest |pre-activation - kink| over the relu / hard_sigmoid gates (inf without any)."""
    d = np.inf
    for name, a in pre_activations(x, W, R, b, h0, act, rec, reset_after, back, mask).items():
        for k in KINKS.get(name, ()):
            d = min(d, np.abs(a - k).min(initial=np.inf))
    return d


def gru_error_bounds(x, W, R, b, h0, act, rec, reset_after, back, mask, gy, eps, e_x=None):
    """First-order bounds on the difference of two float GRU runs: (e_y (N, T, U), gradient bounds, e_max).

    ``e_x`` (N, T, D), optional: a bound on how much the two runs' inputs already differ
    (the outputs of an earlier layer). Forward, per step (n = D + U + 2 terms in each
    pre-activation sum)::

        e_a  = n eps (|x_t| |W| + |h_{t-1}| |R| + |b_x| + |b_h|) + e_h |R| + e_x |W|
        e_z, e_r = e_a (slope <= 1) + 2 LIBM_ULP eps |gate|
        e_c  = (1 + |r|) e_ac + |q| e_r + 2 eps (|x_c| + |r q|) + 2 LIBM_ULP eps |c|    (reset_after)
        e_c  = n eps (|x_t| |W_c| + |b_c| + |r h| |R_c|) + e_rh |R_c| + 2 LIBM_ULP eps |c|  (reset_after=False)
        e_h' = |z| e_h + |h_{t-1} - c| e_z + |1 - z| e_c + 8 eps (|z h_{t-1}| + |c| + 1)

    (a masked step keeps e_h). Backward: every gradient entry is a sum of products along
    paths through the BPTT loop; ``M`` is that sum of |products| with each forward factor
    f (1 - z, h_{t-1} - c, r, q, z) taken as |f| + 1 and each slope as 1, so a factor's
    perturbation by at most 2 e_max moves a product by at most 2 e_max times it; a path
    has at most 5 such factors and T (D + U + 12) roundings per step, hence
    |g1 - g2| <= SAFETY (T (D + U + 12) eps + 10 T e_max) M.
    Returns the gradient bounds in the order (gx, gW, gR, gb, gh0), gb shaped like b.
    """
    steps, h, xs, m, s = _reference_run(x, W, R, b, h0, act, rec, reset_after, back, mask)
    aW, aR = np.abs(np.asarray(W, np.float64)), np.abs(np.asarray(R, np.float64))
    N, T, D = xs.shape
    U = aR.shape[0]
    ab_x, ab_h = (np.abs(v) for v in _split(None if b is None else np.asarray(b, np.float64), U, reset_after))
    n = D + U + 2
    e_h, e_max, e_y = np.zeros((N, U)), 0.0, []
    L = 2 * LIBM_ULP * eps
    e_xs = np.zeros((N, T, D)) if e_x is None else (e_x[:, ::-1] if back else e_x)   # processing order
    for t, (z, r, q, c) in enumerate(steps):
        hp, ax = h[:, t], np.abs(xs[:, t])
        A = ax @ aW + np.abs(hp) @ aR + ab_x + ab_h
        e_a = n * eps * A + e_h @ aR + e_xs[:, t] @ aW
        e_z = e_a[:, :U] + L * np.abs(z)
        e_r = e_a[:, U:2 * U] + L * np.abs(r)
        if reset_after:
            e_q = e_a[:, 2 * U:]
            e_c = (1 + np.abs(r)) * e_q + np.abs(q) * e_r + 2 * eps * (A[:, 2 * U:] + np.abs(r * q)) + L * np.abs(c)
        else:
            e_q = np.abs(r) * e_h + np.abs(hp) * e_r + eps * np.abs(q)           # q = r h_{t-1}
            e_c = (n * eps * (ax @ aW[:, 2 * U:] + ab_x[2 * U:] + np.abs(q) @ aR[:, 2 * U:]) + e_q @ aR[:, 2 * U:]
                   + e_xs[:, t] @ aW[:, 2 * U:] + L * np.abs(c))
        e_new = (np.abs(z) * e_h + np.abs(hp - c) * e_z + np.abs(1 - z) * e_c
                 + 8 * eps * (np.abs(z * hp) + np.abs(c) + 1))
        e_max = max(e_max, *(float(v.max()) for v in (e_z, e_r, e_q, e_c, e_new)))
        e_h = np.where(m[:, t] > 0, e_new, e_h)
        e_y.append(e_h * s[:, t])
    e_y = SAFETY * np.stack(e_y, axis=1)

    # the backward's magnitude M: BPTT on |values|, forward factors |f| + 1, slopes 1
    P = lambda v: np.abs(v) + 1                                                 # noqa: E731
    gy = np.abs(np.asarray(gy, np.float64)) * s
    Mh = np.zeros((N, U))
    gx, gW, gR = np.zeros((N, T, D)), np.zeros_like(aW), np.zeros_like(aR)
    gbx, gbh = np.zeros(3 * U), np.zeros(3 * U)
    for t in range(T - 1, -1, -1):
        z, r, q, c = steps[t]
        hp, mt = h[:, t], m[:, t]
        Mh = Mh + gy[:, t]
        Mac = mt * Mh * P(1 - z)
        Maz = mt * Mh * P(hp - c)
        if reset_after:
            Mr, Mq = mt * Mac * P(q), mt * Mac * P(r)
        else:
            Mrh = Mac @ aR[:, 2 * U:].T
            Mr = mt * Mrh * P(hp)
        MX = np.concatenate([Maz, Mr, Mac], axis=1)
        gW += np.abs(xs[:, t]).T @ MX
        gx[:, t] = MX @ aW.T
        gbx += MX.sum(axis=0)
        if reset_after:
            MH = np.concatenate([Maz, Mr, Mq], axis=1)
            gR += P(hp).T @ MH
            gbh += MH.sum(axis=0)
            Mh = Mh * P(z) + MH @ aR.T
        else:
            gR[:, :2 * U] += P(hp).T @ MX[:, :2 * U]
            gR[:, 2 * U:] += P(q).T @ Mac
            Mh = Mh * P(z) + MX[:, :2 * U] @ aR[:, :2 * U].T + Mrh * P(r)
    gb = None if b is None else (np.stack([gbx, gbh]) if reset_after else gbx)
    k = SAFETY * (T * (D + U + 12) * eps + 10 * T * e_max)
    grads = [gx[:, ::-1] if back else gx, gW, gR, gb, None if h0 is None else Mh]
    return e_y, [None if g is None else k * g + eps * gy.sum() for g in grads], e_max


def _eps(dt):
    return float(np.finfo(dt).eps)


# ------------------------------------------------- the tiers against each other
configs = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 5), "D": st.integers(1, 3), "U": st.integers(1, 4),
    "act": st.sampled_from(ACTS), "rec": st.sampled_from(ACTS), "reset_after": st.booleans(),
    "seq": st.booleans(), "back": st.booleans(), "bias": st.booleans(), "h0": st.booleans(),
    "mask": st.sampled_from(["none", "random", "gaps"]), "dtype": st.sampled_from([np.float32, np.float64]),
    "seed": st.integers(0, 2 ** 16)})


def make_inputs(c, dt=None, scale=1.0):
    """x, W, R, b, h0, mask, gy for config ``c``; ``scale`` shrinks W and R (and so the gradients' growth)."""
    dt = dt or c["dtype"]
    rng = np.random.default_rng(c["seed"])
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    x = rng.standard_normal((N, T, D)).astype(dt)
    W = (rng.standard_normal((D, 3 * U)) * 0.7 * scale).astype(dt)
    R = (rng.standard_normal((U, 3 * U)) * 0.6 * scale / np.sqrt(U)).astype(dt)
    b = (rng.standard_normal((2, 3 * U) if c["reset_after"] else 3 * U) * 0.4).astype(dt) if c["bias"] else None
    h0 = (rng.standard_normal((N, U)) * 0.5).astype(dt) if c["h0"] else None
    mask = _mask(c["mask"], N, T, rng)
    gy = rng.standard_normal((N, T, U) if c["seq"] else (N, U)).astype(dt)
    return x, W, R, b, h0, mask, gy


def _run(tier, c, x, W, R, b, h0, mask, gy):
    """Output and (gx, gW, gR, gb, gh0) of the engine node under ``tier``."""
    with nb.kernels(tier):
        ts = [None if v is None else Tensor(v, requires_grad=True) for v in (x, W, R, b, h0)]
        y = gru(*ts, c["act"], c["rec"], c["reset_after"], c["seq"], c["back"], mask)
        y.backward(gy)
    return y.data, [None if t is None else t.grad for t in ts]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_gru_tiers_agree_forward_and_every_gradient(c):
    x, W, R, b, h0, mask, gy = make_inputs(c)
    dt = c["dtype"]
    gy_full = gy if c["seq"] else np.concatenate([np.zeros((c["N"], c["T"] - 1, c["U"]), dt), gy[:, None]], 1)
    e_y, e_g, e_max = gru_error_bounds(x, W, R, b, h0, c["act"], c["rec"], c["reset_after"], c["back"], mask,
                                       gy_full, _eps(dt))
    # both tiers must take the same side of every kink of relu / hard_sigmoid
    assume(kink_distance(x, W, R, b, h0, c["act"], c["rec"], c["reset_after"], c["back"], mask) > 4 * e_max)
    y_f, g_f = _run("fast", c, x, W, R, b, h0, mask, gy)
    route = ("reset_after" if c["reset_after"] else "reset_before") + ("" if mask is None else "_masked")
    assert fast_routes.last("gru_forward") == fast_routes.last("gru_backward") == route
    y_r, g_r = _run("reference", c, x, W, R, b, h0, mask, gy)
    assert y_f.dtype == y_r.dtype == dt
    assert_within(y_f, y_r, e_y if c["seq"] else e_y[:, -1], f"gru y {c}")
    for name, gf, gr, bound in zip(("gx", "gW", "gR", "gb", "gh0"), g_f, g_r, e_g):
        assert (gf is None) == (gr is None) == (bound is None), name
        if gf is not None:
            assert gf.dtype == dt, name
            assert_within(gf, gr, bound, f"gru {name} {c}")


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("need_gx", [True, False])
def test_protocol_functions_skip_what_is_not_needed(reset_after, need_gx):
    """Both tiers' gru_backward: gx only when asked for, gb/gh0 only when given."""
    from numbanet.fast import tier as fast_tier
    from numbanet.reference import tier as ref_tier
    rng = np.random.default_rng(0)
    x, W, R = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 6)), rng.standard_normal((2, 6))
    for tier in (fast_tier, ref_tier):
        y, saved = tier.gru_forward(x, W, R, None, None, "tanh", "sigmoid", reset_after, False, False, None)
        gx, gW, gR, gb, gh0 = tier.gru_backward(np.ones_like(y), saved, need_gx)
        assert (gx is not None) == need_gx and gb is None and gh0 is None
        assert gW.shape == W.shape and gR.shape == R.shape


# ---------------------------------------------------- finite differences
@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_gru_gradients_match_finite_differences(c):
    """float64 central differences for x, W, R, b and h_0 (every one that is given)."""
    # linear or relu gates are unbounded: h_t = z_t h_{t-1} + ... then grows like a product of
    # T factors, and so do the third derivatives that a central difference's error is made of;
    # half-size weights keep that error well under rtol for every gate activation
    x, W, R, b, h0, mask, gy = make_inputs(c, np.float64, scale=0.5)
    # a central difference moves a pre-activation by about 1e-6 times an input entry (a few
    # units at most here): a margin of 1e-4 keeps every probe on one side of a kink
    assume(kink_distance(x, W, R, b, h0, c["act"], c["rec"], c["reset_after"], c["back"], mask) > 1e-4)
    inputs = [v for v in (x, W, R, b, h0) if v is not None]

    def fn(x, W, R, *rest):
        rest = list(rest)
        bb = rest.pop(0) if c["bias"] else None
        hh = rest.pop(0) if c["h0"] else None
        return gru(x, W, R, bb, hh, c["act"], c["rec"], c["reset_after"], c["seq"], c["back"], mask)
    report = check_grad(fn, *inputs, grad_output=gy, rtol=1e-5, atol=1e-7)
    assert report.passed, f"{c}\n{report}"


@pytest.mark.usefixtures("tier")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.integers(1, 4), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["none", "random", "gaps"]), st.integers(0, 999))
def test_layer_return_state_and_initial_state_gradients(N, T, seq, back, reset_after, mask_kind, seed):
    """Through the layer: output and state (h_0 for a row with no real step) against finite differences."""
    rng = np.random.default_rng(seed)
    layer = GRU(3, return_sequences=seq, return_state=True, go_backwards=back, reset_after=reset_after,
                bias_initializer="random_normal", dtype="float64")
    x = rng.standard_normal((N, T, 2))
    layer(x)
    h0 = rng.standard_normal((N, 3))
    mask = _mask(mask_kind, N, T, rng)
    w_out = rng.standard_normal((N, T, 3) if seq else (N, 3))
    w_state = rng.standard_normal((N, 3))
    W, R, b = (w.data.copy() for w in layer.weights)

    def fn(x, h0, W, R, b):
        saved = layer.kernel, layer.recurrent_kernel, layer.bias
        layer.kernel, layer.recurrent_kernel, layer.bias = W, R, b
        try:
            out, state = layer(x, initial_state=h0, mask=mask)
        finally:
            layer.kernel, layer.recurrent_kernel, layer.bias = saved
        return (out * Tensor(w_out)).sum() + (state * Tensor(w_state)).sum()
    report = check_grad(fn, x, h0, W, R, b)
    assert report.passed, str(report)


# ----------------------------------------------------------------- semantics
def _plain_gru(x, W, R, b, h0, reset_after):
    """The GRU equations of Keras 3's GRUCell written out once more, one sample, one step at a time."""
    U = R.shape[0]
    sig = lambda a: 1 / (1 + np.exp(-a))                                       # noqa: E731
    b_x, b_h = _split(b, U, reset_after)
    h, out = h0.copy(), []
    for x_t in x:
        xz, xr, xc = np.split(x_t @ W + b_x, 3)
        if reset_after:
            hz, hr, hc = np.split(h @ R + b_h, 3)
            z, r = sig(xz + hz), sig(xr + hr)
            c = np.tanh(xc + r * hc)
        else:
            z, r = sig(xz + h @ R[:, :U]), sig(xr + h @ R[:, U:2 * U])
            c = np.tanh(xc + (r * h) @ R[:, 2 * U:])
        h = z * h + (1 - z) * c
        out.append(h)
    return np.array(out)


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_rows_equal_the_run_over_their_real_steps(reset_after):
    """Pre-padded ids through Embedding(mask_zero): each row's last output is the run over its real ids,
    computed here by the formulas alone, one sample at a time."""
    emb = Embedding(10, 3, mask_zero=True, dtype="float64")
    layer = GRU(4, reset_after=reset_after, return_sequences=True, bias_initializer="random_normal",
                dtype="float64")
    ids = np.array([[0, 0, 5, 2, 7], [3, 1, 4, 1, 5], [6, 0, 0, 2, 0]])
    y = layer(emb(ids)).data                                       # the mask travels with the embedding
    E, (W, R, b) = emb.get_weights()[0], layer.get_weights()
    for row in range(3):
        real = ids[row][ids[row] != 0]
        want = _plain_gru(E[real], W, R, b, np.zeros(4), reset_after)
        bound = gru_error_bounds(E[real][None], W, R, b, None, "tanh", "sigmoid", reset_after, False, None,
                                 np.zeros((1, len(real), 4)), _eps(np.float64))[0][0]
        seen = np.cumsum(ids[row] != 0) - 1                        # index of the last real step so far
        for t in range(5):
            if seen[t] < 0:
                np.testing.assert_array_equal(y[row, t], 0, err_msg=f"row {row} step {t} before any real step")
            else:
                assert_within(y[row, t], want[seen[t]], bound[seen[t]], f"row {row} step {t}")


@pytest.mark.usefixtures("tier")
def test_go_backwards_reads_time_in_reverse_and_keeps_that_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3))
    fwd = GRU(4, return_sequences=True, dtype="float64")
    fwd(x)
    back = GRU(4, return_sequences=True, go_backwards=True, dtype="float64")
    back(x)
    back.set_weights(fwd.get_weights())
    W, R, b = fwd.get_weights()
    e_y = gru_error_bounds(x[:, ::-1], W, R, b, None, "tanh", "sigmoid", True, False, None,
                           np.zeros((2, 5, 4)), _eps(np.float64))[0]
    assert_within(back(x).data, fwd(x[:, ::-1]).data, e_y, "go_backwards")
    for row in range(2):
        assert_within(back(x).data[row], _plain_gru(x[row, ::-1], W, R, b, np.zeros(4), True), e_y[row], "plain")


def test_weights_layout_param_count_init_and_shapes():
    utils.set_random_seed(0)
    layer = GRU(6, return_sequences=True)
    y = layer(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 6) and y.dtype == np.float32
    assert [w.shape for w in layer.get_weights()] == [(3, 18), (6, 18), (2, 18)]
    assert [w.name.split("/")[-1] for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert layer.count_params() == 3 * 6 * (3 + 6) + 6 * 6
    R = layer.recurrent_kernel.data
    np.testing.assert_allclose(R @ R.T, np.eye(6), atol=1e-5)      # orthogonal rows (U, 3U)
    old = GRU(5, reset_after=False, use_bias=True)
    old(np.zeros((1, 2, 4)))
    assert [w.shape for w in old.get_weights()] == [(4, 15), (5, 15), (15,)] and old.count_params() == 15 * 9 + 15
    nobias = GRU(5, use_bias=False)
    nobias(np.zeros((1, 2, 4)))
    assert [w.shape for w in nobias.get_weights()] == [(4, 15), (5, 15)]
    assert layer.compute_output_shape((None, None, 3)) == (None, None, 6)
    assert GRU(2).compute_output_shape((None, 5, 3)) == (None, 2)
    assert GRU(2, return_state=True).compute_output_shape((None, 5, 3)) == ((None, 2), (None, 2))
    out, state = GRU(2, return_state=True)(np.ones((4, 3, 1)))
    np.testing.assert_array_equal(out.data, state.data)
    cfg = GRU(3, activation=None, recurrent_activation="hard_sigmoid", reset_after=False, go_backwards=True,
              name="g").get_config()
    assert cfg["activation"] == "linear" and cfg["reset_after"] is False
    assert GRU(**{**cfg, "name": "g2"}).get_config() == {**cfg, "name": "g2"}


def test_summary_counts_the_gru_parameters(capsys):
    model = nb.Sequential([nb.layers.Input((7, 4)), GRU(5, return_sequences=True), GRU(3), Dense(2)])
    model.summary()
    text = capsys.readouterr().out
    assert "165" in text and "90" in text                          # 3*5*(4+5) + 6*5 and 3*3*(5+3) + 6*3
    assert model.count_params() == 165 + 90 + 3 * 2 + 2


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_stays_float32_and_float64_stays_float64(dtype):
    layer = GRU(3, return_sequences=True, return_state=True, dtype=dtype)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4, 2)), requires_grad=True)
    out, state = layer(x, initial_state=np.zeros((2, 3)), mask=np.array([[1, 1, 0, 1], [0, 0, 0, 0]], bool))
    (out.sum() + state.sum()).backward()
    assert out.dtype == state.dtype == np.dtype(dtype)
    assert all(w.grad.dtype == np.dtype(dtype) for w in layer.weights)


def test_initial_state_as_a_list_and_the_state_of_an_empty_row():
    """A one-element list works like the array; a row with no real step returns h_0 as its state, output 0."""
    rng = np.random.default_rng(2)
    layer = GRU(3, return_state=True, dtype="float64")
    x, h0 = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 3))
    mask = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], bool)
    out, state = layer(x, initial_state=[h0], mask=mask)
    out2, state2 = layer(x, initial_state=h0, mask=mask)
    np.testing.assert_array_equal(state.data, state2.data)
    np.testing.assert_array_equal(out.data[1], 0)
    np.testing.assert_array_equal(state.data[1], h0[1])
    np.testing.assert_array_equal(out.data[0], state.data[0])


# ----------------------------------------------------------------- learning
def _first_sign_task(n, T, rng):
    x = rng.standard_normal((n, T, 1)).astype(np.float32)
    return x, (x[:, 0, 0] > 0).astype(np.float32)[:, None]


def test_gru_learns_to_remember_the_first_step():
    """Tell the sign of the FIRST of 15 noisy steps; only the last output is seen.

    The answer is 14 steps back behind as much noise, so the update gate must learn
    to hold the state: a cell without gradients through time, or with its gates
    mixed up, stays near chance (50%).
    """
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _first_sign_task(2048, 15, rng)
    xv, yv = _first_sign_task(512, 15, rng)
    model = nb.Sequential([nb.layers.Input((15, 1)), GRU(16), Dense(1, activation="sigmoid")])
    model.compile(optimizer=nb.optimizers.Adam(0.005), loss="binary_crossentropy", metrics=["accuracy"])
    for epoch in range(25):   # above 0.95 from the 7th epoch on here
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        with no_grad():
            acc = float(((model.predict(xv) > 0.5) == (yv > 0.5)).mean())
        if acc > 0.95:
            break
    print(f"first-sign task: accuracy {acc:.3f} after {epoch + 1} epochs")
    assert acc > 0.95, f"accuracy {acc:.3f} after {epoch + 1} epochs"


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 3)), ["rank 3", "(None, 3)"]),
    (np.zeros((2, 3, 4, 5)), ["rank 3"]),
    (np.zeros((2, 0, 4)), ["time step"]),
])
def test_bad_input_shapes(bad, words):
    layer = GRU(3, name="gru_under_test")
    with pytest.raises(ValueError) as info:
        layer(bad)
    for w in ["gru_under_test"] + words:
        assert w in str(info.value)


def test_bad_features_initial_state_and_mask():
    layer = GRU(3)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="5 features"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match=r"initial_state must have shape \(batch, units\) = \(2, 3\)"):
        layer(np.zeros((2, 4, 5)), initial_state=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="one-element list, got a list of 2"):
        layer(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(TypeError, match="numeric array"):
        layer(np.zeros((2, 4, 5)), initial_state=np.array([["a"] * 3] * 2))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 4\)"):
        layer(np.zeros((2, 4, 5)), mask=np.ones((2, 5), bool))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="activation must be one of .*'hard_sigmoid'.*got 'softmax'"):
        GRU(3, activation="softmax")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        GRU(3, recurrent_activation="elu")
    with pytest.raises(ValueError, match="units"):
        GRU(0)
    with pytest.raises(TypeError, match="units"):
        GRU(2.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        GRU(3, unit_forget_bias=True)
    with pytest.raises(ValueError, match="kernel_initializer"):
        GRU(3, kernel_initializer="nope")


def test_engine_function_checks_shapes_and_names():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"kernel must have shape \(features, 3\*units\) = \(4, 6\), got \(5, 6\)"):
        gru(x, np.zeros((5, 6)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"recurrent kernel must have shape \(units, 3\*units\)"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 6\) with reset_after=True, got \(6,\)"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 6)), np.zeros(6))
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\) with reset_after=False"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 6)), np.zeros((2, 6)), reset_after=False)
    with pytest.raises(ValueError, match=r"initial state must have shape \(batch, units\) = \(2, 2\)"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 6)), h0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="time >= 1"):
        gru(np.zeros((2, 0, 4)), np.zeros((4, 6)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="activation must be one of"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 6)), activation="softmax")
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 3\)"):
        gru(x, np.zeros((4, 6)), np.zeros((2, 6)), mask=np.ones((3, 2), bool))
