"""``numbanet explain OP``: the atlas picture of one convolution, pooling or upsampling, from the shell.

    numbanet explain conv2d --input 5x5 --kernel 3 --strides 2 --padding same [--out DIR]
    numbanet explain conv2d_transpose --input 3x3 --kernel 3 --strides 2 --output-padding 1
    numbanet explain max_pool2d --input 5x5 --kernel 2 --padding same
    numbanet explain upsampling2d --input 3x3 --size 2 --interpolation bilinear

Sizes are ``N`` or ``AxB`` (``--input`` also ``HxWxC``). Prints the Keras formula
with the numbers put in and the PNG's path.
"""
from __future__ import annotations

import argparse
import os
import sys

OPS = ("conv2d", "conv2d_transpose", "max_pool2d", "upsampling2d")


def sizes(text):
    """'5' -> 5, '5x3' -> (5, 3), '5x3x2' -> (5, 3, 2) (also with commas); argparse's type for sizes."""
    try:
        parts = [int(p) for p in text.replace(",", "x").lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, AxB or AxBxC of integers, got {text!r}") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def add_parser(commands):
    """The ``explain`` sub-command and one sub-parser per operation."""
    explain = commands.add_parser("explain", help="draw the convolution atlas of one layer configuration",
                                  description="Draw where every number of a convolution, pooling or upsampling "
                                              "goes, and print the Keras output-size formula with the numbers.")
    ops = explain.add_subparsers(dest="op", metavar="OP", required=True)
    for op in OPS:
        sub = ops.add_parser(op, help=f"the atlas of {op}")
        sub.add_argument("--input", type=sizes, required=True, help="input size H, HxW or HxWxC, e.g. 5x5")
        if op == "upsampling2d":
            sub.add_argument("--size", type=sizes, default=2, help="upsampling factors S or SHxSW (default: 2)")
            sub.add_argument("--interpolation", choices=("nearest", "bilinear"), default="nearest")
        else:
            sub.add_argument("--kernel", "--pool-size", type=sizes, default=2 if op == "max_pool2d" else None,
                             required=op != "max_pool2d", dest="kernel",
                             help="kernel (pool window) size K or KHxKW")
            sub.add_argument("--strides", type=sizes, default=None,
                             help="strides S or SHxSW (default: 1; max_pool2d: the pool size)")
            sub.add_argument("--padding", choices=("valid", "same"), default="valid")
        if op == "conv2d_transpose":
            sub.add_argument("--output-padding", type=sizes, default=None, help="output_padding P or PHxPW")
        sub.add_argument("--out", default="numbanet-out", help="folder for the PNG (default: ./%(default)s)")
    return explain


def _tag(value):
    return "x".join(str(v) for v in (value if isinstance(value, tuple) else (value,)))


def run(args):
    """Draw the picture for parsed ``args``; 0 on success, 2 for a configuration the layer rejects."""
    from .. import explain
    name = f"explain_{args.op}_{_tag(args.input)}"
    try:
        if args.op == "upsampling2d":
            name += f"_size{_tag(args.size)}_{args.interpolation}.png"
            explain.upsampling2d(args.input, args.size, args.interpolation, path=os.path.join(args.out, name))
            return 0
        strides = args.strides if args.strides is not None else (None if args.op == "max_pool2d" else 1)
        name += f"_k{_tag(args.kernel)}_s{_tag(strides or args.kernel)}_{args.padding}"
        if args.op == "conv2d_transpose":
            name += "" if args.output_padding is None else f"_op{_tag(args.output_padding)}"
            explain.conv2d_transpose(args.input, args.kernel, strides, args.padding, args.output_padding,
                                     path=os.path.join(args.out, name + ".png"))
        else:
            getattr(explain, args.op)(args.input, args.kernel, strides, args.padding,
                                      path=os.path.join(args.out, name + ".png"))
    except (ValueError, TypeError) as err:
        print(f"numbanet explain {args.op}: {err}", file=sys.stderr)
        return 2
    return 0
