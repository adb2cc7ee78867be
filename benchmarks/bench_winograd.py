"""Winograd F(2x2, 3x3) and F(4x4, 3x3) against im2col for 3x3 stride-1 layers: the measurements
behind ``tuning.WINOGRAD_MIN_CHANNELS``, ``tuning.WINOGRAD_FORWARD_TILE`` and ``fast/winograd.py``.

For each layer (float32, threads split over the batch as ``numbanet bench`` runs
them) times the three passes both ways, the variants interleaved call by call so a
busy shared machine slows both alike, and reports the minimum over the repeats:

* ``im2col``    ``fast/conv.py``'s general route (``forward``, ``input_grad``, ``weight_grad``),
  with the Winograd route switched off;
* ``winograd``  ``fast/winograd.py``'s ``forward``, ``input_grad`` and ``weight_grad``, F(2x2, 3x3);
* ``winograd4`` the same with F(4x4, 3x3).

Then W2's two Conv2D(relu) -> MaxPooling2D(2) blocks, forward only, three ways:
``no-winograd+pool`` (the convolution by its im2col/direct route, then the pool),
``winograd+pool`` (the fast tier's ``conv2d_forward``, then the pool) and ``fused``
(``fast/conv_pool.py``: the pooled map written chunk by chunk).

Last, W2's whole training step (``model.train_step``, SGD and Adam, batch 64),
with the Winograd route off (threshold raised past any layer) and on with each tile
(``WINOGRAD_FORWARD_TILE`` 2 and 4), interleaved step by step.

    python -m benchmarks.bench_winograd [--repeat 21] [--json FILE]

Run it as the benchmarks run (``OPENBLAS_CORETYPE=SkylakeX`` on an AVX-512 CPU,
set before Python starts).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

LAYERS = [  # (name, N, H, C, F, padding)
    ("W2 conv2 32->64 valid", 64, 13, 32, 64, "valid"),
    ("16->16 same 14x14", 64, 14, 16, 16, "same"),
    ("16->32 same 14x14", 64, 14, 16, 32, "same"),
    ("32->32 same 14x14", 64, 14, 32, 32, "same"),
    ("64->64 same 14x14", 64, 14, 64, 64, "same"),
    ("32->32 same 28x28", 32, 28, 32, 32, "same"),
    ("64->128 same 7x7", 64, 7, 64, 128, "same"),
]
TILES = {"winograd": 2, "winograd4": 4}


def interleaved_min(fns, repeat):
    """{name: ms}, the minimum over ``repeat`` rounds, each round calling every fn once in turn."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return {k: 1000 * v for k, v in best.items()}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import numbanet as nb
    from numbanet.engine.conv_shapes import conv_pads
    from numbanet.fast import conv as C
    from numbanet.fast import winograd as WG

    nb.utils.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, {args.threads} threads; "
          f"ms per call, min of {args.repeat} interleaved")
    for name, N, H, Cc, F, padding in LAYERS:
        x = rng.random((N, H, H, Cc), dtype=np.float32)
        W = (rng.standard_normal((3, 3, Cc, F)) * 0.3).astype(np.float32)
        b = np.zeros(F, np.float32)
        pads = conv_pads(H, H, 3, 3, 1, 1, padding)
        OH = H + pads[0] + pads[1] - 2
        gy = rng.standard_normal((N, OH, OH, F)).astype(np.float32)
        fns = {
            ("im2col", "forward"): lambda: C.forward(x, W, b, 1, 1, pads, True, "im2col"),
            ("im2col", "input_grad"): lambda: C.input_grad(gy, W, H, H, 1, 1, pads[0], pads[2], "im2col"),
            ("im2col", "weight_grad"): lambda: C.weight_grad(x, gy, W.shape, 1, 1, pads, "im2col"),
        }
        for variant, m in TILES.items():
            fns[(variant, "forward")] = lambda m=m: WG.forward(x, W, b, pads, True, m)
            fns[(variant, "input_grad")] = lambda m=m: WG.input_grad(gy, W, (H, H), pads, m)
            fns[(variant, "weight_grad")] = lambda m=m: WG.weight_grad(x, gy, pads, m)
        ms = interleaved_min(fns, args.repeat)          # "im2col" named: im2col proper, whatever the widths
        for variant in ("im2col", *TILES):
            row = dict(layer=name, variant=variant, **{k: ms[(variant, k)]
                                                         for k in ("forward", "input_grad", "weight_grad")})
            rows.append(row)
            print(f"  {name:24s} {variant:9s} forward {row['forward']:6.2f}  input grad {row['input_grad']:6.2f}  "
                  f"weight grad {row['weight_grad']:6.2f}")
    blocks = [("W2 block1 1->32 28x28", 64, 28, 1, 32), ("W2 block2 32->64 13x13", 64, 13, 32, 64)]
    from numbanet.fast import conv_pool, pooling, tuning
    for name, N, H, Cc, F in blocks:
        x = rng.random((N, H, H, Cc), dtype=np.float32)
        W = (rng.standard_normal((3, 3, Cc, F)) * 0.3).astype(np.float32)
        b = np.zeros(F, np.float32)
        pads, OH = (0, 0, 0, 0), H - 2
        pool_out = (OH // 2, OH // 2)

        def two_passes(x=x, W=W, b=b):
            y = C.conv2d_forward(x, W, b, (1, 1), pads, "relu")
            return pooling.max_pool2d_forward(y, (2, 2), (2, 2), pads, pool_out)

        def im2col_then_pool(x=x, W=W, b=b):
            y = C.forward(x, W, b, 1, 1, pads, True)
            return pooling.max_pool2d_forward(y, (2, 2), (2, 2), pads, pool_out)

        fns = {"no-winograd+pool": im2col_then_pool, "route+pool": two_passes,
               "fused": lambda x=x, W=W, b=b: conv_pool.conv2d_relu_maxpool_forward(
                   x, W, b, (1, 1), pads, (2, 2), (2, 2), pads, pool_out)}
        ms = interleaved_min(fns, args.repeat)
        way = conv_pool.fused_route(x.shape, W.shape, (1, 1), pads)
        rows.append(dict(layer=name, variant="conv+pool forward", route=way, **ms))
        print(f"  {name:24s} conv+pool forward ({way}): " + "  ".join(f"{k} {v:6.2f}" for k, v in ms.items()))
    L = nb.layers
    xb = rng.random((64, 28, 28, 1), dtype=np.float32)
    yb = rng.integers(0, 10, 64)
    threshold, tile = tuning.WINOGRAD_MIN_CHANNELS, tuning.WINOGRAD_FORWARD_TILE
    for opt in ("sgd", "adam"):
        model = nb.Sequential([L.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                               L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                               L.Dense(128, activation="relu"), L.Dense(10)])
        model.compile(optimizer=opt, loss=nb.losses.SparseCategoricalCrossentropy(from_logits=True))

        def step(m):
            tuning.WINOGRAD_MIN_CHANNELS = threshold if m else 1 << 30
            tuning.WINOGRAD_FORWARD_TILE = m or tile
            try:
                model.train_step(xb, yb)
            finally:
                tuning.WINOGRAD_MIN_CHANNELS, tuning.WINOGRAD_FORWARD_TILE = threshold, tile

        ms = interleaved_min({"im2col": lambda: step(None), "winograd": lambda: step(2),
                              "winograd4": lambda: step(4)}, args.repeat)
        rows.append(dict(layer=f"W2-{opt} train_step", variant="step", **ms))
        print(f"  W2-{opt} train_step: im2col {ms['im2col']:6.2f}  winograd {ms['winograd']:6.2f}  "
              f"winograd4 {ms['winograd4']:6.2f}  ({ms['im2col'] / ms['winograd4']:.2f}x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "threads": args.threads,
                       "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
