"""The vanilla recurrent network as ONE differentiable node: forward loop + BPTT.

Notation: N batch, T time steps, D input features, U units.
x (N, T, D), W = kernel (D, U), R = recurrent_kernel (U, U), b (U,), h_0 (N, U).

Forward (the recurrence)::

    z_t = x_t W + b                      all t at once: ONE (T*N, D) @ (D, U) product
    a_t = z_t + h_{t-1} R                the only truly sequential work
    h_t = f(a_t)                         f = tanh | relu | sigmoid | linear

Backward (backpropagation through time). The loss L sees h_t directly (through
the returned sequence, gy_t; only gy_T when just the last state is returned)
and indirectly through h_{t+1}. Walking t = T..1 with a carried ``dh``::

    dh_t  = gy_t + da_{t+1} R^T          (da_{T+1} = 0)
    da_t  = dh_t * f'(a_t)               f' from the output: tanh 1-h^2, relu [h>0],
                                         sigmoid h(1-h), linear 1
    gR    = sum_t h_{t-1}^T da_t         (U, U)     } after the loop, each ONE
    gW    = sum_t x_t^T da_t             (D, U)     } matrix product over all
    gb    = sum_t sum_n da_t             (U,)       } T*N rows at once
    gx_t  = da_t W^T                     (N, D)     }
    gh_0  = da_1 R^T                     (N, U)     (the ``dh`` left after the loop)

Memory: the forward keeps H (T, N, U) (needed by f' and gR) and the time-major
input; each step of either loop writes into preallocated buffers, so the loops
allocate nothing. Arrays are time-major (T, N, .) inside, so that step t is one
contiguous (N, U) block for BLAS. (Measured: keeping the caller's (N, T, .)
layout and stepping through strided views H[:, t] saves three transposed
copies but is slower, 1.5 vs 1.1 ms forward and 2.8 vs 2.1 ms backward for
N=64, T=20, D=U=256: rows T*U apart thrash the cache.)

``go_backwards``: the input is read from t = T down to 1 and the output sequence
is returned in that processing order (Keras semantics, not flipped back).

``mask`` (N, T), optional, m_t = 1 for real steps and 0 for padding (what
``Embedding(mask_zero=True).compute_mask`` gives). A masked step keeps the state,
and its output repeats the previous output (0 before the first real step), as
Keras does::

    h_t   = m_t f(a_t) + (1 - m_t) h_{t-1}
    y_t   = h_t * s_t,  s_t = [some m_k = 1 for k <= t]
    da_t  = m_t dh_t * f'(a_t)
    dh_{t-1} = da_t R^T + (1 - m_t) dh_t       (a masked step passes dh straight back)
"""
from __future__ import annotations

import numpy as np

from .ops import IN_PLACE_ACTIVATIONS
from .tensor import Function


ACTIVATIONS = IN_PLACE_ACTIVATIONS   # name -> (f in place, f' from the output), engine/ops.py


class SimpleRNN(Function):
    """The whole sequence h_1..h_T of a vanilla RNN as one graph node.

    Inputs: x (N, T, D), W (D, U), R (U, U), then b (U,) if ``use_bias`` and
    h0 (N, U) if ``has_h0`` (else h_0 = 0).
    Output: H (N, T, U) if ``return_sequences`` else h_T (N, U).
    """

    def __init__(self, activation="tanh", use_bias=True, has_h0=False,
                 return_sequences=True, go_backwards=False, mask=None):
        self.f, self.df = ACTIVATIONS[activation]
        self.use_bias, self.has_h0 = use_bias, has_h0
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.mask = mask  # (N, T) bool or None; not an input: it has no gradient

    def _time_major_mask(self, dtype):
        """m (T, N, 1) in ``dtype`` and s (T, N, 1) = [a real step was seen up to t]; or None, None."""
        if self.mask is None:
            return None, None
        m = self.mask[:, ::-1] if self.go_backwards else self.mask
        m = np.ascontiguousarray(m.T, dtype=dtype)[:, :, None]     # (N, T) -> (T, N, 1)
        return m, (np.cumsum(m, axis=0) > 0).astype(dtype)

    # ------------------------------------------------------------ forward
    def forward(self, x, W, R, *rest):
        b = rest[0] if self.use_bias else None
        N, T, D = x.shape
        U = W.shape[1]
        h0 = rest[-1].astype(x.dtype, copy=False) if self.has_h0 else np.zeros((N, U), x.dtype)
        if self.go_backwards:
            x = x[:, ::-1]                                     # read time in reverse
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))       # (N, T, D) -> (T, N, D)
        H = xt.reshape(T * N, D) @ W                          # z_t for every t: (T*N, D) @ (D, U)
        if b is not None:
            H += b
        H = H.reshape(T, N, U)                                # (T*N, U) -> (T, N, U)
        self.m, self.seen = self._time_major_mask(x.dtype)
        self._recur(H, h0, R)
        self.xt, self.H, self.h0, self.W, self.R = xt, H, h0, W, R
        Y = H if self.m is None else H * self.seen            # outputs: 0 before the first real step
        if self.return_sequences:
            return np.ascontiguousarray(Y.transpose(1, 0, 2))  # (T, N, U) -> (N, T, U)
        return Y[-1].copy()                                    # h_T (N, U)

    def _recur(self, H, h0, R):
        """In place over H (T, N, U) holding z_t:  H[t] = f(H[t] + h_{t-1} R)."""
        rec = np.empty_like(h0)                                # (N, U), reused every step
        h_prev = h0
        for t in range(H.shape[0]):
            np.matmul(h_prev, R, out=rec)                      # h_{t-1} R
            H[t] += rec                                        # a_t = z_t + h_{t-1} R
            self.f(H[t])                                       # h_t = f(a_t), in place
            if self.m is not None:                             # masked rows keep h_{t-1}
                np.copyto(H[t], h_prev, where=self.m[t] == 0)
            h_prev = H[t]

    # ----------------------------------------------------------- backward
    def backward(self, gy):
        H, xt, W, R = self.H, self.xt, self.W, self.R
        T, N, U = H.shape
        D = xt.shape[2]
        dA = self._bptt(gy)                                    # (T, N, U): da_t for every t
        dA2 = dA.reshape(T * N, U)
        gW = xt.reshape(T * N, D).T @ dA2                      # sum_t x_t^T da_t      (D, U)
        gR = self.h0.T @ dA[0]                                 # h_0^T da_1 ...
        if T > 1:                                              # ... + sum_{t>1} h_{t-1}^T da_t
            gR += H[:-1].reshape((T - 1) * N, U).T @ dA[1:].reshape((T - 1) * N, U)
        gx = None
        if self.inputs[0] is not None and self.inputs[0].requires_grad:  # skipped for raw data
            gx = (dA2 @ W.T).reshape(T, N, D).transpose(1, 0, 2)  # (T*N, D) -> (N, T, D)
            if self.go_backwards:
                gx = gx[:, ::-1]                               # back to the caller's time order
            gx = np.ascontiguousarray(gx)
        grads = [gx, gW, gR]
        if self.use_bias:
            grads.append(dA2.sum(axis=0))                      # gb (U,)
        if self.has_h0:
            grads.append(self.gh0)
        return tuple(grads)

    def _bptt(self, gy):
        """The backward loop t = T..1; returns da (T, N, U) and keeps gh_0 = dh_0."""
        H, R = self.H, self.R
        T = H.shape[0]
        m, seen = self.m, self.seen
        dA = self.df(H)                                        # f'(a_t) now, da_t after the loop
        dh = np.zeros_like(H[0])                               # (N, U) carried gradient
        gH = gy.transpose(1, 0, 2) if self.return_sequences else gy[None]  # (T, N, U) view, or (1, N, U)
        if m is not None:
            gH = gH * (seen if self.return_sequences else seen[-1:])   # y_t = h_t * s_t
            rec = np.empty_like(dh)
        for t in range(T - 1, -1, -1):
            if self.return_sequences or t == T - 1:
                dh += gH[t if self.return_sequences else 0]   # dh_t = gy_t + (carried from t+1)
            np.multiply(dh, dA[t], out=dA[t])                  # da_t = dh_t * f'(a_t)
            if m is None:
                np.matmul(dA[t], R.T, out=dh)                  # dh_{t-1} = da_t R^T
            else:
                dA[t] *= m[t]                                  # masked steps: da_t = 0
                np.matmul(dA[t], R.T, out=rec)
                dh *= 1 - m[t]                                 # dh_{t-1} = da_t R^T + (1 - m_t) dh_t
                dh += rec
        self.gh0 = dh
        return dA


def _check_mask(mask, x_shape):
    if mask is None:
        return None
    m = np.asarray(getattr(mask, "data", mask))
    if m.shape != tuple(x_shape[:2]):
        raise ValueError(f"simple_rnn: mask must have shape (batch, time) = {tuple(x_shape[:2])}, got {m.shape}")
    return m.astype(bool)


def _check_shapes(x, W, R, b, h0):
    x_shape, W_shape, R_shape = np.shape(getattr(x, "data", x)), np.shape(getattr(W, "data", W)), np.shape(getattr(R, "data", R))
    if len(x_shape) != 3 or x_shape[1] == 0:
        raise ValueError(f"simple_rnn: x must have shape (batch, time, features) with time >= 1, got {x_shape}")
    if len(W_shape) != 2 or W_shape[0] != x_shape[2]:
        raise ValueError(f"simple_rnn: kernel must have shape (features, units) = ({x_shape[2]}, U), got {W_shape}")
    U = W_shape[1]
    if R_shape != (U, U):
        raise ValueError(f"simple_rnn: recurrent kernel must have shape {(U, U)}, got {R_shape}")
    if b is not None and np.shape(getattr(b, "data", b)) != (U,):
        raise ValueError(f"simple_rnn: bias must have shape {(U,)}, got {np.shape(getattr(b, 'data', b))}")
    if h0 is not None and np.shape(getattr(h0, "data", h0)) != (x_shape[0], U):
        raise ValueError(f"simple_rnn: initial state must have shape {(x_shape[0], U)}, "
                         f"got {np.shape(getattr(h0, 'data', h0))}")


def simple_rnn(x, W, R, b=None, h0=None, activation="tanh", return_sequences=True, go_backwards=False,
               mask=None):
    """Run a vanilla RNN over ``x`` (N, T, D); see the module docstring for the math.

    Returns H (N, T, U) when ``return_sequences`` else h_T (N, U). ``b`` (U,),
    ``h0`` (N, U) and ``mask`` (N, T) are optional. ``activation``: "tanh",
    "relu", "sigmoid" or "linear".
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"simple_rnn: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    _check_shapes(x, W, R, b, h0)
    mask = _check_mask(mask, np.shape(getattr(x, "data", x)))
    fn = SimpleRNN(activation, b is not None, h0 is not None, return_sequences, go_backwards, mask)
    inputs = [x, W, R] + ([b] if b is not None else []) + ([h0] if h0 is not None else [])
    return fn(*inputs)
