"""Bidirectional: Keras parity, finite-difference gradients, learning, shapes and config, bad input.

The recurrent layers it is tested over are those ``numbanet.layers`` has when the
tests run (SimpleRNN; LSTM and GRU, both reset_after settings, as they exist):
``CELLS`` is computed at import.
"""
import itertools
import os
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet import layers, utils
from numbanet.engine import Tensor, check_grad, no_grad
from numbanet.layers import Bidirectional, Dense, Embedding, SimpleRNN
from numbanet.layers.base import mask_of

from bounds import LIBM_ULP, elementwise_bound

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# cell id -> (layer class name, extra constructor arguments); GRU both ways of placing the reset gate
CELL_CONFIGS = {"SimpleRNN": ("SimpleRNN", {}), "LSTM": ("LSTM", {}), "GRU": ("GRU", {}),
                "GRU-reset_before": ("GRU", {"reset_after": False})}
CELLS = [cell for cell, (cls, _) in CELL_CONFIGS.items() if cls in vars(layers)]
N_STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


def make_cell(module, cell, units, **kwargs):
    """The recurrent layer ``cell`` names (a CELL_CONFIGS id) from ``module`` (numbanet's or Keras's layers)."""
    cls, extra = CELL_CONFIGS[cell]
    return getattr(module, cls)(units, **extra, **kwargs)


def n_states(cell):
    return N_STATES[CELL_CONFIGS[cell][0]]
MERGE_MODES = ["concat", "sum", "mul", "ave", None]
MASK = np.array([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=bool)  # lead/inner/trail padding


def _outputs(result):
    """The call's result as a list of Tensors (one output, the two of merge_mode None, then the states)."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def parity_bound(magnitude, N, T, D, U):
    """Bound on |numbanet - Keras| for any output, state or gradient of a float64 Bidirectional run.

    Every such value is computed from at most N*T steps (a gradient sums over the
    batch and over time), each a dot product of D + U + 1 terms and an activation
    (a libm call and <= 3 roundings) per gate, with all intermediates at most
    ``magnitude`` in size; the weights are drawn small enough that errors are not
    amplified from step to step (|R| entries <= 0.3/U). Both sides round each
    operation once: ``elementwise_bound`` of that many operations.
    """
    n_ops = N * T * 4 * (D + U + 1 + LIBM_ULP + 3)   # 4: up to four gates (LSTM)
    return elementwise_bound(magnitude, n_ops)


def _keras_parity_case(tf, cell, merge, seq, state, masked, use_h0):
    keras = tf.keras
    rng = np.random.default_rng(7)
    N, T, D, U = 3, 5, 4, 3
    x = rng.standard_normal((N, T, D))
    kw = dict(return_sequences=seq, return_state=state)
    k_layer = keras.layers.Bidirectional(make_cell(keras.layers, cell, U, dtype="float64", **kw),
                                         merge_mode=merge, dtype="float64")
    k_layer.build((N, T, D))
    weights = [rng.uniform(-0.3, 0.3, w.shape) / (U if w.ndim == 2 and w.shape[0] == U else 1)
               for w in k_layer.get_weights()]
    k_layer.set_weights(weights)
    h0 = [rng.standard_normal((N, U)) * 0.5 for _ in range(2 * n_states(cell))] if use_h0 else None
    mask = MASK if masked else None

    xt = tf.constant(x)
    h0t = [tf.constant(h) for h in h0] if use_h0 else []
    with tf.GradientTape() as tape:
        tape.watch([xt] + h0t)
        k_out = _outputs(k_layer(xt, initial_state=h0t or None, mask=None if mask is None else tf.constant(mask)))
        gys = [np.random.default_rng(11 + i).standard_normal(tuple(o.shape)) for i, o in enumerate(k_out)]
        k_loss = sum(tf.reduce_sum(o * g) for o, g in zip(k_out, gys))
    k_grads = tape.gradient(k_loss, [xt] + h0t + list(k_layer.trainable_weights))

    layer = Bidirectional(make_cell(layers, cell, U, dtype="float64", **kw), merge_mode=merge)
    layer.build_from_shape((None, T, D))
    layer.set_weights(weights)                          # Keras's get_weights order: forward, then backward
    xn = Tensor(x, requires_grad=True)
    h0n = [Tensor(h, requires_grad=True) for h in h0] if use_h0 else []
    out = _outputs(layer(xn, initial_state=h0n or None, mask=mask))
    assert len(out) == len(k_out)
    sum((o * Tensor(g)).sum() for o, g in zip(out, gys)).backward()
    ours = [xn.grad] + [h.grad for h in h0n] + [w.grad for w in layer.trainable_weights]

    magnitude = (1 + np.abs(x).max()) * (1 + np.abs(np.concatenate([w.ravel() for w in weights])).max()) \
        * (D + U + 1) * (1 + max(np.abs(g).max() for g in gys)) * T
    bound = parity_bound(magnitude, N, T, D, U)
    names = ["x"] + [f"h0[{i}]" for i in range(len(h0n))] + [w.name for w in layer.trainable_weights]
    for i, (a, k) in enumerate(zip(out, k_out)):
        assert a.shape == tuple(k.shape), f"output {i}"
        np.testing.assert_allclose(a.data, k.numpy(), rtol=0, atol=bound, err_msg=f"output {i}")
    assert len(ours) == len(k_grads) == len(names)
    for name, a, k in zip(names, ours, k_grads):
        np.testing.assert_allclose(a, k.numpy(), rtol=0, atol=bound, err_msg=f"gradient of {name}")


# every (merge, return_sequences, return_state) once; the mask on alternate ones, shifted by one for each
# merge mode so that every (return_sequences, return_state) pair is also run masked; initial states on every third
_CASES = [(merge, seq, state, (i + i // 4) % 2 == 1, i % 3 == 0)
          for i, (merge, seq, state) in enumerate(itertools.product(MERGE_MODES, [True, False], [True, False]))]


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge, seq, state, masked, use_h0", _CASES)
def test_keras_parity_outputs_states_gradients(tf, cell, merge, seq, state, masked, use_h0):
    """Same weights (Keras's get_weights into our set_weights), same x, initial states and mask:
    the same outputs, states and gradients (x, every initial state, every weight)."""
    _keras_parity_case(tf, cell, merge, seq, state, masked, use_h0)


def test_every_merge_mode_sequence_state_and_mask_combination_is_covered():
    combos = {(m, s, r) for m, s, r, _, _ in _CASES}
    assert combos == set(itertools.product(MERGE_MODES, [True, False], [True, False]))
    assert {c[3] for c in _CASES} == {True, False} and {c[4] for c in _CASES} == {True, False}
    assert {(c[0], c[3]) for c in _CASES} >= {(m, True) for m in MERGE_MODES}   # every merge mode masked
    assert {(c[1], c[2]) for c in _CASES if c[3]} == set(itertools.product([True, False], [True, False]))
    assert {(c[3], c[4]) for c in _CASES} == {(True, True), (True, False), (False, True), (False, False)}


# ------------------------------------------------------- finite differences
@contextmanager
def swapped_weights(bidir, new):
    """Run ``bidir`` with the Tensors ``new`` in place of its weights (Keras order), then put them back.

    Each sub-layer holds its weights as attributes and in ``_weight_list``; both are
    replaced by identity, so any recurrent layer built the Keras way works.
    """
    old = bidir.weights
    swap = {id(o): n for o, n in zip(old, new)}
    saved = []
    for layer in (bidir.forward_layer, bidir.backward_layer):
        attrs = {k: v for k, v in vars(layer).items() if id(v) in swap}
        saved.append((layer, attrs, list(layer._weight_list)))
        for k, v in attrs.items():
            setattr(layer, k, swap[id(v)])
        layer._weight_list[:] = [(name, swap[id(w)]) for name, w in layer._weight_list]
    try:
        yield
    finally:
        for layer, attrs, wl in saved:
            for k, v in attrs.items():
                setattr(layer, k, v)
            layer._weight_list[:] = wl


fd_configs = st.fixed_dictionaries({
    "cell": st.sampled_from(CELLS), "merge": st.sampled_from(MERGE_MODES),
    "N": st.integers(1, 3), "T": st.integers(1, 4), "D": st.integers(1, 3), "U": st.integers(1, 3),
    "seq": st.booleans(), "state": st.booleans(), "masked": st.booleans(), "h0": st.booleans(),
    "seed": st.integers(0, 2 ** 16),
})


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fd_configs)
def test_gradients_match_finite_differences(c):
    """Input, every initial state and every weight, against central differences in float64."""
    rng = np.random.default_rng(c["seed"])
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    layer = Bidirectional(make_cell(layers, c["cell"], U, return_sequences=c["seq"], return_state=c["state"],
                                                     dtype="float64"), merge_mode=c["merge"])
    layer.build_from_shape((None, T, D))
    weights = [rng.uniform(-0.8, 0.8, w.shape) for w in layer.get_weights()]
    x = rng.standard_normal((N, T, D))
    h0 = [rng.standard_normal((N, U)) * 0.5 for _ in range(2 * n_states(c["cell"]))] if c["h0"] else []
    mask = rng.random((N, T)) < 0.6 if c["masked"] else None
    with no_grad():
        shapes = [o.shape for o in _outputs(layer(x))]
    gys = [rng.standard_normal(s) for s in shapes]
    n_w = len(weights)

    def fn(x, *rest):
        ws, hs = rest[:n_w], list(rest[n_w:])
        with swapped_weights(layer, ws):
            out = _outputs(layer(x, initial_state=hs or None, mask=mask))
        return sum((o * Tensor(g)).sum() for o, g in zip(out, gys))

    report = check_grad(fn, x, *weights, *h0, rtol=1e-5, atol=1e-7)
    assert report.passed, f"{c}\n{report}"
    assert len(report.inputs) == 1 + n_w + len(h0)


# ------------------------------------------------------------------ learning
def _neighbour_sum_task(n, T, rng):
    """y_t = x_{t-1} + x_{t+1} (0 beyond the ends): each target needs one step of the past and of the future."""
    x = rng.standard_normal((n, T, 1)).astype(np.float32)
    pad = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    return x, pad[:, :-2] + pad[:, 2:]


@pytest.mark.parametrize("cell", [c for c in CELLS if c != "GRU-reset_before"])
def test_learns_a_task_that_needs_the_future(cell):
    """Bidirectional fits y_t = x_{t-1} + x_{t+1}; the same forward-only layer cannot see x_{t+1}.

    With unit-variance inputs, the best a forward-only model can do is predict
    x_{t-1} and miss the variance 1 of x_{t+1} (MSE ~ 1 on the inner steps); the
    bidirectional model must get far below that.
    """
    rng = np.random.default_rng(0)
    T = 8
    x, y = _neighbour_sum_task(1024, T, rng)
    xv, yv = _neighbour_sum_task(256, T, rng)
    results = {}
    for name, make in (("bidirectional", lambda: Bidirectional(make_cell(layers, cell, 16, return_sequences=True))),
                       ("forward only", lambda: make_cell(layers, cell, 32, return_sequences=True))):
        utils.set_random_seed(0)
        model = nb.Sequential([nb.Input((T, 1)), make(), Dense(1)])
        model.compile(optimizer=nb.optimizers.Adam(0.01), loss="mse")
        model.fit(x, y, batch_size=64, epochs=25, verbose=0)
        results[name] = float(model.evaluate(xv, yv))
    print(f"{cell} neighbour-sum validation MSE: {results}")
    assert results["bidirectional"] < 0.1, results
    assert results["forward only"] > 0.5, results


# --------------------------------------------------------- shapes and config
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge, seq, state", list(itertools.product(MERGE_MODES, [True, False], [True, False])))
def test_output_shapes_and_param_count_match_keras(tf, cell, merge, seq, state):
    k_layer = tf.keras.layers.Bidirectional(make_cell(tf.keras.layers, cell, 4, return_sequences=seq,
                                                      return_state=state), merge_mode=merge)
    layer = Bidirectional(make_cell(layers, cell, 4, return_sequences=seq, return_state=state), merge_mode=merge)
    expected = k_layer.compute_output_shape((None, 6, 3))
    expected = tuple(tuple(s) for s in expected) if isinstance(expected[0], (tuple, list)) else tuple(expected)
    assert layer.compute_output_shape((None, 6, 3)) == expected
    out = _outputs(layer(np.zeros((2, 6, 3), np.float32)))
    k_out = _outputs(k_layer(np.zeros((2, 6, 3), np.float32)))
    assert [o.shape for o in out] == [tuple(o.shape) for o in k_out]
    assert layer.count_params() == k_layer.count_params()
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in k_layer.get_weights()]


def test_names_weights_order_and_summary():
    rnn = SimpleRNN(4, name="rnn")
    bi = Bidirectional(rnn)
    assert (bi.forward_layer.name, bi.backward_layer.name) == ("forward_rnn", "backward_rnn")
    assert bi.forward_layer is not rnn and not rnn.built             # the given layer is only a template
    assert (bi.forward_layer.go_backwards, bi.backward_layer.go_backwards) == (False, True)
    model = nb.Sequential([nb.Input((5, 3)), bi, Dense(2)])
    assert [w.name for w in bi.weights] == [f"{d}_rnn/{n}" for d in ("forward", "backward")
                                            for n in ("kernel", "recurrent_kernel", "bias")]
    assert bi.weights == bi.forward_layer.weights + bi.backward_layer.weights
    assert model.weights[:6] == bi.weights
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if "(Bidirectional)" in line)
    assert "(None, 8)" in row and f"{2 * (3 * 4 + 4 * 4 + 4)}" in row    # 64 parameters
    assert Bidirectional(SimpleRNN(2, name="forward_x")).forward_layer.name == "forward_x"


def test_get_config_round_trip_and_custom_backward_layer():
    bi = Bidirectional(SimpleRNN(3, activation="relu", return_sequences=True),
                       backward_layer=SimpleRNN(5, go_backwards=True, return_sequences=True, name="back"),
                       merge_mode="concat", name="bi")
    cfg = bi.get_config()
    assert cfg["merge_mode"] == "concat" and cfg["layer"]["class_name"] == "SimpleRNN"
    assert cfg["layer"]["config"]["activation"] == "relu" and cfg["backward_layer"]["config"]["units"] == 5
    again = Bidirectional.from_config(cfg)
    assert again.get_config() == cfg
    y = bi(np.ones((2, 4, 3), np.float32))
    assert y.shape == (2, 4, 8) and bi.compute_output_shape((None, 4, 3)) == (None, 4, 8)
    assert bi.backward_layer.name == "back"


def test_default_dtype_is_the_wrapped_layers_and_trainable_freezes_both():
    bi = Bidirectional(SimpleRNN(2, dtype="float64"))
    assert bi(np.ones((1, 3, 2))).dtype == np.float64
    assert Bidirectional(SimpleRNN(2), dtype="float64")(np.ones((1, 3, 2))).dtype == np.float64
    bi.trainable = False
    assert bi.trainable_weights == [] and len(bi.non_trainable_weights) == 6
    assert not bi.forward_layer.trainable and not bi.backward_layer.trainable


@pytest.mark.usefixtures("tier")
def test_mask_from_embedding_is_used_and_passed_on():
    """Embedding(mask_zero=True) -> Bidirectional: the same as passing the mask by hand; the
    sequence output carries the mask on, and padded steps are 0 in both halves."""
    ids = np.array([[0, 0, 5, 2, 7], [3, 1, 4, 1, 5]])
    emb = Embedding(10, 3, mask_zero=True, dtype="float64")
    bi = Bidirectional(SimpleRNN(4, return_sequences=True, dtype="float64"))
    y = bi(emb(ids))
    np.testing.assert_array_equal(mask_of(y), ids != 0)
    with no_grad():
        by_hand = bi(emb(ids).data, mask=ids != 0)
    np.testing.assert_array_equal(y.data, by_hand.data)
    assert np.all(y.data[0, :2] == 0) and np.all(y.data[0, 2:] != 0)
    # the real steps of sequence 0 are those of its unpadded ids alone
    alone = bi(emb(ids[:1, 2:]))
    np.testing.assert_allclose(y.data[0, 2:], alone.data[0], rtol=1e-12, atol=1e-14)


def test_functional_model_with_merge_none_and_states():
    inp = nb.Input((5, 2))
    out_f, out_b, h_f, h_b = Bidirectional(SimpleRNN(3, return_state=True), merge_mode=None)(inp)
    model = nb.Model(inp, Dense(1)(out_b))
    assert out_f.shape == h_b.shape == (None, 3)
    assert model.predict(np.ones((4, 5, 2), np.float32)).shape == (4, 1)


# ------------------------------------------------------------------ bad input
def test_rejects_a_layer_that_is_not_recurrent():
    with pytest.raises(TypeError, match=r"recurrent layer.*dense_q \(Dense\) has no go_backwards"):
        Bidirectional(Dense(3, name="dense_q"))
    with pytest.raises(TypeError, match="layer must be a recurrent layer instance"):
        Bidirectional(SimpleRNN)                                   # the class, not an instance


@pytest.mark.parametrize("bad", ["Concat", "concatenate", "max", 0, ["sum"]])
def test_rejects_an_unknown_merge_mode(bad):
    with pytest.raises(ValueError, match=r"merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or None"):
        Bidirectional(SimpleRNN(2), merge_mode=bad)


def test_rejects_mismatched_backward_layers():
    with pytest.raises(ValueError, match="must differ in go_backwards"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2))
    with pytest.raises(ValueError, match=r"same return_sequences.*return_sequences=False.*return_sequences=True"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2, go_backwards=True, return_sequences=True))
    with pytest.raises(ValueError, match="same return_state"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2, go_backwards=True, return_state=True))
    with pytest.raises(ValueError, match=r"merge_mode='sum'.*same units; got 2 \(forward\) and 3 \(backward\)"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(3, go_backwards=True), merge_mode="sum")
    with pytest.raises(ValueError, match="dtype float64"):
        Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(2, go_backwards=True, dtype="float64"))
    with pytest.raises(TypeError, match="backward_layer must be a recurrent layer"):
        Bidirectional(SimpleRNN(2), backward_layer=Dense(2))
    with pytest.raises(ValueError, match="pass it with go_backwards=False"):
        Bidirectional(SimpleRNN(2, go_backwards=True))


def test_rejects_bad_initial_state_and_input():
    bi = Bidirectional(SimpleRNN(3), name="bi_q")
    x = np.zeros((2, 4, 5), np.float32)
    for bad, got in ((np.zeros((2, 3)), "one ndarray"), ([np.zeros((2, 3))], "a list of 1"),
                     ([np.zeros((2, 3))] * 3, "a list of 3")):
        with pytest.raises(ValueError, match=rf"bi_q: initial_state must be a list of the forward.*got {got}"):
            bi(x, initial_state=bad)
    assert not bi.built and not bi.forward_layer.built              # a failed first call builds nothing
    with pytest.raises(ValueError, match=r"initial_state must have shape \(batch, units\) = \(2, 3\)"):
        bi(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"rank 3.*\(None, 5\)"):
        Bidirectional(SimpleRNN(3))(np.zeros((2, 5)))
    bi(x)
    with pytest.raises(ValueError, match="5 features"):
        bi(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(2, 4\)"):
        bi(x, mask=np.ones((2, 5), bool))
