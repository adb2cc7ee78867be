"""Embedding: the scatter-add kernel against np.add.at, gradients, Keras parity, bad input."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbanet.engine import Tensor, check_grad
from numbanet.engine.functional import embedding
from numbanet.fast.kernels.embedding import first_out_of_range, scatter_add_rows
from numbanet.layers import Embedding
from numbanet.reference.embedding import embedding_backward as scatter_add_twin  # np.add.at

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 30), st.integers(1, 5),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([np.int32, np.int64]), st.integers(0, 9999))
def test_scatter_add_kernel_matches_numpy_twin(V, M, D, dtype, itype, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, M).astype(itype)  # small V: many repeated ids
    gy = rng.standard_normal((M, D)).astype(dtype)
    got = scatter_add_rows(ids, gy, np.zeros((V, D), dtype))
    np.testing.assert_allclose(got, scatter_add_twin(ids, gy, V), rtol=1e-6, atol=1e-6)


def test_repeated_ids_accumulate_and_out_of_range_finder():
    gy = np.arange(8, dtype=np.float64).reshape(4, 2)
    gW = scatter_add_rows(np.array([2, 2, 0, 2]), gy, np.zeros((3, 2)))
    np.testing.assert_array_equal(gW, [[4, 5], [0, 0], [0 + 2 + 6, 1 + 3 + 7]])
    assert first_out_of_range(np.array([0, 2, 3, 1]), 3) == 2
    assert first_out_of_range(np.array([0, -1]), 3) == 1
    assert first_out_of_range(np.array([0, 2]), 3) == -1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=3), st.integers(1, 5), st.integers(1, 3),
       st.integers(0, 9999))
def test_embedding_gradient_matches_finite_differences(id_shape, V, D, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, tuple(id_shape))
    W = rng.standard_normal((V, D))
    gy = rng.standard_normal(tuple(id_shape) + (D,))
    y = embedding(ids, Tensor(W))
    assert y.shape == tuple(id_shape) + (D,)
    np.testing.assert_array_equal(y.data, W[ids])
    report = check_grad(lambda W: embedding(ids, W), W, grad_output=gy)
    assert report.passed, str(report)


def test_layer_forward_backward_dtype_and_shapes():
    layer = Embedding(10, 4)
    ids = np.array([[1, 2, 2], [0, 9, 1]], dtype=np.int32)
    y = layer(ids)
    assert y.shape == (2, 3, 4) and y.dtype == np.float32
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)
    assert [w.shape for w in layer.get_weights()] == [(10, 4)]
    E = layer.embeddings.data
    assert np.all(np.abs(E) <= 0.05) and E.std() > 0.01  # Keras "uniform": U(-0.05, 0.05)
    y.sum().backward()
    counts = np.bincount(ids.ravel(), minlength=10)
    np.testing.assert_array_equal(layer.embeddings.grad, np.repeat(counts[:, None], 4, axis=1))
    # a Tensor of integer ids and a nested list work too
    np.testing.assert_array_equal(layer(Tensor(ids, dtype=np.int64)).data, y.data)
    np.testing.assert_array_equal(layer([[1, 2, 2], [0, 9, 1]]).data, y.data)


def test_config_round_trip():
    cfg = Embedding(7, 3, mask_zero=True, name="e").get_config()
    assert cfg["input_dim"] == 7 and cfg["output_dim"] == 3 and cfg["mask_zero"] is True
    assert Embedding(**{**cfg, "name": "e2"}).get_config() == {**cfg, "name": "e2"}


def test_mask_zero():
    ids = np.array([[0, 3, 1], [2, 0, 0]])
    assert Embedding(5, 2).compute_mask(ids) is None
    np.testing.assert_array_equal(Embedding(5, 2, mask_zero=True).compute_mask(ids), ids != 0)


@pytest.mark.parametrize("ids, err, words", [
    (np.array([[1.0, 2.0]]), TypeError, ["integers", "float64"]),
    (np.array([[1, 10]]), ValueError, ["token id 10", "(0, 1)", "[0, 10)"]),
    (np.array([[1, -1]]), ValueError, ["token id -1", "[0, 10)"]),
    (np.array([[True, False]]), TypeError, ["integers", "bool"]),
])
def test_bad_ids(ids, err, words):
    layer = Embedding(10, 3, name="emb_under_test")
    with pytest.raises(err) as info:
        layer(ids)
    for w in ["emb_under_test"] + words:
        assert w in str(info.value)
    with pytest.raises(err):
        embedding(ids, np.zeros((10, 3)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)
    with pytest.raises(TypeError, match="output_dim"):
        Embedding(5, 2.0)


def test_keras_parity_output_and_gradient(tf):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (4, 5))
    gy = rng.standard_normal((4, 5, 3)).astype(np.float32)
    k_layer = tf.keras.layers.Embedding(7, 3)
    k_layer(ids)
    with tf.GradientTape() as tape:
        k_y = k_layer(ids)
        k_loss = tf.reduce_sum(k_y * gy)
    (k_g,) = tape.gradient(k_loss, k_layer.trainable_weights)
    k_g = tf.convert_to_tensor(k_g).numpy()  # IndexedSlices -> dense
    layer = Embedding(7, 3)
    layer(ids)
    layer.set_weights(k_layer.get_weights())
    y = layer(ids)
    np.testing.assert_allclose(y.data, k_y.numpy(), rtol=1e-6)
    (y * Tensor(gy)).sum().backward()
    np.testing.assert_allclose(layer.embeddings.grad, k_g, rtol=1e-5, atol=1e-6)
    km = tf.keras.layers.Embedding(7, 3, mask_zero=True).compute_mask(ids)
    np.testing.assert_array_equal(Embedding(7, 3, mask_zero=True).compute_mask(ids), km.numpy())
