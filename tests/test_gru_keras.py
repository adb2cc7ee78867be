"""GRU against tf.keras (Keras 3): the same weights give the same outputs, states and gradients.

Every configuration runs under both kernel tiers. Tolerances are the first-order
rounding bounds of ``test_gru.gru_error_bounds`` (two float computations of the
same GRU: here numbanet's and TensorFlow's), in the dtype of the run.
"""
import itertools

import numpy as np
import pytest

import numbanet as nb
from numbanet.engine import Tensor
from numbanet.layers import GRU

from bounds import LIBM_ULP, SAFETY, assert_within, matmul_bound
from test_gru import _mask, gru_error_bounds


def _case(reset_after, seq, back, mask, h0, bias=True, act="tanh", rec="sigmoid", N=3, T=6, D=4, U=5,
          dtype="float32", state=True):
    return dict(reset_after=reset_after, seq=seq, back=back, mask=mask, h0=h0, bias=bias, act=act, rec=rec,
                N=N, T=T, D=D, U=U, dtype=dtype, state=state)


# every combination of reset_after, return_sequences, go_backwards, the mask (none; random; a gap,
# a trailing pad and a row with no real step) and the initial state; then the edge cases
CASES = [_case(*c) for c in itertools.product([True, False], [True, False], [True, False],
                                              ["none", "random", "gaps"], [False, True])]
CASES += [
    _case(True, True, False, "gaps", True, T=1),
    _case(False, False, True, "none", True, T=1),
    _case(True, True, True, "gaps", True, U=1),
    _case(False, True, False, "random", False, U=1, N=1),
    _case(True, True, False, "gaps", True, dtype="float64"),
    _case(False, False, True, "random", True, dtype="float64"),
    _case(True, True, True, "gaps", True, bias=False),
    _case(False, False, False, "none", True, bias=False),
    _case(True, True, False, "gaps", True, act="relu", rec="hard_sigmoid"),
    _case(False, True, True, "random", True, act="linear", rec="hard_sigmoid"),
    _case(True, False, False, "none", False, act="hard_sigmoid", rec="tanh"),
    _case(False, True, False, "gaps", True, act="tanh", rec="relu"),
    _case(True, True, False, "none", False, state=False),
    _case(False, False, True, "gaps", True, state=False),
]


def _keras_run(tf, c, x, h0, mask, weights, gy, gs):
    """TensorFlow's output, state and gradients (x, h0, kernel, recurrent_kernel[, bias])."""
    k_layer = tf.keras.layers.GRU(c["U"], activation=c["act"], recurrent_activation=c["rec"], use_bias=c["bias"],
                                  return_sequences=c["seq"], return_state=True, go_backwards=c["back"],
                                  reset_after=c["reset_after"], dtype=c["dtype"])
    xt, h0t = tf.constant(x), tf.constant(h0)
    k_layer(xt)
    k_layer.set_weights(weights)
    with tf.GradientTape() as tape:
        tape.watch([xt, h0t])
        out, state = k_layer(xt, initial_state=[h0t] if c["h0"] else None,
                             mask=None if mask is None else tf.constant(mask))
        loss = tf.reduce_sum(out * gy) + tf.reduce_sum(state * gs)
    grads = tape.gradient(loss, [xt, h0t] + k_layer.trainable_weights)
    return out.numpy(), state.numpy(), [None if g is None else g.numpy() for g in grads]


@pytest.mark.usefixtures("tier")  # under both kernel tiers (conftest.py)
@pytest.mark.parametrize("c", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_keras_parity_outputs_states_gradients(tf, c):
    rng = np.random.default_rng(7)
    dt = np.dtype(c["dtype"])
    N, T, D, U = c["N"], c["T"], c["D"], c["U"]
    x = rng.standard_normal((N, T, D)).astype(dt)
    h0 = (rng.standard_normal((N, U)) * 0.5).astype(dt)
    mask = _mask(c["mask"], N, T, rng)
    gy = rng.standard_normal((N, T, U) if c["seq"] else (N, U)).astype(dt)
    gs = rng.standard_normal((N, U)).astype(dt) if c["state"] else np.zeros((N, U), dt)
    layer = GRU(U, activation=c["act"], recurrent_activation=c["rec"], use_bias=c["bias"], return_sequences=c["seq"],
                return_state=c["state"], go_backwards=c["back"], reset_after=c["reset_after"], dtype=c["dtype"])
    layer(x)
    weights = [(w + rng.standard_normal(w.shape) * 0.3).astype(dt) for w in layer.get_weights()]
    layer.set_weights(weights)
    k_out, k_state, k_grads = _keras_run(tf, c, x, h0, mask, weights, gy, gs)

    xn, h0n = Tensor(x, requires_grad=True), Tensor(h0, requires_grad=True)
    result = layer(xn, initial_state=h0n if c["h0"] else None, mask=mask)
    out, state = result if c["state"] else (result, None)
    loss = (out * Tensor(gy)).sum() + ((state * Tensor(gs)).sum() if c["state"] else 0)
    loss.backward()

    gy_full = np.zeros((N, T, U))                       # dL/dy_t of every output step, for the bounds
    gy_full[:] = gy if c["seq"] else 0
    gy_full[:, -1] += (0 if c["seq"] else gy) + gs
    W, R, *b = weights
    e_y, e_g, _ = gru_error_bounds(x, W, R, b[0] if b else None, h0 if c["h0"] else None, c["act"], c["rec"],
                                   c["reset_after"], c["back"], mask, gy_full, float(np.finfo(dt).eps))
    assert out.dtype == dt
    assert_within(out.data, k_out, e_y if c["seq"] else e_y[:, -1], "output")
    if c["state"]:
        assert_within(state.data, k_state, e_y[:, -1], "state")
    ours = [xn.grad, h0n.grad] + [w.grad for w in layer.trainable_weights]
    bounds = [e_g[0], e_g[4] if c["h0"] else None, e_g[1], e_g[2], e_g[3]]
    for name, a, k, bound in zip(["x", "h0", "kernel", "recurrent_kernel", "bias"], ours, k_grads, bounds):
        if k is None:     # only an unused initial state has no gradient in TensorFlow, and none here either
            assert name == "h0" and not c["h0"] and a is None, name
            continue
        assert a.dtype == dt, name
        assert_within(a, k, bound, name)


def test_keras_parity_of_a_masked_sequence_model(keras):
    """Embedding(mask_zero) -> GRU(return_sequences) -> GRU(reset_after=False, go_backwards) -> Dense:
    the mask reaches both GRUs in a Sequential, and predict and evaluate give Keras's numbers."""
    V, T, N = 12, 6, 5
    rng = np.random.default_rng(0)
    ids = rng.integers(1, V, size=(N, T))
    for i, L in enumerate([6, 4, 2, 5, 1]):
        ids[i, L:] = 0                                  # post-padding
    y = rng.integers(0, 3, size=N)
    nb.utils.set_random_seed(0)
    emb, g1, g2 = nb.layers.Embedding(V, 4, mask_zero=True), GRU(7, return_sequences=True), \
        GRU(5, reset_after=False, go_backwards=True)
    model = nb.Sequential([emb, g1, g2, nb.layers.Dense(3)])
    model.compile(optimizer="adam", loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    model(ids)
    weights = [w + rng.standard_normal(w.shape).astype(np.float32) * 0.2 for w in model.get_weights()]
    model.set_weights(weights)
    k = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, 4, mask_zero=True),
                          keras.layers.GRU(7, return_sequences=True),
                          keras.layers.GRU(5, reset_after=False, go_backwards=True), keras.layers.Dense(3)])
    k.set_weights(weights)
    k.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    # the bound: layer 1 on the (exactly gathered) embeddings, layer 2 on layer 1's output
    # carrying layer 1's bound, then the Dense product
    E, W1, R1, b1, W2, R2, b2, Wd, bd = weights
    mask, eps = ids != 0, float(np.finfo(np.float32).eps)
    x1 = E[ids]
    out1 = g1(x1, mask=mask).data
    e1 = gru_error_bounds(x1, W1, R1, b1, None, "tanh", "sigmoid", True, False, mask, np.zeros((N, T, 7)), eps)[0]
    h2 = g2(out1, mask=mask).data
    e2 = gru_error_bounds(out1, W2, R2, b2, None, "tanh", "sigmoid", False, True, mask, np.zeros((N, T, 5)), eps,
                          e_x=e1)[0][:, -1]
    e_logits = e2 @ np.abs(Wd) + matmul_bound(h2, Wd, add=bd)
    assert_within(model.predict(ids), k.predict(ids, verbose=0), e_logits, "logits")
    # the loss is a mean of N log-softmax values, each moving by at most 2 max|logit change|,
    # plus the rounding of a log-sum-exp of 3 terms (one libm exp each and a log) and of the mean
    logits = np.abs(model.predict(ids)).max()
    assert abs(model.evaluate(ids, y, batch_size=N) - k.evaluate(ids, y, batch_size=N, verbose=0)) <= \
        2 * e_logits.max() + SAFETY * (3 * LIBM_ULP + N + 4) * eps * (1 + 2 * logits)
