"""The ``numbanet`` command.

    numbanet demo NAME [options]     train a demo end to end and write its pictures
    numbanet demo --list             list the demos
    numbanet bench [options]         run the benchmarks (see benchmarks/)
"""
from __future__ import annotations

import argparse
import importlib
import sys

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


def bench(argv):
    try:
        runner = importlib.import_module("benchmarks.run")
    except ImportError:
        print("numbanet bench: run it from a checkout of the repository (the benchmarks/ folder is not "
              "installed with the package): python -m benchmarks.run", file=sys.stderr)
        return 2
    return runner.main(argv) or 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="numbanet", description="numbanet: demos and benchmarks",
                                     usage="numbanet {demo,bench} ...")
    parser.add_argument("command", choices=("demo", "bench"))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo(rest)
    if command == "bench":
        return bench(rest)
    parser.parse_args(argv[:1])
    return 2


if __name__ == "__main__":
    sys.exit(main())
