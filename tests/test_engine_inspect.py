"""What a learner inspects: retain_grad() on intermediate tensors, the named graph, NumPy's array protocol."""
import inspect

import numpy as np
import pytest

import numbanet as nb
from numbanet.engine import ops, print_graph
from numbanet.engine import tensor as tensor_module

from bounds import LIBM_ULP, assert_within, elementwise_bound


# ----------------------------------------------------------------- retain_grad
def _tanh_square_chain(x_value, w_value):
    """x, w leaves;  y = x * w,  h = tanh(y),  L = sum(h**2)."""
    x = nb.Tensor(x_value, requires_grad=True)
    w = nb.Tensor(w_value, requires_grad=True)
    y = x * w
    h = ops.tanh(y)
    loss = (h * h).sum()
    return x, w, y, h, loss


def test_retain_grad_keeps_intermediate_gradients_equal_to_the_hand_derivation():
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    x, w, y, h, loss = _tanh_square_chain(xv, wv)
    assert y.retain_grad() is y and h.retain_grad() is h
    assert y.retains_grad and h.retains_grad and not loss.retains_grad
    loss.backward()
    th = np.tanh(xv * wv)
    # dL/dh = 2h;  dL/dy = 2h * (1 - h^2): a few roundings and one tanh call relative to |values| <= 2
    assert_within(h.grad, 2 * th, elementwise_bound(2.0, LIBM_ULP + 1), "dL/dh")
    assert_within(y.grad, 2 * th * (1 - th * th), elementwise_bound(2.0, LIBM_ULP + 4), "dL/dy")
    assert loss.grad is None  # not retained: intermediate results keep nothing by default


def test_retain_grad_matches_central_differences_in_the_intermediate():
    """dL/dy by perturbing y itself: L(y) = sum(tanh(y)**2), central differences in float64.

    Central differences err by h^2/6 * |L'''| (truncation, |L'''| <= 8 here) plus
    eps * |L| / h (rounding): with h = 1e-5 both stay below 1e-8.
    """
    rng = np.random.default_rng(1)
    xv, wv = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    x, w, y, h, loss = _tanh_square_chain(xv, wv)
    y.retain_grad()
    loss.backward()
    yv, step = xv * wv, 1e-5
    numeric = np.zeros_like(yv)
    for i in np.ndindex(yv.shape):
        up, down = yv.copy(), yv.copy()
        up[i] += step
        down[i] -= step
        numeric[i] = (np.sum(np.tanh(up) ** 2) - np.sum(np.tanh(down) ** 2)) / (2 * step)
    assert_within(y.grad, numeric, 1e-8, "retained dL/dy vs central differences")


def test_retain_grad_sums_every_user_and_accumulates_over_backward_calls():
    """y feeds two ops: z = y*y + 3y, so dz/dy = 2y + 3, complete before it is stored."""
    x = nb.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    y.retain_grad()
    z = (y * y + y * 3.0).sum()
    z.backward()
    np.testing.assert_array_equal(y.grad, 2 * y.data + 3)  # small integers and halves: exact
    z.backward()
    np.testing.assert_array_equal(y.grad, 2 * (2 * y.data + 3))  # accumulated, like a leaf's
    np.testing.assert_array_equal(x.grad, 2 * 2 * (2 * y.data + 3))


def test_retain_grad_on_the_root_and_on_leaves():
    x = nb.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x
    y.retain_grad()
    y.backward(np.array([3.0, -1.0]))
    np.testing.assert_array_equal(y.grad, [3.0, -1.0])
    assert x.retain_grad() is x and not x.retains_grad  # a leaf keeps its gradient without asking


def test_retain_grad_without_requires_grad_says_why():
    with pytest.raises(RuntimeError, match="does not require grad"):
        nb.Tensor(np.ones(2)).retain_grad()


# ------------------------------------------------------------------- the graph
def _two_layer_loss():
    nb.utils.set_random_seed(0)
    model = nb.models.Sequential([nb.layers.Dense(3, activation="tanh", input_shape=(2,), name="hidden"),
                                  nb.layers.Dense(1, name="out")])
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    y = model(x, training=True)
    loss = ((y - np.zeros((5, 1), np.float32)) ** 2).mean()
    return model, y, loss


def test_graph_of_a_two_layer_model_names_both_layers_and_their_shapes():
    model, y, loss = _two_layer_loss()
    lines = loss.graph().splitlines()
    assert lines[0].startswith("#0 ")
    assert "-> ()" in lines[0] and "layer=-" in lines[0]  # the loss mean, outside any layer
    hidden = [line for line in lines if "layer=hidden" in line]
    out = [line for line in lines if "layer=out" in line]
    assert hidden and out
    assert any("-> (5, 3)" in line and "hidden/kernel (2, 3)" in line for line in hidden)
    assert any("-> (5, 1)" in line and "out/kernel (3, 1)" in line for line in out)
    # reverse topological order: every node's inputs have larger numbers than the node
    for k, line in enumerate(lines):
        refs = [int(tok.strip(",")[1:]) for tok in line.split("<-")[1].split() if tok.startswith("#")]
        assert all(r > k for r in refs), line
    # "out" is nearer the loss than "hidden"
    assert min(lines.index(line) for line in out) < min(lines.index(line) for line in hidden)


def test_print_graph_prints_the_graph(capsys):
    _, y, _ = _two_layer_loss()
    print_graph(y)
    assert capsys.readouterr().out == y.graph() + "\n"
    assert "no recorded graph" in nb.Tensor(np.ones(2)).graph()


def test_layer_name_is_restored_after_a_layer_raises():
    class Broken(nb.layers.Layer):
        def compute_output_shape(self, input_shape):
            return input_shape

        def call(self, x, training=False):
            raise ArithmeticError("broken on purpose")

    with pytest.raises(ArithmeticError):
        Broken(name="broken")(np.ones((2, 2), np.float32))
    a = nb.Tensor(np.ones(2), requires_grad=True)
    assert "layer=-" in (a * 2.0).graph()


# ----------------------------------------------------------- NumPy's protocol
def test_array_protocol_gives_the_value():
    t = nb.Tensor(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32), requires_grad=True)
    assert np.asarray(t) is t.data and t.numpy() is t.data  # no copy by default
    np.testing.assert_array_equal(np.argmax(t, axis=1), [1, 0])
    copied = np.array(t, copy=True)
    assert not np.shares_memory(copied, t.data)
    as64 = np.asarray(t, dtype=np.float64)
    assert as64.dtype == np.float64
    np.testing.assert_array_equal(as64, t.data.astype(np.float64))
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_argmax_of_a_model_output():
    model, y, _ = _two_layer_loss()
    x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    np.testing.assert_array_equal(np.argmax(model(x), axis=1), np.argmax(model(x).data, axis=1))


def test_ndarray_operator_tensor_still_records_the_graph():
    """An ndarray on the left defers to Tensor's reflected operator (not a silent conversion)."""
    t = nb.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    for result in (np.array([3.0, 4.0]) + t, np.array([3.0, 4.0]) * t, np.array([1.0, 1.0]) - t):
        assert isinstance(result, nb.Tensor) and result.requires_grad
    z = (np.array([3.0, 4.0]) * t).sum()
    z.backward()
    np.testing.assert_array_equal(t.grad, [3.0, 4.0])


def test_reflected_operators_swap_their_arguments():
    t = nb.Tensor(np.array([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal((1.0 - t).data, [0.0, -1.0, -3.0])
    np.testing.assert_array_equal((8.0 / t).data, [8.0, 4.0, 2.0])
    np.testing.assert_array_equal((2.0 ** t).data, [2.0, 4.0, 16.0])
    np.testing.assert_array_equal((np.eye(3) @ t).data, t.data)
    np.testing.assert_array_equal(t.reshape(3, 1).T.data, t.data.reshape(1, 3))
    np.testing.assert_array_equal(t.astype(np.float32).data, t.data.astype(np.float32))


def test_tensor_module_imports_no_ops():
    """tensor.py defines Tensor; ops.py binds the operators afterwards (no import cycle)."""
    assert "import ops" not in inspect.getsource(tensor_module)
