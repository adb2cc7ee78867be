"""The ``numbanet`` command.

    numbanet [-v] demo NAME [options]   train a demo end to end and write its pictures
                                        (--kernels reference: with the plain NumPy kernels)
    numbanet demo NAME --help           that demo's options
    numbanet demo --help | --list       the demos
    numbanet [-v] bench [options]       run the benchmarks (see benchmarks/; bench --help)
    numbanet explain OP [options]       the convolution atlas of one configuration (explain OP --help)
    numbanet trace DEMO [--kernels K]   print the trace of one training step of a demo's model
    numbanet gradcheck DEMO             check every weight's gradient of a demo's model (float64)
    numbanet tune [--workloads W ...]   plan the fast tier's routes for this machine (tune --show: the plan)

``-v`` prints the BLAS library, its kernels and the thread counts on stderr; without
it stderr stays quiet unless something is wrong (the BLAS cannot be found to limit
its threads, or the restart onto the AVX-512 kernels fails).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .demos import DEMOS


def _demo_module(module_name):
    """(module, None), or (None, why) for a demo whose optional packages are missing."""
    try:
        return importlib.import_module(module_name), None
    except Exception as err:  # a demo that cannot load is still listed, with the reason
        return None, f"(unavailable: {err})"


def _demo_summary(module_name):
    module, why = _demo_module(module_name)
    return module.SUMMARY if module is not None else why


def build_parser():
    """The whole command line as one argparse tree: numbanet -> demo -> NAME, and bench.

    Each demo's sub-parser takes its options from the demo's ``add_arguments``, so
    ``numbanet demo NAME --help`` lists them with their help texts; ``bench`` passes
    everything after it to the benchmark runner, which has its own ``--help``.
    """
    parser = argparse.ArgumentParser(prog="numbanet", description="numbanet: demos and benchmarks",
                                     epilog="Put -v before the command: numbanet -v demo sine")
    parser.add_argument("-v", "--verbose", action="store_true", dest="show_setup",  # a demo's --verbose is its own
                        help="print the BLAS library, its kernels and the thread counts on stderr")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train a demo end to end and write its pictures",
                               description="Train a demo end to end and write its pictures. "
                                           "numbanet demo NAME --help lists NAME's options.")
    demo.add_argument("-l", "--list", action="store_true", help="list the demos and exit")
    names = demo.add_subparsers(dest="demo", metavar="NAME")
    for name, module_name in DEMOS.items():
        module, why = _demo_module(module_name)
        summary = module.SUMMARY if module is not None else why
        sub = names.add_parser(name, help=summary, description=summary)
        if module is not None:
            module.add_arguments(sub)
        add_kernels_option(sub)
    commands.add_parser("bench", add_help=False, help="run the benchmarks (numbanet bench --help for their options)")
    from .explain import command as explain_command
    explain_command.add_parser(commands)
    from .tracing_demos import add_parser as add_trace_parser
    add_trace_parser(commands)
    add_gradcheck_parser(commands)
    from .tune import add_parser as add_tune_parser
    add_tune_parser(commands)
    commands.metavar = "{" + ",".join(commands.choices) + "}"   # every command, in the order added
    return parser


def add_gradcheck_parser(commands):
    """``numbanet gradcheck DEMO``: numbanet/demos/gradcheck.py holds its options and its work."""
    from .demos import gradcheck
    sub = commands.add_parser("gradcheck", help=gradcheck.SUMMARY, description=gradcheck.__doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    gradcheck.add_arguments(sub)
    add_kernels_option(sub)


def add_kernels_option(parser):
    """``--kernels fast|reference``, which every demo takes: the tier that computes the arrays."""
    from .engine.tiers import TIERS
    parser.add_argument("--kernels", choices=TIERS, default="fast",
                        help="fast: the routed, fused, threaded kernels; reference: the plain NumPy textbook "
                             "versions (numbanet/reference/), the same figures, slower (default: %(default)s)")


def without_kernels_option(argv):
    """``argv`` less ``--kernels NAME`` / ``--kernels=NAME``: the demo's own parser does not know it."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--kernels":
            skip = True
        elif not arg.startswith("--kernels="):
            out.append(arg)
    return out


def list_demos():
    print("demos:")
    for name, module in DEMOS.items():
        print(f"  {name:<12} {_demo_summary(module)}")
    print("run one with: numbanet demo NAME (numbanet demo NAME --help lists its options)")
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


def _reexec_with_avx512_blas(argv, verbose):
    """Restart this command with OpenBLAS's AVX-512 (SkylakeX) kernels when the CPU has them.

    NumPy's OpenBLAS reads OPENBLAS_CORETYPE once, when NumPy is first imported, so
    the choice needs a fresh process. Some machines pin an older core type (e.g.
    Haswell, AVX2) for old OpenBLAS builds; on a current NumPy the AVX-512 kernels
    roughly double float32 matrix products. Set NUMBANET_KEEP_BLAS=1 to keep the
    environment as it is. The restart is said on stderr only with ``verbose``; a
    restart that fails is always said, and the command goes on with the kernels it has.
    """
    if os.environ.get("NUMBANET_KEEP_BLAS") or os.environ.get("OPENBLAS_CORETYPE") == "SkylakeX":
        return
    if not _cpu_has_avx512():
        return
    # the value it replaces is kept, so a child that wants the plain setting back (the benchmarks'
    # library-default mode) can restore it
    env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX", NUMBANET_KEEP_BLAS="1",
               NUMBANET_ORIGINAL_OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE", ""))
    if verbose:
        print(f"numbanet: this CPU has AVX-512; using OpenBLAS's SkylakeX kernels (OPENBLAS_CORETYPE was "
              f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}; NUMBANET_KEEP_BLAS=1 keeps it)", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "numbanet.cli", *argv], env)
    except OSError as err:
        print(f"numbanet: could not restart with OpenBLAS's SkylakeX kernels ({err}); going on with the "
              f"kernels OpenBLAS chose", file=sys.stderr)


def _report_threads(threads, verbose):
    """With ``verbose``, one stderr line on the threads and the BLAS; without, only a problem.

    The problem worth saying unasked: more than one thread but no BLAS library found
    through threadpoolctl, so the batch-split threads cannot keep BLAS to one thread each
    and the two levels of threading may compete for the cores (engine/parallel.py).
    """
    from .fast import parallel
    blas = parallel.blas_controllers()
    if verbose:
        libs = "; ".join(f"{lc.internal_api} {lc.version} ({lc.info().get('architecture') or '?'} kernels), "
                         f"{lc.num_threads} threads" for lc in blas) or "not found"
        print(f"numbanet: {threads} threads for batch-split operations; BLAS: {libs}; OPENBLAS_CORETYPE="
              f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}", file=sys.stderr)
    elif threads > 1 and not blas:
        print("numbanet: warning: no BLAS library found through threadpoolctl, so its threads cannot be "
              "limited while numbanet splits batches (pip install threadpoolctl; -v shows the setup)",
              file=sys.stderr)


# the commands whose options are all numbanet's own (bench passes its options on to the runner)
STRICT_COMMANDS = {"explain", "trace", "gradcheck", "tune"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        # bench's options belong to the benchmark runner: only a demo's must all be known here
        args, _ = parser.parse_known_args(argv)
        if args.command in STRICT_COMMANDS:    # every option known: a typo is an error, not ignored
            args = parser.parse_args(argv)
        if args.command == "demo" and args.demo is not None:
            module, why = _demo_module(DEMOS[args.demo])
            if module is None:
                print(f"numbanet demo {args.demo}: {why}", file=sys.stderr)
                return 2
            args = parser.parse_args(argv)
    except SystemExit as done:                 # --help printed, or a usage error said
        return done.code if isinstance(done.code, int) else 2
    if args.command is None:                   # options alone (numbanet -v)
        parser.print_help()
        return 0
    if args.command == "demo" and (args.list or args.demo is None):
        return list_demos()
    if args.command == "explain":
        from .explain import command as explain_command
        return explain_command.run(args)
    _reexec_with_avx512_blas(argv, args.show_setup)   # the restarted process parses the same argv again
    from .utils import set_num_threads, tune_malloc
    tune_malloc()      # this process is ours: keep large freed blocks for reuse (see utils.tune_malloc)
    threads = set_num_threads()  # the library's default, settled now to report it: NUMBANET_NUM_THREADS or one per CPU
    _report_threads(threads, args.show_setup)
    if args.command == "demo":
        start = argv.index(args.demo) + 1     # the demo parses its own options again (its checks run)
        from .engine.tiers import kernels
        if args.kernels != "fast":
            print(f"numbanet: computing with the {args.kernels} kernels (numbanet/{args.kernels}/)")
        with kernels(args.kernels):
            module.main(without_kernels_option(argv[start:]))
        return 0
    if args.command == "trace":
        from .tracing_demos import run as run_trace
        return run_trace(args)
    if args.command == "gradcheck":
        from .demos import gradcheck
        from .engine.tiers import kernels
        with kernels(args.kernels):
            return gradcheck.main(args)
    if args.command == "tune":
        from .tune import run as run_tune
        return run_tune(args)
    return bench(argv[argv.index("bench") + 1:])


if __name__ == "__main__":
    sys.exit(main())
