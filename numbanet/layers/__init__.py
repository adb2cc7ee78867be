"""Layers (Keras 3 names, defaults and weight layouts). Channels-last (NHWC)."""
from .base import Layer, SymbolicTensor
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .recurrent import SimpleRNN
from .conv import Conv2D, Conv2DTranspose
from .pooling import MaxPooling2D, UpSampling2D
from .normalization import BatchNormalization
