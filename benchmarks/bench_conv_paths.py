"""Which way each convolution pass runs: the measurements behind ``numbanet/fast/conv.py``'s routes.

For the layer shapes of W2-W4 (batch as in the workloads, float32, 2 threads split
over the batch as ``numbanet bench`` runs them), times each pass three ways:

* ``im2col``   unfold + GEMM (+ col2im for the input gradient), the general path;
* ``direct``   the direct loops of ``kernels/direct_conv.py`` (one input channel or one filter);
* ``flipped``  the flipped convolution (``conv.flips_roles``: fewer filters than channels).

The fast tier's rules (``uses_direct``, ``flips_roles``) are switched by replacing them
in the module for the run, so every variant goes through the same code as training.

    python -m benchmarks.bench_conv_paths [--repeat 31] [--json benchmarks/results/conv_paths.json]

Run it as the benchmarks run (``OPENBLAS_CORETYPE=SkylakeX`` on an AVX-512 CPU:
``numbanet bench`` sets it; set it yourself here, before Python starts).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

LAYERS = [  # (name, N, H, C, F, padding)
    ("W2 conv1 1->32 valid", 64, 28, 1, 32, "valid"),
    ("W2 conv2 32->64 valid", 64, 13, 32, 64, "valid"),
    ("W3 first 1->16 same", 256, 28, 1, 16, "same"),
    ("W3 enc 16->8 same", 256, 14, 16, 8, "same"),
    ("W3 enc 8->4 same", 256, 7, 8, 4, "same"),
    ("W3 dec 8->16 valid", 256, 16, 8, 16, "valid"),
    ("W3 out 16->1 same", 256, 28, 16, 1, "same"),
    ("W4 enc 16->8 valid", 256, 13, 16, 8, "valid"),
    ("W4 convT 8->16 as conv 16->8", 256, 26, 16, 8, "valid"),
]


def timed(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=31)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import numbanet as nb
    from numbanet.fast import conv as C
    from numbanet.engine.conv_shapes import conv_pads

    nb.utils.set_num_threads(args.threads)
    rules = {"uses_direct": C.uses_direct, "flips_roles": C.flips_roles}
    variants = {
        "im2col": dict(uses_direct=lambda *a: False, flips_roles=lambda *a: False),
        "direct": dict(uses_direct=rules["uses_direct"], flips_roles=lambda *a: False),
        "flipped": dict(uses_direct=lambda *a: False, flips_roles=rules["flips_roles"]),
    }
    rng = np.random.default_rng(0)
    rows = []
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, {args.threads} threads; ms per call, median")
    for name, N, H, Cc, F, padding in LAYERS:
        x = rng.random((N, H, H, Cc), dtype=np.float32)
        W = (rng.standard_normal((3, 3, Cc, F)) * 0.3).astype(np.float32)
        b = np.zeros(F, np.float32)
        pads = conv_pads(H, H, 3, 3, 1, 1, padding)
        OH = H + pads[0] + pads[1] - 2
        gy = rng.standard_normal((N, OH, OH, F)).astype(np.float32)
        applies = {"im2col": True, "direct": rules["uses_direct"](Cc, F, 1, 1),
                   "flipped": rules["flips_roles"](Cc, F, 1, 1)}
        for variant, rule in variants.items():
            if not applies[variant]:
                continue
            for key, fn in rule.items():
                setattr(C, key, fn)
            try:
                row = dict(layer=name, variant=variant,
                           forward=timed(lambda: C.forward(x, W, b, 1, 1, pads, True), args.repeat),
                           input_grad=timed(lambda: C.input_grad(gy, W, H, H, 1, 1, pads[0], pads[2]),
                                            args.repeat),
                           weight_grad=timed(lambda: C.weight_grad(x, gy, W.shape, 1, 1, pads), args.repeat))
            finally:
                for key, fn in rules.items():
                    setattr(C, key, fn)
            rows.append(row)
            print(f"  {name:30s} {variant:8s} forward {row['forward']:6.2f}  input grad {row['input_grad']:6.2f}  "
                  f"weight grad {row['weight_grad']:6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "threads": args.threads,
                       "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
