"""Which operations of a training step allocate large arrays and touch fresh pages.

Runs a workload's training step with the library defaults (nothing tuned: no
``tune_malloc``, the library's own thread choice) and, for steps 3 to 5, wraps
every engine Function's forward and backward, the loss, the optimizer step and
the batch slicing with two meters:

  faults   ``resource.getrusage(RUSAGE_SELF).ru_minflt`` after - before: pages of
           fresh memory touched for the first time during the call
  bytes    tracemalloc's peak inside the call minus the traced size before it:
           the most memory the call held at once beyond what existed before
           (NumPy reports its array buffers to tracemalloc), so a call that
           reuses pooled arrays shows ~0

A row per (phase, op, layer, output shape), averaged over the profiled steps;
rows with fewer than ``--min-faults`` faults and ``--min-bytes`` bytes are left
out. "step total" is the whole step's fault count, "unattributed" what no
wrapped call took (the backward walk's gradient sums, the Python around them).

    python -m benchmarks.alloc_probe --workloads W2-sgd W3 W4 W5 [--no-bytes] [--tf]
"""
from __future__ import annotations

import argparse
import resource
import tracemalloc
from collections import defaultdict


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Meter:
    """Nested-safe fault and peak-bytes meter: only the outermost wrapped call is charged."""

    def __init__(self, meter_bytes=True):
        self.meter_bytes = meter_bytes
        self.rows = defaultdict(lambda: [0, 0, 0])   # key -> [calls, faults, peak bytes]
        self.depth = 0
        self.on = False

    def wrap(self, key_of, fn):
        meter = self

        def wrapped(*args, **kwargs):
            if not meter.on or meter.depth:
                return fn(*args, **kwargs)
            meter.depth += 1
            if meter.meter_bytes:
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
            f0 = _faults()
            try:
                return fn(*args, **kwargs)
            finally:
                f1 = _faults()
                peak = tracemalloc.get_traced_memory()[1] - base if meter.meter_bytes else 0
                meter.depth -= 1
                row = meter.rows[key_of(args)]
                row[0] += 1
                row[1] += f1 - f0
                row[2] = max(row[2], peak)
        return wrapped


def _subclasses(cls):
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            out.append(s)
            todo.append(s)
    return out


def instrument(meter):
    """Wrap every Function subclass's forward/backward, the optimizer step and batch slicing."""
    from numbanet.engine.tensor import Function
    from numbanet.models import training
    import numbanet.optimizers as opt

    def fn_key(phase):
        def key(args):
            fn = args[0]
            shape = getattr(fn, "out_shape", None)
            if shape is None and phase == "forward" and len(args) > 1:
                shape = getattr(args[1], "shape", None)
            return (phase, type(fn).__name__, getattr(fn, "layer", None) or "-", str(shape))
        return key

    for cls in _subclasses(Function):
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                setattr(cls, phase, meter.wrap(fn_key(phase), cls.__dict__[phase]))
    for cls in [opt.Optimizer] + _subclasses(opt.Optimizer):
        if "step" in cls.__dict__:
            cls.step = meter.wrap(lambda a: ("optimizer", type(a[0]).__name__, "-", "-"), cls.__dict__["step"])
    take = training._take
    training._take = meter.wrap(lambda a: ("batch", "_take (x[idx], y[idx])", "-",
                                           str(getattr(a[0], "shape", "?")[1:])), take)


def probe(name, epochs=(2, 3), meter_bytes=True):
    """(faults per step, rows) over ``epochs`` of ``model.fit`` (one fit call per epoch, as the benchmark)."""
    from benchmarks import specs
    from benchmarks.workloads import numbanet_impl
    spec = specs.WORKLOADS[name]
    x, y = specs.make_data(spec)
    model = numbanet_impl.build_model(spec)
    meter = Meter(meter_bytes)
    instrument(meter)
    total = 0
    for k in range(max(epochs) + 1):
        if k in epochs:
            meter.on = True
            f0 = _faults()
        model.fit(x, y, batch_size=spec["batch"], epochs=1, verbose=0, shuffle=True)
        if k in epochs:
            meter.on = False
            total += _faults() - f0
    per = len(epochs) * specs.steps_per_epoch(spec)
    return total / per, [(key, calls / per, faults / per, peak) for key, (calls, faults, peak) in meter.rows.items()]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--workloads", nargs="+", default=["W2-sgd", "W3", "W4", "W5"])
    p.add_argument("--min-faults", type=float, default=8)
    p.add_argument("--min-bytes", type=int, default=128 << 10)
    p.add_argument("--no-bytes", action="store_true", help="faults only, without tracemalloc (which "
                   "allocates beside every traced block and so moves glibc's heap)")
    p.add_argument("--tf", action="store_true", help="TensorFlow imported and run once first (mode default+tf)")
    args = p.parse_args(argv)
    if args.tf:
        import tensorflow as tf
        tf.linalg.matmul(tf.ones((256, 256)), tf.ones((256, 256))).numpy()
    if not args.no_bytes:
        tracemalloc.start(1)
    # one process per workload would isolate them; the pool and glibc's heap are shared here,
    # so later workloads see the earlier ones' freed memory (run one workload per call for that)
    for name in args.workloads:
        total, rows = probe(name, meter_bytes=not args.no_bytes)
        print(f"\n### {name}: {total:,.0f} page faults per step (epochs 3-4 of fit, library defaults)\n")
        print("| phase | op | layer | shape | calls/step | faults/step | peak bytes in call |")
        print("|---|---|---|---|---|---|---|")
        attributed = 0
        for (phase, op, layer, shape), calls, faults, peak in sorted(rows, key=lambda r: -r[2]):
            attributed += faults
            if faults < args.min_faults and peak < args.min_bytes:
                continue
            print(f"| {phase} | {op} | {layer} | {shape} | {calls:g} | {faults:,.0f} | {peak:,} |")
        print(f"| - | unattributed | - | - | - | {total - attributed:,.0f} | - |")


if __name__ == "__main__":
    main()
