"""The trace of one forward and backward pass: one row per graph node, what it computed and how.

    tr = nb.trace(lambda x: (x @ W).tanh(), x)      # any function of Tensors returning a Tensor
    tr = model.trace(x, y)                          # one training step of a model (its compiled loss)
    print(tr)                                       # a fixed-width table with totals
    tr.rows()                                       # the same as plain Python dicts

``trace`` runs the function once forward, then ``backward()`` from the sum of its
output (a gradient of ones) or from a given output gradient ``grad``, and records
for every node of the graph, forward rows in execution order and then backward
rows in the order ``backward()`` visited them:

=============  ==========================================================================
key            meaning
=============  ==========================================================================
phase          "forward" or "backward"
node           the node's number, 0 for the first forward node (a backward row repeats it)
op             the Function's class name (a loss: ``Loss[MeanSquaredError]``)
layer          the name of the layer whose call ran it (``Function.layer``), or None
inputs         forward: the shapes of its Tensor inputs; backward: (gy's shape,)
output         forward: the output's shape; backward: the shape of each input's
               gradient, None where none was computed
dtype          the output's dtype name
padding        (top, bottom, left, right) actually applied, for Conv2D, MaxPool2D and
               Conv2DTranspose (for that one, the pads of the convolution whose input
               gradient it is; a negative bottom/right is a crop), else None
strides        (SH, SW) of the same nodes, else None
tier           "fast" or "reference" where the node called the active kernel tier;
               "engine" where the Function computed in NumPy itself (Add, Sum, ...)
route          fast tier: the route it recorded (``numbanet/fast/routes.py``) with the
               number of cache-sized im2col chunks and the threads the batch was split
               over, e.g. "im2col, 3 chunks, 2 threads"; reference tier: its algorithm
               (``REFERENCE_ALGORITHMS``); engine ops: "numpy"
flops          the analytic count (``numbanet/flops.py``), None for a Function with no rule
out_bytes      forward: the output array; backward: the gradient arrays returned, less
               those that are views of gy (Add's, Sum's pass-through)
saved_bytes    forward: arrays the node keeps for its backward that are neither its
               inputs' arrays nor its output (MaxPool2D's arg-max, Dropout's mask, an
               RNN's saved states); 0 for backward rows
bytes          out_bytes + saved_bytes. Not counted: transient arrays inside one call
               (the reference tier's full im2col matrix, a product's temporaries) and the
               fast tier's reused scratch buffers
time_s         wall time of the node's forward (``Function.__call__``, bookkeeping
               included) or of its ``backward`` (the graph walk's own summing and dtype
               casts are outside it); a fast-tier kernel's first call includes Numba's
               compilation, so trace twice (``numbanet trace`` warms up once) for
               steady-state times
=============  ==========================================================================

FLOPs are counted by the rules of ``numbanet/flops.py`` (2 per multiply-add, 1 per other
elementwise operation, 0 for data movement).

Nothing here runs when nobody traces: the tracing wrappers (``Function.__call__``,
each tier function, each graph node's ``backward``, the fast tier's thread and
chunk helpers) are installed for the duration of one ``trace`` and removed in a
``finally``, so ``Function.__call__`` and ``backward()`` stay exactly as they are.
"""
from __future__ import annotations

import inspect
import time

import numpy as np

from . import losses as losses_mod
from .engine import tiers
from .engine.conv import Conv2D, Conv2DTranspose
from .engine.conv_pool import Conv2DReluMaxPool
from .engine.pooling import MaxPool2D
from .engine.tensor import Function, Tensor, _topological_order
from .fast import conv as fast_conv
from .fast import parallel, routes
from .fast import tier as fast_tier
from .flops import flops as count_flops
from .reference import tier as reference_tier

__all__ = ["trace", "trace_model", "Trace", "REFERENCE_ALGORITHMS"]

COLUMNS = ("phase", "node", "op", "layer", "inputs", "output", "dtype", "padding", "strides", "tier", "route",
           "flops", "out_bytes", "saved_bytes", "bytes", "time_s")

def _conv_backward_steps(gx_step, gW_step, args, kwargs):
    """The steps a reference convolution backward ran: the ones its need_gx / need_gW / need_gb asked for."""
    flags = list(args[7:10]) + [kwargs.get(k, True) for k in ("need_gx", "need_gW", "need_gb")[len(args[7:10]):]]
    steps = [step for step, need in zip((gx_step, gW_step, "column sum"), flags) if need]
    return " + ".join(steps) or "nothing asked"


#: The reference tier's route for each of its functions: the algorithm it runs (reference/tier.py),
#: or a function of the call's arguments that names it.
REFERENCE_ALGORITHMS = {
    "conv2d_forward": "im2col + matmul",
    "conv2d_backward": lambda *a, **k: _conv_backward_steps("col2im(gz W2^T)", "im2col(x)^T gz", a, k),
    "conv2d_transpose_forward": "matmul + col2im",
    "conv2d_transpose_backward": lambda *a, **k: _conv_backward_steps("im2col(gz) W2", "im2col(gz)^T x", a, k),
    "max_pool2d_forward": "window loops, arg-max",
    "max_pool2d_backward": "arg-max scatter",
    "upsample2d_forward": lambda x, size, interpolation: ("repeat" if interpolation == "nearest"
                                                          else "interpolation matrices"),
    "upsample2d_backward": lambda gy, size, interpolation: ("block sums" if interpolation == "nearest"
                                                            else "transposed interpolation matrices"),
    "dense_forward": "matmul + bias",
    "dense_backward": "two matmuls + column sum",
    "embedding_backward": "np.add.at scatter",
    "simple_rnn_forward": "loop over time",
    "simple_rnn_backward": "BPTT loop over time",
    "sparse_ce_forward": "log-softmax",
    "sparse_ce_backward": "softmax - one-hot",
}

# ------------------------------------------------------------------ bookkeeping
class _Node:
    """What the forward call of one graph node recorded."""

    __slots__ = ("fn", "index", "in_shapes", "needs", "out_shape", "dtype", "calls", "time_s", "out_bytes",
                 "saved_bytes", "back")

    def __init__(self, fn, index, inputs, y, calls, seconds):
        self.fn, self.index, self.calls, self.time_s = fn, index, calls, seconds
        self.in_shapes = [x.shape if isinstance(x, Tensor) else None for x in inputs]
        self.needs = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        self.out_shape, self.dtype = tuple(y.shape), y.dtype.name
        self.out_bytes = y.data.nbytes
        self.saved_bytes = _saved_bytes(fn, [x.data for x in inputs if isinstance(x, Tensor)] + [y.data])
        self.back = None


def _arrays_in(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, np.ndarray):
                yield v


def _saved_bytes(fn, own):
    """Bytes of the arrays ``fn`` keeps on itself that share no memory with its inputs or output ``own``."""
    seen, total = set(), 0
    for value in vars(fn).values():
        for a in _arrays_in(value):
            if id(a) in seen or any(np.may_share_memory(a, o) for o in own):
                continue
            seen.add(id(a))
            total += a.nbytes
    return total


def _op_name(fn):
    if isinstance(fn, losses_mod._ReducedLoss):
        return f"Loss[{type(fn.loss).__name__}]"
    return type(fn).__name__


def _geometry(fn):
    """(padding, strides) of a convolution or pooling node, else (None, None)."""
    if isinstance(fn, (Conv2D, Conv2DTranspose, MaxPool2D, Conv2DReluMaxPool)):   # the fused pair: its conv's
        return tuple(int(p) for p in fn.pads), tuple(int(s) for s in fn.strides)
    return None, None


class _Calls:
    """The tier calls made while one node ran: [(tier, function name, route)], and the fast tier's counters."""

    __slots__ = ("items", "threads", "chunks")

    def __init__(self):
        self.items, self.threads, self.chunks = [], 0, []


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Tracer:
    """Installs the tracing wrappers, collects the rows, and removes the wrappers again."""

    active = None      # the one tracer running now (traces do not nest)

    def __init__(self):
        self.nodes, self.by_fn, self.stack, self.backward_rows = [], {}, [], []
        self.saved = []        # (object, attribute name, original value), restored in reverse order

    # ------------------------------------------------------------ patching
    def _patch(self, owner, name, value):
        self.saved.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, value)

    def install(self):
        original_call = Function.__dict__["__call__"]
        tracer = self

        def traced_call(fn, *inputs):
            calls = _Calls()
            tracer.stack.append(calls)
            start = time.perf_counter()
            try:
                y = original_call(fn, *inputs)
            finally:
                seconds = time.perf_counter() - start
                tracer.stack.pop()
            if isinstance(y, Tensor) and y.creator is fn and id(fn) not in tracer.by_fn:
                node = _Node(fn, len(tracer.nodes), inputs, y, calls, seconds)
                tracer.nodes.append(node)
                tracer.by_fn[id(fn)] = node
            return y

        self._patch(Function, "__call__", traced_call)
        for label, module in (("fast", fast_tier), ("reference", reference_tier)):
            for name, f in list(vars(module).items()):
                if not name.startswith("_") and inspect.isfunction(f):
                    self._patch(module, name, self._tier_wrapper(label, name, f))
        for name in ("run", "run_numpy"):
            self._patch(parallel, name, self._thread_counter(getattr(parallel, name)))
        self._patch(fast_conv, "_over_chunks", self._chunk_counter(fast_conv._over_chunks))
        self.routes_before = dict(routes.LAST)

    def restore(self):
        for fn in list(self.by_fn.values()):
            fn.fn.__dict__.pop("backward", None)
        while self.saved:
            owner, name, value = self.saved.pop()
            setattr(owner, name, value)
        recorded = dict(routes.LAST)          # the routes of the traced calls stay "the last call's"
        routes.LAST.clear()
        routes.LAST.update(self.routes_before)
        routes.LAST.update(recorded)

    # ------------------------------------------------------------ wrappers
    def _tier_wrapper(self, label, name, f):
        tracer = self

        def traced(*args, **kwargs):
            routes.LAST.pop(name, None)
            calls = tracer.stack[-1] if tracer.stack else _Calls()
            threads, chunks = calls.threads, len(calls.chunks)
            calls.threads = 0
            try:
                return f(*args, **kwargs)
            finally:
                if label == "reference":
                    route = REFERENCE_ALGORITHMS.get(name, name)
                    route = route(*args, **kwargs) if callable(route) else route
                else:
                    parts = [routes.LAST.get(name) or name]
                    if len(calls.chunks) > chunks:
                        parts.append(_plural(len(calls.chunks) - chunks, "chunk"))
                    if calls.threads:
                        parts.append(_plural(calls.threads, "thread"))
                    route = ", ".join(parts)
                calls.threads = max(threads, calls.threads)
                calls.items.append((label, name, route))

        traced.__wrapped__ = f
        return traced

    def _thread_counter(self, run):
        tracer = self

        def counted(fn, ranges):
            if tracer.stack:
                tracer.stack[-1].threads = max(tracer.stack[-1].threads, len(ranges))
            return run(fn, ranges)

        return counted

    def _chunk_counter(self, over_chunks):
        tracer = self

        def counted(N, R, K, itemsize, body, *how):     # how: the im2col route's chunk size / serial
            if not tracer.stack:
                return over_chunks(N, R, K, itemsize, body, *how)
            chunks = tracer.stack[-1].chunks

            def counted_body(*args):
                chunks.append(1)          # list.append is atomic: chunks run on the pool's threads too
                return body(*args)

            return over_chunks(N, R, K, itemsize, counted_body, *how)

        return counted

    def wrap_backward(self, root):
        """Give every node reachable from ``root`` a timing ``backward`` of its own (an instance attribute)."""
        tracer = self
        for fn in _topological_order(root):
            node = self.by_fn.get(id(fn))
            if node is None:
                continue
            original = type(fn).backward.__get__(fn)

            def traced_backward(gy, node=node, original=original):
                calls = _Calls()
                tracer.stack.append(calls)
                start = time.perf_counter()
                try:
                    gxs = original(gy)
                finally:
                    seconds = time.perf_counter() - start
                    tracer.stack.pop()
                node.back = (np.shape(gy), gxs, calls, seconds, gy)
                tracer.backward_rows.append(node)
                return gxs

            fn.backward = traced_backward


def _gradient_bytes(gxs, inputs, gy):
    """Bytes of the gradients returned for Tensor inputs, less those that are views of ``gy``."""
    return sum(g.nbytes for g, x in zip(gxs, inputs)
               if x is not None and isinstance(g, np.ndarray) and not np.may_share_memory(g, gy))


def _tier_and_route(calls):
    if not calls.items:
        return "engine", "numpy"
    tier_names = sorted({label for label, _, _ in calls.items})
    return "+".join(tier_names), "; ".join(route for _, _, route in calls.items)


def _forward_row(node, flops):
    padding, strides = _geometry(node.fn)
    tier, route = _tier_and_route(node.calls)
    return {"phase": "forward", "node": node.index, "op": _op_name(node.fn), "layer": node.fn.layer,
            "inputs": tuple(s for s in node.in_shapes if s is not None), "output": node.out_shape,
            "dtype": node.dtype, "padding": padding, "strides": strides, "tier": tier, "route": route,
            "flops": flops, "out_bytes": node.out_bytes, "saved_bytes": node.saved_bytes,
            "bytes": node.out_bytes + node.saved_bytes, "time_s": node.time_s}


def _backward_row(node, flops):
    gy_shape, gxs, calls, seconds, gy = node.back
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    padding, strides = _geometry(node.fn)
    tier, route = _tier_and_route(calls)
    shapes = tuple(None if g is None else tuple(np.shape(g)) for g, x in zip(gxs, node.fn.inputs) if x is not None)
    out_bytes = _gradient_bytes(gxs, node.fn.inputs, gy)
    return {"phase": "backward", "node": node.index, "op": _op_name(node.fn), "layer": node.fn.layer,
            "inputs": (tuple(gy_shape),), "output": shapes, "dtype": node.dtype, "padding": padding,
            "strides": strides, "tier": tier, "route": route, "flops": flops, "out_bytes": out_bytes,
            "saved_bytes": 0, "bytes": out_bytes, "time_s": seconds}


# ------------------------------------------------------------------ the public object
def _fmt_shape(shape):
    if shape is None:
        return "-"
    return "(" + ",".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _three_digits(v):
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def _fmt_count(n, unit=""):
    if n is None:
        return "-"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{_three_digits(n / scale)} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _fmt_bytes(n):
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{_three_digits(n / scale)} {suffix}"
    return f"{n} B"


class Trace:
    """The rows of one traced forward + backward pass (see the module docstring for each key).

    ``print(trace)`` shows a fixed-width table with totals; ``trace.rows()`` (also
    ``to_rows()``) gives plain dicts, ``trace.rows("forward")`` one phase;
    ``trace.totals()`` sums FLOPs, bytes and time per phase; ``trace.output`` is the
    traced output (for a model trace, the loss), e.g. for ``nb.plot_graph(trace.output)``.
    """

    def __init__(self, rows, output, tier, title):
        self._rows, self.output, self.tier, self.title = rows, output, tier, title

    def rows(self, phase=None):
        """The rows as a list of new dicts, all of them or those of ``phase`` ("forward" / "backward")."""
        if phase not in (None, "forward", "backward"):
            raise ValueError(f"Trace.rows: phase must be None, 'forward' or 'backward', got {phase!r}")
        return [dict(r) for r in self._rows if phase is None or r["phase"] == phase]

    to_rows = rows

    def __len__(self):
        return len(self._rows)

    def __iter__(self):
        return iter(self.rows())

    def totals(self):
        """{"forward" | "backward" | "total": {"nodes", "flops", "bytes", "time_s"}}; FLOPs of counted rows only."""
        out = {}
        for phase in ("forward", "backward", None):
            rows = [r for r in self._rows if phase is None or r["phase"] == phase]
            out[phase or "total"] = {"nodes": len(rows),
                                     "flops": sum(r["flops"] for r in rows if r["flops"] is not None),
                                     "uncounted": sum(r["flops"] is None for r in rows),
                                     "bytes": sum(r["bytes"] for r in rows),
                                     "time_s": sum(r["time_s"] for r in rows)}
        return out

    def __repr__(self):
        t = self.totals()
        return (f"<Trace {self.title}: {t['forward']['nodes']} forward + {t['backward']['nodes']} backward rows, "
                f"{_fmt_count(t['total']['flops'], 'FLOP')}, tier {self.tier}>")

    def __str__(self):
        head = ("#", "phase", "op", "layer", "inputs", "output", "dtype", "pad (T,B,L,R)", "strides", "tier",
                "route", "FLOPs", "bytes", "ms")
        body = []
        for r in self._rows:
            if r["phase"] == "forward":
                output = _fmt_shape(r["output"])
            else:
                output = " ".join(_fmt_shape(s) for s in r["output"])
            body.append((str(r["node"]), "fwd" if r["phase"] == "forward" else "bwd", r["op"], r["layer"] or "-",
                         " ".join(_fmt_shape(s) for s in r["inputs"]), output, r["dtype"],
                         _fmt_shape(r["padding"]), _fmt_shape(r["strides"]), r["tier"], r["route"],
                         _fmt_count(r["flops"]), _fmt_bytes(r["bytes"]), f"{r['time_s'] * 1e3:.3f}"))
        right = {0, 11, 12, 13}
        widths = [max(len(head[i]), *(len(b[i]) for b in body)) if body else len(head[i]) for i in range(len(head))]

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(head))
        out = [f"trace of {self.title} (kernel tier: {self.tier})", line(head), rule]
        for k, b in enumerate(body):
            if k and self._rows[k]["phase"] != self._rows[k - 1]["phase"]:
                out.append(rule)
            out.append(line(b))
        out.append(rule)
        t = self.totals()
        for phase in ("forward", "backward", "total"):
            s = t[phase]
            extra = f" ({s['uncounted']} rows without a FLOP rule)" if s["uncounted"] else ""
            out.append(f"{phase + ':':<10}{s['nodes']:>4} row{'' if s['nodes'] == 1 else 's'}  {_fmt_count(s['flops'], 'FLOP'):>12}{extra}  "
                       f"{_fmt_bytes(s['bytes']):>10}  {s['time_s'] * 1e3:9.3f} ms")
        out.append("FLOPs: 2 per multiply-add, 1 per other elementwise operation; bytes: outputs, saved arrays "
                   "and gradients (numbanet.tracing docstring)")
        return "\n".join(out)


# ------------------------------------------------------------------ running a trace
def _run(step, title):
    """Run ``step(tracer) -> output Tensor`` (which also runs backward) under the tracing wrappers."""
    if _Tracer.active is not None:
        raise RuntimeError("trace: a trace is already running (traces do not nest)")
    tracer = _Tracer()
    _Tracer.active = tracer
    tier = tiers.get_kernels()
    try:
        tracer.install()
        output = step(tracer)
    finally:
        _Tracer.active = None
        tracer.restore()
    rows = []
    flops = {id(n): count_flops(n) for n in tracer.nodes}
    rows += [_forward_row(n, flops[id(n)][0]) for n in tracer.nodes]
    rows += [_backward_row(n, flops[id(n)][1]) for n in tracer.backward_rows]
    return Trace(rows, output, tier, title)


_NO_GRAPH_FIX = ("pass inputs as ndarrays (they become Tensors with requires_grad=True) or Tensors made with "
                 "requires_grad=True")


def _backward(tracer, out, grad, owner, fix=_NO_GRAPH_FIX):
    if not isinstance(out, Tensor):
        raise TypeError(f"{owner}: the function must return a Tensor, got {type(out).__name__}")
    if not out.requires_grad or out.creator is None:
        raise ValueError(f"{owner}: the output of shape {out.shape} was not computed from any Tensor that requires "
                         f"a gradient, so there is no graph to trace; {fix}")
    tracer.wrap_backward(out)
    if grad is None:
        grad = np.ones_like(out.data)        # the gradient of out.sum()
    elif np.shape(grad.data if isinstance(grad, Tensor) else grad) != out.shape:
        raise ValueError(f"{owner}: grad has shape {np.shape(getattr(grad, 'data', grad))} but the output has "
                         f"shape {out.shape}; pass grad=None to start from the output's sum")
    out.backward(grad)


def trace(fn, *inputs, grad=None):
    """Run ``fn(*inputs)`` forward and backward once and return its ``Trace``.

    ``fn``: a function of Tensors returning one Tensor y. ``inputs``: Tensors (used
    as they are) or arrays (made Tensors with requires_grad=True). The backward pass
    starts from the sum of y (a gradient of ones, y's shape) or from ``grad`` (y's
    shape). Leaf gradients accumulate into ``.grad`` as ``backward()`` always does.
    """
    if not callable(fn):
        raise TypeError(f"trace: fn must be a function of Tensors returning a Tensor, got {type(fn).__name__}")
    if len(inputs) == 0:
        raise ValueError("trace: no inputs given; call trace(fn, x, ...) with the Tensors or arrays fn takes")
    args = [x if isinstance(x, Tensor) else Tensor(np.asarray(x), requires_grad=True) for x in inputs]
    name = getattr(fn, "__name__", type(fn).__name__)

    def step(tracer):
        out = fn(*args)
        _backward(tracer, out, grad, "trace")
        return out

    return _run(step, f"{name}(" + ", ".join(_fmt_shape(a.shape) for a in args) + ")")


def trace_model(model, x, y=None):
    """One training step of ``model`` on (x, y), traced, without the optimizer's update (``Model.trace``).

    Forward in training mode (dropout draws), then the compiled loss (a model that is
    not compiled, called without y, runs backward from the sum of its output), then
    ``backward()``. The weights are not changed; each trainable weight's ``.grad``
    is cleared first and holds this step's gradient afterwards.
    """
    owner = f"{model.name}.trace"
    compiled = getattr(model, "loss", None) is not None
    if not compiled and y is not None:
        raise ValueError(f"{owner}: the model is not compiled, so it has no loss to apply to y; call "
                         f"model.compile(optimizer, loss) first, or call model.trace(x) without y to run "
                         f"backward from the sum of the output")
    if compiled and y is None:
        raise ValueError(f"{owner}: the model is compiled with the loss {model.loss.name!r}, which needs the "
                         f"targets: call model.trace(x, y)")
    x, y, _ = model._prepare_data(x, y, "trace", needs_y=compiled)
    for w in model.trainable_weights:
        w.grad = None

    def step(tracer):
        y_pred = model(x, training=True)
        out = model.compute_loss(y, y_pred) if compiled else y_pred
        _backward(tracer, out, None, owner, fix="the model has no trainable weights, so a training step records "
                                                  "no graph; trace it as a function of its input instead: "
                                                  "nb.trace(model, x)")
        return out

    what = f"the loss {model.loss.name}" if compiled else "the output's sum"
    return _run(step, f"one training step of {model.name} on a batch of {len(x)} ({what}, no update)")
