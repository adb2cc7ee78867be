"""Training-step times with the fusion pass on and off (``nb.set_fusion``), interleaved on one model.

    python -m benchmarks.bench_fusion [--rounds 10] [--steps 3] [--workloads W2-sgd W3 W4]

For each workload one model runs ``--steps`` training steps with fusion on (its
Conv2D(relu) -> MaxPooling2D pairs as one fused node, ``models/fusion.py``), then
``--steps`` with it off (the layers one by one), the order swapped every round so that
a change in machine load falls on both; prints the min and median step time of each
and their ratios (off / on: above 1 means fusion is faster), as wall time and as the
process's CPU time (user + system of all its threads, ``time.process_time``), which a
busy shared machine disturbs far less than the wall clock. Figures:
benchmarks/results/tuning.md, "The fusion pass".
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numbanet as nb
from benchmarks import specs
from benchmarks.workloads import numbanet_impl as impl


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=["W2-sgd", "W3", "W4"])
    args = parser.parse_args(argv)
    nb.utils.tune_malloc()
    nb.utils.set_num_threads()
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    for name in specs.expand(args.workloads):
        spec = specs.WORKLOADS[name]
        b = spec["batch"]
        x, y = specs.make_data(spec, steps=1)
        model = impl.build_model(spec)
        times, cpu = {True: [], False: []}, {True: [], False: []}
        for on in times:                        # warm-up: compile, fill the scratch buffers
            nb.set_fusion(on)
            for _ in range(2):
                model.train_step(x[:b], y[:b])
        for r in range(args.rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                nb.set_fusion(on)
                for _ in range(args.steps):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    model.train_step(x[:b], y[:b])
                    times[on].append(time.perf_counter() - start)
                    cpu[on].append(time.process_time() - start_cpu)
        for what, t in (("wall", times), ("CPU", cpu)):
            on, off = t[True], t[False]
            print(f"{name} {what}: fused min {1e3 * min(on):.2f} median {1e3 * statistics.median(on):.2f} ms | "
                  f"unfused min {1e3 * min(off):.2f} median {1e3 * statistics.median(off):.2f} ms | "
                  f"off/on {min(off) / min(on):.3f}x (min), {statistics.median(off) / statistics.median(on):.3f}x "
                  f"(median) | load average {os.getloadavg()[0]:.2f}", flush=True)
    nb.set_fusion(True)


if __name__ == "__main__":
    main()
