"""Turn one benchmark result (a dict) into JSON, a Markdown table, a PNG chart and the README's table.

The README keeps one table per CPU: each run replaces its own CPU's section
(between ``<!-- cpu: KEY -->`` and ``<!-- /cpu -->``) and leaves the others.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from . import specs

LABEL = {"numbanet": "numbanet (fit)", "tf-fit": "TF/Keras model.fit", "tf-function": "TF tf.function step",
         "torch": "PyTorch loop", "numbanet@default": "numbanet (fit), library defaults",
         "numbanet@default+tf": "numbanet (fit), library defaults, TF in the process"}
MODE_TEXT = {"tuned": "tuned (as the numbanet command: thread counts set, SkylakeX kernels on AVX-512, malloc tuned, "
                      "batch split on --threads)",
             "default": "library defaults (a plain script: nothing set)",
             "default+tf": "library defaults with TensorFlow imported and run in the same process"}


def peer_of(variant):
    return specs.PEER_OF[variant.partition("@")[0]]
REPRODUCE = "python -m benchmarks.run        # or: numbanet bench"


def _ms(s):
    return f"{s * 1e3:.3g}" if s < 10 else f"{s * 1e3:.0f}"


def _num(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _fig(d, scale=1e3):
    return f"{_num(d['median'] * scale)} [{_num(d['min'] * scale)}-{_num(d['max'] * scale)}]"


def workload_table(result):
    lines = ["| workload | framework | ms per epoch: median [min-max] | ms per step | samples/s | peak RSS (MB) "
             "| numbanet speed-up: median [min-max] | time / tuned numbanet |",
             "|---|---|---|---|---|---|---|---|"]
    for name, w in result.get("workloads", {}).items():
        if "error" in w:
            lines.append(f"| {name} | - | error: {w['error'][:80]} | | | | | |")
            continue
        for v, r in w["variants"].items():
            lab = LABEL.get(v, v)
            if "skipped" in r:
                lines.append(f"| {name} | {lab} | skipped: {r['skipped']} | | | | | |")
            elif "epoch_s" not in r:
                msg = (r.get("error") or "no figures").strip().splitlines()[-1][:90].replace("|", "/")
                lines.append(f"| {name} | {lab} | error: {msg} | | | | | |")
            else:
                sp = r.get("numbanet_speedup")
                spt = (f"**{sp['median']:.2f}x** [{sp['min']:.2f}-{sp['max']:.2f}]" if sp
                       else ("-" if v == w.get("speedup_reference", "numbanet") else ""))
                vt = r.get("time_vs_tuned")
                vtt = f"{vt['median']:.3f} [{vt['min']:.3f}-{vt['max']:.3f}]" if vt else ""
                faults = sorted(r.get("faults_per_epoch") or [])
                if faults:
                    lab += f" ({faults[len(faults) // 2]:,.0f} page faults/epoch)"
                rss = r.get("peak_rss_mb")
                lines.append(f"| {name} | {lab} | {_fig(r['epoch_s'])} | {_num(r['step_s']['median'] * 1e3)} "
                             f"| {r['samples_per_s']:,.0f} | {f'{rss:,.0f}' if rss else '?'} | {spt} | {vtt} |")
    return "\n".join(lines)


def targets(result):
    w1 = result.get("workloads", {}).get("W1", {}).get("variants", {})
    out = []
    for name, w in result.get("workloads", {}).items():
        for v, r in w.get("variants", {}).items():
            vt = r.get("time_vs_tuned")
            if vt:
                out.append(f"{name}, {LABEL.get(v, v)}: time / tuned {vt['median']:.3f} (target <= 1.05) -> "
                           f"{'met' if vt['median'] <= 1.05 else 'MISSED'}")
    tf = w1.get("tf-fit", {}).get("numbanet_speedup")
    pt = w1.get("torch", {}).get("numbanet_speedup")
    if tf:
        out.append(f"W1 target >= 50x TF model.fit per epoch: {tf['median']:.1f}x -> "
                   f"{'met' if tf['median'] >= 50 else 'MISSED'}")
    if pt:
        out.append(f"W1 target faster than the PyTorch loop: {pt['median']:.2f}x -> "
                   f"{'met' if pt['median'] > 1 else 'MISSED'}")
    return out


def warmup_table(result):
    lines = ["| workload | framework | import (s) | first epoch, incl. JIT/tracing (s) | second epoch (s) |",
             "|---|---|---|---|---|"]
    for name, w in result.get("workloads", {}).items():
        for v, r in w.get("variants", {}).items():
            if "warmup_epochs_s" in r:
                we = r["warmup_epochs_s"]
                lines.append(f"| {name} | {LABEL.get(v, v)} | {r['import_s']:.2f} | {we[0]:.3g} | "
                             f"{we[1] if len(we) > 1 else float('nan'):.3g} |")
    return "\n".join(lines)


def coldstart_table(cs):
    if not cs or "cases" not in cs:
        return f"cold start: {cs.get('error', 'not run') if cs else 'not run'}"
    lines = [f"Cold start, {cs['workload']} (fresh process; median of {cs['repeats']}):", "",
             "| case | import (s) | build (s) | first step (s) | second step (ms) | process wall (s) |",
             "|---|---|---|---|---|---|"]
    for label, s in cs["cases"].items():
        lines.append(f"| {label} | {s['import_s']['median']:.2f} | {s['build_s']['median']:.2f} | "
                     f"{s['first_step_s']['median']:.2f} | {s['second_step_s']['median'] * 1e3:.1f} | "
                     f"{s['process_wall_s']['median']:.2f} |")
    for label, e in cs.get("errors", {}).items():
        lines.append(f"| {label} | error: {e.strip().splitlines()[-1][:80] if e.strip() else e} | | | | |")
    return "\n".join(lines)


def kernels_table(k):
    if not k or "kernels" not in k:
        return f"kernels: {k.get('error', 'not run')[:300] if k else 'not run'}"
    lines = ["| kernel | shapes | numbanet (us) | NumPy vectorised (us) | speed-up |", "|---|---|---|---|---|"]
    for r in k["kernels"]:
        if "error" in r:
            lines.append(f"| {r['kernel']} | error: {r['error'].strip().splitlines()[-1][:80]} | | | |")
        else:
            lines.append(f"| {r['kernel']} | {r['shape']} | {_fig(r['numbanet_s'], 1e6)} | "
                         f"{_fig(r['numpy_s'], 1e6)} | {r['speedup']:.2f}x |")
    lines += ["", "| conv layer (numbanet conv2d) | GEMM | fwd GFLOP/s | fwd+bwd GFLOP/s | NumPy matmul, same GEMM, GFLOP/s |",
              "|---|---|---|---|---|"]
    for r in k.get("conv", []):
        if "error" in r:
            lines.append(f"| {r['layer']} | error | | | |")
        else:
            lines.append(f"| {r['layer']} | {r['gemm']} | {r['fwd_gflops']:.1f} | {r['fwd_bwd_gflops']:.1f} | "
                         f"{r['same_shape_matmul_gflops']:.1f} |")
    c = k.get("ceiling", {})
    lines += ["", f"NumPy float32 matmul ceiling (fresh process each; CPU AVX-512: {c.get('avx512f')}; "
                  f"OPENBLAS_CORETYPE in the environment: {c.get('env_OPENBLAS_CORETYPE')!r}, used for this run's "
                  f"workloads: {c.get('run_OPENBLAS_CORETYPE')!r}):", "",
              "| OPENBLAS_CORETYPE | OpenBLAS core used | 1024^2 GFLOP/s | 2048^2 GFLOP/s (median / best) |",
              "|---|---|---|---|"]
    for r in c.get("runs", []):
        if "error" in r:
            lines.append(f"| {r['setting']} | error | | |")
        else:
            core = r["openblas"][0]["architecture"] if r.get("openblas") else "?"
            lines.append(f"| {r['setting']}: {r['OPENBLAS_CORETYPE']!r} | {core} | {r['1024']['gflops_median']:.1f} | "
                         f"{r['2048']['gflops_median']:.1f} / {r['2048']['gflops_best']:.1f} |")
    return "\n".join(lines)


def native_table(nat):
    if not nat:
        return ""
    buckets = []
    for r in nat.values():
        for b in r.get("shares", {}):
            if b not in buckets:
                buckets.append(b)
    lines = ["Native sampling profile (py-spy --native, 200 Hz, every thread's busy samples inside train_step; "
             "numbanet's batch split off = serial, on = split). Shares of busy samples:", "",
             "| workload (numbanet threading) | samples (busy/all) | " + " | ".join(buckets) + " |",
             "|---|---|" + "---|" * len(buckets)]
    for name, r in nat.items():
        if "shares" not in r:
            lines.append(f"| {name} | error: {r.get('error', '')[:80]} |" + " |" * len(buckets))
            continue
        lines.append(f"| {name} | {r['busy_samples']}/{r['samples']} | "
                     + " | ".join(f"{r['shares'].get(b, 0):.0%}" for b in buckets) + " |")
    return "\n".join(lines)


def profile_table(p):
    if not p:
        return "profile: not run"
    if "error" in p and len(p) == 1:
        return f"profile: {p['error'][:300]}"
    buckets = []
    for name, r in p.items():
        if isinstance(r, dict) and name != "native":
            for b in r.get("shares", {}):
                if b not in buckets:
                    buckets.append(b)
    lines = ["| workload | step ms (unprofiled) | " + " | ".join(buckets) + " |",
             "|---|---|" + "---|" * len(buckets)]
    for name, r in p.items():
        if not isinstance(r, dict) or name == "native":
            continue
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'].strip().splitlines()[-1][:80]} |" + " |" * len(buckets))
            continue
        lines.append(f"| {name} | {r['step_s_unprofiled'] * 1e3:.3g} | "
                     + " | ".join(f"{r['shares'].get(b, 0):.0%}" for b in buckets) + " |")
    for name in ("W2-sgd", "W2-adam", "W3", "W4"):
        r = p.get(name)
        if isinstance(r, dict) and "shares" in r:
            moving = r.get("data_moving_share")
            lines += ["", f"{name}: {r['matmul_share']:.0%} of numbanet's step time in matrix products (BLAS), "
                          f"{r.get('direct_conv_share', 0):.0%} in the direct convolution loops, "
                          f"{r['memory_bound_share']:.0%} in other memory-bound work (im2col/col2im, pooling, "
                          f"upsampling, elementwise, loss, optimizer), {r['python_overhead_share']:.0%} in Python "
                          f"framework overhead."
                          + (f" The data-moving kernels (im2col/col2im, pooling, upsampling) take {moving:.0%} "
                             f"(target: at most a third)." if moving is not None else "")]
    for name, r in p.items():
        if name != "native" and isinstance(r, dict) and r.get("top_functions"):
            lines += ["", f"<details><summary>{name}: top functions by own time</summary>", "",
                      "| share | function | bucket |", "|---|---|---|"]
            lines += [f"| {t['tottime_share']:.1%} | `{t['function']}` | {t['bucket']} |" for t in r["top_functions"][:10]]
            lines += ["", "</details>"]
    return "\n".join(lines)


def chart(result, path):
    from matplotlib.figure import Figure
    names, peers = [], ["tf-fit", "tf-function", "torch"]
    vals = {p: [] for p in peers}
    for name, w in result.get("workloads", {}).items():
        ref = w.get("speedup_reference", "numbanet")
        if "variants" not in w or "epoch_s" not in w["variants"].get(ref or "numbanet", {}):
            continue
        names.append(name)
        for p in peers:
            sp = w["variants"].get(p, {}).get("numbanet_speedup")
            vals[p].append(sp["median"] if sp else float("nan"))
    fig = Figure(figsize=(max(6, 1.3 * len(names) + 2), 4.2))
    ax = fig.add_subplot()
    width = 0.27
    for i, p in enumerate(peers):
        xs = [j + (i - 1) * width for j in range(len(names))]
        ax.bar(xs, vals[p], width, label=f"vs {LABEL[p]}")
        for x, v in zip(xs, vals[p]):
            if v == v:
                ax.text(x, v, f"{v:.0f}" if v >= 10 else f"{v:.2g}", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("numbanet throughput / peer throughput\n(>1: numbanet faster)")
    m = result.get("machine", {})
    ax.set_title(f"numbanet speed-up, {m.get('threads')} threads, {m.get('cpu', '')} ({result.get('started', '')})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def cpu_key(m):
    """The README section a result belongs to: CPU model, family/model/stepping, logical CPUs."""
    c = m.get("cpu_info") or {}
    return f"{m.get('cpu')}, family/model/stepping {c.get('family_model_stepping', '?')}, {m.get('cpus')} CPUs"


def _blas_text(libs):
    if not isinstance(libs, list):
        return f"unknown ({(libs or {}).get('error', 'not probed')[:120]})"
    return "; ".join(f"{b.get('internal_api')} {b.get('version')}, {b.get('architecture')} kernels, "
                     f"{b.get('threading_layer')} threading, {b.get('num_threads')} threads" for b in libs) or "none found"


def machine_section(result):
    """Markdown lines naming the machine: CPU model, vector extensions, cores, the BLAS (library,
    version, kernel type) in each mode's environment, the modes and the date."""
    m = result.get("machine", {})
    c = m.get("cpu_info") or {}
    lines = [f"- CPU: {m.get('cpu')} (vendor {c.get('vendor')}, family/model/stepping "
             f"{c.get('family_model_stepping')})",
             f"- Vector extensions: {', '.join(c.get('vector_extensions') or []) or 'none listed'}",
             f"- Cores: {m.get('cpus')} logical CPUs, {c.get('physical_cores') or '?'} physical cores, "
             f"{m.get('cpus_available', '?')} available to this process"]
    for mode, libs in (m.get("blas") or {}).items():
        lines.append(f"- BLAS ({mode} mode): {_blas_text(libs)}")
    lines += [f"- Modes: " + "; ".join(f"{x}: {MODE_TEXT.get(x, x)}" for x in m.get("modes") or ["tuned"]),
              f"- Date: {m.get('date') or str(result.get('started', ''))[:10]}"]
    return lines


def machine_line(result):
    m, s = result.get("machine", {}), result.get("settings", {})
    return (f"{m.get('cpu')} ({m.get('cpus')} CPUs), {s.get('threads')} threads per framework, "
            f"OPENBLAS_CORETYPE={m.get('OPENBLAS_CORETYPE')!r}, malloc tuned in {s.get('malloc')} processes, numbanet threading {s.get('numbanet_threads', 'serial')}, median of {s.get('repeats')} interleaved "
            f"repetitions [min-max]; other processes used {m.get('other_processes_cpu_cores', float('nan')):.2f} "
            f"cores on average during the run (0 = quiet). Speed-up = peer time / numbanet time (>1: numbanet faster).")


def markdown(result):
    m = result.get("machine", {})
    s = result.get("settings", {})
    la0, la1 = m.get("load_avg_start"), m.get("load_avg_end")
    head = [f"# numbanet benchmarks ({result.get('started')})", "", "## Machine", "", *machine_section(result), "",
            f"Machine: {m.get('cpu')} ({m.get('cpus')} CPUs), Python {m.get('python')}, NumPy {m.get('numpy')}, "
            f"Numba {m.get('numba')}; threads per framework: {s.get('threads')}; OPENBLAS_CORETYPE="
            f"{m.get('OPENBLAS_CORETYPE')!r}; load average at start {la0 and tuple(round(x, 2) for x in la0)}, "
            f"at end {la1 and tuple(round(x, 2) for x in la1)}; other processes used "
            f"{m.get('other_processes_cpu_cores', float('nan')):.2f} cores on average during the run.",
            f"Settings: repeats {s.get('repeats')}, min seconds per measurement {s.get('min_time')}, "
            f"steps per epoch {s.get('steps') or 'workload default'}{', QUICK (smoke test)' if s.get('quick') else ''}; "
            f"glibc malloc tuned (numbanet.utils.tune_malloc) in: {s.get('malloc')} processes; numbanet threading: "
            f"{s.get('numbanet_threads', 'serial')}. "
            f"Peers interleaved round-robin per repetition; speed-up = peer time / numbanet time, "
            f"paired per repetition (>1: numbanet faster).", "",
            f"Command: `{result.get('command')}`", "",
            f"Code: commit {m.get('code', {}).get('commit')}; numbanet files changed since: "
            f"{', '.join(m.get('code', {}).get('numbanet_files_changed_since_commit') or []) or 'none'}.", ""]
    versions = {}
    for w in result.get("workloads", {}).values():
        for v, r in w.get("variants", {}).items():
            if "version" in r:
                versions[peer_of(v)] = r["version"]
    if versions:
        head += ["Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()), ""]
    body = ["## Steady-state training", "", workload_table(result), ""]
    body += [f"- {t}" for t in targets(result)] + [""]
    loads = [f"{n} {w['other_processes_cpu_cores']:.2f}" for n, w in result.get("workloads", {}).items()
             if "other_processes_cpu_cores" in w]
    if loads:
        body += ["CPU used by other processes while each workload was measured (cores, average; "
                 "0 = quiet machine): " + ", ".join(loads) + ".", ""]
    body += ["Workloads:", ""] + [f"- **{n}**: {specs.WORKLOADS[n]['title']}" for n in result.get("workloads", {})] + [""]
    body += ["## Warm-up (excluded above)", "", warmup_table(result), "", coldstart_table(result.get("coldstart")), ""]
    body += ["## Kernels", "", kernels_table(result.get("kernels")), ""]
    body += ["## Where numbanet's step time goes", "",
             native_table((result.get("profile") or {}).get("native")), "",
             "Function-level view (cProfile, each function's own time; numbanet's operations serial, BLAS on the "
             "run's thread count, because cProfile sees only the main thread; matrix products are attributed by "
             "the engine function that calls them, so refactored code may shift shares between buckets; step "
             "times are train_step on a fixed batch, without fit's shuffling):", "",
             profile_table(result.get("profile")), ""]
    return "\n".join(head + body)


CPU_SECTION = re.compile(r"<!-- cpu: (.*?) -->\n.*?<!-- /cpu -->\n", re.S)


def cpu_section(result, png_name):
    """This result's README section: its CPU, mode(s), date, machine lines and the table."""
    m = result.get("machine", {})
    key = cpu_key(m)
    return "\n".join([f"<!-- cpu: {key} -->", f"### {key} ({m.get('date') or result.get('started')})", "",
                      *machine_section(result), "", machine_line(result), "", workload_table(result), "",
                      *[f"- {t}" for t in targets(result)], "",
                      f"![numbanet speed-up](results/{png_name})", "", "<!-- /cpu -->", ""])


def cpu_sections(result, png_name, previous=""):
    """The README's per-CPU sections: those of ``previous`` (the README as it was) with this CPU's
    replaced by ``result``'s, or ``result``'s added at the end. Lines, to join."""
    key = cpu_key(result.get("machine", {}))
    sections = {}
    for match in CPU_SECTION.finditer(previous or ""):   # an older CPU's chart file has been overwritten since
        sections[match.group(1)] = "".join(line for line in match.group(0).splitlines(keepends=True)
                                           if not line.startswith("![numbanet speed-up](results/"))
    sections[key] = cpu_section(result, png_name)
    return "\n".join(sections.values()).splitlines()


def readme(result, md_name, png_name, previous=""):
    return "\n".join([
        "# Benchmarks", "",
        "The same workloads written once per framework (numbanet, TensorFlow/Keras 3 with `model.fit` and with a "
        "`tf.function` train step, PyTorch CPU with its idiomatic loop): same shapes, Keras-default initialisation, "
        "optimizer and hyper-parameters, float32, the same thread count. Warm-up (Numba JIT, TF tracing) is excluded "
        "and reported on its own; each figure is the median of repeated measurements with min and max, peers "
        "interleaved round-robin in one invocation; each framework runs in its own process (peak RSS).", "",
        "Reproduce (from the repository root, with the `bench` extra installed):", "",
        "```", REPRODUCE, "python -m benchmarks.run --quick   # smoke test, < 2 minutes", "```", "",
        "Options: `--workloads W1 W2 ...` (or `all`), `--frameworks numbanet tf-fit tf-function torch`, `--repeats N`, "
        "`--steps N`, `--threads N` (default 2), `--mode tuned|default|default+tf` (one or more: numbanet as the "
        "`numbanet` command runs it, as a plain script with nothing tuned, and that script with TensorFlow in the same "
        "process), `--quick`, `--out DIR`, `--openblas-coretype auto|keep|NAME` (auto: "
        "SkylakeX kernels on an AVX-512 CPU, as the `numbanet` command does), `--malloc numbanet|all|none` (whose "
        "processes get `numbanet.utils.tune_malloc()`), `--wait-quiet SECONDS`. A peer that is not installed is "
        "skipped with a message. "
        f"Full results: [`results/{md_name}`](results/{md_name}), chart: [`results/{png_name}`](results/{png_name}), "
        "raw figures in the JSON beside them.", "",
        "## Results, one table per CPU", "",
        *cpu_sections(result, png_name, previous),
        "Workloads (defined once in `specs.py`, built by `workloads/{numbanet,tf,torch}_impl.py`):", "",
        *[f"- **{n}**: {w['title']}" for n, w in specs.WORKLOADS.items()], "",
        "W4 is defined by the harness: encoder Conv2D(16,3,relu)-MaxPool(2)-Conv2D(8,3,relu)-MaxPool(2)-"
        "Conv2D(4,3,relu), all \"valid\" (28-26-13-11-5-3); decoder Conv2DTranspose(4,3,relu)-UpSampling2D(2)-"
        "Conv2DTranspose(8,3,relu)-UpSampling2D(2)-Conv2DTranspose(16,3,relu)-Conv2DTranspose(1,3,sigmoid), "
        "all \"valid\" (3-5-10-12-24-26-28), ending at 28x28x1.", "",
        "Per-epoch figures come from `fit(epochs=k)` (numbanet, Keras) or k epochs of the loop (tf.function, "
        "PyTorch), k chosen per framework so one measurement lasts at least `--min-time`; every epoch reshuffles "
        "the fixed synthetic data set. The side sections (kernel micro-benchmarks against vectorised NumPy, conv "
        "GFLOP/s against the matmul ceiling with and without OPENBLAS_CORETYPE=SkylakeX, cold start with an empty "
        "and a warm Numba cache, and the profile of numbanet's step) are in the full results file.", ""])


def write_all(result, out_dir, tag, chart_png=True, chart=True):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    j = out_dir / f"{tag}.json"
    j.write_text(json.dumps(result, indent=1, default=str))
    paths.append(j)
    md = out_dir / f"{tag}.md"
    md.write_text(markdown(result))
    paths.append(md)
    png = out_dir / f"{tag}.png"
    if chart and chart_png:
        try:
            paths.append(chart_fn(result, png))
        except Exception as err:  # matplotlib missing: the tables still come out
            print(f"chart not written: {err}")
    if (tag == "latest" and not result.get("settings", {}).get("quick")
            and out_dir.resolve() == (Path(__file__).parent / "results").resolve()):
        r = Path(__file__).parent / "README.md"
        r.write_text(readme(result, md.name, png.name, r.read_text() if r.exists() else ""))
        paths.append(r)
    return paths


chart_fn = chart
