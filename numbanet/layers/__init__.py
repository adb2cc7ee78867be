"""Layers (Keras 3 names, defaults and weight layouts). Channels-last (NHWC)."""
from .base import Layer, SymbolicTensor
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
