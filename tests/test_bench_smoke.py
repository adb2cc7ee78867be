"""Keeps the benchmark harness from rotting: numbanet's side of W1 for a few epochs, no peers (seconds)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report, run, specs  # noqa: E402


def test_w1_numbanet_only(tmp_path):
    rc = run.main(["--workloads", "W1", "--frameworks", "numbanet", "--repeats", "2", "--min-time", "0.005",
                   "--warmup-epochs", "1", "--skip", "kernels", "profile", "coldstart", "chart",
                   "--out", str(tmp_path), "--tag", "smoke"])
    assert rc == 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    nb = result["workloads"]["W1"]["variants"]["numbanet"]
    assert "error" not in nb, nb.get("error")
    # two timed epochs were recorded (how fast they ran is for benchmarks/, not a unit test)
    assert nb["epoch_s"]["n"] == 2 and np.isfinite(nb["epoch_s"]["median"]) and nb["epoch_s"]["median"] > 0
    assert np.isfinite(nb["loss"]) and nb["peak_rss_mb"] > 0
    assert nb["threads"]["requested"] == 2
    md = (tmp_path / "smoke.md").read_text()
    assert "| W1 | numbanet (fit) |" in md


def test_workload_specs_match_numbanet_shapes():
    """W4 is defined by the harness: it must end at 28x28x1 (numbanet's own shape rules agree)."""
    from benchmarks.workloads import numbanet_impl
    import numbanet as nb
    for name in ("W1", "W4"):
        spec = specs.WORKLOADS[name]
        x, y = specs.make_data(spec, 1)
        model = numbanet_impl.build_model(spec)
        with nb.no_grad():
            out = model(x[:2])
        assert out.shape == y[:2].shape, (name, out.shape, y.shape)


def test_report_renders_errors_and_skips():
    result = {"workloads": {"W2-sgd": {"title": "t", "variants": {
        "numbanet": {"error": "Traceback ...\nImportError: no Conv2D"},
        "torch": {"skipped": "torch is not installed"}}}}, "machine": {}, "settings": {}}
    md = report.markdown(result)
    assert "ImportError: no Conv2D" in md and "torch is not installed" in md
