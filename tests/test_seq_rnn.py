"""SimpleRNN: gradient checks (finite differences), Keras parity, learning, bad input."""
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings, HealthCheck
from hypothesis import strategies as st

from numbanet import losses, utils
from numbanet.engine import Tensor, check_grad, no_grad
from numbanet.engine.functional import simple_rnn
from numbanet.layers import Dense, SimpleRNN
from numbanet.reference.recurrent import simple_rnn_forward as _reference_rnn  # the plain loop over time
from numbanet.reference.recurrent import simple_rnn_states

from bounds import LIBM_ULP, assert_within, elementwise_bound, matmul_bound

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _reference_rnn_bound(x, W, R, b, h0, act, go_backwards, mask=None):
    """Rounding bound on |numbanet - _reference_rnn|, (N, T, U) in processing order.

    Each step adds the bound of one affine sum, x_t @ W + h @ R + b (D + U + 1 terms),
    and of the activation (a libm call and <= 3 roundings); the error already in h is
    carried through |R|, and the activations' slopes are at most 1.
    """
    N, T, _ = x.shape
    h = np.zeros((N, W.shape[1])) if h0 is None else h0
    e = np.zeros_like(h)
    e_y = np.zeros_like(h)
    WR, bb = np.concatenate([W, R]), 0 if b is None else b
    out = []
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        xh = np.concatenate([x[:, t], h], axis=1)                  # (N, D + U)
        z = xh @ WR + bb
        new_e = matmul_bound(xh, WR, add=bb) + e @ np.abs(R) + elementwise_bound(np.abs(z) + 1, LIBM_ULP + 3)
        keep = np.ones((N, 1), bool) if mask is None else mask[:, t:t + 1]
        f = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0), "linear": lambda a: a,
             "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[act]
        h = np.where(keep, f(z), h)
        e, e_y = np.where(keep, new_e, e), np.where(keep, new_e, e_y)
        out.append(e_y)
    return np.stack(out, axis=1)


configs = st.fixed_dictionaries({
    "N": st.integers(1, 3), "T": st.integers(1, 4), "D": st.integers(1, 3), "U": st.integers(1, 4),
    "act": st.sampled_from(["tanh", "relu", "sigmoid", "linear"]),
    "seq": st.booleans(), "back": st.booleans(), "bias": st.booleans(), "h0": st.booleans(),
    "masked": st.booleans(), "seed": st.integers(0, 2 ** 16),
})


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_simple_rnn_gradients_match_finite_differences(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["N"], c["T"], c["D"]))
    W = rng.standard_normal((c["D"], c["U"])) * 0.6
    R = rng.standard_normal((c["U"], c["U"])) * 0.4
    b = rng.standard_normal(c["U"]) * 0.3 if c["bias"] else None
    h0 = rng.standard_normal((c["N"], c["U"])) * 0.5 if c["h0"] else None
    out_shape = (c["N"], c["T"], c["U"]) if c["seq"] else (c["N"], c["U"])
    gy = rng.standard_normal(out_shape)
    mask = rng.random((c["N"], c["T"])) < 0.6 if c["masked"] else None
    if c["act"] == "relu":  # keep every pre-activation x_t W + h_{t-1} R + b away from the kink at 0
        h = simple_rnn_states(x, W, R, b, h0, "relu", c["back"], mask)        # (N, T+1, U), h[:, 0] = h_0
        xs = x[:, ::-1] if c["back"] else x                                   # processing order
        pres = xs @ W + h[:, :-1] @ R + (0 if b is None else b)              # a_t (N, T, U), every step
        # a central difference moves one input by 1e-6, so a pre-activation by 1e-6 times an
        # entry of x, W, R or h (a few units at most here): a margin of 1e-4 keeps every probe on one side
        assume(np.abs(pres).min() > 1e-4)
    inputs = [x, W, R] + [v for v in (b, h0) if v is not None]

    def fn(x, W, R, *rest):
        rest = list(rest)
        bb = rest.pop(0) if c["bias"] else None
        hh = rest.pop(0) if c["h0"] else None
        return simple_rnn(x, W, R, bb, hh, c["act"], c["seq"], c["back"], mask)

    # forward against the plain loop
    y = fn(*[Tensor(v) for v in inputs]).data
    ref = _reference_rnn(x, W, R, b, h0, c["act"], c["back"], mask)
    bound = _reference_rnn_bound(x, W, R, b, h0, c["act"], c["back"], mask)
    assert_within(y, ref if c["seq"] else ref[:, -1], bound if c["seq"] else bound[:, -1], str(c))
    report = check_grad(fn, *inputs, grad_output=gy, rtol=1e-5, atol=1e-7)
    assert report.passed, str(report)


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.booleans(), st.booleans(), st.integers(0, 999))
def test_layer_return_state_and_initial_state_gradients(N, T, seq, back, seed):
    rng = np.random.default_rng(seed)
    layer = SimpleRNN(3, return_sequences=seq, return_state=True, go_backwards=back, dtype="float64")
    x = rng.standard_normal((N, T, 2))
    layer(x)  # build
    h0 = rng.standard_normal((N, 3))
    w_out, w_state = rng.standard_normal((2, N, T if seq else 1, 3))
    w_out = w_out if seq else w_out[:, 0]

    W, R, b = (w.data.copy() for w in layer.weights)

    def fn2(x, h0, W, R, b):
        out, state = _call_with_weights(layer, x, h0, W, R, b)
        return (out * Tensor(w_out)).sum() + (state * Tensor(w_state[:, 0])).sum()
    report = check_grad(fn2, x, h0, W, R, b)
    assert report.passed, str(report)


def _call_with_weights(layer, x, h0, W, R, b):
    saved = layer.kernel, layer.recurrent_kernel, layer.bias
    layer.kernel, layer.recurrent_kernel, layer.bias = W, R, b
    try:
        return layer(x, initial_state=h0)
    finally:
        layer.kernel, layer.recurrent_kernel, layer.bias = saved


def test_go_backwards_returns_processing_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3))
    fwd = SimpleRNN(4, return_sequences=True, dtype="float64")
    fwd(x)
    back = SimpleRNN(4, return_sequences=True, go_backwards=True, dtype="float64")
    back(x)
    back.set_weights(fwd.get_weights())
    # reading x backwards equals reading the reversed x forwards, in the same (processing) order
    # the same sums on the same rows, though not necessarily blocked alike by BLAS: the rounding bound
    bound = _reference_rnn_bound(x[:, ::-1], *fwd.get_weights(), None, "tanh", False)
    assert_within(back(x).data, fwd(x[:, ::-1]).data, bound)
    last = SimpleRNN(4, go_backwards=True, dtype="float64")
    last(x)
    last.set_weights(fwd.get_weights())
    assert_within(last(x).data, fwd(x[:, ::-1]).data[:, -1], bound[:, -1])


def test_weights_layout_init_and_shapes():
    utils.set_random_seed(0)
    layer = SimpleRNN(6, return_sequences=True)
    y = layer(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 6) and y.dtype == np.float32
    assert [w.shape for w in layer.get_weights()] == [(3, 6), (6, 6), (6,)]
    assert [w.name.split("/")[-1] for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    R = layer.recurrent_kernel.data
    np.testing.assert_allclose(R @ R.T, np.eye(6), atol=1e-5)  # orthogonal
    assert layer.compute_output_shape((None, None, 3)) == (None, None, 6)
    assert SimpleRNN(2).compute_output_shape((None, 5, 3)) == (None, 2)
    assert SimpleRNN(2, return_state=True).compute_output_shape((None, 5, 3)) == ((None, 2), (None, 2))
    out, state = SimpleRNN(2, return_state=True)(np.ones((4, 3, 1)))
    np.testing.assert_array_equal(out.data, state.data)
    cfg = SimpleRNN(3, activation="relu", go_backwards=True, name="r").get_config()
    assert SimpleRNN(**{**cfg, "name": "r2"}).get_config() == {**cfg, "name": "r2"}


def test_mask_from_embedding_skips_padding():
    """Pre-padded ids with mask_zero: the last output equals the run over the real ids alone."""
    from numbanet.layers import Embedding
    emb = Embedding(10, 3, mask_zero=True, dtype="float64")
    rnn = SimpleRNN(4, dtype="float64")
    ids = np.array([[0, 0, 5, 2, 7], [3, 1, 4, 1, 5]])
    y = rnn(emb(ids), mask=emb.compute_mask(ids))
    # the same steps on each sequence, in a batch of another size: within the rounding bound
    E, (W, R, b) = emb.get_weights()[0], rnn.get_weights()
    for row, real in ((0, ids[:1, 2:]), (1, ids[1:])):
        bound = _reference_rnn_bound(E[real], W, R, b, None, "tanh", False)[0, -1]
        assert_within(y.data[row], rnn(emb(real)).data[0], bound, f"sequence {row}")


def test_dense_on_sequence_output_acts_on_last_axis():
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    h = SimpleRNN(5, return_sequences=True)(x)
    y = Dense(7)(h)
    assert y.shape == (2, 4, 7)


@pytest.mark.parametrize("bad, err, words", [
    (np.zeros((2, 3)), ValueError, ["rank 3", "(None, 3)"]),
    (np.zeros((2, 3, 4, 5)), ValueError, ["rank 3"]),
    (np.zeros((2, 0, 4)), ValueError, ["time step"]),
])
def test_bad_input_shapes(bad, err, words):
    layer = SimpleRNN(3, name="rnn_under_test")
    with pytest.raises(err) as info:
        layer(bad)
    for w in ["rnn_under_test"] + words:
        assert w in str(info.value)


def test_bad_features_after_build_and_bad_initial_state():
    layer = SimpleRNN(3)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="5 features"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match=r"initial_state must have shape"):
        layer(np.zeros((2, 4, 5)), initial_state=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="one-element list"):
        layer(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))] * 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 4\)"):
        layer(np.zeros((2, 4, 5)), mask=np.ones((2, 5), bool))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="activation"):
        SimpleRNN(3, activation="softmax")
    with pytest.raises(ValueError, match="units"):
        SimpleRNN(0)
    with pytest.raises(TypeError, match="units"):
        SimpleRNN(2.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        SimpleRNN(3, recurrent_dropotu=0.1)


def test_engine_function_checks_shapes():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="kernel must have shape"):
        simple_rnn(x, np.zeros((5, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="recurrent kernel"):
        simple_rnn(x, np.zeros((4, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="activation"):
        simple_rnn(x, np.zeros((4, 2)), np.zeros((2, 2)), activation="elu")


# ----------------------------------------------------------------- learning
def _count_task(n, T, rng):
    x = rng.integers(0, 2, (n, T, 1)).astype(np.float32)
    return x, x.sum(axis=(1, 2)).astype(np.int64)


def test_rnn_learns_to_count_ones():
    """Classify the number of ones in a binary sequence of length 10 (11 classes).

    The answer depends on every step, so it needs memory; a broken BPTT (e.g.
    gradients only through the last step) stays near chance (~25% for the
    most common count). Trained with a hand-written loop (Adam-like updates
    done here, to depend on no optimizer file).
    """
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    T = 10
    x, y = _count_task(2048, T, rng)
    xv, yv = _count_task(512, T, rng)
    rnn = SimpleRNN(24, return_sequences=False)
    head = Dense(T + 1)
    loss_fn = losses.SparseCategoricalCrossentropy(from_logits=True)
    rnn(x[:2])
    head(np.zeros((1, 24), np.float32))
    params = rnn.trainable_weights + head.trainable_weights
    m = [np.zeros_like(p.data) for p in params]
    v = [np.zeros_like(p.data) for p in params]
    lr, b1, b2, step = 0.01, 0.9, 0.999, 0
    for epoch in range(30):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            for p in params:
                p.zero_grad()
            loss = loss_fn(y[idx], head(rnn(x[idx])))
            loss.backward()
            step += 1
            for p, mi, vi in zip(params, m, v):
                g = np.clip(p.grad, -1, 1)
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * g * g
                p.data -= lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step) * mi / (np.sqrt(vi) + 1e-7)
        with no_grad():
            acc = float((head(rnn(xv)).data.argmax(-1) == yv).mean())
        if acc > 0.95:
            break
    print(f"count task: accuracy {acc:.3f} after {epoch + 1} epochs")
    assert acc > 0.95, f"accuracy {acc:.3f} after {epoch + 1} epochs"


# ------------------------------------------------------------ Keras parity
@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@pytest.mark.parametrize("act, seq, back, use_h0, use_bias, masked", [
    ("tanh", True, False, False, True, False),
    ("tanh", False, False, True, True, False),
    ("relu", True, True, False, True, False),
    ("tanh", True, True, True, False, False),
    ("relu", False, True, True, True, False),
    ("tanh", True, False, True, True, True),
    ("tanh", False, True, False, True, True),
    ("relu", True, True, True, True, True),
])
def test_keras_parity_outputs_states_gradients(tf, act, seq, back, use_h0, use_bias, masked):
    rng = np.random.default_rng(3)
    N, T, D, U = 4, 6, 4, 5
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = rng.standard_normal((N, U)).astype(np.float32)
    gy = rng.standard_normal((N, T, U) if seq else (N, U)).astype(np.float32)
    gs = rng.standard_normal((N, U)).astype(np.float32)
    mask = None
    if masked:  # leading, inner and trailing padding; a sample without padding; one with no real step
        mask = np.array([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=bool)
    kw = dict(activation=act, use_bias=use_bias, return_sequences=seq, return_state=True, go_backwards=back)
    k_layer = tf.keras.layers.SimpleRNN(U, **kw)
    xt, h0t = tf.constant(x), tf.constant(h0)
    k_layer(xt)
    weights = [w + rng.standard_normal(w.shape).astype(np.float32) * 0.1 for w in k_layer.get_weights()]
    k_layer.set_weights(weights)
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t])
        k_out, k_state = k_layer(xt, initial_state=[h0t] if use_h0 else None,
                                 mask=None if mask is None else tf.constant(mask))
        k_loss = tf.reduce_sum(k_out * gy) + tf.reduce_sum(k_state * gs)
    k_grads = tape.gradient(k_loss, [xt, h0t] + k_layer.trainable_weights)

    layer = SimpleRNN(U, **kw)
    layer(x)
    layer.set_weights(weights)
    xn, h0n = Tensor(x, requires_grad=True), Tensor(h0, requires_grad=True)
    out, state = layer(xn, initial_state=[h0n] if use_h0 else None, mask=mask)
    np.testing.assert_allclose(out.data, k_out.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.data, k_state.numpy(), rtol=1e-5, atol=1e-5)
    ((out * Tensor(gy)).sum() + (state * Tensor(gs)).sum()).backward()
    ours = [xn.grad, h0n.grad if use_h0 else None] + [w.grad for w in layer.trainable_weights]
    for name, a, k in zip(["x", "h0", "kernel", "recurrent_kernel", "bias"], ours, k_grads):
        if k is None:   # only an unused initial state has no gradient in TensorFlow, and none here either
            assert name == "h0" and not use_h0 and a is None, name
            continue
        np.testing.assert_allclose(a, k.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
def test_weight_gradients_when_the_input_needs_no_gradient():
    """Raw data as input (no requires_grad): gx is skipped, weight gradients unchanged."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 2))
    W, R, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) * 0.5, rng.standard_normal(3)
    grads = []
    for x_needs_grad in (True, False):
        ts = [Tensor(v, requires_grad=True) for v in (W, R, b)]
        xt = Tensor(x, requires_grad=x_needs_grad)
        simple_rnn(xt, *ts, go_backwards=True).sum().backward()
        assert (xt.grad is not None) == x_needs_grad
        grads.append([t.grad for t in ts])
    for a, c in zip(*grads):
        np.testing.assert_array_equal(a, c)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(configs)
def test_simple_rnn_split_over_threads_matches_the_plain_loop_and_finite_differences(monkeypatch, c):
    """The fast tier's row split (two threads, every call split, N >= 2 so both blocks have rows):
    the output against the reference loop within its rounding bound, float64 gradients (h0's too)
    against central differences, and the routes say the split ran."""
    import numbanet as nb
    from numbanet.fast import lstm as fast_lstm
    from numbanet.fast import routes
    monkeypatch.setattr(fast_lstm, "RECURRENT_SPLIT_MIN_WORK", 0)
    c = {**c, "N": max(c["N"], 2) + c["seed"] % 3, "masked": c["masked"] and c["act"] != "relu"}
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["N"], c["T"], c["D"]))
    W, R = rng.standard_normal((c["D"], c["U"])) * 0.6, rng.standard_normal((c["U"], c["U"])) * 0.4
    b = rng.standard_normal(c["U"]) * 0.3 if c["bias"] else None
    h0 = rng.standard_normal((c["N"], c["U"])) * 0.5 if c["h0"] else None
    mask = rng.random((c["N"], c["T"])) < 0.6 if c["masked"] else None
    act = "tanh" if c["act"] == "relu" else c["act"]          # no kink for the differences to straddle
    gy = rng.standard_normal((c["N"], c["T"], c["U"]) if c["seq"] else (c["N"], c["U"]))
    inputs = [x, W, R] + [v for v in (b, h0) if v is not None]

    def fn(x, W, R, *rest):
        rest = list(rest)
        bb = rest.pop(0) if c["bias"] else None
        hh = rest.pop(0) if c["h0"] else None
        return simple_rnn(x, W, R, bb, hh, act, c["seq"], c["back"], mask)

    nb.utils.set_num_threads(2)
    try:
        with nb.kernels("fast"):
            y = fn(*[Tensor(v, requires_grad=True) for v in inputs])
            y.backward(gy)
            assert routes.last("simple_rnn_forward").endswith("_split")
            assert routes.last("simple_rnn_backward").endswith("_split")
            ref = _reference_rnn(x, W, R, b, h0, act, c["back"], mask)
            bound = _reference_rnn_bound(x, W, R, b, h0, act, c["back"], mask)
            assert_within(y.data, ref if c["seq"] else ref[:, -1], bound if c["seq"] else bound[:, -1], str(c))
            report = check_grad(fn, *inputs, grad_output=gy, rtol=1e-5, atol=1e-7)
    finally:
        nb.utils.set_num_threads(1)
    assert report.passed, str(report)
