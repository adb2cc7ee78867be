"""Bad input: every configuration Keras rejects raises ValueError/TypeError naming the layer and shapes."""
import numpy as np
import pytest

from numbanet.engine import functional as F
from numbanet.layers import Conv2D, Conv2DTranspose, MaxPooling2D, UpSampling2D

X = np.zeros((2, 5, 5, 3), np.float32)


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 3), "filters"),
    (lambda: Conv2D(-2, 3), "filters"),
    (lambda: Conv2D(2.5, 3), "filters"),
    (lambda: Conv2D(2, 0), "kernel_size"),
    (lambda: Conv2D(2, (3, -1)), "kernel_size"),
    (lambda: Conv2D(2, (3, 3, 3)), "kernel_size"),
    (lambda: Conv2D(2, 3, strides=0), "strides"),
    (lambda: Conv2D(2, 3, padding="causal"), "padding"),
    (lambda: Conv2D(2, 3, padding=1), "padding"),
    (lambda: Conv2DTranspose(2, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: Conv2DTranspose(2, 3, strides=(2, 2), output_padding=(1, 2)), "output_padding"),
    (lambda: Conv2DTranspose(2, 3, output_padding=-1), "output_padding"),
    (lambda: MaxPooling2D(0), "pool_size"),
    (lambda: MaxPooling2D(2, strides=(1, 0)), "strides"),
    (lambda: MaxPooling2D(2, padding="full"), "padding"),
    (lambda: UpSampling2D(0), "size"),
    (lambda: UpSampling2D(2, interpolation="bicubic"), "interpolation"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("layer", [Conv2D(2, 3), Conv2DTranspose(2, 3), MaxPooling2D(), UpSampling2D()])
def test_wrong_rank_names_layer_and_shape(layer):
    with pytest.raises(ValueError, match=rf"{layer.name}.*4-D.*\(None, 5, 3\)"):
        layer(np.zeros((5, 5, 3), np.float32))           # a 3-D "image batch"
    with pytest.raises(ValueError, match=layer.name):
        layer(np.zeros((2, 5, 5, 3, 1), np.float32))


def test_kernel_larger_than_valid_input():
    with pytest.raises(ValueError, match=r"conv2d.*\(None, 3, 5, 3\)"):
        Conv2D(2, 4)(np.zeros((1, 3, 5, 3), np.float32))
    with pytest.raises(ValueError, match="max_pooling2d.*larger"):
        MaxPooling2D(6)(X)
    assert Conv2D(2, 6, padding="same")(X).shape == (2, 5, 5, 2)   # "same" accepts it, as Keras


@pytest.mark.parametrize("layer", [Conv2D(2, 3), Conv2DTranspose(2, 3, 2)])
def test_wrong_channel_count_for_built_layer(layer):
    layer(X)
    with pytest.raises(ValueError, match=rf"{layer.name}.*3 input channels.*\(None, 5, 5, 4\)"):
        layer(np.zeros((2, 5, 5, 4), np.float32))


def test_transpose_output_padding_tensorflow_rejects():
    # kernel 2, stride 1, "same", output_padding 0: output (n-1) + 2 - 2 = n - 1, which a
    # "same" convolution maps to n - 1, not n
    with pytest.raises(ValueError, match="output_padding"):
        Conv2DTranspose(2, 2, padding="same", output_padding=0)(X)


def test_functional_ops_check_their_inputs():
    W = np.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match=r"conv2d: input has 2 channels.*\(3, 3, 3, 4\)"):
        F.conv2d(np.zeros((1, 5, 5, 2)), W)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D"):
        F.conv2d(np.zeros((5, 5, 3)), W)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\)"):
        F.conv2d(np.zeros((1, 5, 5, 3)), W, np.zeros(3))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(np.zeros((1, 2, 5, 3)), W)
    with pytest.raises(ValueError, match="conv2d_transpose: input has 3 channels"):
        F.conv2d_transpose(np.zeros((1, 5, 5, 3)), W)      # kernel (3, 3, F=3, C=4)
    with pytest.raises(ValueError, match="max_pool2d.*larger"):
        F.max_pool2d(np.zeros((1, 1, 5, 3)), 2)
    with pytest.raises(ValueError, match="upsample2d: interpolation"):
        F.upsample2d(np.zeros((1, 1, 5, 3)), 2, "area")


@pytest.mark.parametrize("layer", [Conv2D(2, 1), Conv2DTranspose(2, 3), MaxPooling2D(1), UpSampling2D()])
def test_zero_sized_images_are_rejected(layer):
    with pytest.raises(ValueError, match=rf"{layer.name}.*positive.*\(None, 0, 5, 3\)"):
        layer(np.zeros((2, 0, 5, 3), np.float32))
