"""Conv2D(relu) -> MaxPooling2D blocks of W2, W3 and W4: two nodes against the fused node, forward + backward.

For each block (float32, the batch split over the threads as the models run it):

* ``two``    the fast tier's ``conv2d_forward`` (relu fused) then ``max_pool2d_forward``;
             backward ``max_pool2d_backward`` (full-size gy) then ``conv2d_backward``
             (the relu mask read from the stored conv output y), no input gradient for
             the one-channel first layers, as in the models;
* ``fused``  ``fast/conv_pool.py``: the pooled map written chunk by chunk, y never stored;
             backward the conv's gz written straight from gp and the kept arg-max.

Variants are interleaved call by call (a busy shared machine slows both alike); the
minimum and the median over ``--repeat`` rounds are printed, in ms, forward, backward
and their sum (wall time), and the sum's CPU time (``time.process_time``: user +
system of all threads, which a busy machine disturbs far less than the wall clock).

    python -m benchmarks.bench_conv_pool [--repeat 31] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

BLOCKS = [  # (name, N, H, C, F, conv padding, pool padding)
    ("W2 block1 1->32 28x28 valid", 64, 28, 1, 32, "valid", "valid"),
    ("W2 block2 32->64 13x13 valid", 64, 13, 32, 64, "valid", "valid"),
    ("W3 block1 1->16 28x28 same", 256, 28, 1, 16, "same", "same"),
    ("W3 block2 16->8 14x14 same", 256, 14, 16, 8, "same", "same"),
    ("W3 block3 8->4 7x7 same", 256, 7, 8, 4, "same", "same"),
    ("W4 block1 1->16 28x28 valid", 256, 28, 1, 16, "valid", "valid"),
    ("W4 block2 16->8 13x13 valid", 256, 13, 16, 8, "valid", "valid"),
]


def _variants(N, H, C, F, padding, pool_padding, rng):
    from numbanet.engine.conv_shapes import conv_output_size, conv_pads
    from numbanet.fast import conv, conv_pool, pooling
    x = rng.random((N, H, H, C), dtype=np.float32)
    W = (rng.standard_normal((3, 3, C, F)) * np.sqrt(2 / (9 * C))).astype(np.float32)
    b = (rng.standard_normal(F) * 0.1).astype(np.float32)
    pads = conv_pads(H, H, 3, 3, 1, 1, padding)
    OH = conv_output_size(H, 3, 1, padding)
    PH = conv_output_size(OH, 2, 2, pool_padding)
    ppads = conv_pads(OH, OH, 2, 2, 2, 2, pool_padding)
    gp = rng.standard_normal((N, PH, PH, F)).astype(np.float32)
    need_gx = C > 1                       # as in the models: the first layer's input needs no gradient
    state = {}

    def two_fwd():
        y = conv.conv2d_forward(x, W, b, (1, 1), pads, "relu")
        state["two"] = (y,) + pooling.max_pool2d_forward(y, (2, 2), (2, 2), ppads, (PH, PH))

    def two_bwd():
        y, p, arg = state["two"]
        gy = pooling.max_pool2d_backward(gp, arg, (2, 2), (2, 2), ppads, (OH, OH))
        conv.conv2d_backward(gy, x, W, y, (1, 1), pads, "relu", need_gx)

    def fused_fwd():
        state["fused"] = conv_pool.conv2d_relu_maxpool_forward(x, W, b, (1, 1), pads, (2, 2), (2, 2), ppads,
                                                               (PH, PH))

    def fused_bwd():
        p, arg = state["fused"]
        conv_pool.conv2d_relu_maxpool_backward(gp, x, W, p, arg, (1, 1), pads, (2, 2), (2, 2), ppads, (OH, OH),
                                               need_gx)

    return {"two": (two_fwd, two_bwd), "fused": (fused_fwd, fused_bwd)}


def measure(variants, repeat):
    """{variant: {"forward": [ms...], "backward": [...], "step": [...]}}, interleaved call by call."""
    out = {k: {"forward": [], "backward": [], "step": [], "cpu": []} for k in variants}
    for fwd, bwd in variants.values():   # warm-up (JIT, buffers)
        fwd(), bwd()
    for _ in range(repeat):
        for k, (fwd, bwd) in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fwd()
            t1 = time.perf_counter()
            bwd()
            t2, c2 = time.perf_counter(), time.process_time()
            out[k]["cpu"].append(1e3 * (c2 - c0))
            out[k]["forward"].append(1e3 * (t1 - t0))
            out[k]["backward"].append(1e3 * (t2 - t1))
            out[k]["step"].append(1e3 * (t2 - t0))
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=31)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", default=None, help="substrings of block names to run")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import numbanet as nb
    nb.utils.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, N, H, C, F, padding, pool_padding in BLOCKS:
        if args.only and not any(s in name for s in args.only):
            continue
        res = measure(_variants(N, H, C, F, padding, pool_padding, rng), args.repeat)
        for k, parts in res.items():
            row = {"block": name, "variant": k}
            for part, ms in parts.items():
                row[part + "_min"], row[part + "_median"] = float(np.min(ms)), float(np.median(ms))
            rows.append(row)
            print(f"{name:30s} {k:6s} " + "  ".join(
                f"{part} {row[part + '_min']:6.2f} / {row[part + '_median']:6.2f}" for part in parts), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
