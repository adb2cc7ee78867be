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
from .normalization import BatchNormalization


def __getattr__(name):
    """A Keras layer numbanet lacks (``nb.layers.LayerNormalization``): an AttributeError naming the nearest one."""
    from ..keras_names import missing_attribute
    raise missing_attribute(__name__, name)
