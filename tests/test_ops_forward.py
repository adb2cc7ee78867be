"""Forward values of every op against plain NumPy written here, in float32 and float64.

The gradient tests compare each op's backward with finite differences of its own
forward, so they cannot see a wrong forward (``log(x) + 1`` has the right
gradient). Here every forward is compared with an independent computation:

* the oracle is evaluated in ``np.longdouble`` (80-bit on x86: 11 more bits than
  float64) from the very same input values, so its own error is negligible;
* elementwise ops: ``|y - y*| <= k * eps * |y*|`` with k from the op's rounding
  steps (one correctly rounded operation: k = 1; NumPy's transcendental
  functions are documented to be within 4 ulps: k = 4; composites add theirs);
* reductions and products of K terms: ``|y - y*| <= K * eps * sum |terms|``;
* ops that move values without arithmetic (abs, neg, relu, clip, max, reshape,
  transpose, indexing, concatenation, embedding lookup, nearest upsampling)
  must be bit-for-bit equal: the exact result is representable and no
  rounding happens on either side.

eps is the machine epsilon of the op's dtype (2^-23 for float32, 2^-52 for float64).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbanet as nb
from numbanet import activations, losses
from numbanet.engine import functional as F
from numbanet.engine import ops

LD = np.longdouble
DTYPES = st.sampled_from([np.float32, np.float64])
FORWARD = settings(max_examples=25, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def eps(dtype):
    return float(np.finfo(dtype).eps)


def draw_array(data, shape, dtype, low, high, signed=False, label="x"):
    """Values uniform in [low, high] (times a random sign if ``signed``), rounded to ``dtype``."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=f"seed {label}"))
    v = rng.uniform(low, high, size=shape)
    if signed:
        v = v * rng.choice([-1.0, 1.0], size=shape)
    return np.asarray(v, dtype=dtype)


def assert_close(y, expected, dtype, rtol=0.0, atol=0.0, label=""):
    """y (a Tensor) has ``dtype``, expected's shape, and |y - expected| <= atol + rtol |expected|."""
    y = y.data if isinstance(y, nb.Tensor) else y
    expected = np.asarray(expected, dtype=LD)
    assert y.dtype == dtype, f"{label}: dtype {y.dtype}, expected {np.dtype(dtype)}"
    assert y.shape == expected.shape, f"{label}: shape {y.shape}, expected {expected.shape}"
    err = np.abs(y.astype(LD) - expected)
    bound = atol + rtol * np.abs(expected)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape) if err.ndim else ()
        raise AssertionError(f"{label} ({np.dtype(dtype)}): {int(bad.sum())} of {err.size} elements off; worst at "
                             f"{i}: got {y[i]!r}, expected {float(expected[i])!r}, error {float(err[i]):.3e} > "
                             f"bound {float(np.broadcast_to(bound, err.shape)[i]):.3e}")


def assert_exact(y, expected, dtype, label=""):
    y = y.data if isinstance(y, nb.Tensor) else y
    expected = np.asarray(expected)
    assert y.dtype == dtype, f"{label}: dtype {y.dtype}, expected {np.dtype(dtype)}"
    assert y.shape == expected.shape, f"{label}: shape {y.shape}, expected {expected.shape}"
    np.testing.assert_array_equal(y, expected, err_msg=label)


# ------------------------------------------------------------ elementwise, unary
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> (numbanet forward, longdouble oracle, (low, high, signed), k in rtol = k * eps)
UNARY = {
    "exp": (ops.exp, np.exp, (0.0, 20.0, True), 4),
    "Tensor.exp": (lambda t: t.exp(), np.exp, (0.0, 20.0, True), 4),
    "log": (ops.log, np.log, (1e-3, 1e3, False), 4),
    "Tensor.log": (lambda t: t.log(), np.log, (1e-3, 1e3, False), 4),
    "sqrt": (ops.sqrt, np.sqrt, (0.0, 100.0, False), 4),
    "tanh": (ops.tanh, np.tanh, (0.0, 10.0, True), 4),
    "Tensor.tanh": (lambda t: t.tanh(), np.tanh, (0.0, 10.0, True), 4),
    "activation tanh": (activations.get("tanh"), np.tanh, (0.0, 10.0, True), 4),
    # exp (4 ulps), then + 1 and 1/(.) correctly rounded: 4 + 1/2 + 1/2 ulps
    "sigmoid": (ops.sigmoid, _sigmoid, (0.0, 30.0, True), 6),
    "Tensor.sigmoid": (lambda t: t.sigmoid(), _sigmoid, (0.0, 30.0, True), 6),
    "activation sigmoid": (activations.get("sigmoid"), _sigmoid, (0.0, 30.0, True), 6),
    # alpha rounded to the dtype, then one product: 1/2 + 1/2 ulp
    "leaky_relu 0.2": (lambda t: ops.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, LD(0.2) * x),
                       (0.0, 10.0, True), 2),
    "leaky_relu 0.01": (lambda t: ops.leaky_relu(t, 0.01), lambda x: np.where(x > 0, x, LD(0.01) * x),
                        (0.0, 10.0, True), 2),
    "activation leaky_relu": (activations.get("leaky_relu"), lambda x: np.where(x > 0, x, LD(0.2) * x),
                              (0.0, 10.0, True), 2),
    # expm1 (4 ulps), alpha rounded, one product
    "elu 1.0": (ops.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), (0.0, 10.0, True), 6),
    "elu 0.5": (lambda t: ops.elu(t, 0.5), lambda x: np.where(x > 0, x, LD(0.5) * np.expm1(np.minimum(x, 0))),
                (0.0, 10.0, True), 6),
    "activation elu": (activations.get("elu"), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
                       (0.0, 10.0, True), 6),
}

# no rounding at all: bit-for-bit
EXACT_UNARY = {
    "abs": (ops.abs, lambda x: np.where(x < 0, -x, x)),
    "neg": (ops.neg, lambda x: 0.0 - x),
    "unary -": (lambda t: -t, lambda x: 0.0 - x),
    "relu": (ops.relu, lambda x: np.where(x > 0, x, 0.0)),
    "Tensor.relu": (lambda t: t.relu(), lambda x: np.where(x > 0, x, 0.0)),
    "activation relu": (activations.get("relu"), lambda x: np.where(x > 0, x, 0.0)),
    "activation linear": (activations.get("linear"), lambda x: x),
    "activation None": (activations.get(None), lambda x: x),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_unary_forward(data, name, dtype):
    fn, oracle, (low, high, signed), k = UNARY[name]
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, low, high, signed)
    # expected is 0 only where x is; tiny() absorbs the float32 flush of exp(-30)-sized terms near 0
    assert_close(fn(nb.Tensor(x)), oracle(x.astype(LD)), dtype, rtol=k * eps(dtype),
                 atol=float(np.finfo(dtype).tiny), label=name)


@pytest.mark.parametrize("name", sorted(EXACT_UNARY))
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_exact_unary_forward(data, name, dtype):
    fn, oracle = EXACT_UNARY[name]
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    x.reshape(-1)[:1] = 0.0                      # the kink itself
    expected = np.asarray(oracle(x), dtype=dtype)
    assert_exact(fn(nb.Tensor(x)), expected, dtype, label=name)


@FORWARD
@given(st.data(), DTYPES)
def test_clip_forward(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 4.0, signed=True)
    lo = data.draw(st.floats(-3.0, 2.0), label="lo")
    hi = lo + data.draw(st.floats(0.0, 3.0), label="width")
    lo_d, hi_d = dtype(lo), dtype(hi)                # the bounds as the op sees them: in x's dtype
    expected = np.where(x < lo_d, lo_d, np.where(x > hi_d, hi_d, x)).astype(dtype)
    assert_exact(ops.clip(nb.Tensor(x), lo, hi), expected, dtype, label=f"clip [{lo}, {hi}]")


@pytest.mark.parametrize("src,dst", [(np.float32, np.float64), (np.float64, np.float32)])
def test_cast_forward(src, dst):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(src)
    expected = np.array([dst(float(v)) for v in x.ravel()], dtype=dst).reshape(x.shape)   # round to nearest
    assert_exact(ops.cast(nb.Tensor(x), dst), expected, dst, label="cast")
    assert_exact(nb.Tensor(x).astype(dst), expected, dst, label="Tensor.astype")


# ----------------------------------------------------------- elementwise, binary
# name -> (numbanet forward, longdouble oracle, a's domain, b's domain, k in rtol = k * eps)
BINARY = {
    "add": (ops.add, lambda a, b: a + b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "a + b": (lambda a, b: a + b, lambda a, b: a + b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "sub": (ops.sub, lambda a, b: a - b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "a - b": (lambda a, b: a - b, lambda a, b: a - b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "mul": (ops.mul, lambda a, b: a * b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "a * b": (lambda a, b: a * b, lambda a, b: a * b, (0.0, 5.0, True), (0.0, 5.0, True), 1),
    "div": (ops.div, lambda a, b: a / b, (0.0, 5.0, True), (0.5, 4.0, True), 1),
    "a / b": (lambda a, b: a / b, lambda a, b: a / b, (0.0, 5.0, True), (0.5, 4.0, True), 1),
    "pow": (ops.pow, lambda a, b: a ** b, (0.1, 10.0, False), (0.0, 3.0, True), 4),
    "a ** b": (lambda a, b: a ** b, lambda a, b: a ** b, (0.1, 10.0, False), (0.0, 3.0, True), 4),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_binary_forward_broadcasting(data, name, dtype):
    fn, oracle, da, db, k = BINARY[name]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
                       label="shapes")
    a = draw_array(data, shapes.input_shapes[0], dtype, *da, label="a")
    b = draw_array(data, shapes.input_shapes[1], dtype, *db, label="b")
    expected = oracle(a.astype(LD), b.astype(LD))
    assert_close(fn(nb.Tensor(a), nb.Tensor(b)), expected, dtype, rtol=k * eps(dtype),
                 atol=float(np.finfo(dtype).tiny), label=name)


# a constant on one side (a Python number or an ndarray): the number takes the Tensor's dtype
REFLECTED = {
    "2.5 + t": (lambda t: 2.5 + t, lambda x, c: c + x, 1),
    "t + 0.1": (lambda t: t + 0.1, lambda x, c: x + c, 1),
    "2.5 - t": (lambda t: 2.5 - t, lambda x, c: c - x, 1),
    "t - 0.1": (lambda t: t - 0.1, lambda x, c: x - c, 1),
    "0.3 * t": (lambda t: 0.3 * t, lambda x, c: c * x, 1),
    "1.5 / t": (lambda t: 1.5 / t, lambda x, c: c / x, 1),
    "t / 0.7": (lambda t: t / 0.7, lambda x, c: x / c, 1),
    "2.0 ** t": (lambda t: 2.0 ** t, lambda x, c: c ** x, 4),
    "t ** 2": (lambda t: t ** 2, lambda x, c: x ** c, 4),
    "t ** 3": (lambda t: t ** 3, lambda x, c: x ** c, 4),
    "t ** 0.5": (lambda t: t ** 0.5, lambda x, c: x ** c, 4),
    "ops.square": (ops.square, lambda x, c: x * x, 1),
}
_CONSTANT = {"2.5 + t": 2.5, "t + 0.1": 0.1, "2.5 - t": 2.5, "t - 0.1": 0.1, "0.3 * t": 0.3, "1.5 / t": 1.5,
             "t / 0.7": 0.7, "2.0 ** t": 2.0, "t ** 2": 2, "t ** 3": 3, "t ** 0.5": 0.5, "ops.square": 2}


@pytest.mark.parametrize("name", sorted(REFLECTED))
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_operators_with_a_constant(data, name, dtype):
    fn, oracle, k = REFLECTED[name]
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), label="shape")
    positive = name in ("t ** 0.5", "1.5 / t", "2.0 ** t")
    x = draw_array(data, shape, dtype, 0.5, 4.0, signed=not positive)
    c = LD(dtype(_CONSTANT[name]))                  # the constant rounded to x's dtype, as the op uses it
    expected = oracle(x.astype(LD), c)
    assert_close(fn(nb.Tensor(x)), expected, dtype, rtol=k * eps(dtype), label=name)


@FORWARD
@given(st.data(), DTYPES)
def test_ndarray_on_the_left_defers_to_the_tensor(data, dtype):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=4))
    a = draw_array(data, shapes.input_shapes[0], dtype, 0.5, 3.0, signed=True, label="a")
    b = draw_array(data, shapes.input_shapes[1], dtype, 0.5, 3.0, signed=True, label="b")
    t = nb.Tensor(b)
    A, B = a.astype(LD), b.astype(LD)
    for label, y, expected in [("nd + t", a + t, A + B), ("nd - t", a - t, A - B), ("nd * t", a * t, A * B),
                               ("nd / t", a / t, A / B)]:
        assert isinstance(y, nb.Tensor), label
        assert_close(y, expected, dtype, rtol=eps(dtype), label=label)


# ------------------------------------------------------------------- matmul
def _matmul_oracle(a, b):
    """NumPy's matmul rules written out: (..., M, K) x (..., K, N), batch axes broadcast, 1-D promoted.

    Returns (product, sum of |terms|) in longdouble, each of the result's shape.
    """
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    terms = a2[..., :, :, None] * b2[..., None, :, :]       # (..., M, K, 1) * (..., 1, K, N) -> (..., M, K, N)
    y, mag = terms.sum(axis=-2), np.abs(terms).sum(axis=-2)
    if b.ndim == 1:                                         # (..., M, 1) -> (..., M)
        y, mag = y[..., 0], mag[..., 0]
    if a.ndim == 1:                                         # (..., 1, N) -> (..., N), or (..., 1) -> (...)
        drop = (Ellipsis, 0) if b.ndim == 1 else (Ellipsis, 0, slice(None))
        y, mag = y[drop], mag[drop]
    return y, mag


@pytest.mark.parametrize("how", ["ops.matmul", "a @ b", "nd @ t"])
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_matmul_forward(data, dtype, how):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_dims=4,
                                                         max_side=5), label="shapes")
    a = draw_array(data, shapes.input_shapes[0], dtype, 0.0, 3.0, signed=True, label="a")
    b = draw_array(data, shapes.input_shapes[1], dtype, 0.0, 3.0, signed=True, label="b")
    K = a.shape[-1]
    expected, mag = _matmul_oracle(a.astype(LD), b.astype(LD))
    if how == "ops.matmul":
        y = ops.matmul(nb.Tensor(a), nb.Tensor(b))
    elif how == "a @ b":
        y = nb.Tensor(a) @ nb.Tensor(b)
    else:
        y = a @ nb.Tensor(b)
    # K products and K - 1 additions, each rounding once: |error| <= K eps sum_k |a_ik b_kj|
    assert_close(y, expected, dtype, atol=K * eps(dtype) * mag, label=f"{how} {a.shape} @ {b.shape}")


# --------------------------------------------------------------- reductions
def _draw_axis(data, ndim):
    kind = data.draw(st.sampled_from(["none", "int", "tuple"]), label="axis kind")
    if ndim == 0 or kind == "none":
        return None
    if kind == "int":
        return data.draw(st.integers(-ndim, ndim - 1), label="axis")
    return tuple(data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                                    unique_by=lambda a: a % ndim), label="axes"))


def _to_last(x, axis, keepdims):
    """x with the reduced axes moved to one last axis (..., m), and the shape of the result."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(sorted(a % x.ndim for a in np.atleast_1d(axis)))
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, kept + list(axes))
    flat = moved.reshape(tuple(x.shape[a] for a in kept) + (-1,))
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(x.ndim)) if keepdims else \
        tuple(x.shape[a] for a in kept)
    return flat, out_shape


REDUCTIONS = {
    "sum": lambda t, axis, keep: ops.sum(t, axis, keep),
    "Tensor.sum": lambda t, axis, keep: t.sum(axis=axis, keepdims=keep),
    "mean": lambda t, axis, keep: ops.mean(t, axis, keep),
    "Tensor.mean": lambda t, axis, keep: t.mean(axis=axis, keepdims=keep),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FORWARD
@given(data=st.data(), dtype=DTYPES, keepdims=st.booleans())
def test_sum_and_mean_forward(data, name, dtype, keepdims):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    axis = _draw_axis(data, x.ndim)
    flat, out_shape = _to_last(x.astype(LD), axis, keepdims)
    n = flat.shape[-1]
    total, mag = flat.sum(axis=-1).reshape(out_shape), np.abs(flat).sum(axis=-1).reshape(out_shape)
    y = REDUCTIONS[name](nb.Tensor(x), axis, keepdims)
    if "sum" in name:   # n - 1 additions: |error| <= n eps sum |x|
        assert_close(y, total, dtype, atol=n * eps(dtype) * mag, label=f"{name} axis={axis}")
    else:               # the sum's error / n, then times 1/n (rounded): two more roundings of the mean
        assert_close(y, total / n, dtype, rtol=2 * eps(dtype), atol=eps(dtype) * mag, label=f"{name} axis={axis}")


@FORWARD
@given(st.data(), DTYPES, st.booleans(), st.booleans())
def test_max_forward(data, dtype, keepdims, method):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    axis = _draw_axis(data, x.ndim)
    flat, out_shape = _to_last(x, axis, keepdims)
    expected = np.sort(flat, axis=-1)[..., -1].reshape(out_shape)     # the largest, by sorting
    y = nb.Tensor(x).max(axis=axis, keepdims=keepdims) if method else ops.max(nb.Tensor(x), axis, keepdims)
    assert_exact(y, expected, dtype, label=f"max axis={axis}")


# ------------------------------------------------------ shapes and indexing
@FORWARD
@given(st.data(), DTYPES)
def test_reshape_forward(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    # a random factorisation of x.size, in C order
    size, new = x.size, []
    while size > 1:
        d = data.draw(st.sampled_from([d for d in range(2, size + 1) if size % d == 0]), label="factor")
        new.append(d)
        size //= d
    new = tuple(new) or (1,)
    flat = [x[idx] for idx in np.ndindex(x.shape)]                   # row-major walk over x
    expected = np.array(flat, dtype=dtype).reshape(new)
    for label, y in [("ops.reshape", ops.reshape(nb.Tensor(x), new)), ("Tensor.reshape(*)", nb.Tensor(x).reshape(*new)),
                     ("Tensor.reshape(-1)", nb.Tensor(x).reshape(-1))]:
        assert_exact(y, expected.reshape(-1) if "-1" in label else expected, dtype, label=label)


@FORWARD
@given(st.data(), DTYPES)
def test_transpose_forward(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    axes = data.draw(st.permutations(range(x.ndim)), label="axes")
    neg = data.draw(st.booleans(), label="negative axes")
    given_axes = [a - x.ndim if neg else a for a in axes]
    cases = [("ops.transpose", ops.transpose(nb.Tensor(x), given_axes), axes),
             ("Tensor.transpose(*)", nb.Tensor(x).transpose(*given_axes), axes),
             ("Tensor.T", nb.Tensor(x).T, list(range(x.ndim))[::-1])]
    for label, y, perm in cases:
        expected = np.empty(tuple(x.shape[a] for a in perm), dtype=dtype)
        for idx in np.ndindex(x.shape):                              # y[i_perm[0], ...] = x[i_0, ...]
            expected[tuple(idx[a] for a in perm)] = x[idx]
        assert_exact(y, expected, dtype, label=label)


@st.composite
def _slices(draw, shape):
    index = []
    for n in shape:
        start = draw(st.none() | st.integers(-n - 1, n + 1))
        stop = draw(st.none() | st.integers(-n - 1, n + 1))
        step = draw(st.none() | st.sampled_from([1, 2, 3, -1, -2]))
        index.append(slice(start, stop, step))
    return tuple(index)


@FORWARD
@given(st.data(), DTYPES)
def test_getitem_slices(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    index = data.draw(_slices(shape), label="index")
    ranges = [list(range(*s.indices(n))) for s, n in zip(index, shape)]
    expected = np.empty(tuple(len(r) for r in ranges), dtype=dtype)
    for out in np.ndindex(expected.shape):
        expected[out] = x[tuple(r[i] for r, i in zip(ranges, out))]
    assert_exact(nb.Tensor(x)[index], expected, dtype, label=f"x[{index}]")
    assert_exact(ops.getitem(nb.Tensor(x), index), expected, dtype, label=f"getitem {index}")


@pytest.mark.parametrize("kind", ["int", "int array", "Tensor ids", "bool mask", "int then slice"])
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_getitem_integer_and_mask_indices(data, dtype, kind):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    n, rest = shape[0], shape[1:]
    if kind == "bool mask":
        mask = np.asarray(data.draw(st.lists(st.booleans(), min_size=x.size, max_size=x.size))).reshape(shape)
        expected = np.array([x[i] for i in np.ndindex(shape) if mask[i]], dtype=dtype)   # row-major order
        assert_exact(nb.Tensor(x)[mask], expected, dtype, label="x[mask]")
        return
    if kind == "int" or kind == "int then slice":
        i = data.draw(st.integers(-n, n - 1), label="i")
        row = np.empty(rest, dtype=dtype)
        for idx in np.ndindex(rest):
            row[idx] = x[(i % n,) + idx]
        if kind == "int" or not rest:
            assert_exact(nb.Tensor(x)[i], row, dtype, label=f"x[{i}]")
        else:
            assert_exact(nb.Tensor(x)[i, ::-1], row[::-1], dtype, label=f"x[{i}, ::-1]")
        return
    ids = np.asarray(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6), label="ids"))  # repeats too
    expected = np.empty((len(ids),) + rest, dtype=dtype)
    for j, i in enumerate(ids):
        for idx in np.ndindex(rest):
            expected[(j,) + idx] = x[(i % n,) + idx]
    index = nb.Tensor(ids % n, dtype=np.float64) if kind == "Tensor ids" else ids
    assert_exact(nb.Tensor(x)[index], expected, dtype, label=f"x[{kind}]")


@FORWARD
@given(st.data(), DTYPES, st.booleans())
def test_concatenate_and_stack_forward(data, dtype, use_stack):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    k = data.draw(st.integers(1, 4), label="how many")
    ndim_out = len(shape) + (1 if use_stack else 0)
    axis = data.draw(st.integers(-ndim_out, ndim_out - 1), label="axis")
    ax = axis % ndim_out
    xs = []
    for i in range(k):
        s = list(shape)
        if not use_stack:
            s[ax] = data.draw(st.integers(0 if i else 1, 4), label=f"length {i}")   # empty pieces too
        xs.append(draw_array(data, tuple(s), dtype, 0.0, 10.0, signed=True, label=f"x{i}"))
    if use_stack:
        out_shape = shape[:ax] + (k,) + shape[ax:]
        expected = np.empty(out_shape, dtype=dtype)
        for i, x in enumerate(xs):
            for idx in np.ndindex(x.shape):
                expected[idx[:ax] + (i,) + idx[ax:]] = x[idx]
        y = ops.stack([nb.Tensor(x) for x in xs], axis)
    else:
        out_shape = list(shape)
        out_shape[ax] = sum(x.shape[ax] for x in xs)
        expected = np.empty(tuple(out_shape), dtype=dtype)
        offset = 0
        for x in xs:
            for idx in np.ndindex(x.shape):
                expected[idx[:ax] + (idx[ax] + offset,) + idx[ax + 1:]] = x[idx]
            offset += x.shape[ax]
        y = ops.concatenate([nb.Tensor(x) for x in xs], axis)
    assert_exact(y, expected, dtype, label=f"{'stack' if use_stack else 'concatenate'} axis={axis}")


# ------------------------------------------------------------- functional
@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("size", ["small", "large"])
@FORWARD
@given(data=st.data(), dtype=DTYPES, use_bias=st.booleans())
def test_linear_forward(data, dtype, activation, use_bias, size):
    if size == "small":
        lead = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), label="lead")
        D, U = data.draw(st.integers(1, 5), label="D"), data.draw(st.integers(1, 5), label="U")
    else:  # at least functional.SMALL_WORK multiply-adds: the pooled, thread-split path
        lead, D, U = (data.draw(st.integers(260, 300), label="B"),), 16, 16
    x = draw_array(data, lead + (D,), dtype, 0.0, 2.0, signed=True, label="x")
    W = draw_array(data, (D, U), dtype, 0.0, 1.0, signed=True, label="W")
    b = draw_array(data, (U,), dtype, 0.0, 1.0, signed=True, label="b") if use_bias else None
    z, mag = _matmul_oracle(x.astype(LD), W.astype(LD))
    if b is not None:
        z, mag = z + b.astype(LD), mag + np.abs(b.astype(LD))
    f = {None: lambda v: v, "tanh": np.tanh, "relu": lambda v: np.where(v > 0, v, 0), "sigmoid": _sigmoid}
    y = F.linear(nb.Tensor(x), nb.Tensor(W), None if b is None else nb.Tensor(b), activation)
    # z: D products, D - 1 additions and the bias: (D + 1) eps sum|terms|; every activation here has
    # slope <= 1, so that error passes through, plus the activation's own (<= 6 ulps, see UNARY)
    assert_close(y, f[activation](z), dtype, rtol=6 * eps(dtype), atol=(D + 1) * eps(dtype) * mag,
                 label=f"linear {activation} {x.shape} @ {W.shape}")


@pytest.mark.parametrize("which", ["softmax", "activation softmax", "log_softmax"])
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_softmax_and_log_softmax_forward(data, dtype, which):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), label="shape")
    x = draw_array(data, shape, dtype, 0.0, 10.0, signed=True)
    axis = -1 if which == "activation softmax" else data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    n = x.shape[axis]
    X = x.astype(LD)
    shifted = X - X.max(axis=axis, keepdims=True)
    s = np.exp(shifted).sum(axis=axis, keepdims=True)
    big = np.abs(shifted).max(axis=axis, keepdims=True)
    # x - max rounds (eps |x - max|, which exp turns into a relative error), exp adds 4 ulps: each
    # exp(x_i - max) is within (|x_i - max| + 4) eps; their sum s, with n more roundings, within
    # (max|x - max| + n + 4) eps; the division one more. log-softmax subtracts log(s), whose absolute
    # error is that relative error of s plus 4 ulps of |log s|, and rounds once more (|y| eps)
    e = eps(dtype)
    if which == "log_softmax":
        y = F.log_softmax(nb.Tensor(x), axis)
        expected = shifted - np.log(s)
        atol = e * (np.abs(shifted) + big + n + 4 + 4 * np.abs(np.log(s)) + np.abs(expected))
        assert_close(y, expected, dtype, atol=atol, label=f"log_softmax axis={axis}")
    else:
        t = nb.Tensor(x)
        y = F.softmax(t, axis) if which == "softmax" else activations.get("softmax")(t)
        assert_close(y, np.exp(shifted) / s, dtype, rtol=e * (np.abs(shifted) + big + n + 9),
                     atol=float(np.finfo(dtype).tiny), label=f"{which} axis={axis}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.6])
def test_dropout_forward(dtype, rate):
    x = np.random.default_rng(1).uniform(-3, 3, (40, 7)).astype(dtype)
    y = F.dropout(nb.Tensor(x), rate, np.random.default_rng(5))
    keep = np.random.default_rng(5).random(x.shape) >= rate          # the same draws: kept where u >= rate
    expected = np.where(keep, x.astype(LD) / LD(1 - rate), 0)
    # 1 - rate rounded to the dtype, one division, one product: 3 half-ulps
    assert_close(y, expected, dtype, rtol=2 * eps(dtype), label=f"dropout {rate}")
    assert np.array_equal(y.data != 0, keep & (x != 0))


@FORWARD
@given(st.data(), DTYPES)
def test_embedding_forward(data, dtype):
    V, D = data.draw(st.integers(1, 6), label="V"), data.draw(st.integers(1, 4), label="D")
    ids_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), label="ids shape")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    ids = rng.integers(0, V, ids_shape)
    W = rng.standard_normal((V, D)).astype(dtype)
    expected = np.empty(ids_shape + (D,), dtype=dtype)
    for idx in np.ndindex(ids_shape):
        expected[idx] = W[int(ids[idx])]
    assert_exact(F.embedding(ids, nb.Tensor(W)), expected, dtype, label="embedding")


@FORWARD
@given(st.data(), DTYPES)
def test_upsample_nearest_forward(data, dtype):
    N, H, Wd, C = data.draw(st.tuples(*[st.integers(1, 4)] * 4), label="NHWC")
    SH, SW = data.draw(st.integers(1, 3), label="SH"), data.draw(st.integers(1, 3), label="SW")
    x = draw_array(data, (N, H, Wd, C), dtype, 0.0, 5.0, signed=True)
    expected = np.empty((N, H * SH, Wd * SW, C), dtype=dtype)
    for i in range(H * SH):
        for j in range(Wd * SW):
            expected[:, i, j] = x[:, i // SH, j // SW]
    assert_exact(F.upsample2d(nb.Tensor(x), (SH, SW), "nearest"), expected, dtype, label="upsample nearest")


def _bilinear_taps(n_out, n_in, scale):
    """(i0, i1, frac) per output index: half-pixel centres src = (i + 0.5) / scale - 0.5, clamped."""
    taps = []
    for i in range(n_out):
        src = min(max((i + 0.5) / scale - 0.5, 0.0), n_in - 1)
        i0 = int(np.floor(src))
        taps.append((i0, min(i0 + 1, n_in - 1), src - i0))
    return taps


@FORWARD
@given(st.data(), DTYPES)
def test_upsample_bilinear_forward(data, dtype):
    N, H, Wd, C = data.draw(st.tuples(*[st.integers(1, 4)] * 4), label="NHWC")
    SH, SW = data.draw(st.integers(1, 3), label="SH"), data.draw(st.integers(1, 3), label="SW")
    x = draw_array(data, (N, H, Wd, C), dtype, 0.0, 5.0, signed=True)
    X = x.astype(LD)
    expected = np.empty((N, H * SH, Wd * SW, C), dtype=LD)
    for i, (r0, r1, fr) in enumerate(_bilinear_taps(H * SH, H, SH)):
        for j, (c0, c1, fc) in enumerate(_bilinear_taps(Wd * SW, Wd, SW)):
            top = X[:, r0, c0] * (1 - LD(fc)) + X[:, r0, c1] * LD(fc)
            bottom = X[:, r1, c0] * (1 - LD(fc)) + X[:, r1, c1] * LD(fc)
            expected[:, i, j] = top * (1 - LD(fr)) + bottom * LD(fr)
    # weights rounded to the dtype (2 roundings each), 4 products, 3 sums: under 10 eps max|x|
    assert_close(F.upsample2d(nb.Tensor(x), (SH, SW), "bilinear"), expected, dtype,
                 atol=10 * eps(dtype) * np.abs(X).max(), label="upsample bilinear")


# ------------------------------------------------------------------- losses
def _loss_case(kind, from_logits, dtype, rng, N, D):
    """(loss object, y_true, y_pred, per-sample terms (N, D) in longdouble) from Keras's definitions."""
    if kind in ("mse", "mae"):
        t, p = rng.uniform(-2, 2, (N, D)).astype(dtype), rng.uniform(-2, 2, (N, D)).astype(dtype)
        d = p.astype(LD) - t.astype(LD)
        terms = d * d if kind == "mse" else np.abs(d)
        return (losses.MeanSquaredError() if kind == "mse" else losses.MeanAbsoluteError()), t, p, terms / D
    if kind == "bce":
        t = rng.uniform(0, 1, (N, D)).astype(dtype)
        T = t.astype(LD)
        if from_logits:
            p = rng.uniform(-4, 4, (N, D)).astype(dtype)
            q = 1 / (1 + np.exp(-p.astype(LD)))
        else:
            p = rng.uniform(0.05, 0.95, (N, D)).astype(dtype)
            q = p.astype(LD)
        terms = -(T * np.log(q) + (1 - T) * np.log(1 - q))
        return losses.BinaryCrossentropy(from_logits=from_logits), t, p, terms / D
    labels = rng.integers(0, D, N)
    onehot = np.eye(D, dtype=LD)[labels]
    if from_logits:
        p = rng.uniform(-3, 3, (N, D)).astype(dtype)
        z = p.astype(LD)
        q = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    else:
        p = rng.uniform(0.1, 1.0, (N, D)).astype(dtype)
        q = p.astype(LD) / p.astype(LD).sum(axis=-1, keepdims=True)    # rows normalised first, as Keras does
    terms = -onehot * np.log(q)
    if kind == "cce":
        return losses.CategoricalCrossentropy(from_logits=from_logits), onehot.astype(dtype), p, terms
    return losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, p, terms


@pytest.mark.parametrize("case", [("mse", False), ("mae", False), ("bce", False), ("bce", True), ("cce", False),
                                  ("cce", True), ("sparse", False), ("sparse", True)])
@FORWARD
@given(data=st.data(), dtype=DTYPES)
def test_loss_forward(data, dtype, case):
    kind, from_logits = case
    N = data.draw(st.integers(1, 6), label="N")
    D = data.draw(st.integers(2, 5), label="D")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    loss, t, p, terms = _loss_case(kind, from_logits, dtype, rng, N, D)
    expected = terms.sum() / N                                         # mean over the batch of per-sample sums
    y = loss(t, nb.Tensor(p))
    assert y.shape == ()
    # per term: rounding 1 - q (or q / sum q) moves log q by at most eps / min(q, 1 - q) <= 20 eps
    # (q in [0.05, 0.95]), log adds 4 ulps of |log q| <= 3 and the products 2: under 32 eps for
    # each of the N*D terms, D * 32 eps after the division by N; summing the N*D terms adds
    # (N D) eps sum|terms| / N
    e = eps(dtype)
    assert_close(y, expected, dtype, atol=D * e * (32 + N * np.abs(terms).sum() / N),
                 label=f"{kind} from_logits={from_logits}")
