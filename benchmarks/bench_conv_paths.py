"""Which way each convolution pass runs: the measurements behind ``numbanet/fast/conv.py``'s routes.

For the convolution shapes of W2-W4 (batch as in the workloads, float32, 3x3 kernels,
the batch split over 2 threads as ``numbanet bench`` runs them), times each pass,
forward (bias + relu), input gradient and weight gradient, by every route that
computes it:

* ``im2col``   unfold + GEMM (+ col2im for the input gradient), the general route;
* ``direct``   the NHWC direct loops of ``kernels/direct_conv.py`` (timed where C or F is 1);
* ``flipped``  the flipped convolution (forward and weight gradient only);
* ``planes``   the planar loops of ``kernels/narrow_conv.py`` (stride 1, up to 16 channels).

A transposed convolution's passes are the convolution's with the roles swapped (its
forward pass is the input gradient), so W4's decoder layers appear as the
convolutions they are read as. The routes are called through ``forward`` /
``input_grad`` / ``weight_grad``'s ``how`` argument, the code training runs.
Calls are interleaved route by route, repetition by repetition, so a load spike on
a shared machine hits every route alike; the table gives the minimum and the
median, and which route the heuristic (``conv.forward_route`` / ``conv.input_route`` / ``conv.route``) takes
(*); after the planes route, "x1.30" is the median over the repetitions of the
time of the route the rules took before it (``conv._fallback``) over its time.

    python -m benchmarks.bench_conv_paths [--repeat 21] [--only W3] [--json out.json]
    python -m benchmarks.bench_conv_paths --steps W3 W4 [--repeat 31]

``--steps`` times whole training steps (``model.train_step`` on one batch of the
workload) instead, with the planes route on and off (``uses_planes`` and
``input_route`` replaced for the call), alternating step by step, and prints the
minimum, the median and the median of the per-step ratios off / on.

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

LAYERS = [  # (name, N, H, C, F, padding): x (N, H, H, C) -> F filters, 3x3, stride 1
    ("W2 conv1 1->32 valid", 64, 28, 1, 32, "valid"),
    ("W2 conv2 32->64 valid", 64, 13, 32, 64, "valid"),
    ("W3 conv 1->16 same 28", 256, 28, 1, 16, "same"),
    ("W3 conv 16->8 same 14", 256, 14, 16, 8, "same"),
    ("W3 conv 8->4 same 7", 256, 7, 8, 4, "same"),
    ("W3 conv 4->4 same 4", 256, 4, 4, 4, "same"),
    ("W3 conv 4->8 same 8", 256, 8, 4, 8, "same"),
    ("W3 conv 8->16 valid 16", 256, 16, 8, 16, "valid"),
    ("W3 conv 16->1 same 28", 256, 28, 16, 1, "same"),
    ("W4 conv 1->16 valid 28", 256, 28, 1, 16, "valid"),
    ("W4 conv 16->8 valid 13", 256, 13, 16, 8, "valid"),
    ("W4 conv 8->4 valid 5", 256, 5, 8, 4, "valid"),
    ("W4 convT 4->4 as conv 5", 256, 5, 4, 4, "valid"),
    ("W4 convT 4->8 as conv 8->4 12", 256, 12, 8, 4, "valid"),
    ("W4 convT 8->16 as conv 16->8 26", 256, 26, 16, 8, "valid"),
    ("W4 convT 16->1 as conv 1->16 28", 256, 28, 1, 16, "valid"),
]

PASSES = ("forward", "input_grad", "weight_grad")


def routes_of(C_, F, pass_):
    """The routes timed for one pass of a stride-1 layer with C_ channels and F filters."""
    names = ["im2col"]
    if min(C_, F) == 1:
        names.append("direct")
    if pass_ != "input_grad":
        names.append("flipped")
    if max(C_, F) <= 16:
        names.append("planes")
    return names


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default=None, help="time only the layers whose name contains this")
    p.add_argument("--json", default=None)
    p.add_argument("--steps", nargs="*", default=None, help="time whole training steps of these workloads")
    args = p.parse_args(argv)
    if args.steps:
        return steps(args.steps, args.repeat, args.threads)
    import numbanet as nb
    from numbanet.engine.conv_shapes import conv_pads
    from numbanet.fast import conv as C

    nb.utils.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.2f}; ms per call, min / median of {args.repeat} interleaved calls; * = heuristic")
    for name, N, H, Cc, F, padding in LAYERS:
        if args.only and args.only not in name:
            continue
        x = rng.random((N, H, H, Cc), dtype=np.float32)
        W = (rng.standard_normal((3, 3, Cc, F)) * 0.3).astype(np.float32)
        b = np.zeros(F, np.float32)
        pads = conv_pads(H, H, 3, 3, 1, 1, padding)
        OH = H + pads[0] + pads[1] - 2
        gy = rng.standard_normal((N, OH, OH, F)).astype(np.float32)
        calls = {
            "forward": lambda how: C.forward(x, W, b, 1, 1, pads, True, how),
            "input_grad": lambda how: C.input_grad(gy, W, H, H, 1, 1, pads[0], pads[2], how),
            "weight_grad": lambda how: C.weight_grad(x, gy, W.shape, 1, 1, pads, how),
        }
        chosen = {"forward": C.forward_route(Cc, F, 1, 1), "input_grad": C.input_route(Cc, F, 1, 1),
                  "weight_grad": C.route(Cc, F, 1, 1)}
        jobs = [(ps, how) for ps in PASSES for how in routes_of(Cc, F, ps)]
        times = {job: [] for job in jobs}
        for ps, how in jobs:                      # compile and fill the pools first
            calls[ps](how)
        for _ in range(args.repeat):
            for ps, how in jobs:
                t0 = time.perf_counter()
                calls[ps](how)
                times[(ps, how)].append(1000 * (time.perf_counter() - t0))
        print(f"  {name}")
        for ps in PASSES:
            cells = []
            old = C._fallback(Cc, F, 1, 1, "conv.input_grad" if ps == "input_grad" else "conv.forward")
            for how in routes_of(Cc, F, ps):
                ts = times[(ps, how)]
                # per repetition, the rules' route without the planes loops over this one: > 1, this one is faster
                paired = statistics.median(a / b for a, b in zip(times[(ps, old)], ts))
                row = dict(layer=name, N=N, H=H, C=Cc, F=F, padding=padding, pass_=ps, route=how,
                           min_ms=min(ts), median_ms=statistics.median(ts), heuristic=how == chosen[ps],
                           paired_vs_old_rules=paired)
                rows.append(row)
                mark = "*" if row["heuristic"] else " "
                gain = f" x{paired:.2f}" if how == "planes" else ""
                cells.append(f"{how}{mark} {row['min_ms']:6.2f} / {row['median_ms']:6.2f}{gain}")
            print(f"    {ps:12s} " + "   ".join(cells))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "threads": args.threads,
                       "load_average": os.getloadavg(), "rows": rows}, fh, indent=1)
    return 0


def steps(workloads, repeat, threads):
    """ms per training step of each workload with the planes route on and off, alternating step by step."""
    import numbanet as nb
    from numbanet.fast import conv as C

    from .specs import WORKLOADS
    from .workloads.numbanet_impl import build_model

    nb.utils.set_num_threads(threads)
    on = {"uses_planes": C.uses_planes, "input_route": C.input_route}
    off = {"uses_planes": lambda *a: False,
           "input_route": lambda c, f, sh, sw: C._fallback(c, f, sh, sw, "conv.input_grad")}
    print(f"{threads} threads, load average {os.getloadavg()[0]:.2f}; ms per training step, min / median of "
          f"{repeat}, planes route off and on alternating")
    try:
        for name in workloads:
            spec = WORKLOADS[name]
            model = build_model(spec)
            x = np.random.default_rng(0).random((spec["batch"], *spec["input"]), dtype=np.float32)
            times = {"off": [], "on": []}
            for _ in range(2):                          # compile, fill the pools
                for way in ("off", "on"):
                    for key, fn in (off if way == "off" else on).items():
                        setattr(C, key, fn)
                    model.train_step(x, x)
            for _ in range(repeat):
                for way in ("off", "on"):
                    for key, fn in (off if way == "off" else on).items():
                        setattr(C, key, fn)
                    t0 = time.perf_counter()
                    model.train_step(x, x)
                    times[way].append(1000 * (time.perf_counter() - t0))
            paired = statistics.median(a / b for a, b in zip(times["off"], times["on"]))
            print(f"  {name}: off {min(times['off']):.1f} / {statistics.median(times['off']):.1f}   "
                  f"on {min(times['on']):.1f} / {statistics.median(times['on']):.1f}   off/on paired {paired:.3f}")
    finally:
        for key, fn in on.items():
            setattr(C, key, fn)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
