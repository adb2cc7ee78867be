"""Functional models of several inputs and outputs, as Keras 3: structures in and out, per-output
losses / loss_weights / metrics, history names, evaluate's order, summary, data checks, errors.

The model used throughout has two inputs ``a``, ``b`` (N, 4), a ``shared`` Dense(5, tanh)
called on both (so both outputs' gradients meet in its weights), and two heads:
``reg`` = Dense(1) on shared(a) (mse) and ``cls`` = Dense(3, softmax) on shared(b)
(categorical cross-entropy).
"""
import io
import contextlib

import numpy as np
import pytest

import numbanet as nb
from numbanet import layers as L
from numbanet import optimizers as O
from bounds import LIBM_ULP, SAFETY, assert_within

pytestmark = [pytest.mark.usefixtures("tier"),
              # Keras warns that an output compiled with loss None gets no gradient: that is the point there
              pytest.mark.filterwarnings("ignore:Gradients do not exist for variables:UserWarning")]

N, F, H, C = 24, 4, 5, 3
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def build(dtype=None):
    a, b = nb.Input((F,), name="a"), nb.Input((F,), name="b")
    shared = L.Dense(H, activation="tanh", name="shared", dtype=dtype)
    y1 = L.Dense(1, name="reg", dtype=dtype)(shared(a))
    y2 = L.Dense(C, activation="softmax", name="cls", dtype=dtype)(shared(b))
    return nb.Model(inputs=[a, b], outputs=[y1, y2], dtype=dtype)


def build_keras(keras):
    a, b = keras.Input((F,), name="a"), keras.Input((F,), name="b")
    shared = keras.layers.Dense(H, activation="tanh", name="shared")
    y1 = keras.layers.Dense(1, name="reg")(shared(a))
    y2 = keras.layers.Dense(C, activation="softmax", name="cls")(shared(b))
    return keras.Model([a, b], [y1, y2])


def data(seed=0, n=N):
    """Float32-representable draws (exact in float64 too), one-hot class targets."""
    rng = np.random.default_rng(seed)
    xa = rng.standard_normal((n, F)).astype(np.float32)
    xb = rng.standard_normal((n, F)).astype(np.float32)
    y1 = rng.standard_normal((n, 1)).astype(np.float32)
    y2 = np.eye(C, dtype=np.float32)[rng.integers(0, C, n)]
    return xa, xb, y1, y2


def weights_by_layer(model):
    return {name: model.get_layer(name).get_weights() for name in ("shared", "reg", "cls")}


def copy_weights(src, dst):
    for name, ws in weights_by_layer(src).items():
        dst.get_layer(name).set_weights(ws)


# ------------------------------------------------------------------ structure in and out
def test_inputs_outputs_layers_and_call_structures():
    m = build()
    xa, xb, _, _ = data()
    assert m.input_names == ["a", "b"] and m.output_names == ["reg", "cls"]
    assert [t.shape for t in m.inputs] == [(None, F), (None, F)] and isinstance(m.input, list)
    assert [t.shape for t in m.outputs] == [(None, 1), (None, C)]
    assert [layer.name for layer in m.layers] == ["a", "b", "shared", "reg", "cls"]
    out = m([xa, xb])
    assert isinstance(out, list) and [o.shape for o in out] == [(N, 1), (N, C)]
    by_dict = m({"b": xb, "a": xa})
    swapped = m([xb, xa])
    np.testing.assert_array_equal(by_dict[0].data, out[0].data)
    assert not np.array_equal(swapped[0].data, out[0].data)  # the dict is read by name, not by order
    pred = m.predict([xa, xb], batch_size=7)
    assert isinstance(pred, list) and [p.shape for p in pred] == [(N, 1), (N, C)]
    # independent forward pass in float64 NumPy from the model's own weights
    (W0, b0), (W1, b1), (W2, b2) = (m.get_layer(n).get_weights() for n in ("shared", "reg", "cls"))
    ha, hb = np.tanh(xa.astype(np.float64) @ W0 + b0), np.tanh(xb.astype(np.float64) @ W0 + b0)
    z = hb @ W2 + b2
    p2 = np.exp(z - z.max(1, keepdims=True))
    p2 /= p2.sum(1, keepdims=True)
    n_chain = F + H + 2 + 2 * LIBM_ULP          # the two sums, the bias adds, tanh / exp
    assert_within(pred[0], ha @ W1 + b1, SAFETY * n_chain * EPS32 * (np.abs(ha) @ np.abs(W1) + 1), "reg")
    assert_within(pred[1], p2, SAFETY * (n_chain + C) * EPS32 * (np.abs(hb) @ np.abs(W2) + 1), "cls")


def test_one_listed_output_is_an_array_and_listed_input_is_kept():
    a = nb.Input((F,), name="a")
    y = L.Dense(2, name="d")(a)
    m = nb.Model([a], [y])
    assert isinstance(m.input, list) and isinstance(m.output, list)
    assert isinstance(m.predict(np.ones((3, F), np.float32)), np.ndarray)
    single = nb.Model(a, y)
    assert single.input is a and single.output is y and single.inputs == [a]


# ---------------------------------------------------------------- one SGD step, float64
def numpy_step(weights, xa, xb, y1, y2, lr, w_reg, w_cls):
    """One SGD step of the test model in float64 NumPy, gradients written out by hand.

    L = w_reg * mean((p1 - y1)^2) + w_cls * mean_n(-sum_c y2 log p2),
    p1 = tanh(a W0 + b0) W1 + b1, p2 = softmax(tanh(b W0 + b0) W2 + b2).
    Returns the new weights, (L_reg, L_cls) and each weight's gradient magnitude |X|^T|G|.
    """
    (W0, b0), (W1, b1), (W2, b2) = weights
    a, b = xa.astype(np.float64), xb.astype(np.float64)
    n = len(a)
    ha, hb = np.tanh(a @ W0 + b0), np.tanh(b @ W0 + b0)
    p1 = ha @ W1 + b1
    z = hb @ W2 + b2
    p2 = np.exp(z - z.max(1, keepdims=True))
    p2 /= p2.sum(1, keepdims=True)
    losses = (np.mean((p1 - y1) ** 2), np.mean(-np.sum(y2 * np.log(p2), axis=1)))
    dp1 = w_reg * 2 * (p1 - y1) / (n * 1)      # mse: the mean over N samples and 1 column
    dz = w_cls * (p2 - y2) / n                  # softmax + cross-entropy
    dha, dhb = dp1 @ W1.T * (1 - ha ** 2), dz @ W2.T * (1 - hb ** 2)
    grads = [(a.T @ dha + b.T @ dhb, dha.sum(0) + dhb.sum(0)), (ha.T @ dp1, dp1.sum(0)), (hb.T @ dz, dz.sum(0))]
    mags = [(np.abs(a).T @ np.abs(dha) + np.abs(b).T @ np.abs(dhb), np.abs(dha).sum(0) + np.abs(dhb).sum(0)),
            (np.abs(ha).T @ np.abs(dp1), np.abs(dp1).sum(0)), (np.abs(hb).T @ np.abs(dz), np.abs(dz).sum(0))]
    new = [(W - lr * gW, bb - lr * gb) for (W, bb), (gW, gb) in zip(weights, grads)]
    return new, losses, mags


@pytest.mark.parametrize("loss,loss_weights,w", [
    ({"reg": "mse", "cls": "categorical_crossentropy"}, {"reg": 2.0, "cls": 0.5}, (2.0, 0.5)),
    (["mse", "categorical_crossentropy"], [1.0, 3.0], (1.0, 3.0)),
    (["mse", "categorical_crossentropy"], None, (1.0, 1.0))])
def test_one_sgd_step_equals_numpy_float64(loss, loss_weights, w):
    m = build(dtype="float64")
    xa, xb, y1, y2 = data(1)
    lr = 0.1
    before = [tuple(m.get_layer(n).get_weights()) for n in ("shared", "reg", "cls")]
    expected, losses, mags = numpy_step(before, xa, xb, y1, y2, lr, *w)
    m.compile(O.SGD(learning_rate=lr), loss=loss, loss_weights=loss_weights)
    logs = m.evaluate([xa, xb], [y1, y2], batch_size=N, return_dict=True)
    n_chain = N + F + H + C + 4 * LIBM_ULP      # the longest chain of sums and transcendental calls
    for key, ref in zip(("reg_loss", "cls_loss"), losses):
        assert_within(logs[key], ref, SAFETY * n_chain * EPS64 * (abs(ref) + 1), key)
    assert_within(logs["loss"], w[0] * losses[0] + w[1] * losses[1],
                  SAFETY * n_chain * EPS64 * (abs(w[0] * losses[0]) + abs(w[1] * losses[1]) + 1), "loss")
    m.fit([xa, xb], [y1, y2], batch_size=N, epochs=1, shuffle=False, verbose=0)
    for name, (W_ref, b_ref), (mW, mb) in zip(("shared", "reg", "cls"), expected, mags):
        W, bb = m.get_layer(name).get_weights()
        assert_within(W, W_ref, SAFETY * n_chain * EPS64 * (np.abs(W_ref) + lr * mW), f"{name} kernel")
        assert_within(bb, b_ref, SAFETY * n_chain * EPS64 * (np.abs(b_ref) + lr * mb), f"{name} bias")


# ------------------------------------------------------------------- Keras, step for step
def test_two_input_two_output_training_matches_keras(keras):
    """Same weights, same SGD steps (no shuffling), float32 on both sides.

    Each side rounds every sum of n_chain terms (the batch, the fan-ins, the transcendental
    calls) relative to magnitudes of order 1 (inputs, weights and targets are unit normal
    draws), so one step moves a weight or a loss by at most SAFETY * n_chain * eps32 * (|value| + 1);
    over S steps (each starting from the other's rounded weights) that grows at most S-fold.
    """
    xa, xb, y1, y2 = data(2)
    ours, theirs = build(), build_keras(keras)
    copy_weights(ours, theirs)
    loss = {"reg": "mse", "cls": "categorical_crossentropy"}
    loss_weights = {"reg": 2.0, "cls": 0.5}
    metrics = {"reg": "mae", "cls": ["accuracy", "mse"]}
    ours.compile(O.SGD(learning_rate=0.1), loss=loss, loss_weights=loss_weights, metrics=metrics)
    theirs.compile(keras.optimizers.SGD(learning_rate=0.1), loss=loss, loss_weights=loss_weights,
                   metrics=metrics, run_eagerly=True)
    kw = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    h_ours, h_theirs = ours.fit([xa, xb], [y1, y2], **kw), theirs.fit([xa, xb], [y1, y2], **kw)
    steps = 2 * 3                                 # 18 training samples in batches of 8: 3 steps an epoch
    n_chain = 8 + F + H + C + 4 * LIBM_ULP
    tol = 2 * steps * SAFETY * n_chain * EPS32    # both sides round, hence 2
    assert set(h_ours.history) == set(h_theirs.history)
    assert set(h_ours.history) == {"loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy", "cls_mse",
                                   "val_loss", "val_reg_loss", "val_cls_loss", "val_reg_mae",
                                   "val_cls_accuracy", "val_cls_mse"}
    for key, values in h_theirs.history.items():
        if key.endswith("accuracy"):             # the same count of argmax hits; Keras keeps it in float32
            assert_within(np.array(h_ours.history[key]), np.array(values), EPS32 * np.abs(values), key)
            continue
        assert_within(np.array(h_ours.history[key]), np.array(values), tol * (np.abs(values) + 1), key)
    for name in ("shared", "reg", "cls"):
        for w_ours, w_theirs in zip(ours.get_layer(name).get_weights(), theirs.get_layer(name).get_weights()):
            assert_within(w_ours, np.asarray(w_theirs), tol * (np.abs(w_theirs) + 1), name)
    # evaluate: Keras's order (loss, each output's loss, then the metrics sorted by name)
    e_ours = ours.evaluate({"a": xa, "b": xb}, {"cls": y2, "reg": y1})
    e_theirs = theirs.evaluate([xa, xb], [y1, y2], verbose=0)
    assert len(e_ours) == len(e_theirs) == 6
    assert_within(e_ours[3], e_theirs[3], EPS32 * e_theirs[3], "cls_accuracy, after the three losses")
    assert_within(np.array(e_ours), np.array(e_theirs), tol * (np.abs(e_theirs) + 1), "evaluate")
    p_ours, p_theirs = ours.predict([xa, xb]), theirs.predict([xa, xb], verbose=0)
    for p, q in zip(p_ours, p_theirs):
        assert_within(p, q, tol * (np.abs(q) + 1), "predict")


@pytest.mark.parametrize("compile_kw", [
    dict(loss="mse"),
    dict(loss=["mse", "categorical_crossentropy"], metrics=[["mae"], ["accuracy"]]),
    dict(loss=["mse", "categorical_crossentropy"], metrics=["mae", "accuracy"]),
    dict(loss=["mse", "categorical_crossentropy"], metrics={"cls": "acc"}),
    dict(loss=["mse", None]),
    dict(loss="mse", metrics=[None, ["mean_absolute_error"]])])
def test_history_names_match_keras(keras, compile_kw):
    xa, xb, y1, y2 = data(3)
    ours, theirs = build(), build_keras(keras)
    ours.compile("sgd", **compile_kw)
    theirs.compile("sgd", **compile_kw)
    kw = dict(epochs=1, verbose=0, validation_split=0.25)
    keys_theirs = set(theirs.fit([xa, xb], [y1, y2], **kw).history)
    assert set(ours.fit([xa, xb], [y1, y2], **kw).history) == keys_theirs


def test_summary_connected_to_matches_keras(keras, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")          # Keras's table is cut to the terminal's width
    ours, theirs = build(), build_keras(keras)
    lines_ours, lines_theirs = [], []
    ours.summary(print_fn=lines_ours.append)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs.summary(print_fn=lambda line, **_: lines_theirs.append(line), line_length=120)

    def cells(lines):
        rows = {}
        for line in "\n".join(lines).splitlines():
            parts = [p.strip() for p in line.split("│")]
            if len(parts) == 6 and "(" in parts[1]:
                rows[parts[1].split(" ")[0]] = (parts[2], parts[3], parts[4])
        return rows
    assert "Connected to" in lines_ours[2]
    assert cells(lines_ours) == cells(lines_theirs)
    assert cells(lines_ours)["shared"] == ("(None, 5)", "25", "a[0][0], b[0][0]")
    assert lines_ours[-3:] == [" Total params: 49 (196.00 B)", " Trainable params: 49 (196.00 B)",
                               " Non-trainable params: 0 (0.00 B)"]


# ----------------------------------------------------------- losses, weights, None, dicts
def test_one_loss_list_and_dict_give_the_same_numbers():
    xa, xb, y1, y2 = data(4)
    results = []
    for loss in ("mse", ["mse", "mse"], {"cls": "mse", "reg": "mse"}):
        m = build()
        m.set_weights(build_seeded_weights())
        m.compile("sgd", loss=loss, loss_weights={"cls": 3.0})
        results.append(m.evaluate([xa, xb], [y1, y2], batch_size=N))
    assert results[0] == results[1] == results[2]
    p1, p2 = (p.astype(np.float64) for p in m.predict([xa, xb]))
    l_reg, l_cls = np.mean((p1 - y1) ** 2), np.mean(np.mean((p2 - y2) ** 2, axis=1))
    n_chain = N + C + 2
    assert_within(results[0][1], l_reg, SAFETY * n_chain * EPS32 * l_reg, "reg_loss")
    assert_within(results[0][2], l_cls, SAFETY * n_chain * EPS32 * l_cls, "cls_loss")
    assert_within(results[0][0], l_reg + 3.0 * l_cls, SAFETY * n_chain * EPS32 * (l_reg + 3.0 * l_cls), "loss")


def build_seeded_weights():
    rng = np.random.default_rng(7)
    return [rng.standard_normal(s).astype(np.float32) * 0.5 for s in ((F, H), (H,), (H, 1), (1,), (H, C), (C,))]


def test_output_without_loss_is_not_trained_and_needs_no_targets():
    xa, xb, y1, _ = data(5)
    m = build()
    cls_before = m.get_layer("cls").get_weights()
    m.compile(O.SGD(learning_rate=0.1), loss={"reg": "mse", "cls": None})
    h = m.fit([xa, xb], [y1], epochs=2, verbose=0)
    assert list(h.history) == ["loss"]            # one active loss: no per-output names (Keras 3)
    for before, after in zip(cls_before, m.get_layer("cls").get_weights()):
        np.testing.assert_array_equal(before, after)
    h2 = m.fit([xa, xb], {"reg": y1}, epochs=1, verbose=0)
    assert h2.history["loss"][0] < h.history["loss"][0]


def test_sample_weight_applies_to_every_output():
    xa, xb, y1, y2 = data(6)
    sw = np.random.default_rng(0).uniform(0.0, 2.0, N).astype(np.float32)
    m = build()
    m.compile("sgd", loss=["mse", "categorical_crossentropy"])
    logs = m.evaluate([xa, xb], [y1, y2], batch_size=N, sample_weight=sw, return_dict=True)
    p1, p2 = (p.astype(np.float64) for p in m.predict([xa, xb]))
    l_reg = np.sum(sw * ((p1 - y1) ** 2)[:, 0]) / N
    l_cls = np.sum(sw * -np.sum(y2 * np.log(np.clip(p2, 1e-7, 1 - 1e-7)), axis=1)) / N
    n_chain = N + C + 2 + LIBM_ULP
    assert_within(logs["reg_loss"], l_reg, SAFETY * n_chain * EPS32 * (l_reg + 1), "reg_loss")
    assert_within(logs["cls_loss"], l_cls, SAFETY * n_chain * EPS32 * (l_cls + 1), "cls_loss")


# ------------------------------------------------------------ validation_split and shuffle
def test_validation_split_and_shuffle_keep_the_arrays_together():
    n = 20
    ids = np.arange(n, dtype=np.float32)
    xa = np.tile(ids[:, None], (1, F))
    xb = np.tile(ids[:, None] + 100, (1, F))
    y1 = ids[:, None] + 200
    y2 = np.zeros((n, C), np.float32)
    y2[:, 0] = 1
    m = build()
    m.compile(O.SGD(learning_rate=1e-6), loss=["mse", "categorical_crossentropy"])
    seen = []
    step = m._train_step

    def recording_step(x, y, sample_weight=None):
        seen.append((x[0][:, 0].copy(), x[1][:, 0].copy(), y[0][:, 0].copy()))
        return step(x, y, sample_weight)
    m._train_step = recording_step
    m.fit([xa, xb], [y1, y2], batch_size=4, epochs=2, validation_split=0.25, verbose=0, shuffle=True)
    trained = np.concatenate([a for a, _, _ in seen])
    for a, b, t in seen:
        np.testing.assert_array_equal(b, a + 100)
        np.testing.assert_array_equal(t, a + 200)
    # the last quarter (ids 15..19) is held out; each epoch sees ids 0..14 once, in a shuffled order
    epoch1, epoch2 = trained[:15], trained[15:]
    assert sorted(epoch1) == sorted(epoch2) == list(range(15))
    assert list(epoch1) != list(range(15)) or list(epoch2) != list(range(15))


def test_validation_loss_is_the_held_out_tail():
    xa, xb, y1, y2 = data(8, n=20)
    m = build()
    m.compile("sgd", loss=["mse", "categorical_crossentropy"])
    h = m.fit([xa, xb], [y1, y2], epochs=1, validation_split=0.25, verbose=0)
    tail = m.evaluate([xa[15:], xb[15:]], [y1[15:], y2[15:]], return_dict=True)
    for key in ("loss", "reg_loss", "cls_loss"):
        assert h.history["val_" + key][0] == tail[key]


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw,match", [
    (dict(loss={"reg": "mse", "clss": "mse"}), r"loss has the key 'clss'.*outputs are \['reg', 'cls'\]"),
    (dict(loss={"reg": "mse"}), r"no entry for the output\(s\) \['cls'\]"),
    (dict(loss=["mse"]), r"loss is a list of 1, but the model has 2 outputs"),
    (dict(loss=["mse"] * 3), r"loss is a list of 3"),
    (dict(loss="mse", loss_weights={"zz": 1.0}), r"loss_weights has the key 'zz'"),
    (dict(loss="mse", loss_weights=[1.0]), r"loss_weights is a list of 1"),
    (dict(loss="mse", metrics=["mae"]), r"metrics is a list of 1, but the model has 2 outputs"),
    (dict(loss="mse", metrics={"zz": "mae"}), r"metrics has the key 'zz'"),
    (dict(loss=[None, None]), r"needs a loss for at least one output")])
def test_bad_compile_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        build().compile("sgd", **kw)


def test_bad_data_structures():
    xa, xb, y1, y2 = data(9)
    m = build()
    m.compile("sgd", loss=["mse", "categorical_crossentropy"])
    with pytest.raises(ValueError, match=r"2 outputs \['reg', 'cls'\].*got a list of 1"):
        m.fit([xa, xb], [y1], verbose=0)
    with pytest.raises(ValueError, match=r"2 outputs .*got a list of 3"):
        m.fit([xa, xb], [y1, y2, y2], verbose=0)
    with pytest.raises(ValueError, match=r"2 outputs .*got one ndarray"):
        m.fit([xa, xb], y1, verbose=0)
    with pytest.raises(ValueError, match=r"y has the key 'zz', which is not an output"):
        m.fit([xa, xb], {"reg": y1, "cls": y2, "zz": y1}, verbose=0)
    with pytest.raises(ValueError, match=r"no targets for output 'cls'"):
        m.fit([xa, xb], {"reg": y1}, verbose=0)
    with pytest.raises(ValueError, match=r"2 inputs \['a', 'b'\].*got a list of 1"):
        m.fit([xa], [y1, y2], verbose=0)
    with pytest.raises(ValueError, match=r"missing data for input 'b'"):
        m.predict({"a": xa})
    with pytest.raises(ValueError, match=r"expects 2 inputs"):
        m(xa)
    with pytest.raises(ValueError, match=r"x\[1\] \('b'\) has shape \(24, 3\).*\(None, 4\)"):
        m.predict([xa, xb[:, :3]])
    with pytest.raises(ValueError, match=r"y\[1\] \('cls'\) of shape \(24, 2\) does not fit output 'cls'"):
        m.fit([xa, xb], [y1, y2[:, :2]], verbose=0)


def test_mismatched_sample_counts_name_every_array():
    xa, xb, y1, y2 = data(10)
    m = build()
    m.compile("sgd", loss=["mse", "categorical_crossentropy"])
    msg = (r"same number of samples.*x\[0\] \('a'\) has 24, x\[1\] \('b'\) has 20, "
           r"y\[0\] \('reg'\) has 24, y\[1\] \('cls'\) has 24")
    with pytest.raises(ValueError, match=msg):
        m.fit([xa, xb[:20]], [y1, y2], verbose=0)
    with pytest.raises(ValueError, match=r"y\[1\] \('cls'\) has 10"):
        m.evaluate([xa, xb], {"reg": y1, "cls": y2[:10]})
    with pytest.raises(ValueError, match=r"sample_weight has 5"):
        m.fit([xa, xb], [y1, y2], sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): .*x\[0\] \('a'\) has 24, x\[1\] \('b'\) has 3"):
        m.fit([xa, xb], [y1, y2], validation_data=([xa, xb[:3]], [y1, y2]), verbose=0)


def test_nan_in_one_input_is_reported_with_its_name():
    xa, xb, y1, y2 = data(11)
    xb[3, 1] = np.nan
    m = build()
    m.compile("sgd", loss="mse")
    with pytest.raises(ValueError, match=r"x\[1\] \('b'\) contains NaN.*index \(3, 1\)"):
        m.fit([xa, xb], [y1, y2], verbose=0)


def test_model_inputs_must_come_from_input():
    a = nb.Input((F,), name="a")
    h = L.Dense(3)(a)
    with pytest.raises(ValueError, match=r"inputs\[0\] must be a tensor made by Input"):
        nb.Model(h, L.Dense(1)(h))
    other = nb.Input((F,), name="other")
    with pytest.raises(ValueError, match=r"depends on the input 'other', which is not in inputs"):
        nb.Model(a, L.Dense(1)(other))
    with pytest.raises(TypeError, match=r"got a ndarray at outputs\[1\]"):
        nb.Model(a, [h, np.ones(3)])
