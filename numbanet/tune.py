"""``numbanet tune``: plan the fast tier's routes for the benchmark workloads' layer shapes, ahead of time.

    numbanet tune                          plan W1, W2-sgd, W3, W4 and W5 (a few minutes)
    numbanet tune --fresh --workloads W2-sgd W3 W4
    numbanet tune --workloads W2 W3 --quick
    numbanet tune --show                   print this machine's plans and where they are kept

Each workload's model (``benchmarks/specs.py``, built as ``benchmarks/workloads/numbanet_impl.py``
builds it) runs a few training steps with planning set to "measure": every convolution
pass and dense pass whose shapes have no plan yet times its candidate routes once
(``numbanet/fast/planner.py``). Then the whole-step check (``planner.check_whole_steps``)
times whole training steps of that model with the new plans, with the heuristics'
routes for the same passes, and with the plans that won their pass by 10% or more,
alternating, and keeps the plans only if they win the step (by 2%, round by round, and
no slower on the fastest step); else the passes keep the heuristics' routes. Both
figures are printed, and everything goes to this machine's plan file. A later
``import numbanet`` (planning "cached", the default) takes those routes. Plans are per
thread count: the command uses one thread per CPU, as ``numbanet bench`` does and as a
script does after ``nb.utils.set_num_threads()``.
Run it on a quiet machine: the timings decide, and another job's load skews them.
"""
from __future__ import annotations

import os
import sys
import time

SUMMARY = ("time the candidate routes of the workloads' layer shapes and keep the fastest where whole training "
           "steps confirm it (the plan file)")
DEFAULT_WORKLOADS = ("W1", "W2-sgd", "W3", "W4", "W5")


def add_parser(commands):
    from .fast import planner
    from .fast.planner import REPEATS
    sub = commands.add_parser("tune", help=SUMMARY, description=SUMMARY)
    sub.add_argument("--workloads", nargs="+", default=list(DEFAULT_WORKLOADS), metavar="W",
                     help="the workloads whose shapes to plan (W2 = W2-sgd and W2-adam; 'all'; default: "
                          + " ".join(DEFAULT_WORKLOADS) + ")")
    sub.add_argument("--quick", action="store_true",
                     help=f"one timed run per candidate (after its warm-up) instead of {REPEATS}, "
                          f"one training step per workload and a whole-step check of 2 rounds of 2 steps")
    sub.add_argument("--steps", type=int, default=2, help="training steps per workload (default: %(default)s)")
    sub.add_argument("--show", action="store_true", help="print this machine's plans and exit (times nothing)")
    sub.add_argument("--fresh", action="store_true", help="forget this machine's plans first (plan every pass again)")
    sub.add_argument("--rounds", type=int, default=planner.CHECK_ROUNDS,
                     help="rounds of the whole-step check, 0 to skip it (default: %(default)s; --quick: 2)")
    sub.add_argument("--check-steps", type=int, default=planner.CHECK_STEPS,
                     help="training steps per variant and round of the whole-step check (default: %(default)s)")
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
    if args.rounds < 0 or args.check_steps < 1:
        print(f"numbanet tune: --rounds must be >= 0 and --check-steps >= 1, got {args.rounds}, {args.check_steps}",
              file=sys.stderr)
        return 2
    rounds, check_steps = (min(args.rounds, 2), min(args.check_steps, 2)) if args.quick else (args.rounds,
                                                                                              args.check_steps)
    planner.set_planning("measure", repeats=1 if args.quick else planner.REPEATS)
    if args.fresh:
        planner.forget()
    known = len(planner.plan().entries)
    path = planner.plan_path(create=True)
    print(f"numbanet tune: {known} plans loaded from {path or '(no writable cache folder: memory only)'}"
          f"{' (--fresh: forgotten)' if args.fresh else ''}; load average {_load()}")
    for name in names:
        spec = specs.WORKLOADS[name]
        x, y = specs.make_data(spec, steps=1)
        xb, yb = x[:spec["batch"]], y[:spec["batch"]]
        model = impl.build_model(spec)
        before, start = set(planner.plan().entries), time.perf_counter()
        for _ in range(1 if args.quick else args.steps):
            model.train_step(xb, yb)
        new = [k for k in planner.plan().entries if k not in before]
        print(f"  {name:<8} {len(new)} passes planned in {time.perf_counter() - start:.1f} s", flush=True)
        if new and rounds:
            check = planner.check_whole_steps(name, lambda: model.train_step(xb, yb), new, rounds, check_steps)
            print(f"  {name:<8} {_check_line(check)}; load average {_load()}", flush=True)
    planner.save()
    print(planner.plan())
    return 0


def _check_line(check):
    """One line of a whole-step check's figures: each variant's median (min) ms and the verdict."""
    if not check["ms"]:
        return "whole step: every pass's plan is the heuristic's route, nothing to check"
    figures = ", ".join(f"{v} {ms:.2f} ({check['min_ms'][v]:.2f}) ms = {1 / check['ratio'][v]:.3f}x"
                        for v, ms in check["ms"].items())
    return (f"whole step, median (min) of {check['steps']}, speed-up paired by round: {figures} "
            f"-> keeps {check['kept']} ({check['changed']} of {check['passes']} passes off the heuristic's route)")


def _load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


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
