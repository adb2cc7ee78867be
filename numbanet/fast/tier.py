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
from .losses import binary_ce_backward, binary_ce_forward  # noqa: E402,F401
from .activations import sigmoid_backward, sigmoid_forward  # noqa: E402,F401
from .optimizers import (adadelta_update, adagrad_update, adam_update, rmsprop_update,  # noqa: E402,F401
                         sgd_update)
from .optimizers import adamax_update, nadam_update, weight_decay_update  # noqa: E402,F401
from .recurrent import simple_rnn_backward, simple_rnn_forward  # noqa: E402,F401
from .gru import gru_backward, gru_forward  # noqa: E402,F401
from .lstm import lstm_backward, lstm_forward  # noqa: E402,F401

# ------------------------------------------------ im2col / col2im on their own (nb.functional.im2col)
import numpy as _np  # noqa: E402

from .kernels import im2col as _unfold  # noqa: E402


def im2col(x, kernel, strides, pads):
    """x (N, H, W, C) -> cols (N, OH, OW, KH, KW, C), the Numba kernel
    ``fast.kernels.im2col.im2col``; the math is in reference/tier.py im2col."""
    return _unfold.im2col(_np.ascontiguousarray(x), *kernel, *strides, *pads)


def col2im(cols, in_hw, strides, pads):
    """cols (N, OH, OW, KH, KW, C) -> x (N, H, W, C), the Numba kernel
    ``fast.kernels.im2col.col2im``; the math is in reference/tier.py col2im."""
    return _unfold.col2im(_np.ascontiguousarray(cols), *in_hw, *strides, pads[0], pads[2])

# ------------------------------------------------ average pooling (1-D pooling is the 2-D one on 1 x W images)
from .pooling import avg_pool2d_backward, avg_pool2d_forward  # noqa: E402,F401

# ------------------------------------------------ batch normalization
from .normalization import batch_norm_backward, batch_norm_forward  # noqa: E402,F401


# ------------------------------------------------ Winograd convolution (nb.functional.conv2d_winograd)
from . import winograd as _winograd  # noqa: E402


def conv2d_winograd_forward(x, W, pads, tile=2):
    """y = conv(x, W) by Winograd F(m x m, 3 x 3), m = ``tile``; mirrors reference/tier.py conv2d_winograd_forward.

    ``fast/winograd.py``'s route: Numba transforms (F(2, 3) or F(4, 3) written out), BLAS products.
    """
    return _winograd.forward(x, W, None, pads, False, tile)


def conv2d_winograd_backward(gy, x, W, pads, tile=2, need_gx=True, need_gW=True):
    """(gx, gW) by Winograd, None where not needed; mirrors reference/tier.py conv2d_winograd_backward
    (``fast/winograd.py: backward``: gy's tiles transformed once for both)."""
    if not (need_gx or need_gW):
        return None, None
    return _winograd.backward(x, gy, W if need_gx else None, pads, tile, need_gx, need_gW)

# ------------------------------------------------ Conv2D(relu) -> MaxPooling2D fused per chunk
from .conv_pool import conv2d_relu_maxpool_backward, conv2d_relu_maxpool_forward  # noqa: E402,F401
