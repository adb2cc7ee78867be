"""Gradient checks of layers and models (every weight, on a float64 copy), the backward walk's shape checks,
and ``numbanet gradcheck DEMO``."""
import numpy as np
import pytest

import numbanet as nb
from numbanet import cli
from numbanet.demos import gradcheck as gradcheck_cli
from numbanet.engine import Function, GradientCheckError
from numbanet.engine.gradcheck import float64_copy

from bounds import LIBM_ULP, bilinear_bound

L = nb.layers


class LinearWithBug(Function):
    """y = x @ W + b, with gW wrong: scaled by ``factor`` and/or off by 0.5 at ``bad``; gx and gb right."""

    def __init__(self, factor=1.0, bad=None):
        self.factor, self.bad = factor, bad

    def forward(self, x, W, b):
        self.x, self.W = x, W
        return x @ W + b

    def backward(self, gy):
        gW = self.factor * (self.x.T @ gy)
        if self.bad is not None:
            gW[self.bad] += 0.5
        return gy @ self.W.T, gW, gy.sum(axis=0)


class BuggyDense(L.Layer):
    """A user's dense layer whose kernel gradient is wrong (see LinearWithBug)."""

    def __init__(self, units, factor=1.0, bad=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.factor, self.bad = units, factor, bad

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), "glorot_uniform")
        self.bias = self.add_weight("bias", (self.units,), "random_normal")

    def call(self, x):
        return LinearWithBug(self.factor, self.bad)(x, self.kernel, self.bias)


def rows(report):
    return [(r.layer, r.param, r.shape, r.method, r.passed) for r in report.inputs]


# -------------------------------------------------------------------- layers
@pytest.mark.usefixtures("tier")
def test_float32_dense_passes_on_its_float64_copy_with_every_weight_in_the_report():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    layer = L.Dense(2, "tanh", bias_initializer="random_normal", name="d")
    layer(x)
    kernel, bias = layer.kernel.data, layer.bias.data
    v = rng.standard_normal((3, 2))
    report = nb.check_grad(layer, x, grad_output=v)
    assert report.passed, str(report)
    assert rows(report) == [("d", "input", (3, 4), "central", True), ("d", "kernel", (4, 2), "central", True),
                            ("d", "bias", (2,), "central", True)]
    # the autograd values at the worst indices against the closed form in float64:
    # L = sum(v * tanh(x W + b)),  dL/dz = v (1 - y^2),  dL/dW = x^T dL/dz,  dL/db = sum_n dL/dz,  dL/dx = dL/dz W^T
    x64, W64, b64 = x.astype(np.float64), kernel.astype(np.float64), bias.astype(np.float64)
    y = np.tanh(x64 @ W64 + b64)
    dz = v * (1 - y * y)
    expected = {"input": dz @ W64.T, "kernel": x64.T @ dz, "bias": dz.sum(axis=0)}
    for r in report.inputs:
        want = expected[r.param][r.worst_index]
        assert abs(r.analytic - want) <= 1e-12 * (1 + abs(want)), (r.param, r.analytic, want)
    assert report.inputs[1].max_abs_err < 1e-8          # float64 central differences, not float32's ~1e-3


def test_the_users_layer_is_unchanged_after_the_check():
    x = np.random.default_rng(1).standard_normal((2, 3))
    layer = L.Dense(4, "sigmoid")
    layer(x)
    before = [w.data for w in layer.weights]
    values = [a.copy() for a in before]
    sentinel = [np.full(w.shape, 7.0, np.float32) for w in layer.weights]
    for w, g in zip(layer.weights, sentinel):
        w.grad = g
    assert nb.check_grad(layer, x).passed
    assert layer.dtype == np.float32
    for w, arr, val, g in zip(layer.weights, before, values, sentinel):
        assert w.data is arr and w.data.dtype == np.float32 and w.grad is g
        np.testing.assert_array_equal(w.data, val)


def test_an_unbuilt_layer_is_built_in_its_own_dtype():
    layer = L.Dense(3)
    assert nb.check_grad(layer, np.ones((2, 5))).passed
    assert layer.built and layer.kernel.dtype == np.float32 and layer.kernel.shape == (5, 3)


def test_float64_copy_restores_even_when_the_check_raises():
    model = nb.Sequential([L.Dense(3, input_shape=(2,)), L.Dense(1)])
    arrays = [w.data for w in model.weights]
    with pytest.raises(RuntimeError, match="inside"):
        with float64_copy(model):
            assert all(layer.dtype == np.float64 for layer in model.layers)
            assert all(w.dtype == np.float64 for w in model.weights)
            raise RuntimeError("inside")
    assert model.dtype == np.float32 and all(layer.dtype == np.float32 for layer in model.layers)
    assert all(w.data is a for w, a in zip(model.weights, arrays))


def test_a_function_that_computes_in_float32_is_refused_with_the_fix():
    layer = L.Dense(2, "tanh")
    x = np.ones((3, 4))
    layer(x)
    with pytest.raises(TypeError) as err:
        nb.check_grad(lambda t: layer(t), x)
    text = str(err.value)
    assert "float32" in text and layer.kernel.name in text
    assert "nb.check_grad(layer, x)" in text and "dtype='float64'" in text
    # the float64 layer called the same way is fine
    layer64 = L.Dense(2, "tanh", dtype="float64")
    assert nb.check_grad(lambda t: layer64(t), x).passed


def test_a_wrong_kernel_gradient_is_caught_on_the_kernel_only():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    layer = BuggyDense(2, bad=(1, 0), name="buggy")
    report = nb.check_grad(layer, x)
    assert [(r.param, r.passed) for r in report.inputs] == [("input", True), ("kernel", False), ("bias", True)]
    kernel = report.inputs[1]
    assert kernel.worst_index == (1, 0) and kernel.max_abs_err == pytest.approx(0.5, rel=1e-6)
    assert kernel.analytic - kernel.numeric == pytest.approx(0.5, rel=1e-6)
    text = str(report)
    assert "FAILED (1 of 3 tensors)" in text and "FAIL buggy/kernel (4, 2): worst elements (1, 0)" in text
    with pytest.raises(GradientCheckError, match=r"buggy +kernel +\(4, 2\) +central .* FAIL"):
        nb.check_grad(layer, x, raise_on_failure=True)


def test_a_1_percent_kernel_error_on_a_large_kernel_is_caught_along_a_random_direction():
    x = np.random.default_rng(3).standard_normal((2, 30))
    report = nb.check_grad(BuggyDense(20, factor=1.01), x)          # kernel (30, 20): 600 > 400 elements
    assert [(r.param, r.method, r.passed) for r in report.inputs] == [
        ("input", "central", True), ("kernel", "direction", False), ("bias", "central", True)]
    assert nb.check_grad(BuggyDense(20), x).passed                   # the same layer without the bug


def test_a_layer_with_several_outputs_is_checked_through_all_of_them():
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    layer = L.SimpleRNN(3, return_sequences=True, return_state=True, bias_initializer="random_normal")
    report = nb.check_grad(layer, x)
    assert report.passed, str(report)
    assert [r.param for r in report.inputs] == ["input", "kernel", "recurrent_kernel", "bias"]


def test_a_layer_takes_one_input():
    with pytest.raises(TypeError, match="one input"):
        nb.check_grad(L.Dense(2), np.ones((2, 2)), np.ones((2, 2)))


def test_integer_inputs_are_not_checked_but_the_weights_are():
    layer = L.Embedding(6, 3)
    report = nb.check_grad(layer, np.array([[1, 2, 5], [0, 2, 2]]))
    assert report.passed and [r.param for r in report.inputs] == ["embeddings"]


# -------------------------------------------------------------------- models
def test_two_layer_mlp_through_its_compiled_loss():
    rng = np.random.default_rng(5)
    model = nb.Sequential([L.Dense(5, "tanh", input_shape=(3,)), L.Dense(2)])
    model.compile("sgd", "mse")
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    report = nb.check_model_grads(model, x, y)
    assert report.passed, str(report)
    names = [w.name for w in model.trainable_weights]
    assert [f"{r.layer}/{r.param}" for r in report.inputs] == names
    assert [r.shape for r in report.inputs] == [(3, 5), (5,), (5, 2), (2,)]
    # the last bias against the closed form: L = mean((y_pred - y)^2) over all N*U entries,
    # dL/db2 = 2 / (N U) * sum_n (y_pred - y)
    W1, b1, W2, b2 = (w.data.astype(np.float64) for w in model.weights)
    h = np.tanh(x @ W1 + b1)
    pred = h @ W2 + b2
    want = 2.0 / pred.size * (pred - y).sum(axis=0)
    r = report.inputs[3]
    # both sides round the same chain: x @ W1 + b1 (3 + 1 terms), tanh (LIBM_ULP; tanh' <= 1 passes the
    # error of its argument on), h @ W2 + b2 (5 + 1 terms), minus y, a sum over N rows; each step's error
    # is relative to the magnitudes it sums: |x| @ |W1| + |b1| for h, then through |W2|
    h_mag = np.maximum(np.abs(h), np.abs(x) @ np.abs(W1) + np.abs(b1))
    magnitude = 2.0 / pred.size * (h_mag @ np.abs(W2) + np.abs(b2) + np.abs(y)).sum(axis=0)
    bound = bilinear_bound(magnitude, n_terms=(3 + 1) + LIBM_ULP + (5 + 1) + 1 + len(x))
    assert abs(r.analytic - want[r.worst_index]) <= bound[r.worst_index]
    assert model.dtype == np.float32 and all(w.dtype == np.float32 for w in model.weights)


def test_a_bug_in_one_layer_of_a_model_is_caught_there_only():
    rng = np.random.default_rng(6)
    model = nb.Sequential([L.Dense(4, "tanh", input_shape=(3,)), BuggyDense(3, factor=1.05, name="mine"),
                           L.Dense(2, "softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x, y = rng.standard_normal((5, 3)), np.eye(2)[[0, 1, 1, 0, 1]]
    report = nb.check_model_grads(model, x, y, check_input=True)
    failed = [(r.layer, r.param) for r in report.inputs if not r.passed]
    assert failed == [("mine", "kernel")]
    assert report.inputs[0].param == "input" and report.inputs[0].passed
    assert len(report.inputs) == 1 + len(model.trainable_weights)


@pytest.mark.usefixtures("tier")
def test_small_cnn_every_weight():
    rng = np.random.default_rng(7)
    model = nb.Sequential([
        nb.Input((6, 6, 2)),
        L.Conv2D(3, 3, padding="same", activation="relu", bias_initializer="random_normal"),
        L.MaxPooling2D(2),
        L.Conv2D(4, 2, strides=2, activation="tanh"),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = rng.standard_normal((2, 6, 6, 2)), np.array([0, 2])
    report = nb.check_model_grads(model, x, y, max_elements=40, check_input=True)
    assert report.passed, str(report)
    assert [(r.param, r.shape, r.method) for r in report.inputs] == [
        ("input", (2, 6, 6, 2), "direction"),
        ("kernel", (3, 3, 2, 3), "direction"), ("bias", (3,), "central"),
        ("kernel", (2, 2, 3, 4), "direction"), ("bias", (4,), "central"),
        ("kernel", (4, 3), "central"), ("bias", (3,), "central")]
    assert all(w.dtype == np.float32 for w in model.weights)


def test_functional_and_subclassed_models_switch_every_layer():
    inputs = nb.Input((3,))
    outputs = L.Dense(2, "sigmoid")(L.Dense(4, "tanh")(inputs))
    functional = nb.Model(inputs, outputs)
    x, y = np.random.default_rng(8).standard_normal((3, 3)), np.array([[0, 1], [1, 0], [1, 1]], float)
    assert nb.check_model_grads(functional, x, y, loss="binary_crossentropy").passed

    class Words(nb.Model):
        def __init__(self):
            super().__init__()
            self.embedding = L.Embedding(7, 3, mask_zero=True)
            self.rnn = L.SimpleRNN(4, return_sequences=True)
            self.out = L.Dense(7)

        def call(self, x):
            return self.out(self.rnn(self.embedding(x)))

    model = Words()
    model.compile("adam", nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.array([[3, 4, 6, 0], [2, 5, 0, 0]])
    report = nb.check_model_grads(model, ids, np.array([[4, 6, 1, 0], [5, 2, 0, 0]]))
    assert report.passed, str(report)
    assert [f"{r.layer}/{r.param}" for r in report.inputs] == [w.name for w in model.trainable_weights]
    assert [r.param for r in report.inputs] == ["embeddings", "kernel", "recurrent_kernel", "bias", "kernel", "bias"]
    assert model.embedding.dtype == model.rnn.dtype == model.out.dtype == np.float32


def test_check_model_grads_needs_a_loss():
    model = nb.Sequential([L.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="not compiled.*loss="):
        nb.check_model_grads(model, np.ones((2, 2)), np.ones((2, 1)))
    with pytest.raises(TypeError, match="loss must be"):
        nb.check_model_grads(model, np.ones((2, 2)), np.ones((2, 1)), loss=3)
    assert nb.check_model_grads(model, np.ones((2, 2)), np.ones((2, 1)), loss="mae").passed


# ----------------------------------------------- the backward walk's checks
class ReturnsGiven(Function):
    """y = x @ W; backward returns whatever it was given."""

    def __init__(self, grads):
        self.grads = grads

    def forward(self, x, W):
        return x @ W

    def backward(self, gy):
        return self.grads


def _walk(grads):
    x = nb.Tensor(np.ones((2, 3)), requires_grad=True)
    W = nb.Tensor(np.ones((3, 4)), requires_grad=True)
    ReturnsGiven(grads)(x, W).sum().backward()
    return x, W


def test_a_gradient_of_the_wrong_shape_names_the_function_the_input_and_both_shapes():
    with pytest.raises(ValueError, match=r"ReturnsGiven\.backward returned a gradient of shape \(4, 3\) "
                                         r"for input 1 of shape \(3, 4\)"):
        _walk((np.ones((2, 3)), np.ones((4, 3))))
    # same number of elements, transposed: would reshape silently without the check
    with pytest.raises(ValueError, match=r"shape \(3, 2\) for input 0 of shape \(2, 3\)"):
        _walk((np.ones((3, 2)), np.ones((3, 4))))


def test_a_wrong_number_of_gradients_or_a_tensor_is_an_error():
    with pytest.raises(ValueError, match=r"ReturnsGiven\.backward returned 1 gradient\(s\) for 2 input\(s\)"):
        _walk((np.ones((2, 3)),))
    with pytest.raises(ValueError, match=r"returned 3 gradient\(s\) for 2"):
        _walk((np.ones((2, 3)), np.ones((3, 4)), np.ones(2)))
    with pytest.raises(TypeError, match=r"ReturnsGiven\.backward returned a Tensor for input 1"):
        _walk((np.ones((2, 3)), nb.Tensor(np.ones((3, 4)))))


def test_broadcast_gradients_and_trailing_nones_are_still_accepted():
    x, W = _walk((np.ones((5, 2, 3)), np.ones((3, 4)), None))     # x's gradient in a broadcast shape
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 5.0))
    x, W = _walk([np.ones((1, 2, 3)), np.ones((1, 3, 4))])        # a list; leading size-1 axes
    assert x.grad.shape == (2, 3) and W.grad.shape == (3, 4)
    x, W = _walk((np.ones((2, 3)), np.ones((5, 3, 4))))            # W's gradient summed over a leading axis
    np.testing.assert_array_equal(W.grad, np.full((3, 4), 5.0))


def test_a_gradient_smaller_than_its_input_is_refused_not_broadcast_up():
    """(1, 4) for a (3, 4) input cannot be the sum over a broadcast: it is a wrong shape, not one to copy."""
    with pytest.raises(ValueError, match=r"shape \(1, 4\) for input 1 of shape \(3, 4\)"):
        _walk((np.ones((2, 3)), np.ones((1, 4))))


# ----------------------------------------------------- numbanet gradcheck
@pytest.fixture
def quiet_cli(monkeypatch):
    monkeypatch.setenv("NUMBANET_KEEP_BLAS", "1")              # no restart onto other BLAS kernels
    monkeypatch.setattr(nb.utils, "set_num_threads", lambda *a: 1)
    monkeypatch.setattr(nb.utils, "tune_malloc", lambda *a: None)


def test_numbanet_gradcheck_sine_passes(quiet_cli, capsys):
    assert cli.main(["gradcheck", "sine"]) == 0
    out = capsys.readouterr().out
    assert "gradient check passed" in out
    table = [line.split() for line in out.splitlines() if line.startswith("  dense")]
    assert [(r[1], r[2], r[-1]) for r in table] == [
        ("kernel", "(1,", "ok"), ("bias", "(10,)", "ok"), ("kernel", "(10,", "ok"),
        ("bias", "(10,)", "ok"), ("kernel", "(10,", "ok"), ("bias", "(1,)", "ok")]
    assert len({r[0] for r in table}) == 3                      # three Dense layers


def test_numbanet_gradcheck_exits_non_zero_on_a_wrong_gradient(quiet_cli, capsys, monkeypatch):
    def buggy(nb_, n):
        model = nb.Sequential([L.Dense(3, "tanh", input_shape=(1,)), BuggyDense(1, bad=(2, 0), name="mine")])
        x = np.linspace(0, 1, n)[:, None]
        return model, "mse", x, np.sin(x)

    monkeypatch.setitem(gradcheck_cli.MODELS, "sine", buggy)
    assert cli.main(["gradcheck", "sine", "--samples", "2"]) == 1
    assert "FAIL mine/kernel (3, 1): worst elements (2, 0)" in capsys.readouterr().out
    assert cli.main(["gradcheck", "sine", "--samples", "0"]) == 2
    assert "--samples must be a positive integer" in capsys.readouterr().err
