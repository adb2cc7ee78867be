"""Batch-split threading (nb.utils.set_num_threads) gives the same numbers as serial execution."""
import numpy as np
import pytest

import numbanet as nb
from numbanet.fast import parallel

from bounds import LIBM_ULP, assert_within, elementwise_bound, matmul_bound, sum_bound


def _autoencoder_like():
    L = nb.layers
    inp = nb.Input((12, 12, 2))
    h = L.Conv2D(6, 3, activation="relu", padding="same")(inp)
    h = L.MaxPooling2D(2)(h)
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
    h = L.UpSampling2D(2)(h)
    h = L.Conv2D(3, 3, activation="tanh")(h)
    h = L.Flatten()(h)
    out = L.Dense(5)(h)
    return nb.Model(inp, out)


def _grads(model, x):
    for w in model.weights:
        w.grad = None
    y = model(x)
    (y * y).sum().backward()
    return y.data.copy(), [w.grad.copy() for w in model.weights]


def test_split_covers_everything_once():
    assert parallel.split(10, 2) == [(0, 5), (5, 10)]
    assert parallel.split(1, 2) == [(0, 1)]
    assert parallel.split(7, 3) == [(0, 2), (2, 5), (5, 7)]


def test_threads_match_serial(two_threads):
    nb.utils.set_random_seed(0)
    model = _autoencoder_like()
    x = np.random.default_rng(0).standard_normal((9, 12, 12, 2)).astype(np.float64).astype(np.float32)
    y2, g2 = _grads(model, x)                  # two threads
    nb.utils.set_num_threads(1)
    y1, g1 = _grads(model, x)                  # serial
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-6)
    for a, b in zip(g2, g1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_gradients_with_threads_against_finite_differences(two_threads):
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((5, 6, 6, 2)), rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4)
    rep = nb.check_grad(lambda x, W, b: nb.functional.conv2d(x, W, b, padding="same", activation="relu"), x, W, b)
    assert rep.passed, str(rep)
    rep = nb.check_grad(lambda x: nb.functional.max_pool2d(x, 2), x)
    assert rep.passed, str(rep)


def test_blas_threads_given_back_when_going_serial():
    nb.utils.set_num_threads(1)
    blas = parallel.blas_controllers()
    before = [lc.get_num_threads() for lc in blas]
    nb.utils.set_num_threads(2)
    parallel.run(lambda a, b, _: None, parallel.split(8))   # starts the workers
    nb.utils.set_num_threads(1)
    assert [lc.get_num_threads() for lc in blas] == before


@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_ce_split_over_threads_matches_float64_reference(two_threads, weighted):
    """Big enough (B*V >= 65536) for the loss to split its rows across the threads."""
    rng = np.random.default_rng(2)
    B, T, V = 40, 5, 400
    z = (3 * rng.standard_normal((B, T, V))).astype(np.float32)
    t = rng.integers(0, V, size=(B, T))
    w = rng.random(B).astype(np.float32) if weighted else None
    zt = nb.Tensor(z, requires_grad=True)
    loss = nb.losses.SparseCategoricalCrossentropy(from_logits=True)(t, zt, sample_weight=w)
    loss.backward()
    z64 = z.astype(np.float64)
    lse = np.log(np.exp(z64 - z64.max(-1, keepdims=True)).sum(-1)) + z64.max(-1)
    per = lse - np.take_along_axis(z64, t[..., None], -1)[..., 0]                   # (B, T)
    ww = np.ones((B, T)) if w is None else np.broadcast_to(w[:, None], (B, T))
    np.testing.assert_allclose(float(loss.data), (per * ww).sum() / (B * T), rtol=1e-5)
    soft = np.exp(z64 - lse[..., None])
    onehot = np.eye(V)[t]
    np.testing.assert_allclose(zt.grad, (soft - onehot) * ww[..., None] / (B * T), rtol=1e-4, atol=1e-9)


def test_numpy_pool_leaves_blas_threads_alone():
    nb.utils.set_num_threads(1)
    blas = parallel.blas_controllers()
    before = [lc.get_num_threads() for lc in blas]
    nb.utils.set_num_threads(2)
    try:
        parallel.run_numpy(lambda a, b, _: None, parallel.split(8))
        assert [lc.get_num_threads() for lc in blas] == before
    finally:
        nb.utils.set_num_threads(1)


def test_dense_split_once_blas_is_single_threaded(two_threads):
    """After the batch-split pool has started, a big Dense product runs as two halves: same numbers."""
    parallel.run(lambda a, b, _: None, parallel.split(8))          # start the workers (BLAS -> 1 thread)
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((70, 2100)), rng.standard_normal((2100, 9)), rng.standard_normal(9)
    assert len(parallel.split_for_blas(70, x.size * 9)) == 2
    xt, Wt, bt = (nb.Tensor(a, requires_grad=True) for a in (x, W, b))
    y = nb.functional.linear(xt, Wt, bt)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    # two halves summed in another order than one product: equal within the rounding bound
    assert_within(y.data, x @ W + b, matmul_bound(x, W, add=b), "y")
    assert_within(xt.grad, gy @ W.T, matmul_bound(gy, W.T), "gx")
    assert_within(Wt.grad, x.T @ gy, matmul_bound(x.T, gy), "gW")
    assert_within(bt.grad, gy.sum(0), sum_bound(gy, axis=0), "gb")


def test_run_waits_for_every_part_and_reraises(two_threads):
    import threading
    import time
    finished = []

    def part(a, b, i):
        if i == 0:
            raise RuntimeError("boom in the caller's part")
        time.sleep(0.05)
        finished.append(i)
        return i

    with pytest.raises(RuntimeError, match="boom"):
        parallel.run(part, parallel.split(4))
    assert finished == [1]                                   # the other part ran to its end first

    def bad_worker(a, b, i):
        if i == 1:
            raise ValueError("boom in a worker")
        return threading.current_thread().name

    with pytest.raises(ValueError, match="worker"):
        parallel.run(bad_worker, parallel.split(4))
    names = parallel.run(lambda a, b, i: threading.current_thread().name, parallel.split(4))
    assert names[0] == threading.current_thread().name and names[1] != names[0]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("shape", [(7, 5), (300, 400)])            # the small path, and the scratch-pool one
def test_linear_fused_activation_equals_separate_op(activation, shape):
    """linear(..., activation=f) against linear followed by the activation op: y and every gradient."""
    from numbanet.engine import functional as Fn
    rng = np.random.default_rng(4)
    B, D = shape
    x, W, b = rng.standard_normal((B, D)), rng.standard_normal((D, 9)) * 0.1, rng.standard_normal(9)
    gy = rng.standard_normal((B, 9))
    out = []
    for fused in (True, False):
        xt, Wt, bt = (nb.Tensor(a, requires_grad=True) for a in (x, W, b))
        y = (Fn.linear(xt, Wt, bt, activation=activation) if fused
             else getattr(Fn, activation)(Fn.linear(xt, Wt, bt)))
        y.backward(gy)
        out.append((y.data, xt.grad, Wt.grad, bt.grad))
    # The two sides share the products but not every elementwise formula (the fused sigmoid is
    # 1/(1 + exp(-z)), the op a stable two-branch form), so they agree within a bound, carried
    # forward to first order: f(z) and f'(y) have slopes of at most 1 and 2 here.
    z = x @ W + b
    bz = matmul_bound(x, W, add=b)
    assert np.abs(z).min() > bz.max(), "a pre-activation within rounding of the relu kink: pick another seed"
    y = out[1][0]
    b_y = bz + elementwise_bound(np.abs(z) + 1, LIBM_ULP + 3)          # z's error, then f's own roundings
    b_gz = np.abs(gy) * (2 * b_y + elementwise_bound(1.0, 3)) + elementwise_bound(np.abs(gy), 1)
    gz = gy * {"tanh": 1 - y * y, "relu": (y > 0) * 1.0, "sigmoid": y * (1 - y)}[activation]
    bounds = (b_y, matmul_bound(gz, W.T) + b_gz @ np.abs(W.T), matmul_bound(x.T, gz) + np.abs(x.T) @ b_gz,
              sum_bound(gz, axis=0) + b_gz.sum(0))
    for got, want, bound, name in zip(*out, bounds, ("y", "gx", "gW", "gb")):
        assert_within(got, want, bound, f"{activation} {shape} {name}")


def test_linear_fused_activation_finite_differences():
    from numbanet.engine import functional as Fn
    rng = np.random.default_rng(5)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    for activation in ("tanh", "sigmoid"):
        rep = nb.check_grad(lambda x, W, b: Fn.linear(x, W, b, activation=activation), x, W, b)
        assert rep.passed, str(rep)
    with pytest.raises(ValueError, match="activation"):
        Fn.linear(x, W, b, activation="softmx")
    # an activation the node does not fuse runs as its own op on the node's output
    y = Fn.linear(nb.Tensor(x), nb.Tensor(W, requires_grad=True), nb.Tensor(b), activation="softmax")
    assert isinstance(y.creator, Fn.Softmax)
    assert isinstance(y.creator.inputs[0].creator, Fn.Linear)


def test_an_empty_batch_runs_on_two_threads():
    """split(0) is one empty range, so a batch of 0 samples goes through every split route."""
    assert parallel.split(0, 2) == [(0, 0)]
    old = parallel.num_threads()
    nb.utils.set_num_threads(2)
    try:
        for layer, shape in [(nb.layers.Conv2D(2, 3), (0, 5, 5, 1)), (nb.layers.MaxPooling2D(), (0, 4, 4, 2)),
                             (nb.layers.Dense(3), (0, 4))]:
            x = nb.Tensor(np.zeros(shape, np.float32), requires_grad=True)
            y = layer(x)
            y.sum().backward()
            assert y.shape[0] == 0 and x.grad.shape == shape
    finally:
        nb.utils.set_num_threads(old)
