"""Training-step times with the fixed heuristics against this machine's plans, interleaved.

    numbanet tune --workloads W2-sgd W3 W4          # first: write this machine's plan file
    python -m benchmarks.bench_planner [--rounds 10] [--steps 5] [--workloads W2-sgd W3 W4]

For each workload one model runs ``--steps`` training steps with planning "off" (the
heuristics of fast/tuning.py), then ``--steps`` with "cached" (the plan file), the order
swapped every round so that a change in machine load falls on both; prints the min and
median step time of each and their ratios, with the load average (``os.getloadavg``)
before and after each workload. Figures: benchmarks/results/tuning.md, "Planner".
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
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workloads", nargs="+", default=["W2-sgd", "W3", "W4"])
    args = parser.parse_args(argv)
    nb.utils.tune_malloc()
    nb.utils.set_num_threads()
    print(nb.fast.planner.plan().__str__().splitlines()[0])
    for name in specs.expand(args.workloads):
        load = os.getloadavg()[0]
        spec = specs.WORKLOADS[name]
        b = spec["batch"]
        x, y = specs.make_data(spec, steps=1)
        model = impl.build_model(spec)
        times = {"off": [], "cached": []}
        for mode in times:                      # warm-up: compile, fill the scratch buffers
            nb.set_planning(mode)
            for _ in range(2):
                model.train_step(x[:b], y[:b])
        for r in range(args.rounds):
            for mode in (("off", "cached") if r % 2 == 0 else ("cached", "off")):
                nb.set_planning(mode)
                for _ in range(args.steps):
                    start = time.perf_counter()
                    model.train_step(x[:b], y[:b])
                    times[mode].append(time.perf_counter() - start)
        off, cached = times["off"], times["cached"]
        print(f"{name}: heuristics min {1e3 * min(off):.2f} median {1e3 * statistics.median(off):.2f} ms | "
              f"planned min {1e3 * min(cached):.2f} median {1e3 * statistics.median(cached):.2f} ms | "
              f"ratio {min(off) / min(cached):.2f}x (min), "
              f"{statistics.median(off) / statistics.median(cached):.2f}x (median); "
              f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
