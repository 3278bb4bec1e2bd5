"""The shared experimental protocol of the convergence and accuracy benchmarks.

One simulated data set per preset (``s3r-zoo data synth`` layout, published split ratios),
one pre-training per method on its train split under the same budget (epochs, crop, batch,
crops per cube, patience), then fine-tuning with the published recipe. Runs are cached by
their spec: a run whose ``summary.json`` / ``aggregate.json`` was written with the same
spec is reused, so ``bench convergence`` and ``bench accuracy`` in one invocation pre-train
once, and an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.evaluate import cached_finetune
from s3r_zoo.files import write_json
from s3r_zoo.finetune import FinetuneSpec
from s3r_zoo.pretrain import PretrainSpec, run_pretrain
from s3r_zoo.train import drop_states, result_fields

# name -> (objective, extra PretrainSpec fields); None = no pre-training
METHODS: dict[str, Optional[tuple[str, dict]]] = {
    "scratch": None,
    "imagenet": None,
    "byol_3": ("byol", {"bands": 3}),
    "byol_all": ("byol", {}),
    "simsiam_3": ("simsiam", {"bands": 3}),
    "simsiam_all": ("simsiam", {}),
    "ssad": ("ssad", {}),
    "convdeconv": ("convdeconv", {}),
    "mhsim": ("mhsim", {}),
    "regress": ("regress", {}),
    "s3r_cr": ("cr", {}),
    "s3r_br": ("br", {}),
    "s3r_local": ("local", {}),
    "s3r_local_lr1e-3": ("local", {"lr": 1e-3}),  # the recipe the real-tissue probe chose (benchmarks/NOTES.md)
    # a relative ridge of 1e-3: beta~ describes the crop's content, not its pixels' noise (NOTES.md, bench targets)
    "s3r_cr_ridge1e-3": ("cr", {"ridge": 1e-3}),
    "s3r_local_lr1e-3_ridge1e-3": ("local", {"lr": 1e-3, "ridge": 1e-3}),
}
LABELS = {"scratch": "scratch", "imagenet": "ImageNet-1k", "byol_3": "BYOL, 3 bands", "byol_all": "BYOL, all bands",
          "simsiam_3": "SimSiam, 3 bands", "simsiam_all": "SimSiam, all bands", "ssad": "SSAD",
          "convdeconv": "Conv-Deconv", "mhsim": "MHSIM (MIM with a CNN)", "regress": "masking + straight regression",
          "s3r_cr": "S3R-CR", "s3r_br": "S3R-BR", "s3r_local": "local S3R",
          "s3r_local_lr1e-3": "local S3R, lr 1e-3", "s3r_cr_ridge1e-3": "S3R-CR, ridge 1e-3",
          "s3r_local_lr1e-3_ridge1e-3": "local S3R, lr 1e-3, ridge 1e-3"}
TABLE2 = ["scratch", "imagenet", "byol_3", "byol_all", "simsiam_3", "simsiam_all", "ssad", "convdeconv", "mhsim",
          "s3r_cr", "s3r_br"]
TABLE1 = {"no pretext": "scratch", "masking + straight regression": "regress", "masking + BR": "s3r_br",
          "masking + CR": "s3r_cr"}
CONVERGENCE = ["s3r_cr", "s3r_br", "simsiam_all", "byol_all", "mhsim"]

# published test accuracy (mean, std) with ResNet-18 (docs/method.md, Tables 1 and 2)
PAPER_R18 = {
    "pdac_like": {"scratch": (78.02, 2.28), "imagenet": (83.52, 1.68), "byol_3": (82.42, 1.68),
                  "byol_all": (83.52, 1.68), "simsiam_3": (86.81, 1.10), "simsiam_all": (85.71, 1.67),
                  "ssad": (80.22, 2.29), "convdeconv": (79.12, 1.68), "mhsim": (81.32, 1.10),
                  "s3r_cr": (91.21, 2.23), "s3r_br": (92.31, 1.10)},
    "plgc_like": {"scratch": (85.20, 1.58), "imagenet": (93.27, 0.51), "byol_3": (94.62, 0.90),
                  "byol_all": (94.62, 0.26), "simsiam_3": (94.62, 0.63), "simsiam_all": (93.72, 0.69),
                  "ssad": (92.38, 2.99), "convdeconv": (90.13, 0.93), "mhsim": (93.27, 1.44),
                  "s3r_cr": (95.07, 0.21), "s3r_br": (94.62, 0.42)},
}
PAPER_TABLE1_R18 = {"no pretext": 94.17, "masking + straight regression": 93.72, "masking + BR": 94.62,
                    "masking + CR": 95.07}


@dataclass(frozen=True)
class Training:
    """What every method of a table trains with (the honesty rule: same model, epochs, crops, batch, seeds):
    the fields :func:`pretrain` and :func:`finetune` read; each benchmark's budget extends it with its data."""

    model: str = "s3r_resnet18"
    pretrain_epochs: int = 6
    crops_per_cube: int = 2
    patience: int = 3
    finetune_epochs: int = 12
    batch_size: int = 16
    seeds: int = 3
    lr_finetune: float = 1e-3
    min_steps: int = 0  # fine-tuning: floor on optimiser steps (small label fractions get more epochs)


@dataclass(frozen=True)
class Budget(Training):
    """The convergence and accuracy benchmarks' budget: their training plus the simulated sets and fractions."""

    presets: dict = field(default_factory=lambda: {"pdac_like": (120, 48), "plgc_like": (90, 80)})  # (n, px)
    fractions: tuple = (1.0, 0.1)
    difficulty: float = 0.0


CPU = Budget()
QUICK = Budget(presets={"pdac_like": (36, 32)}, pretrain_epochs=2, crops_per_cube=1, patience=2, finetune_epochs=2,
               seeds=1, fractions=(1.0, 0.25), batch_size=8)
GPU = Budget(presets={"pdac_like": (523, 256), "plgc_like": (1105, 256)}, model="s3r_resnet18", pretrain_epochs=200,
             crops_per_cube=4, patience=10, finetune_epochs=70, batch_size=32, seeds=3, lr_finetune=1e-4,
             difficulty=0.5)
BUDGETS = {"cpu": CPU, "quick": QUICK, "gpu": GPU}


def prepare_data(root: Path, preset: str, n: int, size: int, difficulty: float) -> Path:
    """Simulated data set with split files (reused when its meta matches)."""
    out = root / f"{preset}_{n}x{size}_d{difficulty:g}"
    meta = out / "meta.json"
    if not meta.is_file():
        write_dataset(out, preset, n=n, size=size, seed=0, difficulty=difficulty, dtype="float16")
    return out


# benchmark runs are short (minutes) and cached whole: the resumable state every 10 epochs, not every epoch
# (one save writes model + optimiser, ~135 MB for a ResNet-18: ~0.5 s on a CPU, as long as a 200-cube epoch's
# validation and more than a 20-cube epoch's training)
STATE_EVERY = 10


def _cached(path: Path, spec) -> Optional[dict]:
    """The saved result at ``path`` if it was produced by ``spec`` (operational options aside)."""
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("bench_spec") is not None and result_fields(saved["bench_spec"]) == result_fields(spec):
            return saved
    return None


def pretrain(method: str, data: Path, size: int, budget: Training, out_root: Path, amp: str = "auto",
             cached_only: bool = False, snapshot_every: int = 0) -> Optional[dict]:
    """Pre-train ``method`` on ``data``'s train split; returns the run summary (cached).

    ``cached_only``: return None instead of training when no finished run matches.
    ``snapshot_every``: also keep the encoder every N epochs (``<run>/snapshots``).
    """
    objective, extra = METHODS[method]
    out = out_root / data.name / method
    spec = PretrainSpec(data=str(data / "train.txt"), out=str(out), model=budget.model, objective=objective,
                        epochs=budget.pretrain_epochs, batch_size=budget.batch_size, crop=size,
                        crops_per_cube=budget.crops_per_cube, patience=budget.patience, amp=amp,
                        mask_patch=max(4, size // 8), snapshot_every=snapshot_every, state_every=STATE_EVERY,
                        **extra)
    key = asdict(spec)
    cached = _cached(out / "bench_summary.json", spec)
    if cached or cached_only:
        return cached
    if (out / "state.safetensors").exists():  # an interrupted run of this spec: continue it
        spec = replace(spec, resume=True)
    summary = run_pretrain(spec)
    summary["bench_spec"] = key
    write_json(out / "bench_summary.json", summary)
    drop_states(out)  # the cached result replaces them; the weights stay
    return summary


def finetune(init: str, data: Path, size: int, budget: Training, fraction: float, out: Path, amp: str = "auto",
             cached_only: bool = False) -> Optional[dict]:
    """Fine-tune ``budget.seeds`` times from ``init``; returns the aggregate (cached, or None: see pretrain)."""
    spec = FinetuneSpec(data=str(data), out=str(out), model=budget.model, init=init, epochs=budget.finetune_epochs,
                        batch_size=budget.batch_size, lr=budget.lr_finetune, crop=size, label_fraction=fraction,
                        seeds=budget.seeds, amp=amp, state_every=STATE_EVERY, min_steps=budget.min_steps)
    return cached_finetune(spec, cached_only=cached_only)
