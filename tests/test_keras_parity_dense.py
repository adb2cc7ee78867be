"""Parity with tf.keras 3 for the foundation: Dense models (outputs and gradients with the same
weights), every loss (values and gradients, from_logits, clipping, sample_weight), optimizer
trajectories (weights and every slot variable, step by step, with clipping), initializer
distributions, summary parameter counts and a short end-to-end fit.

Runs wherever TensorFlow is installed; skipped otherwise.
"""

import numpy as np
import pytest

import numbanet as nb
from numbanet import losses as L
from numbanet import optimizers as O

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)

ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax"]


# the tf and keras fixtures come from conftest.py (skip without TensorFlow, fail in CI)


def twin_models(keras, act1, act2, use_bias=True, seed=0):
    """A numbanet and a Keras Dense 4-6-3 model with the same (numbanet-drawn) weights."""
    nb.utils.set_random_seed(seed)
    ours = nb.Sequential([nb.layers.Dense(6, activation=act1, use_bias=use_bias, input_shape=(4,)),
                          nb.layers.Dense(3, activation=act2, bias_initializer="random_normal")])
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation=act1, use_bias=use_bias),
                               keras.layers.Dense(3, activation=act2)])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


# ------------------------------------------------------------ Dense forward/backward
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_dense_outputs_and_gradients_match_keras(tf, keras, act):
    ours, theirs = twin_models(keras, act, "tanh" if act != "softmax" else "softmax")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    gy = rng.standard_normal((5, 3)).astype(np.float32)
    y = ours(x)
    with tf.GradientTape() as tape:
        y_tf = theirs(x)
        obj = tf.reduce_sum(y_tf * gy)
    np.testing.assert_allclose(y.data, y_tf.numpy(), rtol=1e-5, atol=1e-6)
    (y * nb.Tensor(gy)).sum().backward()
    grads_tf = tape.gradient(obj, theirs.trainable_variables)
    assert len(grads_tf) == len(ours.trainable_weights)
    for w, g in zip(ours.trainable_weights, grads_tf):
        np.testing.assert_allclose(w.grad, g.numpy(), rtol=1e-4, atol=1e-5, err_msg=w.name)


def test_dense_on_rank3_input_and_no_bias_match_keras(tf, keras):
    ours, theirs = nb.layers.Dense(5, use_bias=False), keras.layers.Dense(5, use_bias=False)
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    y = ours(x)
    theirs.build((None, 3, 4))
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(y.data, theirs(x).numpy(), rtol=1e-5, atol=1e-6)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    # a model declared for (None, 4) rejects a rank-3 input, as Keras does
    m_ours, m_theirs = twin_models(keras, "relu", None)
    with pytest.raises(ValueError, match=r"\(None, 4\).*\(2, 3, 4\)"):
        m_ours(x)
    with pytest.raises(ValueError):
        m_theirs(x)


def test_summary_param_counts_match_keras(keras):
    ours = nb.Sequential([nb.layers.Dense(10, activation="tanh", input_shape=(7,)), nb.layers.Dense(5, use_bias=False),
                          nb.layers.Dropout(0.2), nb.layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((7,)), keras.layers.Dense(10, activation="tanh"),
                               keras.layers.Dense(5, use_bias=False), keras.layers.Dropout(0.2),
                               keras.layers.Dense(3, activation="softmax")])
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    total = theirs.count_params()
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total:,}" in text
    for layer_ours, layer_theirs in zip(ours.layers, theirs.layers):
        assert layer_ours.count_params() == layer_theirs.count_params()
        row = next(line for line in lines if layer_ours.name in line)
        assert row.rstrip(" │").endswith(f"{layer_theirs.count_params():,}")
        assert tuple(layer_ours.output_shape) == tuple(layer_theirs.output.shape)


# ------------------------------------------------------------------------- losses
def keras_loss(keras, kind, from_logits):
    return {"mse": lambda: keras.losses.MeanSquaredError(), "mae": lambda: keras.losses.MeanAbsoluteError(),
            "bce": lambda: keras.losses.BinaryCrossentropy(from_logits=from_logits),
            "cce": lambda: keras.losses.CategoricalCrossentropy(from_logits=from_logits),
            "sparse": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)}[kind]()


def our_loss(kind, from_logits):
    return {"mse": L.MeanSquaredError, "mae": L.MeanAbsoluteError,
            "bce": lambda: L.BinaryCrossentropy(from_logits=from_logits),
            "cce": lambda: L.CategoricalCrossentropy(from_logits=from_logits),
            "sparse": lambda: L.SparseCategoricalCrossentropy(from_logits=from_logits)}[kind]()


def loss_inputs(kind, from_logits, clipped, shape=(6, 4), seed=0):
    rng = np.random.default_rng(seed)
    if kind in ("mse", "mae"):
        t, p = rng.standard_normal(shape), rng.standard_normal(shape)
    elif kind == "bce":
        t = rng.integers(0, 2, shape).astype(float)
        p = rng.standard_normal(shape) * 3 if from_logits else rng.uniform(0.02, 0.98, shape)
    elif kind == "cce":
        t = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        p = rng.standard_normal(shape) * 3 if from_logits else rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    else:
        t = rng.integers(0, shape[-1], shape[:-1])
        p = rng.standard_normal(shape) * 3 if from_logits else rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    if clipped and not from_logits and kind != "mse" and kind != "mae":
        # saturated probabilities: exact 0 and 1, and values beyond them, where Keras clips
        p[0, :2] = [0.0, 1.0]
        p[1, :2] = [1e-12, 1.0 - 1e-12]
        if kind == "bce":
            p[2, :2] = [-0.5, 1.5]
    return t.astype(np.float32), p.astype(np.float32)


LOSS_CASES = [(k, fl, c) for k, fl, c in [
    ("mse", False, False), ("mae", False, False),
    ("bce", False, False), ("bce", False, True), ("bce", True, False),
    ("cce", False, False), ("cce", False, True), ("cce", True, False),
    ("sparse", False, False), ("sparse", False, True), ("sparse", True, False)]]


@pytest.mark.parametrize("kind,from_logits,clipped", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_value_and_gradient_match_keras(tf, keras, kind, from_logits, clipped, weighted):
    t, p = loss_inputs(kind, from_logits, clipped)
    sw = np.linspace(0.2, 2.0, len(p)).astype(np.float32) if weighted else None
    y = nb.Tensor(p, requires_grad=True)
    ours = our_loss(kind, from_logits)(t, y, sample_weight=sw)
    ours.backward()
    var = tf.Variable(p)
    with tf.GradientTape() as tape:
        theirs = keras_loss(keras, kind, from_logits)(t, var, sample_weight=sw)
    g_tf = tape.gradient(theirs, var).numpy()
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(y.grad, g_tf, rtol=1e-3, atol=1e-5)
    if clipped and kind == "bce":
        assert np.all(y.grad[2, :2] == 0) and np.all(g_tf[2, :2] == 0)


def test_sparse_loss_with_n1_labels_and_sequences_match_keras(tf, keras):
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(5), (3, 4)).astype(np.float32)      # (N, T, V)
    t = rng.integers(0, 5, (3, 4))
    ours = L.SparseCategoricalCrossentropy()(t, nb.Tensor(p)).data
    theirs = keras.losses.SparseCategoricalCrossentropy()(t, p).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    p2 = p[:, 0]
    ours = L.SparseCategoricalCrossentropy()(t[:, :1], nb.Tensor(p2)).data
    theirs = keras.losses.SparseCategoricalCrossentropy()(t[:, :1], p2).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


# --------------------------------------------------------------------- optimizers
# numbanet slot name -> Keras variable-name suffix
SLOT_NAMES = {"momentum": "momentum", "m": "momentum", "v": "velocity", "v_hat": "velocity_hat",
              "accumulator": "accumulator", "velocity": "velocity", "average_gradient": "average_gradient",
              "accumulated_grad": "accumulated_grad", "accumulated_delta_var": "accumulated_delta_var"}

OPT_CASES = [
    ("SGD", {}), ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adam", {}), ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adagrad", {}), ("Adagrad", {"learning_rate": 0.1}),
    ("RMSprop", {}), ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5}),
    ("Adadelta", {}), ("Adadelta", {"learning_rate": 1.0, "epsilon": 1e-6}),
]
CLIPS = [{}, {"clipnorm": 0.5}, {"clipvalue": 0.3}, {"global_clipnorm": 0.8}]


@pytest.mark.parametrize("name,kwargs", OPT_CASES, ids=[f"{n}-{'-'.join(k)}" for n, k in OPT_CASES])
@pytest.mark.parametrize("clip", CLIPS, ids=["noclip", "clipnorm", "clipvalue", "global_clipnorm"])
def test_optimizer_trajectory_and_slots_match_keras(tf, keras, name, kwargs, clip):
    rng = np.random.default_rng(7)
    shapes = [(3,), (2, 2)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[(rng.standard_normal(s) * 2).astype(np.float32) for s in shapes] for _ in range(4)]
    ours_opt = getattr(O, name)(**kwargs, **clip)
    theirs_opt = getattr(keras.optimizers, name)(**kwargs, **clip)
    ours_w = [nb.Tensor(w.copy(), requires_grad=True) for w in w0]
    theirs_w = [tf.Variable(w.copy(), name=f"w{i}") for i, w in enumerate(w0)]
    for step, gs in enumerate(grads, start=1):
        ours_opt.apply_gradients(zip([g.copy() for g in gs], ours_w))
        theirs_opt.apply_gradients(zip([tf.constant(g) for g in gs], theirs_w))
        for i, (a, b) in enumerate(zip(ours_w, theirs_w)):
            np.testing.assert_allclose(a.data, b.numpy(), rtol=2e-5, atol=1e-6, err_msg=f"step {step} weight {i}")
        assert ours_opt.iterations == int(theirs_opt.iterations.numpy()) == step
        slots_tf = {v.path.split("/")[-1]: v.numpy() for v in theirs_opt.variables
                    if v.path.split("/")[-1].startswith("w")}
        n_slots = 0
        for i, w in enumerate(ours_w):
            for slot, value in ours_opt.slots[id(w)].items():
                key = f"w{i}_0_{SLOT_NAMES[slot]}"   # Keras names them "<var>_0_<slot>"
                assert key in slots_tf, (key, sorted(slots_tf))
                np.testing.assert_allclose(value, slots_tf[key], rtol=2e-5, atol=1e-7,
                                           err_msg=f"step {step} slot {key}")
                n_slots += 1
        assert n_slots == len(slots_tf), sorted(slots_tf)   # the same set of slot variables


# ------------------------------------------------------------------- initializers
def _ks_pvalue(a, b):
    stats = pytest.importorskip("scipy.stats")
    return stats.ks_2samp(a.ravel(), b.ravel()).pvalue


INIT_CASES = [  # name, (scale, fan mode) or None, distribution
    ("glorot_uniform", 1.0, "avg", "uniform"), ("glorot_normal", 1.0, "avg", "normal"),
    ("he_uniform", 2.0, "in", "uniform"), ("he_normal", 2.0, "in", "normal"),
    ("lecun_uniform", 1.0, "in", "uniform"), ("lecun_normal", 1.0, "in", "normal"),
]


@pytest.mark.parametrize("shape", [(120, 250), (3, 3, 16, 40)])
@pytest.mark.parametrize("name,scale,mode,dist", INIT_CASES)
def test_variance_scaling_initializers_match_keras(keras, name, scale, mode, dist, shape):
    from numbanet import initializers
    receptive = int(np.prod(shape[:-2]))
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    n = (fan_in + fan_out) / 2 if mode == "avg" else fan_in
    var = scale / n
    ours = initializers.get(name).__class__(seed=1)(shape)
    theirs = np.asarray(keras.initializers.get({"class_name": name, "config": {"seed": 1}})(shape))
    assert ours.shape == shape and ours.dtype == np.float32
    for sample in (ours, theirs):
        assert abs(sample.mean()) < 0.02 * np.sqrt(var) * 10
        assert sample.std() == pytest.approx(np.sqrt(var), rel=0.03)      # the stated variance
        if dist == "uniform":
            limit = np.sqrt(3 * var)                                      # e.g. glorot: sqrt(6 / (in + out))
            assert np.abs(sample).max() <= limit * (1 + 1e-6)
            assert np.abs(sample).max() > 0.99 * limit
        else:
            stddev = np.sqrt(var) / 0.87962566103423978                   # truncated at 2 stddev
            assert np.abs(sample).max() <= 2 * stddev * (1 + 1e-6)
            assert np.abs(sample).max() > 1.95 * stddev
    assert _ks_pvalue(ours, theirs) > 1e-3


def test_random_initializer_defaults_match_keras(keras):
    from numbanet import initializers
    shape = (200, 200)
    for name in ("random_normal", "random_uniform"):
        ours = initializers.get(name).__class__(seed=3)(shape)
        theirs = np.asarray(keras.initializers.get({"class_name": name, "config": {"seed": 3}})(shape))
        assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
        assert np.abs(ours).max() <= np.abs(theirs).max() * 1.25 + 1e-9
        assert _ks_pvalue(ours, theirs) > 1e-3
    u = initializers.get("random_uniform")(shape)
    assert np.abs(u).max() <= 0.05 and np.abs(u).max() > 0.0499
    assert initializers.get("random_normal")(shape).std() == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize("shape", [(30, 20), (20, 30), (3, 3, 4, 8)])
def test_orthogonal_matches_keras_definition(keras, shape):
    from numbanet import initializers
    q = initializers.get("orthogonal")(shape).reshape(-1, shape[-1]).astype(np.float64)
    k = np.asarray(keras.initializers.Orthogonal(seed=0)(shape)).reshape(-1, shape[-1]).astype(np.float64)
    for m in (q, k):
        small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-5)


def test_zeros_ones(keras):
    from numbanet import initializers
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("ones")((2, 3)), keras.initializers.get("ones")((2, 3)))


# -------------------------------------------------------------- end-to-end fit
@pytest.mark.parametrize("opt,loss,act", [
    ("SGD", "mse", "tanh"), ("Adam", "categorical_crossentropy", "softmax"),
    ("RMSprop", "binary_crossentropy", "sigmoid")])
def test_fit_without_shuffle_matches_keras(tf, keras, opt, loss, act):
    rng = np.random.default_rng(11)
    n = 21                                  # batches of 8, 8 and 5: the epoch loss is weighted by batch size
    x = rng.standard_normal((n, 4)).astype(np.float32)
    if loss == "categorical_crossentropy":
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (n, 3)).astype(np.float32)
    else:
        y = rng.standard_normal((n, 3)).astype(np.float32)
    ours, theirs = twin_models(keras, "relu", act, seed=2)
    kwargs = {"learning_rate": 0.05, "momentum": 0.9} if opt == "SGD" else {"learning_rate": 0.01}
    metrics = ["mae"] if loss == "mse" else ["accuracy"]
    ours.compile(getattr(O, opt)(**kwargs), loss=loss, metrics=metrics)
    theirs.compile(getattr(keras.optimizers, opt)(**kwargs), loss=loss, metrics=metrics, run_eagerly=True)
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.3)
    h_theirs = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.3)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert set(h_ours.history) == set(h_theirs.history)
    for key in h_theirs.history:
        np.testing.assert_allclose(h_ours.history[key], h_theirs.history[key], rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(ours.evaluate(x, y), theirs.evaluate(x, y, verbose=0), rtol=1e-4)
