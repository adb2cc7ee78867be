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
(``numbanet/fast/conv.py`` dispatches the names it does not know to ``ROUTES``).
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

from . import parallel

MODES = ("off", "cached", "measure")
FORMAT = 1          # the layout of the plan file; another value is ignored as foreign
REPEATS = 3         # timed runs per candidate in "measure" mode (after one warm-up run)

_STATE = {"mode": None, "plans": None, "path": None, "writable": None, "machine": None, "repeats": REPEATS}

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
    _STATE.update(mode=None, plans=None, path=None, writable=None, machine=None)
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
    """key -> {"route": name, "ms": {route: median ms}}, loaded from the file on first use."""
    if _STATE["plans"] is None:
        _STATE["plans"], _ACTIVE[0] = _load(plan_path()), None
    return _STATE["plans"]


def _load(path) -> dict:
    """The plans in ``path``; {} for a missing file, and {} with a warning for a corrupt or foreign one."""
    if path is None or not path.exists():
        return {}
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
        return plans
    except Exception as err:        # a plan file can only speed things up: never fail because of one
        warnings.warn(f"numbanet: ignoring the plan file {path}: {err}; routes fall back to the heuristics "
                      f"until `numbanet tune` (or set_planning('measure')) writes it again", stacklevel=3)
        return {}


def save() -> None:
    """Write the plans to this machine's file (atomically: a temporary file, then a rename)."""
    if get_planning() == "off":
        return
    path = plan_path(create=True)
    if path is None:
        return
    data = {"format": FORMAT, "machine": machine(), "plans": _plans()}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"numbanet: could not write the plan file {path} ({err}); plans are kept in memory only",
                      stacklevel=2)


# ------------------------------------------------------------------ choosing a route
def key(op: str, **parts) -> str:
    """The plan's key: "op|name=value|..." with tuples written 1x2x3, plus the thread count."""
    def text(v):
        return "x".join(str(int(i)) for i in v) if isinstance(v, tuple) else str(v)
    return "|".join([op] + [f"{k}={text(v)}" for k, v in parts.items()] + [f"threads={parallel.num_threads()}"])


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
    plans[op_key] = {"route": best, "heuristic": heuristic, "ms": ms}
    _ACTIVE[0] = None
    save()
    return best, True


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


# ------------------------------------------------------------------ the plan, printed
@dataclass
class Plan:
    """This machine's plans: ``print(nb.fast.planner.plan())`` shows them as a table."""
    mode: str
    path: object
    machine: dict
    entries: dict = field(default_factory=dict)

    def __str__(self):
        m = self.machine
        blas = "; ".join(f"{b['api']} {b['version']} ({b['kernels']} kernels)" for b in m["blas"]) or "none found"
        lines = [f"numbanet plans, mode {self.mode!r}, file {self.path or '(memory only)'}",
                 f"machine: {m['cpu']}, {m['cores']} cores, BLAS {blas}, numbanet {m['numbanet']}",
                 f"{len(self.entries)} planned passes" + (":" if self.entries else
                                                          " (every route is the heuristic's; `numbanet tune` plans)")]
        for k in sorted(self.entries):
            e = self.entries[k]
            ms = e.get("ms", {})
            best, heur = ms.get(e["route"]), ms.get(e.get("heuristic"))
            gain = f", {heur / best:.2f}x the heuristic's {e['heuristic']}" if best and heur else ""
            lines.append(f"  {k}\n      -> {e['route']}" + (f"  {best:.3f} ms" if best is not None else "") + gain)
        return "\n".join(lines)

    __repr__ = __str__


def plan() -> Plan:
    """This machine's plans as loaded (or measured) so far; with planning "off" the file is not read."""
    mode = get_planning()
    if mode == "off":
        return Plan(mode, "(not read: planning is off)", machine(), {})
    return Plan(mode, plan_path(), machine(), dict(_plans()))
