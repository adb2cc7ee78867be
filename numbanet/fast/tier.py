"""The fast tier's functions, called by the engine's Functions through ``engine.tiers.active()``.

Same names, signatures and results as ``numbanet/reference/tier.py`` (whose
docstrings give the math and the shapes); here each one picks a route and runs it.
"""
from .conv import (conv2d_backward, conv2d_forward, conv2d_transpose_backward,  # noqa: F401
                   conv2d_transpose_forward)
from .pooling import max_pool2d_backward, max_pool2d_forward, upsample2d_backward, upsample2d_forward  # noqa: F401
