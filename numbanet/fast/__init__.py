"""The fast tier: the same array computations as ``numbanet.reference``, made fast.

Everything about *how fast* lives here, and nothing about *what* is computed
(that is the engine's Functions and the reference tier's textbook functions):

    tier.py       the functions the engine calls (the same names and signatures as
                  ``numbanet/reference/tier.py``); each picks a route and runs it
    tuning.py     every tuning constant (chunk bytes, split thresholds), each with the
                  measurement that set it
    conv.py       the convolutions' routes (direct / flipped / im2col), chunks and fused relu
    pooling.py    max pooling and upsampling on the threads' parts of the batch
    routes.py     which route each function took on its last call (``nb.fast.routes.last()``)
    parallel.py   the batch split over threads, and the BLAS thread count
    workspace.py  reusable scratch buffers
    kernels/      the @njit loops (im2col/col2im, direct convolution, pooling,
                  upsampling, embedding scatter-add, elementwise masks)
    dense.py, recurrent.py, embedding.py, losses.py, optimizers.py
                  the routes of the dense layer, SimpleRNN, the embedding gradient,
                  the sparse cross-entropy and the optimizer updates
"""
from . import routes  # noqa: F401  (nb.fast.routes.last() before any op has run)
