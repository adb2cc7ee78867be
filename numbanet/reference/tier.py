"""The reference tier's functions, called by the engine's Functions through ``engine.tiers.current``.

Each one is the textbook computation, built from this package's topic modules
(``conv``, ``pooling``, ``linear``, ...); ``numbanet/fast/tier.py`` has the same
names and signatures and gives the same numbers within rounding.
"""
from __future__ import annotations

from . import activations as A
from . import conv, pooling, upsample

# ------------------------------------------------ convolution, pooling, upsampling
# Shapes: x (N, H, W, C), W (KH, KW, C, F) (a transposed convolution's (KH, KW, F, C)),
# b (F,) or None, strides (SH, SW), pads (PT, PB, PL, PR), y (N, OH, OW, F).
# activation: None or "relu", applied after the bias as its own step.
CONV_ACTIVATIONS = {None: (A.linear, A.d_linear), "relu": (A.relu, A.d_relu)}   # name -> (f, f' from y)


def conv2d_forward(x, W, b, strides, pads, activation=None):
    """y = act(z), z = conv(x, W) + b = im2col(x) @ W2 + b:  (N, H, W, C) -> (N, OH, OW, F).

    Three plain steps: the convolution, the bias, the activation.
    fast tier: numbanet.fast.conv.conv2d_forward.
    """
    z = conv.conv2d_forward(x, W, b, *strides, pads)
    return CONV_ACTIVATIONS[activation][0](z)


def conv2d_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """The three gradients of y = act(conv(x, W) + b), given gy = dL/dy (N, OH, OW, F):

        gz = gy * act'(y)                      (N, OH, OW, F)   back through the activation
        gx = col2im(gz2 @ W2^T)                (N, H, W, C)     the input gradient
        gW = im2col(x)^T @ gz2                 (KH, KW, C, F)   the weight gradient
        gb = sum of gz over N, OH, OW          (F,)             the bias gradient

    Each is None where not needed. fast tier: numbanet.fast.conv.conv2d_backward.
    """
    SH, SW = strides
    gz = gy if activation is None else gy * CONV_ACTIVATIONS[activation][1](y)
    gx = conv.conv2d_input_grad(gz, W, x.shape[1], x.shape[2], SH, SW, pads[0], pads[2]) if need_gx else None
    gW = conv.conv2d_weight_grad(x, gz, W.shape, SH, SW, pads) if need_gW else None
    gb = conv.conv2d_bias_grad(gz) if need_gb else None
    return gx, gW, gb


def conv2d_transpose_forward(x, W, b, strides, out_hw, pads, activation=None):
    """y = act(z), z = the convolution's INPUT GRADIENT of x, plus b:  (N, H, W, C) -> (N, OH, OW, F).

    W (KH, KW, F, C) read as a convolution kernel maps an (OH, OW, F) image to an
    (H, W, C) one with ``pads``; the transposed convolution runs that map backwards,
    z = col2im(x2 @ W2^T) + b. fast tier: numbanet.fast.conv.conv2d_transpose_forward.
    """
    z = conv.conv2d_transpose_forward(x, W, b, *out_hw, *strides, pads)
    return CONV_ACTIVATIONS[activation][0](z)


def conv2d_transpose_backward(gy, x, W, y, strides, pads, activation, need_gx=True, need_gW=True, need_gb=True):
    """The three gradients of the transposed convolution: the convolution's own passes, roles swapped.

        gz = gy * act'(y)                      (N, OH, OW, F)
        gx = conv(gz, W) = im2col(gz) @ W2     (N, H, W, C)     the convolution's forward pass
        gW = im2col(gz)^T @ x2                 (KH, KW, F, C)   its weight gradient, gz as the input
        gb = sum of gz over N, OH, OW          (F,)

    Each is None where not needed. fast tier: numbanet.fast.conv.conv2d_transpose_backward.
    """
    SH, SW = strides
    gz = gy if activation is None else gy * CONV_ACTIVATIONS[activation][1](y)
    gx = conv.conv2d_forward(gz, W, None, SH, SW, pads) if need_gx else None
    gW = conv.conv2d_weight_grad(gz, x, W.shape, SH, SW, pads) if need_gW else None
    gb = conv.conv2d_bias_grad(gz) if need_gb else None
    return gx, gW, gb


def max_pool2d_forward(x, pool, strides, pads, out_hw):
    """(y, arg): y the maximum of each window (padding -inf), arg the window-local index i*KW + j
    of its first maximum:  x (N, H, W, C) -> y, arg (N, OH, OW, C).

    fast tier: numbanet.fast.pooling.max_pool2d_forward.
    """
    return pooling.max_pool2d_forward(x, *pool, *strides, pads[0], pads[2], *out_hw)


def max_pool2d_backward(gy, arg, pool, strides, pads, in_hw):
    """gx (N, H, W, C): gy[n, oh, ow, c] goes to the cell arg names in its window, 0 elsewhere
    (summed where windows overlap).  fast tier: numbanet.fast.pooling.max_pool2d_backward.
    """
    return pooling.max_pool2d_backward(gy, arg, *pool, *strides, pads[0], pads[2], *in_hw)


def upsample2d_forward(x, size, interpolation):
    """x (N, H, W, C) -> y (N, H*SH, W*SW, C): "nearest" repeats pixels, "bilinear" y = A_H x A_W^T.

    fast tier: numbanet.fast.pooling.upsample2d_forward.
    """
    if interpolation == "nearest":
        return upsample.upsample_nearest_forward(x, *size)
    return upsample.upsample_bilinear_forward(x, *size)


def upsample2d_backward(gy, size, interpolation):
    """gy (N, H*SH, W*SW, C) -> gx (N, H, W, C): "nearest" block sums, "bilinear" A_H^T gy A_W.

    fast tier: numbanet.fast.pooling.upsample2d_backward.
    """
    if interpolation == "nearest":
        return upsample.upsample_nearest_backward(gy, *size)
    return upsample.upsample_bilinear_backward(gy, *size)


# ------------------------------------------------ dense, sequences, losses, optimizers
import numpy as np  # noqa: E402

from . import embedding as _embedding  # noqa: E402
from . import linear as _linear  # noqa: E402
from . import losses as _losses  # noqa: E402
from . import optimizers as _optimizers  # noqa: E402
from . import recurrent as _recurrent  # noqa: E402
from .activations import FROM_OUTPUT as _FROM_OUTPUT  # noqa: E402


def dense_forward(x, W, b=None, activation=None):
    """y = f(x @ W + b) in three plain steps: the product, the bias, the activation.

    x (B, D), W (D, U), b (U,) or None -> y (B, U); ``activation`` None, "tanh",
    "relu" or "sigmoid" (f, from ``activations.FROM_OUTPUT``).
    """
    z = _linear.linear_forward(x, W, b)                   # z = x @ W + b
    return z if activation is None else _FROM_OUTPUT[activation][0](z)


def dense_backward(gy, x, W, y=None, activation=None, need_gx=True, need_gb=True):
    """(gx, gW, gb) of y = f(x @ W + b), from gy (B, U) and the output y (B, U).

        gz = gy * f'(z)       f' read from y: tanh 1 - y^2, relu [y > 0], sigmoid y (1 - y)
        gx = gz @ W^T         (B, U) @ (U, D) -> (B, D)       None unless need_gx
        gW = x^T @ gz         (D, B) @ (B, U) -> (D, U)
        gb = sum_B gz         (U,)                            None unless need_gb
    """
    gz = gy if activation is None else gy * _FROM_OUTPUT[activation][1](y)
    gx, gW, gb = _linear.linear_backward(gz, x, W)
    return (gx if need_gx else None), gW, (gb if need_gb else None)


def embedding_backward(ids, gy, V):
    """gW (V, D) = zeros, then gW[ids[p]] += gy[p] for every position p (``embedding.embedding_backward``).

    ids (...) int in [0, V), gy (..., D) -> gW (V, D).
    """
    return _embedding.embedding_backward(ids, gy, V)


def simple_rnn_forward(x, W, R, b=None, h0=None, activation="tanh", return_sequences=True, go_backwards=False,
                       mask=None):
    """(y, saved): y (N, T, U) the outputs in processing order, or h_T (N, U) unless return_sequences.

    x (N, T, D), W (D, U), R (U, U), b (U,) or None, h0 (N, U) or None (zeros),
    mask (N, T) bool or None; the recurrence is ``recurrent.simple_rnn_forward``.
    ``saved`` is the arguments themselves: the backward recomputes the states.
    """
    y = _recurrent.simple_rnn_forward(x, W, R, b, h0, activation, go_backwards, mask)   # (N, T, U)
    saved = (x, W, R, b, h0, activation, return_sequences, go_backwards, mask)
    return (y if return_sequences else y[:, -1]), saved


def simple_rnn_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx (N, T, D), gW (D, U), gR (U, U), gb (U,), gh0 (N, U)) by backpropagation through time.

    gy is the gradient of the forward's y: (N, T, U), or (N, U) for h_T alone
    (then the other steps' outputs get none). gx is None unless need_gx, gb
    None without a bias, gh0 None without h0. BPTT is ``recurrent.simple_rnn_backward``.
    dh_out: None (nothing recorded), or an (N, T, U) array that receives
    dL/dh_t for every step t in processing order (GradientHealth's per-step norms).
    """
    x, W, R, b, h0, activation, return_sequences, go_backwards, mask = saved
    if not return_sequences:                              # only h_T was an output
        gy_all = np.zeros(x.shape[:2] + (W.shape[1],), dtype=gy.dtype)
        gy_all[:, -1] = gy
        gy = gy_all
    gx, gW, gR, gb, gh0 = _recurrent.simple_rnn_backward(gy, x, W, R, b, h0, activation, go_backwards, mask,
                                                         dh_out)
    return (gx if need_gx else None), gW, gR, (gb if b is not None else None), (gh0 if h0 is not None else None)


def sparse_ce_forward(labels, z):
    """(l, saved): l (B,) = -log_softmax(z)[label] per row, from logits z (B, V) and labels (B,) ints.

    ``saved`` is z: the backward recomputes the softmax.
    """
    return _losses.sparse_categorical_crossentropy(labels, z, from_logits=True), z


def sparse_ce_backward(labels, saved, c):
    """dL/dz (B, V) = c (softmax(z) - one_hot(label)), c (B,) or a scalar: dL/dl per row."""
    return _losses.sparse_categorical_crossentropy_backward(labels, saved, c, from_logits=True)


def binary_ce_forward(t, p, from_logits=False):
    """l (S,): binary cross-entropy of each value of p (S..., D) against t (p's shape), mean over D.

    From probabilities: q = clip(p, 1e-7, 1 - 1e-7), l = -mean_D(t log q + (1 - t) log(1 - q));
    from logits z = p: l = mean_D(max(z, 0) - z t + log(1 + exp(-|z|))). A 1-D p keeps one
    value per element (S = p's shape). ``losses.binary_crossentropy``.
    """
    return _losses.binary_crossentropy(t, p, from_logits)


def binary_ce_backward(t, p, c, from_logits=False):
    """dL/dp (p's shape) = c / D * (-t / q + (1 - t) / (1 - q)), 0 where the clip bound p;
    from logits c / D * (sigmoid(z) - t). c (S,) or a scalar: dL/dl per value.
    ``losses.binary_crossentropy_backward``."""
    return _losses.binary_crossentropy_backward(t, p, c, from_logits)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), x of any shape (``activations.sigmoid``)."""
    return A.sigmoid(x)


def sigmoid_backward(gy, y):
    """gx = gy * y (1 - y), from the output y and gy = dL/dy, both of y's shape (``activations.d_sigmoid``)."""
    return gy * A.d_sigmoid(y)


def sgd_update(w, g, lr, m=None, momentum=0.0, nesterov=False):
    """w <- w - lr g; with momentum m <- momentum m - lr g, w <- w + m (``optimizers.sgd``). In place."""
    _optimizers.sgd(w, g, lr, m, momentum, nesterov)


def adam_update(w, g, m, v, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, v_hat=None):
    """Adam's step t (from 1) on w, m, v (and v_hat with amsgrad), in place (``optimizers.adam``):

        m <- m + (1 - beta_1) (g - m)
        v <- v + (1 - beta_2) (g^2 - v)
        w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)
    """
    _optimizers.adam(w, g, m, v, t, lr, beta_1, beta_2, epsilon, v_hat)


def adagrad_update(w, g, a, lr, epsilon=1e-7):
    """a <- a + g^2;  w <- w - lr g / sqrt(a + epsilon), in place (``optimizers.adagrad``)."""
    _optimizers.adagrad(w, g, a, lr, epsilon)


def rmsprop_update(w, g, v, lr, rho=0.9, epsilon=1e-7, mg=None, b=None, momentum=0.0):
    """v <- rho v + (1 - rho) g^2;  w <- w - lr g / sqrt(v + epsilon), in place (``optimizers.rmsprop``;
    centered with mg, momentum with b)."""
    _optimizers.rmsprop(w, g, v, lr, rho, epsilon, mg, b, momentum)


def adadelta_update(w, g, Eg2, Edw2, lr, rho=0.95, epsilon=1e-7):
    """E[g^2], dw = -sqrt(E[dw^2] + eps) / sqrt(E[g^2] + eps) g, E[dw^2], w <- w + lr dw, in place
    (``optimizers.adadelta``)."""
    _optimizers.adadelta(w, g, Eg2, Edw2, lr, rho, epsilon)


# ------------------------------------------------ im2col / col2im on their own (nb.functional.im2col)
def im2col(x, kernel, strides, pads):
    """cols[n, oh, ow, i, j, c] = xp[n, oh SH + i, ow SW + j, c], xp = x zero-padded by pads.

    x (N, H, W, C), kernel (KH, KW), strides (SH, SW), pads (PT, PB, PL, PR)
    -> cols (N, OH, OW, KH, KW, C), OH = (H + PT + PB - KH) // SH + 1 (OW alike);
    ``conv.im2col``.
    """
    return conv.im2col(x, *kernel, *strides, *pads)


def col2im(cols, in_hw, strides, pads):
    """The adjoint of ``im2col``: each cols entry added back to the pixel it was read from.

    cols (N, OH, OW, KH, KW, C), in_hw (H, W) -> x (N, H, W, C); padded entries
    are dropped; ``conv.col2im``.
    """
    return conv.col2im(cols, *in_hw, *strides, pads[0], pads[2])


# ------------------------------------------------ Nadam, Adamax, decoupled weight decay
def nadam_update(w, g, m, v, t, lr, u_product, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Nadam's step t (from 1) on w, m, v, in place (``optimizers.nadam``); u_product = u_1 ... u_t,
    u_s = beta_1 (1 - 0.5 * 0.96^s):

        m <- m + (1 - beta_1) (g - m);  v <- v + (1 - beta_2) (g^2 - v)
        m_hat = u_t+1 m / (1 - u_product u_t+1) + (1 - u_t) g / (1 - u_product)
        w <- w - lr m_hat / (sqrt(v / (1 - beta_2^t)) + epsilon)
    """
    _optimizers.nadam(w, g, m, v, t, lr, u_product, beta_1, beta_2, epsilon)


def adamax_update(w, g, m, u, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adamax's step t (from 1) on w, m, u, in place (``optimizers.adamax``):

        m <- m + (1 - beta_1) (g - m);  u <- max(beta_2 u, |g|)
        w <- w - lr m / ((1 - beta_1^t) (u + epsilon))
    """
    _optimizers.adamax(w, g, m, u, t, lr, beta_1, beta_2, epsilon)


def weight_decay_update(w, lr, decay):
    """w <- w - w * decay * lr, in place (``optimizers.weight_decay``), before the optimizer's own step."""
    _optimizers.weight_decay(w, lr, decay)


# ------------------------------------------------ the gated recurrent unit (GRU)
from . import gru as _gru  # noqa: E402


def gru_forward(x, W, R, b=None, h0=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                return_sequences=True, go_backwards=False, mask=None):
    """(y, saved): y (N, T, U) the outputs in processing order, or h_T (N, U) unless return_sequences.

    x (N, T, D), W (D, 3U), R (U, 3U), b (2, 3U) if reset_after else (3U,), or None;
    h0 (N, U) or None (zeros); mask (N, T) bool or None. Gates z, r, c in that
    column order; the recurrence is ``gru.gru_forward`` (the math in ``reference/gru.py``).
    ``saved`` is the arguments themselves: the backward recomputes the gates.
    """
    y = _gru.gru_forward(x, W, R, b, h0, activation, recurrent_activation, reset_after, go_backwards, mask)
    saved = (x, W, R, b, h0, activation, recurrent_activation, reset_after, return_sequences, go_backwards, mask)
    return (y if return_sequences else y[:, -1]), saved


def gru_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx (N, T, D), gW (D, 3U), gR (U, 3U), gb (b's shape), gh0 (N, U)) by backpropagation through time.

    gy is the gradient of the forward's y: (N, T, U), or (N, U) for h_T alone (then
    the other steps' outputs get none). gx is None unless need_gx, gb None without a
    bias, gh0 None without h0. BPTT is ``gru.gru_backward``.
    dh_out: None (nothing recorded), or an (N, T, U) array that receives
    dL/dh_t for every step t in processing order (GradientHealth's per-step norms).
    """
    x, W, R, b, h0, activation, recurrent_activation, reset_after, return_sequences, go_backwards, mask = saved
    if not return_sequences:                              # only h_T was an output
        gy_all = np.zeros(x.shape[:2] + (R.shape[0],), dtype=gy.dtype)
        gy_all[:, -1] = gy
        gy = gy_all
    gx, gW, gR, gb, gh0 = _gru.gru_backward(gy, x, W, R, b, h0, activation, recurrent_activation, reset_after,
                                            go_backwards, mask, dh_out)
    return (gx if need_gx else None), gW, gR, gb, (gh0 if h0 is not None else None)


# ------------------------------------------------ LSTM
# Shapes: x (N, T, D), W (D, 4U), R (U, 4U), b (4U,) or None, h0 and c0 (N, U) or None (zeros),
# mask (N, T) bool or None; gates in Keras's order i, f, c, o (``lstm.py`` has the math).
# The node's output y is the output with, under return_state, the final states stacked on
# along the time axis:
#   return_sequences, return_state:   (N, T+2, U) = [y_1 .. y_T, h_T, c_T]
#   return_state only:                (N, 3, U)   = [y_T, h_T, c_T]
#   return_sequences only:            (N, T, U);  neither: y_T (N, U)
from . import lstm as _lstm  # noqa: E402


def lstm_forward(x, W, R, b=None, h0=None, c0=None, activation="tanh", recurrent_activation="sigmoid",
                 return_sequences=True, return_state=False, go_backwards=False, mask=None):
    """(y, saved): the LSTM's outputs in processing order (and h_T, c_T if return_state), laid out
    as in the comment above; the recurrence is ``lstm.lstm_forward``.

    ``saved`` is the arguments themselves: the backward recomputes the states and gates.
    """
    y, h_T, c_T = _lstm.lstm_forward(x, W, R, b, h0, c0, activation, recurrent_activation, go_backwards, mask)
    out = y if return_sequences else y[:, -1:]                       # (N, T, U) or (N, 1, U)
    if return_state:
        out = np.concatenate([out, h_T[:, None], c_T[:, None]], axis=1)
    elif not return_sequences:
        out = out[:, 0]                                              # y_T (N, U)
    saved = (x, W, R, b, h0, c0, activation, recurrent_activation, return_sequences, return_state,
             go_backwards, mask)
    return out, saved


def lstm_backward(gy, saved, need_gx=True, dh_out=None):
    """(gx (N, T, D), gW (D, 4U), gR (U, 4U), gb (4U,), gh0 (N, U), gc0 (N, U)) by BPTT.

    gy is the gradient of the forward's y, laid out as y is. gx is None unless
    need_gx, gb None without a bias, gh0 / gc0 None without h0 / c0. BPTT is
    ``lstm.lstm_backward``. dh_out: None (nothing recorded), or an (N, T, U) array
    that receives dL/dh_t for every step t in processing order (GradientHealth's
    per-step norms; dh_T includes the gradient of a returned h_T).
    """
    x, W, R, b, h0, c0, activation, recurrent_activation, return_sequences, return_state, go_backwards, mask = saved
    N, T, _ = x.shape
    U = R.shape[0]
    gh, gc = np.zeros((N, U), gy.dtype), np.zeros((N, U), gy.dtype)
    if return_state:                                                 # split off the states' gradients
        gy, gh, gc = gy[:, :-2], gy[:, -2], gy[:, -1]
    if not return_sequences:                                         # only y_T was an output
        gy_all = np.zeros((N, T, U), dtype=gy.dtype)
        gy_all[:, -1] = gy.reshape(N, U)
        gy = gy_all
    gx, gW, gR, gb, gh0, gc0 = _lstm.lstm_backward(gy, gh, gc, x, W, R, b, h0, c0, activation,
                                                   recurrent_activation, go_backwards, mask, dh_out)
    return ((gx if need_gx else None), gW, gR, (gb if b is not None else None),
            (gh0 if h0 is not None else None), (gc0 if c0 is not None else None))


# ------------------------------------------------ average pooling (1-D pooling is the 2-D one on 1 x W images)
def avg_pool2d_forward(x, pool, strides, pads, out_hw):
    """y (N, OH, OW, C): the mean of each window's real cells (padding is not counted), x (N, H, W, C).

        y[n, oh, ow, c] = sum of the window's real cells / their number

    fast tier: numbanet.fast.pooling.avg_pool2d_forward.
    """
    return pooling.avg_pool2d_forward(x, *pool, *strides, pads[0], pads[2], *out_hw)


def avg_pool2d_backward(gy, pool, strides, pads, in_hw):
    """gx (N, H, W, C): each gy[n, oh, ow, c] shared equally among the real cells of its window
    (summed where windows overlap).  fast tier: numbanet.fast.pooling.avg_pool2d_backward.
    """
    return pooling.avg_pool2d_backward(gy, *pool, *strides, pads[0], pads[2], *in_hw)


# ------------------------------------------------ batch normalization
from . import normalization as _normalization  # noqa: E402


def batch_norm_forward(x, gamma, beta, eps):
    """(y, mean, var) of training-mode batch normalization over the rows of x, step by step:

        mean = (1/M) sum_m x[m]                 var = (1/M) sum_m (x[m] - mean)^2   (biased)
        y    = gamma (x - mean) / sqrt(var + eps) + beta

    x (M, C), gamma and beta (C,) or None (scale 1, offset 0), eps > 0 -> y (M, C), mean (C,),
    var (C,). The steps are ``normalization.batch_norm_forward``.
    """
    y, mean, var, _ = _normalization.batch_norm_forward(x, gamma, beta, eps)
    return y, mean, var


def batch_norm_backward(gy, x, mean, var, gamma, eps, need_gx=True):
    """(gx (M, C), ggamma (C,), gbeta (C,)) of ``batch_norm_forward`` from gy (M, C).

    The forward's intermediates are recomputed from x and the batch's mean and var, then
    the chain rule runs back through them one line at a time (``normalization.
    batch_norm_backward``: gbeta, ggamma, gxhat, ginv, gxc, gstd, gvar, gsq, gmu, gx).
    gx is None unless need_gx.
    """
    cache = _normalization.forward_intermediates(x, mean, var, gamma, eps)
    gx, ggamma, gbeta = _normalization.batch_norm_backward(gy, cache)
    return (gx if need_gx else None), ggamma, gbeta


# ------------------------------------------------ Winograd convolution (nb.functional.conv2d_winograd)
def conv2d_winograd_forward(x, W, pads, tile=2):
    """y = conv(x, W) by Winograd F(m x m, 3 x 3), m = ``tile``: y = A^T [(G W G^T) * (B^T d B)] A per tile.

    x (N, H, W, C), W (3, 3, C, F), pads (PT, PB, PL, PR) -> y (N, OH, OW, F);
    ``winograd.winograd_conv2d`` (the matrices and their derivation are there).
    """
    return winograd.winograd_conv2d(x, W, pads, tile)


def conv2d_winograd_backward(gy, x, W, pads, tile=2, need_gx=True, need_gW=True):
    """(gx, gW) of y = conv(x, W) by Winograd, None where not needed; gy (N, OH, OW, F); both by the
    transpose of the forward pass, from gy's tiles gM = A gY A^T:

        gx = the tiles B (gM @ U^T) B^T added back into x   (N, H, W, C)     ``winograd.winograd_input_grad_transposed``
        gW = G^T (sum over tiles V^T @ gM) G                 (3, 3, C, F)     ``winograd.winograd_weight_grad``

    (``winograd.winograd_input_grad`` gets the same gx as a Winograd convolution of gy with
    the flipped kernel.)
    """
    gx = winograd.winograd_input_grad_transposed(gy, W, x.shape[1:3], pads, tile) if need_gx else None
    gW = winograd.winograd_weight_grad(x, gy, pads, tile) if need_gW else None
    return gx, gW


from . import winograd  # noqa: E402


# ------------------------------------------------ Conv2D(relu) -> MaxPooling2D as one composite
def conv2d_relu_maxpool_forward(x, W, b, strides, pads, pool, pool_strides, pool_pads, pool_out_hw,
                                activation="relu"):
    """(p, arg) = max_pool(act(conv(x, W) + b)): the two functions above, one after the other.

        y = act(conv(x, W) + b)         (N, OH, OW, F)   ``conv2d_forward``, act relu or None (identity)
        p, arg = max_pool(y)            (N, PH, PW, F)   ``max_pool2d_forward`` (arg: window-local arg-max)

    x (N, H, W, C), W (KH, KW, C, F), b (F,) or None. The fast tier computes the
    same p and arg chunk by chunk without storing y (``fast/conv_pool.py``).
    """
    y = conv2d_forward(x, W, b, strides, pads, activation)
    return max_pool2d_forward(y, pool, pool_strides, pool_pads, pool_out_hw)


def conv2d_relu_maxpool_backward(gp, x, W, p, arg, strides, pads, pool, pool_strides, pool_pads, conv_out_hw,
                                 need_gx=True, need_gW=True, need_gb=True, activation="relu"):
    """(gx, gW, gb) of p = max_pool(act(conv(x, W) + b)), None where not needed; gp (N, PH, PW, F).

        gy = max_pool backward of gp * [p > 0]     (N, OH, OW, F)   the relu mask read at the arg-max
                                                                     cells, where y = p (no mask
                                                                     without the relu)
        gx, gW, gb = conv2d_backward(gy, ...)      no activation left to undo
    """
    gp = gp * (p > 0) if activation == "relu" else gp
    gy = max_pool2d_backward(gp, arg, pool, pool_strides, pool_pads, conv_out_hw)
    return conv2d_backward(gy, x, W, None, strides, pads, None, need_gx, need_gW, need_gb)
