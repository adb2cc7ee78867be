"""The fast tier: the same array computations as ``numbanet.reference``, made fast.

Everything about *how fast* lives here, and nothing about *what* is computed
(that is the engine's Functions and the reference tier's textbook functions):

    tier.py       the functions the engine calls (the same names and signatures as
                  ``numbanet/reference/tier.py``); each picks a route and runs it
    tuning.py     every tuning constant (chunk bytes, split thresholds), each with the
                  measurement that set it
    parallel.py   the batch split over threads, and the BLAS thread count
    workspace.py  reusable scratch buffers
    kernels/      the @njit loops (im2col/col2im, direct convolution, pooling,
                  upsampling, embedding scatter-add, elementwise masks)
    dense.py, recurrent.py, embedding.py, losses.py, optimizers.py
                  the routes of the dense layer, SimpleRNN, the embedding gradient,
                  the sparse cross-entropy and the optimizer updates
    routes.py     the route each function took on its last call: ``routes.last()``
"""
from . import routes  # noqa: F401  (nb.fast.routes.last() without a further import)
