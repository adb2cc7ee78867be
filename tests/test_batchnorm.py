"""BatchNormalization: the two tiers against each other and against plain NumPy, finite-difference
gradients (Hypothesis over shapes, axes and arguments), the moving statistics, the training mode
that fit / evaluate / predict / model(x) choose, non-trainable weights, and bad input.

Keras parity is in test_batchnorm_keras.py.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanet as nb
from numbanet import Tensor
from numbanet.engine import functional as F
from numbanet.fast import tier as fast_tier
from numbanet.layers import BatchNormalization, Dense
from numbanet.reference import tier as reference_tier

from bounds import SAFETY, assert_within
from grad_helpers import GRAD_SETTINGS, assert_grad, draw_values

# ------------------------------------------------------------------ plain NumPy, written here
def numpy_bn(x, gamma, beta, eps):
    """(y, mean, var, xhat) over the rows of x (M, C), straight from the definition."""
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma * xhat + beta, mean, var, xhat


def numpy_bn_grads(gy, x, gamma, eps):
    """(gx, ggamma, gbeta) by the textbook closed form, for the test's own check."""
    M = x.shape[0]
    _, _, var, xhat = numpy_bn(x, gamma, 0.0, eps)
    sg, sgx = gy.sum(axis=0), (gy * xhat).sum(axis=0)
    gx = gamma / (M * np.sqrt(var + eps)) * (M * gy - sg - xhat * sgx)
    return gx, sgx, sg


def bn_bounds(x, gamma, beta, gy, eps_bn, u):
    """Rounding bounds on |y1 - y2| and |gx1 - gx2| for two computations of batch norm, (M, C) each.

    Each result is built from a few sums of M terms (the mean, the variance, sum gy,
    sum gy xhat) and a few elementwise operations; a sum of n terms is off by at most
    n u sum|terms| (bounds.py), and the statistics' errors reach y through xhat, scaled by
    mean|x| / sigma (the mean's error is M u mean|x|). So every element is within
    SAFETY (2M + 16) u times its magnitude:
        y:  |gamma| (|x - mean| + mean|x|) / sigma + |beta|
        gx: |gamma| / (M sigma) (M |gy| + sum|gy| + a sum(|gy| a)),  a = (|x - mean| + mean|x|) / sigma
    (2M: the two passes over the rows; 16: the elementwise steps). Both sides err: times 2.
    """
    M = x.shape[0]
    mean, sigma = x.mean(axis=0), np.sqrt(x.var(axis=0) + eps_bn)
    a = (np.abs(x - mean) + np.abs(x).mean(axis=0)) / sigma                 # (M, C)
    scale = 2 * SAFETY * (2 * M + 16) * u
    y_mag = np.abs(gamma) * a + np.abs(beta)
    g_mag = np.abs(gamma) / (M * sigma) * (M * np.abs(gy) + np.abs(gy).sum(axis=0) + a * (np.abs(gy) * a).sum(axis=0))
    return scale * y_mag, scale * g_mag


# ------------------------------------------------------------------ the two tiers, array level
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("M, C, affine", [(1, 3, True), (2, 1, True), (7, 5, False), (64, 16, True),
                                          (300, 3, True)])
def test_tiers_match_each_other_and_numpy(dtype, M, C, affine):
    rng = np.random.default_rng(M * 31 + C)
    x = (rng.standard_normal((M, C)) * rng.uniform(0.5, 3, C) + rng.uniform(-2, 2, C)).astype(dtype)
    gamma = rng.uniform(0.5, 2, C).astype(dtype) if affine else None
    beta = rng.standard_normal(C).astype(dtype) if affine else None
    gy = rng.standard_normal((M, C)).astype(dtype)
    eps_bn = 1e-3
    g64 = np.ones(C) if gamma is None else gamma.astype(np.float64)
    b64 = np.zeros(C) if beta is None else beta.astype(np.float64)
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    y_np, mean_np, var_np, _ = numpy_bn(x64, g64, b64, eps_bn)
    gx_np, gg_np, gb_np = numpy_bn_grads(gy64, x64, g64, eps_bn)
    y_bound, g_bound = bn_bounds(x64, g64, b64, gy64, eps_bn, np.finfo(dtype).eps)
    s_bound = y_bound.max(axis=0) * np.sqrt(var_np + eps_bn)              # the statistics, in x's units
    for tier in (reference_tier, fast_tier):
        name = tier.__name__
        y, mean, var = tier.batch_norm_forward(x, gamma, beta, eps_bn)
        assert y.dtype == mean.dtype == var.dtype == dtype and y.shape == (M, C), name
        assert_within(y, y_np, y_bound, f"{name} y")
        assert_within(mean, mean_np, s_bound, f"{name} mean")
        assert_within(var, var_np, s_bound * 2 * np.abs(x64 - mean_np).max(axis=0) + s_bound ** 2, f"{name} var")
        gx, gg, gb = tier.batch_norm_backward(gy, x, mean, var, gamma, eps_bn, True)
        assert gx.dtype == dtype and gx.shape == (M, C), name
        assert_within(gx, gx_np, g_bound, f"{name} gx")
        n_bound = 2 * SAFETY * (M + 8) * np.finfo(dtype).eps
        assert_within(gb, gb_np, n_bound * np.abs(gy64).sum(axis=0), f"{name} gbeta")
        assert_within(gg, gg_np, n_bound * 8 * (np.abs(gy64) * np.abs(x64).max(axis=0) / np.sqrt(var_np + eps_bn)
                                                ).sum(axis=0), f"{name} ggamma")
        assert tier.batch_norm_backward(gy, x, mean, var, gamma, eps_bn, False)[0] is None, name


def test_reference_backward_is_the_step_by_step_chain():
    """The reference tier's backward names each intermediate's gradient; the sum of its steps is gx."""
    import inspect
    from numbanet.reference import normalization
    src = inspect.getsource(normalization.batch_norm_backward)
    for step in ("gbeta =", "ggamma =", "gxhat =", "ginv =", "gxc =", "gstd =", "gvar =", "gsq =", "gmu =", "gx ="):
        assert step in src, step
    src_fast = inspect.getsource(__import__("numbanet.fast.kernels.normalization", fromlist=["x"]).batch_norm_grads)
    assert "gstd" not in src_fast and "M * gy[m, c] - sg[c] - xhat * sgx[c]" in src_fast


def test_a_constant_channel_normalizes_to_beta():
    """var = 0 on a channel: y = beta there (epsilon keeps the division finite), gx = 0 where gamma/sigma * 0."""
    x = np.array([[2.0, 1.0], [2.0, 3.0], [2.0, 5.0]])
    for tier in (reference_tier, fast_tier):
        y, mean, var = tier.batch_norm_forward(x, np.array([1.5, 1.0]), np.array([0.25, 0.0]), 1e-3)
        np.testing.assert_array_equal(y[:, 0], [0.25, 0.25, 0.25])
        assert mean[0] == 2.0 and var[0] == 0.0
        gx, _, _ = tier.batch_norm_backward(np.ones((3, 2)), x, mean, var, np.array([1.5, 1.0]), 1e-3)
        np.testing.assert_allclose(gx, 0.0, atol=1e-12)   # sum(gx) = 0 per channel, and gy is constant


# ------------------------------------------------------------------ finite differences (Hypothesis)
@st.composite
def bn_cases(draw):
    """(shape, axis, center, scale, epsilon): Dense (N, C), sequences (N, T, C), maps (N, H, W, C)."""
    rank = draw(st.sampled_from([2, 3, 4]))
    shape = tuple(draw(st.integers(1 if i else 2, 4)) for i in range(rank))
    if rank > 2 and shape[0] == 1:
        shape = (2,) + shape[1:]
    axis = draw(st.sampled_from([a for a in range(1, rank)] + [-1]))
    return shape, axis, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from([1e-3, 0.1]))


@pytest.mark.usefixtures("tier")
@given(data=st.data(), case=bn_cases())
@GRAD_SETTINGS
def test_training_mode_gradients_match_finite_differences(data, case):
    shape, axis, center, scale, eps_bn = case
    C = shape[axis]
    x = draw_values(data, shape, -2.0, 2.0)
    params = []
    if scale:
        params.append(draw_values(data, (C,), 0.5, 2.0, signed=True))
    if center:
        params.append(draw_values(data, (C,), -1.0, 1.0))

    def fn(xt, *ps):
        gamma = ps[0] if scale else None
        beta = ps[-1] if center else None
        return F.batch_norm(xt, gamma, beta, axis, eps_bn)[0]

    with nb.no_grad():
        y = fn(Tensor(x), *[Tensor(p) for p in params])
    gy = draw_values(data, y.shape, -1.0, 1.0)
    assert_grad(fn, x, *params, grad_output=gy, label=f"batch_norm {shape} axis={axis}")


@pytest.mark.usefixtures("tier")
@given(data=st.data(), case=bn_cases())
@GRAD_SETTINGS
def test_inference_mode_gradients_match_finite_differences(data, case):
    shape, axis, center, scale, eps_bn = case
    C = shape[axis]
    x = draw_values(data, shape, -2.0, 2.0)
    mean, var = draw_values(data, (C,), -1.0, 1.0), draw_values(data, (C,), 0.2, 3.0)
    gamma, beta = draw_values(data, (C,), 0.5, 2.0, signed=True), draw_values(data, (C,), -1.0, 1.0)

    def fn(xt, g, b):
        return F.batch_normalization(xt, Tensor(mean), Tensor(var), axis, b if center else None,
                                     g if scale else None, eps_bn)

    with nb.no_grad():
        y = fn(Tensor(x), Tensor(gamma), Tensor(beta))
    # the same affine map, written out in NumPy
    bshape = [1] * len(shape)
    bshape[axis] = C
    r = lambda v: v.reshape(bshape)                                          # noqa: E731
    expected = (x - r(mean)) / np.sqrt(r(var) + eps_bn) * (r(gamma) if scale else 1) + (r(beta) if center else 0)
    np.testing.assert_allclose(y.data, expected, rtol=1e-14, atol=1e-14)
    gy = draw_values(data, y.shape, -1.0, 1.0)
    assert_grad(fn, x, gamma, beta, grad_output=gy, label=f"batch_normalization {shape} axis={axis}")


@pytest.mark.usefixtures("tier")
@pytest.mark.parametrize("shape, axis", [((6, 3), -1), ((2, 3, 4, 5), -1), ((2, 3, 4, 5), 1), ((3, 4, 2), 1)])
def test_layer_training_output_is_the_normalization_along_axis(shape, axis):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 2 + 1
    bn = BatchNormalization(axis=axis, dtype="float64")
    bn(x)                                                    # build: gamma 1, beta 0
    C = shape[axis]
    gamma, beta = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    bn.set_weights([gamma, beta, np.zeros(C), np.ones(C)])
    y = bn(x, training=True).data
    xm = np.moveaxis(x, axis, -1).reshape(-1, C)             # the channel's values, (M, C)
    y_np = numpy_bn(xm, gamma, beta, 1e-3)[0]
    np.testing.assert_allclose(np.moveaxis(y, axis, -1).reshape(-1, C), y_np, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ moving statistics and the mode
def _dense_bn_model(momentum=0.9, seed=0):
    nb.utils.set_random_seed(seed)
    model = nb.Sequential([nb.Input((4,)), Dense(5, dtype="float64"),
                           BatchNormalization(momentum=momentum, dtype="float64"), Dense(2, dtype="float64")],
                          dtype="float64")
    return model


def test_moving_statistics_follow_keras_rule_over_several_calls():
    rng = np.random.default_rng(2)
    bn = BatchNormalization(momentum=0.8, dtype="float64")
    mm, mv = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rng.standard_normal((10, 3)) * (step + 1) + step
        bn(x, training=True)
        mm = mm * 0.8 + x.mean(axis=0) * (1 - 0.8)
        mv = mv * 0.8 + x.var(axis=0) * (1 - 0.8)            # biased variance, as Keras
        np.testing.assert_allclose(bn.moving_mean.data, mm, rtol=1e-13)
        np.testing.assert_allclose(bn.moving_variance.data, mv, rtol=1e-13)
    # inference: the moving statistics, and nothing changes
    x = rng.standard_normal((5, 3))
    y = bn(x).data
    np.testing.assert_allclose(y, (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(bn.moving_mean.data, mm)


def test_fit_trains_in_training_mode_and_predict_evaluate_call_do_not():
    model = _dense_bn_model()
    model.compile(optimizer=nb.optimizers.SGD(0.1), loss="mse")
    bn = model.layers[1]
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 2))
    before = [w.copy() for w in bn.get_weights()]
    for call in (lambda: model.predict(x, verbose=0), lambda: model.evaluate(x, y, verbose=0), lambda: model(x)):
        call()
        for a, b in zip(bn.get_weights(), before):
            np.testing.assert_array_equal(a, b)
    # model(x, training=True): batch statistics, moving ones updated from this batch
    h = model.layers[0](x).data
    out = model(x, training=True).data
    np.testing.assert_allclose(bn.moving_mean.data, 0.1 * h.mean(axis=0), rtol=1e-12)
    hn = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-3)
    np.testing.assert_allclose(out, model.layers[2](hn).data, rtol=1e-12, atol=1e-12)
    # fit: training mode on every batch: 2 batches -> the moving mean moves twice more
    moved = bn.moving_mean.data.copy()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(bn.moving_mean.data, moved)
    assert not np.allclose(bn.gamma.data, 1.0)               # the optimizer moved gamma


def test_optimizer_never_updates_the_moving_statistics():
    """One fit step: the moving statistics are exactly Keras's average of the batch's, untouched by SGD."""
    model = _dense_bn_model(momentum=0.5)
    model.compile(optimizer=nb.optimizers.SGD(0.5), loss="mse")
    bn = model.layers[1]
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    h = model.layers[0](x).data                             # the BN input of the only step
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.data, 0.5 * h.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.moving_variance.data, 0.5 + 0.5 * h.var(axis=0), rtol=1e-12)
    assert bn.moving_mean.grad is None and bn.moving_variance.grad is None
    assert all(w in model.trainable_weights for w in (bn.gamma, bn.beta))


def test_subclassed_model_passes_its_mode_to_layers_it_calls_without_training():
    class Net(nb.Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(3, dtype="float64")
            self.bn = BatchNormalization(dtype="float64")

        def call(self, x):                                   # no training argument, as users write it
            return self.bn(self.dense(x))

    net = Net()
    x = np.random.default_rng(5).standard_normal((6, 2))
    net(x)
    assert np.all(net.bn.moving_mean.data == 0)              # inference: no update
    y = net(x, training=True).data
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)   # batch statistics
    assert np.any(net.bn.moving_mean.data != 0)
    net(x)                                                   # the mode does not leak out of the call
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    assert nb.layers.base.TRAINING[0] is False


def test_frozen_layer_runs_in_inference_mode_and_unfreezing_keeps_the_state_non_trainable():
    model = _dense_bn_model()
    model.compile(optimizer=nb.optimizers.SGD(0.1), loss="mse")
    bn = model.layers[1]
    bn.trainable = False
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4
    x, y = np.random.default_rng(6).standard_normal((8, 4)), np.zeros((8, 2))
    before = bn.get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    bn.trainable = True
    assert bn.trainable_weights == [bn.gamma, bn.beta]
    assert bn.non_trainable_weights == [bn.moving_mean, bn.moving_variance]
    model.trainable = False                                  # a model freezes its layers, as Keras
    assert not bn.trainable and model.trainable_weights == []
    model.trainable = True
    assert bn.trainable and not bn.moving_mean.requires_grad and bn.gamma.requires_grad


# ------------------------------------------------------------------ weights, summary, files
def test_weights_in_keras_order_and_summary_counts():
    model = _dense_bn_model()
    names = [w.name.split("/")[-1] for w in model.weights]
    assert names == ["kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "kernel", "bias"]
    bn = model.layers[1]
    assert [w.name.split("/")[-1] for w in model.non_trainable_weights] == ["moving_mean", "moving_variance"]
    lines = []
    model.summary(print_fn=lines.append)
    total = 4 * 5 + 5 + 4 * 5 + 5 * 2 + 2                    # Dense 25, BN 20, Dense 12
    assert any(f"Total params: {total:,}" in s for s in lines)
    assert any(f"Trainable params: {total - 10:,}" in s for s in lines)
    assert any("Non-trainable params: 10 " in s for s in lines)
    assert any("batch_normalization" in s and s.rstrip(" │").endswith("20") for s in lines)
    no_center = BatchNormalization(center=False)
    no_center.build_from_shape((None, 3))
    assert [w.name.split("/")[-1] for w in no_center.weights] == ["gamma", "moving_mean", "moving_variance"]
    assert bn.count_params() == 20


def test_get_set_save_load_include_the_moving_statistics(tmp_path):
    model = _dense_bn_model()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(7).standard_normal((16, 4))
    model.fit(x, np.zeros((16, 2)), epochs=1, verbose=0)
    path = tmp_path / "w.npz"
    model.save_weights(path)
    other = _dense_bn_model(seed=1)
    other.load_weights(path)
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    bn = other.layers[1]
    bn.set_weights([np.full(5, 2.0), np.full(5, 1.0), np.full(5, 3.0), np.full(5, 4.0)])
    np.testing.assert_array_equal(bn.moving_mean.data, 3.0)
    np.testing.assert_array_equal(bn.moving_variance.data, 4.0)


def test_get_config_rebuilds_the_layer():
    bn = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="random_normal",
                            moving_variance_initializer="zeros", name="bn_cfg", dtype="float64")
    config = bn.get_config()
    again = type(bn).from_config(config)
    assert again.get_config() == config
    for key in ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                "moving_mean_initializer", "moving_variance_initializer", "synchronized", "renorm"):
        assert key in config
    again.build_from_shape((None, 3, 4))
    assert [w.shape for w in again.weights] == [(3,), (3,), (3,)]
    np.testing.assert_array_equal(again.moving_variance.data, 0.0)


@pytest.mark.usefixtures("tier")
def test_conv_maps_train_with_batch_normalization():
    """A Conv2D + BN + Dense classifier of a learnable pattern reaches high accuracy in a few epochs."""
    nb.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].sum(axis=(1, 2, 3)) > x[:, 3:].sum(axis=(1, 2, 3))).astype(np.int64)
    model = nb.Sequential([nb.Input((6, 6, 1)), nb.layers.Conv2D(4, 3), BatchNormalization(),
                           nb.layers.Activation("relu"), nb.layers.Flatten(), Dense(2, activation="softmax")])
    model.compile(optimizer=nb.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] >= 0.9


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, error, words", [
    ({"axis": 1.5}, TypeError, "axis must be an integer"),
    ({"axis": 0}, ValueError, "batch axis"),
    ({"momentum": 1.5}, ValueError, "momentum"),
    ({"momentum": "0.9"}, TypeError, "momentum"),
    ({"epsilon": 0}, ValueError, "epsilon"),
    ({"center": "yes"}, TypeError, "center"),
    ({"gamma_initializer": "nope"}, ValueError, "gamma_initializer"),
    ({"beta_constraint": "non_neg"}, ValueError, "beta_constraint"),
    ({"gamma_regularizer": "nope"}, ValueError, "gamma_regularizer"),
    ({"renorm": True}, ValueError, "renorm"),
])
def test_bad_constructor_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        BatchNormalization(**kwargs)


def test_bad_inputs_name_the_layer_and_the_shapes():
    bn = BatchNormalization(axis=3, name="bn_bad")
    with pytest.raises(ValueError, match=r"bn_bad: axis=3 .*\(None, 4\)"):
        bn(np.zeros((2, 4)))
    assert not bn.built
    with pytest.raises(ValueError, match="rank >= 2"):
        BatchNormalization(name="bn_r1")(np.zeros(4))
    bn = BatchNormalization(name="bn_c")
    bn(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"bn_c: the layer was built for 4 channels .*\(None, 5\)"):
        bn(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="at least one value per channel"):
        bn(np.zeros((0, 4)), training=True)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        F.batch_norm(Tensor(np.zeros((2, 3))), Tensor(np.ones(4)))
    with pytest.raises(ValueError, match="non-batch axis"):
        F.batch_norm(Tensor(np.zeros((2, 3))), axis=0)
    with pytest.raises(TypeError, match="axis must be an integer"):
        F.batch_normalization(Tensor(np.zeros((2, 3))), np.zeros(3), np.ones(3), axis="c")


def test_a_masked_input_in_training_mode_is_refused():
    emb = nb.layers.Embedding(10, 3, mask_zero=True)
    bn = BatchNormalization(name="bn_mask")
    h = emb(np.array([[1, 2, 0], [3, 0, 0]]))
    assert bn(h).shape == (2, 3, 3)                          # inference: the moving statistics, no mask needed
    with pytest.raises(ValueError, match="bn_mask: the input carries a padding mask"):
        bn(h, training=True)

