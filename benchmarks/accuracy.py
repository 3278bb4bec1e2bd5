"""``python -m benchmarks accuracy``: Table 2 and the Table 1 ablation on simulated data.

Protocol (docs/method.md): each method pre-trains on the train split only, then fine-tunes with
the same recipe for every initialisation (best-on-validation weights, tested once),
``budget.seeds`` seeds, mean +- std of test accuracy; once with all training labels and
once with a stratified label fraction, where pre-training should matter most. The same
budget (epochs, crop, batch) for every method of a table. The ImageNet row needs timm's
ImageNet weights; without network or a cached copy it is reported as skipped, with why.
"""

from __future__ import annotations

from pathlib import Path

import torch

from s3r_zoo.files import first_line
from s3r_zoo.models import build_encoder
from .common import environment, run_device, write_result
from .protocol import METHODS, TABLE1, TABLE2, Budget, finetune, prepare_data, pretrain


def _imagenet_available(model: str) -> str:
    """'' if timm's ImageNet weights for ``model`` load here, else why not."""
    try:
        build_encoder(model, 3, "imagenet")
    except Exception as e:  # offline and not cached, or any hub failure
        return f"{type(e).__name__}: {first_line(e)}"
    return ""


def run(results_dir: Path, budget: Budget, work: Path, amp: str = "auto", methods=None,
        cached_only: bool = False) -> dict:
    """Run (or collect) every table; ``accuracy.json`` is rewritten after each method, so an
    interrupted benchmark leaves its finished rows. ``cached_only`` trains nothing and reports
    unfinished rows as not run."""

    methods = methods or list(dict.fromkeys(TABLE2 + list(TABLE1.values())))
    imagenet_missing = _imagenet_available(budget.model) if "imagenet" in methods else ""
    payload = {"name": "accuracy", "budget": {k: (list(v) if isinstance(v, tuple) else v)
                                              for k, v in budget.__dict__.items()},
               "tables": {}, "table1": TABLE1, "table2": TABLE2, "complete": False,
               **environment(run_device())}
    for preset, (n, size) in budget.presets.items():
        data = prepare_data(work / "data", preset, n, size, budget.difficulty)
        rows = {}
        payload["tables"][preset] = {"data": f"{n} simulated cubes of {size}px, difficulty {budget.difficulty:g}, "
                                             f"split by the published ratios", "rows": rows}
        for method in methods:
            rows[method] = _row(method, data, size, budget, work, amp, imagenet_missing, cached_only)
            write_result(results_dir, "accuracy", payload)
    payload["complete"] = not any("not_run" in r for t in payload["tables"].values() for r in t["rows"].values())
    write_result(results_dir, "accuracy", payload)
    return payload


def _row(method, data, size, budget, work, amp, imagenet_missing, cached_only) -> dict:
    if method == "imagenet" and imagenet_missing:
        return {"skipped": imagenet_missing}
    pre = None
    if METHODS[method] is not None:
        pre = pretrain(method, data, size, budget, work / "pretrain", amp=amp, cached_only=cached_only)
        if pre is None:
            return {"not_run": "pre-training not finished within the run"}
        init = pre["checkpoint"]
    else:
        init = method if method == "imagenet" else "scratch"
    row = {"pretrain": None if pre is None else {k: pre[k] for k in ("epochs", "stop", "final_loss", "wall_time_s")}}
    for frac in budget.fractions:
        agg = finetune(init, data, size, budget, frac, work / "finetune" / data.name / f"{method}_f{frac:g}",
                       amp=amp, cached_only=cached_only)
        if agg is None:
            return {"not_run": "fine-tuning not finished within the run"}
        acc = agg["aggregate"]["accuracy"]
        row[f"fraction_{frac:g}"] = {"mean": 100 * acc["mean"], "std": 100 * acc["std"],
                                     "runs": [100 * r["accuracy"] for r in agg["runs"]],
                                     "best_epochs": [r["best_epoch"] for r in agg["runs"]],
                                     "train_size": agg["runs"][0]["train_size"]}
    return row
