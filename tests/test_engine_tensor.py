"""Engine semantics: accumulation, no_grad, dtypes, deep graphs, the backward walk, unbroadcast."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet as nb
from numbanet.engine import ops, unbroadcast

from bounds import LIBM_ULP, assert_within, bilinear_bound, elementwise_bound, sum_bound


def test_backward_twice_accumulates_into_grad():
    x = nb.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 4 * x.data)
    x.zero_grad()
    assert x.grad is None


def test_backward_twice_on_same_graph_accumulates():
    x = nb.Tensor(np.array([0.5, 2.0]), requires_grad=True)
    y = (ops.exp(x) * 3.0).sum()
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * 3 * np.exp(x.data))


def test_leaf_gradient_does_not_alias_upstream():
    """The first gradient stored in .grad is a copy, so accumulation never writes into another array."""
    x = nb.Tensor(np.ones(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    (x + 0.0).backward(g)
    x.grad += 1
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])


def test_no_grad_records_nothing():
    x = nb.Tensor(np.ones(3), requires_grad=True)
    with nb.no_grad():
        y = ops.tanh(x * 2.0).sum()
        assert not nb.engine.is_grad_enabled()
    assert nb.engine.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert x.grad is None


def test_no_grad_restores_state_after_exception():
    with pytest.raises(KeyError):
        with nb.no_grad():
            raise KeyError("boom")
    assert nb.engine.is_grad_enabled()
    x = nb.Tensor(np.ones(2), requires_grad=True)
    assert (x * 2.0).requires_grad


def test_constants_do_not_require_grad():
    a, b = nb.Tensor(np.ones(2)), nb.Tensor(np.ones(2))
    y = a * b
    assert not y.requires_grad and y.creator is None


def test_a_call_records_its_inputs_in_order_with_none_for_constants():
    """Function.__call__ records the Tensors it was given, in order (None where a constant was),
    whichever input requires grad; a constant takes the first tensor's dtype."""
    a = nb.Tensor(np.array([1.0, 2.0], np.float32))                      # no gradient wanted
    b = nb.Tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    y = a * b
    assert y.requires_grad and len(y.creator.inputs) == 2
    assert all(u is v for u, v in zip(y.creator.inputs, (a, b)))
    assert y.creator.out_shape == (2,) and y.creator.layer is None
    z = b + np.float64(0.5)                                               # an ndarray-scalar constant
    assert z.creator.inputs[0] is b and z.creator.inputs[1] is None
    assert z.dtype == np.float32 and z.data.tolist() == [3.5, 4.5]
    w = 2.0 * b                                                           # the constant first
    assert [x is None for x in w.creator.inputs] == [True, False]
    (y.sum() + z.sum() + w.sum()).backward()
    np.testing.assert_array_equal(b.grad, a.data + 1 + 2)                 # d/db of a*b + b + 2b
    assert a.grad is None


def test_intermediate_results_keep_no_grad():
    x = nb.Tensor(np.ones(2), requires_grad=True)
    h = x * 2.0
    (h * h).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(x.grad, 8 * x.data)


def test_float32_default_and_float64_kept():
    assert nb.Tensor(1.0).dtype == np.float32
    assert nb.Tensor([1, 2, 3]).dtype == np.float32
    assert nb.Tensor(np.arange(3)).dtype == np.float32       # integers become float32
    assert nb.Tensor(np.zeros(2, np.float64)).dtype == np.float64
    assert nb.Tensor(np.float64(2.0)).dtype == np.float64
    assert nb.Tensor([1, 2], dtype="float64").dtype == np.float64
    x32 = nb.Tensor(np.ones(3, np.float32), requires_grad=True)
    x64 = nb.Tensor(np.ones(3, np.float64), requires_grad=True)
    # Python numbers take the tensor's dtype, on either side
    for y in (x32 * 2.5, 2.5 * x32, x32 / 3.0, 1.0 - x32, x32 ** 2, ops.exp(x32), x32.mean(), ops.sigmoid(x32),
              ops.leaky_relu(x32), ops.elu(x32)):
        assert y.dtype == np.float32, y
    for y in (x64 * 2.5, 2.5 / x64, x64.mean(), ops.tanh(x64) + 1):
        assert y.dtype == np.float64
    (x32 * 2.5).sum().backward()
    assert x32.grad.dtype == np.float32


def test_mixed_precision_gradients_come_back_in_each_inputs_dtype():
    a = nb.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    b = nb.Tensor(np.array([3.0, 4.0], np.float64), requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3, 4])
    np.testing.assert_array_equal(b.grad, [1, 2])


def test_tensor_properties():
    t = nb.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.numpy() is t.data
    assert "Tensor(" in repr(t)
    assert t.detach().creator is None


def test_deep_graph_backward_is_iterative():
    """5,000 chained ops (deeper than Python's recursion limit): backward works and is exact."""
    x = nb.Tensor(np.array([0.3, -0.7]), requires_grad=True)
    y = x
    n = 5000
    for _ in range(n):
        y = y * 1.0001 + 0.001
    y.sum().backward()
    # n multiplications by 1.0001 on the way back, each rounded relative to the running product
    want = np.full(2, 1.0001 ** n)
    assert_within(x.grad, want, elementwise_bound(want, n + 1))


def test_deep_graph_with_shared_input_visits_each_node_once():
    x = nb.Tensor(np.array([2.0]), requires_grad=True)
    y = x
    n = 3000
    for _ in range(n):
        y = y + x * 0.5          # y = x + n * 0.5 x
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [1 + 0.5 * n])


def test_diamond_graph():
    """x feeds two branches that meet again: gradients from both paths add, each node runs once."""
    x = nb.Tensor(np.array([1.5, -0.5]), requires_grad=True)
    a = x * x
    b = ops.exp(x)
    y = (a * b + a - b).sum()   # d/dx = 2x e^x + x^2 e^x + 2x - e^x
    y.backward()
    v = x.data
    terms = [2 * v * np.exp(v), v * v * np.exp(v), 2 * v, -np.exp(v)]
    # four branches summed in the graph's order; each term has one exp and <= 3 roundings
    assert_within(x.grad, sum(terms), elementwise_bound(sum(np.abs(t) for t in terms), LIBM_ULP + 6))


def test_same_tensor_twice_in_one_op():
    x = nb.Tensor(np.array([3.0]), requires_grad=True)
    (x * x).backward(np.ones(1))
    np.testing.assert_array_equal(x.grad, [6.0])


def test_backward_needs_gradient_for_non_scalar():
    x = nb.Tensor(np.ones((2, 2)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"scalar.*\(2, 2\)"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 2), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))


def test_backward_on_leaf():
    x = nb.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_integer_index_tensor_gets_no_gradient():
    x = nb.Tensor(np.arange(4.0), requires_grad=True)
    idx = nb.Tensor(np.array([1, 1, 3]))
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 0, 1])


# ---------------------------------------------------------------- unbroadcast
def test_unbroadcast_example_from_docstring():
    g = np.arange(24.0).reshape(2, 3, 4)
    out = unbroadcast(g, (3, 1))
    np.testing.assert_array_equal(out, g.sum(axis=0).sum(axis=1, keepdims=True))
    assert unbroadcast(g, ()).shape == () and unbroadcast(g, ()) == g.sum()
    assert unbroadcast(g, (2, 3, 4)) is g


@settings(max_examples=50, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), st.integers(0, 1000))
def test_unbroadcast_is_adjoint_of_broadcast(shapes, seed):
    """<unbroadcast(g), v> == <g, broadcast_to(v)> for every v: unbroadcast is broadcasting's adjoint."""
    rng = np.random.default_rng(seed)
    s = shapes.input_shapes[0]
    full = shapes.result_shape
    g = rng.standard_normal(full)
    v = rng.standard_normal(s)
    u = unbroadcast(g, s)
    assert u.shape == s
    products = g * np.broadcast_to(v, full)                 # the same products, grouped two ways
    assert_within(np.sum(u * v), np.sum(products), sum_bound(products))


@settings(max_examples=40, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3), st.integers(0, 1000))
def test_broadcast_add_gradient_shapes_and_values(shapes, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a = nb.Tensor(rng.standard_normal(sa), requires_grad=True)
    b = nb.Tensor(rng.standard_normal(sb), requires_grad=True)
    gy = rng.standard_normal(shapes.result_shape)
    (a * 2.0 + b).backward(gy)
    assert a.grad.shape == sa and b.grad.shape == sb
    # d/db of <gy, a*2 + b>: each b element receives the sum of gy over the cells it was copied to
    ref = np.zeros(sb)
    idx = np.broadcast_to(np.arange(int(np.prod(sb))).reshape(sb), shapes.result_shape)
    np.add.at(ref.reshape(-1), idx.reshape(-1), gy.reshape(-1))
    magnitude = np.zeros(sb)
    np.add.at(magnitude.reshape(-1), idx.reshape(-1), np.abs(gy).reshape(-1))
    assert_within(b.grad, ref, bilinear_bound(magnitude, gy.size // max(b.data.size, 1)))
