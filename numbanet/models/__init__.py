"""Models: Sequential, functional and subclassed Model; training loop; callbacks; weight files."""
from . import callbacks
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, TerminateOnNaN
from .model import Model
from .sequential import Sequential
from .saving import load_model
