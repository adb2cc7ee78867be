"""The fast tier's functions, called by the engine's Functions through ``engine.tiers.current``.

Same names, signatures and results as ``numbanet/reference/tier.py`` (whose
docstrings give the math and the shapes); here each one picks a route and runs it.
"""
# ------------------------------------------------ convolution, pooling, upsampling
from .conv import (conv2d_backward, conv2d_forward, conv2d_transpose_backward,  # noqa: F401
                   conv2d_transpose_forward)
from .pooling import max_pool2d_backward, max_pool2d_forward, upsample2d_backward, upsample2d_forward  # noqa: F401

# ------------------------------------------------ dense, sequences, losses, optimizers
from .dense import dense_backward, dense_forward  # noqa: E402,F401
from .embedding import embedding_backward  # noqa: E402,F401
from .losses import sparse_ce_backward, sparse_ce_forward  # noqa: E402,F401
from .optimizers import (adadelta_update, adagrad_update, adam_update, rmsprop_update,  # noqa: E402,F401
                         sgd_update)
from .recurrent import simple_rnn_backward, simple_rnn_forward  # noqa: E402,F401
from .lstm import lstm_backward, lstm_forward  # noqa: E402,F401
