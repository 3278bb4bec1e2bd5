"""``python -m benchmarks``: run benchmark parts from a checkout (the package never imports this folder).

Each part writes ``<results>/<part>.json`` and PNGs, then ``RESULTS.md`` is regenerated and the
tables of the parts that ran are printed. ``python -m benchmarks --help`` lists the options.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from s3r_zoo.train import AMP_MODES, NonFiniteError

from . import PARTS, run_bench
from .report import SECTIONS, section


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run benchmark parts; each writes results/<part>.json and PNGs, then RESULTS.md is regenerated. "
                    "Parts: speed, convergence, accuracy (Tables 1-2), labels (the powered label-efficiency "
                    "benchmark), transfer (cross-sensor), coefficients (Fig. 3), weights (released weights "
                    "fine-tuned), all; not in all: gpu, tissue, worlds (simulated worlds M, C, M+C), long_curves (world C, 6,000 steps), latents (what world C's encoders encode, after worlds), twins (what they respond to, after worlds), targets (what their pretext targets carry, after worlds); or report (only regenerate RESULTS.md and the label plots).")
    p.add_argument("parts", nargs="*", default=["all"], help=f"parts to run (default: all; {', '.join(PARTS)})")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run of every part in minutes; writes to runs/bench_quick/results")
    p.add_argument("--budget", choices=["quick", "cpu", "gpu"],
                   help="training budget (default: cpu, or quick with --quick)")
    p.add_argument("--results", help="results folder (default: benchmarks/results)")
    p.add_argument("--work", help="folder for data and runs (default: runs/bench_<budget>)")
    p.add_argument("--amp", default="auto", choices=AMP_MODES,
                   help="AMP for the training runs (auto: bf16 where the device computes it natively, as pretrain)")
    p.add_argument("--cr-run", help="coefficients: S3R-CR pretrain folder (default: runs/weights/...cr_hims41_v2)")
    p.add_argument("--br-run", help="coefficients: S3R-BR pretrain folder (default: runs/weights/...br_hims41_v2)")
    p.add_argument("--methods", type=lambda v: [m.strip() for m in v.split(",") if m.strip()],
                   help="accuracy: comma-separated rows to run (e.g. scratch,regress,s3r_br,s3r_cr = Table 1; "
                        "default: every row)")
    p.add_argument("--cached-only", action="store_true",
                   help="accuracy: train nothing; report the finished (cached) runs, the rest as not run")
    p.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        out = run_bench(args.parts, quick=args.quick, budget=args.budget, results=args.results, work=args.work,
                        amp=args.amp, cr_run=args.cr_run, br_run=args.br_run, cached_only=args.cached_only,
                        methods=args.methods)
    except (ValueError, FileNotFoundError) as e:  # one line, no traceback
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 1
    for part in SECTIONS:  # the tables of what just ran, so the ratios are on screen, not only in files
        if part in out:
            print(section(out["results"], part))
    print(f"-> {out['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
