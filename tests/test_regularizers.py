"""Regularizers (numbanet.regularizers), layer.losses / model.losses, and the penalties in fit's loss.

Checked against plain NumPy (float64), central finite differences (float64), and
Keras 3: the penalty of each regularizer, each layer's ``losses`` (values and
gradients, same weights), ``model.losses`` bookkeeping (order, frozen layers, a
shared layer, recomputation), and the logged loss of fit / evaluate with
regularizers (same weights, no shuffle, SGD). The layer-level parity runs both
frameworks in float64 with factors exact in float32 (Keras's ``L1`` keeps its
factor as a float32 tensor), so the bounds are float64 rounding bounds.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanet as nb
from numbanet import regularizers as R

from bounds import SAFETY, assert_within, matmul_bound, sum_bound
from grad_helpers import GRAD_SETTINGS, assert_grad, draw_shapes, draw_values

EPS64, EPS32 = float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)
L1F, L2F = 0.03125, 0.0625           # exact in float32 and float64


def penalty_np(w, l1, l2):
    """l1 * sum|w| + l2 * sum w^2 in float64, and the float64 terms (for the rounding bound)."""
    w = np.asarray(w, dtype=np.float64)
    terms = np.concatenate([(l1 * np.abs(w)).ravel(), (l2 * w * w).ravel()])
    return terms.sum(), terms


def penalty_bound(terms, eps):
    """Two sums of ``terms`` in any order, plus the factor's product and the final add: (n + 2) roundings."""
    return SAFETY * (terms.size + 2) * eps * np.abs(terms).sum()


# ----------------------------------------------------------------- the penalties
@pytest.mark.parametrize("reg, l1, l2", [(R.L1(L1F), L1F, 0.0), (R.L2(L2F), 0.0, L2F), (R.L1L2(L1F, L2F), L1F, L2F),
                                         (R.L1(), 0.01, 0.0), (R.L2(), 0.0, 0.01), (R.L1L2(), 0.0, 0.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalty_values_match_numpy(reg, l1, l2, dtype):
    w = np.random.default_rng(0).standard_normal((7, 5)).astype(dtype)
    value = reg(nb.Tensor(w))
    want, terms = penalty_np(w, l1, l2)
    assert value.shape == () and value.dtype == dtype
    assert_within(value.data, want, penalty_bound(terms, np.finfo(dtype).eps), f"{reg}")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(["l1", "l2", "l1l2"]), st.floats(0.001, 2.0), st.floats(0.001, 2.0))
def test_penalty_gradients_match_finite_differences(data, kind, l1, l2):
    reg = {"l1": R.L1(l1), "l2": R.L2(l2), "l1l2": R.L1L2(l1, l2)}[kind]
    (shape,) = draw_shapes(data, 1, min_dims=0, max_dims=3)
    w = draw_values(data, shape, 0.05, 2.0, signed=True)          # |w| >= 0.05: away from |w|'s kink at 0
    assert_grad(lambda t: reg(t), w, label=f"{reg} {shape}")


def test_penalty_gradient_formula_and_the_kink_at_zero():
    """dR/dw = l1 sign(w) + 2 l2 w, with sign(0) = 0 as TensorFlow's abs (a zero bias gets no L1 pull)."""
    w = nb.Tensor(np.array([-1.5, 0.0, 2.0]), requires_grad=True)
    R.L1L2(0.25, 0.5)(w).backward()
    np.testing.assert_array_equal(w.grad, 0.25 * np.sign(w.data) + 2 * 0.5 * w.data)


@pytest.mark.parametrize("name", ["l1", "l2", "L1", "L2", "L1L2", "l1l2"])
def test_names_give_keras_objects(keras, name):
    ours, theirs = R.get(name), keras.regularizers.get(name)
    assert type(ours).__name__ == type(theirs).__name__
    for key, value in theirs.get_config().items():       # Keras's L1 stores 0.01 as float32
        assert ours.get_config()[key] == pytest.approx(value, rel=EPS32), (name, key)


def test_l1_l2_name_is_both_factors_at_the_documented_default():
    """Keras documents 'l1_l2' as L1L2(0.01, 0.01) (Keras 2's l1_l2()); Keras 3.15's get() rejects it."""
    assert R.get("l1_l2") == R.L1L2(l1=0.01, l2=0.01)
    assert R.L1L2() == R.L1L2(0.0, 0.0) and R.L1(None).l1 == 0.01 and R.L1L2(None, None).l2 == 0.0


@pytest.mark.parametrize("reg", [R.L1(0.3), R.L2(0.1), R.L1L2(l1=0.01, l2=0.02)])
def test_config_round_trip_and_keras_serialization(keras, reg):
    assert type(reg).from_config(reg.get_config()) == reg
    assert R.get(R.serialize(reg)) == reg
    theirs = keras.regularizers.serialize(keras.regularizers.get(R.serialize(reg)))
    ours = R.serialize(reg)
    assert {k: v for k, v in theirs.items() if k != "config"} == {k: v for k, v in ours.items() if k != "config"}
    for key, value in theirs["config"].items():
        assert ours["config"][key] == pytest.approx(value, rel=EPS32)


def test_penalty_matches_keras_in_float32(keras):
    w = np.random.default_rng(1).standard_normal((30, 20)).astype(np.float32)
    for ours, theirs in [(R.L1(0.01), keras.regularizers.L1(0.01)), (R.L2(0.02), keras.regularizers.L2(0.02)),
                         (R.L1L2(0.01, 0.02), keras.regularizers.L1L2(0.01, 0.02))]:
        _, terms = penalty_np(w, getattr(ours, "l1", 0.0), getattr(ours, "l2", 0.0))
        assert_within(ours(nb.Tensor(w)).data, float(theirs(w)), 2 * penalty_bound(terms, EPS32), repr(ours))


# ----------------------------------------------------------------- layer.losses
def _keras_reg(keras, reg):
    return None if reg is None else keras.regularizers.get(R.serialize(reg))


LAYERS = {   # name: (numbanet layer, Keras layer, input, {argument: regularizer})
    "dense": (lambda kw: nb.layers.Dense(4, dtype="float64", bias_initializer="random_normal", **kw),
              lambda keras, kw: keras.layers.Dense(4, dtype="float64", **kw), (3, 5),
              {"kernel_regularizer": R.L1L2(L1F, L2F), "bias_regularizer": R.L1(L1F)}),
    "conv2d": (lambda kw: nb.layers.Conv2D(3, 2, dtype="float64", bias_initializer="random_normal", **kw),
               lambda keras, kw: keras.layers.Conv2D(3, 2, dtype="float64", **kw), (2, 4, 4, 2),
               {"kernel_regularizer": R.L2(L2F), "bias_regularizer": R.L2(L2F)}),
    "conv2d_transpose": (lambda kw: nb.layers.Conv2DTranspose(3, 2, strides=2, dtype="float64",
                                                              bias_initializer="random_normal", **kw),
                         lambda keras, kw: keras.layers.Conv2DTranspose(3, 2, strides=2, dtype="float64", **kw),
                         (2, 3, 3, 2), {"kernel_regularizer": R.L1(L1F), "bias_regularizer": R.L1L2(L1F, L2F)}),
    "embedding": (lambda kw: nb.layers.Embedding(6, 3, dtype="float64", **kw),
                  lambda keras, kw: keras.layers.Embedding(6, 3, dtype="float64", **kw), (2, 4),
                  {"embeddings_regularizer": R.L1L2(L1F, L2F)}),
    "simple_rnn": (lambda kw: nb.layers.SimpleRNN(3, dtype="float64", bias_initializer="random_normal", **kw),
                   lambda keras, kw: keras.layers.SimpleRNN(3, dtype="float64", **kw), (2, 4, 2),
                   {"kernel_regularizer": R.L1(L1F), "recurrent_regularizer": R.L2(L2F),
                    "bias_regularizer": R.L1L2(L1F, L2F)}),
}


def _input(name, shape, rng):
    return rng.integers(0, 6, shape) if name == "embedding" else rng.standard_normal(shape)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_weight_penalties_match_keras(tf, keras, name):
    """Each layer's losses (one per regularized weight, in weight order) and their gradients, float64."""
    make_ours, make_theirs, shape, regs = LAYERS[name]
    ours = make_ours(regs)
    theirs = make_theirs(keras, {k: _keras_reg(keras, v) for k, v in regs.items()})
    x = _input(name, shape, np.random.default_rng(2))
    ours(x)
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())
    for w in ours.weights:                       # move zero biases off |w|'s kink so both gradients are defined
        w.data = np.where(w.data == 0, 0.25, w.data)
    theirs.set_weights(ours.get_weights())
    with tf.GradientTape() as tape:
        theirs(x)
        total = tf.add_n(theirs.losses)
    grads = tape.gradient(total, theirs.trainable_variables)
    losses = ours.losses
    assert len(losses) == len(theirs.losses) == len(regs)
    by_weight = {"kernel_regularizer": "kernel", "bias_regularizer": "bias", "recurrent_regularizer":
                 "recurrent_kernel", "embeddings_regularizer": "embeddings"}
    weights = dict(ours._weight_list)
    order = [n for n, _ in ours._weight_list]
    for arg in sorted(regs, key=lambda a: order.index(by_weight[a])):       # Keras's order: weight order
        reg, w = regs[arg], weights[by_weight[arg]]
        want, terms = penalty_np(w.data, getattr(reg, "l1", 0.0), getattr(reg, "l2", 0.0))
        value = losses.pop(0)
        assert_within(value.data, want, penalty_bound(terms, EPS64), f"{name} {arg}")
    assert_within(float(sum(float(t.data) for t in ours.losses)), float(total), 2 * SAFETY * 8 * EPS64 * float(total))
    for w in ours.weights:
        w.grad = None
    loss = ours.losses[0]
    for t in ours.losses[1:]:
        loss = loss + t
    loss.backward()
    for w, g in zip(ours.trainable_weights, grads):
        arg = next((a for a, n in by_weight.items() if n == w.name.split("/")[-1] and a in regs), None)
        reg = regs[arg]
        want = getattr(reg, "l1", 0.0) * np.sign(w.data) + 2 * getattr(reg, "l2", 0.0) * w.data
        bound = 2 * 3 * EPS64 * np.abs(want)                       # two computations of a 3-op formula
        assert_within(w.grad, want, bound, f"{name} {w.name} vs NumPy")
        assert_within(w.grad, g.numpy(), 2 * bound, f"{name} {w.name} vs Keras")


def test_dense_activity_penalty_matches_keras(tf, keras):
    """activity_regularizer(y) / N on the output y = x W + b (Keras's docstring example, then random)."""
    doc = nb.layers.Dense(5, kernel_initializer="ones", kernel_regularizer=R.L1(0.01), activity_regularizer=R.L2(0.01))
    doc(np.full((5, 5), 2.0, dtype=np.float32))
    assert float(sum(float(t.data) for t in doc.losses)) == pytest.approx(5.25, rel=1e-6)

    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    ours = nb.layers.Dense(3, dtype="float64", bias_initializer="random_normal", activity_regularizer=R.L1L2(L1F, L2F))
    theirs = keras.layers.Dense(3, dtype="float64", activity_regularizer=keras.regularizers.L1L2(L1F, L2F))
    y = ours(x)
    theirs.build((None, 4))
    theirs.set_weights(ours.get_weights())
    with tf.GradientTape() as tape:
        theirs(x)
        total = tf.add_n(theirs.losses)
    grads = tape.gradient(total, theirs.trainable_variables)
    (value,) = ours.losses
    W, b = ours.get_weights()
    y_np = x @ W + b
    want, terms = penalty_np(y_np, L1F, L2F)
    y_err = matmul_bound(x, W, b, eps=EPS64)                              # |y - y_np| elementwise
    bound = (penalty_bound(terms, EPS64) + np.sum((L1F + 2 * L2F * np.abs(y_np)) * y_err)) / 6
    assert_within(value.data, want / 6, bound, "activity penalty vs NumPy")
    assert_within(value.data, float(total), 2 * bound, "activity penalty vs Keras")
    value.backward()
    g_y = (L1F * np.sign(y_np) + 2 * L2F * y_np) / 6                     # dR/dy, (6, 3)
    for w, want_g, g in zip(ours.trainable_weights, [x.T @ g_y, g_y.sum(0)], grads):
        bound = matmul_bound(np.abs(x.T), np.abs(g_y), eps=EPS64) if w.ndim == 2 else sum_bound(g_y, axis=0)
        bound = bound + 2 * L2F / 6 * (np.abs(x.T) @ y_err if w.ndim == 2 else y_err.sum(0))
        assert_within(w.grad, want_g, 4 * bound, f"{w.name} vs NumPy")
        assert_within(w.grad, g.numpy(), 8 * bound, f"{w.name} vs Keras")


@pytest.mark.parametrize("name", ["conv2d", "conv2d_transpose", "embedding"])
def test_activity_penalty_counts_and_values_match_keras(keras, name):
    make_ours, make_theirs, shape, _ = LAYERS[name]
    ours, theirs = make_ours({"activity_regularizer": R.L1(L1F)}), make_theirs(keras, {"activity_regularizer": "l1"})
    theirs.activity_regularizer = keras.regularizers.L1(L1F)
    x = _input(name, shape, np.random.default_rng(4))
    y = ours(x)
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())
    y_k = theirs(x)
    (value,) = ours.losses
    assert len(theirs.losses) == 1
    want = L1F * np.abs(y.data).sum() / shape[0]                          # from our own output: the formula
    assert_within(value.data, want, penalty_bound(L1F * np.abs(y.data), EPS64) / shape[0], name)
    # Keras's output differs from ours by the rounding of the layer's sums, at most |y - y_k| per element
    assert_within(value.data, float(theirs.losses[0]),
                  penalty_bound(L1F * np.abs(y.data), EPS64) + L1F * np.abs(y.data - y_k.numpy()).sum() / shape[0])


def test_simple_rnn_activity_penalty_applies_to_every_output():
    """SimpleRNN(return_state=True): one penalty per output Tensor, as Keras's Layer.__call__ does for any
    layer. (Keras 3.15's SimpleRNN accepts activity_regularizer but drops it; numbanet applies it.)"""
    layer = nb.layers.SimpleRNN(3, return_state=True, dtype="float64", activity_regularizer=R.L2(L2F))
    x = np.random.default_rng(5).standard_normal((2, 4, 2))
    y, h = layer(x)
    assert len(layer.losses) == 2
    for t, value in zip((y, h), layer.losses):
        assert_within(value.data, L2F * np.sum(t.data ** 2) / 2, penalty_bound(L2F * t.data ** 2, EPS64))


# ----------------------------------------------------------------- model.losses
def _twin(keras, frozen=False):
    ours = nb.Sequential([nb.layers.Dense(4, activation="tanh", input_shape=(3,), kernel_regularizer=R.L2(0.02),
                                          activity_regularizer=R.L1(0.01)),
                          nb.layers.Dense(2, kernel_regularizer=R.L1L2(0.01, 0.01), bias_regularizer="l2")])
    k = keras.regularizers
    theirs = keras.Sequential([keras.Input((3,)),
                               keras.layers.Dense(4, activation="tanh", kernel_regularizer=k.L2(0.02),
                                                  activity_regularizer=k.L1(0.01)),
                               keras.layers.Dense(2, kernel_regularizer=k.L1L2(0.01, 0.01), bias_regularizer="l2")])
    theirs.set_weights(ours.get_weights())
    if frozen:
        ours.layers[1].trainable = theirs.layers[1].trainable = False
    return ours, theirs


@pytest.mark.parametrize("frozen", [False, True])
def test_model_losses_order_and_frozen_layers_match_keras(keras, frozen):
    """Activity penalties first, then one per trainable regularized weight in weight order; a frozen
    layer's weights add none (Keras reads trainable_weights)."""
    ours, theirs = _twin(keras, frozen)
    x = np.random.default_rng(6).standard_normal((5, 3)).astype(np.float32)
    ours(x)
    theirs(x)
    mine, keras_losses = [float(t.data) for t in ours.losses], [float(t) for t in theirs.losses]
    assert len(mine) == len(keras_losses) == (2 if frozen else 4)
    np.testing.assert_allclose(mine, keras_losses, rtol=64 * EPS32)   # sums of <= 12 float32 terms, on
    ours(x)                                                            # outputs within a few ulps
    assert len(ours.losses) == len(mine)                               # each call replaces the activity penalty


def test_losses_follow_the_current_weights_without_a_call():
    layer = nb.layers.Dense(2, kernel_regularizer=R.L2(0.5))
    layer(np.ones((1, 2)))
    layer.set_weights([np.ones((2, 2)), np.zeros(2)])
    assert float(layer.losses[0].data) == 2.0
    layer.set_weights([2 * np.ones((2, 2)), np.zeros(2)])
    assert float(layer.losses[0].data) == 8.0


def test_shared_layer_called_twice_keeps_both_activity_penalties(keras):
    def build(lib, reg):
        shared = lib.layers.Dense(2, activity_regularizer=reg, kernel_regularizer=reg)
        inp = lib.Input((2,))
        return lib.Model(inp, shared(shared(inp))), shared
    ours, shared = build(nb, R.L1(0.5))
    theirs, _ = build(keras, keras.regularizers.L1(0.5))
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(7).standard_normal((3, 2)).astype(np.float32)
    for _ in range(2):
        ours(x)
        theirs(x)
    assert len(ours.losses) == len(theirs.losses) == len(shared.losses) == 3
    np.testing.assert_allclose([float(t.data) for t in ours.losses], [float(t) for t in theirs.losses],
                               rtol=16 * EPS32)


def test_bidirectional_copies_regularize_both_directions(keras):
    ours = nb.layers.Bidirectional(nb.layers.SimpleRNN(2, kernel_regularizer=R.L2(L2F), recurrent_regularizer="l1"))
    theirs = keras.layers.Bidirectional(keras.layers.SimpleRNN(2, kernel_regularizer=keras.regularizers.L2(L2F),
                                                               recurrent_regularizer="l1"))
    x = np.random.default_rng(8).standard_normal((2, 3, 2)).astype(np.float32)
    ours(x)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose([float(t.data) for t in ours.losses], [float(t) for t in theirs.losses],
                               rtol=16 * EPS32)
    assert len(ours.losses) == 4


def test_a_new_layer_gets_regularizers_by_declaring_its_weights():
    class Scale(nb.layers.Layer):
        regularized_weights = {"gamma": "gamma_regularizer"}

        def build(self, input_shape):
            self.gamma = self.add_weight("gamma", (input_shape[-1],), "ones")

        def call(self, x, training=False):
            return x * self.gamma

    layer = Scale(gamma_regularizer="l2", name="scale")
    layer(np.ones((2, 3), dtype=np.float32))
    assert float(layer.losses[0].data) == pytest.approx(0.03)
    assert layer.get_config()["gamma_regularizer"]["class_name"] == "L2"
    assert Scale.from_config(layer.get_config()).gamma_regularizer == R.L2(0.01)


@pytest.mark.parametrize("cls, kwargs", [(nb.layers.Dense, {"units": 2}), (nb.layers.Conv2D, {"filters": 2, "kernel_size": 3}),
                                         (nb.layers.Embedding, {"input_dim": 4, "output_dim": 2}),
                                         (nb.layers.SimpleRNN, {"units": 2})])
def test_layer_config_rebuilds_the_regularizers(cls, kwargs):
    args = {a: R.L1L2(0.01, 0.02) for a in dict.fromkeys(cls.regularized_weights.values())}
    layer = cls(**kwargs, **args, activity_regularizer=R.L2(0.5))
    again = cls.from_config(layer.get_config())
    for arg in list(args) + ["activity_regularizer"]:
        assert getattr(again, arg) == getattr(layer, arg), arg
    assert "activity_regularizer" not in cls(**kwargs).get_config()      # Keras writes it only when set


# ----------------------------------------------------------------- fit / evaluate
def fit_history_bound(values, steps, chain):
    """Bound for a logged float32 loss after ``steps`` SGD steps: each step's sums have at most ``chain``
    terms along the longest dependency chain (batch + fan-ins + penalties), so the two runs' roundings
    reach at most SAFETY * steps * chain * eps32 relative to the value."""
    return SAFETY * steps * chain * EPS32 * np.abs(np.asarray(values, dtype=np.float64))


@pytest.mark.usefixtures("tier")
def test_fit_and_evaluate_log_the_penalties_as_keras(keras):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((21, 3)).astype(np.float32)
    y = rng.standard_normal((21, 2)).astype(np.float32)
    ours, theirs = _twin(keras)
    ours.compile(nb.optimizers.SGD(0.05), loss="mse")
    theirs.compile(keras.optimizers.SGD(0.05), loss="mse", run_eagerly=True)
    plain = nb.Sequential([nb.layers.Dense(4, activation="tanh", input_shape=(3,)), nb.layers.Dense(2)])
    plain.set_weights(ours.get_weights())
    plain.compile(nb.optimizers.SGD(0.05), loss="mse")
    h_ours = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    h_plain = plain.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    steps = 3 * 2                                     # 15 training samples in batches of 8: 2 steps per epoch
    chain = 8 + 3 + 4 + 2 + 4                         # batch, fan-ins, the mse mean, the penalties added
    for key in ("loss", "val_loss"):
        assert_within(h_ours.history[key], h_theirs.history[key], fit_history_bound(h_theirs.history[key],
                                                                                    steps, chain), key)
        # the penalties are large enough here that leaving them out could not pass the bound
        gap = np.abs(np.array(h_plain.history[key]) - h_theirs.history[key])
        assert np.all(gap > 100 * fit_history_bound(h_theirs.history[key], steps, chain)), key
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert_within(a, b, fit_history_bound(np.abs(b) + 0.05, steps, chain), "weights after fit")
    value = ours.evaluate(x, y)
    assert_within(value, theirs.evaluate(x, y, verbose=0), fit_history_bound(value, steps + 1, chain), "evaluate")


def test_multi_output_fit_adds_penalties_to_the_total_only(keras):
    def build(lib, reg):
        inp = lib.Input((3,))
        h = lib.layers.Dense(4, kernel_regularizer=reg, name="h")(inp)
        return lib.Model(inp, [lib.layers.Dense(1, name="a")(h), lib.layers.Dense(2, name="b")(h)])
    ours, theirs = build(nb, R.L2(0.05)), build(keras, keras.regularizers.L2(0.05))
    theirs.set_weights(ours.get_weights())
    rng = np.random.default_rng(10)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    ys = [rng.standard_normal((16, 1)).astype(np.float32), rng.standard_normal((16, 2)).astype(np.float32)]
    ours.compile(nb.optimizers.SGD(0.05), loss=["mse", "mae"])
    theirs.compile(keras.optimizers.SGD(0.05), loss=["mse", "mae"], run_eagerly=True)
    h_ours = ours.fit(x, ys, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h_theirs = theirs.fit(x, ys, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert set(h_ours) == set(h_theirs)
    for key in h_theirs:
        assert_within(h_ours[key], h_theirs[key], fit_history_bound(h_theirs[key], 4, 8 + 3 + 4 + 3), key)
    assert h_ours["loss"][0] > h_ours["a_loss"][0] + h_ours["b_loss"][0]


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: R.L1(-0.1), ValueError, r"L1: l1 must be a number >= 0, got -0.1"),
    (lambda: R.L2(float("inf")), ValueError, r"L2: l2 must be a finite number >= 0"),
    (lambda: R.L1L2(l2="0.1"), TypeError, r"L1L2: l2 must be a number.*write l2=0.1, without quotes"),
    (lambda: R.L2(True), TypeError, r"L2: l2 must be a number"),
    (lambda: R.get("l3"), ValueError, r"unknown regularizer 'l3'; valid names: .*l1.*l2"),
    (lambda: R.get(0.01), TypeError, r"regularizer must be a name"),
    (lambda: R.get({"class_name": "L7", "config": {}}), ValueError, r"unknown regularizer class_name 'L7'"),
    (lambda: nb.layers.Dense(2, kernel_regularizer="l3", name="d"), ValueError, r"d: kernel_regularizer: unknown"),
    (lambda: nb.layers.Dense(2, bias_regularizer=3, name="d"), TypeError, r"d: bias_regularizer: regularizer must"),
    (lambda: nb.layers.Conv2D(2, 3, activity_regularizer="l9", name="c"), ValueError, r"c: activity_regularizer"),
    (lambda: nb.layers.Dense(2, recurrent_regularizer="l2"), TypeError, r"unexpected keyword.*recurrent_regularizer"),
    (lambda: nb.layers.Dense(2, kernel_regularizer=R.L2(-1)), ValueError, r"L2: l2 must be"),
])
def test_bad_regularizers_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_add_loss_takes_a_scalar_tensor():
    layer = nb.layers.Dense(2, name="d")
    with pytest.raises(ValueError, match="d: add_loss takes a scalar Tensor"):
        layer.add_loss(nb.Tensor(np.ones(3)))


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_gated_recurrent_layers_take_the_three_weight_regularizers(cls):
    """LSTM and GRU declare kernel, recurrent_kernel and bias penalties (Keras's three arguments);
    the penalty is recomputed here from the weights in float64."""
    layer = getattr(nb.layers, cls)(3, kernel_regularizer="l2", recurrent_regularizer=nb.regularizers.L1(0.1),
                                    bias_regularizer="l1")
    layer(np.ones((2, 4, 5), "float32"))
    k, r, b = (w.data.astype(np.float64) for w in (layer.kernel, layer.recurrent_kernel, layer.bias))
    want = 0.01 * (k ** 2).sum() + 0.1 * np.abs(r).sum() + 0.01 * np.abs(b).sum()
    got = sum(float(t.data) for t in layer.losses)
    # float32 sums of at most 4*3*5 terms each: a few float32 ulps of the total
    assert abs(got - want) <= 64 * np.finfo(np.float32).eps * want
    assert layer.get_config()["recurrent_regularizer"]["config"] == {"l1": 0.1}
