"""``python -m benchmarks convergence``: loss against wall-clock and epochs, same data, same budget.

S3R-CR, S3R-BR, SimSiam, BYOL and MHSIM (all bands) pre-train on the train split of the
first simulated preset of the budget. Reported: seconds per epoch, the ratio S3R / SimSiam
(the paper: about 1/4 on PLGC), epochs until early stop (or the budget), and a PNG of the
normalised loss (loss / first-epoch loss; the objectives have different units) against
time and epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .plots import loss_curves
from .common import environment, run_device, write_result
from .protocol import CONVERGENCE, LABELS, Budget, prepare_data, pretrain


def run(results_dir: Path, budget: Budget, work: Path, amp: str = "auto") -> dict:
    preset, (n, size) = next(iter(budget.presets.items()))
    data = prepare_data(work / "data", preset, n, size, budget.difficulty)
    runs = {}
    for method in CONVERGENCE:
        s = pretrain(method, data, size, budget, work / "pretrain", amp=amp)
        h = s["history"]
        runs[method] = {"history": h, "epochs": s["epochs"], "stop": s["stop"], "final_loss": s["final_loss"],
                        "wall_time_s": s["wall_time_s"],
                        "s_per_epoch": float(np.median(np.diff([0.0] + [e["time_s"] for e in h])))}
    ratio = {m: runs[m]["s_per_epoch"] / runs["simsiam_all"]["s_per_epoch"] for m in ("s3r_cr", "s3r_br")}
    png = loss_curves({LABELS[m]: r["history"] for m, r in runs.items()}, Path(results_dir) / "convergence.png",
                      f"{budget.model} pre-training on {preset} ({n} cubes of {size}px, train split)")
    payload = {"name": "convergence", "data": f"{preset}: {n} cubes of {size}px, train split", "budget": {
        "epochs": budget.pretrain_epochs, "batch_size": budget.batch_size, "crop": size,
        "crops_per_cube": budget.crops_per_cube, "patience": budget.patience, "model": budget.model},
        "runs": runs, "epoch_time_ratio_over_simsiam": ratio, "paper_ratio": 0.25, "plot": png.name,
        **environment(run_device())}
    write_result(results_dir, "convergence", payload)
    return payload
