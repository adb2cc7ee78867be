"""A linear model trained by plain SGD, written out in float64, with the rounding-error bound of a
float32 run: the oracle for fit-level comparisons of learning-rate schedules and callbacks with Keras.

The model is one Dense layer without activation and the loss the mean squared error:

    z = X W + b  (B, U),   r = z - Y,   L = mean(r^2)            (over the U outputs, then the B samples)
    gz = 2 r / (B U),   gW = X^T gz  (D, U),   gb = sum_rows gz  (U,)
    W <- W - lr gW,   b <- b - lr gb

A float32 run (numbanet's or Keras's) differs from this float64 computation, started from
the same float32 numbers, by rounding alone. With gamma(n) = n * eps (Higham's n*u bound for
a sum of n terms, times bounds.SAFETY = 2) and E_W, E_b elementwise bounds on |W~ - W|,
|b~ - b| so far, one step adds, elementwise:

    E_r  = |X| E_W + E_b + gamma(D + 2) (|X| |W| + |b| + |Y|)     D products, + b, - Y
    E_gz = 2 E_r / (B U) + gamma(3) |gz|                          the factors 2, 1/U, 1/B
    E_gW = |X|^T E_gz + gamma(B) |X|^T |gz|,   E_gb = sum_rows E_gz + gamma(B) sum_rows |gz|
    E_W <- E_W + lr E_gW + E_lr |gW| + gamma(2) (lr |gW| + |W_new|)     (b alike)

where E_lr bounds the error of the float32 learning rate the run used. A batch
loss mean(r~^2) is off by mean(2 |r| E_r + E_r^2) + gamma(B U + 2) mean(r^2), and the
epoch loss, the batch losses' mean weighted by batch size, by their weighted mean plus
gamma(steps + 2) times the loss. A wrong learning rate at any step moves the weights by
about lr |gW|, some 1e4 times these bounds here.
"""
from __future__ import annotations

import numpy as np

from bounds import SAFETY

EPS32 = float(np.finfo(np.float32).eps)


def gamma(n):
    """SAFETY * n * u (u = eps / 2, the unit roundoff): n * eps, Higham's gamma_n with its margin."""
    return SAFETY * n * (EPS32 / 2)


def data(seed=0, n=20, d=3, u=2):
    """x (n, d), y (n, u), kernel (d, u), bias (u,): float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.standard_normal((n, u)).astype(np.float32)
    W = (rng.standard_normal((d, u)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(u) * 0.1).astype(np.float32)
    return x, y, W, b


def _batch_loss(X, Y, W, b, eW, eb):
    """(loss, bound) of one batch: mean((X W + b - Y)^2) and its float32 error bound."""
    D = X.shape[1]
    r = X @ W + b - Y
    er = np.abs(X) @ eW + eb + gamma(D + 2) * (np.abs(X) @ np.abs(W) + np.abs(b) + np.abs(Y))
    loss = float(np.mean(r * r))
    return loss, float(np.mean(2 * np.abs(r) * er + er * er) + gamma(r.size + 2) * loss), r, er


def sgd_fit(x, y, W, b, batch_size, epochs, lr_at, lr_err, validation_data=None):
    """Train in float64 from the float32 arrays; ``lr_at(epoch, step)`` gives the rate of each update
    (``step`` counted over the whole run) and ``lr_err(epoch, step)`` a bound on the error of the
    rate a float32 run uses there.

    Returns a dict: ``W``, ``b`` (final), ``eW``, ``eb`` (their bounds), ``loss``, ``loss_bound``
    (per epoch) and, with validation data, ``val_loss``, ``val_loss_bound``.
    """
    W, b = W.astype(np.float64), b.astype(np.float64)
    x, y = x.astype(np.float64), y.astype(np.float64)
    eW, eb = np.zeros_like(W), np.zeros_like(b)
    out = {"loss": [], "loss_bound": [], "val_loss": [], "val_loss_bound": []}
    step, N, U = 0, len(x), y.shape[1]
    steps_per_epoch = -(-N // batch_size)
    for epoch in range(epochs):
        total, total_bound = 0.0, 0.0
        for s in range(steps_per_epoch):
            X, Y = x[s * batch_size:(s + 1) * batch_size], y[s * batch_size:(s + 1) * batch_size]
            B = len(X)
            loss, loss_bound, r, er = _batch_loss(X, Y, W, b, eW, eb)
            total, total_bound = total + B * loss, total_bound + B * loss_bound
            gz = 2 * r / (B * U)
            egz = 2 * er / (B * U) + gamma(3) * np.abs(gz)
            gW, gb = X.T @ gz, gz.sum(axis=0)
            egW = np.abs(X).T @ egz + gamma(B) * (np.abs(X).T @ np.abs(gz))
            egb = egz.sum(axis=0) + gamma(B) * np.abs(gz).sum(axis=0)
            lr, e_lr = lr_at(epoch, step), lr_err(epoch, step)
            W, b = W - lr * gW, b - lr * gb
            eW = eW + lr * egW + e_lr * np.abs(gW) + gamma(2) * (lr * np.abs(gW) + np.abs(W))
            eb = eb + lr * egb + e_lr * np.abs(gb) + gamma(2) * (lr * np.abs(gb) + np.abs(b))
            step += 1
        out["loss"].append(total / N)
        out["loss_bound"].append(total_bound / N + gamma(steps_per_epoch + 2) * total / N)
        if validation_data is not None:
            vx, vy = (a.astype(np.float64) for a in validation_data)
            vtotal, vbound = 0.0, 0.0
            for s in range(0, len(vx), batch_size):
                loss, loss_bound, _, _ = _batch_loss(vx[s:s + batch_size], vy[s:s + batch_size], W, b, eW, eb)
                n = len(vx[s:s + batch_size])
                vtotal, vbound = vtotal + n * loss, vbound + n * loss_bound
            out["val_loss"].append(vtotal / len(vx))
            out["val_loss_bound"].append(vbound / len(vx) + gamma(-(-len(vx) // batch_size) + 2) * vtotal / len(vx))
    out.update(W=W, b=b, eW=eW, eb=eb)
    return out


def models(keras, nb, W, b, nb_optimizer, keras_optimizer):
    """The same Dense(U) model in numbanet and Keras (run eagerly), weights (W, b), compiled with MSE."""
    D, U = W.shape
    ours = nb.Sequential([nb.layers.Dense(U, input_shape=(D,))])
    ours.set_weights([W, b])
    ours.compile(nb_optimizer, loss="mse")
    theirs = keras.Sequential([keras.Input((D,)), keras.layers.Dense(U)])
    theirs.set_weights([W, b])
    theirs.compile(keras_optimizer, loss="mse", run_eagerly=True)
    return ours, theirs


def assert_weights_within(model, ref, label):
    """The model's (kernel, bias) within the bound of the float64 run ``ref``."""
    for got, want, bound, name in zip(model.get_weights(), (ref["W"], ref["b"]), (ref["eW"], ref["eb"]),
                                      ("kernel", "bias")):
        err = np.abs(np.asarray(got, np.float64) - want)
        assert np.all(err <= bound), f"{label} {name}: max error {err.max():.3g} over the bound (max {bound.max():.3g})"
