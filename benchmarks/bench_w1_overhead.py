"""Where W1's training time goes: numbanet's ``fit`` against the same step written out in NumPy.

W1 is Dense(10, tanh) - Dense(10, tanh) - Dense(1) on 100 sine samples, batch 20, SGD 0.01,
mean squared error: 5 steps an epoch, every array at most 20 x 10. Its time is almost all
per-call overhead, so this script splits it:

* **fit**: ``model.fit(x, y, batch_size=20, epochs=E, shuffle=True)``, ms per epoch;
* **the step's parts**, each timed alone on one batch, us: the forward pass
  (``model(x, training=True)``, after clearing the gradients), the loss, ``loss.backward()``,
  ``optimizer.step``; "fit bookkeeping" is fit's time per step less the whole ``train_step``
  (shuffling, batch gathering, the running loss, the callbacks' hooks);
* **the NumPy floor**: the same epoch as straight-line NumPy, with no tape, no layers and no
  checks: about the fewest array calls that the same arithmetic needs:

      h1 = tanh(x @ W1 + b1)          (20, 1) @ (1, 10)   -> (20, 10)
      h2 = tanh(h1 @ W2 + b2)         (20, 10) @ (10, 10) -> (20, 10)
      p  = h2 @ W3 + b3               (20, 10) @ (10, 1)  -> (20, 1)
      L  = mean((p - t)^2)            the backward in reverse, W <- W - lr * gW.

Before timing, one step of each from the same weights on the same batch is compared: the
floor's updated weights must equal numbanet's ``train_step``'s to float32 rounding (within
64 float32 epsilons of the largest weight, at least 1), so the floor does the same work.

fit and the floor alternate in one process over ``--rounds`` rounds (a busy shared host
slows both alike); the script prints medians and minima, the ratio, and the epoch that
50x a given Keras ``fit`` epoch (``--keras-ms``, from the harness) would need.

    python -m benchmarks.bench_w1_overhead [--rounds 7] [--epochs 400] [--inner 4000] [--keras-ms 30.5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import specs
from benchmarks.workloads import numbanet_impl


def numpy_epoch_fn(x, y, weights, lr, batch, rng):
    """One epoch of W1 in NumPy, updating ``weights`` = [W1, b1, W2, b2, W3, b3] in place."""
    W = weights[0::2]
    b = weights[1::2]
    acts = (True, True, False)                 # tanh, tanh, linear
    rate = np.array(lr, dtype=np.float32)
    n = len(x)

    def step(xb, yb):
        hs = [xb]
        h = xb
        for Wi, bi, act in zip(W, b, acts):
            h = h @ Wi                                         # (B, D) @ (D, U) -> (B, U)
            h += bi
            if act:
                np.tanh(h, out=h)
            hs.append(h)
        d = h - yb                                             # (B, 1)
        loss = float(np.add.reduce(d[:, 0] * d[:, 0])) / len(xb)
        g = d * np.float32(2.0 / len(xb))                      # dL/dp = 2 (p - t) / B
        for i in (2, 1, 0):
            if acts[i]:
                gz = np.square(hs[i + 1])                      # tanh' = 1 - y^2
                np.subtract(1, gz, out=gz)
                gz *= g
                g = gz
            gb = np.add.reduce(g, axis=0)                      # (B, U) -> (U,)
            gW = hs[i].T @ g                                   # (D, B) @ (B, U) -> (D, U)
            if i:
                g = g @ W[i].T                                 # (B, U) @ (U, D) -> (B, D)
            W[i] -= rate * gW
            b[i] -= rate * gb
        return loss

    def epoch():
        order = rng.permutation(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            step(x[idx], y[idx])

    return epoch, step


def _check_same_step(spec, x, y):
    """The floor's step and numbanet's ``train_step`` from the same weights on one batch: the
    updated weights agree to float32 rounding, else AssertionError."""
    model = numbanet_impl.build_model(spec)
    before = [w.data.copy() for w in model.trainable_weights]
    xb, yb = x[:spec["batch"]], y[:spec["batch"]]
    model.train_step(xb, yb)
    ours = [w.copy() for w in before]
    _, step = numpy_epoch_fn(x, y, ours, spec["optimizer"][1], spec["batch"], np.random.default_rng(0))
    step(xb, yb)
    for k, (a, w) in enumerate(zip(ours, model.trainable_weights)):
        # each update is lr * (a sum of at most 20 * 10 float32 products): rounding differences
        # of a few ulps of the weight's largest magnitude, never more
        tol = 64 * np.finfo(np.float32).eps * max(1.0, float(np.abs(a).max()))
        err = float(np.abs(a - w.data).max())
        assert err <= tol, f"weight {k}: the NumPy floor and numbanet differ by {err:.3g} (> {tol:.3g})"


def _time(fn, inner):
    t0 = time.perf_counter()
    fn(inner)
    return (time.perf_counter() - t0) / inner


def _parts_us(model, xb, yb, inner=4000):
    """Microseconds per call of each part of one training step, on one batch (min of 5)."""
    def clear():
        for w in model.trainable_weights:
            w.grad = None

    def forward():
        clear()
        return model(xb, training=True)

    y_pred = forward()

    def backward_fresh():
        clear()
        p = model(xb, training=True)
        model.compute_loss(yb, p).backward()

    parts = {
        "forward (grads cleared, model(x, training=True))": forward,
        "loss (compute_loss)": lambda: model.compute_loss(yb, y_pred),
        "forward + loss + backward": backward_fresh,
        "optimizer.step": lambda: model.optimizer.step(model.trainable_weights),
        "train_step (all of it)": lambda: model.train_step(xb, yb),
    }
    out = {}
    for name, fn in parts.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            best = min(best, (time.perf_counter() - t0) / inner)
        out[name] = best * 1e6
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--epochs", type=int, default=400, help="epochs per timed fit call (and per floor run)")
    p.add_argument("--inner", type=int, default=4000, help="calls per timing of each step part")
    p.add_argument("--keras-ms", type=float, default=None, help="Keras fit's W1 epoch from the harness, ms")
    args = p.parse_args(argv)

    spec = specs.WORKLOADS["W1"]
    x, y = specs.make_data(spec)
    _check_same_step(spec, x, y)

    run = numbanet_impl.build(spec, x, y)
    model = run.model
    floor_weights = [w.data.copy() for w in model.trainable_weights]
    floor_epoch, _ = numpy_epoch_fn(x, y, floor_weights, spec["optimizer"][1], spec["batch"],
                                    np.random.default_rng(1))
    run(5)
    floor_epoch()

    fit_ms, floor_ms = [], []
    for _ in range(args.rounds):
        fit_ms.append(_time(run, args.epochs) * 1e3)
        floor_ms.append(_time(lambda k: [floor_epoch() for _ in range(k)], args.epochs) * 1e3)
    steps = specs.steps_per_epoch(spec)
    parts = _parts_us(model, x[:spec["batch"]], y[:spec["batch"]], args.inner)
    fit_step_us = float(np.median(fit_ms)) * 1e3 / steps

    print(f"W1, {steps} steps an epoch, {args.rounds} rounds of {args.epochs} epochs, alternated")
    print(f"  numbanet fit     {np.median(fit_ms):.3f} ms per epoch (min {min(fit_ms):.3f})")
    print(f"  NumPy floor      {np.median(floor_ms):.3f} ms per epoch (min {min(floor_ms):.3f})")
    print(f"  fit / floor      {np.median(np.array(fit_ms) / np.array(floor_ms)):.2f} (median of the rounds' ratios)")
    print("  one step, each part alone (us, min of 5):")
    for name, us in parts.items():
        print(f"    {name:50s} {us:7.1f}")
    print(f"    {'fit bookkeeping (fit per step - train_step)':50s} "
          f"{fit_step_us - parts['train_step (all of it)']:7.1f}")
    if args.keras_ms:
        need = args.keras_ms / 50
        print(f"  50x Keras fit at {args.keras_ms:.1f} ms needs {need:.3f} ms per epoch: "
              f"{need / np.median(fit_ms):.2f} of fit's time now")


if __name__ == "__main__":
    main()
