"""The planted-bug tool (tools/mutants.py) on tiny source strings: what it finds, and that ids are stable."""
import ast
import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "tools" / "mutants.py"
_spec = importlib.util.spec_from_file_location("numbanet_mutants_tool", _PATH)
mutants = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mutants                   # dataclasses look the module up
_spec.loader.exec_module(mutants)

SOURCE = '''\
"""Module docstring: a + b is not code."""


def f(a, b):
    """Docstring 1 + 2."""
    if a is None:
        raise ValueError(f"a must be given, got {a + 1}")
    y = a + b  # comment - with * operators / inside
    return y
'''


def _only(ms, op, orig):
    hits = [m for m in ms if m.op == op and m.orig == orig]
    assert len(hits) == 1, [m.id for m in ms]
    return hits[0]


def test_plus_to_minus_is_found_and_applied_at_the_operator():
    ms = mutants.find_mutants(SOURCE, "pkg/mod.py")
    m = _only(ms, "arith", "+")
    assert m.id == "pkg/mod.py:f:arith:0:+->-"
    assert (m.func, m.line) == ("f", 8)
    out = mutants.apply(SOURCE, m)
    # exactly one character changed, the comment and every other line kept
    assert out == SOURCE.replace("y = a + b", "y = a - b")
    ast.parse(out)


def test_docstrings_raise_arguments_and_fstrings_are_not_mutated():
    ms = mutants.find_mutants(SOURCE, "pkg/mod.py")
    # the only arithmetic site is the one in `y = a + b`; 1 + 2 in the docstring,
    # a + 1 in the raise's f-string and the operators in the comment are skipped
    assert [m.orig for m in ms if m.op in ("arith", "const")] == ["+"]


def test_id_is_stable_when_an_unrelated_line_is_inserted_above():
    before = {m.id: m for m in mutants.find_mutants(SOURCE, "pkg/mod.py")}
    edited = SOURCE.replace("def f(a, b):", "SCALE = 3 * 2\n\n\ndef f(a, b):")
    after = {m.id: m for m in mutants.find_mutants(edited, "pkg/mod.py")}
    assert set(before) <= set(after)
    m = after["pkg/mod.py:f:arith:0:+->-"]
    assert m.line == before["pkg/mod.py:f:arith:0:+->-"].line + 3
    assert mutants.apply(edited, m) == edited.replace("y = a + b", "y = a - b")
    found, how = mutants.locate(edited, {"id": m.id, "module": "pkg/mod.py", "func": "f", "op": "arith",
                                         "orig": "+", "repl": "-"})
    assert how == "found" and found.line == m.line


def test_a_mutant_whose_text_is_gone_is_reported_gone():
    entry = {"id": "pkg/mod.py:f:arith:0:+->-", "module": "pkg/mod.py", "func": "f", "op": "arith",
             "orig": "+", "repl": "-"}
    m, how = mutants.locate(SOURCE.replace("a + b", "a @ b"), entry)
    assert m is None and how == "gone"


@pytest.mark.parametrize("src, op, orig, repl", [
    ("x = a * b\n", "arith", "*", "/"),
    ("x = a < b\n", "compare", "<", "<="),
    ("x = a >= b\n", "compare", ">=", ">"),
    ("x = a == b\n", "compare", "==", "!="),
    ("x = 0.5\n", "const", "0.5", "0.25"),
    ("x = 7\n", "const", "7", "8"),
    ("x = -a\n", "unary", "-a", "a"),
    ("x = a and b\n", "boolop", "and", "or"),
    ("x = True\n", "bool", "True", "False"),
    ("x = a[i]\n", "index", "i", "i + 1"),
    ("x += 2 ** b\n", "arith", "+=", "-="),
])
def test_each_operator(src, op, orig, repl):
    ms = mutants.find_mutants(src, "m.py")
    m = _only(ms, op, orig)
    assert m.repl == repl
    out = mutants.apply(src, m)
    ast.parse(out)
    assert out.count(repl) >= 1


def test_power_is_not_taken_for_a_product():
    # `**` is not a `*` site; only the constants are candidates
    ms = mutants.find_mutants("x = a ** 2\n", "m.py")
    assert [m.op for m in ms] == ["const"]
