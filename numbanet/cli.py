"""The ``numbanet`` command.

    numbanet demo NAME [options]     train a demo end to end and write its pictures
    numbanet demo --list             list the demos
    numbanet bench [options]         run the benchmarks (see benchmarks/)
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .demos import DEMOS


def _demo_summary(module_name):
    try:
        return importlib.import_module(module_name).SUMMARY
    except Exception as err:  # a demo whose optional packages are missing still gets listed
        return f"(unavailable: {err})"


def demo(argv):
    if not argv or argv[0] in ("--list", "-l"):
        print("demos:")
        for name, module in DEMOS.items():
            print(f"  {name:<12} {_demo_summary(module)}")
        print("run one with: numbanet demo NAME [--help]")
        return 0
    name, rest = argv[0], argv[1:]
    if name in ("-h", "--help"):
        print(__doc__)
        return 0
    if name not in DEMOS:
        print(f"numbanet: unknown demo {name!r}; choose one of: {', '.join(DEMOS)}", file=sys.stderr)
        return 2
    importlib.import_module(DEMOS[name]).main(rest)
    return 0


def _find_benchmarks():
    """The repository root holding ``benchmarks/run.py``: beside the package (editable install), else cwd."""
    candidates = [Path(__file__).resolve().parent.parent, Path.cwd()]
    for root in candidates:
        if (root / "benchmarks" / "run.py").is_file():
            return root
    return None


def bench(argv):
    """Run ``benchmarks.run.main(argv)`` from the repository checkout (benchmarks/ is not installed)."""
    root = _find_benchmarks()
    if root is None:
        print("numbanet bench: benchmarks/run.py was not found next to the numbanet package nor in the current "
              "directory. The benchmarks ship with the repository, not with the package: clone it, install it "
              "with `pip install -e .[bench]`, and run `numbanet bench` (or `python -m benchmarks.run`) "
              "from the repository root.", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        runner = importlib.import_module("benchmarks.run")
    except ImportError as err:
        print(f"numbanet bench: found {root / 'benchmarks'} but could not import it: {err}", file=sys.stderr)
        return 2
    if Path(runner.__file__).resolve().parent.parent != root:  # a different benchmarks package won
        print(f"numbanet bench: note: imported benchmarks from {runner.__file__}", file=sys.stderr)
    return runner.main(argv) or 0


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def _reexec_with_avx512_blas(argv):
    """Restart this command with OpenBLAS's AVX-512 (SkylakeX) kernels when the CPU has them.

    NumPy's OpenBLAS reads OPENBLAS_CORETYPE once, when NumPy is first imported, so
    the choice needs a fresh process. Some machines pin an older core type (e.g.
    Haswell, AVX2) for old OpenBLAS builds; on a current NumPy the AVX-512 kernels
    roughly double float32 matrix products. Set NUMBANET_KEEP_BLAS=1 to keep the
    environment as it is.
    """
    if os.environ.get("NUMBANET_KEEP_BLAS") or os.environ.get("OPENBLAS_CORETYPE") == "SkylakeX":
        return
    if not _cpu_has_avx512():
        return
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX", NUMBANET_KEEP_BLAS="1")
    print(f"numbanet: this CPU has AVX-512; using OpenBLAS's SkylakeX kernels (OPENBLAS_CORETYPE was "
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}; NUMBANET_KEEP_BLAS=1 keeps it)", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "numbanet.cli", *argv], env)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("demo", "bench") and argv[1:2] != ["--list"]:
        _reexec_with_avx512_blas(argv)
    parser = argparse.ArgumentParser(prog="numbanet", description="numbanet: demos and benchmarks",
                                     usage="numbanet {demo,bench} ...")
    parser.add_argument("command", choices=("demo", "bench"))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    from .utils import set_num_threads, tune_malloc
    tune_malloc()      # this process is ours: keep large freed blocks for reuse (see utils.tune_malloc)
    set_num_threads()  # one thread per CPU, each on its share of the batch (see fast/parallel.py)
    if command == "demo":
        return demo(rest)
    if command == "bench":
        return bench(rest)
    parser.parse_args(argv[:1])
    return 2


if __name__ == "__main__":
    sys.exit(main())
