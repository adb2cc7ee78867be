"""W5 forward+backward step: Embedding(2000, 256) - SimpleRNN(256, return_sequences) - Dense(2000).

Batch 64, 20 time steps, sparse categorical cross-entropy from logits; one
step = forward, loss, backward (no optimizer update). numbanet and TensorFlow
(``tf.function``, 2 threads) run in separate processes (two thread pools in one
process fight over the cores: TensorFlow's idle workers spin), alternating over
several rounds so that a busy shared machine slows both alike. Prints medians
(min, max) over all timed steps, and numbanet's step split into its parts
(layer forwards, loss, backward walk).

``--layers-only`` times just Embedding - SimpleRNN, backward seeded with a fixed
random dL/dh = G (the sequence layers without the Dense head and the loss).
On an AVX-512 CPU, run it as ``OPENBLAS_CORETYPE=SkylakeX python -m ...`` (the
``numbanet`` command does this itself); TensorFlow does not use OpenBLAS.

    python -m benchmarks.bench_seq_step [--rounds 3] [--repeats 10] [--no-tf] [--layers-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

V, E, U, N, T = 2000, 256, 256, 64, 20


def numbanet_step_fn(x, y, layers_only=False):
    from numbanet.layers import Dense, Embedding, SimpleRNN
    from numbanet.losses import SparseCategoricalCrossentropy
    emb, rnn, head = Embedding(V, E), SimpleRNN(U, return_sequences=True), Dense(V)
    loss_fn = SparseCategoricalCrossentropy(from_logits=True)
    G = np.random.default_rng(1).standard_normal((N, T, U)).astype(np.float32)
    weights = []

    def step(parts=None):
        marks = [time.perf_counter()]
        h = emb(x)
        marks.append(time.perf_counter())
        h = rnn(h)
        marks.append(time.perf_counter())
        z = None if layers_only else head(h)
        marks.append(time.perf_counter())
        loss = None if layers_only else loss_fn(y, z)
        marks.append(time.perf_counter())
        if layers_only:
            h.backward(G)
        else:
            loss.backward()
        marks.append(time.perf_counter())
        for w in weights or emb.weights + rnn.weights + head.weights:
            w.grad = None
        if parts is not None:
            parts.append(np.diff(marks))
    return step


def tf_step_fn(x, y, layers_only=False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    layers = [tf.keras.layers.Embedding(V, E), tf.keras.layers.SimpleRNN(U, return_sequences=True)]
    model = tf.keras.Sequential(layers + ([] if layers_only else [tf.keras.layers.Dense(V)]))
    xt, yt = tf.constant(x), tf.constant(y)
    model(xt)
    G = tf.constant(np.random.default_rng(1).standard_normal((N, T, U)).astype(np.float32))
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            out = model(xt, training=True)
            loss = out if layers_only else loss_fn(yt, out)
        return tape.gradient(loss, model.trainable_weights, output_gradients=G if layers_only else None)

    def step(parts=None):
        g = grads()
        _ = g[-1].numpy()  # wait for the result
        if parts is not None:
            parts.append(np.zeros(5))
    return step


def measure(framework, repeats, layers_only=False):
    """Warm up, then time ``repeats`` steps of one framework in this process; returns ms and parts."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    make = numbanet_step_fn if framework == "numbanet" else tf_step_fn
    fn = make(x, y, layers_only)
    start = time.perf_counter()
    for _ in range(10):  # JIT compilation, tf.function tracing, and the allocator settling
        fn()
    warm = time.perf_counter() - start
    times, parts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(parts)
        times.append((time.perf_counter() - start) * 1e3)
    return {"warmup_s": warm, "times_ms": times, "parts_ms": (np.array(parts) * 1e3).tolist()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-tf", action="store_true")
    p.add_argument("--layers-only", action="store_true", help="Embedding - SimpleRNN only, L = sum(h * G)")
    p.add_argument("--worker", choices=("numbanet", "tensorflow"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.repeats, args.layers_only)))
        return None
    frameworks = ["numbanet"] + ([] if args.no_tf else ["tensorflow"])
    results = {f: {"times_ms": [], "parts_ms": [], "warmup_s": []} for f in frameworks}
    for _ in range(args.rounds):
        for f in frameworks:
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_seq_step", "--worker", f,
                                  "--repeats", str(args.repeats)] + (["--layers-only"] if args.layers_only else []),
                                 capture_output=True, text=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if out.returncode:
                print(f"{f} failed:\n{out.stderr[-2000:]}")
                results.pop(f)
                frameworks.remove(f)
                break
            r = json.loads(out.stdout.strip().splitlines()[-1])
            for k in ("times_ms", "parts_ms"):
                results[f][k] += r[k]
            results[f]["warmup_s"].append(r["warmup_s"])
    for f, r in results.items():
        t = np.array(r["times_ms"])
        print(f"{f:<11} fwd+bwd step: median {np.median(t):7.2f} ms   min {t.min():7.2f}   max {t.max():7.2f}"
              f"   (warm-up {np.median(r['warmup_s']):.2f} s, {len(t)} steps)")
    if "tensorflow" in results:
        ratio = np.median(results["numbanet"]["times_ms"]) / np.median(results["tensorflow"]["times_ms"])
        print(f"ratio numbanet / tensorflow (medians): {ratio:.2f}")
    med = np.median(results["numbanet"]["parts_ms"], axis=0)
    print("numbanet parts (medians, ms): " + ", ".join(
        f"{k} {v:.2f}" for k, v in zip(["embedding fwd", "rnn fwd", "dense fwd", "loss fwd", "backward"], med)
        if not (args.layers_only and k in ("dense fwd", "loss fwd"))))
    return results


if __name__ == "__main__":
    main()
