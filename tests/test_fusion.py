"""The fusion pass (numbanet/models/fusion.py): Conv2D -> MaxPooling2D pairs of a model as one node.

What is compared: one model, the same weights, its loss and every weight's gradient
computed three ways at each of a few SGD steps: fast tier with fusion (the pairs as
``Conv2DReluMaxPool``), fast tier without it (the layers one by one), and the
reference tier (which never fuses). After each comparison the weights take an SGD
step with the reference tier's gradient, so every step compares the three on the
same weights and the comparison never drifts.

Tolerance, from the rounding bounds of ``tests/bounds.py``: each way computes every
sum in its own order (Winograd, im2col, flipped or direct routes; chunks; threads),
so each result differs from the exact one by at most ``SAFETY * K * eps * sum|terms|``
per operation, K the longest inner sum (here a 3x3 convolution over 8 channels,
K = 72, or the Dense over the flattened map, K <= 128). Through the D <= 6 layers of
these models each relative error adds to the next, scaled by the layer's condition
number (``sum|terms| / |value|``). Normwise (max |difference| over max |value| of each
gradient) that is about ``D * SAFETY * K * eps * cond``; ``REL = 4096 * eps`` leaves a
conditioning factor above 3 over ``D * SAFETY * K = 6 * 2 * 128 = 1536``, which these
small well-scaled models (He-scaled kernels, inputs in [0, 1)) meet, in float32 and in
float64. A real disagreement (a mis-routed arg-max, a lost relu mask, a wrong window
at an odd edge) moves a gradient by the size of one of its terms: 1e-2 and more here.

A relu or max-pool decision could flip between two ways only where a value lies
within rounding of 0 or of a tie; the inputs are continuous random draws, so no
value does.
"""
import numpy as np
import pytest

import numbanet as nb
from numbanet.engine import Tensor
from numbanet.fast import routes
from numbanet.fast.kernels.conv_pool import pooled_relu_backward_into
from numbanet.fast.kernels.pooling import arg_dtype, max_pool_forward_into
from numbanet.models import fusion

from bounds import SAFETY, assert_within

L = nb.layers
REL_EPS = 4096   # see the module docstring: D * SAFETY * K = 1536 times a conditioning factor


def ops_of(t):
    """The Function class names of the graph that made Tensor t, each node once."""
    seen, names, stack = set(), [], [t]
    while stack:
        u = stack.pop()
        fn = getattr(u, "creator", None)
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        names.append(type(fn).__name__)
        stack.extend(x for x in fn.inputs if x is not None)
    return names


def loss_and_grads(model, x, y):
    """(loss value, [gradient of each trainable weight]) of one forward + backward in training mode."""
    for w in model.trainable_weights:
        w.grad = None
    loss = model.compute_loss(y, model(x, training=True))
    loss.backward()
    return float(loss.data), [np.array(w.grad) for w in model.trainable_weights], ops_of(loss)


def assert_close(got, ref, dtype, what):
    eps = np.finfo(dtype).eps
    scale = max(float(np.max(np.abs(ref))), np.finfo(dtype).tiny)
    assert_within(got, ref, REL_EPS * eps * scale, what)


# ------------------------------------------------------------------ models with the pattern
def w2_like(dtype):
    """W2's two Conv2D(relu) -> MaxPooling2D(2) blocks, valid, an odd map (13 -> 11 -> pool drops a row)."""
    return nb.Sequential([L.Input((15, 15, 1)), L.Conv2D(6, 3, activation="relu", dtype=dtype),
                          L.MaxPooling2D(2, dtype=dtype), L.Conv2D(8, 3, activation="relu", dtype=dtype),
                          L.MaxPooling2D(2, dtype=dtype), L.Flatten(dtype=dtype), L.Dense(5, dtype=dtype)],
                         name="w2_like")


def w3_like(dtype):
    """W3's encoder: same convolutions, same pools on odd sizes (9 -> 5 -> 3: the pool pads)."""
    return nb.Sequential([L.Input((9, 9, 1)), L.Conv2D(8, 3, activation="relu", padding="same", dtype=dtype),
                          L.MaxPooling2D(2, padding="same", dtype=dtype),
                          L.Conv2D(4, 3, activation="relu", padding="same", dtype=dtype),
                          L.MaxPooling2D(2, padding="same", dtype=dtype),
                          L.Conv2D(2, 3, activation="relu", padding="same", dtype=dtype),
                          L.UpSampling2D(3, dtype=dtype), L.Flatten(dtype=dtype), L.Dense(3, dtype=dtype)],
                         name="w3_like")


def w4_like(dtype):
    """W4's encoder feeding a transposed decoder: valid convolutions, valid pools, 16 -> 8 channels."""
    return nb.Sequential([L.Input((12, 12, 2)), L.Conv2D(16, 3, activation="relu", dtype=dtype),
                          L.MaxPooling2D(2, dtype=dtype), L.Conv2D(8, 2, activation="relu", dtype=dtype),
                          L.MaxPooling2D(2, dtype=dtype),
                          L.Conv2DTranspose(4, 3, activation="relu", dtype=dtype), L.Flatten(dtype=dtype),
                          L.Dense(3, dtype=dtype)], name="w4_like")


def general_pools(dtype):
    """A linear Conv2D (no activation) and a strided one; overlapping pools (3, stride 2) and a 3x2 pool."""
    return nb.Sequential([L.Input((11, 10, 3)), L.Conv2D(5, 3, dtype=dtype),
                          L.MaxPooling2D(3, strides=2, dtype=dtype),
                          L.Conv2D(6, 2, strides=(1, 2), activation="relu", padding="same", dtype=dtype),
                          L.MaxPooling2D((3, 2), padding="same", dtype=dtype), L.Flatten(dtype=dtype),
                          L.Dense(4, dtype=dtype)], name="general_pools")


def functional_branches(dtype):
    """A functional model of one input and two outputs, each branch holding a pair."""
    inp = nb.Input((10, 10, 2), dtype=dtype)
    a = L.MaxPooling2D(2, dtype=dtype)(L.Conv2D(4, 3, activation="relu", dtype=dtype)(inp))
    b = L.MaxPooling2D(2, padding="same", dtype=dtype)(L.Conv2D(4, 3, padding="same", dtype=dtype)(inp))
    return nb.Model(inp, [L.Dense(3, dtype=dtype)(L.Flatten(dtype=dtype)(a)),
                          L.Dense(2, dtype=dtype)(L.Flatten(dtype=dtype)(b))], name="functional_branches")


MODELS = {"w2_like": (w2_like, 2), "w3_like": (w3_like, 2), "w4_like": (w4_like, 2),
          "general_pools": (general_pools, 2)}


def data(model, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = model.input_shape[1:]
    x = rng.random((6,) + tuple(shape)).astype(dtype)
    y = rng.integers(0, model.output_shape[-1], 6)
    return x, y


def compiled(build, dtype):
    model = build(dtype)
    model.compile(optimizer="sgd", loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))
    for w in model.weights:                   # He-scaled kernels and nonzero biases: every relu both ways
        rng = np.random.default_rng(len(w.name) + w.size)
        if w.ndim > 1:
            fan_in = int(np.prod(w.shape[:-1]))
            w.data = (rng.standard_normal(w.shape) * np.sqrt(2 / fan_in)).astype(dtype)
        else:
            w.data = (rng.standard_normal(w.shape) * 0.1).astype(dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_model_matches_unfused_and_reference_over_sgd_steps(name, dtype):
    build, pairs = MODELS[name]
    model = compiled(build, dtype)
    x, y = data(model, dtype, 0)
    for step in range(3):
        with nb.kernels("fast"), nb.fusion(True):
            loss_f, grads_f, ops_f = loss_and_grads(model, x, y)
        with nb.kernels("fast"), nb.fusion(False):
            loss_u, grads_u, ops_u = loss_and_grads(model, x, y)
        with nb.kernels("reference"), nb.fusion(True):
            loss_r, grads_r, ops_r = loss_and_grads(model, x, y)
        assert ops_f.count("Conv2DReluMaxPool") == pairs, ops_f
        assert "Conv2DReluMaxPool" not in ops_u + ops_r
        assert ops_f.count("Conv2D") == ops_u.count("Conv2D") - pairs
        for ref, what in ((loss_u, "fast unfused"), (loss_r, "reference")):
            assert_close(np.array(loss_f), np.array(ref), dtype, f"{name} step {step}: loss, fused vs {what}")
        for w, gf, gu, gr in zip(model.trainable_weights, grads_f, grads_u, grads_r):
            assert_close(gf, gu, dtype, f"{name} step {step}: d loss / d {w.name}, fused vs fast unfused")
            assert_close(gf, gr, dtype, f"{name} step {step}: d loss / d {w.name}, fused vs reference")
            assert np.any(gr != 0), f"{w.name}: a zero gradient would check nothing"
        for w, g in zip(model.trainable_weights, grads_r):     # the same SGD step for all three
            w.data = (w.data - 0.05 * g).astype(dtype)


def test_functional_model_fuses_each_branch():
    """Both branches fused; the scalar sum(c1 * y1) + sum(c2 * y2) and its gradients as the reference tier's."""
    model = functional_branches(np.float64)
    rng = np.random.default_rng(1)
    x = rng.random((4, 10, 10, 2))
    cs = [rng.standard_normal((4, 3)), rng.standard_normal((4, 2))]

    def run():
        for w in model.trainable_weights:
            w.grad = None
        y1, y2 = model(x, training=True)
        out = (y1 * Tensor(cs[0])).sum() + (y2 * Tensor(cs[1])).sum()
        out.backward()
        return float(out.data), [np.array(w.grad) for w in model.trainable_weights], ops_of(out)

    with nb.fusion(True):
        out_f, grads_f, ops_f = run()
    with nb.kernels("reference"):
        out_r, grads_r, _ = run()
    assert ops_f.count("Conv2DReluMaxPool") == 2, ops_f
    assert_close(np.array(out_f), np.array(out_r), np.float64, "output")
    for w, gf, gr in zip(model.trainable_weights, grads_f, grads_r):
        assert_close(gf, gr, np.float64, f"d out / d {w.name}")


def test_training_with_fit_gives_the_reference_losses():
    """fit() (the optimizer's own step) with fusion, against the reference tier, float64, 3 epochs."""
    histories = []
    for tier in ("fast", "reference"):
        model = compiled(w2_like, np.float64)
        x, y = data(model, np.float64, 2)
        with nb.kernels(tier):
            histories.append(model.fit(x, y, batch_size=3, epochs=3, shuffle=False, verbose=0).history["loss"])
    assert_close(np.array(histories[0]), np.array(histories[1]), np.float64, "per-epoch losses")


# ------------------------------------------------------------------ where fusion must not happen
def fused_count(model, x):
    with nb.kernels("fast"), nb.fusion(True):
        y = model(x, training=True)
    ys = y if isinstance(y, list) else [y]
    return sum(ops_of(t).count("Conv2DReluMaxPool") for t in ys)


def x_of(shape, seed=3):
    return np.random.default_rng(seed).random((2,) + shape).astype(np.float32)


def test_multi_consumer_conv_output_is_not_fused():
    inp = nb.Input((8, 8, 1))
    c = L.Conv2D(3, 3, activation="relu")(inp)
    p = L.MaxPooling2D(2)(c)
    side = L.Flatten()(c)                                      # the conv output read twice
    model = nb.Model(inp, [L.Flatten()(p), side])
    assert fused_count(model, x_of((8, 8, 1))) == 0


def test_feature_extractor_keeps_every_output():
    seq = nb.Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                         L.Dense(2)])
    assert fused_count(seq, x_of((8, 8, 1))) == 1
    extractor = nb.Model(seq.inputs, [layer.output for layer in seq.layers])
    x = x_of((8, 8, 1))
    assert fused_count(extractor, x) == 0
    outs = extractor(x)
    with nb.fusion(False):
        direct = seq.layers[1](seq.layers[0](x))
    np.testing.assert_array_equal(outs[1].numpy(), direct.numpy())   # the same two layers, the same calls


def test_conv_output_as_a_model_output_is_not_fused():
    inp = nb.Input((8, 8, 1))
    c = L.Conv2D(3, 3, activation="relu")(inp)
    model = nb.Model(inp, [c, L.MaxPooling2D(2)(c)])
    assert fused_count(model, x_of((8, 8, 1))) == 0


@pytest.mark.parametrize("layers", [
    [L.Conv2D(3, 3, activation="sigmoid"), L.MaxPooling2D(2)],                  # an activation it does not fuse
    [L.Conv2D(3, 3, activation="relu"), L.AveragePooling2D(2)],                # not a max pool
    [L.Conv2D(3, 3, activation="relu"), L.Dropout(0.5), L.MaxPooling2D(2)],    # something in between
    [L.Conv2D(3, 3, activation="relu", activity_regularizer="l2"), L.MaxPooling2D(2)],
    [L.Conv2DTranspose(3, 3, activation="relu"), L.MaxPooling2D(2)],
], ids=["sigmoid", "avgpool", "dropout-between", "activity-regularizer", "transpose"])
def test_pairs_that_are_not_fused(layers):
    model = nb.Sequential([L.Input((8, 8, 1))] + layers + [L.Flatten()])
    assert fused_count(model, x_of((8, 8, 1))) == 0


def test_layers_called_one_by_one_and_subclassed_models_are_not_fused():
    conv, pool = L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2)
    x = Tensor(x_of((8, 8, 1)), requires_grad=True)
    assert ops_of(pool(conv(x))).count("Conv2DReluMaxPool") == 0

    class Net(nb.Model):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2)

        def call(self, x):
            return self.pool(self.conv(x))

    assert fused_count(Net(), x_of((8, 8, 1))) == 0


def test_switch_and_reference_tier_turn_it_off():
    model = nb.Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2)])
    x = x_of((8, 8, 1))
    assert fused_count(model, x) == 1
    previous = nb.set_fusion(False)
    try:
        assert previous is True and nb.get_fusion() is False
        with nb.kernels("fast"):
            assert ops_of(model(x, training=True)).count("Conv2DReluMaxPool") == 0
    finally:
        nb.set_fusion(previous)
    with nb.kernels("reference"):
        assert ops_of(model(x, training=True)).count("Conv2DReluMaxPool") == 0
    with pytest.raises(TypeError, match="set_fusion: on must be True or False"):
        nb.set_fusion("no")


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(fusion.ENV_VAR, "0")
    assert fusion._default() is False
    monkeypatch.setenv(fusion.ENV_VAR, "1")
    assert fusion._default() is True
    monkeypatch.setenv(fusion.ENV_VAR, "yes")
    with pytest.raises(ValueError, match="NUMBANET_FUSION must be 0"):
        fusion._default()


def test_model_api_unchanged_by_fusion():
    """layers, get_layer, weights, summary, layer.output and saved weights are the layers', with fusion on."""
    model = nb.Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu", name="c"),
                           L.MaxPooling2D(2, name="p"), L.Flatten(), L.Dense(2)])
    x = x_of((8, 8, 1))
    lines = []
    model.summary(print_fn=lines.append)
    y_on = model(x).numpy()
    with nb.fusion(False):
        y_off = model(x).numpy()
    after = []
    model.summary(print_fn=after.append)
    assert lines == after
    assert [layer.name for layer in model.layers][:2] == ["c", "p"] and len(model.layers) == 4
    assert model.get_layer("c").output.shape == (None, 6, 6, 3)
    assert model.get_layer("p").input is model.get_layer("c").output
    assert len(model.weights) == 4
    np.testing.assert_allclose(y_on, y_off, rtol=0, atol=REL_EPS * np.finfo(np.float32).eps * np.abs(y_off).max())


def test_bad_input_names_the_layer():
    model = nb.Sequential([L.Input((8, 8, 1)), L.Conv2D(3, 3, activation="relu", name="c"), L.MaxPooling2D(2)])
    with pytest.raises(ValueError, match="sequential|expected"):
        model(np.zeros((2, 8, 8, 2), np.float32))
    inp = nb.Input((None, None, 1))
    model = nb.Model(inp, L.MaxPooling2D(4, name="big_pool")(L.Conv2D(3, 3, activation="relu", name="c2")(inp)))
    with pytest.raises(ValueError, match="big_pool"):              # the pool's own message: 3x3 map, 4x4 pool
        model(np.zeros((1, 5, 5, 1), np.float32))


def test_trace_shows_the_fused_node_and_its_route():
    model = compiled(w2_like, np.float32)
    x, y = data(model, np.float32, 4)
    rows = model.trace(x, y).rows()
    fused = [r for r in rows if r["op"] == "Conv2DReluMaxPool"]
    assert len(fused) == 4                                     # two pairs, forward and backward
    assert fused[0]["layer"] == f"{model.layers[0].name}+{model.layers[1].name}"
    assert all("conv+relu+maxpool, fused" in r["route"] for r in fused)
    assert routes.last("conv2d_relu_maxpool_backward").startswith("conv+relu+maxpool, fused: gz from gp")
    with nb.fusion(False):
        rows_off = model.trace(x, y).rows("forward")
    pairs = [r for r in rows_off if r["op"] in ("Conv2D", "MaxPool2D")]
    for k in range(2):      # the fused node's FLOPs and geometry: its convolution's and pool's rows added
        conv_row, pool_row = pairs[2 * k], pairs[2 * k + 1]
        assert fused[k]["flops"] == conv_row["flops"] + pool_row["flops"]
        assert (fused[k]["padding"], fused[k]["strides"]) == (conv_row["padding"], conv_row["strides"])
        assert fused[k]["output"] == pool_row["output"]


# ------------------------------------------------------------------ the backward kernel
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("pool,strides,pads,hw", [
    ((2, 2), (2, 2), (0, 0, 0, 0), (7, 6)),       # valid: the last row is dropped
    ((2, 2), (2, 2), (0, 1, 0, 1), (7, 7)),       # same on an odd map: the last window is cut
    ((3, 3), (2, 2), (0, 0, 0, 0), (9, 8)),       # overlapping windows
    ((3, 2), (3, 2), (1, 1, 0, 0), (7, 6)),       # padding on top: the scatter route
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooled_backward_kernel_against_plain_numpy(relu, pool, strides, pads, hw, dtype):
    rng = np.random.default_rng(5)
    N, F = 3, 4
    (H, W), (KH, KW), (SH, SW) = hw, pool, strides
    PT, PB, PL, PR = pads
    OH, OW = (H + PT + PB - KH) // SH + 1, (W + PL + PR - KW) // SW + 1
    y = rng.standard_normal((N, H, W, F)).astype(dtype)
    p = np.empty((N, OH, OW, F), dtype)
    arg = np.empty((N, OH, OW, F), arg_dtype(KH, KW))
    max_pool_forward_into(y, KH, KW, SH, SW, PT, PL, p, arg)
    gp = rng.standard_normal((N, OH, OW, F)).astype(dtype)
    gz = np.full((N, H, W, F), np.nan, dtype)
    pooled_relu_backward_into(gp, p, arg, KH, KW, SH, SW, PT, PL, relu, gz)
    expected = np.zeros((N, H, W, F))                         # plain loops, the window's first maximum by argmax
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                h0, w0 = oh * SH - PT, ow * SW - PL
                hs, ws = slice(max(h0, 0), min(h0 + KH, H)), slice(max(w0, 0), min(w0 + KW, W))
                for f in range(F):
                    win = y[n, hs, ws, f]
                    i, j = np.unravel_index(np.argmax(win), win.shape)   # np.argmax: the first maximum
                    assert win[i, j] == p[n, oh, ow, f]
                    if not relu or win[i, j] > 0:
                        expected[n, hs.start + i, ws.start + j, f] += gp[n, oh, ow, f]
    assert not np.isnan(gz).any()
    n_terms = -(-KH // SH) * -(-KW // SW)                     # windows that can share a cell
    bound = SAFETY * n_terms * np.finfo(dtype).eps * np.abs(gp).max() * n_terms
    assert_within(gz, expected, bound, "gz")
    assert np.count_nonzero(gz) > 0


def test_a_sequential_built_by_its_first_batch_fuses_from_the_next_call():
    model = nb.Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten()])
    x = x_of((8, 8, 1))
    assert fused_count(model, x) == 0                          # the first call builds the layers one by one
    assert fused_count(model, x) == 1
    with nb.fusion(False):
        expected = model(x).numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=0,
                               atol=REL_EPS * np.finfo(np.float32).eps * np.abs(expected).max())
