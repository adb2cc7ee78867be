"""Layers (Keras 3 names, defaults and weight layouts). Channels-last (NHWC)."""
from .base import Layer, SymbolicTensor
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding  # noqa: E402  (issue 4: sequence layers)
from .recurrent import SimpleRNN  # noqa: E402
from .conv import Conv2D, Conv2DTranspose  # noqa: E402  (issue 3: convolutional family)
from .pooling import MaxPooling2D, UpSampling2D  # noqa: E402
