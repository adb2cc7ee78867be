"""The route planner: time each candidate route once per machine, keep the winner.

A fast-tier pass that can run more than one way (a convolution pass by im2col at
several chunk sizes, by the direct loops, flipped, serial or split; a dense layer
by one product or split over the threads) asks the planner which route to take::

    name, planned = planner.choose(op, key, heuristic, candidates, run)

``key`` names the problem (the operation, the array shapes, the dtype and the
thread count, ``planner.key``); ``heuristic`` is the route the fixed rules of
``tuning.py`` pick; ``candidates`` are every route that can compute it; ``run(name)``
computes it by that route, on the caller's own arrays (the routes only read their
inputs and return fresh outputs, so timing one changes no result).

Three modes (``set_planning`` or the environment variable ``NUMBANET_PLANNING``):

* ``"off"``: the heuristic, always; the plan file is never read nor written;
* ``"cached"`` (the default): the route of this machine's plan file where it has one
  for ``key``, else the heuristic. Nothing is ever timed, so a run is deterministic
  given the file;
* ``"measure"``: as "cached", and a key without a plan is planned on the spot: each
  candidate runs once to warm up (Numba compiles on first call), then ``REPEATS``
  times, the candidates interleaved so that a change in machine load falls on all
  of them; the winner has the least median time. It is stored and the file written.

The plan file is ``$XDG_CACHE_HOME/numbanet/plans-<machine key>.json`` (else
``~/.cache/numbanet/``; only in memory when neither can be written). The machine key
is a digest of the CPU model, the core count, the BLAS library, its version and its
kernel type (threadpoolctl's ``internal_api``, ``version``, ``architecture``) and
numbanet's version, all stored in the file as well: a file that does not parse, or
that names another machine, is ignored with a warning, never an error.

A route the fast tier does not know yet is added by name: ``add_route(op, name,
run, applies)`` makes it a candidate of ``op`` wherever ``applies(**shape)`` is true
(``numbanet/fast/conv.py`` dispatches the names it does not know to ``ROUTES``;
``fast/winograd.py`` adds "winograd" and "winograd4" to the three convolution passes this way).

A pass timed alone can win and still lose the training step (its inputs arrive cold,
and under load a split pass waits for a starved thread), so ``numbanet tune`` follows
the per-pass timings with ``check_whole_steps``: whole steps of the model with the new
plans against the heuristics' routes for the same passes, alternating; only a plan
that wins the step is kept, else the heuristics' routes are written for those passes,
so that "cached" mode reproduces the faster of the two. A convolution's backward pass
whose plans are the heuristic's routes runs exactly as with planning off
(``departs_conv_backward``: the direct route's fused walk; ``departs`` for a transposed
convolution's one planes walk). ``plan()`` prints it all.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import parallel

MODES = ("off", "cached", "measure")
FORMAT = 1          # the layout of the plan file; another value is ignored as foreign
REPEATS = 3         # timed runs per candidate in "measure" mode (after one warm-up run)

_STATE = {"mode": None, "plans": None, "checks": None, "path": None, "writable": None, "machine": None,
          "repeats": REPEATS}

# op -> {route name: (run, applies)}: routes added by other modules (``add_route``)
ROUTES: dict = {}


# ------------------------------------------------------------------ the mode
def set_planning(mode: str, repeats: int = REPEATS) -> str:
    """Choose how routes are picked: "off", "cached" (default) or "measure"; returns the mode.

    ``repeats``: the timed runs per candidate in "measure" mode (their median decides).
    """
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise ValueError(f"set_planning: mode must be one of {', '.join(MODES)}, got {mode!r} "
                         f"(\"off\": fixed heuristics; \"cached\": this machine's plans where they exist; "
                         f"\"measure\": time the candidate routes of each new shape once)")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"set_planning: repeats must be an integer >= 1, got {repeats!r}")
    _STATE["mode"], _STATE["repeats"], _ACTIVE[0] = mode.lower(), repeats, None
    return _STATE["mode"]


def get_planning() -> str:
    """The planning mode: set_planning's, else $NUMBANET_PLANNING's, else "cached"."""
    if _STATE["mode"] is None:
        env = os.environ.get("NUMBANET_PLANNING", "cached")
        if env.lower() not in MODES:
            warnings.warn(f"numbanet: NUMBANET_PLANNING={env!r} is not one of {', '.join(MODES)}; "
                          f"planning is off", stacklevel=2)
            env = "off"
        _STATE["mode"] = env.lower()
    return _STATE["mode"]


_ACTIVE = [None]    # active()'s answer, None until worked out; set_planning, reset, _plans and choose clear it


def active() -> bool:
    """True where ``choose`` can return something other than the heuristic (one list read once known)."""
    known = _ACTIVE[0]
    if known is None:
        mode = get_planning()
        known = _ACTIVE[0] = mode == "measure" or (mode == "cached" and bool(_plans()))
    return known


def reset() -> None:
    """Forget the loaded plans, the file's path and the mode (they are found again on next use)."""
    _STATE.update(mode=None, plans=None, checks=None, path=None, writable=None, machine=None)
    _ACTIVE[0] = None


def forget() -> None:
    """Drop every plan and whole-step check of this machine (in memory; ``save`` then writes the empty file)."""
    _STATE["plans"], _STATE["checks"] = {}, {}
    _ACTIVE[0] = None


# ------------------------------------------------------------------ the machine and its file
def machine() -> dict:
    """What makes one machine's timings another's: CPU model, cores, BLAS and its kernels, numbanet."""
    if _STATE["machine"] is None:
        from .. import __version__
        blas = [{"api": lc.internal_api, "version": lc.version, "kernels": (lc.info().get("architecture") or "?")}
                for lc in parallel.blas_controllers()]
        _STATE["machine"] = {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "blas": blas,
                             "numbanet": __version__}
    return _STATE["machine"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_key() -> str:
    """A short digest of ``machine()``, the part of the plan file's name that tells machines apart."""
    return hashlib.sha1(json.dumps(machine(), sort_keys=True).encode()).hexdigest()[:12]


def cache_dirs() -> list:
    """Where plan files may live, in order: $XDG_CACHE_HOME/numbanet, then ~/.cache/numbanet."""
    dirs = []
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "numbanet")
    dirs.append(Path.home() / ".cache" / "numbanet")
    return dirs


def plan_path(create: bool = False):
    """This machine's plan file, or None (plans in memory only).

    The file is in the first of ``cache_dirs`` that is writable or could be created;
    ``create`` (on writing) creates it, reading never does.
    """
    if _STATE["writable"] is None:
        _STATE["path"], _STATE["writable"] = None, False     # memory only, unless a folder will do
        for folder in cache_dirs():
            if _can_hold(folder):
                _STATE["path"], _STATE["writable"] = folder / f"plans-{machine_key()}.json", True
                break
    if create and _STATE["path"] is not None:
        try:
            _STATE["path"].parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
    return _STATE["path"]


def _can_hold(folder: Path) -> bool:
    """True if ``folder`` is a writable folder, or could be made in the nearest folder above it that exists."""
    while not folder.exists():
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def _plans() -> dict:
    """key -> {"route": name, "heuristic": name, "fastest": name, "ms": {route: median ms}, "check": workload},
    loaded from the file on first use (``choose`` and ``check_whole_steps`` explain the fields)."""
    if _STATE["plans"] is None:
        _STATE["plans"], _STATE["checks"] = _load(plan_path())
        _ACTIVE[0] = None
    return _STATE["plans"]


def _checks() -> dict:
    """workload -> the figures of its whole-step check (``check_whole_steps``), loaded with the plans."""
    _plans()
    return _STATE["checks"]


def _load(path):
    """(plans, checks) in ``path``; empty for a missing file, and empty with a warning for a corrupt or foreign one."""
    if path is None or not path.exists():
        return {}, {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a numbanet plan file of format {FORMAT}")
        if data.get("machine") != machine():
            raise ValueError(f"made on another machine ({data.get('machine')!r}, this one is {machine()!r})")
        plans = data.get("plans")
        if not isinstance(plans, dict) or not all(isinstance(k, str) and isinstance(v, dict)
                                                  and isinstance(v.get("route"), str) for k, v in plans.items()):
            raise ValueError("its 'plans' are not {key: {'route': name, ...}}")
        checks = data.get("checks", {})
        fields = {"ms", "min_ms", "kept", "changed", "passes"}
        if not isinstance(checks, dict) or not all(isinstance(c, dict) and fields <= set(c) for c in checks.values()):
            raise ValueError(f"its 'checks' are not {{workload: {{{', '.join(sorted(fields))}, ...}}}}")
        return plans, checks
    except Exception as err:        # a plan file can only speed things up: never fail because of one
        warnings.warn(f"numbanet: ignoring the plan file {path}: {err}; routes fall back to the heuristics "
                      f"until `numbanet tune` (or set_planning('measure')) writes it again", stacklevel=3)
        return {}, {}


def save() -> None:
    """Write the plans to this machine's file (atomically: a temporary file, then a rename)."""
    if get_planning() == "off":
        return
    path = plan_path(create=True)
    if path is None:
        return
    data = {"format": FORMAT, "machine": machine(), "plans": _plans(), "checks": _checks()}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"numbanet: could not write the plan file {path} ({err}); plans are kept in memory only",
                      stacklevel=2)


# ------------------------------------------------------------------ choosing a route
_KEYS: dict = {}         # (op, parts, threads) -> key: every pass of every step asks, so each is built once


def key(op: str, **parts) -> str:
    """The plan's key: "op|name=value|..." with tuples written 1x2x3, plus the thread count."""
    threads = parallel.num_threads()
    memo = (op, *parts.items(), threads)
    try:
        return _KEYS[memo]
    except (KeyError, TypeError):           # TypeError: a part that cannot be hashed; built every time
        pass

    def text(v):
        return "x".join(str(int(i)) for i in v) if isinstance(v, tuple) else str(v)
    made = "|".join([op] + [f"{k}={text(v)}" for k, v in parts.items()] + [f"threads={threads}"])
    if len(_KEYS) < 4096:
        try:
            _KEYS[memo] = made
        except TypeError:
            pass
    return made


def add_route(op: str, name: str, run, applies=None) -> None:
    """Make ``name`` a candidate route of ``op``: ``run(*args)`` computes the pass, ``applies(**shape)``
    says where it can (None: everywhere). The op's module passes ``args`` and ``shape`` (see conv.py)."""
    ROUTES.setdefault(op, {})[name] = (run, applies)


def added_routes(op: str, **shape) -> list:
    """The names of the routes ``add_route`` gave ``op`` that apply to ``shape``."""
    return [name for name, (_, applies) in ROUTES.get(op, {}).items() if applies is None or applies(**shape)]


def choose(op_key: str, heuristic: str, candidates, run):
    """(route name, planned?) for the problem ``op_key``; may time the candidates (mode "measure").

    ``planned`` is None when planning is off, False for the heuristic's route, True
    for a plan's. In "measure" mode an unplanned key is planned here: ``run(name)``
    is called 1 + REPEATS times per candidate.
    """
    mode = get_planning()
    if mode == "off":
        return heuristic, None
    plans = _plans()
    entry = plans.get(op_key)
    if entry is not None and entry["route"] in candidates:
        return entry["route"], True
    if mode != "measure" or len(candidates) < 2:
        return heuristic, False
    ms = measure(candidates, run, _STATE["repeats"])
    best = min(ms, key=ms.get)
    plans[op_key] = {"route": best, "heuristic": heuristic, "fastest": best, "ms": ms}
    _ACTIVE[0] = None
    save()
    return best, True


def departs_conv_backward(x_shape, W_shape, strides, pads, dtype, way, need_gx, need_gW, gx_way=None) -> bool:
    """True where ``conv.conv2d_backward`` must run its gradients pass by pass, each by its plan.

    Where every needed gradient's plan names the heuristic's route (or, in "cached"
    mode, has no plan), the backward pass runs exactly as with planning off: the
    direct route's single walk that fuses the relu mask, gW and gb, which the
    pass-by-pass path cannot. So a plan that keeps the heuristics (``check_whole_steps``)
    costs nothing. The keys are those ``conv._plan`` builds; ``way`` is ``conv.route``'s
    answer, ``gx_way`` ``conv.input_route``'s (None: "direct" where ``way`` is, else "im2col").
    """
    if not active():                  # every Conv2D backward asks: planning off costs one check
        return False
    if gx_way is None:
        gx_way = "direct" if way == "direct" else "im2col"
    passes = ([("conv.input_grad", gx_way)] if need_gx else []) + \
             ([("conv.weight_grad", way)] if need_gW else [])
    return departs(passes, x_shape, W_shape, strides, pads, dtype)


def departs(passes, x_shape, W_shape, strides, pads, dtype) -> bool:
    """True where some (op, heuristic route) of ``passes`` has a plan naming another route, or, in
    "measure" mode, no plan yet: the caller must then run those passes one by one, each by its plan.
    False whenever planning is not active. ``x_shape`` ... ``dtype`` build the keys as ``conv._plan`` does."""
    if not active():
        return False
    plans, measuring = _plans(), get_planning() == "measure"
    shape = dict(x=tuple(x_shape), W=tuple(W_shape), strides=tuple(strides), pads=tuple(pads),
                 dtype=_dtype_name(dtype))
    for op, heuristic in passes:
        entry = plans.get(key(op, **shape))
        if (entry is None and measuring) or (entry is not None and entry["route"] != heuristic):
            return True
    return False


_DTYPE_NAMES: dict = {}


def _dtype_name(dtype) -> str:
    """str(np.dtype(dtype)), "float32", as conv._plan writes it into its keys (memoised: str of a dtype is slow)."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        _DTYPE_NAMES[dtype] = name = str(np.dtype(dtype))
        return name


def measure(candidates, run, repeats=REPEATS) -> dict:
    """{name: median ms of ``repeats`` runs}, after one warm-up run each; the candidates take turns."""
    times = {name: [] for name in candidates}
    for name in candidates:
        run(name)                                   # compiles, fills the scratch buffers
    for _ in range(repeats):
        for name in candidates:
            start = time.perf_counter()
            run(name)
            times[name].append(time.perf_counter() - start)
    return {name: round(1e3 * statistics.median(t), 4) for name, t in times.items()}


def label(name: str, planned) -> str:
    """The route as ``routes.LAST`` records it: "im2col (planned)", "direct (heuristic)", or bare when off."""
    return name if planned is None else f"{name} ({'planned' if planned else 'heuristic'})"


# ------------------------------------------------------------------ the whole-step check
CHECK_ROUNDS = 10       # rounds of the whole-step check; each times every variant for CHECK_STEPS steps
CHECK_STEPS = 3
CHECK_MARGIN = 0.02     # a plan is kept only where its step is at least 2% below the heuristics' (paired)
CONFIDENT_GAIN = 1.10   # the "confident" variant takes a pass's plan only where it won its own timing by 10%


def check_whole_steps(name, step, keys, rounds=CHECK_ROUNDS, steps=CHECK_STEPS, margin=CHECK_MARGIN) -> dict:
    """Keep the plans of ``keys`` only if they make whole training steps faster; returns the figures.

    Why: each pass is planned alone (``measure``), on its own inputs hot in cache
    and with the threads to itself; in a training step the data arrive cold and
    the passes run back to back, and on a loaded machine a pass split over the
    threads waits for the one the scheduler starves, so the isolated timings favour
    serial routes that then leave a free core idle. The step is what users pay
    for, so the step decides. ``step()`` runs one training step of the model whose
    passes ``keys`` name (the keys ``choose`` planned for it); variants of the
    routes of those keys (every other key keeps its route) are timed in turn:

    * "heuristics": every pass by the heuristic's route (as with planning off:
      ``departs_conv_backward`` restores the fused direct backward);
    * "plan": every pass by the route that won its own timing;
    * "confident": the plan only for passes it won by ``CONFIDENT_GAIN`` or more
      (timed only where it differs from both others).

    After one warm-up step each, ``rounds`` rounds time ``steps`` steps of every
    variant, the order rotated each round so that a change in machine load falls
    on all of them. A variant's time is compared with the heuristics' round by round
    (``_paired``: the median over rounds of the ratio of the two round medians, so
    that a load spike that hits one round cancels). A plan variant wins if that
    ratio is at most 1 - ``margin`` and its fastest step is no slower than the
    heuristics' (either alone moves by a few percent under load; the two together
    rarely agree by chance); the winner with the least ratio is kept, else the
    heuristics are.
    The kept routes are written into the plans of ``keys`` (so "cached" mode
    reproduces the winner), and the figures go to the file's "checks" under ``name``.

    Returns {"ms": {variant: median ms}, "min_ms": {variant: min ms}, "ratio": {variant:
    paired ratio to the heuristics' step time}, "kept": variant,
    "passes": len(keys), "changed": passes whose kept route is not the heuristic's,
    "steps": steps timed per variant}.
    """
    plans = _plans()
    keys = [k for k in keys if k in plans]
    heuristic = {k: plans[k].get("heuristic", plans[k]["route"]) for k in keys}
    fastest = {k: plans[k].get("fastest", plans[k]["route"]) for k in keys}
    confident = {k: fastest[k] if _gain(plans[k], fastest[k]) >= CONFIDENT_GAIN else heuristic[k] for k in keys}
    variants = {"heuristics": heuristic}
    if fastest != heuristic:
        variants["plan"] = fastest
        if confident not in (fastest, heuristic):
            variants["confident"] = confident
    times = {v: [] for v in variants}
    mode = get_planning()
    _STATE["mode"] = "cached"                        # nothing is planned while the variants are timed

    def apply(routes):
        for k in keys:
            plans[k]["route"] = routes[k]

    try:
        if len(variants) > 1:
            for routes in variants.values():         # warm-up: compiles, fills the scratch buffers
                apply(routes)
                step()
            order = list(variants)
            for r in range(rounds):
                for v in order[r % len(order):] + order[:r % len(order)]:
                    apply(variants[v])
                    for _ in range(steps):
                        start = time.perf_counter()
                        step()
                        times[v].append(time.perf_counter() - start)
    finally:
        _STATE["mode"] = mode
    if len(variants) == 1:
        med = mins = paired = {}
        kept = "heuristics"
    else:
        med = {v: round(1e3 * statistics.median(t), 3) for v, t in times.items()}
        mins = {v: round(1e3 * min(t), 3) for v, t in times.items()}
        paired = {v: round(_paired(t, times["heuristics"], steps), 4) for v, t in times.items()}
        winners = [v for v in med if v != "heuristics" and paired[v] <= 1 - margin
                   and mins[v] <= mins["heuristics"]]
        kept = min(winners, key=paired.get) if winners else "heuristics"
    apply(variants[kept])
    for k in keys:
        plans[k]["check"] = name
    result = {"ms": med, "min_ms": mins, "ratio": paired, "kept": kept, "passes": len(keys),
              "changed": sum(variants[kept][k] != heuristic[k] for k in keys), "steps": rounds * steps}
    _checks()[name] = result
    save()
    return result


def _paired(times, reference, steps):
    """The median over rounds of (this round's median step) / (the reference's median step in the same round).

    Each round's ``steps`` steps of every variant run back to back, so a slow spell of the
    machine falls on all variants of that round; the ratio within a round cancels it, and the
    median over rounds drops the rounds a load spike hit unevenly.
    """
    rounds = [statistics.median(times[i:i + steps]) / statistics.median(reference[i:i + steps])
              for i in range(0, len(times), steps)]
    return statistics.median(rounds)


def _gain(entry, route):
    """The heuristic's time over ``route``'s in the entry's per-pass timing (1.0 where either is missing)."""
    ms = entry.get("ms", {})
    best, heur = ms.get(route), ms.get(entry.get("heuristic"))
    return heur / best if best and heur else 1.0


# ------------------------------------------------------------------ the plan, printed
@dataclass
class Plan:
    """This machine's plans: ``print(nb.fast.planner.plan())`` shows them as a table.

    One line per planned pass, grouped by operation: its shapes (the key without
    the operation), the route it takes and its per-pass time, the heuristic's route
    and time, their ratio, and a note where the route is not the fastest of its own
    timing (the whole-step check kept the heuristic); then one line per whole-step
    check (``check_whole_steps``): the median step time of each variant and the one kept.
    """
    mode: str
    path: object
    machine: dict
    entries: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    def __str__(self):
        m = self.machine
        blas = "; ".join(f"{b['api']} {b['version']} ({b['kernels']} kernels)" for b in m["blas"]) or "none found"
        other = sum(e["route"] != e.get("heuristic", e["route"]) for e in self.entries.values())
        lines = [f"numbanet plans, mode {self.mode!r}, file {self.path or '(memory only)'}",
                 f"machine: {m['cpu']}, {m['cores']} cores, BLAS {blas}, numbanet {m['numbanet']}",
                 f"{len(self.entries)} planned passes" + (f", {other} of them off the heuristic's route:"
                                                          if self.entries else
                                                          " (every route is the heuristic's; `numbanet tune` plans)")]
        by_op = {}
        for k in sorted(self.entries):
            op, _, shapes = k.partition("|")
            by_op.setdefault(op, []).append((shapes, self.entries[k]))
        for op, rows in by_op.items():
            lines.append(f"  {op}: shapes -> route ms | heuristic ms | heuristic/route")
            for shapes, e in rows:
                ms, route, heur = e.get("ms", {}), e["route"], e.get("heuristic", e["route"])
                line = f"    {shapes.replace('|', ' ')}\n      -> {route}{_ms(ms.get(route))}"
                if heur != route:
                    line += f" | {heur}{_ms(ms.get(heur))} | {_gain(e, route):.2f}x"
                else:
                    line += " (the heuristic's)"
                fastest = e.get("fastest", route)
                if fastest != route:
                    line += (f"; fastest alone {fastest}{_ms(ms.get(fastest))}, "
                             f"not kept by the whole-step check of {e.get('check', '?')}")
                lines.append(line)
        if self.checks:
            lines.append("whole-step checks (median ms per training step, min in brackets, "
                         "time / heuristics' paired by round):")
        for name in sorted(self.checks):
            c = self.checks[name]
            ratio = c.get("ratio", {})
            figures = ", ".join(f"{v} {c['ms'][v]:.2f} ({c['min_ms'][v]:.2f})"
                                + (f" {ratio[v]:.3f}" if v in ratio else "") for v in c.get("ms", {}))
            lines.append(f"  {name}: {figures or 'no pass off the heuristics to check'} -> kept {c['kept']} "
                         f"({c['changed']} of {c['passes']} passes off the heuristic's route)")
        return "\n".join(lines)

    __repr__ = __str__


def _ms(value):
    return f" {value:.3f} ms" if value is not None else ""


def plan() -> Plan:
    """This machine's plans as loaded (or measured) so far; with planning "off" the file is not read."""
    mode = get_planning()
    if mode == "off":
        return Plan(mode, "(not read: planning is off)", machine(), {})
    return Plan(mode, plan_path(), machine(), dict(_plans()), dict(_checks()))
