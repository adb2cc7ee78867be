"""Gradients of every engine op against central finite differences (float64, Hypothesis shapes).

Each test draws shapes (broadcasting, size-1 axes, scalars), values inside the
op's domain and away from its kinks, and a random output gradient; see
``grad_helpers.check_op``. Forward values are also compared with NumPy.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet as nb
from numbanet.engine import functional as F
from numbanet.engine import ops

from bounds import LIBM_ULP, assert_within, elementwise_bound
from grad_helpers import GRAD_SETTINGS, MAX_REL, assert_grad, check_op

pytestmark = pytest.mark.usefixtures("tier")  # every test here runs under both kernel tiers (conftest.py)


@pytest.fixture(scope="module", autouse=True)
def _report_max_rel():
    yield
    print(f"\n[gradient checks so far] max rel error {MAX_REL['value']:.2e} ({MAX_REL['where']}), "
          f"max abs error {MAX_REL['abs']:.2e}")


# ----------------------------------------------------------------- binary ops
@GRAD_SETTINGS
@given(st.data())
def test_add_grad(data):
    check_op(data, ops.add, (-2.0, 2.0), n_inputs=2, label="add")


@GRAD_SETTINGS
@given(st.data())
def test_sub_grad(data):
    check_op(data, ops.sub, (-2.0, 2.0), n_inputs=2, label="sub")


@GRAD_SETTINGS
@given(st.data())
def test_mul_grad(data):
    check_op(data, ops.mul, (-2.0, 2.0), n_inputs=2, label="mul")


@GRAD_SETTINGS
@given(st.data())
def test_div_grad(data):
    check_op(data, ops.div, [(-2.0, 2.0), (0.5, 2.0)], n_inputs=2, signed=(1,), label="div")


@GRAD_SETTINGS
@given(st.data())
def test_pow_grad_both_inputs(data):
    # base > 0 so that d/db a**b = a**b log a exists
    check_op(data, ops.pow, [(0.3, 2.0), (-2.0, 2.0)], n_inputs=2, label="pow")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from([2, 3, 0.5, -1.5]))
def test_pow_constant_exponent(data, k):
    low = -2.0 if float(k).is_integer() else 0.3
    check_op(data, lambda a: a ** k, (low, 2.0), label=f"pow const {k}")


@GRAD_SETTINGS
@given(st.data())
def test_reflected_operators(data):
    """Python number on the left: radd, rsub, rmul, rtruediv, rpow."""
    check_op(data, lambda a: 3.0 - a + 2.0 * a - 1.5 / a + 2.0 ** a, (0.5, 2.0), signed=(0,), label="reflected")


# ----------------------------------------------------------------- matmul
@GRAD_SETTINGS
@given(st.data())
def test_matmul_grad_batched_broadcast(data):
    M, K, N = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    sa, sb = batch.input_shapes
    check_op(data, ops.matmul, (-2.0, 2.0), n_inputs=2, shapes=[sa + (M, K), sb + (K, N)], label="matmul")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(["vec@vec", "vec@mat", "mat@vec", "vec@batch", "batch@vec"]))
def test_matmul_grad_1d(data, case):
    K, N, B = (data.draw(st.integers(1, 4)) for _ in range(3))
    shapes = {"vec@vec": [(K,), (K,)], "vec@mat": [(K,), (K, N)], "mat@vec": [(N, K), (K,)],
              "vec@batch": [(K,), (B, K, N)], "batch@vec": [(B, N, K), (K,)]}[case]
    report = check_op(data, ops.matmul, (-2.0, 2.0), n_inputs=2, shapes=shapes, label=f"matmul {case}")
    assert [r.shape for r in report.inputs] == shapes


def test_matmul_forward_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    np.testing.assert_allclose((nb.Tensor(a) @ nb.Tensor(b)).data, a @ b)


# ------------------------------------------------------------ elementwise math
@GRAD_SETTINGS
@given(st.data())
def test_neg_grad(data):
    check_op(data, ops.neg, (-2.0, 2.0), label="neg")


@GRAD_SETTINGS
@given(st.data())
def test_exp_grad(data):
    check_op(data, ops.exp, (-2.0, 2.0), label="exp")


@GRAD_SETTINGS
@given(st.data())
def test_log_grad(data):
    check_op(data, ops.log, (0.2, 3.0), label="log")


@GRAD_SETTINGS
@given(st.data())
def test_sqrt_grad(data):
    check_op(data, ops.sqrt, (0.2, 3.0), label="sqrt")


@GRAD_SETTINGS
@given(st.data())
def test_abs_grad(data):
    check_op(data, ops.abs, (-2.0, 2.0), kinks=(0.0,), label="abs")


@GRAD_SETTINGS
@given(st.data())
def test_clip_grad(data):
    check_op(data, lambda x: ops.clip(x, -0.5, 0.7), (-2.0, 2.0), kinks=(-0.5, 0.7), label="clip")


@GRAD_SETTINGS
@given(st.data())
def test_tanh_grad(data):
    check_op(data, ops.tanh, (-3.0, 3.0), label="tanh")


@GRAD_SETTINGS
@given(st.data())
def test_sigmoid_grad(data):
    check_op(data, ops.sigmoid, (-6.0, 6.0), label="sigmoid")


@GRAD_SETTINGS
@given(st.data())
def test_relu_grad(data):
    check_op(data, ops.relu, (-2.0, 2.0), kinks=(0.0,), label="relu")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from([0.2, 0.01, 0.5]))
def test_leaky_relu_grad(data, alpha):
    check_op(data, lambda x: ops.leaky_relu(x, alpha), (-2.0, 2.0), kinks=(0.0,), label="leaky_relu")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from([1.0, 0.5]))
def test_elu_grad(data, alpha):
    check_op(data, lambda x: ops.elu(x, alpha), (-3.0, 2.0), kinks=(0.0,), label="elu")


def test_elementwise_forward_matches_numpy():
    x = np.linspace(-3, 3, 13)
    t = nb.Tensor(x)
    # an exp call and <= 3 roundings on each side, none cancelling (the elu's exp(x) - 1 does)
    s = 1 / (1 + np.exp(-x))
    assert_within(ops.sigmoid(t).data, s, elementwise_bound(s, LIBM_ULP + 3), "sigmoid")
    np.testing.assert_allclose(ops.leaky_relu(t).data, np.where(x > 0, x, 0.2 * x))
    assert_within(ops.elu(t).data, np.where(x > 0, x, np.exp(x) - 1), elementwise_bound(np.exp(x) + 1, LIBM_ULP + 2), "elu")
    np.testing.assert_allclose(ops.relu(t).data, np.maximum(x, 0))
    # sigmoid does not overflow for huge inputs
    with np.errstate(over="raise"):
        big = ops.sigmoid(nb.Tensor(np.array([-1000.0, 1000.0]))).data
    np.testing.assert_array_equal(big, [0.0, 1.0])


# ------------------------------------------------------------------ reductions
def _axis_strategy(data, ndim):
    """None, one axis (maybe negative) or a tuple of distinct axes of an ndim-array."""
    if ndim == 0:
        return None
    kind = data.draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return data.draw(st.integers(-ndim, ndim - 1))
    return tuple(data.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))


@GRAD_SETTINGS
@given(st.data(), st.booleans())
def test_sum_grad(data, keepdims):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    axis = _axis_strategy(data, len(shape))
    report = check_op(data, lambda x: ops.sum(x, axis, keepdims), (-2.0, 2.0), shapes=[shape], label="sum")
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    np.testing.assert_allclose(ops.sum(nb.Tensor(x), axis, keepdims).data, np.sum(x, axis=axis, keepdims=keepdims))
    assert report.passed


@GRAD_SETTINGS
@given(st.data(), st.booleans())
def test_mean_grad(data, keepdims):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    axis = _axis_strategy(data, len(shape))
    check_op(data, lambda x: ops.mean(x, axis, keepdims), (-2.0, 2.0), shapes=[shape], label="mean")
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(nb.Tensor(x).mean(axis, keepdims).data, np.mean(x, axis=axis, keepdims=keepdims))


@GRAD_SETTINGS
@given(st.data(), st.booleans())
def test_max_grad_distinct_values(data, keepdims):
    """Values are a shuffled grid (spacing 0.1 >> eps), so there is no tie within eps."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axis = _axis_strategy(data, len(shape))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = (rng.permutation(int(np.prod(shape))) * 0.1 - 1.0).reshape(shape)
    y = ops.max(nb.Tensor(x), axis, keepdims)
    np.testing.assert_array_equal(y.data, np.max(x, axis=axis, keepdims=keepdims))
    gy = rng.uniform(-1, 1, y.shape)
    assert_grad(lambda t: ops.max(t, axis, keepdims), x, grad_output=gy, label="max")


def test_max_ties_share_gradient():
    x = nb.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


# ------------------------------------------------------------- shape and index
@GRAD_SETTINGS
@given(st.data())
def test_reshape_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=4))
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(size,), (1, size), (size, 1), (-1,), (1, -1, 1)]))
    check_op(data, lambda x: ops.reshape(x, new), (-2.0, 2.0), shapes=[shape], label="reshape")


@GRAD_SETTINGS
@given(st.data())
def test_transpose_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4))
    perm = data.draw(st.permutations(range(len(shape))))
    # axes may be given negative, as NumPy allows
    axes = tuple(a - len(shape) if data.draw(st.booleans()) else a for a in perm)
    check_op(data, lambda x: ops.transpose(x, axes), (-2.0, 2.0), shapes=[shape], label="transpose")
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_array_equal(nb.Tensor(x).transpose(*axes).data, np.transpose(x, axes))
    np.testing.assert_array_equal(nb.Tensor(x).T.data, x.T)


@GRAD_SETTINGS
@given(st.data())
def test_getitem_repeated_fancy_indices(data):
    n, m = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=8)))
    check_op(data, lambda x: x[idx], (-2.0, 2.0), shapes=[(n, m)], label="getitem fancy")


@GRAD_SETTINGS
@given(st.data(), st.sampled_from(["slice", "step", "int", "tuple_arrays", "bool", "ellipsis", "newaxis"]))
def test_getitem_grad_index_kinds(data, kind):
    shape = (4, 3, 2)
    index = {"slice": (slice(1, None), slice(None, 2)), "step": (slice(None, None, -2), 1),
             "int": 2, "tuple_arrays": (np.array([0, 3, 0]), np.array([1, 1, 1])),
             "bool": np.array([True, False, True, True]), "ellipsis": (Ellipsis, 0),
             "newaxis": (None, slice(0, 2))}[kind]
    check_op(data, lambda x: x[index], (-2.0, 2.0), shapes=[shape], label=f"getitem {kind}")


def test_getitem_repeated_index_accumulates_exactly():
    x = nb.Tensor(np.arange(3.0), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


@GRAD_SETTINGS
@given(st.data())
def test_concatenate_grad(data):
    base = list(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3)))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    k = data.draw(st.integers(1, 3))
    shapes = []
    for _ in range(k):
        s = list(base)
        s[axis] = data.draw(st.integers(1, 3))
        shapes.append(tuple(s))
    check_op(data, lambda *xs: ops.concatenate(xs, axis), (-2.0, 2.0), n_inputs=k, shapes=shapes,
             label="concatenate")


@GRAD_SETTINGS
@given(st.data())
def test_stack_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check_op(data, lambda a, b: ops.stack([a, b], axis), (-2.0, 2.0), n_inputs=2, shapes=[shape, shape],
             label="stack")
    a = np.ones(shape)
    np.testing.assert_array_equal(ops.stack([nb.Tensor(a), nb.Tensor(2 * a)], axis).data, np.stack([a, 2 * a], axis))


# --------------------------------------------------------- functional (fused)
@GRAD_SETTINGS
@given(st.data())
def test_softmax_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_op(data, lambda x: F.softmax(x, axis), (-3.0, 3.0), shapes=[shape], label="softmax")


@GRAD_SETTINGS
@given(st.data())
def test_log_softmax_grad(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_op(data, lambda x: F.log_softmax(x, axis), (-3.0, 3.0), shapes=[shape], label="log_softmax")


def test_softmax_forward_stable_and_correct():
    x = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]])
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    # each output: a shift by the max, an exp call, a sum of 3 positive terms and a division
    # (log: a log call of that sum); relative to the shifted logits' size for log_softmax
    shifted = np.abs(x - x.max(axis=1, keepdims=True))
    assert_within(F.softmax(nb.Tensor(x)).data, ref, elementwise_bound(ref * (1 + shifted), LIBM_ULP + 6), "softmax")
    assert_within(F.log_softmax(nb.Tensor(x)).data, np.log(ref), elementwise_bound(shifted + 2, 2 * LIBM_ULP + 6),
                  "log_softmax")


@GRAD_SETTINGS
@given(st.data(), st.booleans())
def test_linear_grad(data, use_bias):
    lead = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    D, U = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    if use_bias:
        check_op(data, F.linear, (-2.0, 2.0), n_inputs=3, shapes=[lead + (D,), (D, U), (U,)], label="linear")
    else:
        check_op(data, F.linear, (-2.0, 2.0), n_inputs=2, shapes=[lead + (D,), (D, U)], label="linear nobias")


def test_linear_forward_matches_numpy():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    np.testing.assert_allclose(F.linear(nb.Tensor(x), nb.Tensor(W), nb.Tensor(b)).data, x @ W + b)


def test_dropout_is_inverted_and_its_gradient_uses_the_same_mask():
    rng = np.random.default_rng(0)
    x = nb.Tensor(np.ones((200, 50)), requires_grad=True)
    y = F.dropout(x, 0.25, rng)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)


def test_cast_grad_goes_back_to_source_dtype():
    x = nb.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = ops.cast(x, np.float64)
    assert y.dtype == np.float64
    (y * nb.Tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [1, 2, 3])


def test_composite_expression_grad():
    """A small network expression through many ops at once."""
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def f(x, W):
        h = ops.tanh(x @ W)
        return (ops.exp(h) * h - h.mean(axis=0, keepdims=True)).sum(axis=1) / (1.0 + (h * h).sum())

    assert_grad(f, x, W, grad_output=rng.standard_normal(3), label="composite")


def test_values_helper_keeps_away_from_kinks():
    from grad_helpers import away_from
    v = away_from(np.linspace(-1, 1, 101), (0.0, 0.5), 0.1)
    assert np.min(np.abs(v)) >= 0.1 and np.min(np.abs(v - 0.5)) >= 0.1 - 1e-12
