"""The pooled arrays of a training step: the binary cross-entropy, the sigmoid and the optimizers'
temporaries against the reference tier, results the user keeps that later steps must not touch,
and training with the pool on equal to training with it off (``numbanet/fast/workspace.py``)."""
import numpy as np
import pytest

import numbanet as nb
from numbanet.fast import activations as fast_act
from numbanet.fast import losses as fast_losses
from numbanet.fast import optimizers as fast_opt
from numbanet.fast import routes, workspace
from numbanet.reference import tier as ref
from tests.bounds import LIBM_ULP, assert_within, elementwise_bound

L = nb.layers
EPS32 = float(np.finfo(np.float32).eps)


def _probabilities(shape, rng):
    """Probabilities with the clip's edge cases inside: exact 0 and 1, just inside and outside 1e-7, NaN-free."""
    p = rng.random(shape).astype(np.float32)
    flat = p.reshape(-1)
    edges = np.array([0.0, 1.0, 1e-7, 1 - 1e-7, 5e-8, 1 - 5e-8, 0.5], dtype=np.float32)
    flat[:len(edges)] = edges
    return p


@pytest.fixture(params=["numpy", "kernel"])
def float32_route(request, monkeypatch):
    """The fast tier's float32 sigmoid and BCE forward by NumPy's passes, or by the one-pass kernels of
    kernels/exp32.py (taken where Numba is set up: forced here either way); yields the expected route."""
    ready = request.param == "kernel"
    monkeypatch.setattr(fast_act, "numba_ready", lambda: ready)
    monkeypatch.setattr(fast_losses, "numba_ready", lambda: ready)
    return request.param


# ------------------------------------------------------------ binary cross-entropy
@pytest.mark.parametrize("shape", [(37,), (6, 5), (8, 7, 7, 1), (3, 4, 5, 6)])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_ce_matches_the_reference(shape, from_logits, weighted, float32_route):
    """l and dL/dp of the fast tier against the reference tier's textbook formulas, within the
    rounding of the formula: a few operations and two log/exp calls, relative to the largest term."""
    rng = np.random.default_rng(len(shape) * 10 + from_logits)
    p = (rng.standard_normal(shape) * 4).astype(np.float32) if from_logits else _probabilities(shape, rng)
    t = rng.random(shape).astype(np.float32)                   # autoencoder targets: fractions
    S = shape[:-1] if len(shape) > 1 else shape
    c = (rng.random(S).astype(np.float32) if weighted else np.asarray(0.25, dtype=np.float32))
    D = shape[-1] if len(shape) > 1 else 1

    got_l, want_l = fast_losses.binary_ce_forward(t, p, from_logits), ref.binary_ce_forward(t, p, from_logits)
    assert routes.last("binary_ce_forward") == ("log32 kernel" if float32_route == "kernel" and not from_logits
                                                else "numpy")
    got_g, want_g = fast_losses.binary_ce_backward(t, p, c, from_logits), ref.binary_ce_backward(t, p, c, from_logits)
    assert got_l.shape == want_l.shape == S and got_g.shape == want_g.shape == shape
    assert got_l.dtype == got_g.dtype == np.float32

    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    if from_logits:
        z = p.astype(np.float64)
        terms = np.maximum(z, 0) + np.abs(z * t) + np.log1p(np.exp(-np.abs(z)))
        grad_terms = 1 + np.abs(t)
    else:
        terms = np.abs(t * np.log(q)) + np.abs((1 - t) * np.log(1 - q))
        grad_terms = t / q + (1 - t) / (1 - q)
    # per value: 6 roundings and 2 libm calls, then a mean of D such values
    l_bound = elementwise_bound(terms, 6 + 2 * LIBM_ULP, EPS32).reshape(-1, D).mean(axis=1).reshape(S) \
        + elementwise_bound(terms.reshape(-1, D).mean(axis=1).reshape(S), D + 1, EPS32)
    assert_within(got_l, want_l, l_bound, "binary_ce_forward")
    scale = np.abs(np.expand_dims(c, -1) if np.ndim(c) and len(shape) > 1 else c) / D
    assert_within(got_g, want_g, elementwise_bound(scale * grad_terms, 8 + LIBM_ULP, EPS32), "binary_ce_backward")
    if not from_logits:                                        # the clip passes no gradient at the bounds' far side
        outside = (p < np.float32(1e-7)) | (p > np.float32(1 - 1e-7))
        assert outside.any() and np.all(got_g[outside] == 0)


def test_binary_ce_loss_object_uses_the_tier_and_gives_the_reference_loss():
    """BinaryCrossentropy() in a graph: value and gradient equal under both tiers within rounding."""
    rng = np.random.default_rng(3)
    p = _probabilities((16, 9, 9, 1), rng)
    t = rng.random(p.shape).astype(np.float32)
    out = {}
    for tier in ("fast", "reference"):
        with nb.kernels(tier):
            x = nb.Tensor(p.copy(), requires_grad=True)
            loss = nb.losses.BinaryCrossentropy()(t, x)
            loss.backward()
            out[tier] = (float(loss.data), x.grad.copy())
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    terms = np.abs(t * np.log(q)) + np.abs((1 - t) * np.log(1 - q))
    assert abs(out["fast"][0] - out["reference"][0]) <= elementwise_bound(terms.sum() / terms.size, terms.size + 16,
                                                                          EPS32)
    assert_within(out["fast"][1], out["reference"][1],
                  elementwise_bound((t / q + (1 - t) / (1 - q)) / terms.size, 10, EPS32))


# ------------------------------------------------------------ sigmoid
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_matches_the_reference_and_saturates_without_warnings(dtype, float32_route):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 11, 11, 3)) * 6).astype(dtype)
    x.reshape(-1)[:4] = [-1000, 1000, -89, 0]                 # exp overflow side and the exact points
    eps = float(np.finfo(dtype).eps)
    with np.errstate(over="raise", divide="raise", invalid="raise"):    # underflow to 0 is the right result
        y = fast_act.sigmoid_forward(x)
    assert routes.last("sigmoid_forward") == ("exp32 kernel" if float32_route == "kernel" and dtype == np.float32
                                              else "numpy")
    want = ref.sigmoid_forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    # negate, exp (LIBM_ULP), + 1, reciprocal: relative to the result
    assert_within(y, want, elementwise_bound(np.abs(want), 3 + LIBM_ULP, eps))
    assert y.reshape(-1)[0] == 0 and y.reshape(-1)[1] == 1 and y.reshape(-1)[3] == 0.5
    gy = rng.standard_normal(x.shape).astype(dtype)
    g = fast_act.sigmoid_backward(gy, want)
    assert_within(g, ref.sigmoid_backward(gy, want), elementwise_bound(np.abs(gy) * 0.25, 3, eps))


# ------------------------------------------------------------ optimizers' temporaries
@pytest.mark.parametrize("shape", [(7,), (300, 257)])          # under and over the pool's threshold
@pytest.mark.parametrize("name", ["adadelta", "rmsprop", "rmsprop_centered_momentum"])
def test_optimizer_updates_through_pooled_arrays_match_the_reference(shape, name):
    """Three steps on the same weights: fast (pooled temporaries) against the reference tier.
    Each step is a few roundings per weight relative to the update's terms (1 - rho rounds in
    float32 on the fast tier, from float64 in the reference: one more rounding)."""
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    s0 = np.abs(rng.standard_normal(shape)).astype(np.float32)
    lr = np.float32(0.5)
    res = {}
    for label, tier in (("fast", fast_opt), ("ref", ref)):
        w, a, b = w0.copy(), s0.copy(), s0.copy() * 0.5
        mg, mom = (g * np.float32(0.1), np.zeros_like(w)) if name.endswith("momentum") else (None, None)
        for _ in range(3):
            if name == "adadelta":
                tier.adadelta_update(w, g, a, b, lr, 0.95, 1e-7)
            else:
                tier.rmsprop_update(w, g, a, lr, 0.9, 1e-7, mg, mom, 0.9 if mom is not None else 0.0)
        res[label] = (w, a, b)
    # every quantity is O(|w| + lr * |g| / sqrt(eps-floored accumulators)); 3 steps of ~12 roundings
    step = lr * np.abs(g) * (np.sqrt(s0 + 1) / np.sqrt(s0 * 0.05 + 1e-7) if name == "adadelta"
                             else 1 / np.sqrt(s0 * 0.9 ** 3 + 1e-7))
    assert_within(res["fast"][0], res["ref"][0], elementwise_bound(np.abs(w0) + 3 * step, 3 * 16, EPS32))
    assert_within(res["fast"][1], res["ref"][1], elementwise_bound(s0 + g * g, 3 * 6, EPS32))


def test_rmsprop_and_adadelta_pool_their_temporaries_once_big_enough():
    workspace.clear()
    w = np.zeros((300, 257), np.float32)
    fast_opt.adadelta_update(w, np.ones_like(w), np.zeros_like(w), np.zeros_like(w), np.float32(0.1))
    fast_opt.rmsprop_update(w, np.ones_like(w), np.zeros_like(w), np.float32(0.1))
    assert workspace.pooled_bytes() == 4 * w.nbytes           # two per optimizer, then reused
    fast_opt.adadelta_update(w, np.ones_like(w), np.zeros_like(w), np.zeros_like(w), np.float32(0.1))
    assert workspace.pooled_bytes() == 4 * w.nbytes
    workspace.clear()


# ------------------------------------------------------------ the pool switch
def test_disabled_pool_hands_out_fresh_arrays_and_restores_itself():
    workspace.clear()
    with workspace.disabled():
        a = workspace.empty("t", (1 << 16,), np.float32)      # 256 KiB: pooled when on
        assert workspace.pooled_bytes() == 0
        del a
        assert workspace.set_enabled(False) is False
    b = workspace.empty("t", (1 << 16,), np.float32)
    assert workspace.pooled_bytes() == b.nbytes
    assert workspace.set_enabled(True) is True
    workspace.clear()


# ------------------------------------------------------------ results the user keeps
# The models below are small (8x8 images, so they run in seconds under NUMBA_DISABLE_JIT=1), and
# the pool's threshold is lowered to 1 KiB for them: every array of their step is pooled, as
# W3's 0.8 MB arrays are at the library's 128 KiB.
@pytest.fixture
def pool_everything(monkeypatch):
    monkeypatch.setattr(workspace, "POOL_MIN_BYTES", 1024)
    workspace.clear()
    yield
    workspace.clear()


def _autoencoder(seed=0, optimizer="adadelta"):
    """W3's shape in small: every pooled op of the step (conv, pool, upsample, sigmoid, BCE, Adadelta)."""
    nb.utils.set_random_seed(seed)
    model = nb.Sequential([L.Input((8, 8, 1)),
                           L.Conv2D(8, 3, activation="relu", padding="same"), L.MaxPooling2D(2, padding="same"),
                           L.Conv2D(4, 3, activation="relu", padding="same"), L.UpSampling2D(2),
                           L.Conv2D(1, 3, activation="sigmoid", padding="same")])
    opt = {"adadelta": lambda: nb.optimizers.Adadelta(learning_rate=1.0), "rmsprop": lambda: nb.optimizers.RMSprop(0.01),
           "sgd": lambda: nb.optimizers.SGD(0.05)}[optimizer]()
    model.compile(optimizer=opt, loss="binary_crossentropy")
    return model


def _images(n, seed):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype(np.float32)


def test_kept_predictions_and_outputs_survive_later_steps(pool_everything):
    """predict's array, model(x)'s Tensor (and its graph), train_step's predictions: each still holds
    what it held when returned after the model trained and predicted on other data of the same
    shape (so the same pool keys)."""
    x1, x2 = _images(32, 1), _images(32, 2)
    model = _autoencoder()
    model.fit(x2, x2, batch_size=32, epochs=1, verbose=0)      # the pool holds this shape's arrays
    kept_predict = model.predict(x1, batch_size=32, verbose=0)
    kept_call = model(x1)
    kept_graph = model(x1, training=True)
    _, kept_step = model.train_step(x1, x1)
    assert kept_call.data.nbytes >= workspace.POOL_MIN_BYTES
    snapshots = [a.copy() for a in (kept_predict, kept_call.data, kept_graph.data, kept_step)]
    for _ in range(3):
        model.fit(x2, x2, batch_size=32, epochs=1, verbose=0)
        other = model(x2)
        assert not any(np.shares_memory(other.data, a) for a in (kept_predict, kept_call.data, kept_graph.data))
        model.predict(x2, batch_size=32, verbose=0)
    for kept, snap in zip((kept_predict, kept_call.data, kept_graph.data, kept_step), snapshots):
        np.testing.assert_array_equal(kept, snap)
    # the kept graph still differentiates: its saved arrays were not reused either
    kept_graph.backward(np.ones_like(kept_graph.data))


def test_a_kept_loss_graph_backpropagates_its_own_values(pool_everything):
    """A loss Tensor kept across another step's forward and backward gives the same gradient as
    right away: the BCE and sigmoid gradients are pooled, the arrays its graph saved are not reused."""
    x1, x2 = _images(16, 3), _images(16, 4)
    model = _autoencoder()
    inp = nb.Tensor(x1, requires_grad=True)
    loss = nb.losses.BinaryCrossentropy()(x1, model(inp, training=True))
    loss.backward()
    first = inp.grad.copy()
    inp.grad = None
    loss2 = nb.losses.BinaryCrossentropy()(x2, model(nb.Tensor(x2, requires_grad=True), training=True))
    loss2.backward()
    loss.backward()
    np.testing.assert_array_equal(inp.grad, first)


@pytest.mark.parametrize("optimizer,shuffle", [("adadelta", False), ("rmsprop", False), ("sgd", True)])
def test_training_with_the_pool_equals_training_without_it(optimizer, shuffle, pool_everything):
    """The pool changes where arrays live, never a number: weights and losses after training with it
    equal those of the same run with every array fresh (``workspace.disabled``), bit for bit.
    With shuffling, fit gathers each batch into a pooled array (``training._take_batch``) and
    plain SGD puts lr * g in one; the data the user passed stays as it was."""
    x = _images(48, 5)
    x_before = x.copy()
    runs = []
    for pooled in (True, False):
        workspace.clear()
        model = _autoencoder(seed=7, optimizer=optimizer)
        if pooled:
            hist = model.fit(x, x, batch_size=16, epochs=2, verbose=0, shuffle=shuffle)
            assert workspace.pooled_bytes() > 0
            keys = {key[0] for key in workspace._POOL}
            assert not shuffle or {"fit.batch", "sgd.step"} <= keys, keys
        else:
            with workspace.disabled():
                hist = model.fit(x, x, batch_size=16, epochs=2, verbose=0, shuffle=shuffle)
            assert workspace.pooled_bytes() == 0
        runs.append((hist.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(x, x_before)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_training_matches_the_reference_tier():
    """One step of the small autoencoder, fast against reference: the loss within the rounding of
    a mean of BCE values (the convolutions' sums differ in order between the tiers)."""
    x = _images(16, 6)
    losses = {}
    for tier in ("fast", "reference"):
        model = _autoencoder(seed=8)
        with nb.kernels(tier):
            losses[tier] = model.train_step(x, x)[0]
    # the loss is a mean of O(1) values whose inputs went through three 3x3 convolutions (K <= 72 terms)
    assert abs(losses["fast"] - losses["reference"]) <= 2 * 3 * 72 * EPS32 * losses["reference"] * 10


def test_average_pooling_outputs_and_gradients_from_the_pool(pool_everything):
    """AveragePooling2D's pooled output and input gradient: a kept output stays as it was, and the
    values equal the pool-off run's (the kernel writes every cell, zeroing the gradient first)."""
    rng = np.random.default_rng(9)
    x1, x2 = rng.standard_normal((2, 16, 12, 12, 4)).astype(np.float32)
    layer = L.AveragePooling2D(2)
    kept = layer(x1)
    assert kept.data.nbytes >= workspace.POOL_MIN_BYTES
    snapshot = kept.data.copy()
    grads = []
    for pooled in (True, False):
        with (workspace.disabled() if not pooled else np.errstate()):
            for _ in range(2):
                inp = nb.Tensor(x2, requires_grad=True)
                out = layer(inp)
                out.backward(np.full(out.shape, 0.5, np.float32))
            grads.append((out.data.copy(), inp.grad.copy()))
    np.testing.assert_array_equal(kept.data, snapshot)
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    want = x2.reshape(16, 6, 2, 6, 2, 4).astype(np.float64).mean(axis=(2, 4))   # an independent mean
    assert_within(grads[0][0], want, elementwise_bound(np.abs(x2).reshape(16, 6, 2, 6, 2, 4).sum(axis=(2, 4)) / 4,
                                                       5, EPS32))
    np.testing.assert_array_equal(grads[0][1], np.full(x2.shape, 0.125, np.float32))   # 0.5 / 4, exact


def test_the_bce_and_sigmoid_path_keeps_three_scratch_arrays(pool_everything):
    """The BCE's forward and backward and the sigmoid's backward share one tag: after training, the
    pool holds three float arrays of the output's shape for them (the most held at once), and the
    sigmoid's outputs: the current step's and the one fit still holds from the step before."""
    x = _images(32, 10)
    model = _autoencoder()
    model.fit(x, x, batch_size=16, epochs=2, verbose=0)
    shape, f32 = (16, 8, 8, 1), np.dtype(np.float32)
    assert len(workspace._POOL[(workspace.ELEMENTWISE, shape, f32)]) == 3
    assert len(workspace._POOL[("sigmoid.y", shape, f32)]) == 2


def test_alloc_probe_meter_charges_the_outermost_call():
    """benchmarks/alloc_probe.py's meter: a call's peak bytes beyond what existed before it, the
    calls counted per key, nested wrapped calls charged to the outer one only."""
    import tracemalloc
    from benchmarks.alloc_probe import Meter
    meter = Meter()
    inner = meter.wrap(lambda a: ("inner",), lambda n: np.ones(n, np.float64).sum())
    outer = meter.wrap(lambda a: ("outer",), lambda n: inner(n) + np.ones(n // 2, np.float64).sum())
    tracemalloc.start()
    try:
        meter.on = True
        outer(1 << 17)                         # 1 MiB inside (inner), then 0.5 MiB
        inner(1 << 16)                         # 0.5 MiB on its own
        meter.on = False
        inner(1 << 18)                         # metered off: not counted
    finally:
        tracemalloc.stop()
    assert meter.rows[("outer",)][0] == 1 and meter.rows[("inner",)][0] == 1
    assert (1 << 20) <= meter.rows[("outer",)][2] < (1 << 20) + (1 << 16)
    assert (1 << 19) <= meter.rows[("inner",)][2] < (1 << 19) + (1 << 16)
