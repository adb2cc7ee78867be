"""``numbanet tune``: plan the fast tier's routes for the benchmark workloads' layer shapes, ahead of time.

    numbanet tune                          plan W1, W2-sgd, W3, W4 and W5 (a few minutes)
    numbanet tune --workloads W2 W3 --quick
    numbanet tune --show                   print this machine's plans and where they are kept

Each workload's model (``benchmarks/specs.py``, built as ``benchmarks/workloads/numbanet_impl.py``
builds it) runs a few training steps with planning set to "measure": every convolution
pass and dense pass whose shapes have no plan yet times its candidate routes once
(``numbanet/fast/planner.py``), and the winners go to this machine's plan file. A
later ``import numbanet`` (planning "cached", the default) takes those routes.
Plans are per thread count: the command uses one thread per CPU, as ``numbanet bench``
does and as a script does after ``nb.utils.set_num_threads()``.
"""
from __future__ import annotations

import sys
import time

SUMMARY = "time the candidate routes of the workloads' layer shapes and keep the fastest (the plan file)"
DEFAULT_WORKLOADS = ("W1", "W2-sgd", "W3", "W4", "W5")


def add_parser(commands):
    from .fast.planner import REPEATS
    sub = commands.add_parser("tune", help=SUMMARY, description=SUMMARY)
    sub.add_argument("--workloads", nargs="+", default=list(DEFAULT_WORKLOADS), metavar="W",
                     help="the workloads whose shapes to plan (W2 = W2-sgd and W2-adam; 'all'; default: "
                          + " ".join(DEFAULT_WORKLOADS) + ")")
    sub.add_argument("--quick", action="store_true",
                     help=f"one timed run per candidate (after its warm-up) instead of {REPEATS}, "
                          f"and one training step per workload")
    sub.add_argument("--steps", type=int, default=2, help="training steps per workload (default: %(default)s)")
    sub.add_argument("--show", action="store_true", help="print this machine's plans and exit (times nothing)")
    return sub


def run(args):
    from .fast import planner
    if args.show:
        planner.set_planning("cached")
        print(planner.plan())
        return 0
    if args.steps < 1:
        print(f"numbanet tune: --steps must be at least 1, got {args.steps}", file=sys.stderr)
        return 2
    specs, impl = _benchmarks()
    if specs is None:
        return 2
    try:
        names = specs.expand(args.workloads)
    except SystemExit as err:              # specs.expand says which names exist
        print(f"numbanet tune: {err}", file=sys.stderr)
        return 2
    planner.set_planning("measure", repeats=1 if args.quick else planner.REPEATS)
    known = len(planner.plan().entries)
    path = planner.plan_path(create=True)
    print(f"numbanet tune: {known} plans loaded from {path or '(no writable cache folder: memory only)'}")
    for name in names:
        spec = specs.WORKLOADS[name]
        x, y = specs.make_data(spec, steps=1)
        model = impl.build_model(spec)
        before, start = len(planner.plan().entries), time.perf_counter()
        for _ in range(1 if args.quick else args.steps):
            model.train_step(x[:spec["batch"]], y[:spec["batch"]])
        new = len(planner.plan().entries) - before
        print(f"  {name:<8} {new} passes planned in {time.perf_counter() - start:.1f} s")
    print(planner.plan())
    return 0


def _benchmarks():
    """(benchmarks.specs, benchmarks.workloads.numbanet_impl), or (None, None) with the reason on stderr."""
    from .cli import _find_benchmarks
    root = _find_benchmarks()
    if root is None:
        print("numbanet tune: benchmarks/specs.py (the workloads' shapes) was not found next to the numbanet "
              "package nor in the current directory; run it from the repository checkout", file=sys.stderr)
        return None, None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import specs
    from benchmarks.workloads import numbanet_impl
    return specs, numbanet_impl
