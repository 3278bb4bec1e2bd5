"""The ``s3r-zoo`` command line: thin argument parsing over library functions."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from . import __version__

__all__ = ["main", "build_parser"]


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="create a band-adapted S3R model, run it, print band info and timings",
                       description="Create a B-band S3R encoder from a 41-band (380-780 nm) checkpoint, "
                                   "resampled by wavelength to the target bands, and time a forward pass.")
    p.add_argument("--model", default="s3r_resnet50", choices=["s3r_resnet18", "s3r_resnet50"])
    p.add_argument("--bands", type=int, default=40, help="target band count (default 40)")
    p.add_argument("--range-nm", type=float, nargs=2, default=(450.0, 750.0), metavar=("FIRST", "LAST"),
                   help="centres of the first and last target band in nm (default 450 750)")
    p.add_argument("--size", type=int, default=224, help="input height and width in pixels")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed forward passes (median reported)")
    p.add_argument("--out", default="runs/demo", help="folder for demo.json and the demo checkpoint")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(model_name=args.model, bands=args.bands, range_nm=tuple(args.range_nm), size=args.size,
             batch_size=args.batch_size, repeats=args.repeats, out_dir=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3r-zoo", description="S3R hyperspectral model zoo")
    parser.add_argument("--version", action="version", version=f"s3r-zoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # user errors: one clear line, no traceback
        print(f"s3r-zoo {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
