"""Tools for property-based tests of your own layers and functions.

``assert_grads_match(fn, *inputs)`` needs only NumPy; the Hypothesis
strategies (``shapes``, ``arrays``, ``dense_configs``, ``conv2d_configs``, ...)
import Hypothesis when called, so this module imports without it::

    import numpy as np
    import numbanet as nb
    from hypothesis import given, settings
    from numbanet.testing import arrays, assert_grads_match, shapes

    class Scale(nb.layers.Layer):                 # y = x * w, one weight per feature
        def build(self, input_shape):
            self.w = self.add_weight("w", (input_shape[-1],), "random_normal")

        def call(self, x):
            return x * self.w

    @settings(max_examples=20, deadline=None)
    @given(arrays(shapes(min_rank=2, max_rank=4)))
    def test_scale_gradients(x):
        assert_grads_match(Scale(), x)            # x and w, float64, central differences

A layer configuration strategy draws the constructor arguments of a layer
together with an input shape the layer accepts (``LayerConfig``): build the
layer with ``config.make(dtype="float64")`` and draw its input with
``arrays(config.input_shape)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine.conv_shapes import conv_output_size, transpose_output_size
from .engine.gradcheck import check_grad

__all__ = ["assert_grads_match", "shapes", "arrays", "LayerConfig", "dense_configs", "conv2d_configs",
           "conv2d_transpose_configs", "max_pool2d_configs", "simple_rnn_configs"]


# ------------------------------------------------------------ gradients
def assert_grads_match(fn, *inputs, rtol=1e-5, atol=1e-7, eps=1e-6, grad_output=None, max_elements=400, seed=0):
    """Assert that autograd's gradients of ``fn`` equal central finite differences in float64.

    ``fn`` is a function of Tensors (every floating input is checked) or a Layer
    or Model called on one input (the input and every trainable weight, on a
    float64 copy of the layer): exactly ``nb.check_grad``. An element passes when
    ``|autograd - numeric| <= atol + rtol * |numeric|``. On a failure the
    AssertionError shows the table of every checked tensor (its shape, method,
    max abs and rel error) and the worst elements of each failing one: index,
    autograd value, numeric value. Returns the report when everything matched.
    """
    report = check_grad(fn, *inputs, eps=eps, rtol=rtol, atol=atol, grad_output=grad_output,
                        max_elements=max_elements, seed=seed)
    if not report.passed:
        name = getattr(fn, "name", None) or getattr(fn, "__name__", type(fn).__name__)
        shapes_in = [np.shape(getattr(x, "data", x)) for x in inputs]
        raise AssertionError(f"gradients of {name} on inputs of shapes {shapes_in} do not match finite "
                             f"differences:\n{report}")
    return report


# ----------------------------------------------------------- strategies
def _hypothesis():
    """(strategies, extra.numpy), or an ImportError that says what needs Hypothesis."""
    try:
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp
    except ImportError as err:
        raise ImportError("numbanet.testing: the strategies (shapes, arrays, *_configs) need Hypothesis: "
                          "pip install hypothesis (assert_grads_match works without it)") from err
    return st, hnp


def shapes(min_rank=1, max_rank=4, min_side=1, max_side=5):
    """Strategy: array shapes, tuples of ``min_rank`` to ``max_rank`` sizes in [min_side, max_side]."""
    _, hnp = _hypothesis()
    return hnp.array_shapes(min_dims=min_rank, max_dims=max_rank, min_side=min_side, max_side=max_side)


def arrays(shape, elements=None, low=-2.0, high=2.0):
    """Strategy: float64 arrays of ``shape`` (a tuple, or a strategy such as ``shapes()``).

    By default the values are uniform in [low, high) from a NumPy generator whose
    seed Hypothesis draws (and shrinks): no two values are equal and none is
    exactly 0, so a finite difference never lands on a ReLU kink or a tie in a
    max-pool window. ``elements`` (a Hypothesis float strategy) draws every
    value through Hypothesis instead, e.g. ``st.floats(-1, 1)``; those shrink
    towards 0, kinks and ties included.
    """
    st, hnp = _hypothesis()
    if not isinstance(shape, st.SearchStrategy):
        shape = st.just((int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape))
    if elements is not None:
        return shape.flatmap(lambda s: hnp.arrays(np.float64, s, elements=elements))
    if not low < high:
        raise ValueError(f"numbanet.testing.arrays: low must be below high, got low={low}, high={high}")
    return st.tuples(shape, st.integers(0, 2**32 - 1)).map(
        lambda sv: np.random.default_rng(sv[1]).uniform(low, high, size=sv[0]))


@dataclass(frozen=True)
class LayerConfig:
    """A layer class name from ``numbanet.layers``, constructor arguments, and an input shape it accepts.

    ``input_shape`` includes the batch axis, e.g. (N, H, W, C) for Conv2D;
    ``make(**extra)`` builds the layer (``extra`` such as ``dtype="float64"``).
    """
    layer: str
    input_shape: tuple
    kwargs: dict = field(default_factory=dict)

    def make(self, **extra):
        from . import layers
        return getattr(layers, self.layer)(**self.kwargs, **extra)


def dense_configs(max_batch=3, max_features=5, max_units=4, max_rank=3,
                  activations=(None, "tanh", "sigmoid", "elu")):
    """Strategy: Dense configurations: input (N, ..., D) of rank 2 to ``max_rank``, units, activation, use_bias."""
    st, hnp = _hypothesis()
    return st.builds(
        lambda batch, middle, D, units, act, bias: LayerConfig(
            "Dense", (batch, *middle, D), {"units": units, "activation": act, "use_bias": bias}),
        st.integers(1, max_batch), hnp.array_shapes(min_dims=0, max_dims=max_rank - 2, max_side=3),
        st.integers(1, max_features), st.integers(1, max_units), st.sampled_from(activations), st.booleans())


def _same_padding_per_axis(st, max_size, max_kernel, max_stride, paddings):
    """Strategy: two axes sharing one padding: ((H, KH, SH), (W, KW, SW), padding)."""
    def axis(padding):
        return st.tuples(st.integers(1, max_kernel), st.integers(1, max_stride)).flatmap(
            lambda ks: st.tuples(st.integers(ks[0] if padding == "valid" else 1, max(max_size, ks[0])),
                                 st.just(ks[0]), st.just(ks[1])))
    return st.sampled_from(paddings).flatmap(lambda p: st.tuples(axis(p), axis(p), st.just(p)))


def conv2d_configs(max_batch=2, max_size=7, max_channels=3, max_filters=3, max_kernel=4, max_stride=3,
                   paddings=("valid", "same"), activations=(None, "tanh")):
    """Strategy: Conv2D configurations Keras accepts: input (N, H, W, C), filters, kernel_size, strides, padding.

    "valid" draws H >= KH and W >= KW (the output floor((H - KH) / SH) + 1 is then
    at least 1); "same" takes any size (output ceil(H / SH)).
    """
    st, _ = _hypothesis()
    return st.builds(
        lambda N, axes, C, F, act: LayerConfig(
            "Conv2D", (N, axes[0][0], axes[1][0], C),
            {"filters": F, "kernel_size": (axes[0][1], axes[1][1]), "strides": (axes[0][2], axes[1][2]),
             "padding": axes[2], "activation": act}),
        st.integers(1, max_batch), _same_padding_per_axis(st, max_size, max_kernel, max_stride, paddings),
        st.integers(1, max_channels), st.integers(1, max_filters), st.sampled_from(activations))


def _transpose_ok(n, k, s, padding, op):
    """Whether Conv2DTranspose takes size n along an axis: an output > 0 that a convolution maps back to n."""
    out = transpose_output_size(n, k, s, padding, op)
    return out > 0 and conv_output_size(out, k, s, padding) == n


def conv2d_transpose_configs(max_batch=2, max_size=5, max_channels=3, max_filters=3, max_kernel=4, max_stride=3,
                             paddings=("valid", "same"), activations=(None, "tanh")):
    """Strategy: Conv2DTranspose configurations Keras accepts, output_padding None or below the strides."""
    st, _ = _hypothesis()

    def with_output_padding(cfg):
        (H, KH, SH), (W, KW, SW), padding = cfg
        ops = st.one_of(st.none(), st.tuples(st.integers(0, SH - 1), st.integers(0, SW - 1)))
        return ops.filter(lambda op: op is None or (_transpose_ok(H, KH, SH, padding, op[0])
                                                    and _transpose_ok(W, KW, SW, padding, op[1]))).map(
            lambda op: (cfg, op))

    axes = _same_padding_per_axis(st, max_size, max_kernel, max_stride, paddings).flatmap(with_output_padding)
    return st.builds(
        lambda N, axes_op, C, F, act: LayerConfig(
            "Conv2DTranspose", (N, axes_op[0][0][0], axes_op[0][1][0], C),
            {"filters": F, "kernel_size": (axes_op[0][0][1], axes_op[0][1][1]),
             "strides": (axes_op[0][0][2], axes_op[0][1][2]), "padding": axes_op[0][2],
             "output_padding": axes_op[1], "activation": act}),
        st.integers(1, max_batch), axes, st.integers(1, max_channels), st.integers(1, max_filters),
        st.sampled_from(activations))


def max_pool2d_configs(max_batch=2, max_size=7, max_channels=3, max_pool=3, max_stride=3,
                       paddings=("valid", "same")):
    """Strategy: MaxPooling2D configurations: input (N, H, W, C), pool_size, strides, padding ("valid": H >= KH)."""
    st, _ = _hypothesis()
    return st.builds(
        lambda N, axes, C: LayerConfig(
            "MaxPooling2D", (N, axes[0][0], axes[1][0], C),
            {"pool_size": (axes[0][1], axes[1][1]), "strides": (axes[0][2], axes[1][2]), "padding": axes[2]}),
        st.integers(1, max_batch), _same_padding_per_axis(st, max_size, max_pool, max_stride, paddings),
        st.integers(1, max_channels))


def simple_rnn_configs(max_batch=3, max_time=5, max_features=4, max_units=4,
                       activations=("tanh", "sigmoid", "linear")):
    """Strategy: SimpleRNN configurations: input (N, T, D), units, activation, use_bias,
    return_sequences, go_backwards."""
    st, _ = _hypothesis()
    return st.builds(
        lambda N, T, D, units, act, bias, seq, back: LayerConfig(
            "SimpleRNN", (N, T, D), {"units": units, "activation": act, "use_bias": bias,
                                     "return_sequences": seq, "go_backwards": back}),
        st.integers(1, max_batch), st.integers(1, max_time), st.integers(1, max_features),
        st.integers(1, max_units), st.sampled_from(activations), st.booleans(), st.booleans(), st.booleans())
