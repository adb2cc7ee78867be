"""LSTM against tf.keras.layers.LSTM (Keras 3): the same weights give the same outputs, states and
gradients, within the float32 rounding bound of tests/lstm_oracle.py (twice: both sides round)."""
import os

import numpy as np
import pytest

import numbanet as nb
from numbanet.engine import Tensor
from numbanet.layers import LSTM

import lstm_oracle as oracle
from bounds import SAFETY, assert_within

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MASKS = {   # (N, T) = (3, 6): leading, inner and trailing padding; a row with no real step at all
    "gaps": np.array([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]], bool),
    "empty_row": np.array([[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]], bool),
}

CASES = [  # act, ract, seq, state, back, h0, bias, mask, (N, T, D, U)
    ("tanh", "sigmoid", True, True, False, False, True, None, (3, 6, 4, 5)),
    ("tanh", "sigmoid", False, True, False, True, True, None, (3, 6, 4, 5)),
    ("tanh", "sigmoid", True, True, True, True, False, None, (3, 6, 4, 5)),
    ("tanh", "sigmoid", True, True, False, True, True, "gaps", (3, 6, 4, 5)),
    ("tanh", "sigmoid", False, True, True, False, True, "gaps", (3, 6, 4, 5)),
    ("tanh", "sigmoid", True, True, False, True, True, "empty_row", (3, 6, 4, 5)),
    ("tanh", "sigmoid", False, True, True, True, True, "empty_row", (3, 6, 4, 5)),
    ("relu", "hard_sigmoid", True, True, True, True, True, "gaps", (3, 6, 4, 5)),
    ("hard_sigmoid", "relu", False, True, False, True, True, "empty_row", (3, 6, 4, 5)),
    ("linear", "tanh", True, True, False, True, True, None, (3, 6, 4, 5)),
    ("sigmoid", "linear", False, True, True, False, False, None, (3, 6, 4, 5)),
    ("tanh", "sigmoid", True, False, False, False, True, "gaps", (3, 6, 4, 5)),
    ("tanh", "sigmoid", False, False, True, True, True, None, (3, 6, 4, 5)),
    ("tanh", "sigmoid", True, True, False, True, True, None, (2, 1, 3, 1)),      # T = 1, U = 1
    ("tanh", "sigmoid", False, True, True, True, True, None, (1, 4, 1, 1)),      # batch 1, D = 1, U = 1
]


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@pytest.mark.parametrize("act, ract, seq, state, back, use_h0, use_bias, mask_name, shape", CASES)
def test_keras_parity_outputs_states_gradients(tf, act, ract, seq, state, back, use_h0, use_bias, mask_name, shape):
    N, T, D, U = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0, c0 = (rng.standard_normal((N, U)).astype(np.float32) for _ in range(2))
    mask = MASKS[mask_name] if mask_name else None
    kw = dict(activation=act, recurrent_activation=ract, use_bias=use_bias, return_sequences=seq,
              return_state=state, go_backwards=back)
    k_layer = tf.keras.layers.LSTM(U, **kw)
    xt, h0t, c0t = tf.constant(x), tf.constant(h0), tf.constant(c0)
    k_layer(xt)
    weights = [w + rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in k_layer.get_weights()]
    k_layer.set_weights(weights)
    out_shape = (N, T, U) if seq else (N, U)
    gy = rng.standard_normal(out_shape).astype(np.float32)
    gh, gc = (rng.standard_normal((N, U)).astype(np.float32) * state for _ in range(2))
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t, c0t])
        k_res = k_layer(xt, initial_state=[h0t, c0t] if use_h0 else None,
                        mask=None if mask is None else tf.constant(mask))
        k_res = k_res if state else [k_res]
        k_loss = tf.reduce_sum(k_res[0] * gy) + (tf.reduce_sum(k_res[1] * gh) + tf.reduce_sum(k_res[2] * gc)
                                                 if state else 0)
    k_grads = tape.gradient(k_loss, [xt, h0t, c0t] + k_layer.trainable_weights)

    layer = LSTM(U, **kw)
    layer(x)
    layer.set_weights(weights)
    xn, h0n, c0n = (Tensor(a, requires_grad=True) for a in (x, h0, c0))
    res = layer(xn, initial_state=[h0n, c0n] if use_h0 else None, mask=mask)
    res = res if state else (res,)
    assert len(res) == len(k_res) and all(r.dtype == np.float32 for r in res)
    loss = (res[0] * Tensor(gy)).sum()
    if state:
        loss = loss + (res[1] * Tensor(gh)).sum() + (res[2] * Tensor(gc)).sum()
    loss.backward()

    # the bound: the float32 rounding of each side against the exact result, from the oracle
    eps = float(np.finfo(np.float32).eps)
    W, R = weights[0], weights[1]
    b = weights[2] if use_bias else None
    y, hT, cT, ey, ehT, ecT, steps = oracle.forward(x, W, R, b, h0 if use_h0 else None, c0 if use_h0 else None,
                                                    act, ract, back, mask, eps)
    if not seq:
        ey = ey[:, -1]
    for name, a, k, e in zip(["output", "h_T", "c_T"], res, k_res, [ey, ehT, ecT]):
        assert_within(a.data, k.numpy(), 2 * e, f"{name}")
    gfull = np.zeros((N, T, U))
    if seq:
        gfull[:] = gy
    else:
        gfull[:, -1] = gy
    bounds = oracle.gradient_bounds(steps, gfull, gh, gc, x.shape, W, R, eps)
    bounds = [bounds[0], bounds[4], bounds[5], bounds[1], bounds[2], bounds[3]]    # x, h0, c0, W, R, b
    ours = [xn.grad, h0n.grad, c0n.grad] + [w.grad for w in layer.trainable_weights]
    for name, a, k, e in zip(["x", "h0", "c0", "kernel", "recurrent_kernel", "bias"], ours, k_grads, bounds):
        if k is None:   # an initial state that is not used has no gradient, in TensorFlow and here
            assert name in ("h0", "c0") and not use_h0 and a is None, name
            continue
        assert_within(a, k.numpy(), 2 * e, name)


def test_shapes_params_and_config_match_keras(keras):
    for kw in [dict(), dict(return_sequences=True), dict(return_state=True),
               dict(return_sequences=True, return_state=True, go_backwards=True), dict(use_bias=False)]:
        ours, theirs = LSTM(7, **kw), keras.layers.LSTM(7, **kw)
        assert ours.compute_output_shape((None, 5, 3)) == theirs.compute_output_shape((None, 5, 3)), kw
        ours(np.zeros((2, 5, 3), np.float32))
        theirs.build((None, 5, 3))
        assert ours.count_params() == theirs.count_params(), kw
        assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()], kw
        assert set(ours.get_config()) <= set(theirs.get_config()), set(ours.get_config()) - set(theirs.get_config())
        np.testing.assert_array_equal(ours.bias.data if ours.bias is not None else 0,
                                      theirs.get_weights()[2] if len(theirs.get_weights()) > 2 else 0)


def test_masked_text_model_loss_matches_keras(keras):
    """Embedding(mask_zero) -> LSTM(seq) -> LSTM(seq, go_backwards) -> Dense: Keras's masked loss."""
    V, T, N = 12, 6, 5
    rng = np.random.default_rng(0)
    x = rng.integers(1, V, size=(N, T))
    for i, L in enumerate([6, 4, 2, 5, 1]):
        x[i, L:] = 0
    y = rng.integers(1, V, size=(N, T))
    nb.utils.set_random_seed(0)
    m = nb.Sequential([nb.layers.Embedding(V, 4, mask_zero=True), LSTM(7, return_sequences=True),
                       LSTM(5, return_sequences=True, go_backwards=True), nb.layers.Dense(V)])
    m.compile(optimizer="adam", loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    m(x)
    k = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, 4, mask_zero=True),
                          keras.layers.LSTM(7, return_sequences=True),
                          keras.layers.LSTM(5, return_sequences=True, go_backwards=True), keras.layers.Dense(V)])
    k.set_weights(m.get_weights())
    k.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = k.evaluate(x, y, batch_size=N, verbose=0)
    # every quantity is a sum of at most n = 2 T (D + 4U + 12) + V terms (two LSTMs of T steps, then
    # the logits and the log-softmax), rounded in float32 by each side in its own order
    n = 2 * T * (4 + 4 * 7 + 12) + V
    assert m.evaluate(x, y, batch_size=N) == pytest.approx(expected, rel=SAFETY * n * float(np.finfo(np.float32).eps))
