"""The reference tier: every array computation of numbanet, written as a textbook would.

Plain NumPy on plain ndarrays, forward and backward, one short function each: no
threads, no scratch buffers, no chunking, no fused flags, no Numba. Each docstring
gives the formula and the shapes (N, H, W, C, KH, KW, SH, SW, OH, OW, T, D, U, V;
F filters, K = KH*KW*C) and names the fast-tier function it mirrors. The two tiers
compute the same numbers (within floating-point rounding) and test each other
(``tests/test_tiers.py``).

Reading order, each module building on the ones before it:

1. ``activations`` -- elementwise activations and their derivatives, softmax, log-softmax.
2. ``linear``      -- the dense layer y = x @ W + b and its three gradients; dropout.
3. ``losses``      -- per-sample losses with Keras's clipping, their gradients, the batch mean.
4. ``optimizers``  -- SGD, Adam, Adagrad, RMSprop, Adadelta, and gradient clipping.
5. ``padding``     -- output sizes and "same"/"valid" padding (the Keras rule).
6. ``conv``        -- im2col and col2im as loops over kernel offsets; convolution as one
                      matrix product; its three gradients; the transposed convolution as
                      the convolution's input gradient.
7. ``pooling``     -- max pooling through im2col, and the gradient routed to the arg-max.
8. ``upsample``    -- nearest and bilinear upsampling, the backward as the transposed map.
9. ``embedding``   -- a gather forward, a scatter-add (``np.add.at``) backward.
10. ``recurrent``  -- SimpleRNN as a loop over time, and backpropagation through time.
"""
from . import activations, conv, embedding, linear, losses, optimizers, padding, pooling, recurrent, upsample

__all__ = ["activations", "linear", "losses", "optimizers", "padding", "conv", "pooling", "upsample",
           "embedding", "recurrent"]
