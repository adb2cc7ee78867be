"""Keeps the benchmark harness from rotting: numbanet's side of W1 for a few epochs, no peers (seconds)."""
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report, run, specs  # noqa: E402


def test_w1_numbanet_only(tmp_path):
    """W1 in the tuned mode and as a plain script (library defaults), interleaved."""
    rc = run.main(["--workloads", "W1", "--frameworks", "numbanet", "--repeats", "2", "--min-time", "0.005",
                   "--warmup-epochs", "1", "--skip", "kernels", "profile", "coldstart", "chart",
                   "--mode", "tuned", "default", "--out", str(tmp_path), "--tag", "smoke"])
    assert rc == 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    variants = result["workloads"]["W1"]["variants"]
    nb = variants["numbanet"]
    assert "error" not in nb, nb.get("error")
    # two timed epochs were recorded (how fast they ran is for benchmarks/, not a unit test)
    assert nb["epoch_s"]["n"] == 2 and np.isfinite(nb["epoch_s"]["median"]) and nb["epoch_s"]["median"] > 0
    assert np.isfinite(nb["loss"]) and nb["peak_rss_mb"] > 0
    assert nb["threads"]["requested"] == 2 and nb["threads"]["mode"] == "tuned"
    plain = variants["numbanet@default"]
    assert "error" not in plain, plain.get("error")
    assert plain["threads"]["mode"] == "default" and plain["threads"]["malloc"] == "glibc defaults"
    # nothing was set: the library chose NUMBANET_NUM_THREADS or one thread per available CPU
    expected = int(os.environ.get("NUMBANET_NUM_THREADS") or len(os.sched_getaffinity(0)))
    assert plain["threads"]["numbanet_threads"] == expected
    ratios = [p / q for p, q in zip(plain["times"], nb["times"])]
    assert plain["time_vs_tuned"]["n"] == 2 and plain["time_vs_tuned"]["median"] == pytest.approx(np.median(ratios))
    md = (tmp_path / "smoke.md").read_text()
    assert "| W1 | numbanet (fit) (" in md and "| W1 | numbanet (fit), library defaults (" in md
    assert "- BLAS (default mode): " in md and "- BLAS (tuned mode): " in md


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Platinum 8581C
stepping\t: 2
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile amx_bf16 avx512_fp16

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Platinum 8581C
stepping\t: 2
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile amx_bf16 avx512_fp16
"""


def test_describe_cpu_reads_model_extensions_and_cores():
    cpu = run.describe_cpu(CPUINFO)
    assert cpu == {"model": "Intel(R) Xeon(R) Platinum 8581C", "vendor": "GenuineIntel",
                   "family_model_stepping": "6/207/2",
                   "vector_extensions": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_fp16",
                                         "amx_tile", "amx_bf16"],
                   "logical_cpus": 2, "physical_cores": 1}        # two hyper-threads of one core


def test_machine_section_names_this_machine():
    """CPU, extensions and cores from /proc/cpuinfo read another way here; the BLAS from threadpoolctl
    in this process (same NumPy: same library and version)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    text = Path("/proc/cpuinfo").read_text()
    args = run.parse_args(["--workloads", "W1", "--mode", "default"])
    m = run.machine_info(args)
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    assert m["cpu"] == (model.group(1).strip() if model else None)
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    assert set(m["cpu_info"]["vector_extensions"]) == flags & set(run.VECTOR_FLAGS)
    assert m["cpu_info"]["logical_cpus"] == len(re.findall(r"^processor\s*:", text, re.M)) == os.cpu_count()
    assert m["cpus_available"] == len(os.sched_getaffinity(0)) and m["modes"] == ["default"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", m["date"])
    here = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
            and Path(i["filepath"]).parent.name == "numpy.libs"]
    probed = m["blas"]["default"]
    assert isinstance(probed, list) and probed, probed
    if here:
        assert (probed[0]["internal_api"], probed[0]["version"]) == (here[0]["internal_api"], here[0]["version"])
    md = report.markdown({"machine": m, "settings": {}, "workloads": {}})
    for part in (m["cpu"], ", ".join(m["cpu_info"]["vector_extensions"]), f"{m['cpus']} logical CPUs",
                 f"{probed[0]['architecture']} kernels", f"Date: {m['date']}", "default: library defaults"):
        assert part in md, part


def _result(cpu, fms, date, ms):
    return {"started": date, "machine": {"cpu": cpu, "cpus": 2, "date": date, "modes": ["tuned"],
                                          "cpu_info": {"family_model_stepping": fms, "vector_extensions": ["avx2"]}},
            "settings": {"repeats": 3},
            "workloads": {"W1": {"variants": {"numbanet": {"epoch_s": {"median": ms, "min": ms, "max": ms, "n": 3},
                                                           "step_s": {"median": ms / 5}, "samples_per_s": 1.0,
                                                           "peak_rss_mb": 99}}}}}


def test_readme_keeps_one_table_per_cpu():
    amd = report.readme(_result("AMD EPYC", "23/49/0", "2026-11-28", 0.0004), "latest.md", "latest.png")
    both = report.readme(_result("Intel Xeon", "6/207/2", "2026-12-02", 0.0005), "latest.md", "latest.png", amd)
    assert both.count("<!-- cpu: ") == 2 and "### AMD EPYC" in both and "### Intel Xeon" in both
    assert "| W1 | numbanet (fit) | 0.4 [0.4-0.4] |" in both and "| W1 | numbanet (fit) | 0.5 [0.5-0.5] |" in both
    # the older CPU's section no longer points at the chart, which now shows the newer run
    amd_part = both[both.index("<!-- cpu: AMD"):both.index("<!-- /cpu -->")]
    assert "results/latest.png" not in amd_part
    again = report.readme(_result("Intel Xeon", "6/207/2", "2026-12-03", 0.0006), "latest.md", "latest.png", both)
    assert again.count("<!-- cpu: ") == 2 and "0.6 [0.6-0.6]" in again and "0.5 [0.5-0.5]" not in again


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


def test_w1_overhead_floor_does_numbanets_step(capsys):
    """bench_w1_overhead's NumPy floor updates the weights as numbanet's train_step does (else its
    ratio would compare different work), a changed learning rate is caught, and the script runs."""
    from benchmarks import bench_w1_overhead as w1
    spec = specs.WORKLOADS["W1"]
    x, y = specs.make_data(spec)
    w1._check_same_step(spec, x, y)
    other = dict(spec, optimizer=("sgd", spec["optimizer"][1] * 1.01))
    build = w1.numbanet_impl.build_model
    try:
        w1.numbanet_impl.build_model = lambda s, seed=0: build(spec, seed)   # numbanet keeps lr 0.01
        with pytest.raises(AssertionError, match="differ"):
            w1._check_same_step(other, x, y)
    finally:
        w1.numbanet_impl.build_model = build
    w1.main(["--rounds", "1", "--epochs", "2", "--inner", "2", "--keras-ms", "30"])
    out = capsys.readouterr().out
    assert "NumPy floor" in out and "train_step (all of it)" in out and "50x Keras fit at 30.0 ms" in out
