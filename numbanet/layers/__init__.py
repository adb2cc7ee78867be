"""Layers (Keras 3 names, defaults and weight layouts). Channels-last (NHWC)."""
from .base import Layer, SymbolicTensor
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .recurrent import SimpleRNN
from .conv import Conv2D, Conv2DTranspose
from .pooling import MaxPooling2D, UpSampling2D
from .lstm import LSTM
from .gru import GRU
from .wrappers import Bidirectional
from .activation_layers import LeakyReLU, ReLU, Softmax
from .conv1d import Conv1D, Convolution1D
from .pooling import AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, MaxPool1D, MaxPooling1D
from .global_pooling import (GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D,
                             GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D)
from .normalization import BatchNormalization


def __getattr__(name):
    """A Keras layer numbanet lacks (``nb.layers.LayerNormalization``): an AttributeError naming the nearest one."""
    from ..keras_names import missing_attribute
    raise missing_attribute(__name__, name)
