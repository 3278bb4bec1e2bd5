"""The benchmarks: the evidence behind the zoo (speed, convergence, accuracy, the powered label-efficiency
benchmark, coefficients, and what the released weights give when fine-tuned).

Run from a checkout as ``python -m benchmarks PART [--quick]`` (see ``benchmarks/__main__.py``); they use
``s3r_zoo``'s public API only, and the package never imports them. Each part writes ``<results>/<part>.json`` (numbers, command, versions, machine, device,
date) and PNG plots; every run regenerates ``RESULTS.md`` beside the results folder. The
default results folder is the checkout's ``benchmarks/results``; ``--quick`` (a CPU smoke
run of every part in minutes) writes to ``runs/bench_quick/results`` instead, so it never
overwrites real numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from . import (accuracy, coefficients, convergence, gpu, labels, latents, released, speed, targets, tissue, transfer,
               twins, worlds)
from .common import default_results_dir
from .protocol import BUDGETS, METHODS
from .report import write_report

PARTS = ("speed", "convergence", "accuracy", "labels", "transfer", "coefficients", "weights")
# not in "all": the lent-GPU script (benchmarks/cuda/gpu.sh; --quick rehearses it on CPU), and the real-tissue
# probe (after benchmarks/tissue.sh has pre-trained its encoders; --work: their folder, default runs/tissue)
# worlds: the learning-curve study (about 2 h a world on 2 CPU cores); long_curves: world C at 6,000 steps (~1 h);
# latents: what world C's cached encoders encode, twins: what they respond to, targets: what their pretext targets
# carry about each world's class (all three after worlds)
GPU_PARTS = ("gpu", "tissue", "worlds", "long_curves", "latents", "twins", "targets")

__all__ = ["PARTS", "GPU_PARTS", "run_bench"]


def run_bench(parts: Sequence[str], quick: bool = False, budget: Optional[str] = None,
              results: Optional[str] = None, work: Optional[str] = None, amp: str = "auto",
              cr_run: Optional[str] = None, br_run: Optional[str] = None, cached_only: bool = False,
              methods: Optional[Sequence[str]] = None) -> dict:
    """Run the named parts (``all`` = every part) and regenerate the report; returns {part: payload}.

    ``methods``: the accuracy rows to run (default: every Table 1 and Table 2 row).
    """
    parts = list(PARTS) if "all" in parts else list(dict.fromkeys(parts))
    unknown = [p for p in parts if p not in PARTS + GPU_PARTS + ("report",)]
    if unknown:
        raise ValueError(f"bench: unknown part(s) {unknown}; expected some of "
                         f"{list(PARTS) + list(GPU_PARTS) + ['all', 'report']}")
    budget_name = budget or ("quick" if quick else "cpu")
    if budget_name not in BUDGETS:
        raise ValueError(f"--budget {budget_name!r}: expected one of {sorted(BUDGETS)}")
    bad = [m for m in methods or () if m not in METHODS]
    if bad:
        raise ValueError(f"--methods: unknown {bad}; expected some of {list(METHODS)}")
    b = BUDGETS[budget_name]
    results_dir = Path(results) if results else (Path("runs/bench_quick/results") if quick else default_results_dir())
    work_dir = Path(work) if work else Path("runs") / f"bench_{budget_name}"
    results_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for part in parts:
        if part == "speed":
            out[part] = speed.run(results_dir, quick=quick)
        elif part == "convergence":
            out[part] = convergence.run(results_dir, b, work_dir, amp=amp)
        elif part == "accuracy":
            out[part] = accuracy.run(results_dir, b, work_dir, amp=amp, methods=methods, cached_only=cached_only)
        elif part == "labels":
            out[part] = labels.run(results_dir, labels.BUDGETS[budget_name], work_dir, amp=amp)
        elif part == "transfer":
            out[part] = transfer.run(results_dir, labels.BUDGETS[budget_name], work_dir, amp=amp)
        elif part == "coefficients":
            out[part] = coefficients.run(results_dir, work_dir, quick=quick, cr_run=cr_run, br_run=br_run)
        elif part == "weights":
            out[part] = released.run(results_dir, b, work_dir, amp=amp)  # part "weights": the released weights
        elif part == "gpu":
            out[part] = gpu.run(results_dir, tiny=quick)
        elif part == "tissue":
            out[part] = tissue.run(results_dir, Path(work) if work else Path("runs/tissue"))
        elif part == "worlds":
            out[part] = worlds.run(results_dir, worlds.BUDGETS[budget_name], work_dir / "worlds", amp=amp)
        elif part == "long_curves":
            out[part] = worlds.run(results_dir, worlds.LONG_CURVES[budget_name], work_dir / "long_curves", amp=amp)
        elif part == "latents":
            out[part] = latents.run(results_dir, worlds.BUDGETS[budget_name], work_dir / "latents", work_dir / "worlds")
        elif part == "twins":
            out[part] = twins.run(results_dir, worlds.BUDGETS[budget_name], work_dir / "worlds")
        elif part == "targets":
            out[part] = targets.run(results_dir, worlds.BUDGETS[budget_name], work_dir / "targets", work_dir / "worlds")
    if "report" in parts:  # the plots of the powered benchmark are redrawn from their JSON too
        labels.replot(results_dir)
        transfer.replot(results_dir)
        worlds.replot(results_dir)
    out["report"] = str(write_report(results_dir))
    out["results"] = str(results_dir)
    return out
