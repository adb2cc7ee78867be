"""``numbanet.testing``: the README's example, the strategies' configurations (valid, as Keras sizes them),
``assert_grads_match``'s failure message, and importing it without Hypothesis."""
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numbanet as nb
from numbanet.engine import Function
from numbanet.testing import (arrays, assert_grads_match, conv2d_configs, conv2d_transpose_configs, dense_configs,
                              max_pool2d_configs, shapes, simple_rnn_configs)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------- the README's example
class Scale(nb.layers.Layer):                 # y = x * w, one weight per feature
    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "random_normal")

    def call(self, x):
        return x * self.w


@settings(max_examples=20, deadline=None)
@given(arrays(shapes(min_rank=2, max_rank=4)))
def test_scale_gradients(x):
    assert_grads_match(Scale(), x)            # x and w, float64, central differences


def test_the_readme_example_checks_both_the_input_and_the_weight():
    report = assert_grads_match(Scale(), np.random.default_rng(0).standard_normal((2, 3)))
    assert [(r.param, r.shape) for r in report.inputs] == [("input", (2, 3)), ("w", (3,))]


# --------------------------------------------------------- failure message
class CubeWithBug(Function):
    """y = x^3 with dy/dx = 3 x^2, plus 0.25 at element ``bad``."""

    def __init__(self, bad):
        self.bad = bad

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, gy):
        gx = gy * 3 * self.x ** 2
        gx[self.bad] += 0.25
        return gx


def test_a_failure_shows_the_shapes_and_the_worst_elements():
    x = np.random.default_rng(1).uniform(0.5, 1.5, (3, 4))
    with pytest.raises(AssertionError) as err:
        assert_grads_match(lambda t: CubeWithBug((2, 1))(t), x)
    text = str(err.value)
    assert "on inputs of shapes [(3, 4)] do not match" in text
    assert "FAIL input 0 (3, 4): worst elements (2, 1): autograd " in text
    found = re.search(r"worst elements \(2, 1\): autograd (\S+) vs numeric (\S+)$", text, re.M)   # the only one
    autograd, numeric = float(found.group(1)), float(found.group(2))
    assert autograd - numeric == pytest.approx(0.25, rel=1e-5)
    assert numeric == pytest.approx(3 * x[2, 1] ** 2, rel=1e-6)


def test_tolerances_are_passed_through():
    x = np.array([1.0, 2.0])
    # |error| 1e-3 * |gradient|: fails at rtol 1e-5, passes at rtol 1e-2
    fn = lambda t: ScaledSquare()(t)      # noqa: E731
    with pytest.raises(AssertionError):
        assert_grads_match(fn, x)
    assert assert_grads_match(fn, x, rtol=1e-2).passed


class ScaledSquare(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * 2.002 * self.x


# -------------------------------------------------------------- strategies
@SETTINGS
@given(arrays(shapes(min_rank=1, max_rank=3, max_side=4), low=-0.5, high=3.0))
def test_arrays_are_float64_in_range_and_distinct(x):
    assert x.dtype == np.float64 and 1 <= x.ndim <= 3 and all(1 <= n <= 4 for n in x.shape)
    assert np.all(x >= -0.5) and np.all(x < 3.0)
    assert len(np.unique(x)) == x.size and np.all(x != 0)


@SETTINGS
@given(arrays((2, 3), elements=st.floats(-1, 1)))
def test_arrays_with_hypothesis_elements(x):
    assert x.shape == (2, 3) and x.dtype == np.float64 and np.all(np.abs(x) <= 1)


def _out(n, k, s, padding):
    """Keras's output size, written out here: "valid" floor((n - k) / s) + 1, "same" ceil(n / s)."""
    return (n - k) // s + 1 if padding == "valid" else math.ceil(n / s)


@SETTINGS
@given(conv2d_configs())
def test_conv2d_configs_are_accepted_and_sized_as_keras_sizes_them(cfg):
    N, H, W, C = cfg.input_shape
    (KH, KW), (SH, SW), padding = cfg.kwargs["kernel_size"], cfg.kwargs["strides"], cfg.kwargs["padding"]
    if padding == "valid":
        assert H >= KH and W >= KW
    layer = cfg.make(dtype="float64")
    y = layer(np.zeros(cfg.input_shape))
    assert y.shape == (N, _out(H, KH, SH, padding), _out(W, KW, SW, padding), cfg.kwargs["filters"])


@SETTINGS
@given(conv2d_configs(max_size=5, max_channels=2, max_filters=2), st.integers(0, 2**32 - 1))
def test_conv2d_configs_gradients(cfg, seed):
    x = np.random.default_rng(seed).standard_normal(cfg.input_shape)
    layer = cfg.make(bias_initializer="random_normal")
    assert_grads_match(layer, x, max_elements=60)


@SETTINGS
@given(conv2d_transpose_configs())
def test_conv2d_transpose_configs_are_accepted(cfg):
    N, H, W, C = cfg.input_shape
    (KH, KW), (SH, SW), padding = cfg.kwargs["kernel_size"], cfg.kwargs["strides"], cfg.kwargs["padding"]
    op = cfg.kwargs["output_padding"]
    y = cfg.make()(np.zeros(cfg.input_shape, np.float32))
    for n, k, s, o, out in zip((H, W), (KH, KW), (SH, SW), op or (None, None), y.shape[1:3]):
        if o is None:    # Keras: "valid" n*s + max(k - s, 0), "same" n*s
            assert out == (n * s + max(k - s, 0) if padding == "valid" else n * s)
        else:            # (n - 1)*s + k - 2*pad + op, pad = k // 2 for "same"
            assert o < s and out == (n - 1) * s + k - 2 * (k // 2 if padding == "same" else 0) + o


@SETTINGS
@given(max_pool2d_configs())
def test_max_pool2d_configs_are_accepted(cfg):
    N, H, W, C = cfg.input_shape
    (KH, KW), (SH, SW), padding = cfg.kwargs["pool_size"], cfg.kwargs["strides"], cfg.kwargs["padding"]
    y = cfg.make()(np.zeros(cfg.input_shape, np.float32))
    assert y.shape == (N, _out(H, KH, SH, padding), _out(W, KW, SW, padding), C)


@SETTINGS
@given(dense_configs(), st.integers(0, 2**32 - 1))
def test_dense_configs_shapes_and_gradients(cfg, seed):
    x = np.random.default_rng(seed).standard_normal(cfg.input_shape)
    layer = cfg.make(bias_initializer="random_normal")
    report = assert_grads_match(layer, x)
    assert [r.param for r in report.inputs] == ["input", "kernel"] + (["bias"] if cfg.kwargs["use_bias"] else [])
    assert layer(x).shape == cfg.input_shape[:-1] + (cfg.kwargs["units"],)


@SETTINGS
@given(simple_rnn_configs(), st.integers(0, 2**32 - 1))
def test_simple_rnn_configs_shapes_and_gradients(cfg, seed):
    x = np.random.default_rng(seed).standard_normal(cfg.input_shape)
    layer = cfg.make()
    N, T, _ = cfg.input_shape
    U = cfg.kwargs["units"]
    assert layer(x).shape == ((N, T, U) if cfg.kwargs["return_sequences"] else (N, U))
    assert_grads_match(layer, x)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(conv2d_configs(), conv2d_transpose_configs(), max_pool2d_configs()))
def test_configs_agree_with_keras(keras, cfg):
    """Keras 3 accepts every drawn configuration and computes the same output shape."""
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "activation"}
    expected = tuple(getattr(keras.layers, cfg.layer)(**kwargs).compute_output_shape(cfg.input_shape))
    assert cfg.make()(np.zeros(cfg.input_shape, np.float32)).shape == expected


def test_the_module_imports_without_hypothesis():
    """With Hypothesis made unimportable, ``numbanet.testing`` imports and ``assert_grads_match`` works;
    a strategy raises an ImportError that says what to install."""
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import numpy as np, numbanet.testing as t\n"
        "t.assert_grads_match(lambda x: x * x, np.array([1.0, 2.0]))\n"
        "try:\n    t.shapes()\nexcept ImportError as e:\n    print('IMPORT-ERROR', e)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR numbanet.testing: the strategies" in out.stdout and "pip install hypothesis" in out.stdout
