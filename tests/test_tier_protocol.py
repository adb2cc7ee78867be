"""The tier protocol: numbanet.fast.tier and numbanet.reference.tier offer the same functions.

An engine Function calls ``tiers.current.<name>(...)``, so every public
function of one tier must exist in the other with the same signature, or the
switch breaks the first Function that reaches it. The reference tier stands
on NumPy alone, so a learner stepping through it meets no Numba, thread or
scratch buffer.
"""
import ast
import inspect
import pathlib
import types

import pytest

import numbanet.fast.tier as fast_tier
import numbanet.reference as reference_package
import numbanet.reference.tier as reference_tier
from numbanet.engine import tiers


def protocol(module):
    """{name: function} of the public functions a tier module offers (defined there or imported)."""
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(obj)}


def test_both_tiers_define_the_same_functions():
    fast, reference = protocol(fast_tier), protocol(reference_tier)
    assert sorted(fast) == sorted(reference), (
        f"only in fast/tier.py: {sorted(set(fast) - set(reference))}; "
        f"only in reference/tier.py: {sorted(set(reference) - set(fast))}")


@pytest.mark.parametrize("name", sorted(set(protocol(fast_tier)) & set(protocol(reference_tier))) or ["(none yet)"])
def test_same_signature_and_the_fast_docstring_points_to_the_reference(name):
    if name == "(none yet)":
        pytest.skip("the tiers define no protocol function yet")
    fast, reference = protocol(fast_tier)[name], protocol(reference_tier)[name]
    assert inspect.signature(fast) == inspect.signature(reference), (
        f"{name}: fast{inspect.signature(fast)} vs reference{inspect.signature(reference)}")
    assert reference.__doc__, f"reference/tier.py {name} needs a docstring with its formula and shapes"
    assert fast.__doc__ and "reference" in fast.__doc__, (
        f"fast tier {name}'s docstring must point to the reference function it mirrors (reference/tier.py {name})")


def test_active_returns_the_named_tier_module():
    assert tiers.active() is fast_tier and tiers.current is fast_tier
    with tiers.kernels("reference"):
        assert tiers.active() is reference_tier and tiers.current is reference_tier
    assert tiers.active() is fast_tier


ALLOWED_MODULES = {"numpy", "math", "__future__"}


@pytest.mark.parametrize("path", sorted(pathlib.Path(reference_package.__file__).parent.glob("*.py")),
                         ids=lambda p: p.name)
def test_reference_tier_imports_numpy_and_itself_only(path):
    """No Numba, threads, scratch pools or fast kernels: imports are NumPy, math, or reference/'s own modules."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
            assert names <= ALLOWED_MODULES, f"{path.name}:{node.lineno} imports {sorted(names)}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module.split(".")[0] in ALLOWED_MODULES, f"{path.name}:{node.lineno} from {node.module}"
            else:  # relative: only inside numbanet/reference/ (level 1), never ..fast or ..engine
                assert node.level == 1, f"{path.name}:{node.lineno} imports from outside numbanet/reference/"


def test_reference_tier_namespace_holds_no_fast_machinery():
    """What the imported modules actually bound: no module of numba, threading, concurrent or numbanet.fast."""
    for module in [reference_tier] + [m for m in vars(reference_package).values() if isinstance(m, types.ModuleType)]:
        for name, value in vars(module).items():
            origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", "") or ""
            forbidden = origin.split(".")[0] in {"numba", "threading", "concurrent"} or (
                origin == "numbanet.fast" or origin.startswith("numbanet.fast."))
            assert not forbidden, f"{module.__name__}.{name} comes from {origin}"
