"""The internals tour: every numbered script in ``examples/`` runs, exits 0 and prints its key line.

Each example asserts its own comparisons (library against an independent
computation, within rounding-error bounds), so a zero exit status means every
comparison held; the key line checked here is the one each prints last, after
all of its assertions. They run in a subprocess with this worktree first on
PYTHONPATH, as a learner runs them (``python examples/01_autograd.py``), once
with the JIT and once under ``NUMBA_DISABLE_JIT=1`` (a few seconds each either way).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))

# the line each lesson prints once every assertion in it has passed
KEY_LINES = {
    "01_autograd": "OK 01_autograd: backward() equals the chain rule by hand",
    "02_custom_function": "OK 02_custom_function: custom backward passes check_grad; wrong ones are caught",
    "03_im2col_by_hand": "OK 03_im2col_by_hand: the loops and nb.functional.im2col agree exactly",
    "04_conv_as_gemm": "OK 04_conv_as_gemm: Conv2D, its weight and input gradients are matrix products",
    "05_transposed_conv": "OK 05_transposed_conv: Conv2DTranspose = Conv2D's input gradient = "
                          "a stride-1 conv of a stuffed input",
    "06_maxpool_routing": "OK 06_maxpool_routing: each window's gradient goes to its first maximum",
    "07_bptt": "OK 07_bptt: the fused SimpleRNN equals the unrolled graph; the LSTM equals its gates by hand",
    "08_optimizer_step": "OK 08_optimizer_step: Adam by hand = nb.optimizers.Adam = the step fit takes",
    "09_trace": "OK 09_trace: the trace's shapes, padding and FLOPs are the ones computed by hand",
}


def test_every_example_has_a_key_line_and_a_readme_entry():
    names = [p.stem for p in EXAMPLES]
    assert names == sorted(KEY_LINES), f"examples {names} vs key lines {sorted(KEY_LINES)}"
    readme = (ROOT / "examples" / "README.md").read_text()
    listed = re.findall(r"`(\d\d_\w+)\.py`", readme)
    assert listed == names, f"examples/README.md lists {listed}, the folder holds {names}"


def run_example(path, tmp_path, disable_jit):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if disable_jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    return subprocess.run([sys.executable, str(path), str(tmp_path / "out")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("disable_jit", [False, True], ids=["jit", "nojit"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_prints_its_key_line(path, tmp_path, disable_jit):
    result = run_example(path, tmp_path, disable_jit)
    assert result.returncode == 0, f"{path.name} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    last = result.stdout.strip().splitlines()[-1]
    assert last == KEY_LINES[path.stem], f"{path.name} ended with {last!r}"
    if path.stem == "09_trace":
        picture = tmp_path / "out" / "09_trace_graph.png"
        assert picture.stat().st_size > 0 and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
