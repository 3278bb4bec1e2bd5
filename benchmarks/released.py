"""``python -m benchmarks weights``: what the released encoders are worth when fine-tuned, next to scratch.

For each architecture of the release records: fine-tuning from scratch and from each
released tag (``timm.create_model('<model>.<tag>', pretrained=True, in_chans=40,
wavelengths=...)``: the 41-band HIMS stem resampled to the simulated 40 bands by wavelength)
on the simulated ``pdac_like`` set of the accuracy benchmark, with the benchmark protocol:
same data, splits, seeds, epochs and label fractions for every row (:mod:`.protocol`).
The released weights come from ``weights/`` or the hub exactly as a user gets them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from s3r_zoo.models.releases import RELEASES
from .common import environment, run_device, write_result
from .protocol import Budget, finetune, prepare_data

PRESET = "pdac_like"

__all__ = ["run", "PRESET"]


def run(results_dir: Path, budget: Budget, work: Path, amp: str = "auto") -> dict:
    """Fine-tune every row; ``weights.json`` is rewritten after each, so an interruption keeps the finished rows."""
    n, size = budget.presets.get(PRESET, next(iter(budget.presets.values())))
    data = prepare_data(work / "data", PRESET, n, size, budget.difficulty)
    payload = {"name": "weights", "preset": PRESET, "data": f"{n} simulated cubes of {size}px, difficulty "
               f"{budget.difficulty:g}, split by the published ratios",
               "budget": {k: (list(v) if isinstance(v, tuple) else v) for k, v in budget.__dict__.items()},
               "rows": {}, **environment(run_device())}
    models = list(dict.fromkeys(r.model for r in RELEASES.values()))
    for model in models:
        b = replace(budget, model=model)
        for init in ["scratch"] + [name for name, r in RELEASES.items() if r.model == model]:
            row = {"model": model, "init": init}
            name = init if init != "scratch" else f"{model}.scratch"  # tags name their model already
            for frac in budget.fractions:
                agg = finetune(init, data, size, b, frac, work / "finetune_weights" / data.name / f"{name}_f{frac:g}",
                               amp=amp)
                acc = agg["aggregate"]["accuracy"]
                row[f"fraction_{frac:g}"] = {"mean": 100 * acc["mean"], "std": 100 * acc["std"],
                                             "runs": [100 * r["accuracy"] for r in agg["runs"]],
                                             "train_size": agg["runs"][0]["train_size"]}
            payload["rows"][f"{model} {init}"] = row
            write_result(results_dir, "weights", payload)
    return payload
