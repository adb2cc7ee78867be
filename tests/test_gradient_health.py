"""GradientHealth and the dL/dh_t hook of the recurrent nodes.

* the hook: each tier's BPTT writes dh_t = dL/dh_t into ``record_dh``; checked against the
  same cell unrolled step by step with elementwise engine ops (retain_grad on every h_t),
  in float64, within a rounding bound, for SimpleRNN, LSTM and GRU, masks, go_backwards,
  both tiers; and dh_T = gy_T exactly when only h_T feeds the loss;
* the callback: gradient norms and update ratios against a hand-written NumPy forward and
  backward of the same batches with the same weights; dead-ReLU fraction on a constructed
  case; per-step norms of the probe against the unrolled cell; records as plain data;
* recording off costs nothing: without a recorder the tier is called exactly as before,
  and training with the callback gives bit-identical weights;
* the picture holds the recorded numbers; bad arguments are clear errors.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import numbanet as nb
from numbanet.engine import Tensor
from numbanet.engine.functional import gru, lstm, simple_rnn
from numbanet.engine import tiers

from bounds import SAFETY, assert_within

EPS64 = np.finfo(np.float64).eps
GATES = {"simple": 1, "lstm": 4, "gru": 3, "gru_before": 3}


# ---------------------------------------------------------------- the unrolled cells
def _unroll(cell, x, W, R, b, mask):
    """The cell unrolled over x (N, T, D) in processing order with engine ops.

    Returns (hs, products, outputs): hs[t] the state h_{t+1} (retain_grad'ed), products[t]
    a list of (tensor, R block) for the recurrent products of step t+1 (retain_grad'ed),
    outputs[t] = h_t s_t (0 before the first real step).
    """
    N, T, _ = x.shape
    U = R.shape[0]
    m = np.ones((N, T)) if mask is None else mask.astype(np.float64)
    seen = (np.cumsum(m, axis=1) > 0).astype(np.float64)
    Wt, Rt = Tensor(W), Tensor(R, requires_grad=True)    # R wants a gradient: so does h_0 R, retained
    h = Tensor(np.zeros((N, U)))
    c = Tensor(np.zeros((N, U)))
    hs, products, outputs = [], [], []
    for t in range(T):
        xt = x[:, t]
        mt = m[:, t:t + 1]
        if cell == "simple":
            hR = h @ Rt
            h_new = nb.tanh(xt @ Wt + hR + b)
            prods = [(hR, R)]
        elif cell == "lstm":
            hR = h @ Rt
            z = xt @ Wt + hR + b
            i, f = nb.sigmoid(z[:, :U]), nb.sigmoid(z[:, U:2 * U])
            g, o = nb.tanh(z[:, 2 * U:3 * U]), nb.sigmoid(z[:, 3 * U:])
            c_new = f * c + i * g
            h_new = o * nb.tanh(c_new)
            c = c_new * mt + c * (1 - mt)
            prods = [(hR, R)]
        elif cell == "gru":                                   # reset_after=True, b (2, 3U)
            xw = xt @ Wt + b[0]
            hR = h @ Rt
            hb = hR + b[1]
            z = nb.sigmoid(xw[:, :U] + hb[:, :U])
            r = nb.sigmoid(xw[:, U:2 * U] + hb[:, U:2 * U])
            cand = nb.tanh(xw[:, 2 * U:] + r * hb[:, 2 * U:])
            h_new = z * h + (1 - z) * cand
            prods = [(hR, R)]
        else:                                                 # "gru_before": reset_after=False, b (3U,)
            xw = xt @ Wt + b
            hzr = h @ Tensor(R[:, :2 * U], requires_grad=True)
            z = nb.sigmoid(xw[:, :U] + hzr[:, :U])
            r = nb.sigmoid(xw[:, U:2 * U] + hzr[:, U:])
            q = (r * h) @ Tensor(R[:, 2 * U:], requires_grad=True)
            cand = nb.tanh(xw[:, 2 * U:] + q)
            h_new = z * h + (1 - z) * cand
            prods = [(hzr, R[:, :2 * U]), (q, R[:, 2 * U:])]
        h = h_new * mt + h * (1 - mt)                         # a masked row keeps its state
        for p, _ in prods:
            p.retain_grad()
        h.retain_grad()
        hs.append(h)
        products.append(prods)
        outputs.append(h * seen[:, t:t + 1])
    return hs, products, outputs


def _engine(cell, x, W, R, b, mask, return_sequences, go_backwards):
    if cell == "simple":
        return simple_rnn(x, W, R, b, mask=mask, return_sequences=return_sequences, go_backwards=go_backwards)
    if cell == "lstm":
        return lstm(x, W, R, b, mask=mask, return_sequences=return_sequences, go_backwards=go_backwards)
    return gru(x, W, R, b, reset_after=cell == "gru", mask=mask, return_sequences=return_sequences,
               go_backwards=go_backwards)


def _weights(cell, D, U, rng):
    """W, R, b in float64; R scaled to spectral norm 0.9 so that BPTT does not amplify rounding errors."""
    G = GATES[cell]
    W = rng.normal(0, 0.6, (D, G * U))
    R = rng.normal(0, 0.6, (U, G * U))
    R *= 0.9 / np.linalg.norm(R, 2)
    b = rng.normal(0, 0.3, (2, G * U) if cell == "gru" else (G * U,))
    return W, R, b


def _bptt_bound(hs, products, K):
    """Bound on |dh_t (tier) - dh_t (unrolled)| per step.

    Step s of BPTT adds one product dP_s R^T of K terms and a few (<= 8) elementwise
    operations, each rounding relative to m_s = |dP_s| @ |R^T| + |dh_s|; with
    ||R||_2 < 1 and gate derivatives <= 1 the errors of later steps are not amplified on
    the way back, so dh_t carries at most the sum over s >= t: SAFETY (T - t) (K + 8) eps max m.
    """
    T = len(hs)
    m = [sum(np.abs(p.grad) @ np.abs(Rb.T) for p, Rb in prods) + np.abs(h.grad) for h, prods in zip(hs, products)]
    worst = np.maximum.accumulate([float(mk.max()) for mk in m][::-1])[::-1]   # max over s >= t
    return np.array([SAFETY * (T - t) * (K + 8) * EPS64 * worst[t] for t in range(T)])


def _record_and_unroll(cell, N, T, D, U, mask_kind, return_sequences, go_backwards, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (N, T, D))
    W, R, b = _weights(cell, D, U, rng)
    mask = None
    if mask_kind == "random":
        mask = rng.random((N, T)) < 0.6
    elif mask_kind == "post_padding":
        lengths = rng.integers(1, T + 1, N)
        mask = np.arange(T)[None] < lengths[:, None]
    C = rng.normal(0, 1, (N, T, U))                           # L = sum_t <y_t, C_t> (only y_T without sequences)
    y = _engine(cell, Tensor(x, requires_grad=True), Tensor(W), Tensor(R), Tensor(b), mask, return_sequences,
                go_backwards)
    y.creator.record_dh = np.full((N, T, U), np.nan)
    (y * (C if return_sequences else C[:, -1])).sum().backward()
    recorded = y.creator.record_dh

    xs = x[:, ::-1] if go_backwards else x                    # processing order
    ms = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    hs, products, outputs = _unroll(cell, Tensor(np.ascontiguousarray(xs), requires_grad=True), W, R,
                                    Tensor(b), ms)
    terms = [(outputs[t] * C[:, t]).sum() for t in range(T)] if return_sequences else [(outputs[-1] * C[:, -1]).sum()]
    loss = terms[0]
    for term in terms[1:]:
        loss = loss + term
    loss.backward()
    return recorded, hs, products, C, mask


CELLS = ["simple", "lstm", "gru", "gru_before"]


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mask_kind, go_backwards", [(None, False), ("random", False), ("post_padding", True)])
def test_recorded_dh_equals_the_unrolled_cells_h_grad(cell, mask_kind, go_backwards):
    recorded, hs, products, _, _ = _record_and_unroll(cell, 3, 6, 2, 3, mask_kind, True, go_backwards, seed=7)
    expected = np.stack([h.grad for h in hs], axis=1)         # (N, T, U)
    bound = _bptt_bound(hs, products, GATES[cell] * 3)
    assert_within(recorded, expected, bound[None, :, None], f"{cell} dL/dh_t ({tiers.active().__name__})")
    assert np.abs(expected).min(axis=(0, 2)).max() > 0        # every step really got a gradient to compare


@pytest.mark.usefixtures("tier")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(cell=st.sampled_from(CELLS), N=st.integers(1, 3), T=st.integers(1, 5), D=st.integers(1, 3),
       U=st.integers(1, 3), mask_kind=st.sampled_from([None, "random", "post_padding"]),
       return_sequences=st.booleans(), go_backwards=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_recorded_dh_property(cell, N, T, D, U, mask_kind, return_sequences, go_backwards, seed):
    recorded, hs, products, _, _ = _record_and_unroll(cell, N, T, D, U, mask_kind, return_sequences,
                                                      go_backwards, seed)
    expected = np.stack([h.grad for h in hs], axis=1)
    bound = _bptt_bound(hs, products, GATES[cell] * U)
    assert_within(recorded, expected, bound[None, :, None], f"{cell} N={N} T={T} U={U}")


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("cell", CELLS)
def test_last_step_dh_is_gy_T_when_only_h_T_feeds_the_loss(cell):
    recorded, hs, _, C, _ = _record_and_unroll(cell, 4, 5, 3, 2, None, False, False, seed=3)
    np.testing.assert_array_equal(recorded[:, -1], C[:, -1])  # dh_T = gy_T: nothing comes back from T+1
    norms = np.linalg.norm(recorded[:, -1], axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(C[:, -1], axis=1), rtol=4 * EPS64)


# ---------------------------------------------------------------- recording off
@pytest.mark.parametrize("kernels", ["fast", "reference"])
@pytest.mark.parametrize("cell, name", [("simple", "simple_rnn_backward"), ("lstm", "lstm_backward"),
                                        ("gru", "gru_backward")])
def test_without_a_recorder_the_tier_is_called_as_before(cell, name, kernels, monkeypatch):
    rng = np.random.default_rng(0)
    W, R, b = _weights(cell, 2, 3, rng)
    x = rng.normal(0, 1, (2, 4, 2))
    with nb.kernels(kernels):
        module = tiers.active()
        calls = []
        original = getattr(module, name)

        def spy(*args, **kwargs):
            calls.append((len(args), dict(kwargs)))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
        grads = []
        for record in (False, True):
            xt = Tensor(x, requires_grad=True)
            Wt, Rt, bt = Tensor(W, requires_grad=True), Tensor(R, requires_grad=True), Tensor(b, requires_grad=True)
            y = _engine(cell, xt, Wt, Rt, bt, None, True, False)
            if record:
                y.creator.record_dh = np.zeros((2, 4, 3))
            (y * y).sum().backward()
            grads.append([t.grad for t in (xt, Wt, Rt, bt)])
    assert calls[0] == (3, {})                                # (gy, saved, need_gx): no keyword at all
    assert set(calls[1][1]) == {"dh_out"}
    for a, b_ in zip(*grads):                                 # recording changes no gradient, not one bit
        np.testing.assert_array_equal(a, b_)


def _lyrics_like(cell, seed=0):
    nb.utils.set_random_seed(seed)
    layer = {"simple": nb.layers.SimpleRNN, "lstm": nb.layers.LSTM, "gru": nb.layers.GRU}[cell]
    model = nb.Sequential([nb.layers.Embedding(12, 4, mask_zero=True), layer(5, return_sequences=True),
                           nb.layers.Dense(6, activation="relu"), nb.layers.Dropout(0.3), nb.layers.Dense(12)])
    model.compile(optimizer=nb.optimizers.Adam(learning_rate=0.01, clipnorm=1.0),
                  loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 12, (20, 7))
    x[:5, 5:] = 0                                             # some padding
    y = rng.integers(0, 12, (20, 7))
    return model, x, y


@pytest.mark.parametrize("cell", ["simple", "lstm"])
def test_training_with_the_callback_gives_the_same_weights_bit_for_bit(cell):
    model, x, y = _lyrics_like(cell)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    plain = model.get_weights()
    model, x, y = _lyrics_like(cell)
    health = nb.callbacks.GradientHealth(probe=(x[:6], y[:6]), probe_loss="last")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[health])
    for a, b in zip(plain, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(health.records) == 2 and health.records[0]["dh_norm"]


# ---------------------------------------------------------------- the callback's norms
def _two_layer_numpy(x, y, W1, b1, W2, b2):
    """Loss mean((tanh(x W1 + b1) W2 + b2 - y)^2) and its gradients, by hand (float64)."""
    a1 = x @ W1 + b1
    h1 = np.tanh(a1)
    out = h1 @ W2 + b2
    g_out = 2 * (out - y) / out.size                          # Keras mse: the mean over every element
    gW2, gb2 = h1.T @ g_out, g_out.sum(axis=0)
    ga1 = (g_out @ W2.T) * (1 - h1 ** 2)
    gW1, gb1 = x.T @ ga1, ga1.sum(axis=0)
    return [gW1, gb1, gW2, gb2]


def _magnitudes(x, y, W1, b1, W2, b2):
    """The same backward on absolute values (|tanh'| <= 1): sum|terms| of every gradient element."""
    ax, aW1, ab1, aW2, ab2 = (np.abs(a) for a in (x, W1, b1, W2, b2))
    h1 = np.minimum(ax @ aW1 + ab1, 1)
    g_out = 2 * (h1 @ aW2 + ab2 + np.abs(y)) / y.size
    ga1 = g_out @ aW2.T
    return [ax.T @ ga1, ga1.sum(axis=0), h1.T @ g_out, g_out.sum(axis=0)]


def test_gradient_norms_and_update_ratios_equal_a_hand_computation():
    rng = np.random.default_rng(1)
    # data exactly representable in float32, since fit may hand the model float32 arrays
    x, y = (rng.normal(0, 1, shape).astype(np.float32).astype(np.float64) for shape in ((8, 3), (8, 2)))
    nb.utils.set_random_seed(1)
    model = nb.Sequential([nb.Input((3,)), nb.layers.Dense(4, activation="tanh", dtype="float64"),
                           nb.layers.Dense(2, dtype="float64")])
    lr = 0.1
    model.compile(optimizer=nb.optimizers.SGD(learning_rate=lr), loss="mse")
    w = model.get_weights()                                   # W1, b1 (zeros), W2, b2 (zeros)
    health = nb.callbacks.GradientHealth()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[health])

    norms, ratios, bounds = [], [], []
    for batch in (slice(0, 4), slice(4, 8)):                  # shuffle=False: the batches in order
        g = _two_layer_numpy(x[batch], y[batch], *w)
        mag = _magnitudes(x[batch], y[batch], *w)
        n_ops = 4 + 4 + 2 + 8                                 # sums along the longest chain (N, units, outputs)
        bounds.append([SAFETY * n_ops * EPS64 * np.linalg.norm(m) for m in mag])
        norms.append([np.linalg.norm(gk) for gk in g])
        ratios.append([lr * np.linalg.norm(gk) / np.linalg.norm(wk) if np.linalg.norm(wk) > 0 else math.nan
                       for gk, wk in zip(g, w)])
        w = [wk - lr * gk for wk, gk in zip(w, g)]            # SGD's step
    rec = health.records[0]["weights"]
    names = [wt.name for wt in model.trainable_weights]
    for k, name in enumerate(names):
        tol = max(bounds[0][k], bounds[1][k])
        assert rec[name]["grad_norm_last"] == pytest.approx(norms[1][k], abs=tol, rel=0)
        assert rec[name]["grad_norm"] == pytest.approx((norms[0][k] + norms[1][k]) / 2, abs=tol, rel=0)
        assert rec[name]["update_ratio_last"] == pytest.approx(ratios[1][k], rel=1e-12)
        want = np.nanmean([ratios[0][k], ratios[1][k]])       # a zero bias has no ratio before its first step
        assert rec[name]["update_ratio"] == pytest.approx(want, rel=1e-12)
    assert math.isnan(ratios[0][1]) and math.isnan(ratios[0][3])   # the bias case really occurred
    layer = names[0].split("/")[0]
    want_layer = math.hypot(norms[1][0], norms[1][1])         # the layer: its weights' gradients together
    assert health.records[0]["layers"][layer]["grad_norm_last"] == pytest.approx(want_layer, rel=1e-12)
    assert health.history["grad_norm"][names[2]] == [rec[names[2]]["grad_norm"]]


def test_a_model_that_builds_in_its_first_batch_records_that_batch_too():
    rng = np.random.default_rng(2)
    x, y = (rng.normal(0, 1, shape).astype(np.float32).astype(np.float64) for shape in ((6, 3), (6, 2)))
    # no Input: the weights appear in the batch's forward, after on_train_batch_begin
    model = nb.Sequential([nb.layers.Dense(2, kernel_initializer="ones", dtype="float64")])
    model.compile(optimizer="sgd", loss="mse")
    health = nb.callbacks.GradientHealth()
    model.fit(x, y, batch_size=6, epochs=1, verbose=0, callbacks=[health])   # one batch
    g_out = 2 * (x @ np.ones((3, 2)) - y) / y.size            # mse over every element, b = 0
    mag = np.abs(x).T @ (2 * (np.abs(x) @ np.ones((3, 2)) + np.abs(y)) / y.size)
    rec = health.records[0]["weights"][model.trainable_weights[0].name]
    assert rec["grad_norm"] == pytest.approx(np.linalg.norm(x.T @ g_out), abs=SAFETY * 12 * EPS64 * np.linalg.norm(mag),
                                             rel=0)
    assert math.isnan(rec["update_ratio"])                    # no copy of the weights before that step


def test_dead_relu_fraction_on_a_constructed_case():
    x = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 0.5]])       # all positive
    model = nb.Sequential([nb.Input((2,)), nb.layers.Dense(4, activation="relu", dtype="float64"),
                           nb.layers.Dense(3, dtype="float64"), nb.layers.Activation("relu"),
                           nb.layers.Dense(2, activation="tanh", dtype="float64")])
    model.compile(optimizer="sgd", loss="mse")
    kernel1 = np.array([[-1.0, 1.0, 1.0, 0.0], [-1.0, 1.0, -1.5, 0.0]])
    bias1 = np.array([0.0, 0.0, 0.0, -1.0])
    # unit 0: always < 0 (dead); 1: always > 0; 2: x0 - 1.5 x1 > 0 only for the last two rows (alive); 3: -1 (dead)
    kernel2 = np.array([[1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    bias2 = np.array([0.0, 0.0, -0.5])
    # after unit 2's relu: [0, 0, 1.25, 2.25] - 0.5 -> the third unit of the Activation is 0 on row 0 only
    model.layers[0].set_weights([kernel1, bias1])
    model.layers[1].set_weights([kernel2, bias2])
    health = nb.callbacks.GradientHealth(probe=(x, np.zeros((3, 2))))
    found = health.measure_probe(model)
    first, act = model.layers[0].name, model.layers[2].name
    assert found["dead_relu"] == {first: 0.5, act: pytest.approx(1 / 3)}   # tanh and linear layers are not counted
    assert found["dh_norm"] == {}
    assert "call" not in vars(model.layers[0])                # the probe left the layers as they were


def test_probe_per_step_norms_equal_the_unrolled_cell():
    rng = np.random.default_rng(5)
    N, T, D, U = 4, 6, 3, 5
    # values exactly representable in float32: the model's Input may hand the layer a float32 cast
    x, target = (rng.normal(0, 1, shape).astype(np.float32).astype(np.float64) for shape in ((N, T, D), (N, T, U)))
    for cell in ("simple", "lstm", "gru"):
        for probe_loss in ("all", "last"):
            layer = {"simple": nb.layers.SimpleRNN, "lstm": nb.layers.LSTM, "gru": nb.layers.GRU}[cell]
            model = nb.Sequential([nb.Input((T, D)), layer(U, return_sequences=True, dtype="float64")])
            model.compile(optimizer="sgd", loss="mse")
            W, R, b = _weights(cell, D, U, rng)
            model.layers[0].set_weights([W, R, b])
            found = nb.callbacks.GradientHealth(probe=(x, target), probe_loss=probe_loss).measure_probe(model)
            hs, products, outputs = _unroll(cell, Tensor(x, requires_grad=True), W, R, Tensor(b), None)
            if probe_loss == "all":                           # mse: the mean over N * T * U elements
                sq = [((o - target[:, t]) ** 2).sum() for t, o in enumerate(outputs)]
                loss = sq[0]
                for s in sq[1:]:
                    loss = loss + s
                loss = loss * (1.0 / (N * T * U))
            else:                                             # the last step only: the mean over N * U
                loss = ((outputs[-1] - target[:, -1]) ** 2).sum() * (1.0 / (N * U))
            loss.backward()
            want = [np.linalg.norm(h.grad, axis=1).mean() for h in hs]
            bound = _bptt_bound(hs, products, GATES[cell] * U)
            (name,) = found["dh_norm"]
            assert name == model.layers[0].name
            assert_within(np.array(found["dh_norm"][name]), np.array(want), 2 * bound, f"{cell} {probe_loss}")


# ---------------------------------------------------------------- records, picture, errors
def test_records_and_history_are_plain_data_and_the_picture_holds_them(tmp_path):
    model, x, y = _lyrics_like("lstm")
    health = nb.callbacks.GradientHealth(probe=(x[:6], y[:6]))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[health])
    text = json.dumps({"records": health.records, "history": health.history})   # dicts, lists, floats, str
    assert "dh_norm" in text and len(health.records) == 3
    rnn, relu_layer = model.layers[1].name, model.layers[2].name
    assert set(health.history["dead_relu"]) == {relu_layer}
    assert len(health.history["dh_norm"][rnn]) == 3 and len(health.history["dh_norm"][rnn][0]) == 7

    fig = health.plot(str(tmp_path / "health.png"))
    assert isinstance(fig, Figure) and (tmp_path / "health.png").stat().st_size > 0
    ax_norm, ax_ratio, ax_dead, ax_steps = fig.axes[:4]
    for ax, key in ((ax_norm, "layer_grad_norm"), (ax_ratio, "layer_update_ratio"), (ax_dead, "dead_relu")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == set(health.history[key])
        for name, values in health.history[key].items():
            np.testing.assert_array_equal(lines[name].get_xdata(), [1, 2, 3])
            np.testing.assert_array_equal(lines[name].get_ydata(), values)
    steps = {line.get_label(): line for line in ax_steps.get_lines()}
    np.testing.assert_array_equal(steps[f"{rnn}, epoch 3"].get_ydata(), np.log10(health.history["dh_norm"][rnn][-1]))
    np.testing.assert_array_equal(steps[f"{rnn}, epoch 1"].get_ydata(), np.log10(health.history["dh_norm"][rnn][0]))
    np.testing.assert_array_equal(steps[f"{rnn}, epoch 3"].get_xdata(), np.arange(1, 8))
    assert ax_norm.get_yscale() == "log"


def test_without_a_probe_only_the_training_figures_are_recorded():
    model, x, y = _lyrics_like("simple")
    health = nb.callbacks.GradientHealth()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[health])
    assert "dh_norm" not in health.records[0] and "dead_relu" not in health.history
    fig = health.plot()
    texts = [t.get_text() for t in fig.axes[3].texts]
    assert any("probe" in t for t in texts) and not fig.axes[3].get_lines()
    with pytest.raises(ValueError, match=r"GradientHealth\(probe=\(x, y\)\)"):
        health.measure_probe()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="probe must be None or a tuple"):
        nb.callbacks.GradientHealth(probe=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="probe_loss must be 'all' or 'last'"):
        nb.callbacks.GradientHealth(probe_loss="first")
    with pytest.raises(ValueError, match="nothing recorded yet"):
        nb.callbacks.GradientHealth().plot()
    model = nb.Sequential([nb.Input((3,)), nb.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    health = nb.callbacks.GradientHealth(probe=(np.zeros((2, 3)), np.zeros((2, 2))), probe_loss="last")
    with pytest.raises(ValueError, match=r"probe_loss='last' needs a sequence output .* shape \(2, 2\)"):
        health.measure_probe(model)
