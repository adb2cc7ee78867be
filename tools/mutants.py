"""Planted-bug (mutation) testing for numbanet: does the test suite notice a small wrong answer?

A *mutant* is one small edit to one source file. The suite *kills* it if at least
one test fails; a mutant the suite *survives* marks code whose behaviour no test
pins down. Score = killed / (total - gone).

Operators (kept small on purpose; each is one textual edit at the node's exact
column offsets, so formatting and comments survive):

    arith     a + b <-> a - b,  a * b <-> a / b  (also the augmented forms += -= *= /=);
              skipped when an operand is a str/tuple/list literal (concatenation, shapes)
    compare   <  <-> <=,  >  <-> >=,  == <-> !=
    const     numeric literal c:  0 -> 1,  1 -> 0,  other int c -> c + 1;
              float 0.0 -> 1.0, 1.0 -> 0.0, 0 < |c| < 1 -> c / 2 (0.5 -> 0.25, 1e-7 -> 5e-08),
              other float c -> c + 1
    unary     -x -> x   (unary minus removed)
    boolop    and <-> or
    bool      True <-> False
    index     a[i] -> a[i + 1] for a bare name index, also each bare name in a
              tuple index a[i, j] and a bare-name slice bound a[i:j]
    return    return <arithmetic expression> -> return -(<expression>)

Not mutated: docstrings and every other string, f-strings, type annotations,
decorators, ``raise`` and ``assert`` statements, calls to print/warn/logging,
and the test of an ``if`` whose body is only a ``raise`` (the input-validation
guards: this tool measures whether the suite catches wrong *answers*; the
error paths have their own tests in test_bad_input.py / test_conv_errors.py).

Mutant id (stable under edits elsewhere in the file):

    <module>:<function qualname>:<operator>:<k>:<original>-><replacement>

where k counts the sites with the same (function, operator, original,
replacement) in source order. Replaying looks the id up in the current source;
if it is no longer there but exactly one site with the same (function, operator,
original, replacement) exists, that site is used ("moved"); otherwise the mutant
is "gone" and left out of the score.

Running: the repository's numbanet/, tests/, benchmarks/ and pyproject.toml are
copied once into a scratch directory; each mutant edits one file there, runs

    python -m pytest -x -q -p no:cacheprovider <the test files mapped to the module>

with PYTHONPATH=<scratch>, and restores the file (text and mtime). Numba's cache
lives in a private NUMBA_CACHE_DIR: a mutant of a file with @njit kernels runs
with a fresh copy of the warm cache, and its edited file gets a different mtime,
so Numba recompiles that file (and only that one); kernels/config.py mutants
(the flags every kernel is compiled with) get an empty cache. Before any mutant
runs, each mapped test-file group runs once unmutated: it must pass, and its
time sets the per-mutant timeout (3 x baseline + 60 s).

Outcome per mutant: killed (a test failed), error (the mutated code failed to
import or collect: counted as killed, listed separately), timeout (killed by the
time limit: counted as killed, listed separately), survived, gone.

Usage (from the repository root):

    python tools/mutants.py --per-module 10 --seed 0 --out tools/mutation-results/before
    python tools/mutants.py --replay tools/mutation-results/before.json --out tools/mutation-results/after
    python tools/mutants.py --list --per-module 10       # print the sample, run nothing
"""
from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module (path relative to the repository root) -> the test files that exercise it.
# Test files are run in this order with -x, so the fast, direct ones come first.
ENGINE_TESTS = ["tests/test_engine_tensor.py", "tests/test_engine_ops.py", "tests/test_gradcheck.py",
                "tests/test_layers_core.py", "tests/test_training.py", "tests/test_models_api.py",
                "tests/test_parallel.py", "tests/test_keras_parity_dense.py"]
CONV_TESTS = ["tests/test_conv_shapes.py", "tests/test_conv_errors.py", "tests/test_conv_kernels.py",
              "tests/test_conv_direct.py", "tests/test_conv_grad.py", "tests/test_conv_keras.py",
              "tests/test_conv_training.py"]
SEQ_TESTS = ["tests/test_seq_embedding.py", "tests/test_seq_rnn.py", "tests/test_seq_loss.py",
             "tests/test_seq_mask_fit.py"]
TEST_MAP: dict[str, list[str]] = {
    "numbanet/engine/tensor.py": ENGINE_TESTS + CONV_TESTS[:4] + SEQ_TESTS[:2],
    "numbanet/engine/ops.py": ENGINE_TESTS + ["tests/test_seq_rnn.py"],
    "numbanet/engine/functional.py": ENGINE_TESTS + CONV_TESTS + ["tests/test_seq_rnn.py"],
    "numbanet/engine/gradcheck.py": ["tests/test_gradcheck.py", "tests/test_engine_ops.py",
                                     "tests/test_conv_grad.py", "tests/test_seq_rnn.py",
                                     "tests/test_seq_embedding.py", "tests/test_seq_loss.py"],
    "numbanet/engine/conv.py": CONV_TESTS,
    "numbanet/engine/conv_shapes.py": CONV_TESTS,
    "numbanet/engine/pooling.py": CONV_TESTS,
    "numbanet/engine/recurrent.py": SEQ_TESTS,
    "numbanet/engine/sequence.py": SEQ_TESTS,
    "numbanet/fast/kernels/config.py": CONV_TESTS[:4] + SEQ_TESTS[:1] + ["tests/test_layers_core.py"],
    "numbanet/fast/kernels/direct_conv.py": CONV_TESTS,
    "numbanet/fast/kernels/elementwise.py": CONV_TESTS,              # relu_mask_into: conv.py's fused relu
    "numbanet/fast/kernels/embedding.py": SEQ_TESTS,
    "numbanet/fast/kernels/im2col.py": CONV_TESTS,
    "numbanet/fast/kernels/pooling.py": CONV_TESTS,
    "numbanet/fast/kernels/upsample.py": CONV_TESTS,
    "numbanet/losses.py": ["tests/test_losses.py", "tests/test_seq_loss.py", "tests/test_keras_parity_dense.py",
                           "tests/test_training.py", "tests/test_models_api.py", "tests/test_bad_input.py"],
    "numbanet/optimizers.py": ["tests/test_optimizers.py", "tests/test_keras_parity_dense.py",
                               "tests/test_training.py", "tests/test_models_api.py", "tests/test_bad_input.py"],
}
# tests written to kill survivors of a run: cheap, so every module runs them
TEST_MAP = {module: tests + ["tests/test_mutation_killers.py"] for module, tests in TEST_MAP.items()}
# kernels/config.py holds only the @njit flags (cache, nogil, the fastmath set): its mutants change
# speed, not answers, and each one recompiles every kernel; it is left out unless named with --modules.
DEFAULT_TARGETS = [m for m in TEST_MAP if m != "numbanet/fast/kernels/config.py"]
COPIED = ["numbanet", "tests", "benchmarks", "pyproject.toml"]
SKIP_CALLS = {"print", "warn", "warning", "info", "debug", "error", "exception", "critical"}
FLOAT_SPECIAL = {0.0: 1.0, 1.0: 0.0}


@dataclass
class Mutant:
    """One planted bug: replace source[start:end] (character offsets) ``orig`` with ``repl``."""
    id: str
    module: str
    func: str
    op: str
    k: int
    orig: str
    repl: str
    line: int
    col: int
    start: int = field(default=0, repr=False)
    end: int = field(default=0, repr=False)


# ---------------------------------------------------------------- finding mutants

def _line_starts(source: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", source):
        starts.append(m.end())
    return starts


class _Finder(ast.NodeVisitor):
    """Collects the candidate edits of one module, in source order, with their function qualname."""

    def __init__(self, source: str):
        self.src = source
        self.starts = _line_starts(source)
        self.stack: list[str] = []
        self.sites: list[tuple[str, str, int, int, str, str]] = []   # (func, op, start, end, orig, repl)

    # offsets -------------------------------------------------------------
    def off(self, line: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets; convert within the line
        base = self.starts[line - 1]
        text = self.src[base:self.starts[line] if line < len(self.starts) else len(self.src)]
        return base + len(text.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node) -> tuple[int, int]:
        return self.off(node.lineno, node.col_offset), self.off(node.end_lineno, node.end_col_offset)

    def add(self, op: str, start: int, end: int, repl: str):
        orig = self.src[start:end]
        if orig != repl:
            self.sites.append((".".join(self.stack) or "<module>", op, start, end, orig, repl))

    def token_between(self, a: int, b: int, tokens: tuple[str, ...]) -> tuple[int, int] | None:
        """Position of the first of ``tokens`` in src[a:b], skipping comments and brackets."""
        i = a
        while i < b:
            c = self.src[i]
            if c == "#":
                i = self.src.find("\n", i, b)
                if i < 0:
                    return None
                continue
            for t in tokens:
                if self.src.startswith(t, i):
                    after = self.src[i + len(t):i + len(t) + 1]
                    # a keyword must stand alone; an operator must not be the prefix of a longer one
                    if t.isalpha() and (self.src[i - 1:i].isalnum() or after.isalnum()):
                        continue
                    if not t.isalpha() and after in ("=", "*", "/", "<", ">") and t + after not in tokens:
                        continue
                    return i, i + len(t)
            i += 1
        return None

    # scopes --------------------------------------------------------------
    def _scope(self, node):
        self.stack.append(node.name)
        for stmt in node.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt is node.body[0] \
                    and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue                                     # docstring
            self.visit(stmt)
        if not isinstance(node, ast.ClassDef):
            for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                self.visit(d)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    # skipped subtrees ----------------------------------------------------
    def visit_Raise(self, node):
        pass

    def visit_Assert(self, node):
        pass

    def visit_JoinedStr(self, node):
        pass

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_Call(self, node):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in SKIP_CALLS:
            return
        self.generic_visit(node)

    def visit_If(self, node):
        guard = all(isinstance(s, ast.Raise) for s in node.body)
        if not guard:
            self.visit(node.test)
        for s in node.body + node.orelse:
            self.visit(s)

    # operators -----------------------------------------------------------
    ARITH = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*")}

    def visit_BinOp(self, node):
        if type(node.op) in self.ARITH:
            literal = (ast.List, ast.Tuple, ast.JoinedStr, ast.ListComp)
            lit = any(isinstance(x, literal) or (isinstance(x, ast.Constant) and isinstance(x.value, (str, bytes)))
                      for x in (node.left, node.right))
            if not lit:
                a, b = self.span(node.left)[1], self.span(node.right)[0]
                t, r = self.ARITH[type(node.op)]
                pos = self.token_between(a, b, (t,))
                if pos:
                    self.add("arith", *pos, r)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if type(node.op) in self.ARITH:
            a, b = self.span(node.target)[1], self.span(node.value)[0]
            t, r = self.ARITH[type(node.op)]
            pos = self.token_between(a, b, (t + "=",))
            if pos:
                self.add("arith", *pos, r + "=")
        self.generic_visit(node)

    CMP = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
           ast.Eq: ("==", "!="), ast.NotEq: ("!=", "==")}

    def visit_Compare(self, node):
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if type(op) in self.CMP:
                t, r = self.CMP[type(op)]
                pos = self.token_between(self.span(left)[1], self.span(right)[0], ("<=", ">=", "==", "!=", "<", ">"))
                if pos and self.src[pos[0]:pos[1]] == t:
                    self.add("compare", *pos, r)
            left = right
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        t, r = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for x, y in zip(node.values, node.values[1:]):
            pos = self.token_between(self.span(x)[1], self.span(y)[0], (t,))
            if pos:
                self.add("boolop", *pos, r)
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and node.lineno == node.end_lineno:
            s, e = self.span(node)
            o = self.span(node.operand)
            self.add("unary", s, e, self.src[o[0]:o[1]])
            if isinstance(node.operand, ast.Constant):
                return                                       # -1 gets the sign edit only
        self.generic_visit(node)

    def visit_Constant(self, node):
        v = node.value
        s, e = self.span(node)
        if isinstance(v, bool):
            self.add("bool", s, e, repr(not v))
        elif isinstance(v, int):
            self.add("const", s, e, {0: "1", 1: "0"}.get(v, str(v + 1)))
        elif isinstance(v, float):
            if v in FLOAT_SPECIAL:
                nv = FLOAT_SPECIAL[v]
            elif 0 < abs(v) < 1:
                nv = v / 2
            else:
                nv = v + 1
            self.add("const", s, e, repr(nv))

    def visit_Subscript(self, node):
        sl = node.slice
        names = []
        if isinstance(sl, ast.Name):
            names = [sl]
        elif isinstance(sl, ast.Tuple):
            names = [x for x in sl.elts if isinstance(x, ast.Name)]
        elif isinstance(sl, ast.Slice):
            names = [x for x in (sl.lower, sl.upper) if isinstance(x, ast.Name)]
        for n in names:
            s, e = self.span(n)
            self.add("index", s, e, f"{n.id} + 1")
        self.generic_visit(node)

    def visit_Return(self, node):
        v = node.value
        if isinstance(v, ast.BinOp) and type(v.op) in self.ARITH and node.lineno == node.end_lineno \
                and not any(isinstance(x, (ast.List, ast.Tuple)) or (isinstance(x, ast.Constant) and isinstance(x.value, str))
                            for x in (v.left, v.right)):
            s, e = self.span(v)
            self.add("return", s, e, f"-({self.src[s:e]})")
        self.generic_visit(node)

    def generic_visit(self, node):
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)


def find_mutants(source: str, module: str) -> list[Mutant]:
    """Every candidate mutant of ``source``, in source order, with stable ids."""
    tree = ast.parse(source)
    finder = _Finder(source)
    for stmt in tree.body:
        if stmt is tree.body[0] and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue                                         # module docstring
        finder.visit(stmt)
    sites = sorted(finder.sites, key=lambda s: (s[2], s[3]))
    counts: dict[tuple, int] = {}
    out = []
    for func, op, start, end, orig, repl in sites:
        key = (func, op, orig, repl)
        k = counts.get(key, 0)
        counts[key] = k + 1
        line = source.count("\n", 0, start) + 1
        col = start - (source.rfind("\n", 0, start) + 1)
        out.append(Mutant(f"{module}:{func}:{op}:{k}:{orig}->{repl}", module, func, op, k, orig, repl,
                          line, col, start, end))
    return out


def apply(source: str, m: Mutant) -> str:
    """The source with mutant ``m`` planted; it must have been found in this very source."""
    assert source[m.start:m.end] == m.orig, (m.id, source[m.start:m.end])
    return source[:m.start] + m.repl + source[m.end:]


def locate(source: str, entry: dict) -> tuple[Mutant | None, str]:
    """Find a recorded mutant in (possibly edited) source: (mutant, 'found'|'moved'|'gone')."""
    cands = find_mutants(source, entry["module"])
    for m in cands:
        if m.id == entry["id"]:
            return m, "found"
    same = [m for m in cands if (m.func, m.op, m.orig, m.repl) ==
            (entry["func"], entry["op"], entry["orig"], entry["repl"])]
    if len(same) == 1:
        return same[0], "moved"
    return None, "gone"


def sample(targets: list[str], per_module: int, seed: int) -> list[Mutant]:
    """per_module mutants from each target, drawn with a per-module seeded RNG (stratified).

    The list is ordered round robin over the modules (the first pick of each module, then
    the second, ...), so that a run stopped early has covered every module alike.
    """
    per = []
    for mod in targets:
        cands = find_mutants((ROOT / mod).read_text(), mod)
        rng = random.Random(f"{seed}:{mod}")
        picks = sorted(rng.sample(range(len(cands)), min(per_module, len(cands))))
        per.append([cands[i] for i in picks])
    # round robin over the modules, so that a run cut short still covers every module alike
    return [ms[i] for i in range(per_module) for ms in per if i < len(ms)]


# ---------------------------------------------------------------- running mutants

DESELECT: set[str] = set()


def _run_pytest(scratch: Path, tests: list[str], cache: Path, timeout: float, first=True):
    """Run pytest in ``scratch``: (status, seconds, detail, failed test ids).

    status is passed/failed/error/timeout; ``first`` stops at the first failure (-x).
    """
    env = dict(os.environ, PYTHONPATH=str(scratch), NUMBA_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", *(["-x"] if first else []), "-q", "-p", "no:cacheprovider",
           "-o", "addopts=", "-rfE", *tests, *[f"--deselect={t}" for t in sorted(DESELECT)]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)                 # the pytest process group this call started
        proc.communicate()
        return "timeout", time.perf_counter() - t0, f"over {timeout:.0f} s", []
    dt = time.perf_counter() - t0
    if proc.returncode == 0:
        return "passed", dt, "", []
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    if proc.returncode == 1 and failed:
        return "failed", dt, failed[0], failed
    if re.search(r"(ImportError|SyntaxError|ModuleNotFoundError|NameError|errors during collection)", out):
        last = [ln for ln in out.splitlines() if re.search(r"Error", ln)]
        return "error", dt, (last[0].strip() if last else f"rc={proc.returncode}")[:200], failed
    if proc.returncode < 0 or proc.returncode > 5:
        return "failed", dt, f"crashed (rc={proc.returncode})", failed
    return ("failed" if failed else "error"), dt, (failed[0] if failed else f"rc={proc.returncode}: " + out[-200:]), failed


def _make_scratch(base: Path) -> Path:
    scratch = base / "repo"
    scratch.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc",
                                                                               "results"))
        elif src.exists():
            shutil.copy2(src, scratch / name)
    return scratch


def run(entries: list[dict], jobs: int, out: Path, meta: dict, log=print) -> list[dict]:
    t_start = time.perf_counter()
    meta["wall_before"] = meta.get("wall_seconds", 0)
    tmp = Path(tempfile.mkdtemp(prefix="numbanet-mutants-"))
    try:
        scratches = [_make_scratch(tmp / f"w{j}") for j in range(jobs)]
        caches = [tmp / f"w{j}" / "numba-cache" for j in range(jobs)]
        # baselines: each test-file group once, unmutated (this also warms worker 0's Numba cache)
        groups = {tuple(e["tests"]) for e in entries if e["status"] == "pending"}
        base_time: dict[tuple, float] = {}
        deselected = DESELECT
        for g in sorted(groups, key=len):
            status, dt, detail, failed = _run_pytest(scratches[0], list(g), caches[0], timeout=3600, first=False)
            if status == "failed":
                # tests that fail without any mutant (a known, unrelated failure) are deselected
                # for this group, and listed in the results
                deselected.update(failed)
                status, dt, detail, _ = _run_pytest(scratches[0], list(g), caches[0], timeout=3600)
            log(f"baseline {status:7s} {dt:6.1f}s  {len(g)} files: {' '.join(Path(t).stem for t in g)}")
            if status != "passed":
                raise SystemExit(f"the unmutated suite does not pass for {g}: {detail}")
            base_time[g] = dt
        meta["deselected_failing_unmutated"] = sorted(deselected)
        for c in caches[1:]:
            shutil.copytree(caches[0], c)
        meta["baseline_seconds"] = {" ".join(g): round(t, 1) for g, t in base_time.items()}

        pending = [e for e in entries if e["status"] == "pending"]
        lock = threading.Lock()
        done = [0]

        def worker(j: int):
            scratch, cache = scratches[j], caches[j]
            while True:
                with lock:
                    if not pending:
                        return
                    e = pending.pop(0)
                path = scratch / e["module"]
                original = path.read_text()
                st = path.stat()
                m, _ = locate(original, e)
                mutated = apply(original, m)
                jitted = "njit" in original
                mcache = tmp / f"w{j}" / "mutant-cache"
                if mcache.exists():
                    shutil.rmtree(mcache)
                if e["module"].endswith("kernels/config.py"):
                    mcache.mkdir()                               # new compile flags: compile everything
                elif jitted:
                    shutil.copytree(cache, mcache)               # only the edited file recompiles
                path.write_text(mutated)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
                try:
                    g = tuple(e["tests"])
                    status, dt, detail, _ = _run_pytest(scratch, e["tests"], mcache if (jitted or mcache.exists()) else cache,
                                                     timeout=3 * base_time[g] + 60)
                finally:
                    path.write_text(original)
                    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                e["status"] = {"passed": "survived", "failed": "killed"}.get(status, status)
                e["seconds"] = round(dt, 1)
                e["detail"] = detail
                with lock:
                    done[0] += 1
                    meta["wall_seconds"] = meta.get("wall_before", 0) + round(time.perf_counter() - t_start)
                    log(f"[{done[0]}/{len(entries)}] {e['status']:8s} {dt:6.1f}s  {e['module']}:{e['line']}  "
                        f"{e['func']}  {e['orig']} -> {e['repl']}  {detail}")
                    write_results(entries, out, meta)

        threads = [threading.Thread(target=worker, args=(j,)) for j in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entries


# ---------------------------------------------------------------- reporting

def summarize(entries: list[dict]) -> dict:
    def score(es):
        n = sum(e["status"] not in ("gone", "pending") for e in es)
        k = sum(e["status"] in ("killed", "error", "timeout") for e in es)
        return {"total": len(es), "gone": sum(e["status"] == "gone" for e in es),
                "killed": sum(e["status"] == "killed" for e in es), "error": sum(e["status"] == "error" for e in es),
                "timeout": sum(e["status"] == "timeout" for e in es),
                "survived": sum(e["status"] == "survived" for e in es),
                "pending": sum(e["status"] == "pending" for e in es),
                "score": round(k / n, 4) if n else None}
    mods = sorted({e["module"] for e in entries}, key=lambda m: DEFAULT_TARGETS.index(m) if m in DEFAULT_TARGETS else 99)
    return {"overall": score(entries), "per_module": {m: score([e for e in entries if e["module"] == m]) for m in mods},
            "per_operator": {o: score([e for e in entries if e["op"] == o]) for o in sorted({e["op"] for e in entries})}}


def write_results(entries: list[dict], out: Path, meta: dict):
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = summarize(entries)
    Path(f"{out}.json").write_text(json.dumps({"meta": meta, "summary": summary, "mutants": entries}, indent=1) + "\n")
    o = summary["overall"]
    pct = lambda s: "-" if s["score"] is None else f"{100 * s['score']:.1f}%"
    lines = [f"# Mutation testing: {meta.get('label', out.name)}", "",
             f"Commit `{meta.get('commit', '?')}`, {meta.get('date', '?')}; seed {meta.get('seed')}, "
             f"{meta.get('per_module')} per module; source list: `{meta.get('source', 'sampled')}`; "
             f"wall time {meta.get('wall_seconds', '?')} s; pytest {meta.get('pytest')}; tests deselected "
             f"(they fail without any mutant): {', '.join(meta.get('deselected_failing_unmutated', [])) or 'none'}.", "",
             f"**Score {pct(o)}**: {o['killed'] + o['error'] + o['timeout']} killed of {o['total'] - o['gone'] - o['pending']} "
             f"({o['killed']} by a failing test, {o['error']} by an import/collection error, {o['timeout']} by the "
             f"time limit); {o['survived']} survived; {o['gone']} gone" + (f"; {o['pending']} not run" if o["pending"] else "") + ".",
             "", *([f"Note: {meta['note']}.", ""] if meta.get("note") else []),
             f"Of the killed, {sum(str(e.get('detail', '')).startswith('crashed') for e in entries)} crashed the test "
             f"process (a signal: SIGABRT, SIGBUS or SIGSEGV, from an out-of-bounds access in a kernel) rather than "
             f"failing a test.",
             "", "| module | mutants | killed | error | timeout | survived | gone | not run | score |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m, s in summary["per_module"].items():
        lines.append(f"| {m} | {s['total']} | {s['killed']} | {s['error']} | {s['timeout']} | {s['survived']} | "
                     f"{s['gone']} | {s['pending']} | {pct(s)} |")
    lines += ["", "| operator | mutants | survived | score |", "|---|---:|---:|---:|"]
    for op, s in summary["per_operator"].items():
        lines.append(f"| {op} | {s['total']} | {s['survived']} | {pct(s)} |")
    lines += ["", "## Survivors", "", "| file:line | function | mutation | id |", "|---|---|---|---|"]
    for e in entries:
        if e["status"] == "survived":
            lines.append(f"| {e['module']}:{e['line']} | `{e['func']}` | `{e['orig']}` -> `{e['repl']}` ({e['op']}) | "
                         f"`{e['id']}` |")
    others = [e for e in entries if e["status"] in ("error", "timeout", "gone")]
    if others:
        lines += ["", "## Import errors, timeouts, gone", ""]
        for e in others:
            lines.append(f"- {e['status']}: {e['module']}:{e['line']} `{e['orig']}` -> `{e['repl']}` {e.get('detail', '')}")
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))      # run the clean-up in run()'s finally
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-module", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modules", nargs="*", default=DEFAULT_TARGETS, help="target files (default: all in TEST_MAP)")
    ap.add_argument("--replay", type=Path, help="run the mutants listed in this results JSON against the current tree")
    ap.add_argument("--resume", type=Path, help="run the mutants still pending in this results JSON, in place")
    ap.add_argument("--report", type=Path, help="rewrite the Markdown summary of this results JSON")
    ap.add_argument("--only", nargs="*", help="with --replay: only the mutants with these recorded outcomes "
                                              "(e.g. survived)")
    ap.add_argument("--tests", nargs="*", help="run these test files for every mutant instead of TEST_MAP's")
    ap.add_argument("--add-tests", nargs="*", default=[],
                    help="test files to run for every module after TEST_MAP's (new test files of a changed suite)")
    ap.add_argument("--limit", type=int, help="run only the first N mutants (to time a run)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--out", type=Path, default=Path("tools/mutation-results/run"))
    ap.add_argument("--label", default=None)
    ap.add_argument("--deselect", nargs="*", default=[],
                    help="test ids to leave out of every run (tests that fail without any mutant)")
    args = ap.parse_args(argv)

    if args.report:
        d = json.loads(args.report.read_text())
        write_results(d["mutants"], args.report.with_suffix(""), d["meta"])
        return 0
    if args.resume:
        d = json.loads(args.resume.read_text())
        entries, meta = d["mutants"], d["meta"]
        DESELECT.update(meta.get("deselected_failing_unmutated", []))
        t0 = time.perf_counter()
        run(entries, args.jobs, args.resume.with_suffix(""), meta)
        meta["wall_seconds"] = meta["wall_before"] + round(time.perf_counter() - t0)
        write_results(entries, args.resume.with_suffix(""), meta)
        return 0
    if args.replay:
        old = json.loads(args.replay.read_text())
        keys = ("id", "module", "func", "op", "k", "orig", "repl", "line", "col")
        entries = [{k: e[k] for k in keys} for e in old["mutants"] if not args.only or e["status"] in args.only]
        meta_src = {"seed": old["meta"].get("seed"), "per_module": old["meta"].get("per_module"), "source": str(args.replay)}
    else:
        ms = sample(args.modules, args.per_module, args.seed)
        entries = [{k: v for k, v in asdict(m).items() if k not in ("start", "end")} for m in ms]
        meta_src = {"seed": args.seed, "per_module": args.per_module, "source": "sampled"}
    if args.limit:
        step = max(1, len(entries) // args.limit)               # spread over the modules, for timing
        entries = entries[::step][:args.limit]
    for e in entries:
        e["tests"] = args.tests or TEST_MAP.get(e["module"], ["tests"]) + [t for t in args.add_tests
                                                                         if t not in TEST_MAP.get(e["module"], [])]
        m, how = locate((ROOT / e["module"]).read_text(), e)
        e["status"] = "pending" if m else "gone"
        e["located"] = how
        if m:
            e["line"], e["col"] = m.line, m.col
    if args.list:
        for e in entries:
            print(f"{e['status']:8s} {e['module']}:{e['line']}:{e['col']}  {e['id']}")
        return 0

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "numbanet", "tests"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    meta = {**meta_src, "label": args.label or args.out.name, "commit": commit + ("+dirty" if dirty else ""),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
            "jobs": args.jobs, "pytest": "-x -q -p no:cacheprovider", "operators": OPERATORS}
    DESELECT.update(args.deselect)
    t0 = time.perf_counter()
    run(entries, args.jobs, args.out, meta)
    meta["wall_seconds"] = meta["wall_before"] + round(time.perf_counter() - t0)
    write_results(entries, args.out, meta)
    s = summarize(entries)["overall"]
    print(f"score {s['score']}: killed {s['killed']} + error {s['error']} + timeout {s['timeout']}, "
          f"survived {s['survived']}, gone {s['gone']}; {meta['wall_seconds']} s -> {args.out}.md")
    return 0


OPERATORS = ["arith", "compare", "const", "unary", "boolop", "bool", "index", "return"]

if __name__ == "__main__":
    sys.exit(main())
