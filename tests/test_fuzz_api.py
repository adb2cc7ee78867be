"""Fuzzing the public API with Hypothesis: every layer, and compile/fit/evaluate/predict/
save_weights/load_weights, with random valid and invalid arguments and data.

The contract checked (API.md, "Every rejected configuration or input ..."):

* a failure is exactly a ``ValueError`` or ``TypeError``, raised by numbanet's own checks
  (the innermost frame of the traceback is in the numbanet package, so it is not a NumPy
  broadcasting error or a Numba typing error from inside an op), and its message names the
  layer (class or name), the model, or the argument;
* a failed call leaves every weight, bit for bit, and the optimizer's step count unchanged;
* a successful call gives an output of the shape the layer's docstring formula gives
  (computed here independently), finite when the input is finite; ``predict`` lets a NaN
  input through into that sample's row only, as Keras does (checked with TensorFlow 2.21:
  ``predict`` propagates NaN, ``fit`` reports a nan loss and turns the weights to NaN),
  while ``fit`` and ``evaluate`` reject NaN data before any step.

Every test runs a fixed number of examples (``fuzz(n)``) from a fixed seed (``derandomize``,
no example database), so a run does not depend on earlier runs or on the machine's clock. A deadline per example (20 s, against typical runtimes of 1-15 ms) flags a
pathologically slow case; a hang, which never returns to Hypothesis, is ended by the
``hang_guard`` watchdog (faulthandler), which dumps every thread's traceback and exits.
The kernels are compiled once by the ``warm`` fixture first, so compilation time does not
count against the deadline.
"""
import faulthandler
import os
import re
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet import layers as L
from numbanet.utils import snake_case

PKG = os.path.dirname(nb.__file__)

# NaN and inf inputs are drawn on purpose: NumPy warns about them inside matmul and exp.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")


def fuzz(n):
    return settings(max_examples=n, derandomize=True, database=None, deadline=timedelta(seconds=20),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def hang_guard():
    """End the run with every thread's traceback if one test of this file takes over 10 minutes."""
    faulthandler.dump_traceback_later(600, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ------------------------------------------------------------------ the contract
def assert_clean_error(err, names):
    """``err`` is a ValueError/TypeError raised by numbanet whose message names one of ``names``."""
    assert type(err) in (ValueError, TypeError), f"{type(err).__module__}.{type(err).__name__}: {err}"
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename
    assert os.path.abspath(where).startswith(PKG), f"raised outside numbanet, in {where}: {err}"
    msg = str(err)
    assert any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", msg) for n in names if n), \
        f"message names none of {names} (as a word): {msg}"


def attempt(fn, names, snapshot_of=None):
    """Run ``fn``; on failure check the error (and that ``snapshot_of``'s weights did not move).

    Returns (True, result) or (False, error).
    """
    before = snapshot(snapshot_of) if snapshot_of is not None else None
    try:
        return True, fn()
    except Exception as err:  # noqa: BLE001 - every exception is judged by the contract
        assert_clean_error(err, names)
        if before is not None:
            assert_same(before, snapshot(snapshot_of))
        return False, err


def snapshot(model):
    opt = getattr(model, "optimizer", None)
    return [w.copy() for w in model.get_weights()], (opt.iterations if opt is not None else None)


def assert_same(a, b):
    (wa, ia), (wb, ib) = a, b
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bit for bit, NaN included
    assert ia == ib


# ---------------------------------------------------------------- data makers
DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool", "object", "list", "str", "complex"]


def make_array(rng, shape, dtype, special=None, low=-2.0, high=2.0):
    """Random data of ``shape`` in the given "dtype" (also a nested list, object or string array)."""
    values = rng.uniform(low, high, size=shape)
    if special and values.size:
        values.flat[rng.integers(values.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[special]
    if dtype == "list":
        return values.tolist()
    if dtype == "object":
        return values.astype(object)
    if dtype == "str":
        return values.astype(str)
    if dtype == "complex":
        return values.astype(complex)
    if dtype == "bool":
        return values > 0
    if np.dtype(dtype).kind in "iu":
        return np.nan_to_num(values, nan=0, posinf=0, neginf=0).round().astype(dtype)
    return values.astype(dtype)


def is_finite_numeric(x):
    arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
    return arr.dtype.kind in "fiub" and bool(np.all(np.isfinite(arr.astype(np.float64))))


# --------------------------------------------------------- argument strategies
BAD = [None, "abc", "", -1, 0, -2.5, 1.5, float("nan"), float("inf"), 10 ** 12, (), (1,), (1, 2, 3),
       (2, "a"), [2, 2], True, np.int64(2), np.float64(2.0), object()]


SMALL = st.integers(1, 4)
PAIR = st.one_of(SMALL, st.tuples(SMALL, SMALL), st.lists(SMALL, min_size=2, max_size=2))
ACTIVATION = st.sampled_from([None, "linear", "relu", "tanh", "sigmoid", "softmax", "elu", "leaky_relu", "RELU"])
INITIALIZER = st.sampled_from(["glorot_uniform", "zeros", "ones", "he_normal", "lecun_uniform", "random_normal"])
BOOL = st.sampled_from([True, False])

# layer class -> {argument: (valid values, extra invalid values beyond BAD)}
LAYER_ARGS = {
    L.Dense: {"units": (SMALL, []), "activation": (ACTIVATION, ["swish_not_here"]), "use_bias": (BOOL, []),
              "kernel_initializer": (INITIALIZER, ["not_an_initializer"]),
              "bias_initializer": (INITIALIZER, ["orthogonal"])},
    L.Conv2D: {"filters": (SMALL, []), "kernel_size": (PAIR, [(0, 1), (1, 2, 3)]), "strides": (PAIR, [(1, 0)]),
               "padding": (st.sampled_from(["valid", "same", "SAME"]), ["full", "causal"]),
               "activation": (ACTIVATION, ["nope"]), "use_bias": (BOOL, []),
               "kernel_initializer": (INITIALIZER, ["nope"])},
    L.Conv2DTranspose: {"filters": (SMALL, []), "kernel_size": (PAIR, []), "strides": (PAIR, []),
                        "padding": (st.sampled_from(["valid", "same"]), ["full"]),
                        "output_padding": (st.one_of(st.none(), st.integers(0, 2)), [(0, 5)]),
                        "activation": (ACTIVATION, []), "kernel_initializer": (INITIALIZER, [])},
    L.MaxPooling2D: {"pool_size": (PAIR, [(0, 2)]), "strides": (st.one_of(st.none(), PAIR), []),
                     "padding": (st.sampled_from(["valid", "same"]), ["full"])},
    L.UpSampling2D: {"size": (PAIR, []), "interpolation": (st.sampled_from(["nearest", "bilinear"]), ["bicubic"])},
    L.Embedding: {"input_dim": (st.integers(1, 6), []), "output_dim": (SMALL, []), "mask_zero": (BOOL, []),
                  "embeddings_initializer": (st.sampled_from(["uniform", "zeros", "glorot_uniform"]), ["nope"])},
    L.SimpleRNN: {"units": (SMALL, []), "activation": (st.sampled_from(["tanh", "relu", "sigmoid", None]),
                                                       ["elu", "softmax"]),
                  "return_sequences": (BOOL, []), "return_state": (BOOL, []), "go_backwards": (BOOL, []),
                  "recurrent_initializer": (INITIALIZER, ["nope"])},
    L.Flatten: {},
    L.Reshape: {"target_shape": (st.lists(st.sampled_from([-1, 1, 2, 3, 4, 6]), min_size=1, max_size=3)
                                 .map(tuple), [(-1, -1), (0, 2), (-3,)])},
    L.Activation: {"activation": (ACTIVATION, ["nope"])},
    L.Dropout: {"rate": (st.sampled_from([0.0, 0.25, 0.5, 0.9]), [1.0, -0.1])},
}
REQUIRED = {"units", "filters", "kernel_size", "input_dim", "output_dim", "target_shape", "activation", "rate"}

# arguments whose values size a weight or an output (a transposed convolution's output grows with
# its strides): a huge valid value would allocate terabytes, as it would in Keras, so calls are
# made only when these are small
SIZE_ARGS = {"units", "filters", "input_dim", "output_dim", "size", "kernel_size"}
SIZE_ARGS_OF = {L.Conv2DTranspose: SIZE_ARGS | {"strides"}}


@st.composite
def layer_kwargs(draw, cls):
    """Valid arguments, or valid ones with one of them (or dtype, or input_shape) made invalid."""
    args = LAYER_ARGS[cls]
    kwargs = {name: draw(valid) for name, (valid, _) in args.items()
              if name in REQUIRED or draw(st.integers(0, 2)) == 0}
    spoil = draw(st.sampled_from(sorted(args) + ["dtype", "input_shape", None, None, None, None, None]))
    if spoil in args:
        kwargs[spoil] = draw(st.sampled_from(BAD + args[spoil][1]))
    elif spoil == "dtype":
        kwargs["dtype"] = draw(st.sampled_from(["float64", "float16", "int32", "bogus", 7, None]))
    elif spoil == "input_shape":
        kwargs["input_shape"] = draw(st.sampled_from([(3,), (2, 3), 4, (0,), (-1, 2), ("a",), (2.5,), None, "ab"]))
    return kwargs


def expected_shape(layer, cls, kw, in_shape):
    """The output shape of ``layer`` on input ``in_shape``, from the formulas in the docstrings."""
    N = in_shape[0]

    def two(v):
        return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)

    if cls is L.Dense:
        return in_shape[:-1] + (kw["units"],)
    if cls in (L.Activation, L.Dropout):
        return in_shape
    if cls is L.Flatten:
        return (N, int(np.prod(in_shape[1:])))
    if cls is L.Reshape:
        t = kw["target_shape"]
        t = (t,) if isinstance(t, (int, np.integer)) else tuple(t)
        known = int(np.prod([d for d in t if d != -1]))
        return (N,) + tuple(int(np.prod(in_shape[1:])) // known if d == -1 else d for d in t)
    if cls is L.Embedding:
        return in_shape + (kw["output_dim"],)
    if cls is L.SimpleRNN:
        U = kw["units"]
        out = (N, in_shape[1], U) if kw.get("return_sequences") else (N, U)
        return (out, (N, U)) if kw.get("return_state") else out
    H, W, C = in_shape[1:]
    if cls is L.UpSampling2D:
        s = two(kw.get("size", 2))
        return (N, H * s[0], W * s[1], C)
    pad = kw.get("padding", "valid").lower()
    if cls in (L.Conv2D, L.MaxPooling2D):
        k = two(kw["kernel_size"] if cls is L.Conv2D else kw.get("pool_size", 2))
        s = two(kw.get("strides") or (k if cls is L.MaxPooling2D else 1))
        hw = [(-(-n // si)) if pad == "same" else (n - ki) // si + 1 for n, ki, si in zip((H, W), k, s)]
        return (N, *hw, kw["filters"] if cls is L.Conv2D else C)
    k, s = two(kw["kernel_size"]), two(kw.get("strides", 1))
    op = kw.get("output_padding")
    if op is None:
        hw = [n * si + max(ki - si, 0) if pad == "valid" else n * si for n, ki, si in zip((H, W), k, s)]
    else:
        op = two(op)
        hw = [(n - 1) * si + ki - 2 * (ki // 2 if pad == "same" else 0) + o for n, ki, si, o in zip((H, W), k, s, op)]
    return (N, *hw, kw["filters"])


@st.composite
def layer_input(draw, cls, rng):
    """Random input: usually the rank the layer wants, sometimes not; small dims, zeros included."""
    rank = {L.Dense: 2, L.Conv2D: 4, L.Conv2DTranspose: 4, L.MaxPooling2D: 4, L.UpSampling2D: 4,
            L.Embedding: 2, L.SimpleRNN: 3}.get(cls, draw(st.integers(2, 4)))
    if draw(st.integers(0, 4)) == 0:
        rank = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, 0]), min_size=rank, max_size=rank)))
    if cls is L.Embedding:
        dtype = draw(st.sampled_from(["int64", "int32", "uint8", "float32", "bool", "object", "list"]))
        x = make_array(rng, shape, dtype if dtype in ("object", "list") else "float64", low=-1, high=7)
        if dtype not in ("object", "list"):
            x = np.asarray(x).round().astype(dtype)
        return x
    dtype = draw(st.sampled_from(DTYPES + ["tensor"]))
    if dtype == "tensor":
        return nb.Tensor(make_array(rng, shape, draw(st.sampled_from(["float32", "float64"]))))
    special = draw(st.sampled_from([None, None, None, "nan", "inf"])) if dtype.startswith("float") else None
    return make_array(rng, shape, dtype, special)


@pytest.fixture(scope="module")
def warm():
    """Compile the kernels each layer uses once, outside the per-example deadline."""
    x4, x3 = np.ones((2, 5, 5, 2)), np.ones((2, 3, 2))
    for dtype in ("float32", "float64"):
        for make, x in [(lambda: L.Conv2D(2, 3, dtype=dtype), x4),
                        (lambda: L.Conv2D(2, 3, activation="relu", padding="same", dtype=dtype), x4),
                        (lambda: L.Conv2DTranspose(2, 3, strides=2, dtype=dtype), x4),
                        (lambda: L.Conv2DTranspose(2, 2, activation="relu", dtype=dtype), x4),
                        (lambda: L.MaxPooling2D(dtype=dtype), x4), (lambda: L.MaxPooling2D(padding="same"), x4),
                        (lambda: L.UpSampling2D(dtype=dtype), x4),
                        (lambda: L.UpSampling2D(interpolation="bilinear", dtype=dtype), x4),
                        (lambda: L.Embedding(5, 2, dtype=dtype), np.ones((2, 3), np.int64)),
                        (lambda: L.SimpleRNN(2, dtype=dtype), x3),
                        (lambda: L.SimpleRNN(2, activation="relu", go_backwards=True, dtype=dtype), x3)]:
            y = make()(x, training=True)
            if y.requires_grad:
                y.sum().backward()


@pytest.mark.parametrize("cls", list(LAYER_ARGS), ids=lambda c: c.__name__)
@fuzz(300)
@given(data=st.data())
def test_layer_construct_and_call(warm, cls, data):
    kw = data.draw(layer_kwargs(cls), label="kwargs")
    name = "fuzzed_" + snake_case(cls.__name__)
    names = [cls.__name__, name] + list(kw)
    ok, layer = attempt(lambda: cls(name=name, **kw), names)
    event("constructed" if ok else f"constructor raised {type(layer).__name__}")
    if not ok:
        return
    assert isinstance(layer.get_config(), dict)
    if any(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and abs(v) > 1000
           for k, v in kw.items() if k in SIZE_ARGS_OF.get(cls, SIZE_ARGS)):
        return  # built, not called: its weights or output would take terabytes
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    x = data.draw(layer_input(cls, rng), label="x")
    for attempt_no in range(2):  # a first call builds the layer; a second one meets a built layer
        if attempt_no:
            x = data.draw(layer_input(cls, rng), label="x again")
        extra = data.draw(rnn_call_kwargs(np.shape(x), kw.get("units")), label="call kwargs") \
            if cls is L.SimpleRNN else {}
        call_and_check(layer, cls, kw, x, data.draw(BOOL, label="training"), extra)


@st.composite
def rnn_call_kwargs(draw, shape, units):
    """SimpleRNN's call arguments: initial_state and mask, right, misshapen or of a wrong type."""
    N = shape[0] if len(shape) else 1
    T = shape[1] if len(shape) > 1 else 1
    U = units if isinstance(units, int) else 1
    kwargs = {}
    if draw(BOOL):
        kwargs["initial_state"] = draw(st.sampled_from([
            np.zeros((N, U)), [np.zeros((N, U))], nb.Tensor(np.zeros((N, U))), np.zeros((N, U + 1)),
            [np.zeros((N, U))] * 2, [], "abc", np.full((N, U), "a"), np.zeros((N, U), dtype=object), 5]))
    if draw(BOOL):
        kwargs["mask"] = draw(st.sampled_from([
            np.ones((N, T), bool), np.arange(N * T).reshape(N, T) % 2 == 0, np.ones((N, T + 1), bool), "abc", 3]))
    return kwargs


def call_and_check(layer, cls, kw, x, training, extra):
    names = [layer.name, cls.__name__]
    weights = layer.get_weights()
    ok, y = attempt(lambda: layer(x, training=training, **extra), names)
    event("call returned" if ok else f"call raised {type(y).__name__}")
    if not ok:  # a built layer keeps its weights bit for bit; an unbuilt one has none
        after = layer.get_weights()
        assert len(after) == len(weights) and all(a.tobytes() == b.tobytes() for a, b in zip(weights, after))
        assert layer.built or after == []
        return
    in_shape = np.shape(x)
    want = expected_shape(layer, cls, kw, tuple(in_shape))
    got = tuple(t.shape for t in y) if isinstance(y, tuple) else y.shape
    assert got == want, f"{cls.__name__}{kw} on {in_shape}: output {got}, docstring formula gives {want}"
    if is_finite_numeric(x.data if isinstance(x, nb.Tensor) else x):
        for t in (y if isinstance(y, tuple) else (y,)):
            assert np.all(np.isfinite(t.data)), f"{cls.__name__}{kw}: non-finite output for finite input"


@fuzz(100)
@given(data=st.data())
def test_input_and_functional_model(warm, data):
    shape = data.draw(st.sampled_from([(3,), 3, (2, 3), (0,), (-1,), ("a",), (2.5,), None, "ab", (None, 3), ()]))
    dtype = data.draw(st.sampled_from([None, "float32", "float64", "int32", "bogus"]))
    ok, inp = attempt(lambda: L.Input(shape, dtype=dtype), ["Input", "shape", "dtype"])
    if not ok:
        return
    ok, out = attempt(lambda: L.Dense(2)(inp), ["dense", "Dense", "input"])
    if not ok:
        return
    model = nb.Model(inp, out)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    rank = data.draw(st.integers(1, 3))
    xshape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    x = make_array(rng, xshape, data.draw(st.sampled_from(["float32", "int64", "list", "object"])))
    ok, y = attempt(lambda: model.predict(x, verbose=0), [model.name, "x"], model)
    if ok:
        assert y.shape == np.shape(x)[:-1] + (2,) and np.all(np.isfinite(y))


# ------------------------------------------------------------------- models
def mlp(loss):
    units = 1 if loss in ("mse", "mae", "binary_crossentropy") else 3
    act = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
           "sparse_categorical_crossentropy": "softmax"}.get(loss)
    return nb.Sequential([L.Dense(3, activation="relu", input_shape=(4,)), L.Dense(units, activation=act)])


def cnn(loss):
    return nb.Sequential([L.Input((5, 5, 1)), L.Conv2D(2, 3, padding="same", activation="relu"),
                          L.MaxPooling2D(), L.Flatten(),
                          L.Dense(1 if loss in ("mse", "mae", "binary_crossentropy") else 3,
                                  activation="sigmoid" if loss == "binary_crossentropy" else "softmax"
                                  if "categorical" in loss else None)])


def rnn(loss):
    return nb.Sequential([L.Embedding(7, 3, input_shape=(4,)), L.SimpleRNN(3),
                          L.Dense(1 if loss in ("mse", "mae", "binary_crossentropy") else 3,
                                  activation="sigmoid" if loss == "binary_crossentropy" else "softmax"
                                  if "categorical" in loss else None)])


def line(loss):
    return nb.Sequential([L.Dense(1 if loss in ("mse", "mae", "binary_crossentropy") else 3, input_shape=(1,),
                                  activation="softmax" if "categorical" in loss else None)])


ARCHS = {"mlp": (mlp, (4,)), "cnn": (cnn, (5, 5, 1)), "rnn": (rnn, (4,)), "line": (line, (1,))}
LOSSES = ["mse", "mae", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"]


def good_targets(rng, loss, n):
    if loss in ("mse", "mae"):
        return rng.uniform(-1, 1, (n, 1))
    if loss == "binary_crossentropy":
        return (rng.uniform(size=(n, 1)) > 0.5).astype(float)
    if loss == "categorical_crossentropy":
        return np.eye(3)[rng.integers(0, 3, n)]
    return rng.integers(0, 3, n)


def good_inputs(rng, arch, n):
    shape = (n,) + ARCHS[arch][1]
    return rng.integers(0, 7, shape) if arch == "rnn" else rng.uniform(-1, 1, shape).astype(np.float32)


@st.composite
def perturbed(draw, rng, good):
    """``good`` or a random corruption of it: dtype, container, shape, length, NaN."""
    how = draw(st.sampled_from(["good", "good", "good", "dtype", "container", "drop_axis", "add_axis",
                                "resize_axis", "length", "empty", "nan", "flatten"]))
    a = np.asarray(good)
    if how == "dtype":
        return a.astype(draw(st.sampled_from(["float16", "float64", "int32", "bool", "complex", "str"])))
    if how == "container":
        c = draw(st.sampled_from(["list", "object", "tensor", "ragged"]))
        if c == "list":
            return a.tolist()
        if c == "object":
            return a.astype(object)
        if c == "tensor":
            return nb.Tensor(a.astype(np.float32))
        return [list(np.ravel(r)) for r in a][:-1] + [[1.0]] if len(a) > 1 else [[1.0, 2.0], [1.0]]
    if how == "drop_axis" and a.ndim > 1:
        return a[..., 0]
    if how == "add_axis":
        return a[..., None]
    if how == "resize_axis" and a.ndim > 1:
        ax = draw(st.integers(1, a.ndim - 1))
        return np.concatenate([a, np.take(a, [0], axis=ax)], axis=ax)
    if how == "length":
        return a[:max(len(a) - draw(st.integers(1, 3)), 0)]
    if how == "empty":
        return a[:0]
    if how == "nan" and a.dtype.kind == "f":
        b = a.astype(np.float32, copy=True)
        b.flat[draw(st.integers(0, b.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        return b
    if how == "flatten":
        return a.reshape(len(a), -1) if a.ndim > 2 else a.reshape(-1)
    return good


def compiled(arch, loss, seed=0):
    nb.utils.set_random_seed(seed)
    model = ARCHS[arch][0](loss)
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"] if "entropy" in loss else ["mae"])
    return model


def model_names(model):
    return [model.name, "x", "y", "validation_data", "sample_weight"] + \
        [layer.name for layer in model.layers] + [type(model.loss).__name__]


@fuzz(500)
@given(data=st.data())
def test_fit_evaluate_predict(warm, data):
    arch = data.draw(st.sampled_from(list(ARCHS)), label="arch")
    loss = data.draw(st.sampled_from(LOSSES), label="loss")
    model = compiled(arch, loss)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    n = data.draw(st.integers(1, 9), label="n")
    x = data.draw(perturbed(rng, good_inputs(rng, arch, n)), label="x")
    y = data.draw(perturbed(rng, good_targets(rng, loss, n)), label="y")
    call = data.draw(st.sampled_from(["fit", "fit", "evaluate", "predict"]), label="call")
    names = model_names(model)
    out_units = model.output_shape[-1]
    if call == "predict":
        ok, out = attempt(lambda: model.predict(x, batch_size=4, verbose=0), names, model)
        event(f"predict {'returned' if ok else 'raised'}")
        if ok:
            xa = np.asarray(x.data if isinstance(x, nb.Tensor) else x)
            assert out.shape == (len(xa), out_units)
            finite_rows = np.all(np.isfinite(xa.reshape(len(xa), -1).astype(np.float64)), axis=1)
            assert np.all(np.isfinite(out[finite_rows]))  # a NaN sample touches its own row only
        return
    if call == "evaluate":
        ok, out = attempt(lambda: model.evaluate(x, y, batch_size=4, verbose=0), names, model)
        event(f"evaluate {'returned' if ok else 'raised'}")
        if ok:
            assert all(np.isfinite(v) for v in out)
        return
    kwargs = {"batch_size": 4, "epochs": 2, "verbose": 0}
    val = data.draw(st.sampled_from(["none", "good", "bad", "split", "shape"]), label="validation")
    if val == "good":
        kwargs["validation_data"] = (good_inputs(rng, arch, 3), good_targets(rng, loss, 3))
    elif val == "bad":
        kwargs["validation_data"] = (data.draw(perturbed(rng, good_inputs(rng, arch, 3))),
                                     data.draw(perturbed(rng, good_targets(rng, loss, 3))))
    elif val == "shape":
        kwargs["validation_data"] = data.draw(st.sampled_from([np.zeros(3), (np.zeros(3),), [], "xy", None]))
    elif val == "split":
        kwargs["validation_split"] = data.draw(st.sampled_from([0.2, 0.5]))
    weighting = data.draw(st.sampled_from(["none", "none", "good", "short", "2d", "str", "nan"]), label="weights")
    if weighting != "none":
        kwargs["sample_weight"] = {"good": rng.uniform(0, 1, n), "short": np.ones(n + 1), "2d": np.ones((n, 2)),
                                   "str": np.array(["a"] * n), "nan": np.full(n, np.nan)}[weighting]
    ok, hist = attempt(lambda: model.fit(x, y, **kwargs), names, model)
    event(f"fit {'returned' if ok else 'raised'}")
    if ok:
        for key, values in hist.history.items():
            assert len(values) == 2 and np.all(np.isfinite(values)), (key, values)


@fuzz(100)
@given(data=st.data())
def test_save_and_load_weights(warm, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("w")
    a_arch, b_arch = data.draw(st.sampled_from(list(ARCHS))), data.draw(st.sampled_from(list(ARCHS)))
    a_loss, b_loss = data.draw(st.sampled_from(LOSSES)), data.draw(st.sampled_from(LOSSES))
    a, b = compiled(a_arch, a_loss, seed=1), compiled(b_arch, b_loss, seed=2)
    path = folder / "a.npz"
    a.save_weights(path)
    what = data.draw(st.sampled_from(["file", "file", "junk", "npy", "foreign_npz"]))
    if what == "junk":
        path.write_bytes(data.draw(st.binary(max_size=64)))
    elif what == "npy":
        path = folder / "a.npy"
        np.save(path, np.zeros(3))
    elif what == "foreign_npz":
        np.savez(path, w0=np.zeros(3))
    ok, _ = attempt(lambda: b.load_weights(path), [b.name, "load_weights"], b)
    event(f"load_weights {'returned' if ok else 'raised'}")
    same_shapes = [w.shape for w in a.weights] == [w.shape for w in b.weights]
    if ok:  # only a file of weights of the same count and shapes loads, and then every weight is the file's
        assert what == "file" and same_shapes
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            assert wa.tobytes() == wb.tobytes()
    else:
        assert not (what == "file" and same_shapes), f"{a_arch}->{b_arch}: a file of the same shapes was refused"


# ------------------------------------------------------------ the taught errors
@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_1d_x_into_input_shape_1_names_the_data_and_the_reshape(call):
    model = compiled("line", "mse")
    x, y = np.arange(80.0), np.arange(80.0)
    snap = snapshot(model)
    args = (x,) if call == "predict" else (x, y)
    with pytest.raises(ValueError) as info:
        getattr(model, call)(*args, batch_size=20, verbose=0)
    msg = str(info.value)
    assert "(80,)" in msg and "(20,)" not in msg, msg       # the data's shape, not a batch's
    assert "x.reshape(-1, 1)" in msg and "(None, 1)" in msg, msg
    assert_same(snap, snapshot(model))
    # and the reshape it names works
    assert model.predict(x.reshape(-1, 1), verbose=0).shape == (80, 1)


def test_flattened_images_get_their_reshape():
    model = compiled("cnn", "mse")
    with pytest.raises(ValueError, match=re.escape("x.reshape(-1, 5, 5, 1)")):
        model.predict(np.zeros((3, 25)))
    with pytest.raises(ValueError, match=re.escape("x[..., np.newaxis]")):
        model.predict(np.zeros((3, 5, 5)))


def test_wrong_validation_data_fails_before_the_first_step():
    model = compiled("mlp", "mse")
    snap = snapshot(model)
    x, y = np.zeros((8, 4), np.float32), np.zeros((8, 1), np.float32)
    with pytest.raises(ValueError, match=r"validation_data.*\(5, 3\)"):
        model.fit(x, y, validation_data=(np.zeros((5, 3)), np.zeros((5, 1))), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(x_val, y_val\)"):
        model.fit(x, y, validation_data=np.zeros((5, 4)), verbose=0)
    assert_same(snap, snapshot(model))


def test_predict_lets_nan_through_row_by_row():
    model = compiled("mlp", "mse")
    x = np.random.default_rng(0).uniform(-1, 1, (6, 4)).astype(np.float32)
    clean = model.predict(x, verbose=0)
    x[2, 1] = np.nan
    out = model.predict(x, verbose=0)
    assert np.isnan(out[2]).all()
    rows = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(out[rows], clean[rows])  # same operations on the same rows


# ------------------------------------------------------- compile, random stacks
@fuzz(100)
@given(data=st.data())
def test_compile(warm, data):
    model = compiled("mlp", "mse")
    optimizer = data.draw(st.sampled_from(["sgd", "Adam", "RMSprop", "adagrad", "nope", 5, None, [], {"a": 1},
                                           nb.optimizers.SGD(0.1)]), label="optimizer")
    loss = data.draw(st.sampled_from(["mse", "MAE", "binary_crossentropy", "nope", 5, None, ["mse"], {"a": 1},
                                      nb.losses.MeanSquaredError(), lambda t, p: (p - t) * (p - t)]), label="loss")
    metrics = data.draw(st.sampled_from([None, "mse", ["accuracy"], ["mae", "mse"], ["nope"], [None], 5,
                                         {"a": "mse"}, [["mse"]]]), label="metrics")
    ok, _ = attempt(lambda: model.compile(optimizer=optimizer, loss=loss, metrics=metrics),
                    [model.name, "optimizer", "loss", "metric"], model)
    event("compile returned" if ok else "compile raised")
    if ok:
        x = np.random.default_rng(0).uniform(-1, 1, (6, 4))
        hist = model.fit(x, x[:, :1], batch_size=3, epochs=1, verbose=0)
        assert np.isfinite(hist.history["loss"][0])


@st.composite
def random_stack(draw):
    """A random valid Sequential (as (class, kwargs) pairs) and the per-sample input shape it reads."""
    kind = draw(st.sampled_from(["image", "sequence", "ids", "vector"]))
    specs = []
    if kind == "image":
        shape = (draw(st.integers(3, 6)), draw(st.integers(3, 6)), draw(st.integers(1, 2)))
        for _ in range(draw(st.integers(1, 2))):
            cls = draw(st.sampled_from([L.Conv2D, L.Conv2DTranspose, L.MaxPooling2D, L.UpSampling2D]))
            kw = {}
            if cls in (L.Conv2D, L.Conv2DTranspose):
                kw = {"filters": draw(SMALL), "kernel_size": draw(st.integers(1, 3)), "strides": draw(st.integers(1, 2)),
                      "padding": draw(st.sampled_from(["valid", "same"])), "activation": draw(ACTIVATION)}
            elif cls is L.MaxPooling2D:
                kw = {"pool_size": draw(st.integers(1, 2)), "padding": draw(st.sampled_from(["valid", "same"]))}
            specs.append((cls, kw))
        specs.append((L.Flatten, {}))
    elif kind == "sequence":
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 3)))
        specs.append((L.SimpleRNN, {"units": draw(SMALL), "return_sequences": draw(BOOL)}))
    elif kind == "ids":
        shape = (draw(st.integers(1, 4)),)
        specs.append((L.Embedding, {"input_dim": draw(st.integers(2, 6)), "output_dim": draw(SMALL)}))
        specs.append((L.SimpleRNN, {"units": draw(SMALL)}))
    else:
        shape = (draw(st.integers(1, 4)),)
        if draw(BOOL):
            specs.append((L.Dropout, {"rate": 0.5}))
    specs.append((L.Dense, {"units": draw(SMALL), "activation": draw(ACTIVATION)}))
    return kind, shape, specs


@fuzz(300)
@given(data=st.data())
def test_random_stack_predict_and_fit(warm, data):
    kind, shape, specs = data.draw(random_stack(), label="stack")
    declare = data.draw(BOOL, label="input_shape given")
    nb.utils.set_random_seed(0)
    made = [cls(**kw) for cls, kw in specs]
    if declare:
        made[0] = specs[0][0](**specs[0][1], input_shape=shape)
    names = [layer.name for layer in made] + [cls.__name__ for cls, _ in specs] + ["x", "y"]
    ok, model = attempt(lambda: nb.Sequential(made), names)
    if not ok:
        event("stack rejected at build")
        return
    names.append(model.name)
    model.compile("sgd", "mse")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    n = data.draw(st.integers(1, 6), label="n")
    if kind == "ids":
        x = rng.integers(0, specs[0][1]["input_dim"], (n,) + shape)
    else:
        x = rng.uniform(-1, 1, (n,) + shape).astype(data.draw(st.sampled_from(["float32", "float64", "float16"])))
    want = (n,) + shape
    for cls, kw in specs:  # the shape each layer's docstring formula gives
        want = expected_shape(None, cls, kw, want)
    ok, out = attempt(lambda: model.predict(x, batch_size=4), names, model if model.built else None)
    event(f"predict {'returned' if ok else 'raised'}")
    if not ok:
        return
    assert out.shape == want and np.all(np.isfinite(out)), (specs, out.shape, want)
    y = data.draw(perturbed(rng, rng.uniform(-1, 1, want)), label="y")
    ok, hist = attempt(lambda: model.fit(x, y, batch_size=4, epochs=1, verbose=0), names, model)
    event(f"fit {'returned' if ok else 'raised'}")
    if ok:
        assert np.isfinite(hist.history["loss"][0])


def test_1d_x_into_an_undeclared_dense_names_the_data():
    model = nb.Sequential([L.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError) as info:
        model.fit(np.arange(80.0), np.arange(80.0), batch_size=20, verbose=0)
    msg = str(info.value)
    assert "(80,)" in msg and "x.reshape(-1, 1)" in msg and "(20,)" not in msg, msg
    assert not model.built  # nothing was built from the rejected data


def test_grey_images_without_a_channel_axis_get_the_fix():
    model = nb.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError) as info:
        model.fit(np.zeros((4, 6, 6)), np.zeros((4, 1)), verbose=0)
    msg = str(info.value)
    assert "(4, 6, 6)" in msg and "x[..., np.newaxis]" in msg and "(4, 6, 6, 1)" in msg, msg
